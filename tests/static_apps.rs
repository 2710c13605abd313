//! `FastCgiServer` (static applications) end to end: the process manager (`fcgi-pm`), the
//! application instances it starts (identity, cwd, environment, fd 0), their sockets,
//! restart after a crash, graceful and hard restarts of httpd under load, stop, a killed
//! PM, the seed guide's static configurations and the configuration-time errors
//! (reference 2.2 and 4).
//!
//!   cargo build --release --lib && cp target/release/libmod_fastcgi.so /tmp/static-test-mod.so
//!   FCGI_TEST_MPM=event MOD_FASTCGI_SO=/tmp/static-test-mod.so \
//!       cargo test --release --test static_apps -- --nocapture
//!
//! Every test starts its own Apache (ServerRoot = a fresh [`TestDir`], its own IPC
//! directory) and its own copies of the applications, so the tests run in parallel and an
//! application process is recognised by the path of its copy on its command line.
//! Measurements are printed with `eprintln!` (run with `--nocapture` to see them).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{chown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Helpers: files and configuration
// ---------------------------------------------------------------------------------------

/// The seed guide's app.py (conf-examples/app.py) as `<dir>/htdocs/app.py`, 0755,
/// owned by www-data (as the guide says).
fn seed_app(dir: &TestDir) -> PathBuf {
    let src = manifest_dir().join("conf-examples/app.py");
    let dst = dir.write(
        "htdocs/app.py",
        fs::read(&src).expect("read conf-examples/app.py"),
        0o755,
    );
    chown(&dst, Some(WWW_UID), Some(WWW_GID)).expect("chown app.py");
    dst
}

// ---------------------------------------------------------------------------------------
// Helpers: processes
// ---------------------------------------------------------------------------------------

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Start time of `pid` in seconds since boot.
fn start_time(pid: i32) -> Option<f64> {
    stat_fields(pid)
        .get(19)
        .and_then(|v| v.parse::<f64>().ok())
        .map(|t| t / clk_tck())
}

fn uptime() -> f64 {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Age of `pid` in seconds.
fn age(pid: i32) -> f64 {
    start_time(pid).map(|t| uptime() - t).unwrap_or(0.0)
}

/// Ignored-signal mask of `pid`.
fn sig_ignored(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// (table, local address hex) of the listening TCP socket with `inode`.
fn tcp_listener_of_inode(inode: u64) -> Option<(&'static str, String)> {
    for table in ["tcp", "tcp6"] {
        let Ok(text) = fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 10 && f[3] == "0A" && f[9].parse::<u64>().ok() == Some(inode) {
                return Some((table, f[1].to_string()));
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// 1. Start-up: the PM, the instances, their identity, cwd, environment and socket
// ---------------------------------------------------------------------------------------

#[test]
fn pm_starts_instances_as_www_data_on_an_ipc_socket() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "st/probe.fcgi");
    let apache = start_in(
        &dir,
        "FastCgiIpcDir @ROOT@/ipc\nFastCgiServer @HTDOCS@/st/probe.fcgi -processes 3 -init-start-delay 0",
    );
    let (pm, apps) = wait_class(&apache, &app, 3, &[], Duration::from_secs(10));
    eprintln!("fcgi-pm {pm}, instances {apps:?}\n{}", ps_tree(&apache));

    // The PM: a child of the httpd parent, www-data, leading its own process
    // group (reaped as one after a restart) in httpd's session — a session
    // of its own would be a scheduler autogroup of its own, which made small
    // requests 15 % slower (issue 11). The applications stay in both.
    assert_eq!(ppid_of(pm), apache.pid(), "fcgi-pm's parent");
    assert!(pid_cmdline(pm).unwrap_or_default().contains("fcgi-pm"));
    assert_www(pm, "fcgi-pm");
    assert_eq!(
        pgrp_of(pm),
        pm,
        "fcgi-pm should lead its own process group\n{}",
        ps_tree(&apache)
    );
    assert_eq!(
        session_of(pm),
        session_of(apache.pid()),
        "fcgi-pm should stay in httpd's session (and autogroup)\n{}",
        ps_tree(&apache)
    );
    for &a in &apps {
        assert_eq!(
            (pgrp_of(a), session_of(a)),
            (pm, session_of(apache.pid())),
            "instance {a}"
        );
    }

    // The IPC directory and the default socket name (md5 of the path).
    let ipc = dir.join("ipc");
    let meta = fs::metadata(&ipc).expect("IPC dir exists");
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700, "IPC dir mode");
    assert_eq!((meta.uid(), meta.gid()), (WWW_UID, WWW_GID), "IPC dir owner");
    let sock = ipc.join(md5_hex(s(&app).as_bytes()));
    let sm = fs::symlink_metadata(&sock)
        .unwrap_or_else(|e| panic!("socket {} missing: {e}\n{}", sock.display(), evidence(&apache)));
    assert!(sm.file_type().is_socket(), "{} is not a socket", sock.display());
    assert_eq!(sm.permissions().mode() & 0o777, 0o600, "socket mode");
    assert_eq!(sm.uid(), WWW_UID, "socket owner");
    let listener = unix_listener_inode(&sock).expect("socket is listening (/proc/net/unix)");

    // The instances: children of the PM, www-data, cwd = the app's directory, an empty
    // environment (no -initial-env), fd 0 = the listening socket.
    for &p in &apps {
        assert_eq!(ppid_of(p), pm, "instance {p}'s parent");
        assert_www(p, "instance");
        assert_eq!(cwd_of(p), dir.join("htdocs/st"), "cwd of instance {p}");
        assert_eq!(environ(p), Vec::<String>::new(), "environment of instance {p}");
        assert_eq!(
            fd_socket_inode(p, 0),
            Some(listener),
            "fd 0 of instance {p} should be {}",
            sock.display()
        );
    }

    // Requests to the path (no SetHandler) are served by the instances.
    let mut seen = BTreeMap::new();
    for _ in 0..12 {
        let r = get_t(apache.port(), "/st/probe.fcgi?mode=env");
        assert!(r.status == 200 && r.complete, "{}\n{}", brief(&r), evidence(&apache));
        assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/st/probe.fcgi"));
        let pid = served_by(&r).expect("X-Probe-Pid");
        assert!(apps.contains(&pid), "served by {pid}, not one of {apps:?}");
        *seen.entry(pid).or_insert(0) += 1;
    }
    eprintln!("requests per instance: {seen:?}");

    // Log lines.
    assert!(
        apache.wait_for_log(
            &format!("FastCGI: process manager initialized (pid {pm})"),
            Duration::from_secs(3)
        ),
        "no 'process manager initialized (pid {pm})'\n{}",
        log_tail(&apache)
    );
    for &p in &apps {
        let want = format!("FastCGI: server \"{}\" started (pid {p})", app.display());
        assert!(
            apache.wait_for_log(&want, Duration::from_secs(3)),
            "missing {want:?}\n{}",
            log_tail(&apache)
        );
    }
}

// Issue 11 kept the PM in httpd's session (a session of its own is a scheduler
// autogroup of its own). A session of its own also left the applications without
// httpd's controlling terminal, so the PM gives it up: with httpd in the foreground
// of a terminal, no application (wrapped ones run as other users) may open
// /dev/tty, read it or push input into it with TIOCSTI.
#[test]
fn applications_never_get_httpd_s_controlling_terminal() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "tty/probe.fcgi");
    let apache = Apache::start(
        &conf_in(
            &dir,
            "FastCgiServer @HTDOCS@/tty/probe.fcgi -processes 2 -init-start-delay 0",
        )
        .with_tty(),
    );
    let (pm, apps) = wait_class(&apache, &app, 2, &[], Duration::from_secs(10));
    assert_ne!(tty_of(apache.pid()), 0, "the test gave httpd a controlling terminal");
    for p in std::iter::once(pm).chain(apps.iter().copied()) {
        assert_eq!(
            tty_of(p),
            0,
            "pid {p} (PM {pm}) has httpd's terminal\n{}",
            ps_tree(&apache)
        );
        assert_eq!(session_of(p), session_of(apache.pid()), "pid {p}: httpd's session");
    }
    // And they serve.
    let r = apache.get("/tty/probe.fcgi?mode=env");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn initial_env_is_the_whole_process_environment() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "env.fcgi");
    let conf = conf_in(
        &dir,
        "FastCgiServer @HTDOCS@/env.fcgi -init-start-delay 0 -initial-env FOO=bar -initial-env BAZ",
    )
    .env("BAZ", "from apache's environment");
    let apache = Apache::start(&conf);
    let (_pm, apps) = wait_class(&apache, &app, 1, &[], Duration::from_secs(10));
    let pid = probe_ok(&apache, "/env.fcgi?mode=env");
    assert_eq!(apps, vec![pid]);
    assert_eq!(
        environ(pid),
        vec!["BAZ=from apache's environment".to_string(), "FOO=bar".to_string()],
        "/proc/{pid}/environ"
    );
    // No FastCgiIpcDir: the socket is in the default IPC dir (<runtime dir>/fastcgi).
    let sock = dir.join("run/fastcgi").join(md5_hex(s(&app).as_bytes()));
    assert!(
        fs::symlink_metadata(&sock)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false),
        "default socket {} missing\n{}",
        sock.display(),
        evidence(&apache)
    );
    assert_eq!(
        fd_socket_inode(pid, 0),
        unix_listener_inode(&sock),
        "fd 0 is the default socket"
    );
}

