//! Proves the integration-test harness (tests/common) and the fixture applications
//! against Apache's own mod_proxy_fcgi, independently of our module.
//!
//! Run under each MPM:
//!   FCGI_TEST_MPM=prefork cargo test --test harness_selftest
//!   FCGI_TEST_MPM=worker  cargo test --test harness_selftest
//!   FCGI_TEST_MPM=event   cargo test --test harness_selftest

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Apache with mod_proxy_fcgi (and not our module), plus `extra`.
fn proxy_apache(extra: &str) -> Apache {
    Apache::start(&ApacheConf::new().without_our_module().with_proxy_fcgi().extra(extra))
}

fn proxy_to_unix(prefix: &str, sock: &std::path::Path) -> String {
    format!("ProxyPass \"{prefix}\" \"unix:{}|fcgi://localhost/\"", sock.display())
}

#[test]
fn pattern_and_checksum_are_stable() {
    assert_eq!(checksum_hex(b"hello"), "a430d84680aabd0b");
    assert_eq!(checksum_hex(b""), "cbf29ce484222325");
    let p = pattern(20, 1);
    assert_eq!(p.len(), 20);
    assert_eq!(&pattern(1000, 7)[..13], &pattern(13, 7)[..]);
    assert_ne!(pattern(64, 1), pattern(64, 2));
}

#[test]
fn apache_starts_under_chosen_mpm_and_serves_static_files() {
    let t0 = Instant::now();
    let mut apache = Apache::start(&ApacheConf::new().without_our_module());
    let started = t0.elapsed();
    std::fs::write(apache.htdocs().join("hello.txt"), "static hello\n").unwrap();
    std::fs::write(apache.htdocs().join("index.html"), "<p>index</p>\n").unwrap();

    let r = apache.get("/hello.txt");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.complete);
    assert_eq!(r.text(), "static hello\n");
    assert_eq!(r.header("content-type"), Some("text/plain"));

    let h = apache.head("/hello.txt");
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty() && h.complete);
    assert_eq!(h.header("Content-Length"), Some("13"));

    assert_eq!(apache.get("/").text(), "<p>index</p>\n");
    assert_eq!(apache.get("/missing").status, 404);

    let tag = format!("[mpm_{}:notice]", mpm().name());
    assert!(
        apache.wait_for_log(&tag, Duration::from_secs(5)),
        "{}",
        apache.error_log()
    );
    // (httpd writes the line after the response: a loaded machine may
    // deschedule the child between the two.)
    assert!(
        wait_until(Duration::from_secs(5), || apache
            .access_log()
            .contains("GET /hello.txt HTTP/1.1\" 200 13")),
        "{}",
        apache.access_log()
    );

    // Keep-alive + pipelining on one connection.
    let mut c = apache.conn();
    let one = build_request(
        "GET",
        "/hello.txt",
        apache.port(),
        &[("Connection", "keep-alive")],
        None,
    );
    let mut two = one.clone();
    two.extend_from_slice(&build_request("GET", "/index.html", apache.port(), &[], None));
    let a = c.roundtrip(&two);
    let b = c.read_response(false);
    assert_eq!((a.status, a.text().as_str()), (200, "static hello\n"));
    assert_eq!((b.status, b.text().as_str()), (200, "<p>index</p>\n"));
    assert!(c.is_closed_by_peer(Duration::from_secs(5)));

    let stopped = apache.stop();
    assert!(!apache.alive());
    eprintln!(
        "timing [{}]: start {:?} (port up after {:?}), stop {:?}",
        mpm().name(),
        started,
        apache.startup_time(),
        stopped
    );
}

#[test]
fn config_test_reports_syntax() {
    let (ok, out) = Apache::config_test(&ApacheConf::new().without_our_module());
    assert!(ok, "{out}");
    let (ok, out) = Apache::config_test(&ApacheConf::new().without_our_module().extra("NoSuchDirective on"));
    assert!(!ok);
    assert!(out.contains("NoSuchDirective"), "{out}");
}

