//! The Debian package (issue 13): `make deb`, then on this machine `dpkg -i`, `a2enmod
//! fastcgi`, `apache2ctl configtest`, `apache2ctl -M`, the system Apache serving a FastCGI
//! application through the packaged module and configuration, `dpkg -P`, nothing left.
//!
//! Needs root (it installs a package). Not MPM-specific: runs only when `FCGI_TEST_MPM` is
//! `event` or unset, so once per `make test`.
//!
//! The machine is left as it was, even on failure ([`Machine`]'s `Drop`): the package purged,
//! every path it touches (module, mods-available/-enabled files, the maintainer-script state
//! of apache2-maintscript-helper, `/var/lib/apache2/fastcgi`, a `mods-enabled/fcgid.load`)
//! moved aside before and put back after. The system Apache is started with `apache2ctl`
//! and a temporary main configuration (`-f`) that includes the system's
//! `mods-enabled/*.load` and `*.conf` — so the packaged `fastcgi.load`/`fastcgi.conf` and
//! the system's MPM are what runs — but listens only on 127.0.0.1:<free port> and keeps
//! its pid file and logs in a temporary directory; ports.conf and the sites are not
//! touched, and it is stopped by its own pid. While the package is installed or removed,
//! a `policy-rc.d` denies the maintainer scripts' `invoke-rc.d apache2 restart` (written
//! only if there is none, removed afterwards), so the system service is never started.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PKG: &str = "libapache2-mod-fastcgi";
const IPC_DIR: &str = "/var/lib/apache2/fastcgi";
const MODULE: &str = "/usr/lib/apache2/modules/mod_fastcgi.so";
const ENABLED_LOAD: &str = "/etc/apache2/mods-enabled/fastcgi.load";
const ENABLED_CONF: &str = "/etc/apache2/mods-enabled/fastcgi.conf";
const FCGID_ENABLED: &str = "/etc/apache2/mods-enabled/fcgid.load";
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Every path the package, a2enmod or the maintainer scripts create, plus mod_fcgid's
/// enabled link (the postinst's condition).
const TOUCHED: &[&str] = &[
    MODULE,
    "/etc/apache2/mods-available/fastcgi.load",
    "/etc/apache2/mods-available/fastcgi.conf",
    ENABLED_LOAD,
    ENABLED_CONF,
    FCGID_ENABLED,
    IPC_DIR,
    "/var/lib/apache2/module/enabled_by_maint/fastcgi",
    "/var/lib/apache2/module/enabled_by_admin/fastcgi",
    "/var/lib/apache2/module/disabled_by_maint/fastcgi",
    "/var/lib/apache2/module/disabled_by_admin/fastcgi",
    "/usr/share/doc/libapache2-mod-fastcgi",
];

fn exists(p: &str) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Runs a command; returns (success, stdout + stderr).
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn run_ok(cmd: &mut Command) -> String {
    let (ok, text) = run(cmd);
    assert!(ok, "{cmd:?} failed:\n{text}");
    text
}

