//! Shared harness for the integration tests: a real `apache2` started from a generated
//! configuration, real FastCGI applications, and a small exact HTTP/1.1 client.
//!
//! Every integration test file uses it with `mod common;`.  Std only (plus `libc`, a normal
//! dependency of the crate).
//!
//! Environment:
//! - `FCGI_TEST_MPM` = `prefork` | `worker` | `event` (default `event`);
//! - `MOD_FASTCGI_SO` = path of the module to load (see [`module_path`]);
//! - `FCGI_TEST_KEEP=1` keeps every temporary directory (its path is printed).
//!
//! Processes (Apache and applications) are spawned from one long-lived helper thread with
//! `PR_SET_PDEATHSIG = SIGTERM`, so they die with the test process even if it is killed
//! before the `Drop`s run, and an `Apache`/`AppProcess` may be kept in a `static` shared by
//! several tests.
#![allow(dead_code)]

pub mod load;
pub mod procfs;
#[allow(unused_imports)]
pub use load::*;
#[allow(unused_imports)]
pub use procfs::*;

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// uid and gid of `www-data` on Debian.
pub const WWW_UID: u32 = 33;
pub const WWW_GID: u32 = 33;
pub const APACHE_BIN: &str = "/usr/sbin/apache2";
pub const MODULES_DIR: &str = "/usr/lib/apache2/modules";
/// Default read timeout of the HTTP client.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
const START_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mpm {
    Prefork,
    Worker,
    Event,
}

impl Mpm {
    pub fn name(self) -> &'static str {
        match self {
            Mpm::Prefork => "prefork",
            Mpm::Worker => "worker",
            Mpm::Event => "event",
        }
    }

    /// The MPM block used unless [`ApacheConf::mpm_conf`] replaces it: small sizes for a
    /// 2-core box.  ServerLimit leaves room for old generations during a graceful restart.
    pub fn default_conf(self) -> &'static str {
        match self {
            Mpm::Prefork => {
                "StartServers 2\nMinSpareServers 1\nMaxSpareServers 4\n\
                 ServerLimit 20\nMaxRequestWorkers 20\nMaxConnectionsPerChild 0\n"
            }
            Mpm::Worker | Mpm::Event => {
                "StartServers 2\nServerLimit 4\nThreadLimit 10\nThreadsPerChild 10\n\
                 MinSpareThreads 5\nMaxSpareThreads 20\nMaxRequestWorkers 20\n\
                 MaxConnectionsPerChild 0\n"
            }
        }
    }
}

/// The MPM chosen by `FCGI_TEST_MPM` (default event).
pub fn mpm() -> Mpm {
    match std::env::var("FCGI_TEST_MPM")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "event" => Mpm::Event,
        "worker" => Mpm::Worker,
        "prefork" => Mpm::Prefork,
        other => panic!("FCGI_TEST_MPM={other:?}: expected prefork, worker or event"),
    }
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => manifest_dir().join(d),
        None => manifest_dir().join("target"),
    }
}

/// The module to load: `$MOD_FASTCGI_SO`, else `<crate>/mod_fastcgi.so` if it exists, else
/// `<crate>/target/debug/libmod_fastcgi.so`.
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MOD_FASTCGI_SO") {
        return PathBuf::from(p);
    }
    let top = manifest_dir().join("mod_fastcgi.so");
    if top.exists() {
        return top;
    }
    target_dir().join("debug").join("libmod_fastcgi.so")
}

/// A file of `tests/apps/` (e.g. `flup_app.py`), made reachable by www-data.
pub fn app_file(name: &str) -> PathBuf {
    www_accessible(&manifest_dir().join("tests/apps").join(name))
}

/// Builds `tests/apps/probe.c` once per test process (via `tests/apps/build.sh`) and
/// returns the binary's path, which www-data can execute.
pub fn probe_binary() -> PathBuf {
    static ONCE: Once = Once::new();
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    ONCE.call_once(|| {
        let out = target_dir().join("apps").join("probe");
        let script = manifest_dir().join("tests/apps/build.sh");
        let res = Command::new("sh")
            .arg(&script)
            .arg(&out)
            .output()
            .expect("run tests/apps/build.sh");
        assert!(
            res.status.success(),
            "building the probe failed:\n{}{}",
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr)
        );
        let _ = PATH.set(www_accessible(&out));
    });
    PATH.get().expect("probe binary built").clone()
}

/// Returns `path` if www-data can reach it (every ancestor o+x, the file o+r), otherwise a
/// copy of it under `/tmp/fcgitest-bin/` with the same mode bits plus o+rx.
pub fn www_accessible(path: &Path) -> PathBuf {
    let ok_ancestors = path.ancestors().skip(1).all(|a| {
        a.as_os_str().is_empty()
            || fs::metadata(a)
                .map(|m| m.permissions().mode() & 0o001 != 0)
                .unwrap_or(false)
    });
    let mode = fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0);
    if ok_ancestors && mode & 0o004 != 0 {
        return path.to_path_buf();
    }
    let dir = Path::new("/tmp/fcgitest-bin");
    fs::create_dir_all(dir).expect("create /tmp/fcgitest-bin");
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    let dest = dir.join(path.file_name().expect("file name"));
    let tmp = dir.join(format!(".{}.{}", std::process::id(), next_id()));
    fs::copy(path, &tmp).unwrap_or_else(|e| panic!("copy {} to {}: {e}", path.display(), tmp.display()));
    fs::set_permissions(&tmp, fs::Permissions::from_mode((mode & 0o7777) | 0o555)).expect("chmod copy");
    fs::rename(&tmp, &dest).expect("rename copy");
    dest
}

fn next_id() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// A loopback TCP port that is free right now (bind port 0, release).  Never hands out the
/// same port twice in one test process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        drop(l);
        let mut g = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if g.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// A new pseudo-terminal: its master side, and the path of its slave side.
fn open_pty() -> (OwnedFd, std::ffi::CString) {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt returns a new descriptor (or -1); grantpt, unlockpt and
    // ptsname_r only read it and write into the buffer given with its length.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(m);
        assert!(libc::grantpt(m) == 0 && libc::unlockpt(m) == 0, "grantpt/unlockpt");
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0, "ptsname_r");
        (master, std::ffi::CStr::from_ptr(buf.as_ptr()).to_owned())
    }
}