#[test]
fn socket_option_relative_and_absolute() {
    let dir = TestDir::new();
    let rel_app = probe_at(&dir, "rel.fcgi");
    let abs_app = probe_at(&dir, "abs.fcgi");
    let abs_sock = dir.sock_dir().join("abs.sock");
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiIpcDir @ROOT@/ipc\n\
             FastCgiServer @HTDOCS@/rel.fcgi -socket rel.sock -init-start-delay 0\n\
             FastCgiServer @HTDOCS@/abs.fcgi -socket {} -processes 2 -init-start-delay 0",
            abs_sock.display()
        ),
    );
    let (_, rel_pids) = wait_class(&apache, &rel_app, 1, &[], Duration::from_secs(10));
    let (_, abs_pids) = wait_class(&apache, &abs_app, 2, &[], Duration::from_secs(10));
    for (sock, pids) in [(dir.join("ipc/rel.sock"), &rel_pids), (abs_sock.clone(), &abs_pids)] {
        let m = fs::symlink_metadata(&sock)
            .unwrap_or_else(|e| panic!("{} missing: {e}\n{}", sock.display(), evidence(&apache)));
        assert!(m.file_type().is_socket(), "{} is not a socket", sock.display());
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "mode of {}", sock.display());
        assert_eq!(m.uid(), WWW_UID, "owner of {}", sock.display());
        let ino = unix_listener_inode(&sock);
        assert!(ino.is_some(), "{} not listening", sock.display());
        for &p in pids.iter() {
            assert_eq!(fd_socket_inode(p, 0), ino, "fd 0 of {p} should be {}", sock.display());
        }
    }
    // No default-named socket was made for them.
    for a in [&rel_app, &abs_app] {
        assert!(!dir.join("ipc").join(md5_hex(s(a).as_bytes())).exists());
    }
    for _ in 0..4 {
        assert!(rel_pids.contains(&probe_ok(&apache, "/rel.fcgi")));
        assert!(abs_pids.contains(&probe_ok(&apache, "/abs.fcgi")));
    }
}

