//! Security hardening of what reaches the application and how the request body
//! is read (issue 10: findings 4, 8, 11, 13 and the dynamic-wrapper gap). Each
//! test replays the attack against a real Apache and checks it no longer works.
//!
//!   FCGI_TEST_MPM=event MOD_FASTCGI_SO=$PWD/mod_fastcgi.so \
//!       cargo test --release --test security_input -- --test-threads=2

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

fn start_in_dir(dir: &TestDir, extra: &str) -> Apache {
    Apache::start(&ApacheConf::new().root(dir.path()).extra(extra))
}

/// The status field (`%>s`) of every access-log line.
/// The statuses of the access log, sorted: httpd children write their lines when
/// each request ends, so requests on different connections may be logged in
/// either order.
fn access_statuses(apache: &Apache) -> Vec<String> {
    let mut statuses: Vec<String> = apache
        .access_log()
        .lines()
        .filter_map(|l| {
            let after = l.split('"').nth(2)?;
            after.split_whitespace().next().map(str::to_string)
        })
        .collect();
    statuses.sort();
    statuses
}

// ---------------------------------------------------------------------------------------
// Finding 4: PHP_VALUE / PHP_ADMIN_VALUE from .htaccess must not reach php-fpm
// ---------------------------------------------------------------------------------------

/// An `.htaccess` author (AllowOverride FileInfo) sets `PHP_ADMIN_VALUE open_basedir=/`
/// (and `PHP-VALUE`, which httpd sends as `PHP_VALUE`) to lift the php-fpm pool's
/// open_basedir and read a file outside it. Without `-pass-php-values` the variables are
/// not forwarded and the pool's limit holds; with it (an administrator's explicit choice)
/// they are.
#[test]
fn htaccess_php_admin_value_does_not_override_the_php_fpm_pool() {
    let dir = TestDir::new();
    let htdocs = dir.mkdir("htdocs");
    let secret = dir.write("secret.txt", "top-secret\n", 0o644);
    let (_fpm, sock) = start_php_fpm_with(&dir, &format!("php_admin_value[open_basedir] = {}/", htdocs.display()));
    let script = format!(
        "<?php\nheader('Content-Type: text/plain');\n\
         echo 'open_basedir=', ini_get('open_basedir'), \"\\n\";\n\
         $s = @file_get_contents('{}');\n\
         echo $s === false ? \"DENIED\\n\" : \"READ $s\";\n",
        secret.display()
    );
    for d in ["tenant", "trusted"] {
        dir.write(format!("htdocs/{d}/read.php"), &script, 0o644);
        dir.write(
            format!("htdocs/{d}/.htaccess"),
            "SetEnv PHP_ADMIN_VALUE \"open_basedir=/\"\nSetEnv PHP-VALUE \"open_basedir=/\"\n",
            0o644,
        );
    }
    let apache = start_in_dir(
        &dir,
        &format!(
            "<Directory @HTDOCS@/tenant>\n    AllowOverride FileInfo\n</Directory>\n\
             <Directory @HTDOCS@/trusted>\n    AllowOverride FileInfo\n</Directory>\n\
             FastCgiExternalServer @HTDOCS@/tenant/read.php -socket {s}\n\
             FastCgiExternalServer @HTDOCS@/trusted/read.php -socket {s} -pass-php-values\n",
            s = sock.display()
        ),
    );
    // The tenant first: php-fpm keeps an applied PHP_ADMIN_VALUE in its worker.
    for _ in 0..4 {
        let r = apache.get("/tenant/read.php");
        assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
        let text = r.text();
        assert!(
            text.contains(&format!("open_basedir={}/", htdocs.display())) && text.contains("DENIED"),
            "the .htaccess lifted the pool's open_basedir:\n{text}"
        );
    }
    assert!(
        apache
            .error_log()
            .contains("FastCGI: PHP_VALUE/PHP_ADMIN_VALUE not passed to the application"),
        "{}",
        log_tail(&apache)
    );
    // The administrator's opt-in forwards them.
    let r = apache.get("/trusted/read.php");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert!(
        r.text().contains("READ top-secret"),
        "with -pass-php-values: {}",
        r.text()
    );
}

