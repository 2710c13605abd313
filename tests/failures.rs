//! Failure handling of the responder (reference 5.5, 5.9, 5.10, 5.11 and the legacy bugs of
//! section 8): for every failure, the HTTP status (or, once the response started, an
//! incomplete response and no appended error page), exactly one error-log line from the
//! module, and Apache still serving afterwards.  Also: client going away, memory bounds
//! for 200 MiB bodies, LimitRequestBody.
//!
//!   FCGI_TEST_MPM=event MOD_FASTCGI_SO=$PWD/mod_fastcgi.so cargo test --release --test failures

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `FastCgiExternalServer @HTDOCS@/<name> -socket <sock> <opts>`.
fn ext(name: &str, sock: &Path, opts: &str) -> String {
    format!(
        "FastCgiExternalServer \"@HTDOCS@/{name}\" -socket \"{}\" {opts}",
        sock.display()
    )
}

fn start(lines: &[String]) -> Apache {
    let mut conf = ApacheConf::new();
    for l in lines {
        conf = conf.extra(l);
    }
    Apache::start(&conf)
}

/// The application path as the module logs it.
fn app(apache: &Apache, name: &str) -> String {
    apache.htdocs().join(name).display().to_string()
}

/// Error-level lines written by the module.
fn module_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("FastCGI:") && l.contains(":error]"))
        .map(String::from)
        .collect()
}

/// Asserts exactly one log line (since `mark`) matches one of the alternatives (each a list
/// of substrings that must all be on the line), that it is the only module error line, and
/// that httpd did not complain about the handler's result (legacy AH00524).
fn expect_one(apache: &Apache, mark: usize, any_of: &[&[&str]]) -> String {
    let matches = |l: &str| any_of.iter().any(|parts| parts.iter().all(|p| l.contains(p)));
    wait_until(Duration::from_secs(5), || {
        apache.error_log_since(mark).lines().any(matches)
    });
    let log = apache.error_log_since(mark);
    let hits: Vec<&str> = log.lines().filter(|l| matches(l)).collect();
    assert_eq!(hits.len(), 1, "expected one line matching {any_of:?}, log:\n{log}");
    let errs = module_errors(&log);
    assert_eq!(errs.len(), 1, "expected one module error line, log:\n{log}");
    assert!(!log.contains("AH00524"), "handler returned an invalid code:\n{log}");
    hits[0].to_string()
}

/// A body must never carry an appended HTML error page (legacy bug 8.1).
fn assert_no_error_page(r: &Response) {
    let t = r.text();
    for bad in ["<title>", "Internal Server Error", "<!DOCTYPE", "Bad Gateway"] {
        assert!(!t.contains(bad), "error page appended to the body: {t:?}");
    }
}

fn assert_serving(apache: &Apache, path: &str) {
    let r = apache.get(path);
    assert_eq!(r.status, 200, "follow-up {path}: {r:?}\n{}", apache.error_log());
    assert!(r.complete, "follow-up {path}: {r:?}");
}

fn get_t(apache: &Apache, path: &str, secs: u64) -> Response {
    request_timeout(
        apache.port(),
        &build_request("GET", path, apache.port(), &[], None),
        Duration::from_secs(secs),
    )
}

/// The probe on a given socket path (e.g. to restart it after a crash mode killed it).
fn probe_at(dir: &TestDir, name: &str, sock: &Path) -> AppProcess {
    let _ = fs::remove_file(sock);
    let p = AppProcess::start(dir, name, AppSpec::new(probe_binary()).arg("--socket").arg(sock));
    p.wait_for_socket(sock);
    p
}

fn start_hostile(dir: &TestDir, name: &str) -> (AppProcess, PathBuf) {
    let sock = dir.sock_dir().join(format!("{name}.sock"));
    let p = AppProcess::start(
        dir,
        name,
        AppSpec::new("/usr/bin/python3").arg(app_file("hostile.py")).arg(&sock),
    );
    p.wait_for_socket(&sock);
    (p, sock)
}