#[test]
fn port_option_all_interfaces_warns_and_loopback_address() {
    let dir = TestDir::new();
    let any_app = probe_at(&dir, "any.fcgi");
    let lo_app = probe_at(&dir, "lo.fcgi");
    let (p_any, p_lo) = (free_port(), free_port());
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiIpcDir @ROOT@/ipc\n\
             FastCgiServer @HTDOCS@/any.fcgi -port {p_any} -init-start-delay 0\n\
             FastCgiServer @HTDOCS@/lo.fcgi -port 127.0.0.1:{p_lo} -init-start-delay 0"
        ),
    );
    let (_, any_pids) = wait_class(&apache, &any_app, 1, &[], Duration::from_secs(10));
    let (_, lo_pids) = wait_class(&apache, &lo_app, 1, &[], Duration::from_secs(10));

    let ino = fd_socket_inode(any_pids[0], 0).expect("fd 0 of the -port app is a socket");
    let l = tcp_listener_of_inode(ino);
    assert_eq!(
        l,
        Some(("tcp", format!("00000000:{p_any:04X}"))),
        "-port {p_any}: fd 0 should listen on 0.0.0.0:{p_any}"
    );
    let ino = fd_socket_inode(lo_pids[0], 0).expect("fd 0 of the -port 127.0.0.1: app is a socket");
    assert_eq!(
        tcp_listener_of_inode(ino),
        Some(("tcp", format!("0100007F:{p_lo:04X}"))),
        "-port 127.0.0.1:{p_lo}: fd 0 should listen on 127.0.0.1:{p_lo}"
    );

    assert_eq!(probe_ok(&apache, "/any.fcgi"), any_pids[0]);
    assert_eq!(probe_ok(&apache, "/lo.fcgi"), lo_pids[0]);

    let log = apache.error_log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("listens on all network interfaces"))
        .collect();
    assert!(
        warned.iter().any(|l| l.contains(&s(&any_app))),
        "no 'listens on all network interfaces' warning for {} in the error log\n{}\n--- stderr ---\n{}",
        any_app.display(),
        log_tail(&apache),
        apache.stderr_log()
    );
    assert!(
        !warned.iter().any(|l| l.contains(&s(&lo_app))),
        "-port 127.0.0.1:n must not warn: {warned:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Restart of a dead instance
// ---------------------------------------------------------------------------------------

#[test]
fn killed_instance_is_restarted_after_restart_delay() {
    let dir = TestDir::new();
    let a = probe_at(&dir, "a.fcgi"); // -restart-delay 1: replaced at once when older than 1 s
    let b = probe_at(&dir, "b.fcgi"); // -restart-delay 3: killed young, replaced 3 s after spawn
    let c = dir.write("htdocs/exit3.sh", "#!/bin/sh\nexit 3\n", 0o755);
    let apache = start_in(
        &dir,
        "FastCgiIpcDir @ROOT@/ipc\n\
         FastCgiServer @HTDOCS@/a.fcgi -restart-delay 1 -init-start-delay 0\n\
         FastCgiServer @HTDOCS@/b.fcgi -restart-delay 3 -init-start-delay 0\n\
         FastCgiServer @HTDOCS@/exit3.sh -restart-delay 1 -init-start-delay 0",
    );
    let (_, a_old) = wait_class(&apache, &a, 1, &[], Duration::from_secs(10));
    let (_, b_old) = wait_class(&apache, &b, 1, &[], Duration::from_secs(10));
    let (a_old, b_old) = (a_old[0], b_old[0]);
    assert_eq!(probe_ok(&apache, "/a.fcgi"), a_old);
    assert_eq!(probe_ok(&apache, "/b.fcgi"), b_old);
    // Let a's spawn be more than its restart delay ago (b stays younger than 3 s).
    while age(a_old) < 1.3 {
        thread::sleep(Duration::from_millis(20));
    }
    let b_age = age(b_old);
    let b_spawn = start_time(b_old).unwrap();

    let t0 = Instant::now();
    kill9(a_old);
    kill9(b_old);
    // SIGKILL is asynchronous: a connection the dying process had already accepted would
    // be reset. Once it is gone, a request queues on the socket the PM keeps and is
    // served by the replacement.
    assert!(
        wait_until(Duration::from_secs(2), || !pid_alive(a_old)),
        "pid {a_old} survived SIGKILL"
    );
    let r = get_t(apache.port(), "/a.fcgi");
    let served = t0.elapsed();
    assert!(
        r.status == 200 && r.complete,
        "GET after kill: {}\n{}",
        brief(&r),
        evidence(&apache)
    );
    let a_new = served_by(&r).expect("X-Probe-Pid");
    assert_ne!(a_new, a_old, "served by the killed process?");
    let a_spawned = start_time(a_new).map(|t| t - (uptime() - served.as_secs_f64()));
    eprintln!(
        "kill -9 {a_old} -> replacement {a_new} serving after {:.3} s (spawned {:.3} s after the kill)",
        served.as_secs_f64(),
        a_spawned.unwrap_or(f64::NAN)
    );
    assert!(
        served < Duration::from_secs(3),
        "replacement of a process older than -restart-delay 1 took {served:?}"
    );
    let (_, now) = wait_class(&apache, &a, 1, &[a_old], Duration::from_secs(5));
    assert_eq!(now, vec![a_new]);
    assert!(!pid_alive(a_old));
    for want in [
        format!(
            "FastCGI: server \"{}\" (pid {a_old}) terminated due to uncaught signal '9' (Killed)",
            a.display()
        ),
        format!("FastCGI: server \"{}\" restarted (pid {a_new})", a.display()),
    ] {
        assert!(
            apache.wait_for_log(&want, Duration::from_secs(3)),
            "missing {want:?}\n{}",
            log_tail(&apache)
        );
    }

    // b: killed when younger than its restart delay: replaced 3 s after its last spawn.
    let (_, b_now) = wait_class(&apache, &b, 1, &[b_old], Duration::from_secs(8));
    let b_new = b_now[0];
    let gap = start_time(b_new).unwrap() - b_spawn;
    eprintln!(
        "-restart-delay 3: killed at age {b_age:.2} s, replacement {b_new} spawned {gap:.2} s after the previous spawn \
         ({:.2} s after the kill)",
        gap - b_age
    );
    // Whole-second clocks allow up to 1 s early; anything below 2 s ignores the delay.
    assert!(
        (2.0..=4.5).contains(&gap),
        "replacement {gap:.2} s after the last spawn, -restart-delay 3"
    );
    assert_eq!(probe_ok(&apache, "/b.fcgi"), b_new);
    for want in [
        format!(
            "FastCGI: server \"{}\" (pid {b_old}) terminated due to uncaught signal '9' (Killed)",
            b.display()
        ),
        format!("FastCGI: server \"{}\" restarted (pid {b_new})", b.display()),
    ] {
        assert!(
            apache.wait_for_log(&want, Duration::from_secs(3)),
            "missing {want:?}\n{}",
            log_tail(&apache)
        );
    }

    // An instance that exits by itself: logged with its status and restarted.
    let exit_line = format!("FastCGI: server \"{}\" (pid ", c.display());
    assert!(
        wait_until(Duration::from_secs(6), || {
            let log = apache.error_log();
            log.lines()
                .any(|l| l.contains(&exit_line) && l.contains("terminated by calling exit with status '3'"))
                && log.contains(&format!("FastCGI: server \"{}\" restarted (pid ", c.display()))
        }),
        "no exit-status / restarted lines for {}\n{}",
        c.display(),
        log_tail(&apache)
    );
}

// ---------------------------------------------------------------------------------------
// 3. httpd restarts
// ---------------------------------------------------------------------------------------

#[test]
fn graceful_restart_keeps_unchanged_apps_and_drops_no_request() {
    let dir = TestDir::new();
    let a = probe_at(&dir, "a.fcgi");
    let b = probe_at(&dir, "b.fcgi");
    let base = "FastCgiIpcDir @ROOT@/ipc\n\
                FastCgiServer @HTDOCS@/a.fcgi -processes 2 -init-start-delay 0 -restart-delay 1";
    let conf1 = conf_in(
        &dir,
        &format!("{base}\nFastCgiServer @HTDOCS@/b.fcgi -init-start-delay 0 -restart-delay 1"),
    );
    let mut apache = Apache::start(&conf1);
    let (pm, a_pids) = wait_class(&apache, &a, 2, &[], Duration::from_secs(10));
    let (_, b_pids) = wait_class(&apache, &b, 1, &[], Duration::from_secs(10));
    probe_ok(&apache, "/a.fcgi");
    probe_ok(&apache, "/b.fcgi");

    // Phase 1: two graceful restarts with nothing changed, under load.
    let load = Load::start(apache.port(), &["/a.fcgi", "/b.fcgi"], 4);
    thread::sleep(Duration::from_millis(800));
    let mut marks = Vec::new();
    for _ in 0..2 {
        marks.push(load.elapsed());
        apache.graceful();
        marks.push(load.elapsed());
        thread::sleep(Duration::from_millis(1000));
    }
    thread::sleep(Duration::from_millis(500));
    let res = load.finish();
    eprintln!(
        "graceful x2 under load: {} requests, {} failed; graceful at/done (s): {marks:.2?}; per pid {:?}",
        res.requests,
        res.failures.len(),
        res.pids
    );
    assert!(
        res.failures.is_empty(),
        "{} of {} requests failed across two graceful restarts:\n{}\n{}",
        res.failures.len(),
        res.requests,
        res.failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n"),
        evidence(&apache)
    );
    assert!(res.requests >= 20, "the load made only {} requests", res.requests);
    assert_eq!(
        pm_pids(&apache),
        vec![pm],
        "the PM should survive graceful restarts\n{}",
        ps_tree(&apache)
    );
    assert_eq!(
        app_children(pm, &a),
        a_pids,
        "unchanged class a must keep its processes\n{}",
        evidence(&apache)
    );
    assert_eq!(
        app_children(pm, &b),
        b_pids,
        "unchanged class b must keep its processes\n{}",
        evidence(&apache)
    );

    // Phase 2: b's options change; graceful under load replaces b's processes only.
    let conf2 = conf_in(
        &dir,
        &format!("{base}\nFastCgiServer @HTDOCS@/b.fcgi -init-start-delay 0 -restart-delay 1 -initial-env CHANGED=1"),
    );
    apache.reconfigure(&conf2);
    let load = Load::start(apache.port(), &["/a.fcgi", "/b.fcgi"], 4);
    thread::sleep(Duration::from_millis(800));
    let g0 = load.elapsed();
    apache.graceful();
    let g1 = load.elapsed();
    let (_, b_new) = wait_class(&apache, &b, 1, &b_pids, Duration::from_secs(10));
    let replaced_at = load.elapsed();
    thread::sleep(Duration::from_millis(1500));
    let res = load.finish();
    eprintln!(
        "graceful with b changed, under load: {} requests, {} failed; graceful {g0:.2}-{g1:.2} s, b replaced by \
         {replaced_at:.2} s; per pid {:?}",
        res.requests,
        res.failures.len(),
        res.pids
    );
    assert!(
        res.failures.is_empty(),
        "{} of {} requests failed across a graceful restart that changed b:\n{}\n{}",
        res.failures.len(),
        res.requests,
        res.failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n"),
        evidence(&apache)
    );
    assert_eq!(
        pm_pids(&apache),
        vec![pm],
        "the PM should survive\n{}",
        ps_tree(&apache)
    );
    assert_eq!(
        app_children(pm, &a),
        a_pids,
        "unchanged class a must keep its processes\n{}",
        evidence(&apache)
    );
    assert!(
        b_pids.iter().all(|&p| !pid_alive(p)),
        "old b processes {b_pids:?} still alive\n{}",
        ps_tree(&apache)
    );
    assert_eq!(
        environ(b_new[0]),
        vec!["CHANGED=1".to_string()],
        "new b runs the new definition"
    );
    assert_eq!(probe_ok(&apache, "/b.fcgi"), b_new[0]);
}

#[test]
fn hard_restart_replaces_every_app_process() {
    let dir = TestDir::new();
    let a = probe_at(&dir, "a.fcgi");
    let b = probe_at(&dir, "b.fcgi");
    let apache = start_in(
        &dir,
        "FastCgiIpcDir @ROOT@/ipc\n\
         FastCgiServer @HTDOCS@/a.fcgi -processes 2 -init-start-delay 0 -restart-delay 1\n\
         FastCgiServer @HTDOCS@/b.fcgi -init-start-delay 0 -restart-delay 1",
    );
    let (pm, a_old) = wait_class(&apache, &a, 2, &[], Duration::from_secs(10));
    let (_, b_old) = wait_class(&apache, &b, 1, &[], Duration::from_secs(10));
    let t0 = Instant::now();
    apache.restart();
    let (pm2, a_new) = wait_class(&apache, &a, 2, &a_old, Duration::from_secs(10));
    let (_, b_new) = wait_class(&apache, &b, 1, &b_old, Duration::from_secs(10));
    let old: Vec<i32> = a_old.iter().chain(&b_old).copied().collect();
    assert!(
        wait_until(Duration::from_secs(5), || old.iter().all(|&p| !pid_alive(p))),
        "old app processes survive a hard restart: {:?}\n{}",
        old.iter().filter(|&&p| pid_alive(p)).collect::<Vec<_>>(),
        ps_of(&old)
    );
    eprintln!(
        "hard restart: PM {pm} -> {pm2}, a {a_old:?} -> {a_new:?}, b {b_old:?} -> {b_new:?} in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let r = poll_ok(apache.port(), "/a.fcgi", Duration::from_secs(10))
        .unwrap_or_else(|r| panic!("/a.fcgi after restart: {}\n{}", brief(&r), evidence(&apache)));
    assert!(a_new.contains(&served_by(&r).unwrap_or(0)));
    let r = poll_ok(apache.port(), "/b.fcgi", Duration::from_secs(10))
        .unwrap_or_else(|r| panic!("/b.fcgi after restart: {}\n{}", brief(&r), evidence(&apache)));
    assert_eq!(served_by(&r), Some(b_new[0]));
}

// ---------------------------------------------------------------------------------------
// 4. Stop, and a killed PM
// ---------------------------------------------------------------------------------------

#[test]
fn stop_leaves_no_process_and_no_socket_even_if_an_app_ignores_sigterm() {
    let dir = TestDir::new();
    let a = probe_at(&dir, "a.fcgi");
    let stubborn = dir.write(
        "htdocs/stubborn.py",
        "#!/usr/bin/python3\nimport signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
         while True:\n    time.sleep(1)\n",
        0o755,
    );
    let tcp_app = probe_at(&dir, "tcp.fcgi");
    let port = free_port();
    let mut apache = start_in(
        &dir,
        &format!(
            "FastCgiIpcDir @ROOT@/ipc\n\
             FastCgiServer @HTDOCS@/a.fcgi -processes 2 -init-start-delay 0\n\
             FastCgiServer @HTDOCS@/stubborn.py -socket stubborn.sock -init-start-delay 0\n\
             FastCgiServer @HTDOCS@/tcp.fcgi -port 127.0.0.1:{port} -init-start-delay 0"
        ),
    );
    let (pm, a_pids) = wait_class(&apache, &a, 2, &[], Duration::from_secs(10));
    let (_, st_pids) = wait_class(&apache, &stubborn, 1, &[], Duration::from_secs(10));
    let (_, tcp_pids) = wait_class(&apache, &tcp_app, 1, &[], Duration::from_secs(10));
    probe_ok(&apache, "/a.fcgi");
    probe_ok(&apache, "/tcp.fcgi");
    // Wait until the stubborn app really ignores SIGTERM (bit 15).
    assert!(
        wait_until(Duration::from_secs(10), || sig_ignored(st_pids[0])
            & (1 << (libc::SIGTERM - 1))
            != 0),
        "stubborn.py never ignored SIGTERM\n{}",
        ps_tree(&apache)
    );
    let ipc = dir.join("ipc");
    let socks = [ipc.join(md5_hex(s(&a).as_bytes())), ipc.join("stubborn.sock")];
    for sk in &socks {
        assert!(sk.exists(), "{} missing before stop", sk.display());
    }
    let mut ours: Vec<i32> = vec![pm];
    ours.extend(&a_pids);
    ours.extend(&st_pids);
    ours.extend(&tcp_pids);
    let before = ps_of(&ours);

    let took = apache.stop();
    eprintln!("stop with a SIGTERM-ignoring app took {:.2} s", took.as_secs_f64());
    let gone = wait_until(Duration::from_secs(1), || ours.iter().all(|&p| !pid_alive(p)));
    let survivors: Vec<i32> = ours.iter().copied().filter(|&p| pid_alive(p)).collect();
    assert!(
        gone,
        "processes survive the stop: {survivors:?}\n--- before ---\n{before}--- after ---\n{}\n--- error_log ---\n{}",
        ps_of(&survivors),
        log_tail(&apache)
    );
    assert!(
        took < Duration::from_secs(10),
        "apache2 did not exit by itself within 10 s of SIGTERM (took {took:?})\n{}",
        log_tail(&apache)
    );
    for app in [&a, &stubborn, &tcp_app] {
        let left = all_app_processes(app);
        assert!(left.is_empty(), "{} still running: {}", app.display(), ps_of(&left));
    }
    // No socket file of ours remains in the IPC dir (sub-directories may).
    let mut leftovers = Vec::new();
    let mut todo = vec![ipc.clone()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                todo.push(e.path());
            } else if ft.is_socket() {
                leftovers.push(e.path());
            } else {
                eprintln!("note: non-socket file left in the IPC dir: {}", e.path().display());
            }
        }
    }
    assert!(
        leftovers.is_empty(),
        "sockets left in the IPC dir after stop: {leftovers:?}"
    );
    for sk in &socks {
        assert!(!sk.exists(), "{} left after stop", sk.display());
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on the -port {port} after stop"
    );
}

