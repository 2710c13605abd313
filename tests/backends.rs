//! Several backends per `FastCgiExternalServer` (issue 14, src/gateway/backends.rs): requests
//! spread over real application processes on different loopback ports and sockets, a backend
//! that refuses goes down and the request (body included) goes to the next one, a backend
//! that comes back is found by the health probe, every backend down gives 503 at once, and a
//! backend that accepts but never answers is marked down after the idle timeout.
//!
//! The probe reports its pid (`X-Probe-Pid`): which backend served a request.

mod common;

use common::*;
use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn start_in(dir: &TestDir, extra: &str) -> Apache {
    Apache::start(&ApacheConf::new().root(dir.path()).extra(extra))
}

fn pid_of(r: &Response) -> i32 {
    r.header("X-Probe-Pid")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no X-Probe-Pid: {}", brief(r)))
}

fn host(port: u16) -> String {
    format!("-host 127.0.0.1:{port}")
}

/// A loopback port nothing listens on (refuses connections).
fn dead_port() -> u16 {
    free_port()
}

fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Two probes on loopback ports behind one server with `opts`: (a, a's port, b, Apache).
fn two_backends(dir: &TestDir, opts: &str) -> (AppProcess, u16, AppProcess, Apache) {
    let (a, pa) = start_probe_tcp(dir, "a");
    let (b, pb) = start_probe_tcp(dir, "b");
    let apache = start_in(
        dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/app.fcgi {} {} {opts}\n",
            host(pa),
            host(pb)
        ),
    );
    (a, pa, b, apache)
}

/// The pids of the backends that served `n` GETs in a row (each must succeed).
fn served_pids(apache: &Apache, n: usize) -> Vec<i32> {
    (0..n)
        .map(|_| {
            let r = apache.get("/app.fcgi?mode=env");
            assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(apache));
            pid_of(&r)
        })
        .collect()
}

#[test]
fn sequential_requests_alternate_and_concurrent_ones_spread() {
    let dir = TestDir::new();
    let (a, pa) = start_probe_tcp(&dir, "a");
    let (b, pb) = start_probe_tcp(&dir, "b");
    let (c, sock) = start_probe_unix(&dir, "c");
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/app.fcgi {} -socket {} {}\n",
            host(pa),
            sock.display(),
            host(pb)
        ),
    );
    // Sequential requests: round robin, whichever child takes them.
    let mut served: HashMap<i32, usize> = HashMap::new();
    let mut order = Vec::new();
    for _ in 0..30 {
        let r = apache.get("/app.fcgi?mode=env");
        assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
        let pid = pid_of(&r);
        *served.entry(pid).or_default() += 1;
        order.push(pid);
    }
    for p in [&a, &b, &c] {
        assert_eq!(
            served.get(&p.pid()),
            Some(&10),
            "each backend serves a third: {served:?}"
        );
    }
    for w in order.windows(2) {
        assert_ne!(w[0], w[1], "sequential requests alternate: {order:?}");
    }
    // Three slow requests at once: three different backends (fewest in flight first).
    let port = apache.port();
    let handles: Vec<_> = (0..3)
        .map(|_| thread::spawn(move || get_t(port, "/app.fcgi?mode=sleep&ms=1500")))
        .collect();
    let mut pids: Vec<i32> = handles.into_iter().map(|h| pid_of(&h.join().unwrap())).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 3, "one slow request per backend: {pids:?}");
}

#[test]
fn a_refusing_backend_is_skipped_with_the_whole_upload_and_logged_once() {
    let dir = TestDir::new();
    let (good, pg) = start_probe_tcp(&dir, "good");
    let dead = dead_port();
    let missing = dir.sock_dir().join("missing.sock");
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/app.fcgi {} -socket {} {} -retry 60\n",
            host(dead),
            missing.display(),
            host(pg)
        ),
    );
    for i in 0..6u64 {
        let body = pattern(1 << 20, 700 + i);
        let r = apache.post("/app.fcgi?mode=echo", &body, "application/octet-stream");
        assert_eq!(r.status, 200, "upload {i}: {}\n{}", brief(&r), log_tail(&apache));
        assert_eq!(r.header("X-Body-Sum"), Some(checksum_hex(&body).as_str()), "upload {i}");
        assert!(r.body == body, "upload {i}: the echo differs");
        assert_eq!(pid_of(&r), good.pid());
    }
    assert!(apache.wait_for_log("is down", Duration::from_secs(5)));
    let log = apache.error_log();
    assert_eq!(
        count_lines(&log, &format!("backend 127.0.0.1:{dead} is down: connect() failed")),
        1,
        "one line for the dead port:\n{log}"
    );
    assert_eq!(
        count_lines(&log, &format!("backend unix:{} is down", missing.display())),
        1,
        "one line for the missing socket:\n{log}"
    );
    assert!(log.contains("app.fcgi"), "the lines name the server:\n{log}");
    assert_eq!(count_lines(&log, "no backend available"), 0, "{log}");
}