/// Spawns `cmd` from a helper thread that lives as long as the test process, with
/// `PR_SET_PDEATHSIG = SIGTERM` (the death signal follows the *thread* that forked).
fn spawn_guarded(mut cmd: Command) -> io::Result<Child> {
    static TX: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let tx = TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("fcgitest-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    tx.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, rtx))
        .expect("spawner alive");
    rrx.recv().expect("spawner reply")
}

fn send_signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) on a pid we spawned; no memory is involved.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => match s.rfind(')') {
            Some(i) => !matches!(s[i + 1..].split_whitespace().next(), Some("Z") | Some("X")),
            None => false,
        },
        Err(_) => false,
    }
}

/// Live (non-zombie) direct children of `pid`, from /proc.
pub fn child_pids(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(i) = stat.rfind(')') else { continue };
        let mut f = stat[i + 1..].split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid: i32 = f.next().and_then(|x| x.parse().ok()).unwrap_or(-1);
        if ppid == pid && state != "Z" && state != "X" {
            out.push(p);
        }
    }
    out.sort_unstable();
    out
}

/// All live descendants of `pid` (children, grandchildren, ...).
pub fn descendant_pids(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in child_pids(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out.sort_unstable();
    out
}

/// The command line of `pid` (NULs replaced by spaces), if it exists.
pub fn pid_cmdline(pid: i32) -> Option<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim_end().to_string())
}

