//! The real [`Effects`]: listening sockets (PM-22), spawning (PM-25), signals, liveness of
//! the previous httpd generation. Safe Rust over nix/std; the few calls that need `unsafe`
//! are in [`crate::sys`].

use super::spec::{ClassSpec, Listen};
use super::table::{ClassId, Effects, SpawnResult, StopSignal};
use super::{LogLevel, Logger, SocketEvent, SocketReport};
use crate::sys::child::{self, ChildSetup};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6,
    UnixAddr,
};
use nix::sys::stat::{stat, umask, utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::Pid;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// A Unix socket file this PM bound, identified by inode so that a file some later PM
/// (or anybody else) put at the same path is never unlinked by mistake.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

#[derive(Debug)]
pub struct ListenSocket {
    fd: OwnedFd,
    file: Option<SocketFile>,
}

/// Why a socket could not be created: the legacy text's failing call.
#[derive(Debug)]
pub struct SocketError {
    pub errno: Errno,
    pub what: String,
}

fn backlog(depth: u32) -> Backlog {
    Backlog::new(i32::try_from(depth).unwrap_or(i32::MAX)).unwrap_or(Backlog::MAXCONN)
}

/// PM-22: creates, binds and listens on a class's socket (close-on-exec).
pub fn create_listener(listen_on: &Listen, depth: u32) -> Result<ListenSocket, SocketError> {
    let fail = |what: String| move |errno| SocketError { errno, what };
    match listen_on {
        Listen::Unix(path) => {
            let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
                .map_err(fail("socket() failed".into()))?;
            let addr = UnixAddr::new(path.as_path()).map_err(fail(format!("bind() failed [{}]", path.display())))?;
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // bind() will fail and report it.
                Err(_) => {}
            }
            // Never let the socket exist with looser permissions than 0600, even briefly
            // (the PM is single-threaded, so the umask change is not seen by anyone else).
            let old = umask(Mode::from_bits_truncate(0o177));
            let bound = bind(fd.as_raw_fd(), &addr);
            umask(old);
            bound.map_err(fail(format!("bind() failed [{}]", path.display())))?;
            let st = stat(path.as_path()).map_err(fail("chmod() of socket failed".into()))?;
            let file = SocketFile {
                path: path.clone(),
                dev: st.st_dev,
                ino: st.st_ino,
            };
            // From here on the file is removed again if anything fails.
            let sock = ListenSocket { fd, file: Some(file) };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| SocketError {
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                what: "chmod() of socket failed".into(),
            })?;
            listen(&sock.fd, backlog(depth)).map_err(fail("listen() failed".into()))?;
            Ok(sock)
        }
        Listen::Tcp(addr) => {
            let family = match addr {
                SocketAddr::V4(_) => AddressFamily::Inet,
                SocketAddr::V6(_) => AddressFamily::Inet6,
            };
            let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
                .map_err(fail("socket() failed".into()))?;
            setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(fail("socket() failed".into()))?;
            let bound = match addr {
                SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(*a)),
                SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(*a)),
            };
            // FIX (PM-22): legacy printed the port in network byte order.
            bound.map_err(fail(format!("bind() failed [{addr}]")))?;
            listen(&fd, backlog(depth)).map_err(fail("listen() failed".into()))?;
            Ok(ListenSocket { fd, file: None })
        }
    }
}

impl ListenSocket {
    /// Unlinks the socket file if it is still the one this PM bound. Done once.
    fn unlink_if_ours(&mut self) -> std::io::Result<()> {
        let Some(f) = self.file.take() else { return Ok(()) };
        match stat(f.path.as_path()) {
            Ok(st) if st.st_dev == f.dev && st.st_ino == f.ino => std::fs::remove_file(&f.path),
            _ => Ok(()),
        }
    }
}

impl Drop for ListenSocket {
    fn drop(&mut self) {
        let _ = self.unlink_if_ours();
    }
}

/// Working directory of an application: the directory containing it (PM-25).
pub fn app_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("/"),
    }
}

/// Whether `pid` (a process of the previous httpd generation, not our child) still
/// exists. A zombie counts as gone.
pub fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": comm may contain anything, so look after the last ')'.
        Ok(s) => !matches!(
            s.rfind(')').and_then(|i| s[i + 1..].trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => true,
    }
}