#[test]
fn probe_over_unix_socket_env_and_byte_exact_echo() {
    let dir = TestDir::new();
    let (probe, sock) = start_probe_unix(&dir, "probe");
    let apache = proxy_apache(&proxy_to_unix("/p/", &sock));

    let r = apache.get("/p/info?mode=env&x=1");
    assert_eq!(r.status, 200, "{r:?}\n{}", apache.error_log());
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("mode=env&x=1"));
    assert_eq!(r.env_var("REQUEST_METHOD").as_deref(), Some("GET"));
    assert_eq!(r.env_var("STDIN_BYTES").as_deref(), Some("0"));
    assert_eq!(r.header("X-Probe-Pid"), Some(probe.pid().to_string().as_str()));
    let names = r.env_names();
    assert!(names.contains(&"SERVER_PORT".to_string()), "{names:?}");
    // The default mode is env too.
    assert!(apache.get("/p/").env_var("REQUEST_URI").is_some());

    for (len, seed) in [(0usize, 1u64), (65537, 2), (1 << 20, 3)] {
        let body = pattern(len, seed);
        let r = apache.post("/p/echo?mode=echo", &body, "application/octet-stream");
        assert_eq!(r.status, 200, "len {len}: {r:?}");
        assert!(r.complete, "len {len}");
        assert_eq!(r.header("X-Body-Length"), Some(len.to_string().as_str()));
        assert_eq!(r.header("X-Body-Sum"), Some(checksum_hex(&body).as_str()));
        assert_eq!(r.body.len(), len);
        assert!(r.body == body, "echo of {len} bytes differs");
    }

    // mode=sum for a larger upload.
    let body = pattern(5 << 20, 9);
    let r = apache.post("/p/?mode=sum", &body, "application/octet-stream");
    assert_eq!(r.text(), format!("len={} sum={}\n", body.len(), checksum_hex(&body)));

    // Other probe modes that mod_proxy_fcgi passes through unchanged.
    let r = apache.get("/p/?mode=status&code=418&reason=I%27m+a+teapot");
    assert_eq!((r.status, r.reason.as_str()), (418, "I'm a teapot"));
    let r = apache.get("/p/?mode=cookies");
    assert_eq!(r.headers_all("set-cookie"), vec!["a=1; Path=/", "b=2; Path=/"]);
    // (mod_proxy_fcgi leaves the status at 200; mod_cgi-style handling would make it 302.)
    let r = apache.get("/p/?mode=redirect_external&to=http://127.0.0.1:1/there");
    assert_eq!(r.header("Location"), Some("http://127.0.0.1:1/there"));
    let r = apache.get("/p/?mode=hugeheader&size=4000");
    assert_eq!(r.header("X-Huge").map(str::len), Some(4000));
    let mark = apache.log_mark();
    let r = apache.get("/p/?mode=stderr&lines=3");
    assert_eq!(r.status, 200);
    assert!(
        apache.wait_for_log_after(mark, "probe stderr line 3", Duration::from_secs(5)),
        "{}",
        apache.error_log()
    );
    drop(probe);
}

#[test]
fn probe_over_tcp_and_fd0_listener() {
    let dir = TestDir::new();
    let (_tcp, port) = start_probe_tcp(&dir, "probe-tcp");
    let sock = dir.sock_dir().join("fd0.sock");
    let fd0 = AppProcess::start(&dir, "probe-fd0", AppSpec::new(probe_binary()).listen_on_fd0(&sock));
    fd0.wait_for_socket(&sock);
    let apache = proxy_apache(&format!(
        "ProxyPass /t/ fcgi://127.0.0.1:{port}/\n{}",
        proxy_to_unix("/z/", &sock)
    ));
    let r = apache.get("/t/?mode=env");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.env_var("QUERY_STRING").is_some());
    let r = apache.get("/z/?mode=echo&x");
    assert_eq!(r.status, 200, "{r:?}\n{}", fd0.log());
    assert_eq!(r.header("X-Probe-Pid"), Some(fd0.pid().to_string().as_str()));
}

