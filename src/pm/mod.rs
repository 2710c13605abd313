//! The process manager (fcgi-pm, section 4): keeps the static applications
//! (`FastCgiServer`, 2.2) running, and starts and scales the dynamic applications (4.6)
//! the request handlers ask for.
//!
//! One long-lived process forked by the httpd parent (the glue — fork, privilege drop,
//! its own process group, other-child registration — lives outside this module). It
//! survives graceful restarts: every httpd generation sends it its configuration over a
//! control socket ([`msg`]) and it reconciles ([`table::Table::configure`]), keeping
//! unchanged classes running (SG-6; legacy PM-12 restarted everything).
//!
//! Structure:
//! - [`spec`]: what the PM is told; [`msg`]: the control-channel codec (sans-IO);
//!   [`req`]: the request handlers' datagrams about dynamic applications;
//! - [`table`]: every schedule / back-off / reconcile decision as a pure state machine
//!   with `now` as input and its side effects behind a trait; [`policy`]: the dynamic
//!   kill policy as pure functions;
//! - `os`: the real side effects (sockets, spawning, signals);
//! - [`run`]: the event loop. All signals it cares about are blocked and read from a
//!   signalfd; it polls the control socket, the request datagram socket and the signalfd
//!   with a timeout equal to the time until the next scheduled action (no periodic tick;
//!   while a retired class waits for the previous httpd generation it re-checks once a
//!   second; while dynamic classes exist the load smoothing and kill policy wake it).
//!
//! Pure Rust without `unsafe`; the OS calls that need it are in [`crate::sys`].

#![forbid(unsafe_code)]

pub mod msg;
pub(crate) mod os;
pub mod policy;
pub mod req;
pub mod spec;
pub mod table;
#[cfg(test)]
mod tests;

pub use msg::{encode, CtlMsg, FrameReader, MsgError};
pub use req::{ClassKey, ReqError, ReqMsg};
pub use spec::{ClassSpec, DynamicSpec, Listen, PmConfig, WrapperExec};

use crate::sys;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recv, MsgFlags};
use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};
use table::{Table, KILL_GRACE};

/// httpd log levels, numbered like APLOG_* (0 = emerg .. 7 = debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum LogLevel {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Error = 3,
    Warn = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl LogLevel {
    /// httpd's name of the level, as in `[fastcgi:warn]`.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Emerg => "emerg",
            LogLevel::Alert => "alert",
            LogLevel::Crit => "crit",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Notice => "notice",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// Where the PM's log lines go (the glue writes them to httpd's main error log).
/// `errno` (0 for none) is the OS error to prefix httpd-style (`(<n>)<text>: `).
/// [`run`] already filters by the `log_level` of the latest configuration.
pub trait PmLog {
    fn log(&self, level: LogLevel, errno: i32, msg: &str);
}

/// What happened to a class's listening socket, for request handlers: they
/// must never connect to an address our PM does not hold (finding 1 of the
/// security review: a local user who binds a static application's socket
/// or port first would otherwise receive its requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketEvent {
    /// The PM bound and listens on it.
    Bound,
    /// `bind()` failed; for a Unix socket, the uid owning the file in the
    /// way (if any could be seen).
    Failed { owner: Option<u32> },
    /// The PM closed one of its listening sockets for this address.
    Released,
}

