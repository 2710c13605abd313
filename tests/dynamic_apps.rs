//! Dynamic applications end to end (reference 2.4, RT-14, 4.6, 5.10): any executable file
//! handled by `fastcgi-script` without a server definition is started on demand by the
//! process manager (`fcgi-pm`), scaled with load within `FastCgiConfig`'s limits, shrunk by
//! the kill policy, restarted when its file changes (`-autoUpdate`), kept across a graceful
//! restart and removed (processes and sockets) when httpd stops.
//!
//!   cargo build --release --lib && cp target/release/libmod_fastcgi.so /tmp/dyn-test-mod.so
//!   FCGI_TEST_MPM=event MOD_FASTCGI_SO=/tmp/dyn-test-mod.so \
//!       cargo test --release --test dynamic_apps -- --nocapture
//!
//! Every test starts its own Apache (ServerRoot = a fresh [`TestDir`], its own IPC
//! directory) and its own copies of the applications, so the tests run in parallel and an
//! application process is recognised by the path of its copy on its command line.
//! Measurements (first-request latency, process counts over time) are printed with
//! `eprintln!` (run with `--nocapture` to see them).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{chown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// Helpers: files and configuration
// ---------------------------------------------------------------------------------------

/// `FastCgiIpcDir` of every test: inside the test's ServerRoot (short enough for
/// `sun_path`: `/tmp/fcgitest-<pid>-<n>/ipc/dynamic/<32 hex>`).
const IPC: &str = "FastCgiIpcDir @ROOT@/ipc";

/// `<Directory @HTDOCS@/<rel>>` with `Options +ExecCGI` and `SetHandler fastcgi-script`.
fn dyn_dir(rel: &str) -> String {
    format!("<Directory @HTDOCS@/{rel}>\n    Options +ExecCGI\n    SetHandler fastcgi-script\n</Directory>")
}

/// `<ipc>/dynamic/<md5(path + "-" + "-")>` (PM-21, no wrapper).
fn dyn_socket(dir: &TestDir, app: &Path) -> PathBuf {
    dir.join("ipc/dynamic")
        .join(md5_hex(format!("{}--", s(app)).as_bytes()))
}