#[test]
fn chunked_responses_streaming_and_truncation() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    // flushpackets=on: mod_proxy_fcgi otherwise buffers the slow mode's output.  (It needs a
    // worker of its own: a second ProxyPass to the same URL shares the first one's settings.)
    let apache = proxy_apache(&format!(
        "{}\nProxyPass /flush/ \"unix:{}|fcgi://flushworker/\" flushpackets=on",
        proxy_to_unix("/p/", &sock),
        sock.display()
    ));
    let ka = [("Connection", "keep-alive")];

    // No Content-Length from the app + a keep-alive client: Apache chunks the response.
    let r = apache.get_with("/p/?mode=big&size=300001&seed=5", &ka);
    assert_eq!(r.status, 200);
    assert!(r.chunked && r.complete, "{}", r.raw_head);
    assert!(r.body == pattern(300_001, 5));
    assert_eq!(
        r.header("X-Body-Sum"),
        Some(checksum_hex(&pattern(300_001, 5)).as_str())
    );

    // httpd 2.4.71 chunks even for `Connection: close`; an HTTP/1.0 client gets an
    // EOF-delimited body instead.
    let r = apache.get("/p/?mode=big&size=300001&seed=5");
    assert!(r.chunked && r.complete, "{}", r.raw_head);
    let raw = b"GET /p/?mode=big&size=300001&seed=5 HTTP/1.0\r\nHost: x\r\n\r\n";
    let r = apache.request(raw);
    assert!(
        !r.chunked && r.complete && r.header("Content-Length").is_none(),
        "{}",
        r.raw_head
    );
    assert!(r.body == pattern(300_001, 5));

    // A Content-Length from the app: mod_proxy_fcgi (httpd 2.4.71) drops it and chunks.
    let r = apache.get_with("/p/?mode=big&size=1000&cl=1", &ka);
    assert!(r.complete && r.body == pattern(1000, 1), "{}", r.raw_head);

    // Streaming: chunks flushed 300 ms apart arrive apart.
    let r = apache.get_with("/flush/?mode=slow&delay_ms=300&chunks=4", &ka);
    assert_eq!(r.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    let (first, last) = (r.arrivals.first().unwrap().0, r.arrivals.last().unwrap().0);
    assert!(r.first_byte.unwrap() < Duration::from_millis(300), "{:?}", r.first_byte);
    assert!(last - first >= Duration::from_millis(600), "{:?}", r.arrivals);

    // A chunked request body.
    let chunks: Vec<Vec<u8>> = (0..5).map(|i| pattern(10_000 + i, i as u64)).collect();
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let r = apache.post_chunked("/p/?mode=echo", &refs);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body == chunks.concat());

    // The app dies mid-body: a chunked response without its 0-chunk is incomplete.  (With a
    // keep-alive client mod_proxy_fcgi would hold the connection for KeepAliveTimeout.)
    let r = apache.get("/p/?mode=crash_mid_body");
    assert_eq!(r.status, 200);
    assert!(r.chunked && !r.complete, "{r:?}");
    assert!(r.body.len() <= 100 * 1024);
}

#[test]
fn flup_app_over_unix_socket_and_tcp() {
    let dir = TestDir::new();
    let (_u, sock) = start_flup_unix(&dir, "flup-unix");
    let (_t, port) = start_flup_tcp(&dir, "flup-tcp");
    let fd0_sock = dir.sock_dir().join("flup-fd0.sock");
    let fd0 = AppProcess::start(
        &dir,
        "flup-fd0",
        AppSpec::new("/usr/bin/python3")
            .arg(app_file("flup_app.py"))
            .listen_on_fd0(&fd0_sock),
    );
    fd0.wait_for_socket(&fd0_sock);
    let apache = proxy_apache(&format!(
        "{}\nProxyPass /ft/ fcgi://127.0.0.1:{port}/\n{}",
        proxy_to_unix("/fu/", &sock),
        proxy_to_unix("/f0/", &fd0_sock)
    ));
    for prefix in ["/fu/", "/ft/", "/f0/"] {
        let r = apache.get(&format!("{prefix}app.py"));
        assert_eq!(r.status, 200, "{prefix}: {r:?}\n{}", apache.error_log());
        assert!(r.text().contains("<h1>Hello world!</h1>"), "{prefix}");
        assert_eq!(r.header("X-App"), Some("flup"));
    }
    let body = pattern(100_000, 4);
    let r = apache.post("/fu/echo", &body, "application/octet-stream");
    assert!(r.status == 200 && r.body == body, "{r:?}");
    assert!(apache.get("/ft/env").env_var("REQUEST_METHOD").is_some());
}