/// A non-blocking AF_UNIX connect to `path`; Ok(fd) if queued, Err(errno) otherwise.
fn unix_connect_nb(path: &Path) -> Result<OwnedFd, i32> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain socket syscalls on a zeroed sockaddr_un we fill in bounds.
    unsafe {
        let fd = libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        assert!(fd >= 0, "socket()");
        let owned = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let b = path.as_os_str().as_bytes();
        assert!(b.len() < sa.sun_path.len());
        for (i, c) in b.iter().enumerate() {
            sa.sun_path[i] = *c as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + b.len() + 1;
        if libc::connect(
            owned.as_raw_fd(),
            &sa as *const libc::sockaddr_un as *const libc::sockaddr,
            len as libc::socklen_t,
        ) == 0
        {
            Ok(owned)
        } else {
            Err(*libc::__errno_location())
        }
    }
}

/// Sum of VmRSS (bytes) per Apache child.
fn rss_of(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples the RSS of every Apache child every 25 ms while `work` runs; returns the work's
/// result and the growth: sum over children of (max RSS - first RSS seen), plus the
/// largest growth of the sum of all children's RSS over its baseline.
fn measure_growth<T>(apache: &Apache, work: impl FnOnce() -> T) -> (T, u64, u64) {
    let pid = apache.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let sampler = thread::spawn(move || {
        let mut first: std::collections::HashMap<i32, u64> = Default::default();
        let mut max: std::collections::HashMap<i32, u64> = Default::default();
        let mut base_sum = None;
        let mut max_sum_growth = 0u64;
        loop {
            let mut sum = 0;
            for c in child_pids(pid) {
                if let Some(rss) = rss_of(c) {
                    first.entry(c).or_insert(rss);
                    let m = max.entry(c).or_insert(rss);
                    *m = (*m).max(rss);
                    sum += rss;
                }
            }
            let b = *base_sum.get_or_insert(sum);
            max_sum_growth = max_sum_growth.max(sum.saturating_sub(b));
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            thread::sleep(Duration::from_millis(25));
        }
        assert!(!max.is_empty(), "no Apache child was ever sampled");
        let per_pid: u64 = max.iter().map(|(p, m)| m.saturating_sub(first[p])).sum();
        (per_pid, max_sum_growth)
    });
    thread::sleep(Duration::from_millis(100));
    let out = work();
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let (per_pid, sum) = sampler.join().expect("sampler");
    (out, per_pid, sum)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
fn fnv_update(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Streams `reps` copies of `block` as a POST body (Content-Length or chunked) and reads the
/// (small) response.
fn stream_post(port: u16, path: &str, block: &[u8], reps: usize, chunked: bool) -> Response {
    let total = block.len() * reps;
    let headers: Vec<(&str, String)> = if chunked {
        vec![("Transfer-Encoding", "chunked".into())]
    } else {
        vec![("Content-Length", total.to_string())]
    };
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let head = build_request("POST", path, port, &h, None);
    let mut conn = Conn::open(port);
    conn.timeout = Duration::from_secs(120);
    let mut w = conn.stream.try_clone().expect("clone");
    let block = block.to_vec();
    let writer = thread::spawn(move || -> std::io::Result<()> {
        w.write_all(&head)?;
        let size_line = format!("{:x}\r\n", block.len());
        for _ in 0..reps {
            if chunked {
                w.write_all(size_line.as_bytes())?;
            }
            w.write_all(&block)?;
            if chunked {
                w.write_all(b"\r\n")?;
            }
        }
        if chunked {
            w.write_all(b"0\r\n\r\n")?;
        }
        w.flush()
    });
    let r = conn.read_response(false);
    let _ = writer.join();
    r
}

/// GETs `path`, discarding the body; returns (status, Content-Length, body bytes received).
fn get_discard(port: u16, path: &str) -> (u16, Option<u64>, u64) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&build_request("GET", path, port, &[], None)).expect("send");
    let mut buf = vec![0u8; 1 << 16];
    let mut head = Vec::new();
    let mut body = 0u64;
    let mut head_done = false;
    let (mut status, mut cl) = (0u16, None);
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if head_done {
            body += n as u64;
            continue;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head_done = true;
            body += (head.len() - i - 4) as u64;
            let text = String::from_utf8_lossy(&head[..i]).into_owned();
            status = text.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            cl = text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            });
        }
    }
    (status, cl, body)
}

