//! Applications that misbehave for a long time (issue 12, "Faults under load"): an
//! application that never reads stdin, stops reading an upload, stops mid-response, sends
//! its headers one byte a second, floods stderr, or never answers while the client goes
//! away; the FastCgiIpcDir removed while running; the spool file system full. Each: the
//! right HTTP status, one clear error line, Apache keeps serving.
//!
//!   FCGI_TEST_MPM=event MOD_FASTCGI_SO=$PWD/mod_fastcgi.so cargo test --release --test misbehave

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// tests/apps/misbehave.py on a Unix socket in the test directory.
fn start_misbehave(dir: &TestDir) -> (AppProcess, PathBuf) {
    let sock = dir.sock_dir().join("misbehave.sock");
    let p = AppProcess::start(
        dir,
        "misbehave",
        AppSpec::new("/usr/bin/python3")
            .arg(app_file("misbehave.py"))
            .arg(&sock),
    );
    p.wait_for_socket(&sock);
    (p, sock)
}

/// Apache with `/app` (the misbehaving application, `-idle-timeout 2`) and `/good` (the
/// probe).
fn start(sock: &Path, good: &Path) -> Apache {
    Apache::start(&ApacheConf::new().extra(&format!(
        "FastCgiExternalServer \"@HTDOCS@/app\" -socket \"{}\" -idle-timeout 2\n\
         FastCgiExternalServer \"@HTDOCS@/good\" -socket \"{}\"",
        sock.display(),
        good.display()
    )))
}

fn app(apache: &Apache) -> String {
    apache.htdocs().join("app").display().to_string()
}

/// Error-level lines written by the module.
fn module_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("FastCGI:") && l.contains(":error]"))
        .collect()
}

/// Waits for one line containing every part of `want` since `mark`, and asserts it is the
/// only module error line.
fn expect_one(apache: &Apache, mark: usize, want: &[&str]) -> String {
    let matches = |l: &str| want.iter().all(|p| l.contains(p));
    wait_until(Duration::from_secs(10), || {
        apache.error_log_since(mark).lines().any(matches)
    });
    let log = apache.error_log_since(mark);
    let hits: Vec<&str> = log.lines().filter(|l| matches(l)).collect();
    assert_eq!(hits.len(), 1, "expected one line with {want:?}, log:\n{log}");
    assert_eq!(
        module_errors(&log).len(),
        1,
        "expected one module error line, log:\n{log}"
    );
    assert!(!log.contains("AH00524"), "handler returned an invalid code:\n{log}");
    hits[0].to_string()
}

fn assert_serving(apache: &Apache) {
    let r = apache.get("/good?mode=env");
    assert_eq!(r.status, 200, "follow-up: {r:?}\n{}", apache.error_log());
    assert!(r.complete, "follow-up: {r:?}");
    let r = apache.get("/app?mode=ok");
    assert_eq!(r.status, 200, "follow-up /app: {r:?}\n{}", apache.error_log());
    assert_eq!(r.text(), "ok\n");
}

fn idle_line(apache: &Apache) -> String {
    format!(
        "FastCGI: comm with server \"{}\" aborted: idle timeout (2 sec)",
        app(apache)
    )
}

fn timed(apache: &Apache, method: &str, path: &str, body: Option<&[u8]>) -> Response {
    request_timeout(
        apache.port(),
        &build_request(
            method,
            path,
            apache.port(),
            &[("Content-Type", "application/octet-stream")],
            body,
        ),
        Duration::from_secs(20),
    )
}

/// A large POST to `mode` of the misbehaving application: 500 after the idle timeout,
/// one idle-timeout line, Apache still serving.
fn upload_gets_500_after_idle_timeout(mode: &str, seed: u64) {
    let dir = TestDir::new();
    let (_app, sock) = start_misbehave(&dir);
    let (_good, good) = start_probe_unix(&dir, "good");
    let apache = start(&sock, &good);
    let mark = apache.log_mark();
    let body = pattern(8 << 20, seed);
    let r = timed(&apache, "POST", &format!("/app?mode={mode}"), Some(&body));
    assert!(!r.timed_out, "{r:?}");
    assert_eq!(r.status, 500, "{r:?}\n{}", apache.error_log_since(mark));
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    expect_one(&apache, mark, &[&idle_line(&apache)]);
    assert_serving(&apache);
}

