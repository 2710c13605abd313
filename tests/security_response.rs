//! Issue 10, findings 5-7 and the nph gap: an application must not be able to frame,
//! desynchronise or replay what httpd sends to clients (tests/apps/framing.py, a
//! raw-protocol application; see docs/security/sec-response.md).
//!
//! The framing attacks use a pipelining client: two requests in one write on one client
//! connection. The second response must be the genuine one, never content the first
//! response's application injected.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const GENUINE: &str = "genuine response";

fn start_framing(dir: &TestDir) -> (AppProcess, PathBuf, PathBuf) {
    let sock = dir.sock_dir().join("framing.sock");
    let count = dir.write("count.txt", "", 0o666);
    let p = AppProcess::start(
        dir,
        "framing",
        AppSpec::new("/usr/bin/python3")
            .arg(app_file("framing.py"))
            .arg(&sock)
            .arg(&count),
    );
    p.wait_for_socket(&sock);
    (p, sock, count)
}

/// Apache with the framing app as the external servers `/f` and `/nph-f`.
fn start_apache(sock: &Path, opts: &str) -> Apache {
    let mut conf = ApacheConf::new();
    for name in ["f", "nph-f"] {
        conf = conf.extra(&format!(
            "FastCgiExternalServer \"@HTDOCS@/{name}\" -socket \"{}\" {opts}",
            sock.display()
        ));
    }
    Apache::start(&conf)
}

fn app(apache: &Apache, name: &str) -> String {
    apache.htdocs().join(name).display().to_string()
}

/// Sends GET `first` and GET `second` in one write on one connection; reads both
/// responses (the second has status 0 when the connection was closed instead).
fn pipelined(apache: &Apache, first: &str, second: &str) -> (Response, Response) {
    let mut c = apache.conn();
    c.timeout = Duration::from_secs(10);
    let ka = [("Connection", "keep-alive")];
    let mut raw = build_request("GET", first, apache.port(), &ka, None);
    raw.extend_from_slice(&build_request("GET", second, apache.port(), &ka, None));
    c.send(&raw).expect("send pipelined requests");
    let r1 = c.read_response(false);
    let r2 = c.read_response(false);
    (r1, r2)
}

/// The second pipelined response is either absent (connection closed after the first)
/// or the genuine one; never the injected one.
fn assert_second_is_genuine_or_absent(r2: &Response, what: &str) {
    assert!(
        !r2.text().contains("injected"),
        "{what}: injected response reached the client: {r2:?}"
    );
    assert!(
        r2.status == 0 || (r2.status == 200 && r2.text() == GENUINE),
        "{what}: second response: {r2:?}"
    );
}