/// Polls `cond` every 20 ms until it is true or `timeout` passes; returns its last value.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, wait up to `grace`, SIGKILL, reap.  Returns the exit status.
fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    send_signal(child.id() as i32, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        thread::sleep(Duration::from_millis(10));
    }
    send_signal(child.id() as i32, libc::SIGKILL);
    child.wait().ok()
}

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn read_lossy(p: &Path) -> String {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------

/// A temporary directory `/tmp/fcgitest-<pid>-<n>`, mode 0755 so www-data can traverse it.
/// Removed on drop unless `FCGI_TEST_KEEP=1`.
pub struct TestDir {
    path: PathBuf,
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDir {
    pub fn new() -> TestDir {
        static CLEAN: Once = Once::new();
        CLEAN.call_once(remove_stale_test_dirs);
        let path = PathBuf::from(format!("/tmp/fcgitest-{}-{}", std::process::id(), next_id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod test dir");
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Writes `contents` to `rel` (parents created 0755) with `mode`; returns the path.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            mkdir_p(parent);
        }
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    /// A `FastCgiWrapper` for tests: `bin/logwrap.sh` appends `uid=… cwd=… argc=…
    /// args=…` to `wrap.log` (writable by every user) and execs `./<third argument>`,
    /// the legacy `wrapper user group basename` convention. Returns (wrapper, log).
    pub fn logging_wrapper(&self) -> (PathBuf, PathBuf) {
        let log = self.join("wrap.log");
        fs::write(&log, b"").expect("create wrap.log");
        fs::set_permissions(&log, fs::Permissions::from_mode(0o666)).expect("chmod wrap.log");
        let wrapper = self.write(
            "bin/logwrap.sh",
            format!(
                "#!/bin/sh\necho \"uid=$(id -u) cwd=$(pwd) argc=$# args=$*\" >> {}\nexec ./\"$3\"\n",
                log.display()
            ),
            0o755,
        );
        let _ = fs::set_permissions(self.join("bin"), fs::Permissions::from_mode(0o755));
        (wrapper, log)
    }

    /// Creates `rel` (and parents) with mode 0755, owned by root.
    pub fn mkdir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.path.join(rel);
        mkdir_p(&p);
        p
    }

    /// Creates `rel` with mode 0755, owned by www-data (e.g. for sockets an app creates).
    pub fn mkdir_www(&self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.mkdir(rel);
        chown_www(&p);
        p
    }

    /// `<dir>/sock`, owned by www-data: where applications create their sockets.
    pub fn sock_dir(&self) -> PathBuf {
        self.mkdir_www("sock")
    }

    /// Removes nothing, forgets the directory (it stays on disk); returns its path.
    pub fn keep(self) -> PathBuf {
        let p = self.path.clone();
        std::mem::forget(self);
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var("FCGI_TEST_KEEP").map(|v| v == "1").unwrap_or(false) {
            eprintln!("FCGI_TEST_KEEP: kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes `/tmp/fcgitest-<pid>-*` left by test processes that no longer exist (killed
/// before their `Drop`s ran), unless `FCGI_TEST_KEEP=1`.
fn remove_stale_test_dirs() {
    if std::env::var("FCGI_TEST_KEEP").map(|v| v == "1").unwrap_or(false) {
        return;
    }
    let Ok(rd) = fs::read_dir("/tmp") else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("fcgitest-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pid != std::process::id() as i32 && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn mkdir_p(p: &Path) {
    if p.is_dir() {
        return;
    }
    if let Some(parent) = p.parent() {
        mkdir_p(parent);
    }
    match fs::create_dir(p) {
        Ok(()) => fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod dir"),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("mkdir {}: {e}", p.display()),
    }
}

/// chown `path` to www-data:www-data.
pub fn chown_www(path: &Path) {
    chown(path, Some(WWW_UID), Some(WWW_GID)).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------
// Apache
// ---------------------------------------------------------------------------------------

/// What a test wants from its Apache.  Text given in `extra` may use the placeholders
/// `@ROOT@`, `@HTDOCS@`, `@LOGS@` and `@PORT@`, replaced when the configuration is written.
#[derive(Debug, Clone)]
pub struct ApacheConf {
    /// Appended at top level, after everything generated.
    pub extra: String,
    /// `LoadModule fastcgi_module <module_path()>` (default true).
    pub load_ours: bool,
    /// Overrides [`module_path`].
    pub module: Option<PathBuf>,
    /// Extra modules by short name: `"proxy_fcgi"` loads `proxy_fcgi_module` from
    /// `mod_proxy_fcgi.so`; a value containing a space is used as a whole LoadModule line.
    pub modules: Vec<String>,
    pub log_level: String,
    pub mpm: Mpm,
    /// Replaces the MPM sizing block ([`Mpm::default_conf`]).
    pub mpm_conf: Option<String>,
    /// ServerRoot to use (e.g. a [`TestDir`] the test already filled); default: a fresh one
    /// owned by the [`Apache`].
    pub root: Option<PathBuf>,
    /// Extra environment for the apache2 process.
    pub env: Vec<(String, String)>,
    /// Start apache2 as the leader of a new session whose controlling terminal is a
    /// fresh pseudo-terminal (httpd in the foreground of a shell or `docker run -t`).
    pub tty: bool,
}

impl Default for ApacheConf {
    fn default() -> Self {
        ApacheConf {
            extra: String::new(),
            load_ours: true,
            module: None,
            modules: Vec::new(),
            log_level: "info".into(),
            mpm: mpm(),
            mpm_conf: None,
            root: None,
            env: Vec::new(),
            tty: false,
        }
    }
}

impl ApacheConf {
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends configuration text (a newline is added).
    pub fn extra(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }
    pub fn without_our_module(mut self) -> Self {
        self.load_ours = false;
        self
    }
    pub fn module_so(mut self, path: impl Into<PathBuf>) -> Self {
        self.module = Some(path.into());
        self
    }
    /// See [`ApacheConf::tty`].
    pub fn with_tty(mut self) -> Self {
        self.tty = true;
        self
    }
    pub fn with_module(mut self, name: &str) -> Self {
        self.modules.push(name.into());
        self
    }
    /// Adds `proxy` and `proxy_fcgi` (for validating against mod_proxy_fcgi).
    pub fn with_proxy_fcgi(self) -> Self {
        self.with_module("proxy").with_module("proxy_fcgi")
    }
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.into();
        self
    }
    pub fn mpm(mut self, mpm: Mpm) -> Self {
        self.mpm = mpm;
        self
    }
    pub fn mpm_conf(mut self, text: &str) -> Self {
        self.mpm_conf = Some(text.into());
        self
    }
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The complete httpd.conf for ServerRoot `root` listening on `port`.
    pub fn render(&self, root: &Path, port: u16) -> String {
        let mut c = String::new();
        let r = root.display();
        let _ = writeln!(c, "# generated by tests/common/mod.rs (MPM {})", self.mpm.name());
        let _ = writeln!(c, "ServerRoot \"{r}\"");
        let _ = writeln!(c, "ServerName 127.0.0.1:{port}");
        let _ = writeln!(c, "Listen 127.0.0.1:{port}");
        let _ = writeln!(c, "DefaultRuntimeDir \"{r}/run\"");
        let _ = writeln!(c, "PidFile \"{r}/run/httpd.pid\"");
        let _ = writeln!(
            c,
            "LoadModule mpm_{0}_module {MODULES_DIR}/mod_mpm_{0}.so",
            self.mpm.name()
        );
        let mut base = vec!["authz_core", "authz_host", "mime", "env", "setenvif", "alias", "dir"];
        let builtin = builtin_modules();
        if !builtin.iter().any(|m| m == "mod_log_config.c") {
            base.push("log_config");
        }
        if !builtin.iter().any(|m| m == "mod_unixd.c") {
            base.push("unixd");
        }
        for m in base.iter().map(|s| s.to_string()).chain(self.modules.iter().cloned()) {
            if m.contains(' ') {
                let _ = writeln!(c, "{m}");
            } else {
                let _ = writeln!(c, "LoadModule {m}_module {MODULES_DIR}/mod_{m}.so");
            }
        }
        if self.load_ours {
            let so = self.module.clone().unwrap_or_else(module_path);
            let _ = writeln!(c, "LoadModule fastcgi_module \"{}\"", so.display());
        }
        let _ = write!(
            c,
            "User www-data\nGroup www-data\n\
             ErrorLog \"{r}/logs/error_log\"\nLogLevel {level}\n\
             LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b %D\" common\n\
             CustomLog \"{r}/logs/access_log\" common\n\
             TypesConfig /etc/mime.types\n\
             DocumentRoot \"{r}/htdocs\"\n\
             <Directory />\n    Options FollowSymLinks\n    AllowOverride None\n    Require all granted\n</Directory>\n\
             <Directory \"{r}/htdocs\">\n    Options +ExecCGI +FollowSymLinks\n    AllowOverride All\n    Require all granted\n</Directory>\n\
             DirectoryIndex index.html\n\
             Timeout 60\nKeepAlive On\nMaxKeepAliveRequests 100\nKeepAliveTimeout 5\n",
            level = self.log_level
        );
        c.push_str(self.mpm_conf.as_deref().unwrap_or(self.mpm.default_conf()));
        c.push_str("\n# --- test configuration ---\n");
        c.push_str(&self.extra);
        c.push('\n');
        substitute(&c, root, port)
    }
}

/// Replaces `@ROOT@`, `@HTDOCS@`, `@LOGS@`, `@PORT@`.
pub fn substitute(text: &str, root: &Path, port: u16) -> String {
    let r = root.display().to_string();
    text.replace("@HTDOCS@", &format!("{r}/htdocs"))
        .replace("@LOGS@", &format!("{r}/logs"))
        .replace("@ROOT@", &r)
        .replace("@PORT@", &port.to_string())
}

/// Modules compiled into apache2 (`apache2 -l`), e.g. `mod_unixd.c`.
pub fn builtin_modules() -> Vec<String> {
    static MODS: OnceLock<Vec<String>> = OnceLock::new();
    MODS.get_or_init(|| {
        let out = Command::new(APACHE_BIN).arg("-l").output().expect("run apache2 -l");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| l.ends_with(".c"))
            .map(String::from)
            .collect()
    })
    .clone()
}

fn prepare_root(root: &Path) {
    for d in ["conf", "logs", "run", "htdocs"] {
        mkdir_p(&root.join(d));
    }
    let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o755));
}

/// A running apache2 (parent process in the foreground, our child).
pub struct Apache {
    child: Option<Child>,
    pid: i32,
    port: u16,
    root: PathBuf,
    conf: ApacheConf,
    startup: Duration,
    _dir: Option<TestDir>,
    /// The pseudo-terminal's master side ([`ApacheConf::tty`]), open while apache2 runs
    /// (closing it would hang the terminal up: SIGHUP to apache2).
    _tty: Option<OwnedFd>,
}

impl Apache {
    /// Writes the configuration and starts apache2; returns once the port accepts
    /// connections.  Panics with the error log if it does not within 20 s.
    pub fn start(conf: &ApacheConf) -> Apache {
        let (dir, root) = match &conf.root {
            Some(r) => (None, r.clone()),
            None => {
                let d = TestDir::new();
                let r = d.path().to_path_buf();
                (Some(d), r)
            }
        };
        prepare_root(&root);
        let conf_path = root.join("conf/httpd.conf");
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            fs::write(&conf_path, conf.render(&root, port)).expect("write httpd.conf");
            let log_len_before = fs::metadata(root.join("logs/error_log")).map(|m| m.len()).unwrap_or(0);
            let stderr = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(root.join("logs/stderr.log"))
                .expect("open stderr.log");
            let mut cmd = Command::new(APACHE_BIN);
            cmd.arg("-d")
                .arg(&root)
                .arg("-f")
                .arg(&conf_path)
                .arg("-DFOREGROUND")
                .stdin(Stdio::null())
                .stdout(stderr.try_clone().expect("dup"))
                .stderr(stderr)
                .env("LANG", "C");
            let tty = if conf.tty {
                let (master, slave) = open_pty();
                // SAFETY: between fork and exec the closure only makes async-signal-safe
                // calls (setsid, open, ioctl, close) on a path prepared before the fork.
                unsafe {
                    cmd.pre_exec(move || {
                        // A new session (so also its own process group, see below),
                        // then the terminal as its controlling terminal.
                        if libc::setsid() < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        let fd = libc::open(slave.as_ptr(), libc::O_RDWR);
                        if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        libc::close(fd);
                        Ok(())
                    });
                }
                Some(master)
            } else {
                // Own process group: prefork's parent SIGTERMs its whole group on
                // shutdown, which would otherwise include the test process.
                cmd.process_group(0);
                None
            };
            for (k, v) in &conf.env {
                cmd.env(k, v);
            }
            let t0 = Instant::now();
            let mut child = spawn_guarded(cmd).expect("spawn apache2");
            let pid = child.id() as i32;
            let mut exited = None;
            let up = wait_until(START_TIMEOUT, || {
                if let Ok(Some(st)) = child.try_wait() {
                    exited = Some(st);
                    return true;
                }
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if up && exited.is_none() {
                // The port answered; make sure it is really our apache that is listening.
                thread::sleep(Duration::from_millis(10));
                if let Ok(Some(st)) = child.try_wait() {
                    exited = Some(st);
                }
            }
            let startup = t0.elapsed();
            if up && exited.is_none() {
                return Apache {
                    child: Some(child),
                    pid,
                    port,
                    root,
                    conf: conf.clone(),
                    startup,
                    _dir: dir,
                    _tty: tty,
                };
            }
            if exited.is_none() {
                terminate(&mut child, Duration::from_secs(5));
            }
            let log = read_lossy(&root.join("logs/error_log"));
            let log_new = log.get(log_len_before as usize..).unwrap_or(&log).to_string();
            let err = read_lossy(&root.join("logs/stderr.log"));
            last_err = format!(
                "apache2 (MPM {}) did not start (exit: {:?}) with {}\n--- stderr ---\n{}\n--- error_log ---\n{}",
                conf.mpm.name(),
                exited,
                conf_path.display(),
                tail(&err, 40),
                tail(&log_new, 60)
            );
            let bind_problem =
                |s: &str| s.contains("Address already in use") || s.contains("AH00072") || s.contains("AH00451");
            if !(bind_problem(&err) || bind_problem(&log_new)) {
                break;
            }
            // Truncate stderr so the next attempt's diagnosis is not confused by this one.
            let _ = fs::write(root.join("logs/stderr.log"), b"");
        }
        if let Some(d) = dir {
            let _ = d.keep();
        }
        panic!("{last_err}\n(server root kept at {})", root.display());
    }

    /// Runs `apache2 -t` on the generated configuration; returns (Syntax OK, output).
    pub fn config_test(conf: &ApacheConf) -> (bool, String) {
        let dir = TestDir::new();
        let root = conf.root.clone().unwrap_or_else(|| dir.path().to_path_buf());
        prepare_root(&root);
        let conf_path = root.join("conf/httpd.conf");
        fs::write(&conf_path, conf.render(&root, free_port())).expect("write httpd.conf");
        let mut cmd = Command::new(APACHE_BIN);
        cmd.arg("-t")
            .arg("-d")
            .arg(&root)
            .arg("-f")
            .arg(&conf_path)
            .env("LANG", "C");
        for (k, v) in &conf.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run apache2 -t");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success() && text.contains("Syntax OK"), text)
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn htdocs(&self) -> PathBuf {
        self.root.join("htdocs")
    }
    pub fn conf_path(&self) -> PathBuf {
        self.root.join("conf/httpd.conf")
    }
    /// How long start() waited for the port.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
    /// True while the apache2 parent runs.
    pub fn alive(&self) -> bool {
        self.child.is_some() && pid_alive(self.pid)
    }
    /// Live children of the apache2 parent (the MPM's processes, a process manager, ...).
    pub fn child_pids(&self) -> Vec<i32> {
        child_pids(self.pid)
    }
    pub fn descendant_pids(&self) -> Vec<i32> {
        descendant_pids(self.pid)
    }

    pub fn error_log(&self) -> String {
        read_lossy(&self.root.join("logs/error_log"))
    }
    pub fn access_log(&self) -> String {
        read_lossy(&self.root.join("logs/access_log"))
    }
    /// Output apache2 wrote to stdout/stderr (startup errors before ErrorLog is open).
    pub fn stderr_log(&self) -> String {
        read_lossy(&self.root.join("logs/stderr.log"))
    }
    /// Current length of the error log, for [`Apache::wait_for_log_after`].
    pub fn log_mark(&self) -> usize {
        fs::metadata(self.root.join("logs/error_log"))
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }
    /// The error log written since `mark`.
    pub fn error_log_since(&self, mark: usize) -> String {
        let l = self.error_log();
        l.get(mark..).unwrap_or("").to_string()
    }
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_log_after(0, needle, timeout)
    }
    pub fn wait_for_log_after(&self, mark: usize, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.error_log_since(mark).contains(needle))
    }

    /// Sends a signal to the apache2 parent.
    pub fn signal(&self, sig: i32) {
        send_signal(self.pid, sig);
    }
    /// Graceful restart (SIGUSR1); waits until apache logs "resuming normal operations".
    pub fn graceful(&self) {
        self.restart_with(libc::SIGUSR1, "graceful restart");
    }
    /// Restart (SIGHUP); waits until apache logs "resuming normal operations".
    pub fn restart(&self) {
        self.restart_with(libc::SIGHUP, "restart");
    }
    fn restart_with(&self, sig: i32, what: &str) {
        let mark = self.log_mark();
        self.signal(sig);
        if !self.wait_for_log_after(mark, "resuming normal operations", START_TIMEOUT) {
            panic!(
                "apache2 {what} did not complete in 20 s\n--- error_log ---\n{}",
                tail(&self.error_log(), 60)
            );
        }
    }
    /// Rewrites httpd.conf (same root and port) for a following restart()/graceful().
    pub fn reconfigure(&mut self, conf: &ApacheConf) {
        fs::write(self.conf_path(), conf.render(&self.root, self.port)).expect("write httpd.conf");
        self.conf = conf.clone();
    }

    /// SIGTERM, wait up to 10 s, SIGKILL; reaps.  Idempotent.  Returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let t0 = Instant::now();
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(10));
        }
        t0.elapsed()
    }

    // HTTP helpers bound to this server.
    pub fn request(&self, raw: &[u8]) -> Response {
        request(self.port, raw)
    }
    pub fn get(&self, path: &str) -> Response {
        get(self.port, path)
    }
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get_with(self.port, path, headers)
    }
    pub fn head(&self, path: &str) -> Response {
        head(self.port, path)
    }
    pub fn post(&self, path: &str, body: &[u8], content_type: &str) -> Response {
        post(self.port, path, body, content_type)
    }
    pub fn post_chunked(&self, path: &str, chunks: &[&[u8]]) -> Response {
        post_chunked(self.port, path, chunks)
    }
    pub fn conn(&self) -> Conn {
        Conn::open(self.port)
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- apache2 error_log ({}), last lines ---\n{}\n--- end ---",
                self.root.display(),
                tail(&self.error_log(), 40)
            );
        }
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// Applications
// ---------------------------------------------------------------------------------------

/// How to start an application.
pub struct AppSpec {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    as_www: bool,
    cwd: Option<PathBuf>,
    listener: Option<OwnedFd>,
}

impl AppSpec {
    /// Runs as www-data by default, with a minimal environment
    /// (PATH, LANG=C.UTF-8, HOME=/tmp) and cwd = the test dir.
    pub fn new(program: impl AsRef<OsStr>) -> AppSpec {
        AppSpec {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            as_www: true,
            cwd: None,
            listener: None,
        }
    }
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env.push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }
    pub fn run_as_root(mut self) -> Self {
        self.as_www = false;
        self
    }
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
    /// Passes a listening unix socket, created at `path` (owned by www-data, mode 0660),
    /// as the application's fd 0 — the way a FastCGI process manager starts it.
    pub fn listen_on_fd0(mut self, path: &Path) -> Self {
        let _ = fs::remove_file(path);
        let l = UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        chown_www(path);
        fs::set_permissions(path, fs::Permissions::from_mode(0o660)).expect("chmod socket");
        self.listener = Some(OwnedFd::from(l));
        self
    }
}