// ---------------------------------------------------------------------------------------
// 1-4. Connecting
// ---------------------------------------------------------------------------------------

#[test]
fn connect_socket_missing_is_500_with_enoent() {
    let dir = TestDir::new();
    let (_good, good_sock) = start_probe_unix(&dir, "good");
    let missing = dir.sock_dir().join("nobody.sock");
    let apache = start(&[ext("app", &missing, ""), ext("good", &good_sock, "")]);
    let mark = apache.log_mark();
    let r = apache.get("/app?mode=env");
    assert_eq!(r.status, 500, "{r:?}");
    let want = format!(
        "FastCGI: failed to connect to server \"{}\": connect() failed",
        app(&apache, "app")
    );
    expect_one(&apache, mark, &[&["(2)No such file or directory", &want]]);
    assert_serving(&apache, "/good?mode=env");
}

#[test]
fn connect_refused_unix_and_tcp_is_500_with_econnrefused() {
    let dir = TestDir::new();
    let (_good, good_sock) = start_probe_unix(&dir, "good");
    // A socket file nobody listens on (reachable by www-data, so not EACCES).
    let dead = dir.sock_dir().join("dead.sock");
    drop(UnixListener::bind(&dead).expect("bind dead.sock"));
    chown_www(&dead);
    fs::set_permissions(&dead, fs::Permissions::from_mode(0o666)).unwrap();
    let port = free_port();
    let apache = start(&[
        ext("unix", &dead, ""),
        format!("FastCgiExternalServer \"@HTDOCS@/tcp\" -host 127.0.0.1:{port}"),
        ext("good", &good_sock, ""),
    ]);
    for name in ["unix", "tcp"] {
        let mark = apache.log_mark();
        let r = apache.get(&format!("/{name}?mode=env"));
        assert_eq!(r.status, 500, "{name}: {r:?}");
        let want = format!(
            "FastCGI: failed to connect to server \"{}\": connect() failed",
            app(&apache, name)
        );
        expect_one(&apache, mark, &[&["(111)Connection refused", &want]]);
    }
    assert_serving(&apache, "/good?mode=env");
}

#[test]
fn connect_permission_denied_is_500_with_eacces() {
    let dir = TestDir::new();
    let (_good, good_sock) = start_probe_unix(&dir, "good");
    let sock = dir.sock_dir().join("root-only.sock");
    let _listener = UnixListener::bind(&sock).expect("bind");
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o600)).unwrap();
    let apache = start(&[ext("app", &sock, ""), ext("good", &good_sock, "")]);
    let mark = apache.log_mark();
    let r = apache.get("/app?mode=env");
    assert_eq!(r.status, 500, "{r:?}");
    let want = format!(
        "FastCGI: failed to connect to server \"{}\": connect() failed",
        app(&apache, "app")
    );
    expect_one(&apache, mark, &[&["(13)Permission denied", &want]]);
    assert_serving(&apache, "/good?mode=env");
}

/// Legacy bug 8.4: a blocking connect to a full Unix backlog hung the worker forever.
#[test]
fn connect_to_full_backlog_fails_fast() {
    let dir = TestDir::new();
    let (_good, good_sock) = start_probe_unix(&dir, "good");
    let sock = dir.sock_dir().join("full.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    // SAFETY: listen(2) on our own listening socket: shrink the backlog to 0.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    chown_www(&sock);
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o666)).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match unix_connect_nb(&sock) {
            Ok(fd) => fillers.push(fd),
            Err(e) => {
                assert_eq!(e, libc::EAGAIN, "unexpected errno filling the backlog");
                break;
            }
        }
    }
    assert!(
        !fillers.is_empty() && unix_connect_nb(&sock).err() == Some(libc::EAGAIN),
        "backlog not full"
    );
    let apache = start(&[
        ext("timeout", &sock, "-appConnTimeout 1"),
        ext("default", &sock, "-idle-timeout 2"),
        ext("good", &good_sock, ""),
    ]);
    for (name, secs) in [("timeout", "1"), ("default", "2")] {
        let mark = apache.log_mark();
        let r = get_t(&apache, &format!("/{name}?mode=env"), 15);
        assert!(!r.timed_out, "{name}: request hung: {r:?}");
        assert_eq!(r.status, 500, "{name}: {r:?}");
        assert!(r.elapsed < Duration::from_secs(10), "{name}: {:?}", r.elapsed);
        let who = format!("FastCGI: failed to connect to server \"{}\"", app(&apache, name));
        let timed_out = format!("connect() timed out (appConnTimeout={secs}sec)");
        expect_one(
            &apache,
            mark,
            &[
                &[who.as_str(), timed_out.as_str()],
                &[who.as_str(), "(11)Resource temporarily unavailable", "connect() failed"],
            ],
        );
    }
    assert_serving(&apache, "/good?mode=env");
    drop(fillers);
}