fn installed() -> bool {
    let (ok, status) = run(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", PKG]));
    ok && status.trim() == "installed"
}

/// `apache2ctl` with the environment that makes it run apache2 directly (not through
/// systemctl) with `args` (e.g. `-f <conf>`).
fn apache2ctl(apache_args: &str) -> Command {
    let mut c = Command::new("apache2ctl");
    c.env("APACHE_STARTED_BY_SYSTEMD", "1")
        .env("APACHE_ARGUMENTS", apache_args);
    c
}

/// Owns the machine's state while the test runs; restores it on drop.
struct Machine {
    backup: PathBuf,
    /// Paths moved into `backup` (restored on drop).
    saved: Vec<&'static str>,
    /// pid file of a system Apache we started (stopped on drop).
    pid_file: Option<PathBuf>,
    /// We wrote /usr/sbin/policy-rc.d (removed on drop).
    own_policy: bool,
}

impl Machine {
    fn take() -> Machine {
        let backup = PathBuf::from(format!("/var/tmp/fcgi-package-test-{}", std::process::id()));
        fs::create_dir_all(&backup).expect("create backup dir");
        fs::set_permissions(&backup, fs::Permissions::from_mode(0o700)).expect("chmod backup dir");
        let mut m = Machine {
            backup,
            saved: Vec::new(),
            pid_file: None,
            own_policy: false,
        };
        // The maintainer scripts restart Apache through invoke-rc.d when they enable or
        // disable the module, which would start the system service (on port 80) if it
        // is stopped: deny that, as Debian's policy-rc.d mechanism allows.
        if !exists(POLICY_RC_D) {
            fs::write(
                POLICY_RC_D,
                "#!/bin/sh\n# written by mod_fastcgi's tests/package.rs\nexit 101\n",
            )
            .expect("write policy-rc.d");
            fs::set_permissions(POLICY_RC_D, fs::Permissions::from_mode(0o755)).expect("chmod policy-rc.d");
            m.own_policy = true;
        }
        for (i, p) in TOUCHED.iter().enumerate() {
            if exists(p) {
                run_ok(Command::new("mv").arg(p).arg(m.backup.join(i.to_string())));
                m.saved.push(p);
            }
        }
        m
    }

    fn stop_apache(&mut self) {
        let Some(pid_file) = self.pid_file.take() else { return };
        let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return;
        };
        let family: Vec<i32> = std::iter::once(pid).chain(descendant_pids(pid)).collect();
        // SAFETY: kill(2) on the pid of the Apache this test started (from its own pid file).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if !wait_until(Duration::from_secs(30), || family.iter().all(|p| !pid_alive(*p))) {
            // Only if the pid still names Apache or the probe (not a reused pid).
            let ours = |p: i32| pid_cmdline(p).is_some_and(|c| c.contains("apache2") || c.contains("probe"));
            for p in family.iter().filter(|p| pid_alive(**p) && ours(**p)) {
                // SAFETY: as above, or a descendant of it.
                unsafe { libc::kill(*p, libc::SIGKILL) };
            }
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.stop_apache();
        if installed() {
            let (ok, text) = run(Command::new("dpkg").args(["-P", PKG]));
            if !ok {
                eprintln!("package test cleanup: dpkg -P {PKG} failed:\n{text}");
            }
        }
        for (i, p) in TOUCHED.iter().enumerate() {
            if exists(p) {
                let _ = Command::new("rm").arg("-rf").arg(p).status();
            }
            if self.saved.contains(p) {
                let (ok, text) = run(Command::new("mv").arg(self.backup.join(i.to_string())).arg(p));
                if !ok {
                    eprintln!("package test cleanup: restoring {p} failed:\n{text}");
                }
            }
        }
        let _ = fs::remove_dir(&self.backup);
        if self.own_policy {
            let _ = fs::remove_file(POLICY_RC_D);
        }
    }
}