/// An external FastCGI application; killed (SIGTERM, SIGKILL after 3 s) on drop.
pub struct AppProcess {
    name: String,
    child: Mutex<Option<Child>>,
    pid: i32,
    log_path: PathBuf,
}

impl AppProcess {
    /// Starts `spec`; stdout and stderr go to `<dir>/<name>.log`.  The process gets its own
    /// process group, which is killed too when it stops (php-fpm workers etc.).
    pub fn start(dir: &TestDir, name: &str, spec: AppSpec) -> AppProcess {
        let log_path = dir.join(format!("{name}.log"));
        let log = fs::File::create(&log_path).expect("create app log");
        let _ = fs::set_permissions(&log_path, fs::Permissions::from_mode(0o644));
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("HOME", "/tmp")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(spec.cwd.clone().unwrap_or_else(|| dir.path().to_path_buf()))
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .process_group(0);
        match spec.listener {
            Some(fd) => cmd.stdin(Stdio::from(fd)),
            None => cmd.stdin(Stdio::null()),
        };
        if spec.as_www {
            cmd.uid(WWW_UID).gid(WWW_GID);
        }
        let child =
            spawn_guarded(cmd).unwrap_or_else(|e| panic!("spawn {name} ({}): {e}", Path::new(&spec.program).display()));
        let pid = child.id() as i32;
        AppProcess {
            name: name.into(),
            child: Mutex::new(Some(child)),
            pid,
            log_path,
        }
    }