#[test]
fn a_backend_that_comes_back_is_found_by_the_probe() {
    let dir = TestDir::new();
    let (a, pa, b, apache) = two_backends(&dir, "-retry 1");
    let pids = |n: usize| served_pids(&apache, n);
    assert!(pids(4).contains(&a.pid()));
    a.stop();
    // Every request is served (a request that finds the backend gone goes to b).
    let after = pids(6);
    assert!(after.iter().all(|&p| p == b.pid()), "{after:?}");
    assert!(apache.wait_for_log(&format!("backend 127.0.0.1:{pa} is down"), Duration::from_secs(5)));
    // Restarted on its port: back in the choice within about -retry, found by the probe
    // (requests keep going to b meanwhile).
    let a2 = start_probe_on(&dir, "a2", pa);
    let back = wait_until(Duration::from_secs(10), || pids(2).contains(&a2.pid()));
    assert!(back, "the restarted backend serves again\n{}", log_tail(&apache));
    let log = apache.error_log();
    assert_eq!(
        count_lines(&log, &format!("backend 127.0.0.1:{pa} is up again")),
        1,
        "{log}"
    );
    assert_eq!(
        count_lines(&log, &format!("backend 127.0.0.1:{pa} is down")),
        1,
        "{log}"
    );
}

/// A TCP listener whose accept queue is full: connects to it hang until their timeout.
struct Blackhole {
    _listener: std::os::fd::OwnedFd,
    _fillers: Vec<TcpStream>,
    port: u16,
}

fn blackhole() -> Blackhole {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn};
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let local: nix::sys::socket::SockaddrIn = nix::sys::socket::getsockname(fd.as_raw_fd()).unwrap();
    let port = local.port();
    // Fill the queue (never accepted); further SYNs are dropped.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    Blackhole {
        _listener: fd,
        _fillers: fillers,
        port,
    }
}

#[test]
fn every_backend_down_gives_503_at_once() {
    let dir = TestDir::new();
    let (h1, h2) = (blackhole(), blackhole());
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/app.fcgi {} {} -appConnTimeout 2 -retry 60\n",
            host(h1.port),
            host(h2.port)
        ),
    );
    // The first request waits out both connects (2 s each) and gets 503.
    let t = Instant::now();
    let r = apache.get("/app.fcgi");
    let first = t.elapsed();
    assert_eq!(r.status, 503, "{}\n{}", brief(&r), log_tail(&apache));
    assert!(first >= Duration::from_secs(3), "both connects timed out: {first:?}");
    // Then every request gets 503 without trying (no connect timeout is waited).
    for _ in 0..5 {
        let t = Instant::now();
        let r = apache.get("/app.fcgi");
        assert_eq!(r.status, 503, "{}", brief(&r));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "no connect was tried: {:?}",
            t.elapsed()
        );
    }
    let log = apache.error_log();
    assert_eq!(count_lines(&log, "connect() timed out (2 sec)"), 2, "{log}");
    assert_eq!(count_lines(&log, "no backend available (all 2 are down"), 6, "{log}");
}

#[test]
fn a_backend_that_accepts_but_never_answers_is_marked_down_after_the_idle_timeout() {
    let dir = TestDir::new();
    let (good, pg) = start_probe_tcp(&dir, "good");
    // Accepts, reads everything, never writes.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let pm = mute.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let mute_thread = thread::spawn(move || {
        mute.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        while !stop2.load(Ordering::SeqCst) {
            if let Ok((s, _)) = mute.accept() {
                held.push(s);
            }
            thread::sleep(Duration::from_millis(20));
        }
        held.len()
    });
    // (`-keep-conn 0`: no FCGI_GET_VALUES capacity question, so the mute backend's only
    // connection is a request's.) The mute one first in the order: sequential requests alternate from it.
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/app.fcgi {} {} -idle-timeout 2 -retry 60 -keep-conn 0\n",
            host(pm),
            host(pg)
        ),
    );
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = apache.get("/app.fcgi?mode=env");
        if r.status == 200 {
            assert_eq!(pid_of(&r), good.pid());
        }
        statuses.push(r.status);
    }
    stop.store(true, Ordering::SeqCst);
    let accepted = mute_thread.join().unwrap();
    assert_eq!(accepted, 1, "the mute backend got one request, then none: {statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 500).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 5, "{statuses:?}");
    let log = apache.error_log();
    assert_eq!(
        count_lines(
            &log,
            &format!("backend 127.0.0.1:{pm} is down: no answer within the idle timeout")
        ),
        1,
        "{log}"
    );
}