/// Lines of the error log since `mark` containing `needle`, waiting up to 5 s for one.
fn log_lines(apache: &Apache, mark: usize, needle: &str) -> Vec<String> {
    apache.wait_for_log_after(mark, needle, Duration::from_secs(5));
    apache
        .error_log_since(mark)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Finding 5: response framing from the application
// ---------------------------------------------------------------------------------------

#[test]
fn application_transfer_encoding_cannot_end_the_response_early() {
    let dir = TestDir::new();
    let (_a, sock, _) = start_framing(&dir);
    let apache = start_apache(&sock, "");
    // Held and sent with a computed length, and streamed (chunked by httpd).
    for n in [0usize, 200_000] {
        let (r1, r2) = pipelined(&apache, &format!("/f?mode=te_chunked&n={n}"), "/f?mode=genuine");
        assert_eq!(r1.status, 200, "{r1:?}");
        assert!(r1.complete, "{r1:?}");
        // httpd framed the body itself: the imitation of chunk framing is plain data.
        let mut want =
            b"5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\ninjected"
                .to_vec();
        want.resize(want.len() + n, b'x');
        assert!(r1.body == want, "{n}: {} bytes: {}", r1.body.len(), r1.raw_head);
        assert!(r1.headers_all("Transfer-Encoding").len() <= 1, "{}", r1.raw_head);
        assert_eq!(r1.chunked, r1.header("Content-Length").is_none(), "{}", r1.raw_head);
        assert_eq!(r2.status, 200, "{n}: {r2:?}");
        assert_eq!(r2.text(), GENUINE);
    }
}

#[test]
fn body_beyond_content_length_never_reaches_the_next_response() {
    let dir = TestDir::new();
    let (_a, sock, _) = start_framing(&dir);
    let apache = start_apache(&sock, "");
    // Small (held and sent at once) and over 64 KiB (streamed).
    for n in [70_000usize, 300_000, 100] {
        let mark = apache.log_mark();
        let (r1, r2) = pipelined(&apache, &format!("/f?mode=cl_over&n={n}"), "/f?mode=genuine");
        assert_eq!(r1.status, 200, "{n}: {r1:?}");
        assert_eq!(r1.header("Content-Length"), Some(n.to_string().as_str()));
        assert!(
            r1.body.len() == n && r1.body.iter().all(|&b| b == b'a'),
            "{n}: {} bytes",
            r1.body.len()
        );
        assert_second_is_genuine_or_absent(&r2, &format!("overrun of {n}"));
        let lines = log_lines(&apache, mark, "response body longer than its Content-Length");
        assert_eq!(lines.len(), 1, "{n}: {lines:?}");
        assert!(lines[0].contains(&app(&apache, "f")), "{lines:?}");
    }
    assert_eq!(apache.get("/f?mode=genuine").text(), GENUINE);
}

#[test]
fn body_short_of_content_length_aborts_the_connection() {
    let dir = TestDir::new();
    let (_a, sock, _) = start_framing(&dir);
    let apache = start_apache(&sock, "");
    for (n, m) in [(100_000usize, 70_000usize), (100, 10)] {
        let mark = apache.log_mark();
        let (r1, r2) = pipelined(&apache, &format!("/f?mode=cl_short&n={n}&m={m}"), "/f?mode=genuine");
        // The client sees a short body and a closed connection at once (it would
        // otherwise wait, or read the next response as the rest of this body).
        assert_eq!(r1.status, 200, "{r1:?}");
        assert!(!r1.complete && !r1.timed_out, "{n}/{m}: {r1:?}");
        assert_eq!(r2.status, 0, "{r2:?}");
        let lines = log_lines(&apache, mark, "response body shorter than its Content-Length");
        assert_eq!(lines.len(), 1, "{n}/{m}: {lines:?}");
        assert!(lines[0].contains(&format!("({m} of {n} bytes)")), "{lines:?}");
    }
    // Nothing of the body sent yet: an error status instead.
    let mark = apache.log_mark();
    let r = apache.get("/f?mode=cl_short&n=100&m=0");
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(log_lines(&apache, mark, "shorter than its Content-Length").len(), 1);
}

// ---------------------------------------------------------------------------------------
// Finding 6: stale output on kept connections
// ---------------------------------------------------------------------------------------

#[test]
fn late_output_on_a_kept_connection_is_never_the_next_response() {
    let dir = TestDir::new();
    let (_a, sock, _) = start_framing(&dir);
    let apache = start_apache(&sock, "-keep-conn 2");
    let mut c = apache.conn();
    let ka = [("Connection", "keep-alive")];
    let get = |c: &mut Conn, path: &str| c.roundtrip(&build_request("GET", path, apache.port(), &ka, None));

    // Old request id: the application answers the next request on the kept connection
    // with a record for the previous one first.
    let r = get(&mut c, "/f?mode=stray_late");
    assert_eq!((r.status, r.text().as_str()), (200, "first"));
    let mark = apache.log_mark();
    let r = get(&mut c, "/f?mode=genuine");
    assert!(!r.text().contains("injected"), "late output became the response: {r:?}");
    assert_eq!(r.status, 500, "{r:?}");
    let lines = log_lines(&apache, mark, "protocol error: unexpected request id");
    assert_eq!(lines.len(), 1, "{lines:?}");

    // Next request id, sent while the connection is idle: it is dropped at reuse.
    let mut c = apache.conn();
    let r = get(&mut c, "/f?mode=stray_next");
    assert_eq!((r.status, r.text().as_str()), (200, "first"));
    std::thread::sleep(Duration::from_millis(600));
    let r = get(&mut c, "/f?mode=genuine");
    assert_eq!((r.status, r.text().as_str()), (200, GENUINE), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// Finding 7: replay of a request that already ran
// ---------------------------------------------------------------------------------------

#[test]
fn a_request_the_application_took_is_never_sent_twice() {
    let dir = TestDir::new();
    let (_a, sock, count) = start_framing(&dir);
    let apache = start_apache(&sock, "-keep-conn 2");
    let mut c = apache.conn();
    let ka = [("Connection", "keep-alive")];
    let r = c.roundtrip(&build_request("GET", "/f?mode=genuine", apache.port(), &ka, None));
    assert_eq!((r.status, r.text().as_str()), (200, GENUINE));
    // On the kept connection: the application runs the DELETE, then closes.
    let mark = apache.log_mark();
    let r = c.roundtrip(&build_request(
        "DELETE",
        "/f?mode=count_close",
        apache.port(),
        &ka,
        None,
    ));
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        fs::read_to_string(&count).unwrap().lines().count(),
        1,
        "the DELETE ran more than once"
    );
    let lines = log_lines(&apache, mark, "closed a kept connection without answering");
    assert_eq!(lines.len(), 1, "{lines:?}");
    // The next request works (on a new connection).
    let r = apache.get("/f?mode=genuine");
    assert_eq!((r.status, r.text().as_str()), (200, GENUINE));

    // A safe method is sent again on a fresh connection (it has no side effect to
    // repeat): the application ran it twice and the client got the answer.
    let mut c = apache.conn();
    let r = c.roundtrip(&build_request("GET", "/f?mode=genuine", apache.port(), &ka, None));
    assert_eq!((r.status, r.text().as_str()), (200, GENUINE));
    let r = c.roundtrip(&build_request("GET", "/f?mode=count_close", apache.port(), &ka, None));
    assert_eq!((r.status, r.text().as_str()), (200, "counted"), "{r:?}");
    assert_eq!(fs::read_to_string(&count).unwrap().lines().count(), 3);
}

// ---------------------------------------------------------------------------------------
// nph output that is not HTTP
// ---------------------------------------------------------------------------------------

#[test]
fn nph_output_must_be_an_http_response() {
    let dir = TestDir::new();
    let (_a, sock, _) = start_framing(&dir);
    let apache = start_apache(&sock, "");
    let mark = apache.log_mark();
    let r = apache.get("/nph-f?mode=nph_bad");
    assert_eq!(r.status, 502, "{r:?}");
    assert!(!r.text().contains("not http"), "{r:?}");
    let want = format!(
        "FastCGI: comm with server \"{}\" aborted: nph output is not an HTTP response",
        app(&apache, "nph-f")
    );
    assert_eq!(log_lines(&apache, mark, &want).len(), 1);

    // Valid nph output passes through untouched (no header added by httpd).
    let r = apache.get("/nph-f?mode=nph_good");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.raw_head.trim_end(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Nph: raw\r\nContent-Length: 9",
        "{r:?}"
    );
    assert_eq!(r.text(), "nph body\n");
}