#[test]
fn php_fpm_answers() {
    let dir = TestDir::new();
    let (_fpm, sock) = start_php_fpm(&dir);
    let scripts = app_file("index.php").parent().unwrap().to_path_buf();
    let apache = proxy_apache(&format!(
        "ProxyPassMatch \"^/php/(.*\\.php)$\" \"unix:{}|fcgi://localhost{}/$1\"",
        sock.display(),
        scripts.display()
    ));
    let r = apache.get("/php/index.php?a=b");
    assert_eq!(r.status, 200, "{r:?}\n{}", apache.error_log());
    assert!(r.text().starts_with("Hello from php\n"), "{}", r.text());
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("a=b"));
    let body = pattern(70_000, 8);
    let r = apache.post("/php/index.php", &body, "application/octet-stream");
    assert_eq!(r.env_var("BODY_LENGTH").as_deref(), Some("70000"), "{}", r.text());
}

#[test]
fn perl_app_answers() {
    let dir = TestDir::new();
    let (_perl, sock) = start_perl_unix(&dir, "perl");
    let apache = proxy_apache(&proxy_to_unix("/pl/", &sock));
    let r = apache.post("/pl/x?q=1", b"12345", "text/plain");
    assert_eq!(r.status, 200, "{r:?}\n{}", apache.error_log());
    assert!(r.text().starts_with("Hello from perl\n"));
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("q=1"));
    assert_eq!(r.env_var("BODY_BYTES").as_deref(), Some("5"));
}

#[test]
fn graceful_and_restart_keep_serving() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let mut apache = proxy_apache(&proxy_to_unix("/p/", &sock));
    assert_eq!(apache.get("/p/").status, 200);
    apache.graceful();
    assert_eq!(apache.get("/p/").status, 200);
    apache.restart();
    assert_eq!(apache.get("/p/").status, 200);
    // Reconfigure: add a second mapping and restart.
    let conf = ApacheConf::new()
        .without_our_module()
        .with_proxy_fcgi()
        .extra(&proxy_to_unix("/p/", &sock))
        .extra(&proxy_to_unix("/q/", &sock));
    apache.reconfigure(&conf);
    apache.graceful();
    assert_eq!(apache.get("/q/?mode=env").status, 200);
}

#[test]
fn drop_leaves_no_process_behind() {
    let dir = TestDir::new();
    let (probe, sock) = start_probe_unix(&dir, "probe");
    let (fpm, _) = start_php_fpm(&dir);
    let apache = proxy_apache(&proxy_to_unix("/p/", &sock));
    assert_eq!(apache.get("/p/").status, 200);
    let mut pids = vec![apache.pid(), probe.pid(), fpm.pid()];
    let apache_children = apache.descendant_pids();
    assert!(!apache_children.is_empty());
    let fpm_children = descendant_pids(fpm.pid());
    assert_eq!(fpm_children.len(), 4, "php-fpm workers");
    pids.extend(apache_children);
    pids.extend(fpm_children);
    let t0 = Instant::now();
    drop(apache);
    drop(probe);
    drop(fpm);
    eprintln!(
        "timing [{}]: drop of apache+probe+php-fpm {:?}",
        mpm().name(),
        t0.elapsed()
    );
    let gone = wait_until(Duration::from_secs(5), || pids.iter().all(|&p| !pid_alive(p)));
    let left: Vec<_> = pids
        .iter()
        .filter(|&&p| pid_alive(p))
        .map(|&p| (p, pid_cmdline(p)))
        .collect();
    assert!(gone, "still alive: {left:?}");
}