/// Why a directory the module trusts (the IPC directory, `dynamic/`) may not
/// hold sockets: it must be a real directory (not a symbolic link), owned by
/// the PM's user and writable by nobody else — otherwise whoever controls it
/// could point the module's sockets somewhere of theirs (finding 2 of the
/// security review; the configuration check ran once, and followed links).
pub fn untrusted_dir_reason(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    match std::fs::symlink_metadata(dir) {
        Err(e) => Some(format!("can't lstat() it: {e}")),
        Ok(m) if m.file_type().is_symlink() => Some("is a symbolic link".into()),
        Ok(m) if !m.is_dir() => Some("is not a directory".into()),
        Ok(m) if m.uid() != me => Some(format!("is owned by uid {}, not by uid {me}", m.uid())),
        Ok(m) if m.mode() & 0o022 != 0 => Some(format!(
            "is writable by its group or by others (mode {:04o})",
            m.mode() & 0o7777
        )),
        Ok(_) => None,
    }
}

/// The PM's side effects.
pub struct Os<'a> {
    pub log: Logger<'a>,
    report: &'a dyn SocketReport,
    sockets: HashMap<ClassId, (PathBuf, ListenSocket, Listen)>,
    /// The IPC directory and `dynamic/`: re-checked before every bind of a
    /// socket in them ([`untrusted_dir_reason`]).
    trusted_dirs: Vec<PathBuf>,
    pm_pid: i32,
    /// The write end of the pipe the PM relays to its stderr ([`Os::set_app_output`]).
    app_output: Option<OwnedFd>,
}