/// Names in `<ipc>/dynamic` (empty if it does not exist).
fn dynamic_dir_entries(dir: &TestDir) -> Vec<String> {
    fs::read_dir(dir.join("ipc/dynamic"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Sets the mtime of `path` to `secs` after now (through coreutils' touch).
fn set_mtime_future(path: &Path, secs: u64) -> u64 {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + secs;
    let st = Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("@{t}"))
        .arg(path)
        .status()
        .expect("run touch");
    assert!(st.success(), "touch -m -d @{t} {}", path.display());
    t
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

// ---------------------------------------------------------------------------------------
// Helpers: processes (as in tests/static_apps.rs)
// ---------------------------------------------------------------------------------------

/// Error-log lines containing `needle`.
fn log_lines(apache: &Apache, needle: &str) -> Vec<String> {
    apache
        .error_log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Helpers: requests
// ---------------------------------------------------------------------------------------

/// Asserts that `path` is refused with `status` and that the log then has `needle`.
fn assert_refused(apache: &Apache, path: &str, status: u16, needle: &str) {
    let mark = apache.log_mark();
    let r = get_t(apache.port(), path);
    let logged = apache.wait_for_log_after(mark, needle, Duration::from_secs(3));
    assert!(
        r.status == status && logged,
        "GET {path}: expected {status} and the log line {needle:?}; got {} (logged: {logged})\n\
         --- log since the request ---\n{}\n{}",
        brief(&r),
        apache.error_log_since(mark),
        evidence(apache)
    );
    eprintln!(
        "GET {path} -> {} ; log: {}",
        r.status,
        apache.error_log_since(mark).trim()
    );
}

/// (seconds since t0, process count, pids) samples; prints the rows where the set changes.
fn print_timeline(title: &str, samples: &[(f64, Vec<i32>)]) {
    let mut out = format!("{title}\n   t(s)  procs  pids\n");
    let mut last: Option<&Vec<i32>> = None;
    for (i, (t, pids)) in samples.iter().enumerate() {
        if last != Some(pids) || i + 1 == samples.len() {
            out.push_str(&format!("  {t:6.2}  {:5}  {pids:?}\n", pids.len()));
            last = Some(pids);
        }
    }
    eprint!("{out}");
}

// ---------------------------------------------------------------------------------------
// 1. On-demand start: the process, its identity, cwd, environment and socket
// ---------------------------------------------------------------------------------------

#[test]
fn first_request_starts_one_process_on_a_dynamic_socket() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "dyn/probe.fcgi");
    let apache = start_in(&dir, &format!("{IPC}\n{}", dyn_dir("dyn")));
    let sock = dyn_socket(&dir, &app);

    // Nothing runs and no socket exists before the first request.
    thread::sleep(Duration::from_millis(300));
    assert!(
        all_app_processes(&app).is_empty(),
        "a dynamic application runs before any request\n{}",
        evidence(&apache)
    );
    assert!(!sock.exists(), "{} exists before any request", sock.display());

    let mark = apache.log_mark();
    let t0 = Instant::now();
    let r = get_t(apache.port(), "/dyn/probe.fcgi?mode=env");
    let first = t0.elapsed();
    eprintln!(
        "first dynamic request: status {} in {:.3} s (legacy needed >= 0.5 s)",
        r.status,
        first.as_secs_f64()
    );
    assert!(
        r.status == 200 && r.complete,
        "first request: {}\n{}",
        brief(&r),
        evidence(&apache)
    );
    assert!(first < Duration::from_secs(5), "first request took {first:?}");
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/dyn/probe.fcgi"));
    assert_eq!(r.env_var("SCRIPT_FILENAME").as_deref(), Some(s(&app).as_str()));
    let pid = served_by(&r).expect("X-Probe-Pid");

    // Exactly one process, a child of fcgi-pm (itself a child of the httpd parent).
    let procs = all_app_processes(&app);
    assert_eq!(
        procs,
        vec![pid],
        "processes of {}\n{}",
        app.display(),
        evidence(&apache)
    );
    let pms = pm_pids(&apache);
    assert_eq!(pms.len(), 1, "one fcgi-pm\n{}", ps_tree(&apache));
    assert_eq!(
        ppid_of(pid),
        pms[0],
        "parent of the dynamic process\n{}",
        ps_tree(&apache)
    );
    assert_www(pid, "dynamic process");
    assert_eq!(cwd_of(pid), dir.join("htdocs/dyn"), "cwd of the dynamic process");
    assert_eq!(
        environ(pid),
        Vec::<String>::new(),
        "environment of a dynamic process without FastCgiConfig -initial-env"
    );
    let cmd = pid_cmdline(pid).unwrap_or_default();
    assert_eq!(cmd, s(&app), "argv of the dynamic process");

    // Its socket: <ipc>/dynamic/md5(path--), 0600, www-data, on the process's fd 0.
    let m = fs::symlink_metadata(&sock).unwrap_or_else(|e| {
        panic!(
            "socket {} missing: {e}\nipc/dynamic: {:?}",
            sock.display(),
            dynamic_dir_entries(&dir)
        )
    });
    assert!(m.file_type().is_socket(), "{} is not a socket", sock.display());
    assert_eq!(m.permissions().mode() & 0o777, 0o600, "dynamic socket mode");
    assert_eq!(m.uid(), WWW_UID, "dynamic socket owner");
    let ino = unix_listener_inode(&sock).expect("dynamic socket is listening");
    assert_eq!(
        fd_socket_inode(pid, 0),
        Some(ino),
        "fd 0 of {pid} should be {}",
        sock.display()
    );

    // The log line.
    let want = format!("FastCGI: (dynamic) server \"{}\" started (pid {pid})", s(&app));
    assert!(
        apache.wait_for_log_after(mark, &want, Duration::from_secs(2)),
        "log lacks {want:?}\n{}",
        apache.error_log_since(mark)
    );

    // Later requests go to the same process, fast.
    let mut lat = Vec::new();
    for _ in 0..5 {
        let (r, p) = probe_ok_response(&apache, "/dyn/probe.fcgi?mode=env");
        lat.push(format!("{:.1}ms", r.elapsed.as_secs_f64() * 1000.0));
        assert_eq!(
            p,
            pid,
            "a later request was served by another process\n{}",
            evidence(&apache)
        );
    }
    eprintln!("later requests: {lat:?}");
    assert_eq!(
        all_app_processes(&app),
        vec![pid],
        "still one process\n{}",
        evidence(&apache)
    );
}

// ---------------------------------------------------------------------------------------
// 2. Refusals (RT-14): missing file, directory, non-executable file, ExecCGI off
// ---------------------------------------------------------------------------------------

#[test]
fn refusals_missing_directory_not_executable_and_execcgi_off() {
    let dir = TestDir::new();
    let _ = probe_at(&dir, "dyn/probe.fcgi");
    dir.mkdir("htdocs/dyn/subdir");
    let plain = dir.write("htdocs/dyn/plain.fcgi", "#!/bin/sh\necho hi\n", 0o644);
    let plain_ah = dir.write("htdocs/ah/plain.fcgi", "#!/bin/sh\necho hi\n", 0o644);
    let noexec = probe_at(&dir, "noexec/probe.fcgi");
    let apache = start_in(
        &dir,
        &format!(
            "{IPC}\n{}\n\
             <Directory @HTDOCS@/ah>\n    Options +ExecCGI\n    AddHandler fastcgi-script .fcgi\n</Directory>\n\
             <Directory @HTDOCS@/noexec>\n    Options -ExecCGI\n    SetHandler fastcgi-script\n</Directory>",
            dyn_dir("dyn")
        ),
    );
    let h = apache.htdocs();

    // 1. stat() fails -> 404.
    assert_refused(
        &apache,
        "/dyn/missing.fcgi",
        404,
        &format!("FastCGI: stat() of \"{}\" failed", s(&h.join("dyn/missing.fcgi"))),
    );
    // 2. a directory -> 403.
    assert_refused(
        &apache,
        "/dyn/subdir/",
        403,
        &format!("FastCGI: invalid (dynamic) server \"{}", s(&h.join("dyn/subdir"))),
    );
    // 2. not executable by www-data (0644, root) -> 403, via SetHandler and via AddHandler.
    assert_refused(
        &apache,
        "/dyn/plain.fcgi",
        403,
        &format!("FastCGI: invalid (dynamic) server \"{}\": ", s(&plain)),
    );
    assert_refused(
        &apache,
        "/ah/plain.fcgi",
        403,
        &format!("FastCGI: invalid (dynamic) server \"{}\": ", s(&plain_ah)),
    );
    // 3. Options ExecCGI off -> 403.
    assert_refused(
        &apache,
        "/noexec/probe.fcgi",
        403,
        "FastCGI: \"ExecCGI Option\" is off in this directory: /noexec/probe.fcgi",
    );
    // No refused file ever became a process.
    thread::sleep(Duration::from_millis(300));
    assert!(
        all_app_processes(&noexec).is_empty(),
        "ExecCGI-off app was started\n{}",
        evidence(&apache)
    );
    assert!(all_app_processes(&plain).is_empty());
    assert!(
        dynamic_dir_entries(&dir).is_empty(),
        "refused requests created dynamic sockets: {:?}",
        dynamic_dir_entries(&dir)
    );
}

// ---------------------------------------------------------------------------------------
// 3. Scaling with load and shrinking afterwards (PM-52, PM-53, PM-56)
// ---------------------------------------------------------------------------------------

struct LoadOutcome {
    /// (status, pid, start offset s, elapsed s) per request.
    results: Vec<(u16, Option<i32>, f64, f64, String)>,
    samples: Vec<(f64, Vec<i32>)>,
    t0: Instant,
}

/// Fires `n` concurrent `mode=sleep&ms=<ms>` requests at `path` and samples the number of
/// processes of `app` every 100 ms until all have answered.
fn slow_load(apache: &Apache, app: &Path, path: &str, n: usize, ms: u64) -> LoadOutcome {
    let port = apache.port();
    let done = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let url = format!("{path}?mode=sleep&ms={ms}");
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let done = done.clone();
            let url = url.clone();
            thread::spawn(move || {
                // Stagger a little so the connections arrive in a known order.
                thread::sleep(Duration::from_millis(20 * i as u64));
                let start = t0.elapsed().as_secs_f64();
                let r = get_tt(port, &url, Duration::from_secs(45));
                let res = (r.status, served_by(&r), start, r.elapsed.as_secs_f64(), brief(&r));
                done.fetch_add(1, Ordering::SeqCst);
                res
            })
        })
        .collect();
    let mut samples = Vec::new();
    while done.load(Ordering::SeqCst) < n && t0.elapsed() < Duration::from_secs(50) {
        samples.push((t0.elapsed().as_secs_f64(), all_app_processes(app)));
        thread::sleep(Duration::from_millis(100));
    }
    samples.push((t0.elapsed().as_secs_f64(), all_app_processes(app)));
    let results = handles.into_iter().map(|h| h.join().expect("load thread")).collect();
    LoadOutcome { results, samples, t0 }
}

/// Every request of the load got a 200 from some process.
fn assert_all_answered(o: &LoadOutcome, apache: &Apache) {
    let failed: Vec<&String> = o
        .results
        .iter()
        .filter(|r| r.0 != 200 || r.1.is_none())
        .map(|r| &r.4)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed:\n{:#?}\n{}",
        failed.len(),
        o.results.len(),
        failed,
        evidence(apache)
    );
}

fn print_results(o: &LoadOutcome) {
    let mut per_pid: BTreeMap<i32, usize> = BTreeMap::new();
    for (i, (st, pid, start, el, _)) in o.results.iter().enumerate() {
        eprintln!("  request {i}: sent t+{start:.2}s, status {st}, pid {pid:?}, took {el:.2}s");
        if let Some(p) = pid {
            *per_pid.entry(*p).or_default() += 1;
        }
    }
    eprintln!("  requests per process: {per_pid:?}");
}

#[test]
fn class_grows_under_load_up_to_max_class_processes_then_shrinks() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "dyn/probe.fcgi");
    let apache = start_in(
        &dir,
        &format!(
            "{IPC}\nFastCgiConfig -startDelay 1 -maxClassProcesses 3 -killInterval 2 -updateInterval 2 \
             -minProcesses 0 -singleThreshold 0\n{}",
            dyn_dir("dyn")
        ),
    );
    let o = slow_load(&apache, &app, "/dyn/probe.fcgi", 6, 3000);
    print_timeline(
        "process count of the class during 6 concurrent 3 s requests (maxClassProcesses 3):",
        &o.samples,
    );
    print_results(&o);
    let max = o.samples.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
    assert_all_answered(&o, &apache);
    let distinct: std::collections::BTreeSet<i32> = o.results.iter().filter_map(|r| r.1).collect();
    assert!(
        max <= 3,
        "the class grew to {max} processes, more than -maxClassProcesses 3\n{}",
        evidence(&apache)
    );
    assert!(
        max >= 2 && distinct.len() >= 2,
        "the class did not grow under load (max {max} processes, served by {distinct:?})\n{}",
        evidence(&apache)
    );
    for l in log_lines(&apache, "dynamic") {
        eprintln!("  log: {l}");
    }

    // After the load: the kill policy shrinks the class to one process (singleThreshold 0
    // keeps the last one).
    let t_end = o.t0.elapsed().as_secs_f64();
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut settled_at = None;
    while Instant::now() < deadline {
        let p = all_app_processes(&app);
        let t = o.t0.elapsed().as_secs_f64() - t_end;
        let n = p.len();
        samples.push((t, p));
        if n <= 1 && settled_at.is_none() {
            settled_at = Some(t);
        }
        // Watch a little longer than the settling point (the last one must stay).
        if settled_at.is_some_and(|s| t > s + 4.5) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    print_timeline(
        "process count after the load stopped (killInterval 2, updateInterval 2):",
        &samples,
    );
    for l in log_lines(&apache, "termination signaled") {
        eprintln!("  log: {l}");
    }
    let last = samples.last().map(|(_, p)| p.len()).unwrap_or(99);
    assert!(
        settled_at.is_some() && last == 1,
        "the class did not shrink to 1 process within 30 s of the load (last count {last})\n{}",
        evidence(&apache)
    );
    assert!(
        samples.iter().all(|(_, p)| !p.is_empty()),
        "-singleThreshold 0 should keep the last process, but the class went to 0\n{}",
        evidence(&apache)
    );
    // The survivor still answers.
    probe_ok_response(&apache, "/dyn/probe.fcgi");
}