/// The only fcgi-pm of `apache` that is not one of `not`.
fn wait_new_pm(apache: &Apache, not: &[i32]) -> i32 {
    let mut pm = 0;
    let ok = wait_until(Duration::from_secs(10), || {
        let pms: Vec<i32> = pm_pids(apache).into_iter().filter(|p| !not.contains(p)).collect();
        pm = pms.first().copied().unwrap_or(0);
        pms.len() == 1
    });
    assert!(ok, "no new fcgi-pm (besides {not:?}) within 10 s\n{}", evidence(apache));
    pm
}

// Issue 12: a process manager that keeps dying right after it started is
// not re-forked on every reap without pause: after the second death in a
// row the next one waits 1 s, then 2 s, 4 s ... (up to 60 s) before it
// starts, with one log line per step.
#[test]
fn pm_dying_at_start_up_is_restarted_with_back_off() {
    let dir = TestDir::new();
    let a = probe_at(&dir, "a.fcgi");
    let apache = start_in(
        &dir,
        "FastCgiIpcDir @ROOT@/ipc\nFastCgiServer @HTDOCS@/a.fcgi -processes 1 -init-start-delay 0 -restart-delay 1",
    );
    let mark = apache.log_mark();
    // Four deaths in a row, each soon after the PM was forked (well within
    // the 10 s a PM must live to count as started).
    let mut killed = Vec::new();
    for _ in 0..4 {
        let pm = wait_new_pm(&apache, &killed);
        kill9(pm);
        killed.push(pm);
        assert!(
            apache.wait_for_log_after(
                mark,
                &format!("process manager (pid {pm}) exited"),
                Duration::from_secs(10)
            ),
            "httpd did not notice the death of fcgi-pm {pm}\n{}",
            evidence(&apache)
        );
    }
    let log = apache.error_log_since(mark);
    for secs in [1, 2] {
        assert!(
            log.contains("at start-up (") && log.contains(&format!("the next one starts in {secs} s")),
            "no back-off step of {secs} s logged\n{}",
            evidence(&apache)
        );
    }
    assert_eq!(
        log.matches("FastCGI: process manager (pid").count(),
        4,
        "one line per death (each one a new step here)\n{log}"
    );
    // The PM forked after the last death (which asked for 2 s or more)
    // exists at once but does not start before its delay...
    let pm = wait_new_pm(&apache, &killed);
    let started = format!("FastCGI: process manager initialized (pid {pm})");
    assert!(
        !apache.wait_for_log_after(mark, &started, Duration::from_secs(1)),
        "fcgi-pm {pm} started without waiting\n{}",
        evidence(&apache)
    );
    // ... and then serves, with the killed PMs' applications gone.
    assert!(
        apache.wait_for_log_after(mark, &started, Duration::from_secs(20)),
        "fcgi-pm {pm} never started\n{}",
        evidence(&apache)
    );
    let (pm2, apps) = wait_class(&apache, &a, 1, &[], Duration::from_secs(10));
    assert_eq!(pm2, pm);
    probe_ok(&apache, "/a.fcgi");
    let all_gone = wait_until(Duration::from_secs(5), || all_app_processes(&a) == apps);
    assert!(
        all_gone,
        "applications of killed PMs survive: {}\n{}",
        ps_of(&all_app_processes(&a)),
        evidence(&apache)
    );
}