// ---------------------------------------------------------------------------------------
// 5-6. Idle timeout
// ---------------------------------------------------------------------------------------

#[test]
fn idle_timeout_before_headers_is_500() {
    let dir = TestDir::new();
    let (_slow, sock) = start_probe_unix(&dir, "slow");
    let (_good, good_sock) = start_probe_unix(&dir, "good");
    let apache = start(&[ext("app", &sock, "-idle-timeout 1"), ext("good", &good_sock, "")]);
    let mark = apache.log_mark();
    let r = get_t(&apache, "/app?mode=sleep&ms=5000", 15);
    assert_eq!(r.status, 500, "{r:?}");
    assert!(
        r.elapsed >= Duration::from_millis(900) && r.elapsed < Duration::from_secs(4),
        "{:?}",
        r.elapsed
    );
    let want = format!(
        "FastCGI: comm with server \"{}\" aborted: idle timeout (1 sec)",
        app(&apache, "app")
    );
    expect_one(&apache, mark, &[&[&want]]);
    assert_serving(&apache, "/good?mode=env");
}

/// Legacy bug 8.1: an error after the body started appended a 500 page to the 200 body.
#[test]
fn idle_timeout_after_body_started_aborts_without_error_page() {
    let dir = TestDir::new();
    let (_slow, sock) = start_probe_unix(&dir, "slow");
    let (_good, good_sock) = start_probe_unix(&dir, "good");
    let apache = start(&[ext("app", &sock, "-idle-timeout 1"), ext("good", &good_sock, "")]);
    let mark = apache.log_mark();
    let r = get_t(&apache, "/app?mode=slow&delay_ms=3000&chunks=3", 15);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.complete, "response must be incomplete: {r:?}");
    assert!(!r.timed_out, "connection must be closed, not left hanging: {r:?}");
    assert_eq!(r.text(), "chunk 0\n", "{r:?}");
    assert_no_error_page(&r);
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    let want = format!(
        "FastCGI: comm with server \"{}\" aborted: idle timeout (1 sec)",
        app(&apache, "app")
    );
    expect_one(&apache, mark, &[&[&want]]);
    assert_serving(&apache, "/good?mode=env");
}

// ---------------------------------------------------------------------------------------
// 7-10. Application crashes, early EOF, bad headers
// ---------------------------------------------------------------------------------------

#[test]
fn app_crash_before_headers_is_500() {
    let dir = TestDir::new();
    let (probe, sock) = start_probe_unix(&dir, "app");
    let apache = start(&[ext("app", &sock, "")]);
    let a = app(&apache, "app");
    let incomplete = format!("FastCGI: incomplete headers (0 bytes) received from server \"{a}\"");
    let read_failed = format!("FastCGI: comm with server \"{a}\" aborted: read failed");
    let mut probe = probe;
    for how in ["exit", "abort"] {
        let mark = apache.log_mark();
        let r = apache.get(&format!("/app?mode=crash_before_headers&how={how}"));
        assert_eq!(r.status, 500, "{how}: {r:?}");
        expect_one(&apache, mark, &[&[&incomplete], &[&read_failed]]);
        assert!(wait_until(Duration::from_secs(5), || !probe.is_alive()));
        probe = probe_at(&dir, &format!("app-{how}"), &sock);
        assert_serving(&apache, "/app?mode=env");
    }
}