#[test]
fn max_processes_caps_the_total() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "dyn/probe.fcgi");
    let apache = start_in(
        &dir,
        &format!(
            "{IPC}\nFastCgiConfig -startDelay 1 -maxClassProcesses 3 -maxProcesses 2 -processSlack 1 \
             -killInterval 2 -updateInterval 2 -minProcesses 0\n{}",
            dyn_dir("dyn")
        ),
    );
    let o = slow_load(&apache, &app, "/dyn/probe.fcgi", 6, 2000);
    print_timeline(
        "process count during 6 concurrent 2 s requests (maxClassProcesses 3, maxProcesses 2):",
        &o.samples,
    );
    print_results(&o);
    let max = o.samples.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
    for l in log_lines(&apache, "dynamic") {
        eprintln!("  log: {l}");
    }
    assert!(
        max <= 2,
        "{max} dynamic processes ran, more than -maxProcesses 2\n{}",
        evidence(&apache)
    );
    assert!(max >= 1, "no dynamic process ran\n{}", evidence(&apache));
    assert_all_answered(&o, &apache);
}

// ---------------------------------------------------------------------------------------
// 4. -autoUpdate (PM-58)
// ---------------------------------------------------------------------------------------

#[test]
fn auto_update_restarts_the_app_when_its_file_is_newer() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "dyn/probe.fcgi");
    let apache = start_in(&dir, &format!("{IPC}\nFastCgiConfig -autoUpdate\n{}", dyn_dir("dyn")));
    let (_, old) = probe_ok_response(&apache, "/dyn/probe.fcgi");
    let (_, again) = probe_ok_response(&apache, "/dyn/probe.fcgi");
    assert_eq!(again, old, "without a change the same process serves");

    let mark = apache.log_mark();
    let mtime = set_mtime_future(&app, 2);
    let t0 = Instant::now();
    let (r, new) = probe_ok_response(&apache, "/dyn/probe.fcgi");
    eprintln!(
        "after touching the file: served by {new} (before {old}) in {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    let _ = r;
    assert_ne!(
        new,
        old,
        "the request after the update was served by the old process\n{}",
        evidence(&apache)
    );
    let want = format!(
        "FastCGI: restarting old server \"{}\" processes, newer version found",
        s(&app)
    );
    assert!(
        apache.wait_for_log_after(mark, &want, Duration::from_secs(3)),
        "log lacks {want:?}\n--- since the touch ---\n{}",
        apache.error_log_since(mark)
    );
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(old)),
        "the old process {old} still runs\n{}",
        evidence(&apache)
    );

    // Once the clock has passed the new mtime, the class is stable again.
    while now_secs() <= mtime + 1 {
        thread::sleep(Duration::from_millis(100));
    }
    let (ra, a) = probe_ok_response(&apache, "/dyn/probe.fcgi");
    let (rb, b) = probe_ok_response(&apache, "/dyn/probe.fcgi");
    eprintln!(
        "after the mtime passed: pid {a} in {:.3} s, pid {b} in {:.3} s",
        ra.elapsed.as_secs_f64(),
        rb.elapsed.as_secs_f64()
    );
    assert_eq!(
        a,
        b,
        "the app keeps being restarted after the update\n{}",
        evidence(&apache)
    );
    eprintln!("autoUpdate log:\n{}", apache.error_log_since(mark).trim_end());
}