#[test]
fn killed_pm_is_replaced_with_fresh_applications() {
    let dir = TestDir::new();
    let a = probe_at(&dir, "a.fcgi");
    let apache = start_in(
        &dir,
        "FastCgiIpcDir @ROOT@/ipc\nFastCgiServer @HTDOCS@/a.fcgi -processes 2 -init-start-delay 0 -restart-delay 1",
    );
    let (pm, old) = wait_class(&apache, &a, 2, &[], Duration::from_secs(10));
    probe_ok(&apache, "/a.fcgi");
    let mark = apache.log_mark();
    let t0 = Instant::now();
    kill9(pm);

    let noticed = apache.wait_for_log_after(
        mark,
        &format!("process manager (pid {pm}) exited"),
        Duration::from_secs(10),
    );
    let t_noticed = t0.elapsed();
    assert!(
        noticed,
        "httpd did not log 'process manager (pid {pm}) exited' within 10 s\n{}",
        evidence(&apache)
    );
    let old_gone = wait_until(Duration::from_secs(5), || old.iter().all(|&p| !pid_alive(p)));
    let t_old_gone = t0.elapsed();
    assert!(
        old_gone,
        "applications of the killed PM survive: {}\n{}",
        ps_of(&old),
        evidence(&apache)
    );
    let (pm2, new) = wait_class(&apache, &a, 2, &old, Duration::from_secs(10));
    assert_ne!(pm2, pm);
    assert_eq!(ppid_of(pm2), apache.pid());
    assert_www(pm2, "new fcgi-pm");
    let r = poll_ok(
        apache.port(),
        "/a.fcgi",
        Duration::from_secs(10).saturating_sub(t0.elapsed()),
    )
    .unwrap_or_else(|r| panic!("/a.fcgi after the PM was killed: {}\n{}", brief(&r), evidence(&apache)));
    let t_serving = t0.elapsed();
    assert!(
        new.contains(&served_by(&r).unwrap_or(0)),
        "served by {:?}, new {new:?}",
        served_by(&r)
    );
    eprintln!(
        "kill -9 fcgi-pm {pm}: noticed after {:.2} s, old apps gone after {:.2} s, new PM {pm2} with {new:?}, \
         serving after {:.2} s",
        t_noticed.as_secs_f64(),
        t_old_gone.as_secs_f64(),
        t_serving.as_secs_f64()
    );
    assert!(
        apache.wait_for_log_after(
            mark,
            &format!("FastCGI: process manager initialized (pid {pm2})"),
            Duration::from_secs(3)
        ),
        "no 'process manager initialized (pid {pm2})'\n{}",
        log_tail(&apache)
    );
}

// ---------------------------------------------------------------------------------------
// 5. The seed guide's static configurations
// ---------------------------------------------------------------------------------------

fn check_seed_app(apache: &Apache, app: &Path) -> Vec<i32> {
    let (_, pids) = wait_class(apache, app, 4, &[], Duration::from_secs(12));
    for &p in &pids {
        assert_www(p, "app.py");
        assert_eq!(cwd_of(p), apache.htdocs(), "cwd of app.py {p}");
    }
    let mut starts: Vec<f64> = pids.iter().filter_map(|&p| start_time(p)).collect();
    starts.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let gaps: Vec<String> = starts.windows(2).map(|w| format!("{:.2}", w[1] - w[0])).collect();
    let span = starts.last().unwrap() - starts[0];
    eprintln!("seed app.py instances {pids:?}, start gaps (default -init-start-delay) {gaps:?} s");
    assert!(
        span >= 1.9,
        "4 instances with the default -init-start-delay 1 started within {span:.2} s (gaps {gaps:?})"
    );
    for _ in 0..8 {
        let r = get_t(apache.port(), "/app.py");
        assert!(
            r.status == 200 && r.complete && r.text().contains("<h1>Hello world!</h1>"),
            "GET /app.py: {}\n{}",
            brief(&r),
            evidence(apache)
        );
    }
    pids
}

