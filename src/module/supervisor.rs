//! The httpd side of the process manager (reference section 4): forking
//! it from the parent at post_config, handing each new configuration to
//! the running PM (so graceful restarts keep unchanged applications
//! running, instead of killing every application and in-flight request as
//! the legacy module did, bug 16), restarting it through httpd's
//! other-child mechanism if it dies, and stopping it — and with it every
//! application process — when httpd stops.
//!
//! The PM is a separate process: the only state that crosses
//! configuration passes is its pid and the parent's end of the control
//! socket, kept in httpd's retained data as plain integers.

use super::ModuleState;
use crate::config::{ConfigState, Server};
use crate::gateway::reuse::{Cap, Reuse};
use crate::httpd::process::{self, MainState};
use crate::httpd::{log, Level, Pool};
use crate::pm::{self, ClassSpec, CtlMsg, DynamicSpec, PmConfig, PmLog, WrapperExec};
use crate::sys::pidfd::{self, ProcIdent};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Bumped whenever the control protocol or the PM's behaviour changes in a
/// way that needs a fresh PM after a module upgrade + graceful restart.
/// 2: the PM publishes its sockets' bind status in the shared table, and
/// the request handlers rely on it.
/// 3: each configuration comes with httpd's re-opened error log
/// (`SCM_RIGHTS`), which the PM makes its stderr (log rotation, issue 12).
const PM_PROTO: u32 = 3;

/// Writes PM log lines to its stderr, which is httpd's main error log (the
/// one of the latest configuration pass: see [`send`]).
struct ErrorLogWriter {
    level: u8,
}