// ---------------------------------------------------------------------------------------
// Finding 11: -pass-header Proxy (httpoxy)
// ---------------------------------------------------------------------------------------

#[test]
fn pass_header_proxy_is_a_config_error() {
    let dir = TestDir::new();
    for conf in [
        "FastCgiExternalServer @HTDOCS@/x.fcgi -socket @ROOT@/x.sock -pass-header Proxy",
        "FastCgiConfig -pass-header proxy",
    ] {
        let (ok, out) = Apache::config_test(&ApacheConf::new().root(dir.path()).extra(conf));
        assert!(!ok, "apache2 -t accepted {conf:?}:\n{out}");
        assert!(
            out.contains("invalid value for -pass-header:") && out.contains("HTTP_PROXY") && out.contains("httpoxy"),
            "{conf:?}:\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Finding 13: body read failures are mapped to HTTP statuses
// ---------------------------------------------------------------------------------------

/// A body over LimitRequestBody: 413, not 500 "invalid result code" (status 28).
#[test]
fn body_over_limit_request_body_is_413() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in_dir(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/p.fcgi -socket {}\nLimitRequestBody 1000\n",
            sock.display()
        ),
    );
    let ok = apache.post("/p.fcgi?mode=echo", &pattern(1000, 1), "application/octet-stream");
    assert_eq!(ok.status, 200, "{}", brief(&ok));
    let r = apache.post("/p.fcgi?mode=echo", &pattern(5000, 2), "application/octet-stream");
    assert_eq!(r.status, 413, "{}\n{}", brief(&r), log_tail(&apache));
    let log = apache.error_log();
    assert!(!log.contains("invalid result code"), "{log}");
    // The same over a chunked body (spooled first).
    let r = apache.post_chunked("/p.fcgi?mode=echo", &[&pattern(3000, 3), &pattern(3000, 4)]);
    assert_eq!(r.status, 413, "chunked: {}\n{}", brief(&r), log_tail(&apache));
    // Each line is written when its request ends, possibly after the response.
    wait_until(Duration::from_secs(5), || access_statuses(&apache).len() == 3);
    assert_eq!(
        access_statuses(&apache),
        ["200", "413", "413"],
        "{}",
        apache.access_log()
    );
}

/// A client that sends half its body and stalls past `Timeout` gets 408 (or its
/// connection closed), never a 500 for APR_TIMEUP.
#[test]
fn stalled_body_times_out_with_408() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in_dir(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/p.fcgi -socket {}\nTimeout 2\n",
            sock.display()
        ),
    );
    let port = apache.port();
    let mut conn = Conn::open(port);
    let mut raw = build_request(
        "POST",
        "/p.fcgi?mode=echo",
        port,
        &[("Content-Length", "10000")],
        Some(b""),
    );
    raw.extend_from_slice(&pattern(3000, 3));
    conn.send(&raw).expect("send");
    let t0 = Instant::now();
    let r = conn.read_response(false);
    assert!(t0.elapsed() < Duration::from_secs(30), "no answer after the timeout");
    assert!(
        r.status == 408 || r.status == 0,
        "stalled body: {}\n{}",
        brief(&r),
        log_tail(&apache)
    );
    assert!(
        wait_until(Duration::from_secs(5), || !apache.access_log().is_empty()),
        "no access log line"
    );
    assert_eq!(access_statuses(&apache), ["408"], "{}", apache.access_log());
    assert!(
        !apache.error_log().contains("invalid result code"),
        "{}",
        log_tail(&apache)
    );
}

