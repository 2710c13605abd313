//! The class table: every scheduling, back-off and reconcile decision of the process
//! manager as a state machine without I/O (PM-30..PM-33, SG-6).
//!
//! Time is an input (`now`, monotonic, sub-second), and everything a decision causes —
//! spawning, signalling, logging, socket hand-over — goes through [`Effects`], so the whole
//! policy is unit-tested with a fake clock and fake effects (see the tests below).
//!
//! Legacy semantics kept (section 4.5):
//! - a never-run slot starts when `now >= class_last_spawn + init_start_delay` (the first
//!   one immediately), a slot whose process exited when `now >= class_last_spawn +
//!   restart_delay` — counted from the class's last spawn, not from the death (PM-31);
//! - every exit that is not "exit status 0" counts as a failure (PM-32); with more than 3
//!   failures the next look at a waiting slot decides between "restored" and "backed off to
//!   600 s" (PM-33); the start after a back-off clears it and sets the counter to 3.
//!
//! Deliberate differences:
//! - bug 12 (PM-34): the back-off and restore warnings are logged once per transition;
//! - "has remained running" is judged from the slot's previous process *lifetime* (start to
//!   exit) rather than from its start time to now;
//! - a slot is never restarted within [`MIN_SLOT_RESPAWN`] of its own previous start and a
//!   socket is not retried more often than [`MIN_SOCKET_RETRY`], so `-restart-delay 0` or
//!   `-init-start-delay 0` cannot turn a crashing application into a fork loop;
//! - on a new configuration unchanged classes keep running (legacy PM-12 restarted
//!   everything); changed or removed classes are *retired* (see [`Table::configure`]).

use super::spec::{ClassSpec, Listen, PmConfig};
use super::LogLevel;
use crate::sys::wait::ChildExit;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Failures tolerated before the back-off decision (legacy `MAX_FAILED_STARTS`).
pub const MAX_FAILED_STARTS: u32 = 3;
/// Restart interval of a backed-off class (legacy `FAILED_STARTS_DELAY`).
pub const FAILED_STARTS_DELAY: Duration = Duration::from_secs(600);
/// Shortest time between two starts of the same slot.
pub const MIN_SLOT_RESPAWN: Duration = Duration::from_secs(1);
/// Shortest time between two attempts to create a class's socket.
pub const MIN_SOCKET_RETRY: Duration = Duration::from_secs(1);
/// Longest a retired class waits for the previous httpd generation before SIGTERM.
pub const RETIRE_MAX_WAIT: Duration = Duration::from_secs(600);
/// SIGTERM → SIGKILL grace (retirement and shutdown).
pub const KILL_GRACE: Duration = Duration::from_secs(3);
/// How often a retired class re-checks whether the old httpd children are gone (they are
/// not our children, so no SIGCHLD tells us).
pub const OLD_CHILDREN_POLL: Duration = Duration::from_secs(1);

/// Identifies a class for the lifetime of the PM (never reused).
pub type ClassId = u64;

/// What kind of class this is. Only static classes exist so far; dynamic classes (4.6)
/// will be added as another kind with their own spawn/kill policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassKind {
    /// `FastCgiServer`: a fixed number of processes kept running.
    Static,
}

/// Result of [`Effects::spawn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnResult {
    Started(i32),
    /// The class's listening socket could not be created (already logged): retry later.
    SocketFailed,
    /// The process could not be started (chdir, nice, exec, fork…): counted as an exit.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Kill,
}

/// Everything the table asks of the outside world.
pub trait Effects {
    /// Starts one process of `class` (creating its socket first if needed).
    fn spawn(&mut self, class: ClassId, spec: &ClassSpec) -> SpawnResult;
    fn signal(&mut self, pid: i32, sig: StopSignal);
    fn log(&mut self, level: LogLevel, msg: String);
    /// The class no longer needs its socket: close it and unlink a Unix socket file.
    fn release_socket(&mut self, class: ClassId);
    /// Hands a retired class's TCP socket to the new class bound to the same address.
    fn transfer_socket(&mut self, from: ClassId, to: ClassId);
    /// Whether a process of the previous httpd generation is still alive.
    fn is_alive(&mut self, pid: i32) -> bool;
}