impl PmLog for ErrorLogWriter {
    fn log(&self, level: pm::LogLevel, errno: i32, msg: &str) {
        if level as u8 > self.level {
            return;
        }
        let line = process::format_log_line(level.name(), errno, msg);
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Publishes the PM's socket events in the shared table the request
/// handlers read ([`crate::gateway::reuse::Shared::bind_status`]), and its
/// processes and restarts in mod_status's counters.
struct SharedReport(
    Option<&'static crate::gateway::reuse::Shared>,
    Option<&'static crate::gateway::stats::Shared>,
);

fn connect_addr(listen: &pm::Listen) -> crate::config::AppAddr {
    match listen {
        pm::Listen::Unix(p) => crate::config::AppAddr::Unix(p.clone()),
        pm::Listen::Tcp(a) => crate::config::AppAddr::Tcp(crate::config::loopback_if_unspecified(*a)),
    }
}

impl pm::SocketReport for SharedReport {
    fn processes(&self, classes: &[pm::ClassProcesses<'_>]) {
        let Some(stats) = self.1 else { return };
        let classes: Vec<_> = classes
            .iter()
            .map(|c| super::status::PmClass {
                dynamic: c.dynamic,
                retired: c.retired,
                path: &c.spec.path,
                addr: connect_addr(&c.spec.listen),
                running: c.running,
            })
            .collect();
        super::status::pm_processes(stats, &classes);
    }

    fn restarted(&self, dynamic: bool, spec: &pm::ClassSpec) {
        if let Some(stats) = self.1 {
            super::status::pm_restarted(stats, dynamic, &spec.path, &connect_addr(&spec.listen));
        }
    }

    fn died(&self, dynamic: bool, spec: &pm::ClassSpec, pid: i32, how: crate::sys::wait::ChildExit) {
        if let Some(stats) = self.1 {
            super::status::pm_died(stats, dynamic, &spec.path, &connect_addr(&spec.listen), pid, how);
        }
    }

    fn socket(&self, listen: &pm::Listen, event: pm::SocketEvent) {
        let Some(table) = self.0 else { return };
        let addr = connect_addr(listen);
        match event {
            pm::SocketEvent::Bound => table.socket_bound(&addr),
            pm::SocketEvent::Failed { owner } => table.socket_failed(&addr, owner),
            pm::SocketEvent::Released => table.socket_released(&addr),
        }
    }
}

/// The static application classes of `cfg`, as the PM needs them.
pub fn classes_of(cfg: &ConfigState) -> Vec<ClassSpec> {
    let main = cfg.fcgi_identity();
    cfg.servers()
        .iter()
        .filter_map(|s| match s {
            Server::Static(st) => {
                let mtime = std::fs::metadata(&st.path).map(|m| m.mtime()).unwrap_or(0);
                let wrapper = cfg.wrapper_path().map(|w| {
                    let id = st.identity.as_ref().unwrap_or(&main);
                    WrapperExec {
                        path: w.to_path_buf(),
                        user: id.user.clone(),
                        group: id.group.clone(),
                    }
                });
                Some(ClassSpec::from_static(st, mtime, wrapper))
            }
            Server::External(_) => None,
        })
        .collect()
}

/// FastCgiConfig, as the PM needs it.
fn dynamic_of(cfg: &ConfigState) -> DynamicSpec {
    DynamicSpec::from_config(
        cfg.dynamic(),
        cfg.dynamic_dir(),
        cfg.wrapper_path().map(|p| p.to_path_buf()),
    )
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: skip past the
    // last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is our live (not zombie) child.
fn is_live_child(pid: i32) -> bool {
    if pid <= 0 || parent_of(pid) != Some(std::process::id() as i32) {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_owned));
    !matches!(state.as_deref(), Some("Z") | Some("X") | None)
}

fn send(msg: &CtlMsg) -> std::io::Result<()> {
    let mut frame = Vec::new();
    pm::encode(msg, &mut frame);
    // A configuration carries the error log httpd opened for this pass: the
    // PM makes it its stderr, for its own lines and the applications it
    // starts from then on (after logrotate + graceful, not the old file).
    let log = match msg {
        CtlMsg::Configure(_) => crate::httpd::server::main_error_log(),
        CtlMsg::Shutdown => None,
    };
    process::retained_pm().write_ctl(&frame, log.as_ref().map(|f| f.as_fd()))
}

/// The PM of a wrapper configuration runs as User/Group for good (no
/// saved uid of root, issue 12) but keeps `CAP_KILL`, so it can still
/// signal applications a setuid wrapper (suexec) started as other users
/// (legacy PM-05 kept root for that).
fn keep_only_cap_kill(run_as: (u32, u32, String)) -> bool {
    let (uid, gid, user) = run_as;
    if !nix::unistd::getuid().is_root() {
        return true;
    }
    let Ok(name) = std::ffi::CString::new(user) else {
        return false;
    };
    crate::sys::caps::become_user_keeping_kill(uid, gid, &name).is_ok()
}

/// Forks a new PM with `cfg`; records it in the retained data.
fn fork_pm(cfg: PmConfig, previous: i32, wrapper: Option<std::path::PathBuf>) -> Option<i32> {
    let who = crate::httpd::server::run_as();
    let run_as = (who.uid, who.gid, who.user_name);
    let (ours, theirs) = match socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            log::main_server(
                Level::Alert,
                e as i32,
                "FastCGI: can't create the process manager's control socket",
            );
            return None;
        }
    };
    // Request handlers → PM: one datagram per message (atomic, never
    // interleaved), on a socket every httpd child inherits.
    let (req_httpd, req_pm) = match socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            log::main_server(
                Level::Alert,
                e as i32,
                "FastCGI: can't create the process manager's request socket",
            );
            return None;
        }
    };
    let req_fd = req_pm.as_raw_fd();
    let level = cfg.log_level;
    // The previous PM's start time: read now if it is still our unreaped
    // child (its number cannot have been reused), else as recorded.
    let previous_start = match pidfd::ident(previous) {
        Some(p) if previous > 0 && parent_of(previous) == Some(std::process::id() as i32) => p.start,
        _ => process::retained_pm_start().load(Ordering::SeqCst),
    };
    // The new PM binds every socket afresh; whatever the previous one held
    // is gone, or goes with its applications.
    let table = process::reuse_table(false);
    let stats = process::stats_table(false);
    if let Some(t) = table {
        t.forget_sockets();
    }
    let pm_fd = theirs.as_raw_fd();
    let start_delay = super::pm_backoff::take_start_delay();
    let child = process::fork_child(move || {
        // Its own process group (the unit that is reaped after a restart),
        // but httpd's session: a new session is a new scheduler autogroup
        // (Debian's kernels have them on), which the scheduler shares out
        // against httpd's as a whole; measured with the applications in one
        // of their own: 13 % fewer small requests per second and 12 µs more
        // CPU per request than in httpd's (issue 11, bench/RESULTS.md).
        let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
        // What a session of its own also gave: no controlling terminal (httpd
        // in the foreground of one), so that no application can open
        // `/dev/tty`, read it or push input into it (TIOCSTI).
        crate::sys::give_up_controlling_terminal();
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
        process::set_process_title("fcgi-pm");
        process::close_fds_except(&[2, pm_fd, req_fd]);
        let logger = ErrorLogWriter { level };
        if previous > 0 {
            reap_previous_group(previous, previous_start, &logger);
        }
        super::pm_backoff::wait_before_start(start_delay, std::os::fd::AsFd::as_fd(&theirs));
        let dropped = match &wrapper {
            None => process::drop_privileges(),
            Some(w) => {
                logger.log(
                    pm::LogLevel::Notice,
                    0,
                    &format!("FastCGI: wrapper mechanism enabled (wrapper: {})", w.display()),
                );
                keep_only_cap_kill(run_as)
            }
        };
        if !dropped {
            logger.log(
                pm::LogLevel::Alert,
                0,
                "FastCGI: process manager exiting, failed to reduce privileges",
            );
            return 1;
        }
        pm::run(cfg, theirs, req_pm, &logger, &SharedReport(table, stats))
    });
    match child {
        Ok(pid) => {
            let r = process::retained_pm();
            r.pm_pid.store(pid, Ordering::SeqCst);
            // Our unreaped child: its /proc entry is there.
            process::retained_pm_start().store(pidfd::ident(pid).map_or(0, |p| p.start), Ordering::SeqCst);
            r.set_ctl(ours);
            r.set_req(req_httpd);
            r.version.store(PM_PROTO, Ordering::SeqCst);
            Some(pid)
        }
        Err(e) => {
            log::main_server(
                Level::Alert,
                e.raw_os_error().unwrap_or(0),
                "FastCGI: can't start the process manager: fork() failed",
            );
            None
        }
    }
}