#[test]
fn seed_for_the_lazy_static_mode_with_socket() {
    let dir = TestDir::new();
    let app = seed_app(&dir);
    let sock = dir.sock_dir().join("fcgi.sock");
    let apache = start_in(
        &dir,
        &format!(
            "<VirtualHost 127.0.0.1:@PORT@>\n\
             \x20   ServerName test\n\
             \n\
             \x20   DocumentRoot @HTDOCS@/\n\
             \x20   <Directory />\n\
             \x20       # The guide writes `Options FollowSymLinks +ExecCGI`; httpd 2.4 itself\n\
             \x20       # refuses mixing plain and +/- options, so both carry a +.\n\
             \x20       Options +FollowSymLinks +ExecCGI\n\
             \x20       AllowOverride All\n\
             \x20   </Directory>\n\
             \n\
             \x20   <Files app.py>\n\
             \x20       SetHandler fastcgi-script\n\
             \x20   </Files>\n\
             \n\
             \x20   FastCgiServer @HTDOCS@/app.py -processes 4 -socket {}\n\
             </VirtualHost>",
            sock.display()
        ),
    );
    let pids = check_seed_app(&apache, &app);
    let m = fs::symlink_metadata(&sock).unwrap_or_else(|e| panic!("{} missing: {e}", sock.display()));
    assert!(m.file_type().is_socket());
    assert_eq!(m.uid(), WWW_UID);
    let ino = unix_listener_inode(&sock);
    for &p in &pids {
        assert_eq!(
            fd_socket_inode(p, 0),
            ino,
            "fd 0 of app.py {p} should be {}",
            sock.display()
        );
    }
}

#[test]
fn seed_static_mode_with_port() {
    let dir = TestDir::new();
    let app = seed_app(&dir);
    let port = free_port();
    let apache = start_in(
        &dir,
        &format!(
            "<Files app.py>\n    SetHandler fastcgi-script\n</Files>\n\
             FastCgiServer @HTDOCS@/app.py -processes 4 -port {port}"
        ),
    );
    let pids = check_seed_app(&apache, &app);
    for &p in &pids {
        let ino = fd_socket_inode(p, 0).expect("fd 0 is a socket");
        assert_eq!(
            tcp_listener_of_inode(ino).map(|(_, a)| a),
            Some(format!("00000000:{port:04X}")),
            "fd 0 of app.py {p}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. Configuration errors (apache2 -t)
// ---------------------------------------------------------------------------------------

#[test]
fn config_errors_fail_the_config_test() {
    let dir = TestDir::new();
    let ok_app = probe_at(&dir, "ok.fcgi");
    let noexec = dir.write("htdocs/noexec.fcgi", "#!/bin/sh\n", 0o644);
    let adir = dir.mkdir("htdocs/adir");
    let missing = dir.join("htdocs/missing.fcgi");
    let (ok, out) = Apache::config_test(&conf_in(
        &dir,
        &format!(
            "FastCgiServer {} -processes 2 -port 127.0.0.1:{}",
            ok_app.display(),
            free_port()
        ),
    ));
    assert!(ok, "a valid FastCgiServer fails apache2 -t:\n{out}");
    let o = s(&ok_app);
    let cases: Vec<(String, String)> = vec![
        (
            format!("FastCgiServer {}", missing.display()),
            format!(
                "FastCgiServer: \"{0}\" stat({0}) failed: No such file or directory",
                missing.display()
            ),
        ),
        (
            format!("FastCgiServer {}", noexec.display()),
            format!(
                "FastCgiServer: \"{}\" access for server (uid 33, gid 33) not allowed: execute not allowed",
                noexec.display()
            ),
        ),
        (
            format!("FastCgiServer {}", adir.display()),
            format!("FastCgiServer: \"{}\" script is a directory!", adir.display()),
        ),
        (
            format!("FastCgiServer {o} -processes 0"),
            format!("FastCgiServer {o}: invalid value for -processes: \"0\" must be >= 1"),
        ),
        (
            format!("FastCgiServer {o} -processes x"),
            format!("FastCgiServer {o}: invalid value for -processes: \"x\" must be a positive integer"),
        ),
        (
            format!("FastCgiServer {o} -port 1 -socket s"),
            format!("FastCgiServer {o}: -port and -socket are mutually exclusive options"),
        ),
        (
            format!("FastCgiServer {o}\nFastCgiServer {o} -processes 2"),
            format!("FastCgiServer: redefinition of a previously defined FastCGI server \"{o}\""),
        ),
    ];
    let mut bad = Vec::new();
    for (conf, want) in &cases {
        let (ok, out) = Apache::config_test(&conf_in(&dir, conf));
        if ok || !out.contains(want.as_str()) {
            bad.push(format!(
                "config:\n{conf}\nwanted a failure with: {want}\ngot (ok={ok}):\n{out}"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n----\n"));
}

/// FastCgiWrapper (PM-27): the application is started as `wrapper user group basename`,
/// in the application's directory, with the same environment; it then runs under the
/// wrapper (here a logging shell script that execs the application).
#[test]
fn wrapper_gets_the_legacy_arguments_and_runs_the_app() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "fcgi/wrapped.fcgi");
    let (wrapper, log) = dir.logging_wrapper();
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiWrapper {}\nFastCgiServer {} -processes 2 -init-start-delay 0 -initial-env WRAPPED=yes",
            s(&wrapper),
            s(&app)
        ),
    );
    let pid = probe_ok(&apache, "/fcgi/wrapped.fcgi?mode=env");
    assert!(
        apache.error_log().contains(&format!(
            "FastCGI: wrapper mechanism enabled (wrapper: {})",
            s(&wrapper)
        )),
        "{}",
        evidence(&apache)
    );
    let lines = fs::read_to_string(&log).expect("read wrap.log");
    let want = format!(
        "uid=33 cwd={} argc=3 args=www-data www-data wrapped.fcgi",
        s(app.parent().unwrap())
    );
    assert!(
        lines.lines().count() >= 1 && lines.lines().all(|l| l == want),
        "wrapper log:\n{lines}\nwanted lines equal to: {want}"
    );
    // The process that serves is the application the wrapper exec'd: same pid the
    // wrapper had, a child of the PM, running as www-data with only -initial-env.
    let pm = pm_pids(&apache)[0];
    assert_eq!(ppid_of(pid), pm, "{}", evidence(&apache));
    assert_www(pid, "wrapped app");
    // (/bin/sh itself exports PWD before exec'ing the application.)
    let env: Vec<String> = environ(pid).into_iter().filter(|v| !v.starts_with("PWD=")).collect();
    assert_eq!(env, vec!["WRAPPED=yes".to_string()]);
    // The PM keeps no uid of root, only CAP_KILL (to signal wrapped applications a
    // setuid wrapper moved to another user); the application gets no capability.
    assert_pm_keeps_only_cap_kill(pm);
    let (app_uids, _) = ids(pid);
    assert_eq!(app_uids, vec![33, 33, 33, 33], "app uids");
    assert_eq!(cap_sets(pid), (0, 0), "app CapPrm/CapEff");
}

/// (`CapPrm`, `CapEff`) of `pid`.
fn cap_sets(pid: i32) -> (u64, u64) {
    let st = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hex = |key: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(u64::MAX)
    };
    (hex("CapPrm:"), hex("CapEff:"))
}

const CAP_KILL_MASK: u64 = 1 << 5;

/// Issue 12: with a wrapper, the PM used to keep a saved uid of 0 for its whole life.
fn assert_pm_keeps_only_cap_kill(pm: i32) {
    let (uids, gids) = ids(pm);
    assert_eq!(uids, vec![33, 33, 33, 33], "PM uids (real, effective, saved, fs)");
    assert_eq!(gids, vec![33, 33, 33, 33], "PM gids");
    assert_eq!(
        cap_sets(pm),
        (CAP_KILL_MASK, CAP_KILL_MASK),
        "PM CapPrm/CapEff: CAP_KILL only"
    );
}

/// A setuid-root wrapper that runs the application as nobody (65534), in C: the PM,
/// running as www-data, can signal such an application only with CAP_KILL (or root).
fn nobody_wrapper(dir: &TestDir) -> PathBuf {
    let src = dir.write(
        "bin/nobodywrap.c",
        "#include <grp.h>\n#include <limits.h>\n#include <stdlib.h>\n#include <unistd.h>\n\
         int main(int argc, char **argv) {\n\
           char path[PATH_MAX];\n\
           char *args[2];\n\
           if (argc < 4 || !realpath(argv[3], path)) return 111;\n\
           if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) return 112;\n\
           args[0] = path;\n\
           args[1] = NULL;\n\
           execv(path, args);\n\
           return 113;\n\
         }\n",
        0o644,
    );
    let bin = dir.join("bin/nobodywrap");
    let st = std::process::Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(st.success(), "cc nobodywrap.c failed");
    chown(&bin, Some(0), Some(0)).expect("chown wrapper");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o4755)).expect("chmod wrapper");
    let _ = fs::set_permissions(dir.join("bin"), fs::Permissions::from_mode(0o755));
    bin
}