#[derive(Debug, Clone, Default)]
struct Slot {
    /// The running process.
    pid: Option<i32>,
    /// Start of the current process, or of the previous one while waiting.
    started: Option<Instant>,
    /// Lifetime of the previous process.
    last_life: Option<Duration>,
    /// The PM signalled this process: its exit is expected.
    stopping: bool,
}

#[derive(Debug, Clone)]
struct Retirement {
    since: Instant,
    /// Previous-generation httpd children still (possibly) using the class.
    waiting_for: Vec<i32>,
    next_check: Instant,
    term_sent: Option<Instant>,
    kill_sent: bool,
}

/// One application class and its process slots.
#[derive(Debug, Clone)]
pub struct Class {
    id: ClassId,
    kind: ClassKind,
    spec: ClassSpec,
    last_spawn: Option<Instant>,
    failures: u32,
    backed_off: bool,
    socket_retry_at: Option<Instant>,
    slots: Vec<Slot>,
    retired: Option<Retirement>,
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(n.into())
}

fn later(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Class {
    fn new(id: ClassId, spec: ClassSpec) -> Class {
        Class {
            id,
            kind: ClassKind::Static,
            slots: vec![Slot::default(); spec.processes.max(1) as usize],
            spec,
            last_spawn: None,
            failures: 0,
            backed_off: false,
            socket_retry_at: None,
            retired: None,
        }
    }

    pub fn id(&self) -> ClassId {
        self.id
    }

    pub fn kind(&self) -> ClassKind {
        self.kind
    }

    pub fn spec(&self) -> &ClassSpec {
        &self.spec
    }

    pub fn is_retired(&self) -> bool {
        self.retired.is_some()
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn is_backed_off(&self) -> bool {
        self.backed_off
    }

    pub fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.slots.iter().filter_map(|s| s.pid)
    }

    fn name(&self) -> String {
        self.spec.path.display().to_string()
    }

    /// When slot `i` (waiting) may start; `None` = now.
    fn slot_due(&self, i: usize) -> Option<Instant> {
        let slot = &self.slots[i];
        let delay = if self.backed_off {
            FAILED_STARTS_DELAY
        } else if slot.started.is_some() {
            secs(self.spec.restart_delay)
        } else {
            secs(self.spec.init_start_delay)
        };
        let mut due = self.last_spawn.map(|t| t + delay);
        due = later(due, slot.started.map(|t| t + MIN_SLOT_RESPAWN));
        later(due, self.socket_retry_at)
    }

    /// PM-33: decide whether a class with too many failures is healthy after all.
    fn evaluate_backoff(&mut self, i: usize, now: Instant, fx: &mut dyn Effects) {
        let mls = secs(self.spec.min_server_life);
        let slot_lived = self.slots[i].last_life.is_some_and(|l| l > mls);
        let other_up = self
            .slots
            .iter()
            .any(|s| s.pid.is_some() && s.started.is_some_and(|t| now.saturating_duration_since(t) > mls));
        if slot_lived || other_up {
            self.failures = 0;
            self.backed_off = false;
            fx.log(
                LogLevel::Warn,
                format!(
                    "FastCGI: server \"{}\" has remained running for more than {} seconds, its restart interval has been restored to {} seconds",
                    self.name(),
                    self.spec.min_server_life,
                    self.spec.restart_delay
                ),
            );
        } else if !self.backed_off {
            self.backed_off = true;
            fx.log(
                LogLevel::Warn,
                format!(
                    "FastCGI: server \"{}\" has failed to remain running for {} seconds given {} attempts, its restart interval has been backed off to {} seconds",
                    self.name(),
                    self.spec.min_server_life,
                    MAX_FAILED_STARTS,
                    FAILED_STARTS_DELAY.as_secs()
                ),
            );
        }
    }

    fn tick_active(&mut self, now: Instant, fx: &mut dyn Effects) {
        for i in 0..self.slots.len() {
            if self.slots[i].pid.is_some() {
                continue;
            }
            if self.failures > MAX_FAILED_STARTS {
                self.evaluate_backoff(i, now, fx);
            }
            if self.slot_due(i).is_some_and(|due| now < due) {
                continue;
            }
            let ran_before = self.slots[i].started.is_some();
            let mut failed = false;
            match fx.spawn(self.id, &self.spec) {
                SpawnResult::SocketFailed => {
                    self.socket_retry_at = Some(now + secs(self.spec.init_start_delay).max(MIN_SOCKET_RETRY));
                    return;
                }
                SpawnResult::Started(pid) => {
                    fx.log(
                        LogLevel::Warn,
                        format!(
                            "FastCGI: server \"{}\" {} (pid {pid})",
                            self.name(),
                            if ran_before { "restarted" } else { "started" }
                        ),
                    );
                    self.slots[i].pid = Some(pid);
                }
                SpawnResult::Failed(err) => {
                    fx.log(
                        LogLevel::Crit,
                        format!(
                            "FastCGI: can't start server \"{}\": spawn_fs_process() failed: {err}",
                            self.name()
                        ),
                    );
                    self.slots[i].last_life = Some(Duration::ZERO);
                    failed = true;
                }
            }
            self.slots[i].started = Some(now);
            self.last_spawn = Some(now);
            self.socket_retry_at = None;
            if self.backed_off {
                // Legacy: the start after a back-off clears it and sets the counter to 3,
                // so one more failure re-enters the decision.
                self.backed_off = false;
                self.failures = MAX_FAILED_STARTS;
            }
            if failed {
                // A start that fails is treated as an exit that is not status 0 — and
                // judged at once, as a reaped exit would be.
                self.failures += 1;
                if self.failures > MAX_FAILED_STARTS {
                    self.evaluate_backoff(i, now, fx);
                }
            }
        }
    }

    fn tick_retired(&mut self, now: Instant, fx: &mut dyn Effects) {
        let name = self.name();
        let running: Vec<i32> = self.pids().collect();
        let Some(r) = self.retired.as_mut() else { return };
        match r.term_sent {
            None => {
                if now >= r.next_check {
                    r.waiting_for.retain(|&p| fx.is_alive(p));
                    r.next_check = now + OLD_CHILDREN_POLL;
                }
                let timed_out = now >= r.since + RETIRE_MAX_WAIT;
                if r.waiting_for.is_empty() || timed_out {
                    if !running.is_empty() {
                        fx.log(
                            LogLevel::Info,
                            format!(
                                "FastCGI: stopping {} process(es) of retired server \"{name}\"{}",
                                running.len(),
                                if timed_out && !r.waiting_for.is_empty() {
                                    " (old httpd children still running after 600 seconds)"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                    for &pid in &running {
                        fx.signal(pid, StopSignal::Term);
                    }
                    r.term_sent = Some(now);
                    for s in &mut self.slots {
                        s.stopping |= s.pid.is_some();
                    }
                }
            }
            Some(t) if !r.kill_sent && now >= t + KILL_GRACE => {
                if !running.is_empty() {
                    fx.log(
                        LogLevel::Warn,
                        format!(
                            "FastCGI: {} process(es) of retired server \"{name}\" still running {} seconds after SIGTERM, sending SIGKILL",
                            running.len(),
                            KILL_GRACE.as_secs()
                        ),
                    );
                }
                for &pid in &running {
                    fx.signal(pid, StopSignal::Kill);
                }
                r.kill_sent = true;
            }
            Some(_) => {}
        }
    }

    /// When this class next needs attention; `None` = not before some event.
    fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        if let Some(r) = &self.retired {
            return match r.term_sent {
                None if r.waiting_for.is_empty() => Some(now),
                None => Some(r.next_check.min(r.since + RETIRE_MAX_WAIT)),
                Some(t) if !r.kill_sent => Some(t + KILL_GRACE),
                Some(_) => None,
            };
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for (i, s) in self.slots.iter().enumerate() {
            if s.pid.is_none() {
                consider(self.slot_due(i).unwrap_or(now));
            }
        }
        if self.backed_off {
            // A running process crossing min-server-life restores the class (PM-33).
            let mls = secs(self.spec.min_server_life);
            for s in &self.slots {
                if let (Some(_), Some(t)) = (s.pid, s.started) {
                    let at = t + mls + Duration::from_millis(1);
                    if at > now {
                        consider(at);
                    }
                }
            }
        }
        next
    }
}

/// Text of PM-29 for one exit.
pub fn exit_text(path: &str, pid: i32, how: ChildExit) -> String {
    match how {
        ChildExit::Exited(status) => {
            format!("FastCGI: server \"{path}\" (pid {pid}) terminated by calling exit with status '{status}'")
        }
        ChildExit::Signaled { signal, core_dumped } => format!(
            "FastCGI: server \"{path}\" (pid {pid}) terminated due to uncaught signal '{signal}' ({}){}",
            signal_description(signal),
            if core_dumped {
                ", a core file may have been generated"
            } else {
                ""
            }
        ),
    }
}

/// glibc's `strsignal()` texts (what the legacy module printed), without its locale and
/// thread-safety problems.
pub fn signal_description(sig: i32) -> String {
    let s = match sig {
        1 => "Hangup",
        2 => "Interrupt",
        3 => "Quit",
        4 => "Illegal instruction",
        5 => "Trace/breakpoint trap",
        6 => "Aborted",
        7 => "Bus error",
        8 => "Floating point exception",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        13 => "Broken pipe",
        14 => "Alarm clock",
        15 => "Terminated",
        16 => "Stack fault",
        17 => "Child exited",
        18 => "Continued",
        19 => "Stopped (signal)",
        20 => "Stopped",
        21 => "Stopped (tty input)",
        22 => "Stopped (tty output)",
        23 => "Urgent I/O condition",
        24 => "CPU time limit exceeded",
        25 => "File size limit exceeded",
        26 => "Virtual timer expired",
        27 => "Profiling timer expired",
        28 => "Window changed",
        29 => "I/O possible",
        30 => "Power failure",
        31 => "Bad system call",
        n @ 34..=64 => return format!("Real-time signal {}", n - 34),
        n => return format!("Unknown signal {n}"),
    };
    s.to_owned()
}

/// All classes the PM manages, active and retired.
#[derive(Debug, Default)]
pub struct Table {
    classes: Vec<Class>,
    next_id: ClassId,
    shutting_down: bool,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    pub fn classes(&self) -> &[Class] {
        &self.classes
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Every process the PM started that has not been reaped yet.
    pub fn running_pids(&self) -> Vec<i32> {
        self.classes.iter().flat_map(|c| c.pids()).collect()
    }

    /// Reconciles with a new configuration (graceful or hard restart of httpd).
    ///
    /// - An active class whose spec is identical (including the application's mtime) is
    ///   kept with its socket and processes, unless `hard_restart` is set.
    /// - Every other active class is *retired*: its socket is released at once (a Unix
    ///   socket file is unlinked so the replacement can bind a fresh one at the same
    ///   path) — except that a new class bound to the same TCP address takes the socket
    ///   over (see [`Effects::transfer_socket`]); its processes keep serving until none of
    ///   `old_children` is alive (at most [`RETIRE_MAX_WAIT`]), then get SIGTERM and,
    ///   [`KILL_GRACE`] later, SIGKILL. A retired class is dropped once it has no process.
    /// - Classes only in the new configuration start per the schedule.
    pub fn configure(&mut self, cfg: &PmConfig, now: Instant, fx: &mut dyn Effects) {
        if self.shutting_down {
            return;
        }
        let mut unmatched: Vec<Option<&ClassSpec>> = cfg.classes.iter().map(Some).collect();
        let mut retired_tcp: Vec<(ClassId, SocketAddr)> = Vec::new();
        for c in self.classes.iter_mut().filter(|c| c.retired.is_none()) {
            if !cfg.hard_restart {
                if let Some(m) = unmatched.iter_mut().find(|s| **s == Some(&c.spec)) {
                    *m = None;
                    fx.log(
                        LogLevel::Debug,
                        format!("FastCGI: server \"{}\" unchanged, keeping its processes", c.name()),
                    );
                    continue;
                }
            }
            let running = c.pids().count();
            fx.log(
                LogLevel::Notice,
                if cfg.hard_restart {
                    format!("FastCGI: server \"{}\" restarting ({running} process(es) to stop): httpd was restarted", c.name())
                } else {
                    format!(
                        "FastCGI: server \"{}\" changed or removed: {running} old process(es) will be stopped once the previous httpd generation has exited",
                        c.name()
                    )
                },
            );
            c.retired = Some(Retirement {
                since: now,
                waiting_for: cfg.old_children.clone(),
                next_check: now,
                term_sent: None,
                kill_sent: false,
            });
            match c.spec.listen {
                Listen::Tcp(addr) => retired_tcp.push((c.id, addr)),
                Listen::Unix(_) => fx.release_socket(c.id),
            }
        }
        for spec in unmatched.into_iter().flatten() {
            let id = self.next_id;
            self.next_id += 1;
            self.classes.push(Class::new(id, spec.clone()));
            if let Listen::Tcp(addr) = spec.listen {
                if let Some(pos) = retired_tcp.iter().position(|(_, a)| *a == addr) {
                    let (old, _) = retired_tcp.remove(pos);
                    fx.transfer_socket(old, id);
                }
            }
        }
        for (old, _) in retired_tcp {
            fx.release_socket(old);
        }
        self.drop_finished();
    }

    /// Starts what is due and advances retirements.
    pub fn tick(&mut self, now: Instant, fx: &mut dyn Effects) {
        if self.shutting_down {
            return;
        }
        for c in &mut self.classes {
            if c.retired.is_some() {
                c.tick_retired(now, fx);
            } else {
                c.tick_active(now, fx);
            }
        }
        self.drop_finished();
    }

    /// When [`tick`](Table::tick) next has something to do; `None` = only on an event.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        if self.shutting_down {
            return None;
        }
        self.classes.iter().filter_map(|c| c.next_wakeup(now)).min()
    }

    /// A process was reaped. Returns false for a pid the table does not know.
    pub fn on_exit(&mut self, pid: i32, how: ChildExit, now: Instant, fx: &mut dyn Effects) -> bool {
        let shutting_down = self.shutting_down;
        let Some(c) = self.classes.iter_mut().find(|c| c.pids().any(|p| p == pid)) else {
            return false;
        };
        let name = c.name();
        let retired = c.retired.is_some();
        let Some(slot) = c.slots.iter_mut().find(|s| s.pid == Some(pid)) else {
            return false;
        };
        slot.pid = None;
        slot.last_life = slot.started.map(|t| now.saturating_duration_since(t));
        let expected = std::mem::take(&mut slot.stopping) || shutting_down;
        fx.log(
            if expected { LogLevel::Info } else { LogLevel::Warn },
            exit_text(&name, pid, how),
        );
        if !retired && !shutting_down && how != ChildExit::Exited(0) {
            c.failures += 1;
        }
        self.drop_finished();
        true
    }

    /// Shutdown step 1: no more starts; SIGTERM every process.
    pub fn begin_shutdown(&mut self, fx: &mut dyn Effects) {
        self.shutting_down = true;
        for c in &mut self.classes {
            for s in &mut c.slots {
                if let Some(pid) = s.pid {
                    s.stopping = true;
                    fx.signal(pid, StopSignal::Term);
                }
            }
        }
    }

    /// Shutdown step 2 (after the grace period): SIGKILL whatever is left.
    pub fn kill_remaining(&mut self, fx: &mut dyn Effects) {
        for pid in self.running_pids() {
            fx.signal(pid, StopSignal::Kill);
        }
    }

    /// Ids of all classes (their sockets are released at shutdown).
    pub fn class_ids(&self) -> Vec<ClassId> {
        self.classes.iter().map(|c| c.id).collect()
    }

    /// One line per class (SIGUSR1).
    pub fn status_lines(&self) -> Vec<String> {
        self.classes
            .iter()
            .map(|c| {
                let pids: Vec<String> = c.pids().map(|p| p.to_string()).collect();
                format!(
                    "FastCGI: server \"{}\"{}: {}/{} process(es) running [{}], {} failure(s){}",
                    c.name(),
                    if c.retired.is_some() { " (retired)" } else { "" },
                    pids.len(),
                    c.slots.len(),
                    pids.join(" "),
                    c.failures,
                    if c.backed_off { ", backed off" } else { "" }
                )
            })
            .collect()
    }

    fn drop_finished(&mut self) {
        self.classes
            .retain(|c| c.retired.is_none() || c.pids().next().is_some());
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