/// A large POST to an application that never reads stdin: 500 after the idle timeout.
#[test]
fn app_never_reading_stdin_gets_500_after_idle_timeout() {
    upload_gets_500_after_idle_timeout("no_stdin", 3);
}

/// The application reads 64 KiB of an upload, then stops reading: 500 after the idle
/// timeout.
#[test]
fn app_stopping_reading_mid_upload_gets_500_after_idle_timeout() {
    upload_gets_500_after_idle_timeout("stop_reading", 4);
}

/// Headers and part of the body, then silence: the response is cut (no error page) after
/// the idle timeout.
#[test]
fn app_stopping_mid_response_is_cut_after_idle_timeout() {
    let dir = TestDir::new();
    let (_app, sock) = start_misbehave(&dir);
    let (_good, good) = start_probe_unix(&dir, "good");
    let apache = start(&sock, &good);
    let mark = apache.log_mark();
    let r = timed(&apache, "GET", "/app?mode=stop_response", None);
    assert!(!r.timed_out, "{r:?}");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.complete, "{r:?}");
    assert_eq!(r.body, vec![b'x'; 4096]);
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    expect_one(&apache, mark, &[&idle_line(&apache)]);
    assert_serving(&apache);
}

/// Headers one byte a second (each byte well within `-idle-timeout 2`): the request still
/// ends after the idle timeout with 500 (before: it took as long as the application liked,
/// here about 45 s, and ended 200).
#[test]
fn headers_one_byte_a_second_do_not_hold_the_idle_timeout_off() {
    let dir = TestDir::new();
    let (_app, sock) = start_misbehave(&dir);
    let (_good, good) = start_probe_unix(&dir, "good");
    let apache = start(&sock, &good);
    let mark = apache.log_mark();
    let r = timed(&apache, "GET", "/app?mode=slow_headers", None);
    assert!(!r.timed_out, "request held past the idle timeout: {r:?}");
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(8), "{:?}", r.elapsed);
    expect_one(&apache, mark, &[&idle_line(&apache)]);
    assert_serving(&apache);
}

/// 4 MiB of stderr in 100-byte lines: the first 64 KiB are logged, then one line says how
/// much was suppressed; the response is served.
#[test]
fn stderr_flood_is_capped_per_request() {
    let dir = TestDir::new();
    let (_app, sock) = start_misbehave(&dir);
    let (_good, good) = start_probe_unix(&dir, "good");
    let apache = start(&sock, &good);
    for round in 0..2 {
        let mark = apache.log_mark();
        let r = timed(&apache, "GET", "/app?mode=stderr_flood&mb=4", None);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.text(), "flooded\n");
        let summary_part = "stderr: 4092462 more bytes suppressed (41338 lines;";
        assert!(
            wait_until(Duration::from_secs(10), || apache
                .error_log_since(mark)
                .contains(summary_part)),
            "round {round}: no summary line; log tail:\n{}",
            log_tail(&apache)
        );
        let log = apache.error_log_since(mark);
        let stderr_lines = log.lines().filter(|l| l.contains("stderr: eeee")).count();
        // 100-byte lines (99 bytes of text): 662 lines reach the 64 KiB cap.
        assert_eq!(stderr_lines, 662, "round {round}");
        let summaries = log.lines().filter(|l| l.contains("more bytes suppressed")).count();
        assert_eq!(summaries, 1, "round {round}");
        assert!(log.len() < 512 * 1024, "round {round}: {} bytes of log", log.len());
    }
    assert_serving(&apache);
}