#[test]
fn app_crash_or_close_mid_body_aborts_without_error_page() {
    let dir = TestDir::new();
    let (probe, sock) = start_probe_unix(&dir, "app");
    let apache = start(&[ext("app", &sock, "")]);
    let a = app(&apache, "app");
    let truncated = format!(
        "FastCGI: comm with server \"{a}\" aborted: the application closed the connection before FCGI_END_REQUEST"
    );
    let read_failed = format!("FastCGI: comm with server \"{a}\" aborted: read failed");
    let expected = pattern(100 * 1024, 1);
    let mut probe = probe;
    // close_mid_body is legacy bug 8.2: a clean EOF mid-body passed for a complete 200.
    for mode in ["crash_mid_body", "close_mid_body"] {
        let mark = apache.log_mark();
        let r = get_t(&apache, &format!("/app?mode={mode}"), 15);
        assert_eq!(r.status, 200, "{mode}: {r:?}");
        assert!(!r.complete, "{mode}: response must be incomplete");
        assert!(!r.timed_out, "{mode}: connection left hanging");
        assert!(
            r.body.len() <= expected.len() && r.body[..] == expected[..r.body.len()],
            "{mode}: body is not a prefix of the app's output (len {})",
            r.body.len()
        );
        assert_no_error_page(&r);
        let line = expect_one(&apache, mark, &[&[&truncated], &[&read_failed]]);
        assert!(line.contains("response already started"), "{line}");
        assert!(wait_until(Duration::from_secs(5), || !probe.is_alive()));
        probe = probe_at(&dir, &format!("app-{mode}"), &sock);
        assert_serving(&apache, "/app?mode=env");
    }
}

#[test]
fn hostile_early_eof() {
    let dir = TestDir::new();
    let (_h, sock) = start_hostile(&dir, "hostile");
    let apache = start(&[ext("h", &sock, "")]);
    let a = app(&apache, "h");

    let mark = apache.log_mark();
    let r = get_t(&apache, "/h?mode=eof_mid_body", 15);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.complete && !r.timed_out, "{r:?}");
    assert!(
        r.body.iter().all(|&b| b == b'x') && r.body.len() <= 5000,
        "{:?}",
        r.text()
    );
    assert_no_error_page(&r);
    let want = format!(
        "FastCGI: comm with server \"{a}\" aborted: the application closed the connection before FCGI_END_REQUEST"
    );
    expect_one(&apache, mark, &[&[&want]]);

    let mark = apache.log_mark();
    let r = apache.get("/h?mode=eof_no_headers");
    assert_eq!(r.status, 500, "{r:?}");
    let want = format!("FastCGI: incomplete headers (0 bytes) received from server \"{a}\"");
    expect_one(&apache, mark, &[&[&want]]);

    assert_serving(&apache, "/h?mode=ok");
}

#[test]
fn malformed_or_missing_headers_are_500() {
    let dir = TestDir::new();
    let (_p, sock) = start_probe_unix(&dir, "app");
    let apache = start(&[ext("app", &sock, "")]);
    let a = app(&apache, "app");
    let noheaders_len = "just body bytes, no header terminator".len();
    let cases: Vec<(&str, String)> = vec![
        (
            "badheader",
            format!("FastCGI: comm with server \"{a}\" aborted: error parsing headers: malformed header"),
        ),
        (
            "noheaders",
            format!("FastCGI: incomplete headers ({noheaders_len} bytes) received from server \"{a}\""),
        ),
        (
            "empty",
            format!("FastCGI: incomplete headers (0 bytes) received from server \"{a}\""),
        ),
    ];
    for (mode, want) in &cases {
        let mark = apache.log_mark();
        let r = apache.get(&format!("/app?mode={mode}"));
        assert_eq!(r.status, 500, "{mode}: {r:?}");
        expect_one(&apache, mark, &[&[want]]);
    }
    assert_serving(&apache, "/app?mode=env");
}