// ---------------------------------------------------------------------------------------
// 5. The seed guide's dynamic flup app, php-cgi as a dynamic application
// ---------------------------------------------------------------------------------------

#[test]
fn seed_dynamic_mode_flup_app() {
    let dir = TestDir::new();
    let src = manifest_dir().join("conf-examples/app.py");
    let app = dir.write(
        "htdocs/dyn/app.py",
        fs::read(&src).expect("read conf-examples/app.py"),
        0o755,
    );
    chown(&app, Some(WWW_UID), Some(WWW_GID)).expect("chown app.py");
    let apache = start_in(
        &dir,
        &format!(
            "{IPC}\n<Directory @HTDOCS@/dyn>\n    Options +FollowSymLinks +ExecCGI\n    AllowOverride All\n</Directory>\n\
             <Files app.py>\n    SetHandler fastcgi-script\n</Files>"
        ),
    );
    let t0 = Instant::now();
    let r = get_tt(apache.port(), "/dyn/app.py", Duration::from_secs(20));
    eprintln!(
        "first request to the dynamic flup app.py: status {} in {:.3} s",
        r.status,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        r.status == 200 && r.complete && r.text().contains("<h1>Hello world!</h1>"),
        "GET /dyn/app.py: {}\n{}",
        brief(&r),
        evidence(&apache)
    );
    let procs = all_app_processes(&app);
    assert_eq!(
        procs.len(),
        1,
        "one app.py process expected: {procs:?}\n{}",
        evidence(&apache)
    );
    assert_www(procs[0], "app.py");
    assert_eq!(cwd_of(procs[0]), dir.join("htdocs/dyn"));
    for _ in 0..3 {
        let r = get_t(apache.port(), "/dyn/app.py");
        assert!(
            r.status == 200 && r.text().contains("<h1>Hello world!</h1>"),
            "{}",
            brief(&r)
        );
    }
    assert_eq!(all_app_processes(&app), procs, "the same app.py process serves");
}