/// Where the PM publishes [`SocketEvent`]s, and for mod_status its running
/// processes and restarts (the glue: httpd's shared memory).
pub trait SocketReport {
    fn socket(&self, listen: &Listen, event: SocketEvent);
    /// Every class with the processes it has running, after each turn of
    /// the event loop in which that changed.
    fn processes(&self, _classes: &[ClassProcesses<'_>]) {}
    /// A process of a class was started again after its previous one
    /// exited without the PM asking it to.
    fn restarted(&self, _dynamic: bool, _spec: &ClassSpec) {}
    /// A process of a class exited without the PM asking it to.
    fn died(&self, _dynamic: bool, _spec: &ClassSpec, _pid: i32, _how: crate::sys::wait::ChildExit) {}
}

/// A class and its running processes, as [`SocketReport::processes`] gets them.
pub struct ClassProcesses<'a> {
    pub dynamic: bool,
    /// Replaced by a new configuration; its processes still serve the
    /// previous httpd generation.
    pub retired: bool,
    pub spec: &'a ClassSpec,
    pub running: u32,
}

/// For tests and set-ups without shared memory.
pub struct NoReport;

impl SocketReport for NoReport {
    fn socket(&self, _: &Listen, _: SocketEvent) {}
}

/// Filters by the configured `LogLevel` (updated with every configuration).
pub struct Logger<'a> {
    sink: &'a dyn PmLog,
    max: Cell<u8>,
}

impl<'a> Logger<'a> {
    pub fn new(sink: &'a dyn PmLog, max: u8) -> Logger<'a> {
        Logger {
            sink,
            max: Cell::new(max),
        }
    }

    pub fn set_level(&self, max: u8) {
        self.max.set(max);
    }

    pub fn log(&self, level: LogLevel, errno: i32, msg: &str) {
        if level as u8 <= self.max.get() {
            self.sink.log(level, errno, msg);
        }
    }
}

/// How long the PM waits for SIGKILLed processes to be reaped before giving up on them.
const KILL_REAP_WAIT: Duration = Duration::from_secs(5);
/// Bytes read from the control socket at a time.
const CTL_READ_CHUNK: usize = 64 * 1024;
/// Request datagrams handled per wake-up at most (more wait for the next turn, so a
/// flood cannot starve reaping, timers and the control socket).
const REQ_BATCH: usize = 256;
/// Bytes of application output relayed per read, and reads per wake-up at most (a
/// flood waits for the next turn, like request datagrams).
const RELAY_CHUNK: usize = 64 * 1024;
const RELAY_BATCH: usize = 16;

/// Exit codes of [`run`].
pub const EXIT_OK: i32 = 0;
/// The PM could not set itself up (signalfd, signal mask…).
pub const EXIT_SETUP: i32 = 1;
/// The control channel carried something this PM cannot understand (typically a newer
/// module version after a graceful restart): the PM stopped everything so that a new one
/// can be started.
pub const EXIT_PROTOCOL: i32 = 3;

/// Why the event loop ended.
#[derive(Debug)]
enum Stop {
    Requested,
    Signal(Signal),
    CtlEof,
    CtlError(Errno),
    Protocol(MsgError),
    Poll(Errno),
}

struct Pm<'a> {
    ctl: OwnedFd,
    /// The request datagram socket; `None` after it failed for good.
    req: Option<OwnedFd>,
    sfd: SignalFd,
    reader: FrameReader,
    table: Table,
    os: os::Os<'a>,
    /// The dynamic socket directory prepared last.
    dynamic_dir: Option<std::path::PathBuf>,
    /// The read end of the pipe every application's stdout and stderr write to; the
    /// PM copies it to its stderr, so that output of applications started before the
    /// error log was re-opened follows it too. `None` if the pipe could not be made
    /// (applications then write to the PM's stderr of their start directly).
    relay: Option<OwnedFd>,
    /// The running processes per class last given to the report.
    reported: Vec<(table::ClassId, u32)>,
}

/// The signals the PM handles through its signalfd.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        set.add(s);
    }
    set
}

fn nonblocking_cloexec(fd: &OwnedFd) -> Result<(), (Errno, &'static str)> {
    let fd = fd.as_raw_fd();
    let fl = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| (e, "fcntl(F_GETFL)"))?;
    fcntl(fd, FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK))
        .map_err(|e| (e, "fcntl(F_SETFL)"))?;
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| (e, "fcntl(F_SETFD)"))?;
    Ok(())
}