/// A client that resets its connection mid-body is a client leaving: one info line, no
/// bogus status (104 = ECONNRESET) in the access log, no error page.
#[test]
fn client_reset_mid_body_is_not_a_status() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = Apache::start(&ApacheConf::new().root(dir.path()).log_level("info").extra(&format!(
        "FastCgiExternalServer @HTDOCS@/p.fcgi -socket {}\n",
        sock.display()
    )));
    let port = apache.port();
    for close_how in ["reset", "eof"] {
        let mark = apache.log_mark();
        let mut conn = Conn::open(port);
        let mut raw = build_request(
            "POST",
            "/p.fcgi?mode=echo",
            port,
            &[("Content-Length", "100000")],
            Some(b""),
        );
        raw.extend_from_slice(&pattern(20000, 4));
        conn.send(&raw).expect("send");
        thread::sleep(Duration::from_millis(300));
        if close_how == "reset" {
            // SO_LINGER 0: close() sends RST.
            let l = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: valid socket fd and option struct.
            let rc = unsafe {
                libc::setsockopt(
                    std::os::unix::io::AsRawFd::as_raw_fd(&conn.stream),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&l as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0);
        } else {
            let _ = conn.stream.flush();
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        }
        drop(conn);
        assert!(
            apache.wait_for_log_after(mark, "FastCGI: client stopped connection", Duration::from_secs(10)),
            "{close_how}: {}",
            apache.error_log_since(mark)
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), || access_statuses(&apache).len() == 2),
        "{}",
        apache.access_log()
    );
    let statuses = access_statuses(&apache);
    assert_eq!(statuses, ["400", "400"], "{}", apache.access_log());
    let log = apache.error_log();
    assert!(!log.contains("invalid result code"), "{log}");
}

// ---------------------------------------------------------------------------------------
// Gap: FastCgiWrapper is used for dynamic applications too
// ---------------------------------------------------------------------------------------

/// With FastCgiWrapper, a dynamic application whose request has no suexec identity
/// starts through the wrapper as the server's User/Group (`wrapper www-data www-data
/// <basename>`), like a static application; legacy exec'd it directly.
#[test]
fn dynamic_app_starts_through_the_wrapper() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "dyn/wrapped.fcgi");
    let (wrapper, log) = dir.logging_wrapper();
    let apache = start_in_dir(
        &dir,
        &format!(
            "FastCgiIpcDir @ROOT@/ipc\nFastCgiWrapper {}\n\
             <Directory @HTDOCS@/dyn>\n    Options +ExecCGI\n    SetHandler fastcgi-script\n</Directory>",
            s(&wrapper)
        ),
    );
    let r = apache.get("/dyn/wrapped.fcgi?mode=env");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), evidence(&apache));
    let lines = fs::read_to_string(&log).expect("read wrap.log");
    let want = format!(
        "uid=33 cwd={} argc=3 args=www-data www-data wrapped.fcgi",
        s(app.parent().unwrap_or(Path::new("/")))
    );
    assert!(
        lines.lines().count() >= 1 && lines.lines().all(|l| l == want),
        "wrapper log:\n{lines}\nwanted lines equal to: {want}\n{}",
        evidence(&apache)
    );
}

// ---------------------------------------------------------------------------------------
// Finding 8: bounded spooling of chunked request bodies
// ---------------------------------------------------------------------------------------

/// Paths of the files httpd's processes hold open under `dir` (O_TMPFILE files show as
/// `<dir>/#<ino> (deleted)`).
fn open_files_under(apache: &Apache, dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", s(dir));
    let mut found = Vec::new();
    for pid in apache.descendant_pids() {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(t) = fs::read_link(fd.path()) {
                let t = t.to_string_lossy().into_owned();
                if t.starts_with(&prefix) {
                    found.push(t);
                }
            }
        }
    }
    found
}