#[test]
fn php_cgi_as_a_dynamic_application() {
    let dir = TestDir::new();
    let php = Path::new("/usr/bin/php-cgi");
    assert!(php.exists(), "/usr/bin/php-cgi is not installed");
    // php-cgi's opcache wants a lock file in /tmp; where /tmp is not writable by www-data
    // (some sandboxes) the shebang turns opcache off, otherwise it is the plain setup.
    let tmp_writable = fs::metadata("/tmp")
        .map(|m| m.permissions().mode() & 0o002 != 0)
        .unwrap_or(false);
    let shebang = if tmp_writable {
        "#!/usr/bin/php-cgi"
    } else {
        "#!/usr/bin/php-cgi -dopcache.enable=0"
    };
    let app = dir.write(
        "htdocs/dyn/php.fcgi",
        format!("{shebang}\n<?php echo \"dynphp ok pid=\" . getmypid(); ?>\n"),
        0o755,
    );
    let apache = start_in(&dir, &format!("{IPC}\n{}", dyn_dir("dyn")));
    let t0 = Instant::now();
    let r = get_tt(apache.port(), "/dyn/php.fcgi", Duration::from_secs(20));
    eprintln!(
        "first request to php-cgi: status {} in {:.3} s; body {:?}",
        r.status,
        t0.elapsed().as_secs_f64(),
        r.text()
    );
    assert!(
        r.status == 200 && r.complete && r.text().contains("dynphp ok"),
        "GET /dyn/php.fcgi: {}\n{}",
        brief(&r),
        evidence(&apache)
    );
    assert!(
        !r.text().contains("#!/usr/bin/php-cgi"),
        "the shebang line leaked: {:?}",
        r.text()
    );
    let first_pid = r.text().split("pid=").nth(1).map(|v| v.trim().to_string());
    // php-cgi (PHP_FCGI_CHILDREN unset) is a single FastCGI process: a second request goes
    // to the same process.
    let r2 = get_t(apache.port(), "/dyn/php.fcgi");
    assert!(r2.status == 200 && r2.text().contains("dynphp ok"), "{}", brief(&r2));
    let second_pid = r2.text().split("pid=").nth(1).map(|v| v.trim().to_string());
    assert_eq!(
        first_pid,
        second_pid,
        "php-cgi was not kept running between requests\n{}",
        evidence(&apache)
    );
    let procs = all_app_processes(&app);
    eprintln!("php-cgi processes: {procs:?}");
    assert_eq!(procs.len(), 1, "one php-cgi process expected\n{}", evidence(&apache));
}