/// Legacy bug 8.20: the header block was unbounded.  The limit is 64 KiB.
#[test]
fn header_block_limit_is_64k() {
    let dir = TestDir::new();
    let (probe, sock) = start_probe_unix(&dir, "app");
    let apache = start(&[ext("app", &sock, "")]);
    let r = apache.get("/app?mode=hugeheader&size=60000");
    assert_eq!(r.status, 200, "{r:?}\n{}", apache.error_log());
    assert_eq!(r.header("X-Huge").map(str::len), Some(60000));
    assert_eq!(r.text(), "huge header 60000\n");

    let mark = apache.log_mark();
    let r = apache.get("/app?mode=hugeheader&size=70000");
    assert_eq!(r.status, 502, "{r:?}");
    let want = format!(
        "FastCGI: comm with server \"{}\" aborted: error parsing headers: header block too large",
        app(&apache, "app")
    );
    expect_one(&apache, mark, &[&[&want]]);
    let _restarted;
    if !probe.is_alive() {
        _restarted = probe_at(&dir, "app2", &sock);
    }
    assert_serving(&apache, "/app?mode=env");
}

// ---------------------------------------------------------------------------------------
// 12. Record-level protocol (hostile.py)
// ---------------------------------------------------------------------------------------

#[test]
fn hostile_protocol_errors() {
    let dir = TestDir::new();
    let (_h, sock) = start_hostile(&dir, "hostile");
    let apache = start(&[ext("h", &sock, "")]);
    let comm = format!("FastCGI: comm with server \"{}\" aborted: ", app(&apache, "h"));
    let cases: &[(&str, u16, &str)] = &[
        (
            "bad_version",
            500,
            "protocol error: invalid version: 2 != FCGI_VERSION(1)",
        ),
        ("wrong_id", 500, "protocol error: unexpected request id"),
        ("overloaded", 503, "FCGI_OVERLOADED"), // any wording mentioning it
        (
            "unknown_role",
            500,
            "protocol error: invalid FCGI_END_REQUEST status: 3",
        ),
    ];
    for (mode, status, text) in cases {
        let mark = apache.log_mark();
        let r = apache.get(&format!("/h?mode={mode}"));
        assert_eq!(r.status, *status, "{mode}: {r:?}");
        assert_no_error_page_unless_status(&r);
        let want = if *mode == "overloaded" {
            vec![comm.clone(), text.to_string()]
        } else {
            vec![format!("{comm}{text}")]
        };
        let parts: Vec<&str> = want.iter().map(String::as_str).collect();
        expect_one(&apache, mark, &[&parts]);
    }

    // END_REQUEST of 7 bytes after "ok\n" was sent: the response had started, so it is
    // aborted (or, if nothing reached httpd yet, a 500).
    let mark = apache.log_mark();
    let r = get_t(&apache, "/h?mode=end_size", 15);
    assert!(
        r.status == 500 || (r.status == 200 && !r.complete && !r.timed_out),
        "end_size: {r:?}"
    );
    if r.status == 200 {
        assert_no_error_page(&r);
    }
    let want = format!("{comm}protocol error: invalid FCGI_END_REQUEST size: 7");
    expect_one(&apache, mark, &[&[&want]]);

    assert_serving(&apache, "/h?mode=ok");
}

/// Error statuses carry httpd's own page; nothing else to check there.
fn assert_no_error_page_unless_status(r: &Response) {
    if r.status == 200 {
        assert_no_error_page(r);
    }
}

#[test]
fn hostile_tolerated_oddities() {
    let dir = TestDir::new();
    let (_h, sock) = start_hostile(&dir, "hostile");
    let apache = start(&[ext("h", &sock, "")]);
    for (mode, body) in [
        ("ok", "hello from hostile\n"),
        ("unknown_type", "after unknown\n"),
        ("padding", "padded body\n"),
    ] {
        let mark = apache.log_mark();
        let r = apache.get(&format!("/h?mode={mode}"));
        assert_eq!(r.status, 200, "{mode}: {r:?}\n{}", apache.error_log_since(mark));
        assert!(r.complete, "{mode}: {r:?}");
        assert_eq!(r.text(), body, "{mode}");
        let log = apache.error_log_since(mark);
        assert!(module_errors(&log).is_empty(), "{mode}: {log}");
    }

    let mark = apache.log_mark();
    let r = apache.get("/h?mode=stderr_nul");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.complete);
    assert_eq!(r.text(), "ok\n");
    let want = format!(
        "FastCGI: server \"{}\" sent a null character in the stderr stream",
        app(&apache, "h")
    );
    assert!(apache.wait_for_log_after(mark, &want, Duration::from_secs(5)));
    let log = apache.error_log_since(mark);
    assert_eq!(log.matches(want.as_str()).count(), 1, "{log}");
    assert!(!log.contains("AH00524"), "{log}");
}

