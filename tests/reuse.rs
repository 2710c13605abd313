//! Connection reuse (`FCGI_KEEP_CONN`, src/gateway/reuse.rs) end to end: kept connections
//! carry many requests, `-keep-conn 0` turns reuse off, the capacity of an external
//! application comes from `FCGI_GET_VALUES`, more clients than application processes
//! never wait behind idle kept connections, and applications that close kept connections
//! lose no request.
//!
//! The probe reports `X-Probe-Conn-Seq`: how many requests its current connection has
//! carried (1 = a new connection).

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn start_in(dir: &TestDir, extra: &str) -> Apache {
    Apache::start(&ApacheConf::new().root(dir.path()).extra(extra))
}

fn conn_seq(r: &Response) -> u64 {
    r.header("X-Probe-Conn-Seq")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no X-Probe-Conn-Seq: {}", brief(r)))
}

/// `n` GETs of `path` over one keep-alive client connection (one httpd child).
fn keepalive_gets(apache: &Apache, path: &str, n: usize) -> Vec<Response> {
    let mut c = apache.conn();
    (0..n)
        .map(|_| {
            let req = build_request("GET", path, apache.port(), &[("Connection", "keep-alive")], None);
            let r = c.roundtrip(&req);
            assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(apache));
            r
        })
        .collect()
}

/// The number `key` of the first application in a `/server-status?auto` page.
fn app0(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("FastCgiApp[0]{key}: ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}:\n{status}"))
}

/// mod_status's handler, for the tests that read the FastCGI counters.
const STATUS_LOCATION: &str = "<Location /server-status>\n    SetHandler server-status\n</Location>";

/// Error-log lines at level error or worse (ours or httpd's).
fn error_lines(apache: &Apache, mark: usize) -> Vec<String> {
    apache
        .error_log_since(mark)
        .lines()
        .filter(|l| l.contains(":error]") || l.contains(":crit]") || l.contains(":alert]") || l.contains(":emerg]"))
        .map(str::to_string)
        .collect()
}

#[test]
fn static_application_connections_are_kept_and_reused() {
    let dir = TestDir::new();
    probe_at(&dir, "keep/probe.fcgi");
    let apache = Apache::start(
        &ApacheConf::new()
            .root(dir.path())
            .extra(&format!(
                "FastCgiServer @HTDOCS@/keep/probe.fcgi -processes 2 -init-start-delay 0\n{STATUS_LOCATION}"
            ))
            .with_module("status"),
    );
    let mark = apache.log_mark();
    let rs = keepalive_gets(&apache, "/keep/probe.fcgi?mode=env", 30);
    let seqs: Vec<u64> = rs.iter().map(conn_seq).collect();
    eprintln!("[{}] conn seq: {seqs:?}", mpm().name());
    assert!(
        seqs.iter().max().copied().unwrap_or(0) >= 20,
        "one httpd child, one kept connection: most requests should reuse it: {seqs:?}"
    );
    // mod_status counts them: every request the application saw on a
    // connection it had served before took a kept connection.
    let status = apache.get("/server-status?auto").text();
    let reused = seqs.iter().filter(|&&s| s > 1).count() as u64;
    assert_eq!(app0(&status, "KeptConnReuses"), reused, "{seqs:?}\n{status}");
    assert_eq!(app0(&status, "BacklogWaits"), 0, "one client never waits\n{status}");
    // Every request still gets its own, complete environment.
    for r in &rs {
        assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("mode=env"));
        assert!(r.text().contains("STDIN_BYTES=0"), "{}", brief(r));
    }
    // Bodies both ways on kept connections, byte-exact.
    let mut c = apache.conn();
    for (i, size) in [0usize, 1, 65535, 65536, 200_000, 1 << 20].into_iter().enumerate() {
        let body = pattern(size, i as u64 + 1);
        let req = build_request(
            "POST",
            "/keep/probe.fcgi?mode=echo",
            apache.port(),
            &[
                ("Connection", "keep-alive"),
                ("Content-Type", "application/octet-stream"),
            ],
            Some(&body),
        );
        let r = c.roundtrip(&req);
        assert_eq!(r.status, 200, "{}", brief(&r));
        assert_eq!(r.header("X-Body-Length"), Some(size.to_string().as_str()));
        assert!(r.body == body, "echo of {size} bytes differs");
    }
    let r = apache.get("/keep/probe.fcgi?mode=big&size=3000000&seed=5");
    assert_eq!(r.body.len(), 3_000_000);
    assert_eq!(r.header("X-Body-Sum"), Some(checksum_hex(&r.body).as_str()));
    assert_eq!(error_lines(&apache, mark), Vec::<String>::new());
}