    /// Starts `program args...` as www-data.
    pub fn spawn(dir: &TestDir, name: &str, program: impl AsRef<OsStr>, args: &[&str]) -> AppProcess {
        Self::start(dir, name, AppSpec::new(program).args(args))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn pid(&self) -> i32 {
        self.pid
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// The exit status if it has exited (reaps it), else None.
    pub fn try_exit(&self) -> Option<ExitStatus> {
        let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_mut() {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        }
    }
    pub fn is_alive(&self) -> bool {
        self.try_exit().is_none() && pid_alive(self.pid)
    }

    fn wait_ready(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let mut exited = None;
        let ok = wait_until(START_TIMEOUT, || {
            if let Some(st) = self.try_exit() {
                exited = Some(st);
                return true;
            }
            ready()
        });
        if !ok || exited.is_some() {
            panic!(
                "application {} never became ready on {what} (exit: {exited:?})\n--- {} ---\n{}",
                self.name,
                self.log_path.display(),
                tail(&self.log(), 40)
            );
        }
    }
    /// Waits (20 s) until the unix socket accepts a connection; panics with the app log.
    pub fn wait_for_socket(&self, path: &Path) {
        self.wait_ready(&path.display().to_string(), || UnixStream::connect(path).is_ok());
    }
    /// Waits (20 s) until 127.0.0.1:port accepts a connection; panics with the app log.
    pub fn wait_for_port(&self, port: u16) {
        self.wait_ready(&format!("127.0.0.1:{port}"), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGTERM, SIGKILL after 3 s, reap, then SIGKILL what is left of its process group.
    pub fn stop(&self) -> Option<ExitStatus> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        let st = child.and_then(|mut c| terminate(&mut c, Duration::from_secs(3)));
        // The group id is our child's pid; stragglers (e.g. php-fpm workers) keep it alive.
        send_signal(-self.pid, libc::SIGKILL);
        st
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- {} log ({}) ---\n{}\n--- end ---",
                self.name,
                self.log_path.display(),
                tail(&self.log(), 30)
            );
        }
        self.stop();
    }
}

/// `probe --socket <dir>/sock/<name>.sock` as www-data, ready.
pub fn start_probe_unix(dir: &TestDir, name: &str) -> (AppProcess, PathBuf) {
    let sock = dir.sock_dir().join(format!("{name}.sock"));
    let app = AppProcess::start(dir, name, AppSpec::new(probe_binary()).arg("--socket").arg(&sock));
    app.wait_for_socket(&sock);
    (app, sock)
}

/// `probe --port 127.0.0.1:<free port>` as www-data, ready.
pub fn start_probe_tcp(dir: &TestDir, name: &str) -> (AppProcess, u16) {
    let port = free_port();
    (start_probe_on(dir, name, port), port)
}

/// `probe --port 127.0.0.1:<port>` as www-data, ready (e.g. a backend restarted where it was).
pub fn start_probe_on(dir: &TestDir, name: &str, port: u16) -> AppProcess {
    let app = AppProcess::start(
        dir,
        name,
        AppSpec::new(probe_binary())
            .arg("--port")
            .arg(format!("127.0.0.1:{port}")),
    );
    app.wait_for_port(port);
    app
}

/// `flup_app.py <dir>/sock/<name>.sock` as www-data, ready.
pub fn start_flup_unix(dir: &TestDir, name: &str) -> (AppProcess, PathBuf) {
    let sock = dir.sock_dir().join(format!("{name}.sock"));
    let app = AppProcess::start(
        dir,
        name,
        AppSpec::new("/usr/bin/python3").arg(app_file("flup_app.py")).arg(&sock),
    );
    app.wait_for_socket(&sock);
    (app, sock)
}

/// `flup_app.py 127.0.0.1:<free port>` as www-data, ready.
pub fn start_flup_tcp(dir: &TestDir, name: &str) -> (AppProcess, u16) {
    let port = free_port();
    let app = AppProcess::start(
        dir,
        name,
        AppSpec::new("/usr/bin/python3")
            .arg(app_file("flup_app.py"))
            .arg(format!("127.0.0.1:{port}")),
    );
    app.wait_for_port(port);
    (app, port)
}

/// `perl_app.pl <dir>/sock/<name>.sock` as www-data, ready.
pub fn start_perl_unix(dir: &TestDir, name: &str) -> (AppProcess, PathBuf) {
    let sock = dir.sock_dir().join(format!("{name}.sock"));
    let app = AppProcess::start(
        dir,
        name,
        AppSpec::new("/usr/bin/perl").arg(app_file("perl_app.pl")).arg(&sock),
    );
    app.wait_for_socket(&sock);
    (app, sock)
}

/// The php-fpm binary (`/usr/sbin/php-fpm*`, highest version).
pub fn php_fpm_binary() -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/sbin")
        .expect("read /usr/sbin")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("php-fpm"))
        })
        .collect();
    found.sort();
    found.pop().expect("no /usr/sbin/php-fpm* installed")
}