// ---------------------------------------------------------------------------------------
// 6. Stop and graceful restart
// ---------------------------------------------------------------------------------------

#[test]
fn stop_leaves_no_dynamic_process_and_no_socket() {
    let dir = TestDir::new();
    let a = probe_at(&dir, "dyn/probe.fcgi");
    let b = probe_at(&dir, "ah/other.fcgi");
    let mut apache = start_in(
        &dir,
        &format!(
            "{IPC}\n{}\n<Directory @HTDOCS@/ah>\n    Options +ExecCGI\n    AddHandler fastcgi-script .fcgi\n</Directory>",
            dyn_dir("dyn")
        ),
    );
    let (_, pa) = probe_ok_response(&apache, "/dyn/probe.fcgi");
    let (_, pb) = probe_ok_response(&apache, "/ah/other.fcgi");
    assert_ne!(pa, pb, "two dynamic applications share a process");
    let mut socks = dynamic_dir_entries(&dir);
    socks.sort();
    let mut want = vec![
        md5_hex(format!("{}--", s(&a)).as_bytes()),
        md5_hex(format!("{}--", s(&b)).as_bytes()),
    ];
    want.sort();
    assert_eq!(socks, want, "sockets in ipc/dynamic");
    let pms = pm_pids(&apache);
    let before = ps_tree(&apache);

    let took = apache.stop();
    eprintln!("apache stopped in {:.3} s", took.as_secs_f64());
    let gone = wait_until(Duration::from_secs(5), || {
        all_app_processes(&a).is_empty() && all_app_processes(&b).is_empty() && pms.iter().all(|&p| !pid_alive(p))
    });
    let left: Vec<i32> = [all_app_processes(&a), all_app_processes(&b)].concat();
    assert!(
        gone,
        "processes left after stop: apps {left:?}, pm {pms:?}\n{}--- before stop ---\n{before}",
        ps_of(&[left.clone(), pms.clone()].concat())
    );
    let entries = dynamic_dir_entries(&dir);
    assert!(entries.is_empty(), "left in ipc/dynamic after stop: {entries:?}");
}