/// Legacy bug 8.3 / RQ-12: a parameter longer than 65535 bytes corrupted the PARAMS stream.
#[test]
fn hostile_params_records_are_split() {
    let dir = TestDir::new();
    let (_h, sock) = start_hostile(&dir, "hostile");
    let apache = start(&[ext("h", &sock, ""), "LimitRequestFieldSize 100000".into()]);

    let check = |r: &Response| -> Vec<usize> {
        assert_eq!(r.status, 200, "{r:?}\n{}", apache.error_log());
        assert!(r.complete);
        let text = r.text();
        let recs: Vec<usize> = text
            .lines()
            .find_map(|l| l.strip_prefix("records="))
            .expect("records= line")
            .split(',')
            .map(|n| n.parse().expect("record length"))
            .collect();
        assert!(recs.iter().all(|&n| n <= 65535), "{recs:?}");
        assert_eq!(recs.last(), Some(&0), "PARAMS stream must end with an empty record");
        assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("11"), "{text}");
        assert_eq!(r.env_var("REQUEST_METHOD").as_deref(), Some("3"), "{text}");
        assert!(r.env_var("SCRIPT_FILENAME").is_some() || r.env_var("SCRIPT_NAME").is_some());
        recs
    };
    let r = apache.get("/h?mode=params");
    check(&r);

    let big = "b".repeat(70000);
    let mark = apache.log_mark();
    let r = apache.get_with("/h?mode=params", &[("X-Big", &big)]);
    let recs = check(&r);
    assert_eq!(r.env_var("HTTP_X_BIG").as_deref(), Some("70000"), "{}", r.text());
    assert!(recs.len() >= 3, "a 70000-byte value needs two records: {recs:?}");
    assert!(recs.iter().sum::<usize>() > 70000, "{recs:?}");
    assert!(module_errors(&apache.error_log_since(mark)).is_empty());
}

// ---------------------------------------------------------------------------------------
// 13. Client going away
// ---------------------------------------------------------------------------------------

#[test]
fn client_gone_mid_response_is_not_an_error() {
    let dir = TestDir::new();
    let (probe, sock) = start_probe_unix(&dir, "app");
    let apache = start(&[ext("app", &sock, "")]);
    let mark = apache.log_mark();
    {
        let mut s = TcpStream::connect(("127.0.0.1", apache.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(&build_request(
            "GET",
            "/app?mode=big&size=50000000",
            apache.port(),
            &[],
            None,
        ))
        .unwrap();
        let mut got = 0;
        let mut buf = [0u8; 16384];
        while got < 100_000 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => panic!("response ended after {got} bytes"),
                Ok(n) => got += n,
            }
        }
    } // closed with unread data: RST
    assert!(
        wait_until(Duration::from_secs(15), || apache
            .access_log()
            .contains("size=50000000")),
        "request never finished:\n{}",
        apache.error_log_since(mark)
    );
    let info = "FastCGI: client stopped connection before send body completed";
    apache.wait_for_log_after(mark, info, Duration::from_secs(2));
    let log = apache.error_log_since(mark);
    assert!(module_errors(&log).is_empty(), "{log}");
    assert!(!log.contains("AH00524"), "{log}");
    assert!(log.matches(info).count() <= 1, "{log}");
    for l in log.lines().filter(|l| l.contains(info)) {
        assert!(l.contains(":info]"), "must be logged at info level: {l}");
    }
    if !log.contains(info) {
        eprintln!("note: no info line `{info}` logged:\n{log}");
    }
    assert!(probe.is_alive(), "probe died:\n{}", probe.log());
    assert_serving(&apache, "/app?mode=env");
    let r = apache.get("/app?mode=big&size=1000");
    assert_eq!((r.status, r.body.len()), (200, 1000));
}