/// `FastCgiSpoolDir` is created (0700, www-data) and used; a chunked body over
/// `FastCgiSpoolLimit` gets 413; while one body holds most of `FastCgiSpoolTotal`,
/// another gets 503, and once it is done the space is back; nothing is left in the
/// directory.
#[test]
fn chunked_bodies_spool_within_limits() {
    use std::os::unix::fs::MetadataExt;
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let spool = dir.join("spool");
    let apache = start_in_dir(
        &dir,
        &format!(
            "FastCgiSpoolDir @ROOT@/spool\nFastCgiSpoolLimit 1M\nFastCgiSpoolTotal 1500K\n\
             FastCgiExternalServer @HTDOCS@/p.fcgi -socket {}\n",
            sock.display()
        ),
    );
    let m = fs::metadata(&spool).expect("FastCgiSpoolDir created");
    assert_eq!((m.mode() & 0o777, m.uid()), (0o700, 33), "spool dir mode/owner");
    let port = apache.port();
    let body = pattern(900 * 1024, 8);

    // Within the limit: 200, echoed whole.
    let r = apache.post_chunked("/p.fcgi?mode=echo", &[&body[..400_000], &body[400_000..]]);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.header("X-Body-Length"), Some("921600"));

    // Over FastCgiSpoolLimit: 413 and one log line.
    let big = pattern(1024 * 1024 + 1, 9);
    let r = apache.post_chunked("/p.fcgi?mode=echo", &[&big]);
    assert_eq!(r.status, 413, "{}\n{}", brief(&r), log_tail(&apache));
    assert!(
        apache
            .error_log()
            .contains("p.fcgi\" larger than FastCgiSpoolLimit (1048576 bytes): refused"),
        "{}",
        log_tail(&apache)
    );

    // A holds 900 KiB of the 1500 KiB total, its body not finished.
    let mut a = Conn::open(port);
    let mut head = build_request(
        "POST",
        "/p.fcgi?mode=echo",
        port,
        &[("Transfer-Encoding", "chunked")],
        Some(b""),
    );
    head.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    head.extend_from_slice(&body);
    a.send(&head).expect("send A");
    assert!(
        wait_until(Duration::from_secs(20), || !open_files_under(&apache, &spool)
            .is_empty()),
        "no spool file under {}\n{}",
        spool.display(),
        log_tail(&apache)
    );
    // B (another 900 KiB) is refused with 503 while A holds its share (retried while
    // A's last bytes may still be on their way).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = apache.post_chunked("/p.fcgi?mode=echo", &[&body]);
        if r.status == 503 {
            break;
        }
        assert_eq!(r.status, 200, "B: {}\n{}", brief(&r), log_tail(&apache));
        assert!(Instant::now() < deadline, "B never refused\n{}", log_tail(&apache));
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        apache
            .error_log()
            .contains("FastCgiSpoolTotal (1536000 bytes) in use by other requests"),
        "{}",
        log_tail(&apache)
    );
    a.send(b"\r\n0\r\n\r\n").expect("finish A");
    let ra = a.read_response(false);
    assert_eq!(ra.status, 200, "A: {}\n{}", brief(&ra), log_tail(&apache));
    assert_eq!(ra.header("X-Body-Length"), Some("921600"));
    drop(a);
    // The space is back.
    let r = apache.post_chunked("/p.fcgi?mode=echo", &[&body]);
    assert_eq!(r.status, 200, "after A: {}\n{}", brief(&r), log_tail(&apache));
    // Nothing left behind, neither names nor open files.
    assert!(
        wait_until(Duration::from_secs(5), || open_files_under(&apache, &spool).is_empty()),
        "{:?}",
        open_files_under(&apache, &spool)
    );
    let left: Vec<_> = fs::read_dir(&spool)
        .expect("read spool")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in the spool dir: {left:?}");
}

#[test]
fn spool_directives_are_checked_by_apache2_t() {
    let dir = TestDir::new();
    let ww = dir.mkdir("world-writable");
    fs::set_permissions(&ww, fs::Permissions::from_mode(0o777)).expect("chmod");
    for (conf, want) in [
        (
            "FastCgiSpoolLimit 0",
            "FastCgiSpoolLimit: \"0\" must be a number of bytes >= 1",
        ),
        (
            "FastCgiSpoolTotal lots",
            "FastCgiSpoolTotal: \"lots\" must be a number of bytes >= 1",
        ),
        ("FastCgiSpoolDir @ROOT@/world-writable", "FastCgiSpoolDir "),
        ("<Directory />\nFastCgiSpoolDir /tmp\n</Directory>", "FastCgiSpoolDir"),
    ] {
        let (ok, out) = Apache::config_test(&ApacheConf::new().root(dir.path()).extra(conf));
        assert!(!ok && out.contains(want), "{conf:?}: ok={ok}\n{out}");
    }
}