/// `make deb` (cached by the hash of its inputs), returns the .deb's path.
fn build_deb() -> PathBuf {
    let top = manifest_dir();
    let mut make = Command::new("make");
    make.arg("-C").arg(&top).arg("deb");
    if let Some(cargo) = std::env::var_os("CARGO") {
        make.arg(format!("CARGO={}", cargo.to_string_lossy()));
    }
    let out = run_ok(&mut make);
    eprintln!(
        "{}",
        out.lines()
            .filter(|l| l.starts_with("deb: "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let version = run_ok(
        Command::new("dpkg-parsechangelog")
            .arg("-l")
            .arg(top.join("debian/changelog"))
            .args(["-S", "Version"]),
    );
    let arch = run_ok(Command::new("dpkg-architecture").arg("-qDEB_HOST_ARCH"));
    let deb = top.join(format!("{PKG}_{}_{}.deb", version.trim(), arch.trim()));
    assert!(deb.is_file(), "make deb did not produce {}", deb.display());
    deb
}

fn skip_reason() -> Option<String> {
    match std::env::var("FCGI_TEST_MPM") {
        Ok(m) if m != "event" => return Some(format!("FCGI_TEST_MPM={m}; the package test runs under event only")),
        _ => {}
    }
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (dpkg -i needs root)".into());
    }
    if installed() {
        return Some(format!("{PKG} is installed on this machine; not replacing it"));
    }
    None
}

fn check_nothing_left(files: &[String]) {
    assert!(!installed(), "{PKG} still installed after dpkg -P");
    for f in files {
        let p = Path::new(f);
        // Directories are shared with other packages (/etc/apache2, /usr/lib/apache2/...).
        if p.is_dir() && !f.contains(PKG) {
            continue;
        }
        assert!(!exists(f), "{f} left after dpkg -P");
    }
    for p in TOUCHED.iter().filter(|p| **p != FCGID_ENABLED) {
        assert!(
            !exists(p),
            "{p} left after dpkg -P: {}",
            run(Command::new("ls").args(["-laR", p])).1
        );
    }
}

#[test]
fn deb_installs_enables_serves_and_purges_cleanly() {
    if let Some(why) = skip_reason() {
        eprintln!("package test skipped: {why}");
        return;
    }
    let deb = build_deb();
    // Declared first so it outlives the guard: the guard reads Apache's pid file in it.
    let dir = TestDir::new();
    let mut machine = Machine::take();

    // Install: the postinst creates the IPC directory and enables the module.
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(installed());
    let meta = fs::metadata(IPC_DIR).expect("postinst creates /var/lib/apache2/fastcgi");
    assert!(meta.is_dir());
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (WWW_UID, WWW_GID, 0o700),
        "{IPC_DIR} owner/mode"
    );
    assert!(
        exists(ENABLED_LOAD),
        "the postinst enables the module (mod_fcgid is not enabled)"
    );
    let files: Vec<String> = run_ok(Command::new("dpkg").args(["-L", PKG]))
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(files.iter().any(|f| f == MODULE), "package lists {MODULE}:\n{files:?}");
    let conf = fs::read_to_string("/etc/apache2/mods-available/fastcgi.conf").unwrap();
    assert!(conf.contains("FastCgiIpcDir /var/lib/apache2/fastcgi"), "{conf}");
    assert!(conf.contains("AddHandler fastcgi-script .fcgi"), "{conf}");

    // The administrator's steps, on the system configuration.
    let out = run_ok(Command::new("a2enmod").arg("fastcgi"));
    assert!(exists(ENABLED_LOAD) && exists(ENABLED_CONF), "a2enmod fastcgi:\n{out}");
    let (ok, out) = run(apache2ctl("").arg("configtest"));
    assert!(ok && out.contains("Syntax OK"), "apache2ctl configtest:\n{out}");
    let out = run_ok(apache2ctl("").arg("-M"));
    assert!(out.contains("fastcgi_module (shared)"), "apache2ctl -M:\n{out}");

    // The system Apache (its binary, envvars, MPM and enabled modules with the packaged
    // fastcgi.load/.conf) on a loopback port, serving a static application whose socket
    // the process manager creates in the packaged IPC directory.
    let port = free_port();
    probe_at(&dir, "probe.fcgi");
    let root = dir.path().display().to_string();
    let conf = dir.write(
        "apache2.conf",
        format!(
            "ServerRoot /etc/apache2\n\
             ServerName 127.0.0.1\n\
             PidFile {root}/apache2.pid\n\
             DefaultRuntimeDir {root}/run\n\
             Mutex file:{root}/run default\n\
             ErrorLog {root}/error.log\n\
             LogLevel info\n\
             User www-data\n\
             Group www-data\n\
             IncludeOptional mods-enabled/*.load\n\
             IncludeOptional mods-enabled/*.conf\n\
             Listen 127.0.0.1:{port}\n\
             DocumentRoot {root}/htdocs\n\
             <Directory {root}/htdocs>\n  Require all granted\n</Directory>\n\
             FastCgiServer {root}/htdocs/probe.fcgi -processes 1 -init-start-delay 0\n"
        ),
        0o644,
    );
    dir.mkdir("run");
    let args = format!("-f {}", conf.display());
    machine.pid_file = Some(dir.join("apache2.pid"));
    let out = run_ok(apache2ctl(&args).arg("start"));
    let error_log = || fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || dir.join("apache2.pid").exists()
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "system Apache did not start:\n{out}\n{}",
        error_log()
    );
    let r = get(port, "/probe.fcgi?mode=env");
    assert_eq!(
        r.status,
        200,
        "GET /probe.fcgi through the packaged module:\n{}\n{}",
        r.text(),
        error_log()
    );
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/probe.fcgi"), "{}", r.text());
    let sockets: Vec<_> = fs::read_dir(IPC_DIR)
        .expect("read IPC dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !sockets.is_empty(),
        "the process manager uses {IPC_DIR}:\n{}",
        error_log()
    );
    let pid_file = machine.pid_file.clone().unwrap();
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // Its children, the process manager and the application go with it.
    let family: Vec<i32> = std::iter::once(pid).chain(descendant_pids(pid)).collect();
    let out = run_ok(apache2ctl(&args).arg("stop"));
    assert!(
        wait_until(Duration::from_secs(30), || family.iter().all(|p| !pid_alive(*p))),
        "apache2ctl stop: still running: {:?}\n{out}",
        family.iter().filter(|p| pid_alive(**p)).collect::<Vec<_>>()
    );
    machine.pid_file = None;

    // Purge: the prerm disables, the postrm forgets the module and removes the IPC dir.
    run_ok(Command::new("dpkg").args(["-P", PKG]));
    check_nothing_left(&files);

    // With mod_fcgid enabled, installing leaves the module disabled (dh_apache2
    // --conditional); a2enmod still works, and purging still cleans up.
    fs::write(FCGID_ENABLED, "# placeholder of tests/package.rs\n").unwrap();
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(
        !exists(ENABLED_LOAD),
        "postinst must not enable fastcgi while mod_fcgid is enabled"
    );
    assert!(
        fs::metadata(IPC_DIR).map(|m| m.is_dir()).unwrap_or(false),
        "IPC dir created anyway"
    );
    run_ok(Command::new("a2enmod").arg("fastcgi"));
    assert!(exists(ENABLED_LOAD));
    run_ok(Command::new("dpkg").args(["-P", PKG]));
    check_nothing_left(&files);
    fs::remove_file(FCGID_ENABLED).unwrap();

    drop(machine);
}
