//! Go's net/http/fcgi (Debian's golang-go) as a real application (issues 13 and 14): a GET, a
//! 1 MiB POST byte-exact, an application error and a process that exits mid-request,
//! connection reuse; Go answers `FCGI_MPXS_CONNS=1`, so under a threaded MPM requests share
//! connections (multiplexing) — 16 slow requests in flight over a few connections; and a
//! client leaving a streamed response makes the module send `FCGI_ABORT_REQUEST`, which Go
//! answers at once, the connection staying usable. The application is tests/apps/go_app.go,
//! built once into target/apps.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

/// Builds tests/apps/go_app.go into target/apps/go_app (again only when the source is newer).
fn go_app() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap();
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let src = manifest_dir().join("tests/apps/go_app.go");
    let dir = manifest_dir().join("target/apps");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("go_app");
    let fresh = |o: &PathBuf| {
        let m = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((m(o), m(&src)), (Some(a), Some(b)) if a >= b)
    };
    if !fresh(&out) {
        let tmp = dir.join(format!("go_app.tmp.{}", std::process::id()));
        let cache = manifest_dir().join("target/go-cache");
        let st = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&tmp)
            .arg(&src)
            .env("GOCACHE", &cache)
            .env("GOPATH", cache.join("gopath"))
            .env("HOME", &cache)
            .env("GO111MODULE", "off")
            .status()
            .expect("run go (scripts/deps.sh test installs golang-go)");
        assert!(st.success(), "go build {}", src.display());
        std::fs::rename(&tmp, &out).unwrap();
    }
    www_accessible(&out);
    *built = Some(out.clone());
    out
}

fn start_go(dir: &TestDir, name: &str) -> (AppProcess, PathBuf) {
    let sock = dir.sock_dir().join(format!("{name}.sock"));
    let app = AppProcess::start(dir, name, AppSpec::new(go_app()).arg(&sock));
    app.wait_for_socket(&sock);
    (app, sock)
}

fn conns(r: &Response) -> u64 {
    r.header("X-Conns")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}", brief(r)))
}

fn start(dir: &TestDir, sock: &std::path::Path) -> Apache {
    let apache = Apache::start(&one_child(
        ApacheConf::new().root(dir.path()).extra(&format!(
            "FastCgiExternalServer @HTDOCS@/go -socket {}\n",
            sock.display()
        )),
        20,
    ));
    // The first request asks the capacity question in the background.
    let r = apache.get("/go?mode=env");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert!(
        apache.wait_for_log("answers FCGI_MPXS_CONNS=1", Duration::from_secs(5)),
        "{}",
        log_tail(&apache)
    );
    apache
}

#[test]
fn go_get_post_errors_and_reuse() {
    let dir = TestDir::new();
    let (go, sock) = start_go(&dir, "go");
    let apache = start(&dir, &sock);
    let r = apache.get("/go/extra/path?mode=env&x=1");
    assert_eq!(r.status, 200, "{}", brief(&r));
    let text = r.text();
    for line in [
        "METHOD=GET",
        "PROTO=HTTP/1.1",
        "QUERY=mode=env&x=1",
        "PATH=/go/extra/path",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
    }
    // 1 MiB both ways, byte-exact.
    let body = pattern(1 << 20, 77);
    let r = apache.post("/go?mode=echo", &body, "application/octet-stream");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(r.header("X-Body-Length"), Some("1048576"));
    assert!(r.body == body, "the echo differs");
    // Reuse: twenty sequential requests add at most one connection (a kept one, or the
    // multiplexed one) to what the application accepted before.
    let before = conns(&apache.get("/go?mode=env"));
    let mut last = before;
    for _ in 0..20 {
        last = conns(&apache.get("/go?mode=env"));
    }
    assert!(last <= before + 1, "20 requests opened {} connections", last - before);
    // An error the application reports itself passes through.
    let r = apache.get("/go?mode=error");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("the application failed"));
    // The process exits mid-request: 500 and one line naming the server.
    let mark = apache.log_mark();
    let r = apache.get("/go?mode=exit");
    assert_eq!(r.status, 500, "{}", brief(&r));
    assert!(apache.wait_for_log_after(mark, "/go", Duration::from_secs(5)));
    let lines: Vec<String> = apache
        .error_log_since(mark)
        .lines()
        .filter(|l| l.contains("[fastcgi:error]"))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    drop(go);
    // Back again: served.
    let (_go2, _) = start_go(&dir, "go");
    let r = poll_ok(apache.port(), "/go?mode=env", Duration::from_secs(10)).unwrap_or_else(|r| panic!("{}", brief(&r)));
    assert_eq!(r.status, 200);
}