/// Issue 12: the PM of a wrapper configuration keeps no uid 0, only CAP_KILL — and
/// that is enough to stop applications a setuid wrapper runs as another user: a
/// graceful restart that changes the class replaces its process (SIGTERM from the
/// surviving PM, which runs as www-data).
#[test]
fn pm_with_a_wrapper_keeps_only_cap_kill_and_still_stops_other_users_apps() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "fcgi/nobody.fcgi");
    let wrapper = nobody_wrapper(&dir);
    let conf = |env: &str| {
        conf_in(
            &dir,
            &format!(
                "FastCgiIpcDir @ROOT@/ipc\nFastCgiWrapper {}\n\
                 FastCgiServer {} -init-start-delay 0 -restart-delay 1 -initial-env V={env}",
                s(&wrapper),
                s(&app)
            ),
        )
    };
    let mut apache = Apache::start(&conf("1"));
    let (pm, old) = wait_class(&apache, &app, 1, &[], Duration::from_secs(10));
    assert_eq!(probe_ok(&apache, "/fcgi/nobody.fcgi"), old[0]);
    assert_eq!(ids(old[0]).0, vec![65534; 4], "the wrapper runs the app as nobody");
    assert_pm_keeps_only_cap_kill(pm);

    apache.reconfigure(&conf("2"));
    apache.graceful();
    let (pm2, new) = wait_class(&apache, &app, 1, &old, Duration::from_secs(10));
    assert_eq!(pm2, pm, "the PM survives a graceful restart");
    assert!(
        wait_until(Duration::from_secs(10), || !pid_alive(old[0])),
        "the PM could not stop the old application running as nobody\n{}",
        evidence(&apache)
    );
    assert_eq!(environ(new[0]), vec!["V=2".to_string()]);
    assert_eq!(probe_ok(&apache, "/fcgi/nobody.fcgi"), new[0]);
    apache.stop();
}

/// graceful-stop (SIGWINCH): in-flight requests finish, then every application is
/// stopped and its socket removed.
#[test]
fn graceful_stop_finishes_requests_then_stops_apps() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "slow.fcgi");
    let mut apache = start_in(&dir, &format!("FastCgiServer {} -processes 1", s(&app)));
    let (_pm, pids) = wait_class(&apache, &app, 1, &[], Duration::from_secs(10));
    let port = apache.port();
    let inflight = thread::spawn(move || get_t(port, "/slow.fcgi?mode=sleep&ms=1500"));
    thread::sleep(Duration::from_millis(300));
    apache.signal(libc::SIGWINCH);
    let r = inflight.join().expect("client thread");
    assert_eq!(r.status, 200, "in-flight request during graceful-stop: {}", brief(&r));
    assert!(
        wait_until(Duration::from_secs(15), || !apache.alive()),
        "apache did not exit after graceful-stop\n{}",
        evidence(&apache)
    );
    apache.stop();
    assert!(
        wait_until(Duration::from_secs(5), || pids.iter().all(|&p| !pid_alive(p))),
        "app processes left after graceful-stop: {}",
        ps_of(&pids)
    );
    let ipc = dir.join("run/fastcgi");
    let leftovers: Vec<_> = fs::read_dir(&ipc)
        .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| n != "dynamic").collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "sockets left in {}: {leftovers:?}", ipc.display());
}

/// Issue 12 (log rotation): logrotate renames the error log and reloads httpd, which
/// re-opens ErrorLog; the process manager survives the graceful restart and must follow
/// it. Its own lines and the stdout/stderr of every application go to the new file, none
/// to the renamed one: an application process that kept running across the restart, a
/// restarted process of a kept class, and a class new in this generation.
#[test]
fn pm_and_applications_follow_the_error_log_after_rotation() {
    follow_the_error_log_after_rotation("");
}

/// The same with a piped logger (`ErrorLog "|…"`, here one appending to the same file):
/// httpd starts a new logger for each configuration and the old one goes; the PM must
/// switch to the new pipe.
#[test]
fn pm_and_applications_follow_a_piped_error_log_after_rotation() {
    follow_the_error_log_after_rotation("ErrorLog \"|/bin/sh -c 'exec /bin/cat >> @ROOT@/logs/error_log'\"\n");
}

fn follow_the_error_log_after_rotation(error_log: &str) {
    let dir = TestDir::new();
    let a = probe_at(&dir, "a.fcgi");
    let k = probe_at(&dir, "k.fcgi");
    let b = probe_at(&dir, "b.fcgi");
    let base = format!(
        "{error_log}FastCgiIpcDir @ROOT@/ipc\n\
         FastCgiServer @HTDOCS@/a.fcgi -init-start-delay 0 -restart-delay 0\n\
         FastCgiServer @HTDOCS@/k.fcgi -init-start-delay 0 -restart-delay 0"
    );
    let mut apache = Apache::start(&conf_in(&dir, &base).log_level("info"));
    let (_, a_pids) = wait_class(&apache, &a, 1, &[], Duration::from_secs(10));
    let (_, k_pids) = wait_class(&apache, &k, 1, &[], Duration::from_secs(10));
    probe_ok(&apache, "/a.fcgi?mode=fd2&tag=before");
    assert!(
        apache.wait_for_log("probe fd2 line before", Duration::from_secs(5)),
        "the application's fd 2 is not the error log\n{}",
        evidence(&apache)
    );

    // What logrotate does by default (no copytruncate): rename, then reload.
    let current = apache.root().join("logs/error_log");
    let rotated = apache.root().join("logs/error_log.1");
    fs::rename(&current, &rotated).expect("rotate the error log");
    apache.reconfigure(
        &conf_in(
            &dir,
            &format!("{base}\nFastCgiServer @HTDOCS@/b.fcgi -init-start-delay 0 -restart-delay 0"),
        )
        .log_level("info"),
    );
    apache.graceful();
    wait_class(&apache, &b, 1, &[], Duration::from_secs(10));
    kill9(k_pids[0]);
    wait_class(&apache, &k, 1, &k_pids, Duration::from_secs(10));
    let kept = probe_ok(&apache, "/a.fcgi?mode=fd2&tag=kept");
    assert_eq!(kept, a_pids[0], "a's process was replaced: the test needs it kept");
    probe_ok(&apache, "/b.fcgi?mode=fd2&tag=new-class");
    probe_ok(&apache, "/k.fcgi?mode=fd2&tag=restarted");

    let expected = [
        "process manager: configuration of generation",
        "probe fd2 line kept",
        "probe fd2 line new-class",
        "probe fd2 line restarted",
    ];
    let all_there = wait_until(Duration::from_secs(5), || {
        let log = apache.error_log();
        expected.iter().all(|e| log.contains(e))
    });
    let new_log = apache.error_log();
    // The rotated file legitimately holds the first generation's lines: look only
    // past the last line written before the rotation.
    let old_log = fs::read_to_string(&rotated).unwrap_or_default();
    let old_tail = old_log.split("probe fd2 line before").nth(1).unwrap_or("");
    assert!(
        all_there,
        "after rotation + graceful, missing from the new error log: {:?}\n--- new error_log ---\n{}\n--- rotated error_log.1 (after the rotation) ---\n{}",
        expected.iter().filter(|e| !new_log.contains(*e)).collect::<Vec<_>>(),
        new_log,
        old_tail
    );
    for e in expected {
        assert!(
            !old_tail.contains(e),
            "\"{e}\" went to the rotated error log\n--- error_log.1 ---\n{old_tail}"
        );
    }
    apache.stop();
}