impl<'a> Os<'a> {
    pub fn new(log: Logger<'a>, report: &'a dyn SocketReport) -> Os<'a> {
        Os {
            log,
            report,
            sockets: HashMap::new(),
            trusted_dirs: Vec::new(),
            pm_pid: nix::unistd::getpid().as_raw(),
            app_output: None,
        }
    }

    /// Applications started from now on get `out` as their stdout and stderr
    /// (the PM relays it to whatever its stderr is at the time), instead of the
    /// PM's stderr itself.
    pub fn set_app_output(&mut self, out: OwnedFd) {
        self.app_output = Some(out);
    }

    /// Closes every socket and unlinks the Unix socket files this PM created.
    pub fn release_all(&mut self) {
        for (_, (app, sock, listen)) in self.sockets.drain() {
            release(&self.log, &app, sock);
            self.report.socket(&listen, SocketEvent::Released);
        }
    }

    /// Makes sure the directory of the dynamic sockets exists (0700); with `wipe`, also
    /// removes everything but subdirectories from it: sockets left behind by a PM that
    /// crashed (PM-23; legacy bug 13: the intended wipe removed nothing). Only done at
    /// PM start, before any dynamic class exists.
    pub fn prepare_dynamic_dir(&mut self, dir: &Path, wipe: bool) {
        if dir.as_os_str().is_empty() {
            return;
        }
        self.trusted_dirs = [dir.parent().map(Path::to_path_buf), Some(dir.to_path_buf())]
            .into_iter()
            .flatten()
            .filter(|d| !d.as_os_str().is_empty() && d != Path::new("/"))
            .collect();
        if let Some(ipc) = dir.parent() {
            if let Some(why) = untrusted_dir_reason(ipc) {
                self.log.log(
                    LogLevel::Crit,
                    0,
                    &format!(
                        "FastCGI: the IPC directory \"{}\" {why}: no socket is created in it",
                        ipc.display()
                    ),
                );
                return;
            }
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                self.log.log(
                    LogLevel::Error,
                    e.raw_os_error().unwrap_or(0),
                    &format!("FastCGI: can't create the dynamic directory \"{}\"", dir.display()),
                );
                return;
            }
        }
        if let Some(why) = untrusted_dir_reason(dir) {
            self.log.log(
                LogLevel::Crit,
                0,
                &format!(
                    "FastCGI: the dynamic directory \"{}\" {why}: no socket is created in it",
                    dir.display()
                ),
            );
            return;
        }
        if !wipe {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.log.log(
                    LogLevel::Error,
                    e.raw_os_error().unwrap_or(0),
                    &format!("FastCGI: can't read the dynamic directory \"{}\"", dir.display()),
                );
                return;
            }
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            // file_type() does not follow symlinks: a link is removed, not its target.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => self.log.log(
                    LogLevel::Error,
                    e.raw_os_error().unwrap_or(0),
                    &format!("FastCGI: unlink() failed to remove stale file \"{}\"", path.display()),
                ),
            }
        }
        if removed > 0 {
            self.log.log(
                LogLevel::Info,
                0,
                &format!(
                    "FastCGI: removed {removed} stale file(s) from the dynamic directory \"{}\"",
                    dir.display()
                ),
            );
        }
    }

    /// A socket in the IPC directory or `dynamic/` is only bound while that
    /// directory is still the real, private one.
    fn check_socket_dir(&self, listen: &Listen) -> Result<(), SocketError> {
        let Listen::Unix(path) = listen else { return Ok(()) };
        let Some(dir) = path.parent().filter(|d| self.trusted_dirs.iter().any(|t| t == d)) else {
            return Ok(());
        };
        match untrusted_dir_reason(dir) {
            None => Ok(()),
            Some(why) => Err(SocketError {
                errno: Errno::EPERM,
                what: format!("its directory \"{}\" {why}", dir.display()),
            }),
        }
    }

    fn ensure_socket(&mut self, class: ClassId, spec: &ClassSpec, label: &str) -> Option<&ListenSocket> {
        use std::collections::hash_map::Entry;
        if !self.sockets.contains_key(&class) {
            let created = self
                .check_socket_dir(&spec.listen)
                .and_then(|()| create_listener(&spec.listen, spec.listen_queue_depth));
            match created {
                Ok(_) => self.report.socket(&spec.listen, SocketEvent::Bound),
                Err(ref e) => {
                    self.log.log(
                        LogLevel::Crit,
                        e.errno as i32,
                        &format!("FastCGI: can't create {label} \"{}\": {}", spec.path.display(), e.what),
                    );
                    let owner = match &spec.listen {
                        Listen::Unix(p) => std::fs::symlink_metadata(p)
                            .ok()
                            .map(|m| std::os::unix::fs::MetadataExt::uid(&m)),
                        Listen::Tcp(_) => None,
                    };
                    self.report.socket(&spec.listen, SocketEvent::Failed { owner });
                }
            }
            let s = created.ok()?;
            return match self.sockets.entry(class) {
                Entry::Vacant(v) => Some(&v.insert((spec.path.clone(), s, spec.listen.clone())).1),
                Entry::Occupied(e) => Some(&e.into_mut().1),
            };
        }
        self.sockets.get(&class).map(|e| &e.1)
    }
}

fn release(log: &Logger<'_>, app: &Path, mut sock: ListenSocket) {
    let path = sock.file.as_ref().map(|f| f.path.clone());
    if let (Err(e), Some(path)) = (sock.unlink_if_ours(), path) {
        log.log(
            LogLevel::Error,
            e.raw_os_error().unwrap_or(0),
            &format!(
                "FastCGI: unlink() failed to remove socket file \"{}\" for server \"{}\"",
                path.display(),
                app.display()
            ),
        );
    }
}

fn spawn_process(spec: &ClassSpec, sock: &ListenSocket, pm_pid: i32, out: Option<&OwnedFd>) -> std::io::Result<i32> {
    // Duplicates (close-on-exec) that std moves onto fds 0, 1 and 2 in the child.
    let stdin = sock.fd.try_clone()?;
    let pm_stderr = std::io::stderr();
    let out = match out {
        Some(pipe) => pipe.as_fd(),
        None => pm_stderr.as_fd(),
    };
    let stdout = out.try_clone_to_owned()?;
    let stderr = out.try_clone_to_owned()?;
    // PM-27: through the wrapper, argv = [wrapper, user, group, basename].
    let mut cmd = match &spec.wrapper {
        None => Command::new(&spec.path),
        Some(w) => {
            let mut c = Command::new(&w.path);
            c.arg(&w.user)
                .arg(&w.group)
                .arg(spec.path.file_name().unwrap_or(spec.path.as_os_str()));
            c
        }
    };
    cmd.env_clear()
        .envs(spec.initial_env.iter().map(|(k, v)| (k, v)))
        .current_dir(app_dir(&spec.path))
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    let setup = ChildSetup {
        // Legacy passed the unsigned option to nice(int): a wrapped negative stays negative.
        nice: spec.priority as i32,
        parent_pid: pm_pid,
    };
    let child = child::spawn(&mut cmd, setup)?;
    // Dropping `Child` neither waits nor kills: the PM reaps with waitpid(-1).
    Ok(child.id() as i32)
}