fn setup(ctl: &OwnedFd, req: &OwnedFd) -> Result<SignalFd, (Errno, &'static str)> {
    let io_errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
    sys::fd::ensure_std_fds_open().map_err(|e| (io_errno(e), "open(/dev/null)"))?;
    let mask = handled_signals();
    mask.thread_block().map_err(|e| (e, "sigprocmask()"))?;
    // Forget httpd's handlers and ignored signals (inherited through fork).
    sys::signals::reset_dispositions(true);
    let sfd =
        SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(|e| (e, "signalfd()"))?;
    // Legacy bug 17: nothing the PM inherited may reach the applications.
    sys::fd::set_cloexec_from(3).map_err(|e| (io_errno(e), "close-on-exec sweep"))?;
    nonblocking_cloexec(ctl)?;
    nonblocking_cloexec(req)?;
    Ok(sfd)
}

/// Runs the process manager until httpd tells it to stop ([`CtlMsg::Shutdown`]), the
/// control socket reaches end-of-file (httpd gone, PM-14), or SIGTERM/SIGINT/SIGHUP
/// arrives; then stops every application (SIGTERM, SIGKILL after 3 s) and removes its
/// Unix sockets. Returns the process exit code ([`EXIT_OK`], [`EXIT_SETUP`],
/// [`EXIT_PROTOCOL`]).
///
/// `req` is the PM's end of the `SOCK_DGRAM` socketpair the request handlers send
/// [`ReqMsg`] datagrams on (made non-blocking here). At start the PM removes stale files
/// from the dynamic socket directory of `first` (and never later).
///
/// Expects to be the only thread of its process (it blocks signals, changes dispositions
/// and the umask, and reaps every child with `waitpid(-1)`), with fd 2 = the error log
/// the applications' stdout/stderr should go to. A descriptor that arrives with the
/// control bytes (`SCM_RIGHTS`) replaces fd 2 from then on (httpd's error log, re-opened
/// for each configuration).
pub fn run(first: PmConfig, ctl: OwnedFd, req: OwnedFd, log: &dyn PmLog, report: &dyn SocketReport) -> i32 {
    let logger = Logger::new(log, first.log_level);
    let sfd = match setup(&ctl, &req) {
        Ok(s) => s,
        Err((errno, what)) => {
            logger.log(
                LogLevel::Alert,
                errno as i32,
                &format!("FastCGI: process manager exiting, {what} failed"),
            );
            return EXIT_SETUP;
        }
    };
    logger.log(
        LogLevel::Notice,
        0,
        &format!("FastCGI: process manager initialized (pid {})", std::process::id()),
    );
    let mut os = os::Os::new(logger, report);
    let relay = match output_pipe() {
        Ok((r, w)) => {
            os.set_app_output(w);
            Some(r)
        }
        Err(e) => {
            os.log.log(
                LogLevel::Error,
                e as i32,
                "FastCGI: process manager: can't create the applications' output pipe, they write to the error log of their start directly",
            );
            None
        }
    };
    let mut pm = Pm {
        ctl,
        req: Some(req),
        sfd,
        reader: FrameReader::new(),
        table: Table::new(),
        os,
        dynamic_dir: None,
        relay,
        reported: Vec::new(),
    };
    pm.os.prepare_dynamic_dir(&first.dynamic.dynamic_dir, true);
    pm.dynamic_dir = Some(first.dynamic.dynamic_dir.clone());
    pm.apply(first);
    let stop = pm.event_loop();
    pm.shutdown(stop)
}

/// The applications' output pipe: (read end, non-blocking; write end, blocking), both
/// close-on-exec.
fn output_pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let fl = fcntl(r.as_raw_fd(), FcntlArg::F_GETFL)?;
    fcntl(
        r.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
    )?;
    Ok((r, w))
}