/// Starts php-fpm (master as root, static pool of 4 www-data workers) listening on
/// `<dir>/php-fpm/php.sock`; returns it ready.  Scripts: see `app_file("index.php")`.
/// php-fpm with its own pool; PHP's temporary files (request bodies over 16 KiB) go to a
/// www-data directory because `/tmp` may not be writable by www-data.
pub fn start_php_fpm(dir: &TestDir) -> (AppProcess, PathBuf) {
    start_php_fpm_with(dir, "")
}

/// [`start_php_fpm`] with `pool_extra` (lines such as
/// `php_admin_value[open_basedir] = ...`) appended to the pool.
pub fn start_php_fpm_with(dir: &TestDir, pool_extra: &str) -> (AppProcess, PathBuf) {
    let d = dir.mkdir("php-fpm");
    let tmp = dir.mkdir_www("php-tmp");
    let sock = d.join("php.sock");
    let conf = format!(
        "[global]\nerror_log = {d}/error.log\ndaemonize = no\npid = {d}/php-fpm.pid\n\n\
         [www]\nuser = www-data\ngroup = www-data\nlisten = {sock}\n\
         listen.owner = www-data\nlisten.group = www-data\nlisten.mode = 0660\n\
         pm = static\npm.max_children = 4\ncatch_workers_output = yes\n\
         php_admin_value[upload_tmp_dir] = {tmp}\nphp_admin_value[sys_temp_dir] = {tmp}\n{pool_extra}\n",
        d = d.display(),
        sock = sock.display(),
        tmp = tmp.display()
    );
    let conf_path = dir.write("php-fpm/php-fpm.conf", conf, 0o644);
    let app = AppProcess::start(
        dir,
        "php-fpm",
        AppSpec::new(php_fpm_binary())
            .run_as_root()
            .arg("-F")
            .arg("-O")
            .arg("-y")
            .arg(&conf_path),
    );
    app.wait_for_socket(&sock);
    (app, sock)
}

// ---------------------------------------------------------------------------------------
// Body pattern and checksum (identical in tests/apps/probe.c)
// ---------------------------------------------------------------------------------------