/// (pid, tid, SigBlk) of every thread of `apache`'s processes whose name starts
/// with `name` (thread names are cut at 15 bytes).
fn threads_named(apache: &Apache, name: &str) -> Vec<(i32, i32, u64)> {
    let mut out = Vec::new();
    for pid in apache.child_pids() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let dir = format!("/proc/{pid}/task/{tid}");
            let comm = std::fs::read_to_string(format!("{dir}/comm")).unwrap_or_default();
            if !name.starts_with(comm.trim()) || comm.trim().is_empty() {
                continue;
            }
            let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
            let blocked = status
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
            if let Some(b) = blocked {
                out.push((pid, tid, b));
            }
        }
    }
    out
}

// Issue 12: the module's helper threads in httpd children (the reaper of
// idle kept connections) block every signal, so httpd's handlers (prefork's
// just_die on SIGTERM, the graceful-stop ones) always run on httpd's own
// thread, never on ours.
#[test]
fn reaper_thread_blocks_every_signal() {
    let dir = TestDir::new();
    probe_at(&dir, "keep/probe.fcgi");
    let apache = start_in(
        &dir,
        "FastCgiServer @HTDOCS@/keep/probe.fcgi -processes 1 -init-start-delay 0",
    );
    keepalive_gets(&apache, "/keep/probe.fcgi?mode=env", 3);
    let mut found = Vec::new();
    let ok = wait_until(Duration::from_secs(10), || {
        found = threads_named(&apache, "fcgi-keep-reaper");
        !found.is_empty()
    });
    assert!(
        ok,
        "no fcgi-keep-reaper thread in httpd's children\n{}",
        ps_tree(&apache)
    );
    for (pid, tid, blocked) in found {
        for sig in 1..=64 {
            // Never blockable (SIGKILL, SIGSTOP), or reserved by the C library.
            if [libc::SIGKILL, libc::SIGSTOP, 32, 33].contains(&sig) {
                continue;
            }
            assert!(
                blocked & (1u64 << (sig - 1)) != 0,
                "signal {sig} is not blocked in thread {tid} of httpd child {pid} (SigBlk {blocked:#018x})"
            );
        }
    }
}

#[test]
fn keep_conn_zero_turns_reuse_off() {
    let dir = TestDir::new();
    probe_at(&dir, "nokeep/probe.fcgi");
    let apache = start_in(
        &dir,
        "FastCgiServer @HTDOCS@/nokeep/probe.fcgi -processes 1 -init-start-delay 0 -keep-conn 0",
    );
    let seqs: Vec<u64> = keepalive_gets(&apache, "/nokeep/probe.fcgi?mode=env", 10)
        .iter()
        .map(conn_seq)
        .collect();
    assert!(seqs.iter().all(|&s| s == 1), "{seqs:?}");
}

#[test]
fn keep_conn_option_is_validated() {
    let dir = TestDir::new();
    let (ok, out) = Apache::config_test(
        &ApacheConf::new()
            .root(dir.path())
            .extra("FastCgiExternalServer @HTDOCS@/x.fcgi -socket x.sock -keep-conn many"),
    );
    assert!(!ok);
    assert!(out.contains("-keep-conn") && out.contains("many"), "{out}");
}

#[test]
fn external_capacity_is_asked_with_get_values() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = Apache::start(&ApacheConf::new().root(dir.path()).log_level("info").extra(&format!(
        "FastCgiExternalServer @HTDOCS@/ext.fcgi -socket {}",
        sock.display()
    )));
    let mark = apache.log_mark();
    // The first request triggers the question; it is answered (libfcgi: 1) at once.
    let r = apache.get("/ext.fcgi?mode=env");
    assert_eq!(r.status, 200, "{}", brief(&r));
    let line = format!("FastCGI: {} answers FCGI_MAX_CONNS=1", sock.display());
    assert!(
        apache.wait_for_log_after(mark, &line, Duration::from_secs(5)),
        "{}",
        log_tail(&apache)
    );
    let seqs: Vec<u64> = keepalive_gets(&apache, "/ext.fcgi?mode=env", 20)
        .iter()
        .map(conn_seq)
        .collect();
    assert!(seqs.iter().max().copied().unwrap_or(0) >= 10, "{seqs:?}");
    assert_eq!(error_lines(&apache, mark), Vec::<String>::new());
}