// Issue 12: a retired class waits for the previous generation's *workers*
// only. httpd's other children — a piped ErrorLog's logger and mod_cgid's
// daemon — never exit while the server runs; waiting for them kept a
// removed application running the full 600 s after a restart.
fn removed_class_stops_promptly_with_logger_and_cgid(restart: fn(&Apache), within: Duration) {
    let dir = TestDir::new();
    let a = probe_at(&dir, "a.fcgi");
    let b = probe_at(&dir, "b.fcgi");
    let base = "ErrorLog \"|/bin/sh -c 'exec /bin/cat >> @ROOT@/logs/error_log'\"\n\
                FastCgiIpcDir @ROOT@/ipc\n\
                FastCgiServer @HTDOCS@/a.fcgi -init-start-delay 0 -restart-delay 1";
    let with_b = format!("{base}\nFastCgiServer @HTDOCS@/b.fcgi -init-start-delay 0 -restart-delay 1");
    let mut apache = Apache::start(&conf_in(&dir, &with_b).with_module("cgid"));
    wait_class(&apache, &a, 1, &[], Duration::from_secs(10));
    let (_, b_pids) = wait_class(&apache, &b, 1, &[], Duration::from_secs(10));
    probe_ok(&apache, "/b.fcgi");
    // The condition under test: httpd has children that are not workers.
    let others = |apache: &Apache| {
        apache
            .child_pids()
            .into_iter()
            .filter(|&p| pid_cmdline(p).is_some_and(|c| c.contains("cat") || c.contains("apache2")))
            .count()
    };
    assert!(
        others(&apache) >= 2,
        "no piped logger or mod_cgid daemon among httpd's children\n{}",
        ps_tree(&apache)
    );

    apache.reconfigure(&conf_in(&dir, base).with_module("cgid"));
    let t0 = Instant::now();
    restart(&apache);
    let gone = wait_until(within, || b_pids.iter().all(|&p| !pid_alive(p)));
    eprintln!(
        "removed class stopped after the restart: {gone} after {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        gone,
        "the removed application b {b_pids:?} still runs {within:?} after the restart\n{}",
        evidence(&apache)
    );
    probe_ok(&apache, "/a.fcgi");
    apache.stop();
}

#[test]
fn removed_class_stops_within_seconds_of_a_hard_restart_with_piped_logger_and_cgid() {
    removed_class_stops_promptly_with_logger_and_cgid(|a| a.restart(), Duration::from_secs(10));
}

/// The same across a graceful restart: the old workers finish (idle, or
/// after KeepAliveTimeout 5 s) and the removed class goes right after them.
#[test]
fn removed_class_stops_after_the_old_workers_of_a_graceful_restart_with_piped_logger_and_cgid() {
    removed_class_stops_promptly_with_logger_and_cgid(|a| a.graceful(), Duration::from_secs(30));
}

/// Issue 12: when a process of a static application dies during a request,
/// the request's error line names it and says how it died (the process
/// manager records the death; the handler waits for it briefly).
#[test]
fn a_process_dying_during_a_request_is_named_in_its_error_line() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "st/probe.fcgi");
    let apache = start_in(
        &dir,
        "FastCgiIpcDir @ROOT@/ipc\nFastCgiServer @HTDOCS@/st/probe.fcgi -processes 1 -restart-delay 0 -init-start-delay 0",
    );
    let a = app.display().to_string();
    // The request's own error line (the process manager's warning is another).
    let request_line = |mark: usize, what: &str| -> String {
        let found = |log: &str| {
            log.lines()
                .find(|l| l.contains(":error]") && l.contains(what) && l.contains(&a))
                .map(String::from)
        };
        wait_until(Duration::from_secs(5), || {
            found(&apache.error_log_since(mark)).is_some()
        });
        let log = apache.error_log_since(mark);
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(":error]") && l.contains("FastCGI:"))
            .collect();
        assert_eq!(errors.len(), 1, "one error line expected:\n{log}");
        found(&log).unwrap_or_else(|| panic!("no error line with {what:?}:\n{log}"))
    };

    // A GET that makes the process die before any header: the one line
    // names the process. (A GET whose fresh connection broke before any
    // answer is sent once more: the next process may die of it too, and is
    // named as well — hence "contains".)
    let crash = |query: &str, how: &str| {
        let (_, pid) = probe_ok_response(&apache, "/st/probe.fcgi?mode=env");
        let mark = apache.log_mark();
        let r = get_t(apache.port(), &format!("/st/probe.fcgi?{query}"));
        assert_eq!(r.status, 500, "{}", brief(&r));
        let line = request_line(mark, "incomplete headers (0 bytes)");
        assert!(
            line.contains("died during the request (") && line.contains(&format!("pid {pid}, {how}")),
            "{line}"
        );
    };
    crash("mode=crash_before_headers&how=abort", "signal 6 (Aborted)");
    crash("mode=crash_before_headers", "exit status 1");

    // Killed from outside (as the OOM killer would) while sleeping in a POST.
    let (_, pid) = probe_ok_response(&apache, "/st/probe.fcgi?mode=env");
    let mark = apache.log_mark();
    let port = apache.port();
    let t = thread::spawn(move || post(port, "/st/probe.fcgi?mode=sleep&ms=5000", b"x=1", "text/plain"));
    thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let r = t.join().unwrap();
    // (500 on a fresh connection; 502 when the POST went on the connection
    // kept from the request before: "closed a kept connection".)
    assert!(r.status == 500 || r.status == 502, "{}", brief(&r));
    let line = request_line(mark, "FastCGI:");
    assert!(
        line.contains(&format!("died during the request (pid {pid}, signal 9 (Killed))")),
        "{line}"
    );

    // Dying in the middle of the body: the response is cut, the line says why.
    let (_, pid) = probe_ok_response(&apache, "/st/probe.fcgi?mode=env");
    let mark = apache.log_mark();
    let r = get_t(apache.port(), "/st/probe.fcgi?mode=crash_mid_body");
    assert!(!r.complete, "{}", brief(&r));
    let line = request_line(mark, "response already started");
    assert!(
        line.contains(&format!("died during the request (pid {pid}, exit status 1)")),
        "{line}"
    );

    // A failure that is not a death says nothing of the kind.
    let mark = apache.log_mark();
    let r = get_t(apache.port(), "/st/probe.fcgi?mode=badheader");
    assert_eq!(r.status, 500, "{}", brief(&r));
    request_line(mark, "FastCGI:");
    let log = apache.error_log_since(mark);
    assert!(!log.contains("died during the request"), "{log}");
    probe_ok(&apache, "/st/probe.fcgi?mode=env");
}