/// Deterministic bytes: xorshift64 seeded from `seed`, 8 bytes little-endian per step.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    if s == 0 {
        s = 1;
    }
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// FNV-1a 64.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a 64 as the probe prints it (16 lowercase hex digits).
pub fn checksum_hex(data: &[u8]) -> String {
    format!("{:016x}", fnv1a64(data))
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct Response {
    /// 0 if no status line could be read.
    pub status: u16,
    pub reason: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// False if the connection closed (or timed out) before the declared Content-Length,
    /// the terminating 0-chunk, or the end of the head.
    pub complete: bool,
    pub chunked: bool,
    pub timed_out: bool,
    /// An I/O error met while sending or reading (e.g. connection reset).
    pub error: Option<String>,
    /// Status line and headers as received.
    pub raw_head: String,
    /// Time from sending the request to the end of the response.
    pub elapsed: Duration,
    /// Time from sending the request to the first byte of the response.
    pub first_byte: Option<Duration>,
    /// (time since send, bytes) of every read that delivered body bytes (raw, incl. chunk
    /// framing): shows whether a response streamed or arrived at once.
    pub arrivals: Vec<(Duration, usize)>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// `NAME=VALUE` lines of an env dump (probe `mode=env`, the perl/flup/php dumps), in
    /// order; the value of the first line starting with `NAME=`.
    pub fn env_var(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.text()
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()).map(String::from))
    }
    /// Names of an env dump, in order.
    pub fn env_names(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
            .collect()
    }
}

/// Builds a request.  Adds `Host` and `Connection: close` unless given, and
/// `Content-Length` for a body unless `Transfer-Encoding` or `Content-Length` is given.
pub fn build_request(method: &str, path: &str, port: u16, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut h = format!("{method} {path} HTTP/1.1\r\n");
    if !has("Host") {
        let _ = write!(h, "Host: 127.0.0.1:{port}\r\n");
    }
    for (k, v) in headers {
        let _ = write!(h, "{k}: {v}\r\n");
    }
    if !has("Connection") {
        h.push_str("Connection: close\r\n");
    }
    if let Some(b) = body {
        if !has("Transfer-Encoding") && !has("Content-Length") {
            let _ = write!(h, "Content-Length: {}\r\n", b.len());
        }
    }
    h.push_str("\r\n");
    let mut out = h.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    out
}

/// Encodes `chunks` as a chunked body (empty chunks skipped) with the final 0-chunk.
pub fn chunked_body(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Sends `raw` on a new connection (from a writer thread, so huge bodies cannot deadlock)
/// and reads one response (60 s read timeout).  `HEAD` is detected from `raw`.
pub fn request(port: u16, raw: &[u8]) -> Response {
    request_timeout(port, raw, HTTP_TIMEOUT)
}

pub fn request_timeout(port: u16, raw: &[u8], timeout: Duration) -> Response {
    let mut conn = Conn::open(port);
    conn.timeout = timeout;
    let is_head = raw.starts_with(b"HEAD ");
    let mut w = conn.stream.try_clone().expect("clone stream");
    let data = raw.to_vec();
    let t0 = Instant::now();
    let writer = thread::spawn(move || w.write_all(&data).and_then(|_| w.flush()));
    let mut resp = conn.read_response_from(t0, is_head);
    let _ = conn.stream.shutdown(Shutdown::Both);
    if let Ok(Err(e)) = writer.join() {
        if resp.error.is_none() {
            resp.error = Some(format!("send: {e}"));
        }
    }
    resp
}

pub fn get(port: u16, path: &str) -> Response {
    request(port, &build_request("GET", path, port, &[], None))
}
pub fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    request(port, &build_request("GET", path, port, headers, None))
}
pub fn head(port: u16, path: &str) -> Response {
    request(port, &build_request("HEAD", path, port, &[], None))
}
pub fn post(port: u16, path: &str, body: &[u8], content_type: &str) -> Response {
    request(
        port,
        &build_request("POST", path, port, &[("Content-Type", content_type)], Some(body)),
    )
}
pub fn post_chunked(port: u16, path: &str, chunks: &[&[u8]]) -> Response {
    let headers = [
        ("Content-Type", "application/octet-stream"),
        ("Transfer-Encoding", "chunked"),
    ];
    request(
        port,
        &build_request("POST", path, port, &headers, Some(&chunked_body(chunks))),
    )
}