#[test]
fn killing_one_backend_under_load_fails_at_most_the_requests_it_held() {
    let dir = TestDir::new();
    let (a, pa, b, apache) = two_backends(&dir, "-retry 30");
    let port = apache.port();
    let load = Load::start(port, &["/app.fcgi?mode=sleep&ms=5"], 8);
    thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    kill9(a.pid());
    // The failover time: from the kill to the first request the other one served after it.
    let mut failover = None;
    while killed_at.elapsed() < Duration::from_secs(5) {
        let r = get_t(port, "/app.fcgi?mode=env");
        if r.status == 200 && pid_of(&r) == b.pid() {
            failover = Some(killed_at.elapsed());
            break;
        }
    }
    thread::sleep(Duration::from_millis(1500));
    let res = load.finish();
    let failover = failover.expect("b served after the kill");
    eprintln!(
        "kill-one-backend: {} requests, {} failed, failover {:?}",
        res.requests,
        res.failures.len(),
        failover
    );
    // The killed process was single-threaded: it held at most one request (plus one that
    // may have been written to a kept connection in the instant it died).
    assert!(res.failures.len() <= 2, "{:?}\n{}", res.failures, log_tail(&apache));
    assert!(res.requests > 100, "the load ran: {}", res.requests);
    let log = apache.error_log();
    assert_eq!(
        count_lines(&log, &format!("backend 127.0.0.1:{pa} is down")),
        1,
        "{log}"
    );
    drop(b);
}

#[test]
fn a_unix_socket_backend_fails_over_to_tcp_for_an_authorizer_too() {
    let dir = TestDir::new();
    let (good, pg) = start_probe_tcp(&dir, "good");
    let missing = dir.sock_dir().join("gone.sock");
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/authz.fcgi -socket {} {}\n\
             <Location /secret.txt>\n  FastCgiAccessChecker @HTDOCS@/authz.fcgi\n</Location>\n",
            missing.display(),
            host(pg)
        ),
    );
    std::fs::write(apache.htdocs().join("secret.txt"), "secret\n").unwrap();
    for _ in 0..3 {
        let r = apache.get("/secret.txt?mode=env");
        assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
        assert_eq!(r.text(), "secret\n");
    }
    let log = apache.error_log();
    assert_eq!(count_lines(&log, "gone.sock is down"), 1, "{log}");
    drop(good);
}

#[test]
fn server_status_lists_each_backend_with_its_state() {
    let dir = TestDir::new();
    let (good, pg) = start_probe_tcp(&dir, "good");
    let dead = dead_port();
    let apache = Apache::start(
        &ApacheConf::new()
            .root(dir.path())
            .extra(&format!(
                "FastCgiExternalServer @HTDOCS@/app.fcgi {} {} -retry 60\n\
                 <Location /server-status>\n    SetHandler server-status\n</Location>\n",
                host(pg),
                host(dead)
            ))
            .with_module("status"),
    );
    for _ in 0..4 {
        let r = apache.get("/app.fcgi?mode=env");
        assert_eq!(r.status, 200, "{}", brief(&r));
        assert_eq!(pid_of(&r), good.pid());
    }
    let auto = apache.get("/server-status?auto").text();
    let has = |line: &str| auto.lines().any(|l| l == line);
    let n = auto
        .lines()
        .find_map(|l| {
            l.split_once("]Name: ")
                .filter(|(_, v)| v.ends_with("/app.fcgi"))
                .map(|(k, _)| k.trim_start_matches("FastCgiApp[").parse::<usize>().unwrap())
        })
        .unwrap_or_else(|| panic!("no block for app.fcgi:\n{auto}"));
    for line in [
        format!("FastCgiApp[{n}]Backend[0]Address: 127.0.0.1:{pg}"),
        format!("FastCgiApp[{n}]Backend[0]State: up"),
        format!("FastCgiApp[{n}]Backend[0]Requests: 4"),
        format!("FastCgiApp[{n}]Backend[0]ConnectFailures: 0"),
        format!("FastCgiApp[{n}]Backend[1]Address: 127.0.0.1:{dead}"),
        format!("FastCgiApp[{n}]Backend[1]State: down"),
        format!("FastCgiApp[{n}]Backend[1]ConnectFailures: 1"),
        format!("FastCgiApp[{n}]Requests: 4"),
        format!("FastCgiApp[{n}]Errors: 0"),
    ] {
        assert!(has(&line), "{line}:\n{auto}");
    }
    let html = apache.get("/server-status").text();
    assert!(
        html.contains(&format!("backend 127.0.0.1:{dead}: <b>down</b>")),
        "{html}"
    );
}