/// Issue 11: three libfcgi processes share one socket and each answers
/// `FCGI_MAX_CONNS=1`; reuse starts with one kept connection and learns that more
/// processes are there (a request that found every kept connection in use was answered
/// at once on a fresh one), so that more than one connection is kept.
#[test]
fn more_connections_are_kept_when_an_external_application_has_processes_to_spare() {
    let dir = TestDir::new();
    let sock = dir.sock_dir().join("three.sock");
    let app = AppProcess::start(
        &dir,
        "three",
        AppSpec::new(probe_binary())
            .arg("--socket")
            .arg(&sock)
            .arg("--processes")
            .arg("3"),
    );
    app.wait_for_socket(&sock);
    let apache = Apache::start(
        &ApacheConf::new()
            .root(dir.path())
            .log_level("info")
            .extra(&format!(
                "FastCgiExternalServer @HTDOCS@/three.fcgi -socket {}\n{STATUS_LOCATION}",
                sock.display()
            ))
            .with_module("status"),
    );
    let mark = apache.log_mark();
    let r = apache.get("/three.fcgi?mode=env");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert!(
        apache.wait_for_log_after(
            mark,
            &format!("FastCGI: {} answers FCGI_MAX_CONNS=1", sock.display()),
            Duration::from_secs(5)
        ),
        "{}",
        log_tail(&apache)
    );
    let apache_ref = &apache;
    let status = || apache.get("/server-status?auto").text();
    // Three clients at once (started together), each on its own keep-alive
    // connection, round after round until two connections are kept. (A
    // loaded machine may make a fresh request wait past the 1 ms mark, which
    // proves nothing and takes one back; the pause between rounds outlasts
    // the cool-down after such a wait.) Without learning, one stays kept.
    let round = || {
        let start = std::sync::Barrier::new(3);
        let start = &start;
        thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(move || {
                    start.wait();
                    keepalive_gets(apache_ref, "/three.fcgi?mode=env", 100);
                });
            }
        })
    };
    let mut rounds = 0;
    let mut kept = 0;
    // (Two is enough to show the learning: without it one stays kept. Three
    // needs three httpd children at once, which prefork may not have started.)
    while rounds < 30 && kept < 2 {
        thread::sleep(Duration::from_millis(300));
        round();
        rounds += 1;
        kept = app0(&status(), "KeptConns");
    }
    let status = status();
    eprintln!(
        "[{}] kept {kept} after {rounds} round(s), reuses {} of {} requests, waits {}",
        mpm().name(),
        app0(&status, "KeptConnReuses"),
        app0(&status, "Requests"),
        app0(&status, "BacklogWaits"),
    );
    assert!(kept >= 2, "more than the announced one connection kept:\n{status}");
    assert_eq!(error_lines(&apache, mark), Vec::<String>::new());
}