#[test]
fn graceful_restart_keeps_the_dynamic_process() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "dyn/probe.fcgi");
    let apache = start_in(
        &dir,
        &format!(
            "{IPC}\nFastCgiConfig -initial-env DYN_A=1 -initial-env DYN_B=two\n{}",
            dyn_dir("dyn")
        ),
    );
    let (_, pid) = probe_ok_response(&apache, "/dyn/probe.fcgi?mode=env");
    assert_eq!(
        environ(pid),
        vec!["DYN_A=1".to_string(), "DYN_B=two".to_string()],
        "environment = exactly FastCgiConfig's -initial-env"
    );
    let pm_before = pm_pids(&apache);
    apache.graceful();
    let (_, after) = probe_ok_response(&apache, "/dyn/probe.fcgi");
    eprintln!(
        "graceful: pm {pm_before:?} -> {:?}, dynamic process {pid} -> {after}",
        pm_pids(&apache)
    );
    assert_eq!(
        after,
        pid,
        "graceful restart replaced the dynamic process\n{}",
        evidence(&apache)
    );
    assert_eq!(
        all_app_processes(&app),
        vec![pid],
        "processes after graceful\n{}",
        evidence(&apache)
    );
}

/// Issue 12: a dynamic request does not read the user or group database.
/// Before, every request re-read `/etc/group` (is the server's User a
/// member of the file's group?) — and with a wrapper `/etc/passwd` — and
/// saw only the local files; now the C library (NSS) is asked once per
/// process and the answer cached. Measured with strace on httpd's worker
/// processes: at most one open of either file per process over 40
/// requests.
#[test]
fn dynamic_requests_do_not_reread_the_user_database() {
    let dir = TestDir::new();
    let (wrapper, _log) = dir.logging_wrapper();
    probe_at(&dir, "dyn/probe.fcgi");
    let apache = start_in(
        &dir,
        &format!("{IPC}\nFastCgiWrapper {}\n{}", s(&wrapper), dyn_dir("dyn")),
    );
    probe_ok(&apache, "/dyn/probe.fcgi");
    let pms = pm_pids(&apache);
    let workers: Vec<i32> = apache
        .child_pids()
        .into_iter()
        .filter(|p| !pms.contains(p) && pid_cmdline(*p).is_some_and(|c| c.contains("apache2")))
        .collect();
    assert!(!workers.is_empty(), "no httpd worker\n{}", ps_tree(&apache));
    let out = dir.join("strace.out");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=open,openat", "-o"]).arg(&out);
    for p in &workers {
        cmd.arg("-p").arg(p.to_string());
    }
    let mut strace = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run strace");
    let traced = |pid: i32| {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
    };
    assert!(
        wait_until(Duration::from_secs(10), || workers.iter().all(|&p| traced(p))),
        "strace did not attach to {workers:?}"
    );
    const REQUESTS: usize = 40;
    for _ in 0..REQUESTS {
        let r = apache.get("/dyn/probe.fcgi");
        assert_eq!(r.status, 200, "{}\n{}", brief(&r), evidence(&apache));
    }
    // SIGINT: strace detaches and exits.
    // SAFETY: kill has no memory effects; the pid is our own strace child.
    unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
    let _ = strace.wait();
    let trace = fs::read_to_string(&out).unwrap_or_default();
    let opens: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("\"/etc/passwd\"") || l.contains("\"/etc/group\""))
        .collect();
    eprintln!(
        "{} open(s) of /etc/passwd or /etc/group by {} worker(s) over {REQUESTS} dynamic requests",
        opens.len(),
        workers.len()
    );
    assert!(
        opens.len() <= workers.len(),
        "{} opens of the user database in {REQUESTS} requests by {} workers:\n{}",
        opens.len(),
        workers.len(),
        opens.iter().take(10).copied().collect::<Vec<_>>().join("\n")
    );
}

/// Issue 12: a dynamic application's process dying during a request is
/// named in the request's error line too.
#[test]
fn a_dynamic_process_dying_during_a_request_is_named_in_its_error_line() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "dyn/probe.fcgi");
    let apache = start_in(
        &dir,
        &format!("{IPC}\nFastCgiConfig -maxClassProcesses 1\n{}", dyn_dir("dyn")),
    );
    let (_, pid) = probe_ok_response(&apache, "/dyn/probe.fcgi?mode=env");
    let mark = apache.log_mark();
    let r = get_t(apache.port(), "/dyn/probe.fcgi?mode=crash_before_headers&how=abort");
    assert_eq!(r.status, 500, "{}", brief(&r));
    let want = format!(
        "FastCGI: incomplete headers (0 bytes) received from server \"{}\": the application process died during the request (pid {pid}, signal 6 (Aborted)",
        s(&app)
    );
    assert!(
        apache.wait_for_log_after(mark, &want, Duration::from_secs(5)),
        "log lacks {want:?}\n{}",
        apache.error_log_since(mark)
    );
}