/// A network namespace with one end of a veth pair: a "host" at 10.213.<n>.2 reachable only
/// from this machine. Removed on drop.
struct NetNs {
    name: String,
    host_if: String,
    addr: String,
}

impl NetNs {
    fn sh(args: &[&str]) -> Result<(), String> {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn create() -> Result<NetNs, String> {
        let n = std::process::id() % 200 + 20;
        let name = format!("fcgit{}", std::process::id());
        let (host_if, ns_if) = (format!("fh{n}"), format!("fn{n}"));
        let ns = NetNs {
            name: name.clone(),
            host_if: host_if.clone(),
            addr: format!("10.213.{n}.2"),
        };
        Self::sh(&["netns", "add", &name])?;
        Self::sh(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if])?;
        Self::sh(&["link", "set", &ns_if, "netns", &name])?;
        Self::sh(&["addr", "add", &format!("10.213.{n}.1/30"), "dev", &host_if])?;
        Self::sh(&["link", "set", &host_if, "up"])?;
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", name.as_str(), "ip"];
            all.extend_from_slice(args);
            Self::sh(&all)
        };
        exec(&["addr", "add", &format!("{}/30", ns.addr), "dev", &ns_if])?;
        exec(&["link", "set", &ns_if, "up"])?;
        exec(&["link", "set", "lo", "up"])?;
        ns.set_link(true)?;
        Ok(ns)
    }

    /// Takes the namespace's end of the link down (the host disappears) or up again.
    fn set_link(&self, up: bool) -> Result<(), String> {
        let ns_if = self.host_if.replacen("fh", "fn", 1);
        Self::sh(&[
            "netns",
            "exec",
            &self.name,
            "ip",
            "link",
            "set",
            &ns_if,
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Self::sh(&["link", "del", &self.host_if]);
        let _ = Self::sh(&["netns", "del", &self.name]);
    }
}

#[test]
fn a_backend_host_that_disappears_from_the_network_is_failed_over_and_found_again() {
    let ns = match NetNs::create() {
        Ok(ns) => ns,
        Err(why) => {
            // Not silently: the reason is printed, and the other tests cover failover.
            eprintln!("NOTE: network namespaces unavailable ({why}); the disappearing-host test is skipped");
            return;
        }
    };
    let dir = TestDir::new();
    let (local, pl) = start_probe_tcp(&dir, "local");
    let port = free_port();
    let remote = AppProcess::start(
        &dir,
        "remote",
        AppSpec::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(probe_binary())
            .arg("--port")
            .arg(format!("{}:{port}", ns.addr))
            .run_as_root(),
    );
    let ready = wait_until(Duration::from_secs(10), || {
        TcpStream::connect_timeout(
            &format!("{}:{port}", ns.addr).parse().unwrap(),
            Duration::from_millis(300),
        )
        .is_ok()
    });
    assert!(ready, "the backend in the namespace listens\n{}", remote.log());
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/app.fcgi -host {}:{port} {} -appConnTimeout 2 -idle-timeout 5 -retry 2\n",
            ns.addr,
            host(pl)
        ),
    );
    let served = |n: usize| served_pids(&apache, n);
    let before = served(4);
    assert!(
        before.iter().any(|&p| p != local.pid()),
        "the namespace's backend serves: {before:?}"
    );
    // The host disappears: every request is still served, by the local backend.
    ns.set_link(false).unwrap();
    let gone = Instant::now();
    let after = served(6);
    let failover = gone.elapsed();
    assert!(after.iter().all(|&p| p == local.pid()), "{after:?}");
    eprintln!("disappearing host: 6 requests served in {failover:?} after the link went down");
    assert!(apache.wait_for_log(&format!("backend {}:{port} is down", ns.addr), Duration::from_secs(5)));
    // Back on the network: found again by the probe.
    ns.set_link(true).unwrap();
    let back = wait_until(Duration::from_secs(15), || served(2).iter().any(|&p| p != local.pid()));
    assert!(back, "the backend is used again\n{}", log_tail(&apache));
    let log = apache.error_log();
    assert!(
        log.contains(&format!("backend {}:{port} is up again", ns.addr)),
        "{log}"
    );
    // A request unacknowledged on a kept TCP connection means an unreachable host, not an
    // application that ignores kept connections: reuse stays on.
    assert!(!log.contains("does not serve kept connections"), "{log}");
    drop(remote);
}
