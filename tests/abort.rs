//! FCGI_ABORT_REQUEST (issue 14, `exchange::abort_and_drain`): a client that leaves in the
//! middle of a response makes the module abort the request on a kept connection, drain it to
//! its END_REQUEST and reuse the connection; on a connection that is not kept, closing it is
//! the abort. tests/apps/abort_app.py is a raw-protocol application that logs each
//! FCGI_ABORT_REQUEST it receives.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

fn start_app(dir: &TestDir) -> (AppProcess, PathBuf, PathBuf) {
    let logs = dir.mkdir_www("applog");
    let log = logs.join("abort.log");
    let sock = dir.sock_dir().join("abort.sock");
    let app = AppProcess::start(
        dir,
        "abort_app",
        AppSpec::new("/usr/bin/python3")
            .arg(app_file("abort_app.py"))
            .arg(&sock)
            .arg(&log),
    );
    app.wait_for_socket(&sock);
    (app, sock, log)
}

/// A client that asks for a big response, reads 256 kB of it and goes away (closing with
/// unread data: a reset).
fn leave_mid_response(apache: &Apache, path: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", apache.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = 0;
    let mut buf = [0u8; 16384];
    while got < 256 * 1024 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => panic!("response ended after {got} bytes"),
            Ok(n) => got += n,
        }
    }
}

fn small(apache: &Apache) -> String {
    let r = apache.get("/app.fcgi?mode=small");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(apache));
    r.text()
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_client_leaving_aborts_the_request_and_the_kept_connection_is_reused() {
    let dir = TestDir::new();
    let (app, sock, log) = start_app(&dir);
    // -keep-conn 1: one kept connection (no FCGI_GET_VALUES question, which this raw
    // application does not answer), so every request below uses the same one.
    let apache = Apache::start(&one_child(
        ApacheConf::new().root(dir.path()).extra(&format!(
            "FastCgiExternalServer @HTDOCS@/app.fcgi -socket {} -keep-conn 1\n",
            sock.display()
        )),
        10,
    ));
    // (Connections are numbered by the application; the harness's readiness check was one.)
    let first = small(&apache);
    let conn = first.split_whitespace().next().unwrap().to_string();
    assert!(first.starts_with(&format!("{conn} seq=1 id=1")), "{first}");
    leave_mid_response(&apache, "/app.fcgi?mode=big");
    assert!(
        wait_until(Duration::from_secs(10), || read(&log)
            .contains(&format!("abort {conn} id=2"))),
        "the application got FCGI_ABORT_REQUEST for request 2 on the kept connection: {}\n{}",
        read(&log),
        log_tail(&apache)
    );
    // The drained connection carries the next request.
    let next = small(&apache);
    assert!(
        next.starts_with(&format!("{conn} seq=3 id=3")),
        "{next}\n{}",
        read(&log)
    );
    assert!(apache.wait_for_log(
        "FCGI_ABORT_REQUEST sent, the application ended the request: connection kept",
        Duration::from_secs(5)
    ));
    let lines = apache.error_log();
    let info: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains("client stopped connection"))
        .collect();
    assert_eq!(info.len(), 1, "{lines}");
    assert!(
        info[0].contains(":info]") && info[0].contains("app.fcgi"),
        "{}",
        info[0]
    );
    assert!(!read(&log).contains("closed"), "{}", read(&log));
    drop(app);
}

#[test]
fn without_a_kept_connection_closing_it_is_the_abort() {
    let dir = TestDir::new();
    let (app, sock, log) = start_app(&dir);
    let apache = Apache::start(&ApacheConf::new().root(dir.path()).extra(&format!(
        "FastCgiExternalServer @HTDOCS@/app.fcgi -socket {} -keep-conn 0\n",
        sock.display()
    )));
    leave_mid_response(&apache, "/app.fcgi?mode=big");
    assert!(
        wait_until(Duration::from_secs(10), || read(&log).contains("closed conn=")),
        "the application saw its connection closed mid-response: {}\n{}",
        read(&log),
        log_tail(&apache)
    );
    assert!(!read(&log).contains("abort"), "{}", read(&log));
    // The application did not go on streaming 64 MiB to nobody.
    let after: u64 = read(&log)
        .split("after=")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(after < 32 << 20, "stopped early: {after}");
    assert!(small(&apache).contains(" seq=1 id=1"));
    drop(app);
}