/// Poll timeout until `t`, rounded up to whole milliseconds (at least 1 ms, so a due
/// time in the past can never spin).
fn timeout_until(t: Instant) -> PollTimeout {
    let d = t.saturating_duration_since(Instant::now());
    let ms = d.as_nanos().div_ceil(1_000_000).clamp(1, i32::MAX as u128) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

impl Pm<'_> {
    fn log(&self, level: LogLevel, errno: i32, msg: &str) {
        self.os.log.log(level, errno, msg);
    }

    fn apply(&mut self, cfg: PmConfig) {
        self.os.log.set_level(cfg.log_level);
        self.log(
            LogLevel::Info,
            0,
            &format!(
                "FastCGI: process manager: configuration of generation {} ({} server(s){})",
                cfg.generation,
                cfg.classes.len(),
                if cfg.hard_restart { ", hard restart" } else { "" }
            ),
        );
        if self.dynamic_dir.as_ref() != Some(&cfg.dynamic.dynamic_dir) || !cfg.dynamic.dynamic_dir.is_dir() {
            // A new FastCgiIpcDir: create it, but never wipe a directory in use.
            self.os.prepare_dynamic_dir(&cfg.dynamic.dynamic_dir, false);
            self.dynamic_dir = Some(cfg.dynamic.dynamic_dir.clone());
        }
        self.table.configure(&cfg, Instant::now(), &mut self.os);
    }

    /// Tells the report the running processes per class when they changed.
    fn report_processes(&mut self) {
        let now: Vec<(table::ClassId, u32)> = self
            .table
            .classes()
            .iter()
            .map(|c| (c.id(), c.running_processes()))
            .collect();
        if now == self.reported {
            return;
        }
        let classes: Vec<ClassProcesses<'_>> = self
            .table
            .classes()
            .iter()
            .map(|c| ClassProcesses {
                dynamic: c.kind() == table::ClassKind::Dynamic,
                retired: c.is_retired(),
                spec: c.spec(),
                running: c.running_processes(),
            })
            .collect();
        self.os.report_processes(&classes);
        self.reported = now;
    }

    /// Reaps every terminated child.
    fn reap(&mut self) {
        loop {
            match sys::wait::reap_any() {
                Ok(Some((pid, how))) => {
                    if !self.table.on_exit(pid, how, Instant::now(), &mut self.os) {
                        self.log(
                            LogLevel::Debug,
                            0,
                            &format!("FastCGI: process manager reaped unknown child (pid {pid})"),
                        );
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    self.log(
                        LogLevel::Error,
                        e.raw_os_error().unwrap_or(0),
                        "FastCGI: process manager: waitpid() failed",
                    );
                    return;
                }
            }
        }
    }

    fn event_loop(&mut self) -> Stop {
        loop {
            self.reap();
            let now = Instant::now();
            self.table.tick(now, &mut self.os);
            self.report_processes();
            let timeout = self.table.next_wakeup(now).map_or(PollTimeout::NONE, timeout_until);
            let (ctl_ready, sig_ready, req_ready, relay_ready) = {
                let mut fds = vec![
                    PollFd::new(self.ctl.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN),
                ];
                let req_at = self.req.as_ref().map(|req| {
                    fds.push(PollFd::new(req.as_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                });
                let relay_at = self.relay.as_ref().map(|r| {
                    fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                });
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Stop::Poll(e),
                }
                let ready = |at: Option<usize>| at.and_then(|i| fds.get(i)?.revents()).is_some_and(|r| !r.is_empty());
                (ready(Some(0)), ready(Some(1)), ready(req_at), ready(relay_at))
            };
            if relay_ready {
                self.relay_output();
            }
            if req_ready {
                self.read_requests();
            }
            if sig_ready {
                if let Some(stop) = self.read_signals() {
                    return stop;
                }
            }
            if ctl_ready {
                if let Some(stop) = self.read_ctl() {
                    return stop;
                }
            }
        }
    }

    /// Drains the signalfd. SIGCHLD needs nothing here: every loop turn reaps.
    fn read_signals(&mut self) -> Option<Stop> {
        let mut stop = None;
        loop {
            match self.sfd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(s @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP)) => {
                        stop = stop.or(Some(Stop::Signal(s)))
                    }
                    Ok(Signal::SIGUSR1) => {
                        for line in self.table.status_lines() {
                            self.log(LogLevel::Notice, 0, &line);
                        }
                    }
                    _ => {}
                },
                Ok(None) => return stop,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    self.log(
                        LogLevel::Error,
                        e as i32,
                        "FastCGI: process manager: read() from signalfd failed",
                    );
                    return stop;
                }
            }
        }
    }

    /// Copies up to [`RELAY_BATCH`] reads of pending application output to the PM's
    /// stderr (the error log of the latest configuration).
    fn relay_output(&mut self) {
        use std::io::Write;
        let Some(r) = &self.relay else { return };
        let fd = r.as_raw_fd();
        let mut buf = vec![0u8; RELAY_CHUNK];
        for _ in 0..RELAY_BATCH {
            match nix::unistd::read(fd, &mut buf) {
                // The PM holds a write end itself: no end-of-file.
                Ok(0) => return,
                // One write per read: output the applications wrote atomically (up to
                // PIPE_BUF) stays in one piece, as it did when they wrote to the log.
                Ok(n) => {
                    let _ = std::io::stderr().write_all(&buf[..n]);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    self.log(
                        LogLevel::Error,
                        e as i32,
                        "FastCGI: process manager: read() from the applications' output pipe failed, their output is no longer logged",
                    );
                    self.relay = None;
                    return;
                }
            }
        }
    }

    /// Handles up to [`REQ_BATCH`] pending request datagrams.
    fn read_requests(&mut self) {
        let Some(req) = &self.req else { return };
        let fd = req.as_raw_fd();
        // One byte more than a valid datagram; MSG_TRUNC reports the real length.
        let mut buf = vec![0u8; req::MAX_DATAGRAM + 1];
        let mut bogus: Option<(ReqError, usize)> = None;
        let mut handled = 0;
        let mut failed = None;
        while handled < REQ_BATCH {
            let n = match recv(fd, &mut buf, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            handled += 1;
            let res = if n > req::MAX_DATAGRAM {
                Err(ReqError::TooLarge(n))
            } else {
                req::decode(&buf[..n])
            };
            match res {
                Ok(msg) => self.table.on_request(&msg, Instant::now(), &mut self.os),
                Err(e) => match &mut bogus {
                    None => bogus = Some((e, 0)),
                    Some((_, more)) => *more += 1,
                },
            }
        }
        if let Some((e, more)) = bogus {
            self.log(
                LogLevel::Error,
                0,
                &format!(
                    "FastCGI: bogus message from a request handler ignored: {e}{}",
                    if more > 0 {
                        format!(" (and {more} more)")
                    } else {
                        String::new()
                    }
                ),
            );
        }
        if let Some(e) = failed {
            // Not expected on a datagram socketpair; stop polling rather than spin.
            self.log(
                LogLevel::Error,
                e as i32,
                "FastCGI: recv() from the request handlers' socket failed, dynamic application requests are ignored from now on",
            );
            self.req = None;
        }
    }

    fn read_ctl(&mut self) -> Option<Stop> {
        let mut buf = vec![0u8; CTL_READ_CHUNK];
        loop {
            match sys::scm::recv_with_fds(self.ctl.as_fd(), &mut buf) {
                Ok((0, _)) => return Some(Stop::CtlEof),
                Ok((n, fds)) => {
                    // httpd's error log of the configuration these bytes begin
                    // (it re-opens it on every pass, e.g. after logrotate).
                    if let Some(log) = fds.into_iter().next() {
                        self.adopt_error_log(log);
                    }
                    self.reader.push(&buf[..n]);
                    loop {
                        match self.reader.next_msg() {
                            Ok(Some(CtlMsg::Configure(cfg))) => self.apply(cfg),
                            Ok(Some(CtlMsg::Shutdown)) => return Some(Stop::Requested),
                            Ok(None) => break,
                            Err(e) if e.is_fatal() => return Some(Stop::Protocol(e)),
                            Err(e) => self.log(
                                LogLevel::Error,
                                0,
                                &format!("FastCGI: process manager: bogus control message ignored: {e}"),
                            ),
                        }
                    }
                }
                Err(Errno::EAGAIN) => return None,
                Err(Errno::EINTR) => continue,
                Err(e) => return Some(Stop::CtlError(e)),
            }
        }
    }

    /// Makes `log` the PM's stderr: its own lines, and the stdout/stderr of
    /// every application (relayed through [`Pm::relay`]), go there from now on.
    fn adopt_error_log(&mut self, log: OwnedFd) {
        if let Err(e) = nix::unistd::dup2(log.as_raw_fd(), 2) {
            self.log(
                LogLevel::Error,
                e as i32,
                "FastCGI: process manager: can't switch to the re-opened error log, dup2() failed",
            );
        }
    }

    /// Reaps until no process is left or `limit` has passed; true if none is left.
    fn wait_children(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            self.reap();
            if self.table.running_pids().is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            {
                let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
                if let Some(r) = &self.relay {
                    fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
                }
                let _ = poll(&mut fds, timeout_until(deadline));
            }
            // Drain (SIGCHLD and repeated stop requests alike) so poll blocks again;
            // what the stopping applications still write is logged.
            while let Ok(Some(_)) = self.sfd.read_signal() {}
            self.relay_output();
        }
    }

    /// PM-11 with bug 16 fixed: SIGTERM, up to 3 s of reaping, SIGKILL the rest and reap
    /// them, remove the Unix sockets.
    fn shutdown(mut self, stop: Stop) -> i32 {
        let code = match &stop {
            Stop::CtlEof | Stop::CtlError(_) => {
                let (rc, errno) = match &stop {
                    Stop::CtlError(e) => (-1, *e as i32),
                    _ => (0, 0),
                };
                self.log(
                    LogLevel::Alert,
                    errno,
                    &format!("FastCGI: read() from pipe failed ({rc})"),
                );
                self.log(
                    LogLevel::Alert,
                    0,
                    "FastCGI: the PM is shutting down, Apache seems to have disappeared - bye",
                );
                EXIT_OK
            }
            Stop::Protocol(e) => {
                self.log(
                    LogLevel::Error,
                    0,
                    &format!("FastCGI: process manager shutting down: unusable control message ({e}); a new process manager has to be started"),
                );
                EXIT_PROTOCOL
            }
            Stop::Signal(s) => {
                self.log(
                    LogLevel::Notice,
                    0,
                    &format!("FastCGI: process manager received {}, shutting down", s.as_str()),
                );
                EXIT_OK
            }
            Stop::Requested => {
                self.log(LogLevel::Info, 0, "FastCGI: process manager shutting down");
                EXIT_OK
            }
            Stop::Poll(e) => {
                self.log(
                    LogLevel::Alert,
                    *e as i32,
                    "FastCGI: process manager exiting, poll() failed",
                );
                EXIT_SETUP
            }
        };
        self.table.begin_shutdown(&mut self.os);
        if !self.wait_children(KILL_GRACE) {
            let left = self.table.running_pids();
            self.log(
                LogLevel::Warn,
                0,
                &format!(
                    "FastCGI: {} process(es) still running {} seconds after SIGTERM, sending SIGKILL: {:?}",
                    left.len(),
                    KILL_GRACE.as_secs(),
                    left
                ),
            );
            self.table.kill_remaining(&mut self.os);
            if !self.wait_children(KILL_REAP_WAIT) {
                self.log(
                    LogLevel::Error,
                    0,
                    &format!(
                        "FastCGI: process manager exiting with unreaped processes: {:?}",
                        self.table.running_pids()
                    ),
                );
            }
        }
        self.relay_output();
        self.os.release_all();
        code
    }
}