#[test]
fn third_party_applications_on_kept_connections() {
    let dir = TestDir::new();
    let (_fpm, php_sock) = start_php_fpm(&dir);
    let (_flup, flup_sock) = start_flup_unix(&dir, "flup");
    let (_perl, perl_sock) = start_perl_unix(&dir, "perl");
    let cgi_bin = dir.mkdir("fcgi-bin");
    dir.write("htdocs/index.php", std::fs::read(app_file("index.php")).unwrap(), 0o644);
    // The classic php-fpm recipe (conf-examples/php-fpm.conf, paths adapted).
    let php = std::fs::read_to_string(manifest_dir().join("conf-examples/php-fpm.conf"))
        .unwrap()
        .replace("/usr/lib/cgi-bin", &cgi_bin.display().to_string())
        .replace("/run/php/php8.2-fpm.sock", &php_sock.display().to_string());
    let apache = Apache::start(
        &ApacheConf::new()
            .root(dir.path())
            .with_module("actions")
            .log_level("info")
            .extra(&format!(
                "{php}\n\
                 FastCgiExternalServer @HTDOCS@/flup -socket {}\n\
                 FastCgiExternalServer @HTDOCS@/perl.fcgi -socket {}",
                flup_sock.display(),
                perl_sock.display()
            )),
    );
    let mark = apache.log_mark();
    for round in 0..3 {
        let mut c = apache.conn();
        for i in 0..8u64 {
            let body = pattern(50_000 + i as usize * 1000, round * 100 + i);
            for path in ["/index.php", "/flup/echo", "/perl.fcgi"] {
                let req = build_request(
                    "POST",
                    path,
                    apache.port(),
                    &[
                        ("Connection", "keep-alive"),
                        ("Content-Type", "application/octet-stream"),
                    ],
                    Some(&body),
                );
                let r = c.roundtrip(&req);
                assert_eq!(r.status, 200, "{path}: {}\n{}", brief(&r), log_tail(&apache));
                match path {
                    "/index.php" => {
                        assert_eq!(r.env_var("BODY_MD5"), Some(md5_hex(&body)), "{}", r.text())
                    }
                    "/flup/echo" => assert!(r.body == body, "flup echo differs"),
                    _ => assert_eq!(r.env_var("BODY_BYTES"), Some(body.len().to_string()), "{}", r.text()),
                }
            }
        }
    }
    let log = apache.error_log_since(mark);
    for sock in [&php_sock, &flup_sock, &perl_sock] {
        assert!(
            log.contains(&format!("FastCGI: {} answers FCGI_MAX_CONNS=", sock.display()))
                || log.contains(&format!("FastCGI: {} did not answer FCGI_GET_VALUES", sock.display())),
            "no capacity line for {}:\n{log}",
            sock.display()
        );
    }
    eprintln!(
        "[{}] capacity lines:\n{}",
        mpm().name(),
        log.lines()
            .filter(|l| l.contains("FCGI_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(error_lines(&apache, mark), Vec::<String>::new());
}

/// More clients than application processes, in every httpd child: kept connections must
/// never leave a request waiting in the listen backlog behind an idle connection (the
/// mod_proxy_fcgi `enablereuse=on` hang). Idle kept connections are closed after 5 s by
/// themselves, so a request that took that long shows a stall.
#[test]
fn more_clients_than_processes_never_wait_behind_idle_connections() {
    let dir = TestDir::new();
    probe_at(&dir, "busy/probe.fcgi");
    let apache = start_in(
        &dir,
        "FastCgiServer @HTDOCS@/busy/probe.fcgi -processes 2 -init-start-delay 0",
    );
    let mark = apache.log_mark();
    let worst = Arc::new(Mutex::new(Duration::ZERO));
    let port = apache.port();
    for phase in 0..3 {
        // Park kept connections in some children, then come from new connections.
        let _ = keepalive_gets(&apache, "/busy/probe.fcgi?mode=env", 3);
        let threads: Vec<_> = (0..10)
            .map(|t| {
                let worst = worst.clone();
                thread::spawn(move || {
                    for i in 0..12 {
                        let path = if (t + i) % 3 == 0 {
                            "/busy/probe.fcgi?mode=sleep&ms=30"
                        } else {
                            "/busy/probe.fcgi?mode=env"
                        };
                        let start = Instant::now();
                        let r = get(port, path);
                        let took = start.elapsed();
                        assert_eq!(r.status, 200, "phase {phase} thread {t}: {}", brief(&r));
                        let mut w = worst.lock().unwrap();
                        *w = (*w).max(took);
                        if i % 4 == 3 {
                            thread::sleep(Duration::from_millis(50));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("client thread");
        }
        thread::sleep(Duration::from_millis(300));
    }
    let worst = *worst.lock().unwrap();
    eprintln!("[{}] slowest of 360 requests: {worst:?}", mpm().name());
    assert!(
        worst < Duration::from_secs(4),
        "a request waited {worst:?}: stuck behind an idle kept connection?\n{}",
        log_tail(&apache)
    );
    assert_eq!(error_lines(&apache, mark), Vec::<String>::new());
}

/// An application that closes every connection after one request, whatever
/// `FCGI_KEEP_CONN` says, and one whose requests leave input unread (libfcgi then drops
/// the kept connection): no request fails.
#[test]
fn applications_dropping_kept_connections_lose_no_request() {
    let dir = TestDir::new();
    let sock = dir.sock_dir().join("hostile.sock");
    let _hostile = AppProcess::start(
        &dir,
        "hostile",
        AppSpec::new("/usr/bin/python3").arg(app_file("hostile.py")).arg(&sock),
    );
    wait_until(Duration::from_secs(10), || sock.exists());
    probe_at(&dir, "drop/probe.fcgi");
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/h.fcgi -socket {} -keep-conn 1\n\
             FastCgiServer @HTDOCS@/drop/probe.fcgi -processes 1 -init-start-delay 0",
            sock.display()
        ),
    );
    let mark = apache.log_mark();
    let mut c = apache.conn();
    for i in 0..30 {
        let req = build_request(
            "GET",
            "/h.fcgi?mode=ok",
            apache.port(),
            &[("Connection", "keep-alive")],
            None,
        );
        let r = c.roundtrip(&req);
        assert_eq!(r.status, 200, "request {i}: {}\n{}", brief(&r), log_tail(&apache));
        assert_eq!(r.text(), "hello from hostile\n");
    }
    // The probe answers before reading a 300 kB body and does not drain it.
    let body = pattern(300_000, 4);
    for i in 0..10 {
        let r = apache.post(
            "/drop/probe.fcgi?mode=status&nodrain=1",
            &body,
            "application/octet-stream",
        );
        assert!(r.status > 0, "request {i}: {}", brief(&r));
        let r = apache.get("/drop/probe.fcgi?mode=env");
        assert_eq!(r.status, 200, "request {i}: {}\n{}", brief(&r), log_tail(&apache));
    }
    let errors = error_lines(&apache, mark);
    assert!(
        errors
            .iter()
            .all(|l| l.contains("/drop/probe.fcgi") && !l.contains("h.fcgi")),
        "{errors:#?}"
    );
}

/// Builds tests/apps/threaded_example.c into `dir`.
fn threaded_example(dir: &TestDir) -> std::path::PathBuf {
    let out = dir.join("threaded_example");
    let res = std::process::Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(manifest_dir().join("tests/apps/threaded_example.c"))
        .args(["-lfcgi", "-lpthread"])
        .output()
        .expect("run gcc");
    assert!(res.status.success(), "gcc: {}", String::from_utf8_lossy(&res.stderr));
    out
}

// Issue 11: a multi-threaded libfcgi application built like libfcgi's own threaded
// example does not read the next request on a kept connection until a new connection
// arrives (its accept mutex). Such a request is noticed after `STALL_AFTER` (1 s): keeping
// stops for the application with one warning, and the (safe) request is sent again on a
// fresh connection. Before, every such request waited for the idle timeout and failed.
#[test]
fn application_stalling_on_kept_connections_stops_reuse_and_loses_nothing() {
    let dir = TestDir::new();
    let prog = threaded_example(&dir);
    let sock = dir.sock_dir().join("thr.sock");
    let _app = AppProcess::start(&dir, "thr", AppSpec::new(&prog).listen_on_fd0(&sock));
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/thr.fcgi -socket {} -keep-conn 2 -idle-timeout 20",
            sock.display()
        ),
    );
    let mark = apache.log_mark();
    let mut c = apache.conn();
    let start = Instant::now();
    for i in 0..12 {
        let t = Instant::now();
        let req = build_request("GET", "/thr.fcgi", apache.port(), &[("Connection", "keep-alive")], None);
        let r = c.roundtrip(&req);
        assert_eq!(r.status, 200, "request {i}: {}\n{}", brief(&r), log_tail(&apache));
        assert_eq!(r.body, b"thread ok\n");
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "request {i} waited {:?} (the idle timeout is 20 s)",
            t.elapsed()
        );
    }
    assert!(start.elapsed() < Duration::from_secs(15), "{:?}", start.elapsed());
    let log = apache.error_log_since(mark);
    let warnings = log
        .lines()
        .filter(|l| l.contains("does not serve kept connections"))
        .count();
    assert_eq!(warnings, 1, "one warning:\n{log}");
    assert!(error_lines(&apache, mark).is_empty(), "{log}");
}