#[test]
fn go_multiplexes_concurrent_requests_over_few_connections() {
    let dir = TestDir::new();
    let (_go, sock) = start_go(&dir, "go");
    let apache = start(&dir, &sock);
    let before = conns(&apache.get("/go?mode=env"));
    let port = apache.port();
    // (Prefork's single child here serves them one after the other: fewer.)
    let n = if mpm() == Mpm::Prefork { 3 } else { 16 };
    let handles: Vec<_> = (0..n)
        .map(|_| thread::spawn(move || get_tt(port, "/go?mode=sleep&ms=1500", Duration::from_secs(30))))
        .collect();
    let rs: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &rs {
        assert_eq!(r.status, 200, "{}", brief(r));
    }
    let opened = rs.iter().map(conns).max().unwrap() - before;
    let most: u64 = rs
        .iter()
        .map(|r| r.header("X-Inflight").unwrap().parse::<u64>().unwrap())
        .max()
        .unwrap();
    eprintln!("go: {n} concurrent requests, {opened} new connection(s), up to {most} in flight");
    if mpm() == Mpm::Prefork {
        // One request per child at a time: nothing shared, nothing lost.
        return;
    }
    assert!(most >= 8, "requests ran concurrently: {most}");
    assert!(opened <= 4, "16 requests in flight over {opened} new connection(s)");
}

#[test]
fn go_answers_the_abort_of_a_client_that_left() {
    let dir = TestDir::new();
    let (go, sock) = start_go(&dir, "go");
    let apache = start(&dir, &sock);
    // Once kept or multiplexed, the connection is the one the stream goes on.
    assert_eq!(apache.get("/go?mode=env").status, 200);
    let mut s = TcpStream::connect(("127.0.0.1", apache.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /go?mode=stream HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = 0;
    let mut buf = [0u8; 16384];
    while got < 512 * 1024 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => panic!("the stream ended after {got} bytes"),
            Ok(n) => got += n,
        }
    }
    drop(s);
    // A kept connection (prefork): the abort goes out and the connection is drained, but
    // Go's handler goes on writing (its END_REQUEST comes after megabytes of output, or
    // output follows it), so the connection is closed rather than reused; a multiplexed
    // one drops the rest of the request's output in its reader.
    let expected = if mpm() == Mpm::Prefork {
        "FCGI_ABORT_REQUEST sent, the application"
    } else {
        "FCGI_ABORT_REQUEST sent on the multiplexed connection"
    };
    assert!(
        apache.wait_for_log(expected, Duration::from_secs(10)),
        "{}",
        log_tail(&apache)
    );
    // Go goes on writing for the aborted request; later requests are not disturbed.
    for _ in 0..10 {
        let r = apache.get("/go?mode=env");
        assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    }
    assert!(go.is_alive());
}

/// Started by the process manager (`FastCgiServer`, the socket on fd 0), Go serves as well:
/// two processes, a GET, a 1 MiB POST byte-exact, and a killed process replaced.
#[test]
fn go_as_a_static_application() {
    let dir = TestDir::new();
    let app = dir.join("htdocs/go.fcgi");
    std::fs::create_dir_all(app.parent().unwrap()).unwrap();
    std::fs::copy(go_app(), &app).unwrap();
    www_accessible(&app);
    let apache = Apache::start(
        &ApacheConf::new()
            .root(dir.path())
            .extra("FastCgiIpcDir @ROOT@/ipc\nFastCgiServer @HTDOCS@/go.fcgi -processes 2 -restart-delay 1\n"),
    );
    let r = poll_ok(apache.port(), "/go.fcgi?mode=env", Duration::from_secs(20))
        .unwrap_or_else(|r| panic!("{}", brief(&r)));
    assert!(r.text().contains("METHOD=GET"), "{}", r.text());
    let body = pattern(1 << 20, 5);
    let r = apache.post("/go.fcgi?mode=echo", &body, "application/octet-stream");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert!(r.body == body, "the echo differs");
    let mark = apache.log_mark();
    let r = apache.get("/go.fcgi?mode=exit");
    assert_eq!(r.status, 500);
    assert!(
        apache.wait_for_log_after(mark, "go.fcgi\" (pid", Duration::from_secs(10)),
        "{}",
        log_tail(&apache)
    );
    let r = poll_ok(apache.port(), "/go.fcgi?mode=env", Duration::from_secs(20))
        .unwrap_or_else(|r| panic!("{}", brief(&r)));
    assert_eq!(r.status, 200);
}