/// Applications of a previous PM (it led their process group):
/// TERM, 2 s grace, KILL — before privileges are dropped, so applications
/// a setuid wrapper started as other users are reached too. As root, so
/// never by `killpg` of a number that may have been reused (security
/// review, finding 10): each member is checked ([`previous_group_members`])
/// and signalled through a pidfd, which cannot reach a later process
/// with the same pid.
fn reap_previous_group(pgid: i32, pm_start: u64, logger: &dyn PmLog) {
    match signal_previous_group(pgid, pm_start, Signal::SIGTERM) {
        Ok(0) => return,
        Ok(_) => {}
        Err(why) => {
            logger.log(
                pm::LogLevel::Warn,
                0,
                &format!("FastCGI: not signalling process group {pgid} of the previous process manager: {why}"),
            );
            return;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if !matches!(previous_group(pgid, pm_start), Ok(m) if !m.is_empty()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    logger.log(
        pm::LogLevel::Warn,
        0,
        &format!("FastCGI: applications of the previous process manager (pid {pgid}) ignored SIGTERM, sending SIGKILL"),
    );
    let _ = signal_previous_group(pgid, pm_start, Signal::SIGKILL);
}

/// Which processes of `procs` belong to the group the previous PM led:
/// members of process group `pgid` that are alive and started no earlier
/// than the PM (`pm_start`). If a live process `pgid` exists that is not
/// the PM (another start time), the number was reused and the group is not
/// ours. `Err` says why nothing may be signalled.
fn previous_group_members(pgid: i32, pm_start: u64, procs: &[(i32, ProcIdent)]) -> Result<Vec<i32>, String> {
    if pgid <= 1 {
        return Err("no such group".into());
    }
    if pm_start == 0 {
        return Err("its start time is unknown".into());
    }
    if let Some((_, leader)) = procs.iter().find(|(pid, _)| *pid == pgid) {
        if leader.start != pm_start {
            return Err(format!("pid {pgid} now belongs to another process"));
        }
    }
    Ok(procs
        .iter()
        .filter(|(_, p)| p.pgrp == pgid && p.start >= pm_start && !p.zombie)
        .map(|(pid, _)| *pid)
        .collect())
}

fn previous_group(pgid: i32, pm_start: u64) -> Result<Vec<i32>, String> {
    let procs: Vec<(i32, ProcIdent)> = std::fs::read_dir("/proc")
        .map_err(|e| format!("can't read /proc: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, pidfd::ident(pid)?)))
        .collect();
    previous_group_members(pgid, pm_start, &procs)
}

/// Sends `sig` to every member of the previous PM's group; the number
/// signalled.
fn signal_previous_group(pgid: i32, pm_start: u64, sig: Signal) -> Result<usize, String> {
    let mut n = 0;
    for pid in previous_group(pgid, pm_start)? {
        let Ok(fd) = pidfd::open(pid) else { continue };
        // The descriptor pins one process: check that it is still the one
        // examined (not a new process that took the pid meanwhile).
        match pidfd::ident(pid) {
            Some(p) if p.pgrp == pgid && p.start >= pm_start => {}
            _ => continue,
        }
        if pidfd::send_signal(&fd, sig).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

fn forget_pm() {
    let r = process::retained_pm();
    r.close_ctl();
    r.pm_pid.store(0, Ordering::SeqCst);
    r.version.store(0, Ordering::SeqCst);
}

/// post_config (real generations only): start the PM, or hand the new
/// configuration to the one that survived the restart.
pub fn post_config(pconf: Pool, state: &'static ModuleState, cfg: &ConfigState) {
    if process::main_state() == MainState::PreConfig {
        return;
    }
    publish_reuse(cfg);
    super::status::publish(cfg);
    let r = process::retained_pm();
    let pid = r.pm_pid.load(Ordering::SeqCst);
    let alive = r.version.load(Ordering::SeqCst) == PM_PROTO && is_live_child(pid);
    let pm_cfg = PmConfig {
        generation: 0,
        classes: classes_of(cfg),
        hard_restart: process::restart_was_hard(),
        // The previous generation's workers from httpd's scoreboard, not
        // every child of httpd: piped loggers and mod_cgid's daemon never
        // exit, and a retired class waited for them 600 s (issue 12).
        old_children: crate::httpd::scoreboard::previous_generation_workers(),
        log_level: process::main_log_level(),
        dynamic: dynamic_of(cfg),
    };
    let running = if alive {
        match send(&CtlMsg::Configure(pm_cfg.clone())) {
            Ok(()) => Some(pid),
            Err(e) => {
                log::main_server(
                    Level::Error,
                    e.raw_os_error().unwrap_or(0),
                    &format!("FastCGI: can't reach the process manager (pid {pid}), starting a new one"),
                );
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                forget_pm();
                fork_pm(pm_cfg, pid, cfg.wrapper_path().map(|p| p.to_path_buf()))
            }
        }
    } else {
        // Started even without static applications: any fastcgi-script
        // file may become a dynamic application (legacy PM-02).
        let previous = if pid > 0 { pid } else { 0 };
        forget_pm();
        fork_pm(pm_cfg, previous, cfg.wrapper_path().map(|p| p.to_path_buf()))
    };
    if let Some(pid) = running {
        process::register_other_child(pconf, pid, crate::entry::fcgi_rs_pm_maintenance, state);
    }
    process::on_pool_cleanup(pconf, on_config_destroyed);
}

/// httpd reaped the PM (or lost it): clean up its applications and start
/// a new one with the current configuration.
pub fn pm_died(state: &'static ModuleState, status: i32) {
    let r = process::retained_pm();
    let pid = r.pm_pid.load(Ordering::SeqCst);
    // Re-forked at once, but one that keeps failing at start-up waits
    // longer each time before starting (issue 12): one line per step.
    let next = super::pm_backoff::pm_died();
    if next.log {
        let msg = if next.delay.is_zero() {
            format!("FastCGI: process manager (pid {pid}) exited (wait status {status}); starting a new one")
        } else {
            format!(
                "FastCGI: process manager (pid {pid}) exited (wait status {status}) at start-up ({} time(s) in a row); the next one starts in {} s{}",
                next.failures,
                next.delay.as_secs(),
                if next.delay == super::pm_backoff::MAX_DELAY { " (and every 60 s while it keeps failing; not logged again)" } else { "" },
            )
        };
        log::main_server(Level::Error, 0, &msg);
    }
    forget_pm();
    let Some(cfg) = state.config() else { return };
    let pm_cfg = PmConfig {
        generation: 0,
        classes: classes_of(cfg),
        hard_restart: true,
        old_children: Vec::new(),
        log_level: process::main_log_level(),
        dynamic: dynamic_of(cfg),
    };
    // (httpd's "other child" callbacks run in the parent, which owns pconf.)
    let Some(pconf) = state.pconf.in_owner() else { return };
    if let Some(new_pid) = fork_pm(pm_cfg, pid, cfg.wrapper_path().map(|p| p.to_path_buf())) {
        process::register_other_child(pconf, new_pid, crate::entry::fcgi_rs_pm_maintenance, state);
    }
}

/// The configuration pool is going away: on a restart nothing happens (the
/// next post_config reconfigures the PM); when httpd exits, the PM stops
/// every application (TERM, then KILL after a grace period), removes its
/// sockets and exits, and we wait for it.
fn on_config_destroyed() {
    if process::main_state() != MainState::Exiting {
        return;
    }
    let r = process::retained_pm();
    let pid = r.pm_pid.load(Ordering::SeqCst);
    if pid <= 0 {
        return;
    }
    let _ = send(&CtlMsg::Shutdown);
    let deadline = Instant::now() + Duration::from_secs(8);
    let p = Pid::from_raw(pid);
    loop {
        match waitpid(p, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(WaitStatus::StillAlive) => {
                let _ = killpg(p, Signal::SIGKILL);
                let _ = waitpid(p, None);
                break;
            }
            _ => break,
        }
    }
    forget_pm();
}

/// child_init: httpd children have no business with the control socket
/// (they keep the request socket). Kept connections are closed, and the
/// child's share of the reuse counts given back, when the child exits.
pub fn child_init(pchild: Pool) {
    process::retained_pm().close_ctl();
    process::on_pool_cleanup(pchild, || {
        if let Some(r) = reuse() {
            r.child_exit();
        }
    });
}

/// This child's connection pools (`None` before the parent mapped the
/// shared table, e.g. in `apache2 -t`).
pub fn reuse() -> Option<&'static Reuse> {
    static REUSE: OnceLock<Option<Reuse>> = OnceLock::new();
    REUSE
        .get_or_init(|| process::reuse_table(false).map(Reuse::new))
        .as_ref()
}

/// Publishes, for the children about to start, how many connections of
/// each static and external application may be kept (parent, every
/// configuration pass).
fn publish_reuse(cfg: &ConfigState) {
    let Some(table) = process::reuse_table(true) else {
        log::main_server(
            Level::Warn,
            0,
            "FastCGI: can't map the shared connection-reuse table: connections to applications are not reused",
        );
        return;
    };
    // (Every backend of an external server has its own slot: its reuse
    // counts, requests in flight and up/down state, issue 14.)
    let configured: Vec<_> = cfg
        .servers()
        .iter()
        .flat_map(|server| match server {
            Server::Static(st) => vec![st.connect_addr()],
            Server::External(ext) => ext.addrs.clone(),
        })
        .collect();
    table.free_unconfigured(&configured);
    for server in cfg.servers() {
        let (addrs, cap) = match server {
            Server::Static(st) => (
                vec![st.connect_addr()],
                st.opts.keep_conn.map_or(Cap::Processes(st.processes), Cap::Fixed),
            ),
            Server::External(ext) => (ext.addrs.clone(), ext.opts.keep_conn.map_or(Cap::Probe, Cap::Fixed)),
        };
        let mut full = false;
        for addr in &addrs {
            full |= table.publish(addr, cap).is_none();
        }
        if full {
            log::main_server(
                Level::Warn,
                0,
                &format!(
                    "FastCGI: more than {} applications: connections to \"{}\" are not reused",
                    crate::gateway::reuse::MAX_CLASSES,
                    server.path().display()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pgrp: i32, start: u64, zombie: bool) -> ProcIdent {
        ProcIdent {
            pgrp,
            session: pgrp,
            start,
            zombie,
        }
    }

    // Security review, finding 10: the previous PM's group is signalled as
    // root only while it is provably the PM's.
    #[test]
    fn previous_group_is_only_ours_while_the_pm_pid_is_not_reused() {
        // The PM (pid 500, started at tick 1000) is gone; its applications
        // remain in group 500.
        let procs = [
            (501, p(500, 1001, false)),
            (502, p(500, 1200, false)),
            (7, p(7, 5, false)),
        ];
        assert_eq!(previous_group_members(500, 1000, &procs), Ok(vec![501, 502]));
        // The PM is still there (or a zombie): same start time, still ours;
        // zombies are not signalled.
        let procs = [(500, p(500, 1000, true)), (501, p(500, 1001, false))];
        assert_eq!(previous_group_members(500, 1000, &procs), Ok(vec![501]));
        // Pid 500 was reused by an unrelated group leader (another start
        // time): nothing of that group is touched.
        let procs = [(500, p(500, 9000, false)), (501, p(500, 9001, false))];
        assert!(previous_group_members(500, 1000, &procs).is_err());
        // A process of that number's group started before the PM cannot be
        // one of its applications.
        let procs = [(501, p(500, 999, false))];
        assert_eq!(previous_group_members(500, 1000, &procs), Ok(vec![]));
        // Unknown start time (a PM from before this check): nothing.
        assert!(previous_group_members(500, 0, &[(501, p(500, 1001, false))]).is_err());
        assert!(previous_group_members(1, 1000, &[]).is_err());
    }

    #[test]
    fn reaps_a_real_group_and_spares_a_reused_number() {
        use std::os::unix::process::CommandExt;
        // A group led by a "PM" (sh) with an "application" (sleep).
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 100 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        let start = pidfd::ident(pgid).unwrap().start;
        // Wait for the child to appear in the group.
        let t = Instant::now();
        while previous_group(pgid, start).map_or(0, |m| m.len()) < 2 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // With a wrong start time (as if the number had been reused), nothing
        // is signalled.
        assert!(signal_previous_group(pgid, start + 1, Signal::SIGTERM).is_err());
        assert!(leader.try_wait().unwrap().is_none(), "still running");
        assert_eq!(signal_previous_group(pgid, start, Signal::SIGKILL), Ok(2));
        let _ = leader.wait();
        let t = Instant::now();
        while !previous_group(pgid, start).unwrap_or_default().is_empty() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(previous_group(pgid, start), Ok(vec![]));
    }
}