impl Os<'_> {
    /// The running processes per class, for mod_status.
    pub fn report_processes(&self, classes: &[super::ClassProcesses<'_>]) {
        self.report.processes(classes);
    }
}

impl Effects for Os<'_> {
    fn restarted(&mut self, _class: ClassId, kind: super::table::ClassKind, spec: &ClassSpec) {
        self.report.restarted(kind == super::table::ClassKind::Dynamic, spec);
    }

    fn died(
        &mut self,
        _class: ClassId,
        kind: super::table::ClassKind,
        spec: &ClassSpec,
        pid: i32,
        how: crate::sys::wait::ChildExit,
    ) {
        self.report
            .died(kind == super::table::ClassKind::Dynamic, spec, pid, how);
    }

    fn spawn(&mut self, class: ClassId, spec: &ClassSpec) -> SpawnResult {
        let pm_pid = self.pm_pid;
        if self.ensure_socket(class, spec, "server").is_none() {
            return SpawnResult::SocketFailed;
        }
        let Some((_, sock, _)) = self.sockets.get(&class) else {
            return SpawnResult::SocketFailed;
        };
        match spawn_process(spec, sock, pm_pid, self.app_output.as_ref()) {
            Ok(pid) => SpawnResult::Started(pid),
            Err(e) => SpawnResult::Failed(e.to_string()),
        }
    }

    fn signal(&mut self, pid: i32, sig: StopSignal) {
        let s = match sig {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Kill => Signal::SIGKILL,
        };
        // ESRCH: already gone (a zombie we have not reaped is still signallable).
        // A wrapped application running as another user: with a wrapper the
        // PM keeps CAP_KILL for exactly this (PM-05; `sys::caps`).
        let _ = kill(Pid::from_raw(pid), s);
    }

    fn log(&mut self, level: LogLevel, msg: String) {
        self.log.log(level, 0, &msg);
    }

    fn release_socket(&mut self, class: ClassId) {
        if let Some((app, sock, listen)) = self.sockets.remove(&class) {
            release(&self.log, &app, sock);
            self.report.socket(&listen, SocketEvent::Released);
        }
    }

    fn transfer_socket(&mut self, from: ClassId, to: ClassId) {
        if let Some(s) = self.sockets.remove(&from) {
            self.sockets.insert(to, s);
        }
    }

    fn is_alive(&mut self, pid: i32) -> bool {
        is_alive(pid)
    }

    fn open_socket(&mut self, class: ClassId, spec: &ClassSpec) -> bool {
        self.ensure_socket(class, spec, "(dynamic) server").is_some()
    }

    fn socket_gone(&mut self, class: ClassId) -> bool {
        let Some(f) = self.sockets.get(&class).and_then(|(_, s, _)| s.file.as_ref()) else {
            return false;
        };
        !matches!(stat(f.path.as_path()), Ok(st) if st.st_dev == f.dev && st.st_ino == f.ino)
    }

    fn touch_socket(&mut self, class: ClassId) {
        let Some(f) = self.sockets.get(&class).and_then(|(_, s, _)| s.file.as_ref()) else {
            return;
        };
        match stat(f.path.as_path()) {
            Ok(st) if st.st_dev == f.dev && st.st_ino == f.ino => {}
            _ => return,
        }
        let now = TimeSpec::UTIME_NOW;
        if let Err(e) = utimensat(None, f.path.as_path(), &now, &now, UtimensatFlags::NoFollowSymlink) {
            self.log.log(
                LogLevel::Error,
                e as i32,
                &format!("FastCGI: utime() failed on socket file \"{}\"", f.path.display()),
            );
        }
    }

    fn file_mtime(&mut self, path: &Path) -> Option<SystemTime> {
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    fn wall_now(&mut self) -> SystemTime {
        SystemTime::now()
    }
}