// ---------------------------------------------------------------------------------------
// 14. Memory stays bounded with 200 MiB bodies
// ---------------------------------------------------------------------------------------

#[test]
fn memory_stays_bounded_for_200mib_bodies() {
    const MIB: usize = 1 << 20;
    const LIMIT: u64 = 64 * MIB as u64;
    let dir = TestDir::new();
    let (_p, sock) = start_probe_unix(&dir, "app");
    // The chunked body is spooled to a temporary file: give Apache a temp dir www-data can
    // write to whatever the host's /tmp permissions are.
    let tmp = dir.mkdir_www("tmp");
    // (The 200 MiB chunked body is over FastCgiSpoolLimit's 128 MiB default.)
    let mut conf = ApacheConf::new().extra(&format!("{}\nFastCgiSpoolLimit 256M", ext("app", &sock, "")));
    conf = conf.env("TMPDIR", &tmp.display().to_string());
    let apache = Apache::start(&conf);
    let port = apache.port();
    // Warm up every child a little.
    for _ in 0..4 {
        assert_serving(&apache, "/app?mode=env");
    }
    let block = pattern(MIB, 9);
    let reps = 200;
    let mut sum = FNV_OFFSET;
    for _ in 0..reps {
        sum = fnv_update(sum, &block);
    }
    let want = format!("len={} sum={sum:016x}\n", reps * MIB);

    for chunked in [false, true] {
        let t0 = Instant::now();
        let (r, per_pid, total) = measure_growth(&apache, || stream_post(port, "/app?mode=sum", &block, reps, chunked));
        eprintln!(
            "[{}] POST 200 MiB chunked={chunked}: {:?}, RSS growth per-pid {} KiB, sum {} KiB",
            mpm().name(),
            t0.elapsed(),
            per_pid / 1024,
            total / 1024
        );
        assert_eq!(r.status, 200, "chunked={chunked}: {r:?}\n{}", apache.error_log());
        assert_eq!(r.text(), want, "chunked={chunked}");
        assert!(
            per_pid < LIMIT && total < LIMIT,
            "chunked={chunked}: grew {per_pid}/{total}"
        );
    }

    let size = 200 * MIB;
    let t0 = Instant::now();
    let ((status, cl, got), per_pid, total) = measure_growth(&apache, || {
        get_discard(port, &format!("/app?mode=big&cl=1&size={size}"))
    });
    eprintln!(
        "[{}] GET 200 MiB: {:?}, RSS growth per-pid {} KiB, sum {} KiB",
        mpm().name(),
        t0.elapsed(),
        per_pid / 1024,
        total / 1024
    );
    assert_eq!(status, 200);
    assert_eq!(cl, Some(size as u64));
    assert_eq!(got, size as u64);
    assert!(per_pid < LIMIT && total < LIMIT, "GET: grew {per_pid}/{total}");
}

// ---------------------------------------------------------------------------------------
// 15. LimitRequestBody
// ---------------------------------------------------------------------------------------

#[test]
fn limit_request_body_is_413_without_module_error() {
    let dir = TestDir::new();
    let (_p, sock) = start_probe_unix(&dir, "app");
    let apache = start(&[ext("app", &sock, ""), "LimitRequestBody 1000".into()]);
    let mark = apache.log_mark();
    let r = apache.post("/app?mode=sum", &pattern(5000, 3), "application/octet-stream");
    assert_eq!(r.status, 413, "{r:?}");
    thread::sleep(Duration::from_millis(200));
    let log = apache.error_log_since(mark);
    assert!(module_errors(&log).is_empty(), "{log}");
    assert!(!log.contains("AH00524"), "{log}");
    let r = apache.post("/app?mode=sum", &pattern(500, 3), "application/octet-stream");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), format!("len=500 sum={}\n", checksum_hex(&pattern(500, 3))));
}