/// The application never answers and the client goes away: the worker is freed by the
/// idle timeout (one line) and the next requests are served.
#[test]
fn unanswered_request_after_client_left_frees_the_worker() {
    let dir = TestDir::new();
    let (_app, sock) = start_misbehave(&dir);
    let (_good, good) = start_probe_unix(&dir, "good");
    let apache = start(&sock, &good);
    let mark = apache.log_mark();
    let t0 = Instant::now();
    {
        let mut c = apache.conn();
        c.send(&build_request("GET", "/app?mode=never", apache.port(), &[], None))
            .expect("send");
        thread::sleep(Duration::from_millis(300));
    }
    assert!(
        apache.wait_for_log_after(mark, &idle_line(&apache), Duration::from_secs(10)),
        "worker not freed:\n{}",
        log_tail(&apache)
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    expect_one(&apache, mark, &[&idle_line(&apache)]);
    assert_serving(&apache);
}

// ---------------------------------------------------------------------------------------
// FastCgiIpcDir removed while running
// ---------------------------------------------------------------------------------------

/// `rm -rf` of FastCgiIpcDir under a static application: its socket file is gone, so
/// requests get 500 with one `failed to connect ... No such file or directory` line and
/// nothing crashes; a graceful restart recreates the directory (httpd's configuration
/// pass) and the process manager restarts the class on a new socket (before: the class was
/// kept as "unchanged" and never reachable again). `-keep-conn 0`: a kept connection would
/// go on working after the file is gone.
#[test]
fn ipc_dir_removed_while_running_recovers_after_graceful_restart() {
    let dir = TestDir::new();
    let app_path = probe_at(&dir, "s.fcgi");
    let apache = start_in(
        &dir,
        "FastCgiIpcDir @ROOT@/ipc\nFastCgiServer @HTDOCS@/s.fcgi -processes 1 -init-start-delay 0 -keep-conn 0",
    );
    wait_class(&apache, &app_path, 1, &[], Duration::from_secs(15));
    let r = apache.get("/s.fcgi?mode=env");
    assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&apache));

    fs::remove_dir_all(dir.join("ipc")).expect("rm -rf ipc");
    let mark = apache.log_mark();
    let r = apache.get("/s.fcgi?mode=env");
    eprintln!("after rm -rf: {} {:?}", r.status, r.text());
    assert!(r.status == 503 || r.status == 500, "{r:?}");
    let log = apache.error_log_since(mark);
    let errs = module_errors(&log);
    assert_eq!(errs.len(), 1, "{log}");
    assert!(
        errs[0].contains(&format!("\"{}\"", app_path.display())) && errs[0].contains("No such file or directory"),
        "{log}"
    );
    assert!(apache.alive());

    let mark = apache.log_mark();
    apache.graceful();
    let ok = wait_until(Duration::from_secs(20), || apache.get("/s.fcgi?mode=env").status == 200);
    assert!(
        ok,
        "not recovered after a graceful restart:\n{}",
        apache.error_log_since(mark)
    );
    assert!(dir.join("ipc").is_dir());
}

// ---------------------------------------------------------------------------------------
// Spool file system full
// ---------------------------------------------------------------------------------------

/// A 1 MiB tmpfs mounted at a path; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700,uid=33,gid=33"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// FastCgiSpoolDir on a 1 MiB tmpfs: a 3 MiB chunked upload gets 500 with one line
/// naming the directory and ENOSPC; Apache keeps serving, and an upload that fits
/// succeeds (the failed spool left nothing behind).
#[test]
fn spool_file_system_full_is_500_and_recovers() {
    let dir = TestDir::new();
    let spool = dir.join("spool");
    let Some(_fs) = Tmpfs::mount(&spool, "1m") else {
        panic!("mount -t tmpfs failed (the test runs as root)");
    };
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiSpoolDir @ROOT@/spool\nFastCgiExternalServer @HTDOCS@/p.fcgi -socket {}\n",
            sock.display()
        ),
    );
    let mark = apache.log_mark();
    let big = pattern(3 << 20, 5);
    let r = apache.post_chunked("/p.fcgi?mode=echo", &[&big[..1 << 20], &big[1 << 20..]]);
    assert_eq!(r.status, 500, "{r:?}\n{}", log_tail(&apache));
    let want = format!(
        "FastCGI: can't spool the chunked request body for server \"{}\" in {}",
        apache.htdocs().join("p.fcgi").display(),
        spool.display()
    );
    let log = apache.error_log_since(mark);
    let errs = module_errors(&log);
    assert_eq!(errs.len(), 1, "{log}");
    assert!(
        errs[0].contains(&want) && errs[0].contains("No space left on device"),
        "{log}"
    );
    assert!(apache.alive());

    for _ in 0..2 {
        let small = pattern(600 * 1024, 6);
        let r = apache.post_chunked("/p.fcgi?mode=echo", &[&small[..300_000], &small[300_000..]]);
        assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&apache));
        assert_eq!(r.header("X-Body-Length"), Some("614400"));
    }
    let left: Vec<_> = fs::read_dir(&spool).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
