//! End-to-end tests of [`run`]: the real event loop, sockets and processes.
//!
//! `run` must own its process (it blocks signals and reaps every child), so each test
//! runs it in a forked child of the test process ([`crate::sys::fork::fork_run`]) and
//! watches from outside: the PM's log lines go to a file, the applications are small
//! shell scripts that `exec /bin/sleep`, and their set-up is read from `/proc`.

use super::*;
use crate::sys::fork::fork_run;
use nix::sys::signal::kill;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Appends `<level> <errno> <msg>` lines to a file (no state shared with other threads).
struct FileLog(PathBuf);

impl PmLog for FileLog {
    fn log(&self, level: LogLevel, errno: i32, msg: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.0) {
            let _ = writeln!(f, "{level:?} {errno} {msg}");
        }
    }
}

/// Kills the PM (and, through PDEATHSIG, its applications) and removes the directory if
/// a test fails half-way.
struct Guard {
    pm: Option<Pid>,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(pid) = self.pm.take() {
            let _ = kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

thread_local! {
    /// The running test's directory, for the diagnostics of [`wait_for`].
    static TEST_DIR: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            let logs = TEST_DIR.with(|d| {
                d.borrow().as_ref().map(|d| {
                    format!(
                        "pm.log:\n{}\nerror.log:\n{}",
                        read(d.join("pm.log")),
                        read(d.join("error.log"))
                    )
                })
            });
            panic!("timed out waiting for {what}\n{}", logs.unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// pids from `FastCGI: server "<app>" started|restarted (pid N)` lines.
fn spawned(log: &Path, app: &Path) -> Vec<i32> {
    let prefix = format!("FastCGI: server \"{}\" ", app.display());
    read(log)
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, r)| r))
        .filter_map(|r| {
            r.strip_prefix("started (pid ")
                .or_else(|| r.strip_prefix("restarted (pid "))
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    crate::pm::os::is_alive(pid)
}

fn write_app(path: &Path) {
    // No PATH in the environment: builtins and absolute paths only.
    std::fs::write(
        path,
        "#!/bin/sh\necho \"$0|$#|$(pwd)\" > \"args.$$\"\necho app-stderr-$$ >&2\necho app-stdout-$$\nexec /bin/sleep 1000\n",
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Setup {
    guard: Guard,
    dir: PathBuf,
    pm_log: PathBuf,
    err_log: PathBuf,
    ctl: UnixStream,
    /// The request handlers' end of the datagram socketpair.
    req: UnixDatagram,
}

/// Forks a PM with `first`; its fd 2 is `<dir>/error.log`.
fn start_pm(dir: PathBuf, first: PmConfig) -> Setup {
    let pm_log = dir.join("pm.log");
    let err_log = dir.join("error.log");
    let (ctl, pm_end) = UnixStream::pair().unwrap();
    let (req, pm_req) = UnixDatagram::pair().unwrap();
    let ctl_raw = ctl.as_raw_fd();
    let req_raw = req.as_raw_fd();
    let log_path = pm_log.clone();
    let err_file = std::fs::File::create(&err_log).unwrap();
    let pid = fork_run(move || {
        // The test's end of the control socket must not stay open in the PM.
        let _ = nix::unistd::close(ctl_raw);
        let _ = nix::unistd::close(req_raw);
        let _ = nix::unistd::dup2(err_file.as_raw_fd(), 2);
        // A descriptor without close-on-exec, as httpd's would be: must not leak.
        let leak = nix::unistd::dup(err_file.as_raw_fd()).unwrap();
        assert!(fcntl(leak, FcntlArg::F_GETFD).unwrap() & libc::FD_CLOEXEC == 0);
        drop(err_file);
        run(
            first,
            OwnedFd::from(pm_end),
            OwnedFd::from(pm_req),
            &FileLog(log_path),
            &super::NoReport,
        )
    })
    .unwrap();
    Setup {
        guard: Guard {
            pm: Some(pid),
            dir: dir.clone(),
        },
        dir,
        pm_log,
        err_log,
        ctl,
        req,
    }
}

fn send(ctl: &mut UnixStream, msg: &CtlMsg) {
    let mut buf = Vec::new();
    encode(msg, &mut buf);
    ctl.write_all(&buf).unwrap();
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mod_fastcgi-pm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::create_dir_all(dir.join("ipc")).unwrap();
    TEST_DIR.with(|d| *d.borrow_mut() = Some(dir.clone()));
    dir
}

fn class(path: &Path, listen: Listen, processes: u32) -> ClassSpec {
    ClassSpec {
        path: path.to_path_buf(),
        listen,
        processes,
        restart_delay: 0,
        init_start_delay: 0,
        min_server_life: 30,
        priority: 1,
        listen_queue_depth: 10,
        initial_env: vec![("FOO".into(), "bar baz".into()), ("EMPTY".into(), String::new())],
        app_mtime: 1,
        wrapper: None,
    }
}

fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn nice_of(pid: i32) -> i64 {
    let stat = read(format!("/proc/{pid}/stat"));
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    // Fields after comm start at 3 (state); nice is field 19.
    after.split(' ').nth(19 - 3).unwrap().parse().unwrap()
}

/// Checks one application process as PM-25 describes it.
fn check_app(pid: i32, pm: Pid, app: &Path, s: &Setup) {
    wait_for("exec of sleep", || {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .filter(|p| p.to_string_lossy().ends_with("/sleep"))
    });
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let mut fds: Vec<i32> = std::fs::read_dir(proc_dir.join("fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    assert_eq!(fds, vec![0, 1, 2], "only fds 0-2 are inherited");
    let fd0 = std::fs::read_link(proc_dir.join("fd/0")).unwrap();
    assert!(fd0.to_string_lossy().starts_with("socket:"), "{fd0:?}");
    // stdout and stderr: the pipe the PM relays to its stderr (issue 12: so that
    // running applications follow a re-opened error log); the PM holds its ends.
    let out = std::fs::read_link(proc_dir.join("fd/1")).unwrap();
    assert!(out.to_string_lossy().starts_with("pipe:"), "{out:?}");
    assert_eq!(std::fs::read_link(proc_dir.join("fd/2")).unwrap(), out);
    let pm_fds: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pm}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect();
    assert!(pm_fds.contains(&out), "the PM does not hold {out:?}: {pm_fds:?}");
    // std::process::Command passes the environment sorted by name; the shell that ran
    // before `exec sleep` added PWD.
    let environ = read(proc_dir.join("environ"));
    let env: Vec<&str> = environ
        .split_terminator('\0')
        .filter(|e| !e.starts_with("PWD="))
        .collect();
    assert_eq!(env, vec!["EMPTY=", "FOO=bar baz"]);
    assert_eq!(std::fs::read_link(proc_dir.join("cwd")).unwrap(), app.parent().unwrap());
    let status = read(proc_dir.join("status"));
    assert_eq!(field(&status, "PPid:"), pm.to_string());
    assert_eq!(field(&status, "SigBlk:"), "0000000000000000", "empty signal mask");
    // Standard signals only: glibc refuses to touch 32/33 (its own), so an ignored 32
    // inherited from whatever started the test runner stays ignored.
    let ign = u64::from_str_radix(&field(&status, "SigIgn:"), 16).unwrap();
    assert_eq!(ign & 0x7fff_ffff, 1 << (libc::SIGPIPE - 1), "only SIGPIPE ignored");
    assert_eq!(nice_of(pid), nice_of(std::process::id() as i32) + 1, "-priority 1");
    let args = wait_for("args file", || {
        Some(read(app.parent().unwrap().join(format!("args.{pid}")))).filter(|s| !s.is_empty())
    });
    assert_eq!(
        args,
        format!("{}|0|{}\n", app.display(), app.parent().unwrap().display())
    );
    let err = wait_for("app output in the error log", || {
        Some(read(&s.err_log)).filter(|e| e.contains(&format!("app-stdout-{pid}")))
    });
    assert!(err.contains(&format!("app-stderr-{pid}")));
}

#[test]
fn run_spawns_restarts_reconciles_and_shuts_down() {
    let dir = test_dir("full");
    let app = dir.join("app/app.sh");
    let tcp_app = dir.join("app/tcp.sh");
    write_app(&app);
    write_app(&tcp_app);
    let sock = dir.join("ipc/app.sock");
    // A stale file at the socket path is replaced.
    std::fs::write(&sock, "stale").unwrap();
    let port = free_port();
    let tcp: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let unix_class = class(&app, Listen::Unix(sock.clone()), 2);
    let tcp_class = class(&tcp_app, Listen::Tcp(tcp), 1);
    let first = PmConfig {
        generation: 1,
        classes: vec![unix_class.clone(), tcp_class.clone()],
        hard_restart: false,
        old_children: vec![],
        log_level: 7,
        dynamic: DynamicSpec::disabled(),
    };
    let mut s = start_pm(dir.clone(), first);
    let pm = s.guard.pm.unwrap();
    wait_for("init line", || {
        read(&s.pm_log)
            .contains(&format!("Notice 0 FastCGI: process manager initialized (pid {pm})"))
            .then_some(())
    });

    // Start-up: two Unix processes, one TCP process, sockets ready.
    let pids = wait_for("two processes", || {
        Some(spawned(&s.pm_log, &app)).filter(|p| p.len() == 2)
    });
    let tcp_pids = wait_for("tcp process", || {
        Some(spawned(&s.pm_log, &tcp_app)).filter(|p| p.len() == 1)
    });
    for &pid in pids.iter().chain(&tcp_pids) {
        check_app(pid, pm, if tcp_pids.contains(&pid) { &tcp_app } else { &app }, &s);
    }
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    UnixStream::connect(&sock).expect("Unix socket listening");
    std::net::TcpStream::connect(tcp).expect("TCP socket listening");

    // A killed process is replaced at once (restart-delay 0, after the 1 s floor).
    kill(Pid::from_raw(pids[0]), nix::sys::signal::Signal::SIGKILL).unwrap();
    let replaced = wait_for("replacement", || {
        Some(spawned(&s.pm_log, &app)).filter(|p| p.len() == 3).map(|p| p[2])
    });
    let log = read(&s.pm_log);
    assert!(log.contains(&format!(
        "Warn 0 FastCGI: server \"{}\" (pid {}) terminated due to uncaught signal '9' (Killed)",
        app.display(),
        pids[0]
    )));
    assert!(log.contains(&format!(
        "Warn 0 FastCGI: server \"{}\" restarted (pid {replaced})",
        app.display()
    )));
    let old_unix = [pids[1], replaced];

    // Graceful restart: the TCP class is unchanged, the Unix one was rebuilt (mtime).
    // An "old httpd child" keeps the retired processes alive until it exits.
    let mut old_child = std::process::Command::new("/bin/sleep").arg("1000").spawn().unwrap();
    let mut changed = unix_class.clone();
    changed.app_mtime = 2;
    let old_ino = std::fs::metadata(&sock).unwrap().ino();
    send(
        &mut s.ctl,
        &CtlMsg::Configure(PmConfig {
            generation: 2,
            classes: vec![tcp_class.clone(), changed],
            hard_restart: false,
            old_children: vec![old_child.id() as i32],
            log_level: 7,
            dynamic: DynamicSpec::disabled(),
        }),
    );
    let new_pids = wait_for("new generation", || {
        Some(spawned(&s.pm_log, &app))
            .filter(|p| p.len() == 5)
            .map(|p| p[3..].to_vec())
    });
    assert_ne!(std::fs::metadata(&sock).unwrap().ino(), old_ino, "fresh socket");
    UnixStream::connect(&sock).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        old_unix.iter().all(|&p| alive(p)),
        "old processes wait for the old children"
    );
    assert!(alive(tcp_pids[0]), "unchanged class kept");
    old_child.kill().unwrap();
    old_child.wait().unwrap();
    wait_for("old processes stopped", || {
        old_unix.iter().all(|&p| !alive(p)).then_some(())
    });
    // A process is gone (a zombie) slightly before the PM reaps it and logs the exit.
    wait_for("exit lines of the old processes", || {
        let log = read(&s.pm_log);
        old_unix
            .iter()
            .all(|p| {
                log.contains(&format!(
                    "(pid {p}) terminated due to uncaught signal '15' (Terminated)"
                ))
            })
            .then_some(())
    });
    assert!(alive(tcp_pids[0]) && new_pids.iter().all(|&p| alive(p)));
    assert_eq!(spawned(&s.pm_log, &tcp_app).len(), 1, "TCP class never restarted");

    // Shutdown: everything stops, sockets are removed, exit code 0.
    send(&mut s.ctl, &CtlMsg::Shutdown);
    let status = waitpid(pm, None).unwrap();
    s.guard.pm = None;
    assert_eq!(status, WaitStatus::Exited(pm, 0));
    for p in new_pids.iter().chain(&tcp_pids) {
        assert!(!alive(*p), "pid {p} stopped");
    }
    assert!(!sock.exists(), "socket unlinked");
    let _ = s.dir;
}

#[test]
fn run_exits_when_httpd_disappears() {
    let dir = test_dir("eof");
    let app = dir.join("app/app.sh");
    write_app(&app);
    let sock = dir.join("ipc/eof.sock");
    let first = PmConfig {
        generation: 1,
        classes: vec![class(&app, Listen::Unix(sock.clone()), 1)],
        hard_restart: false,
        old_children: vec![],
        // warn: the "started" lines (warn) are logged, the "initialized" one (notice) not.
        log_level: 4,
        dynamic: DynamicSpec::disabled(),
    };
    let s = start_pm(dir.clone(), first);
    let pm = s.guard.pm.unwrap();
    let pids = wait_for("process", || Some(spawned(&s.pm_log, &app)).filter(|p| p.len() == 1));
    let Setup {
        mut guard, ctl, pm_log, ..
    } = s;
    drop(ctl);
    let status = waitpid(pm, None).unwrap();
    guard.pm = None;
    assert_eq!(status, WaitStatus::Exited(pm, 0));
    assert!(!alive(pids[0]));
    assert!(!sock.exists());
    let log = read(&pm_log);
    assert!(log.contains("Alert 0 FastCGI: read() from pipe failed (0)\n"), "{log}");
    assert!(log.contains("Alert 0 FastCGI: the PM is shutting down, Apache seems to have disappeared - bye\n"));
    assert!(!log.contains("initialized"), "LogLevel filter: {log}");
}

/// pids from `FastCGI: (dynamic) server "<app>" started (pid N)` lines.
fn dyn_spawned(log: &Path, app: &Path) -> Vec<i32> {
    let prefix = format!("FastCGI: (dynamic) server \"{}\" started (pid ", app.display());
    read(log)
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, r)| r))
        .filter_map(|r| r.strip_suffix(')')?.parse().ok())
        .collect()
}

fn send_req(s: &Setup, msg: &ReqMsg) {
    s.req.send(&req::encode(msg).unwrap()).unwrap();
}

#[test]
fn run_dynamic_class_starts_grows_shrinks_and_stops() {
    let dir = test_dir("dynamic");
    // A space in the path: the legacy text messages could not carry it (bug 19).
    let app = dir.join("app/dyn app.sh");
    write_app(&app);
    let ddir = dir.join("ipc/dynamic");
    std::fs::create_dir_all(&ddir).unwrap();
    std::fs::write(ddir.join("0123456789abcdef"), "stale").unwrap();
    let mut d = DynamicSpec::from_config(&crate::config::DynamicConfig::default(), ddir.clone(), None);
    d.max_class_processes = 3;
    d.init_start_delay = 0;
    d.restart_delay = 0;
    d.kill_interval = 1;
    d.update_interval = 1;
    d.min_processes = 0;
    d.priority = 1;
    d.listen_queue_depth = 10;
    d.initial_env = vec![("FOO".into(), "bar baz".into()), ("EMPTY".into(), String::new())];
    let first = PmConfig {
        generation: 1,
        classes: vec![],
        hard_restart: false,
        old_children: vec![],
        log_level: 7,
        dynamic: d.clone(),
    };
    let mut s = start_pm(dir.clone(), first);
    let pm = s.guard.pm.unwrap();
    wait_for("init line", || {
        read(&s.pm_log).contains("process manager initialized").then_some(())
    });
    assert!(!ddir.join("0123456789abcdef").exists(), "stale file removed (bug 13)");

    let key = ClassKey {
        path: app.clone(),
        user: "-".into(),
        group: "-".into(),
    };
    let sock = crate::config::dynamic_socket(&dir.join("ipc"), &app, "-", "-");
    assert_eq!(d.socket_path(&key), sock);

    // Start: the socket exists at once and accepts connections (into the backlog).
    let t0 = Instant::now();
    send_req(&s, &ReqMsg::Start(key.clone()));
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_millis(100),
            "socket not created within 100 ms"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let created = t0.elapsed();
    UnixStream::connect(&sock).expect("dynamic socket listening");
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let pids = wait_for("first process", || {
        Some(dyn_spawned(&s.pm_log, &app)).filter(|p| p.len() == 1)
    });
    check_app(pids[0], pm, &app, &s);

    // Nudges grow the class to maxClassProcesses and never beyond.
    for _ in 0..5 {
        send_req(&s, &ReqMsg::Nudge(key.clone()));
        std::thread::sleep(Duration::from_millis(60));
    }
    let pids = wait_for("three processes", || {
        Some(dyn_spawned(&s.pm_log, &app)).filter(|p| p.len() == 3)
    });
    assert!(pids.iter().all(|&p| alive(p)));
    let log = read(&s.pm_log);
    assert!(log.contains(&format!(
        "Warn 0 FastCGI: scheduled the start of the last (dynamic) server \"{}\" process: reached dynamicMaxClassProcs (3)",
        app.display()
    )));

    // Garbage and completion reports do not disturb anything.
    s.req.send(b"S /x - -*").unwrap();
    send_req(
        &s,
        &ReqMsg::Done {
            key: key.clone(),
            queue_us: 10,
            conn_us: 20,
        },
    );
    wait_for("bogus message line", || {
        read(&s.pm_log)
            .contains("Error 0 FastCGI: bogus message from a request handler ignored: unsupported message version 83")
            .then_some(())
    });

    // Idle: one process killed per pass (1 s) down to one (singleThreshold 0).
    let victims = wait_for("two victims gone", || {
        let log = read(&s.pm_log);
        let v: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| {
                log.contains(&format!(
                    "Warn 0 FastCGI: (dynamic) server \"{}\" (pid {p}) termination signaled",
                    app.display()
                ))
            })
            .collect();
        (v.len() == 2 && v.iter().all(|&p| !alive(p))).then_some(v)
    });
    // The newest went first; the oldest stays.
    assert!(!victims.contains(&pids[0]));
    std::thread::sleep(Duration::from_millis(2500));
    let log = read(&s.pm_log);
    assert_eq!(log.matches("termination signaled").count(), 2, "{log}");
    assert!(alive(pids[0]));
    for v in &victims {
        assert!(log.contains(&format!(
            "Info 0 FastCGI: (dynamic) server \"{}\" (pid {v}) terminated due to uncaught signal '15' (Terminated)",
            app.display()
        )));
    }
    assert_eq!(dyn_spawned(&s.pm_log, &app).len(), 3, "nothing restarted");

    // Shutdown: the process stops, the dynamic socket is removed.
    send(&mut s.ctl, &CtlMsg::Shutdown);
    let status = waitpid(pm, None).unwrap();
    s.guard.pm = None;
    assert_eq!(status, WaitStatus::Exited(pm, 0));
    assert!(!alive(pids[0]));
    assert!(!sock.exists(), "dynamic socket unlinked");
    assert!(created < Duration::from_millis(100));
}

#[test]
fn run_ignores_requests_when_dynamic_applications_are_disabled() {
    let dir = test_dir("dyn-off");
    let first = PmConfig {
        generation: 1,
        classes: vec![],
        hard_restart: false,
        old_children: vec![],
        log_level: 7,
        dynamic: DynamicSpec::disabled(),
    };
    let mut s = start_pm(dir.clone(), first);
    let pm = s.guard.pm.unwrap();
    let key = ClassKey {
        path: dir.join("app/x.fcgi"),
        user: "-".into(),
        group: "-".into(),
    };
    for _ in 0..3 {
        send_req(&s, &ReqMsg::Start(key.clone()));
    }
    wait_for("warning", || {
        read(&s.pm_log)
            .contains("dynamic applications are not enabled")
            .then_some(())
    });
    send(&mut s.ctl, &CtlMsg::Shutdown);
    assert_eq!(waitpid(pm, None).unwrap(), WaitStatus::Exited(pm, 0));
    s.guard.pm = None;
    let log = read(&s.pm_log);
    assert_eq!(log.matches("not enabled").count(), 1, "{log}");
    assert!(!log.contains("started (pid"));
}
