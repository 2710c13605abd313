//! Multiplexed connections (issue 14, src/gateway/mux.rs) against a raw-protocol application
//! that announces `FCGI_MPXS_CONNS=1` and runs every request of a connection in a thread of its
//! own (tests/apps/mux_app.py): concurrent slow requests share few connections with several
//! requests in flight on one, uploads stay byte-exact, `-multiplex off` gives every request a
//! connection of its own, an application that dies fails exactly the requests it held, and
//! prefork (one thread per child: nothing to share) loses nothing.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

fn start_app(dir: &TestDir, max_reqs: u32) -> (AppProcess, PathBuf) {
    let sock = dir.sock_dir().join("mux.sock");
    let app = AppProcess::start(
        dir,
        "mux_app",
        AppSpec::new("/usr/bin/python3")
            .arg(app_file("mux_app.py"))
            .arg(&sock)
            .arg(max_reqs.to_string()),
    );
    app.wait_for_socket(&sock);
    (app, sock)
}

/// (connection, request id, requests in flight on that connection when it started).
fn parse(r: &Response) -> (u32, u32, u32) {
    let text = r.text();
    let line = text.lines().next().unwrap_or("");
    let field = |k: &str| -> u32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line:?}: {}", brief(r)))
    };
    (field("conn="), field("id="), field("inflight="))
}

fn start(dir: &TestDir, sock: &std::path::Path, opts: &str) -> Apache {
    let apache = Apache::start(&ApacheConf::new().root(dir.path()).extra(&format!(
        "FastCgiExternalServer @HTDOCS@/app.fcgi -socket {} {opts}\n",
        sock.display()
    )));
    // The capacity question is asked by the first request, in the background.
    let r = apache.get("/app.fcgi");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    if !opts.contains("-multiplex off") {
        assert!(
            apache.wait_for_log("answers FCGI_MPXS_CONNS=1", Duration::from_secs(5)),
            "{}",
            log_tail(&apache)
        );
    }
    apache
}

/// 16 concurrent requests of 1.5 s each.
fn sixteen_slow(apache: &Apache) -> Vec<(u32, u32, u32)> {
    let port = apache.port();
    let handles: Vec<_> = (0..16)
        .map(|_| thread::spawn(move || get_tt(port, "/app.fcgi?ms=1500", Duration::from_secs(30))))
        .collect();
    handles
        .into_iter()
        .map(|h| {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(apache));
            parse(&r)
        })
        .collect()
}

#[test]
fn concurrent_slow_requests_share_few_connections() {
    let dir = TestDir::new();
    let (_app, sock) = start_app(&dir, 8);
    let apache = start(&dir, &sock, "");
    let got = sixteen_slow(&apache);
    let conns: BTreeSet<u32> = got.iter().map(|g| g.0).collect();
    let most = got.iter().map(|g| g.2).max().unwrap();
    eprintln!(
        "16 requests over {} connection(s), at most {most} in flight on one",
        conns.len()
    );
    if mpm() == Mpm::Prefork {
        // One thread per child: nothing to share, nothing lost.
        assert!(got.iter().all(|g| g.2 == 1), "{got:?}");
        return;
    }
    // Threaded MPMs: at most FCGI_MAX_REQS (8) per connection, far fewer connections than
    // requests, several in flight on one.
    assert!(conns.len() <= 8, "{} connections for 16 requests", conns.len());
    assert!((2..=8).contains(&most), "in flight on one connection: {most}");
    let mut pairs: Vec<(u32, u32)> = got.iter().map(|g| (g.0, g.1)).collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), 16, "request ids are distinct per connection: {got:?}");
}

#[test]
fn uploads_on_multiplexed_connections_are_byte_exact() {
    let dir = TestDir::new();
    let (_app, sock) = start_app(&dir, 8);
    let apache = start(&dir, &sock, "");
    let port = apache.port();
    let handles: Vec<_> = (0..6u64)
        .map(|i| {
            thread::spawn(move || {
                let body = pattern((1 << 20) + i as usize * 4099, 900 + i);
                let r = post(port, "/app.fcgi?echo=1&ms=200", &body, "application/octet-stream");
                (body, r)
            })
        })
        .collect();
    for h in handles {
        let (body, r) = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", brief(&r));
        let text_end = r.body.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert!(r.body[text_end..] == body[..], "echo of {} bytes differs", body.len());
    }
}

#[test]
fn multiplex_off_gives_each_request_its_own_connection() {
    let dir = TestDir::new();
    let (_app, sock) = start_app(&dir, 8);
    let apache = start(&dir, &sock, "-multiplex off");
    let got = sixteen_slow(&apache);
    assert!(
        got.iter().all(|g| g.2 == 1),
        "one request per connection at a time: {got:?}"
    );
}

#[test]
fn an_application_that_dies_fails_exactly_the_requests_it_held() {
    let dir = TestDir::new();
    let (app, sock) = start_app(&dir, 8);
    let apache = start(&dir, &sock, "-idle-timeout 10");
    let port = apache.port();
    let handles: Vec<_> = (0..6)
        .map(|_| thread::spawn(move || get_tt(port, "/app.fcgi?ms=3000", Duration::from_secs(30))))
        .collect();
    thread::sleep(Duration::from_millis(800));
    kill9(app.pid());
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap().status).collect();
    assert!(
        statuses.iter().all(|&s| s == 500),
        "every request it held failed: {statuses:?}"
    );
    // Back: a new connection, requests succeed.
    let (_app2, _) = start_app(&dir, 8);
    let r = poll_ok(port, "/app.fcgi", Duration::from_secs(10)).unwrap_or_else(|r| panic!("{}", brief(&r)));
    assert_eq!(r.status, 200);
    let log = apache.error_log();
    assert!(
        log.matches("app.fcgi").count() >= 6,
        "one line per failed request:\n{log}"
    );
}