/// One client connection, for keep-alive, pipelining, slow sending, or early close.
pub struct Conn {
    pub stream: TcpStream,
    pub port: u16,
    /// Per-response read timeout (default 60 s).
    pub timeout: Duration,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn {
    pub fn open(port: u16) -> Conn {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            port,
            timeout: HTTP_TIMEOUT,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.stream.write_all(raw)?;
        self.stream.flush()
    }

    /// Reads one response (skipping 1xx interim responses).  Bytes after it stay buffered
    /// for the next call.
    pub fn read_response(&mut self, is_head: bool) -> Response {
        self.read_response_from(Instant::now(), is_head)
    }

    /// Sends `raw` then reads its response.
    pub fn roundtrip(&mut self, raw: &[u8]) -> Response {
        let t0 = Instant::now();
        if let Err(e) = self.send(raw) {
            let mut r = self.read_response_from(t0, raw.starts_with(b"HEAD "));
            r.error.get_or_insert_with(|| format!("send: {e}"));
            return r;
        }
        self.read_response_from(t0, raw.starts_with(b"HEAD "))
    }

    /// True if the server closed the connection (reads with a short timeout).
    pub fn is_closed_by_peer(&mut self, wait: Duration) -> bool {
        if self.eof {
            return true;
        }
        let _ = self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let mut b = [0u8; 4096];
        match self.stream.read(&mut b) {
            Ok(0) => {
                self.eof = true;
                true
            }
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                false
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => false,
            Err(_) => {
                self.eof = true;
                true
            }
        }
    }

    /// Reads more bytes into the buffer; Ok(false) on EOF.
    fn fill(&mut self, deadline: Instant) -> Result<bool, (bool, String)> {
        if self.eof {
            return Ok(false);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err((true, "timed out".into()));
        }
        let _ = self.stream.set_read_timeout(Some(deadline - now));
        let mut b = vec![0u8; 65536];
        match self.stream.read(&mut b) {
            Ok(0) => {
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err((true, "timed out".into()))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => {
                self.eof = true;
                Err((false, e.to_string()))
            }
        }
    }

    fn read_response_from(&mut self, t0: Instant, is_head: bool) -> Response {
        let deadline = Instant::now() + self.timeout;
        let mut r = Response::default();
        // Head (repeated while 1xx).
        loop {
            let head_end = loop {
                if let Some(e) = find_head_end(&self.buf) {
                    break Some(e);
                }
                let had = self.buf.len();
                match self.fill(deadline) {
                    Ok(true) => {
                        if had == 0 && r.first_byte.is_none() {
                            r.first_byte = Some(t0.elapsed());
                        }
                    }
                    Ok(false) => break None,
                    Err((to, e)) => {
                        r.timed_out = to;
                        r.error = Some(e);
                        break None;
                    }
                }
            };
            let Some((head_len, body_start)) = head_end else {
                // No complete head: keep whatever arrived as the body for diagnosis.
                r.body = std::mem::take(&mut self.buf);
                r.raw_head = String::new();
                r.elapsed = t0.elapsed();
                return r;
            };
            let head = String::from_utf8_lossy(&self.buf[..head_len]).into_owned();
            self.buf.drain(..body_start);
            parse_head(&head, &mut r);
            r.raw_head = head;
            if (100..200).contains(&r.status) && r.status != 101 {
                r.headers.clear();
                continue;
            }
            break;
        }
        // Body.
        let te_chunked = r
            .header("Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let no_body = is_head || r.status == 204 || r.status == 304 || (100..200).contains(&r.status);
        let note = |r: &mut Response, n: usize| r.arrivals.push((t0.elapsed(), n));
        if no_body {
            r.complete = true;
        } else if te_chunked {
            r.chunked = true;
            let mut dec = ChunkDecoder::default();
            let mut pos = 0;
            if !self.buf.is_empty() {
                let n = self.buf.len();
                note(&mut r, n);
            }
            loop {
                match dec.feed(&self.buf[pos..], &mut r.body) {
                    Ok(Some(used)) => {
                        pos += used;
                        r.complete = true;
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        r.error = Some(format!("bad chunked encoding: {e}"));
                        pos = self.buf.len();
                        break;
                    }
                }
                self.buf.clear();
                pos = 0;
                match self.fill(deadline) {
                    Ok(true) => {
                        let n = self.buf.len();
                        note(&mut r, n);
                    }
                    Ok(false) => break,
                    Err((to, e)) => {
                        r.timed_out = to;
                        r.error = Some(e);
                        break;
                    }
                }
            }
            self.buf.drain(..pos.min(self.buf.len()));
        } else if let Some(cl) = r.header("Content-Length").and_then(|v| v.trim().parse::<usize>().ok()) {
            if !self.buf.is_empty() {
                let n = self.buf.len();
                note(&mut r, n);
            }
            while self.buf.len() < cl {
                let had = self.buf.len();
                match self.fill(deadline) {
                    Ok(true) => note(&mut r, self.buf.len() - had),
                    Ok(false) => break,
                    Err((to, e)) => {
                        r.timed_out = to;
                        r.error = Some(e);
                        break;
                    }
                }
            }
            let n = cl.min(self.buf.len());
            r.body = self.buf.drain(..n).collect();
            r.complete = n == cl;
        } else {
            if !self.buf.is_empty() {
                let n = self.buf.len();
                note(&mut r, n);
            }
            loop {
                let had = self.buf.len();
                match self.fill(deadline) {
                    Ok(true) => note(&mut r, self.buf.len() - had),
                    Ok(false) => {
                        r.complete = true;
                        break;
                    }
                    Err((to, e)) => {
                        r.timed_out = to;
                        r.error = Some(e);
                        break;
                    }
                }
            }
            r.body = std::mem::take(&mut self.buf);
        }
        r.elapsed = t0.elapsed();
        r
    }
}

/// (end of head text, start of body) — accepts CRLFCRLF or LFLF.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_head(head: &str, r: &mut Response) {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    r.version = parts.next().unwrap_or("").to_string();
    r.status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    r.reason = parts.next().unwrap_or("").to_string();
    for l in lines {
        if l.starts_with([' ', '\t']) {
            if let Some(last) = r.headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(l.trim());
            }
        } else if let Some((k, v)) = l.split_once(':') {
            r.headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// Incremental chunked-body decoder.
#[derive(Default)]
struct ChunkDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

impl ChunkDecoder {
    /// Consumes `input`; Ok(Some(n)) when the body ended after `n` bytes of it.
    fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<Option<usize>, String> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Data(rem) => {
                    let n = rem.min(input.len() - i);
                    body.extend_from_slice(&input[i..i + n]);
                    i += n;
                    self.state = if rem == n {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(rem - n)
                    };
                }
                _ => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        self.line.push(b);
                        if self.line.len() > 64 * 1024 {
                            return Err("chunk line too long".into());
                        }
                        continue;
                    }
                    let line = String::from_utf8_lossy(&self.line).trim_end_matches('\r').to_string();
                    self.line.clear();
                    match self.state {
                        ChunkState::Size => {
                            let hex = line.split(';').next().unwrap_or("").trim();
                            let size =
                                usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
                            self.state = if size == 0 {
                                ChunkState::Trailer
                            } else {
                                ChunkState::Data(size)
                            };
                        }
                        ChunkState::DataEnd => {
                            if !line.is_empty() {
                                return Err(format!("missing CRLF after chunk data (got {line:?})"));
                            }
                            self.state = ChunkState::Size;
                        }
                        ChunkState::Trailer => {
                            if line.is_empty() {
                                return Ok(Some(i));
                            }
                        }
                        ChunkState::Data(_) => unreachable!(),
                    }
                }
            }
        }
        Ok(None)
    }
}

/// `conf` with one httpd child (`threads` threads under worker/event): kept and
/// multiplexed connections are per child, so requests that must meet the same pool go to
/// that one child.
pub fn one_child(conf: ApacheConf, threads: u32) -> ApacheConf {
    let mpm_conf = match mpm() {
        Mpm::Prefork => {
            "StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nServerLimit 1\nMaxRequestWorkers 1\n".to_string()
        }
        _ => format!(
            "StartServers 1\nServerLimit 1\nThreadLimit {threads}\nThreadsPerChild {threads}\nMinSpareThreads 1\n\
             MaxSpareThreads {threads}\nMaxRequestWorkers {threads}\n"
        ),
    };
    conf.mpm_conf(&mpm_conf)
}
