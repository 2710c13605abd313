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
//! - with more than 3 failures the next look at a waiting slot decides between "restored"
//!   and "backed off" (PM-33); the start after a back-off clears it and sets the counter
//!   to 3.
//!
//! Deliberate differences:
//! - only *start-up failures* count (issue 12, [`policy::classify_death`]): a process
//!   that ends on its own (exit status other than 0, crash signal) within
//!   `-min-server-life`. Legacy counted every exit but `exit(0)` (PM-32), so three
//!   processes SIGKILLed under load within 30 s (the OOM killer, an operator) backed the
//!   class off for 600 s. SIGKILL/SIGTERM the PM did not send never count; each death
//!   gets one more line saying which case it was;
//! - the back-off interval is [`policy::startup_backoff`]: twice `-restart-delay`,
//!   doubling with each back-off in a row, at most 60 s (legacy: always 600 s);
//! - bug 12 (PM-34): the back-off and restore warnings are logged once per transition;
//! - "has remained running" is judged from the slot's previous process *lifetime* (start to
//!   exit) rather than from its start time to now;
//! - a slot is never restarted within [`MIN_SLOT_RESPAWN`] of its own previous start and a
//!   socket is not retried more often than [`MIN_SOCKET_RETRY`], so `-restart-delay 0` or
//!   `-init-start-delay 0` cannot turn a crashing application into a fork loop;
//! - on a new configuration unchanged classes keep running (legacy PM-12 restarted
//!   everything); changed or removed classes are *retired* (see [`Table::configure`]).
//!
//! # Dynamic applications (4.6)
//!
//! A dynamic class is created by the first request message naming it
//! ([`Table::on_request`]): its socket is bound at once, and the first process is
//! scheduled at once — deliberate difference (bug 22): the request handler connects as
//! soon as the socket exists and waits in the backlog, instead of polling for ~0.5 s.
//! Further processes are scheduled by nudges (PM-52) within `maxProcesses` (all dynamic
//! processes, running, being stopped or scheduled) and `maxClassProcesses` (the class's
//! slots), both hard limits; the kill policy ([`super::policy`], PM-55/56) removes them
//! again. Other differences from legacy:
//! - victims (kill policy or `-autoUpdate`) get SIGKILL [`KILL_GRACE`] after SIGTERM;
//! - the dynamic settings are part of the configuration: classes keep running across a
//!   graceful restart when `FastCgiConfig` is unchanged, else they are retired like
//!   static classes;
//! - the restart and scheduling delays are sub-second (legacy: whole seconds);
//! - load smoothing covers every dynamic class (legacy PM-54: only the head of its list).

use super::policy::{self, Decision, Load, PolicyInput};
use super::req::{ClassKey, ReqMsg};
use super::spec::{ClassSpec, DynamicSpec, Listen, PmConfig};
use super::LogLevel;
use crate::sys::wait::ChildExit;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Failures tolerated before the back-off decision (legacy `MAX_FAILED_STARTS`).
pub const MAX_FAILED_STARTS: u32 = 3;
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

/// What kind of class this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassKind {
    /// `FastCgiServer`: a fixed number of processes kept running.
    Static,
    /// A dynamic application (4.6): created on demand, scaled with load.
    Dynamic,
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
    /// Creates a dynamic class's socket now (PM-50); false if that failed (logged).
    fn open_socket(&mut self, class: ClassId, spec: &ClassSpec) -> bool;
    /// Sets the mtime of a class's socket file to now (PM-58), so the request handlers
    /// stop asking for a restart.
    fn touch_socket(&mut self, class: ClassId);
    /// The modification time of a file, `None` if it cannot be read.
    fn file_mtime(&mut self, path: &Path) -> Option<SystemTime>;
    /// The wall clock (compared with file modification times).
    fn wall_now(&mut self) -> SystemTime;
    /// A process of `class` was started after its slot's previous process
    /// exited without the PM asking it to (for mod_status).
    fn restarted(&mut self, _class: ClassId, _kind: ClassKind, _spec: &ClassSpec) {}
    /// A process of `class` exited without the PM asking it to (so the
    /// request it may have been serving can say so).
    fn died(&mut self, _class: ClassId, _kind: ClassKind, _spec: &ClassSpec, _pid: i32, _how: ChildExit) {}
    /// The class's Unix socket file is no longer the one the PM bound (removed, e.g. with
    /// FastCgiIpcDir): nobody can connect, so the class is restarted on a new one.
    fn socket_gone(&mut self, _class: ClassId) -> bool {
        false
    }
}

#[derive(Debug, Clone, Default)]
struct Slot {
    /// The running process.
    pid: Option<i32>,
    /// Start of the current process, or of the previous one while waiting.
    started: Option<Instant>,
    /// Wall-clock start of the current process (compared with the file's mtime, PM-58).
    started_wall: Option<SystemTime>,
    /// Lifetime of the previous process.
    last_life: Option<Duration>,
    /// The previous process exited without the PM asking it to: the next
    /// start is a restart ([`Effects::restarted`]).
    unasked_exit: bool,
    /// The PM signalled this process: its exit is expected.
    stopping: bool,
    /// To be started (again) when it has no process. Static slots always are; dynamic
    /// slots when scheduled (PM-52). A dynamic slot may be scheduled while its process is
    /// being stopped (`-autoUpdate` replacement): it restarts once that one is reaped.
    scheduled: bool,
    /// A dynamic process the PM chose to stop (kill policy or `-autoUpdate`).
    victim: Option<Victim>,
}

#[derive(Debug, Clone, Copy)]
struct Victim {
    term_at: Instant,
    kill_sent: bool,
    /// Stopped because a newer application file was found: restarted with `-restart`.
    update: bool,
}

/// What a dynamic class has beyond a static one.
#[derive(Debug, Clone)]
struct DynState {
    key: ClassKey,
    /// Connection time reported since the last smoothing step (µs, PM-54).
    conn_sum_us: u64,
    /// Smoothed connection time per update interval (µs).
    smoothed_us: f64,
    /// The class's start time (PM-58): processes of an application file modified after it
    /// are outdated.
    started_wall: SystemTime,
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
    /// Back-offs in a row (no restore in between): the next interval doubles.
    backoff_rounds: u32,
    /// The restart interval while backed off.
    backoff_delay: Duration,
    socket_retry_at: Option<Instant>,
    slots: Vec<Slot>,
    retired: Option<Retirement>,
    dynamic: Option<DynState>,
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
    /// A static class: `spec.processes` slots, all scheduled to start.
    fn new(id: ClassId, spec: ClassSpec) -> Class {
        let slot = Slot {
            scheduled: true,
            ..Slot::default()
        };
        Class::with_slots(id, ClassKind::Static, spec, slot, None)
    }

    /// A dynamic class: `spec.processes` slots (`maxClassProcesses`), none scheduled.
    fn new_dynamic(id: ClassId, spec: ClassSpec, key: ClassKey, wall: SystemTime) -> Class {
        let dynamic = DynState {
            key,
            conn_sum_us: 0,
            smoothed_us: 0.0,
            started_wall: wall,
        };
        Class::with_slots(id, ClassKind::Dynamic, spec, Slot::default(), Some(dynamic))
    }

    /// A class of `spec.processes` (at least one) copies of `slot`, nothing
    /// spawned or failed yet.
    fn with_slots(id: ClassId, kind: ClassKind, spec: ClassSpec, slot: Slot, dynamic: Option<DynState>) -> Class {
        Class {
            id,
            kind,
            slots: vec![slot; spec.processes.max(1) as usize],
            spec,
            last_spawn: None,
            failures: 0,
            backed_off: false,
            backoff_rounds: 0,
            backoff_delay: Duration::ZERO,
            socket_retry_at: None,
            retired: None,
            dynamic,
        }
    }

    /// The dynamic class key, `None` for a static class.
    pub fn key(&self) -> Option<&ClassKey> {
        self.dynamic.as_ref().map(|d| &d.key)
    }

    /// Smoothed connection time per update interval (µs); 0 for a static class.
    pub fn smoothed_load_us(&self) -> f64 {
        self.dynamic.as_ref().map_or(0.0, |d| d.smoothed_us)
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

    /// `server` or `(dynamic) server`, as the legacy log texts say.
    fn label(&self) -> &'static str {
        match self.kind {
            ClassKind::Static => "server",
            ClassKind::Dynamic => "(dynamic) server",
        }
    }

    /// Processes running that the PM has not chosen to stop (mod_status).
    pub fn running_processes(&self) -> u32 {
        self.running()
    }

    /// Processes running that the PM has not chosen to stop.
    fn running(&self) -> u32 {
        self.slots.iter().filter(|s| s.pid.is_some() && !s.stopping).count() as u32
    }

    /// Unreaped processes + slots waiting for a process: what counts against
    /// `maxProcesses`.
    fn dyn_count(&self) -> u32 {
        self.slots.iter().filter(|s| s.pid.is_some() || s.scheduled).count() as u32
    }

    /// When slot `i` (waiting) may start; `None` = now.
    fn slot_due(&self, i: usize) -> Option<Instant> {
        let slot = &self.slots[i];
        let delay = if self.backed_off {
            self.backoff_delay
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
            self.backoff_rounds = 0;
            fx.log(
                LogLevel::Warn,
                format!(
                    "FastCGI: {} \"{}\" has remained running for more than {} seconds, its restart interval has been restored to {} seconds",
                    self.label(),
                    self.name(),
                    self.spec.min_server_life,
                    self.spec.restart_delay
                ),
            );
        } else if !self.backed_off {
            self.backed_off = true;
            self.backoff_delay = policy::startup_backoff(secs(self.spec.restart_delay), self.backoff_rounds);
            self.backoff_rounds = self.backoff_rounds.saturating_add(1);
            fx.log(
                LogLevel::Warn,
                format!(
                    "FastCGI: {} \"{}\" has failed to remain running for {} seconds given {} attempts, its restart interval has been backed off to {} seconds",
                    self.label(),
                    self.name(),
                    self.spec.min_server_life,
                    MAX_FAILED_STARTS,
                    self.backoff_delay.as_secs()
                ),
            );
        }
    }

    /// Starts the slots that are due; follows dynamic victims up with SIGKILL.
    fn tick_active(&mut self, now: Instant, fx: &mut dyn Effects, dynamic: &DynamicSpec) {
        self.kill_overdue_victims(now, fx);
        for i in 0..self.slots.len() {
            if self.slots[i].pid.is_some() || !self.slots[i].scheduled {
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
                            "FastCGI: {} \"{}\" {} (pid {pid})",
                            self.label(),
                            self.name(),
                            if ran_before && self.kind == ClassKind::Static {
                                "restarted"
                            } else {
                                "started"
                            }
                        ),
                    );
                    let slot = &mut self.slots[i];
                    slot.pid = Some(pid);
                    slot.scheduled = false;
                    slot.started_wall = Some(fx.wall_now());
                    if std::mem::take(&mut slot.unasked_exit) {
                        fx.restarted(self.id, self.kind, &self.spec);
                    }
                }
                SpawnResult::Failed(err) => {
                    fx.log(
                        LogLevel::Crit,
                        format!(
                            "FastCGI: can't start {} \"{}\": spawn_fs_process() failed: {err}",
                            self.label(),
                            self.name()
                        ),
                    );
                    self.slots[i].last_life = Some(Duration::ZERO);
                    if self.kind == ClassKind::Dynamic {
                        // As an unprovoked death of this slot's process (PM-57).
                        self.slots[i].scheduled = self.reschedule_after_death(i, dynamic);
                    }
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
                if self.failures > MAX_FAILED_STARTS && self.slots[i].scheduled {
                    self.evaluate_backoff(i, now, fx);
                }
            }
        }
    }

    /// PM-57: whether slot `i`, whose process died unprovoked (or failed to start), is
    /// started again: with `-restart`, or when it was the class's last process and
    /// `-singleThreshold` is 0 (the last process is never given up).
    fn reschedule_after_death(&self, i: usize, dynamic: &DynamicSpec) -> bool {
        let others = self
            .slots
            .iter()
            .enumerate()
            .any(|(j, s)| j != i && s.pid.is_some() && !s.stopping);
        dynamic.restart || (!others && dynamic.single_threshold == 0)
    }

    /// SIGKILL for victims still alive [`KILL_GRACE`] after their SIGTERM (legacy never
    /// followed up).
    fn kill_overdue_victims(&mut self, now: Instant, fx: &mut dyn Effects) {
        let (label, name) = (self.label(), self.name());
        for s in &mut self.slots {
            let (Some(pid), Some(v)) = (s.pid, s.victim.as_mut()) else {
                continue;
            };
            if !v.kill_sent && now >= v.term_at + KILL_GRACE {
                v.kill_sent = true;
                fx.log(
                    LogLevel::Warn,
                    format!(
                        "FastCGI: {label} \"{name}\" (pid {pid}) still running {} seconds after SIGTERM, sending SIGKILL",
                        KILL_GRACE.as_secs()
                    ),
                );
                fx.signal(pid, StopSignal::Kill);
            }
        }
    }

    /// Marks slot `i`'s process as a victim and sends it SIGTERM.
    fn stop_victim(&mut self, i: usize, now: Instant, update: bool, fx: &mut dyn Effects) {
        let slot = &mut self.slots[i];
        let Some(pid) = slot.pid else { return };
        slot.stopping = true;
        slot.victim = Some(Victim {
            term_at: now,
            kill_sent: false,
            update,
        });
        fx.signal(pid, StopSignal::Term);
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
            if s.pid.is_none() && s.scheduled {
                consider(self.slot_due(i).unwrap_or(now));
            }
            if let (Some(_), Some(v)) = (s.pid, &s.victim) {
                if !v.kill_sent {
                    consider(v.term_at + KILL_GRACE);
                }
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

/// The second line about an unprovoked death: which case it was (see
/// [`policy::classify_death`]); `None` for `exit(0)`.
fn death_text(
    label: &str,
    path: &str,
    pid: i32,
    death: policy::Death,
    life: Option<Duration>,
    spec: &ClassSpec,
    failures: u32,
) -> Option<String> {
    let ran = life.map_or_else(
        || "an unknown time".to_string(),
        |l| format!("{:.1} s", l.as_secs_f64()),
    );
    let mls = spec.min_server_life;
    let text = match death {
        policy::Death::Clean => return None,
        policy::Death::Killed => format!(
            "FastCGI: {label} \"{path}\" (pid {pid}) was killed by a signal the process manager did not send, after running {ran}: not a start-up failure, not counted (a request it was serving may have failed)"
        ),
        policy::Death::LateFailure => format!(
            "FastCGI: {label} \"{path}\" (pid {pid}) failed after running {ran} (at least -min-server-life {mls} s): not a start-up failure, not counted"
        ),
        policy::Death::StartupFailure => format!(
            "FastCGI: {label} \"{path}\" (pid {pid}) failed after running {ran} (less than -min-server-life {mls} s): start-up failure {failures} in a row ({MAX_FAILED_STARTS} tolerated before restarts slow down)"
        ),
    };
    Some(text)
}

/// Text of PM-29 for one exit of a static application's process.
pub fn exit_text(path: &str, pid: i32, how: ChildExit) -> String {
    exit_text_for("server", path, pid, how)
}

/// Text of PM-29; `label` is `server` or `(dynamic) server`.
pub fn exit_text_for(label: &str, path: &str, pid: i32, how: ChildExit) -> String {
    match how {
        ChildExit::Exited(status) => {
            format!("FastCGI: {label} \"{path}\" (pid {pid}) terminated by calling exit with status '{status}'")
        }
        ChildExit::Signaled { signal, core_dumped } => format!(
            "FastCGI: {label} \"{path}\" (pid {pid}) terminated due to uncaught signal '{signal}' ({}){}",
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

/// Timers of the dynamic kill policy and load smoothing (PM-54, PM-55).
#[derive(Debug, Clone, Copy)]
struct DynTimers {
    last_update: Instant,
    last_kill: Instant,
}

/// All classes the PM manages, active and retired.
#[derive(Debug, Default)]
pub struct Table {
    classes: Vec<Class>,
    next_id: ClassId,
    shutting_down: bool,
    /// The latest `FastCgiConfig`.
    dynamic: DynamicSpec,
    timers: Option<DynTimers>,
    /// The "dynamic applications are not enabled" warning was logged.
    disabled_logged: bool,
}

fn interval(n: u32) -> Duration {
    secs(n.max(1))
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
    /// - An active static class whose spec is identical (including the application's
    ///   mtime) is kept with its socket and processes, unless `hard_restart` is set; so
    ///   are the dynamic classes when the [`DynamicSpec`] is unchanged.
    /// - Every other active class is *retired*: its socket is released at once (a Unix
    ///   socket file is unlinked so the replacement can bind a fresh one at the same
    ///   path) — except that a new class bound to the same TCP address takes the socket
    ///   over (see [`Effects::transfer_socket`]); its processes keep serving until none of
    ///   `old_children` is alive (at most [`RETIRE_MAX_WAIT`]), then get SIGTERM and,
    ///   [`KILL_GRACE`] later, SIGKILL. A retired class is dropped once it has no process.
    /// - Static classes only in the new configuration start per the schedule; dynamic
    ///   ones are created again by the next request for them.
    pub fn configure(&mut self, cfg: &PmConfig, now: Instant, fx: &mut dyn Effects) {
        if self.shutting_down {
            return;
        }
        let keep_dynamic = !cfg.hard_restart && cfg.dynamic == self.dynamic;
        let mut unmatched: Vec<Option<&ClassSpec>> = cfg.classes.iter().map(Some).collect();
        let mut retired_tcp: Vec<(ClassId, SocketAddr)> = Vec::new();
        for c in self.classes.iter_mut().filter(|c| c.retired.is_none()) {
            let keep = match c.kind {
                ClassKind::Dynamic => keep_dynamic,
                ClassKind::Static if cfg.hard_restart => false,
                ClassKind::Static if fx.socket_gone(c.id) => {
                    fx.log(
                        LogLevel::Warn,
                        format!(
                            "FastCGI: {} \"{}\" socket file is gone (FastCgiIpcDir removed?): restarting it on a new socket",
                            c.label(),
                            c.name()
                        ),
                    );
                    false
                }
                ClassKind::Static => match unmatched.iter_mut().find(|s| **s == Some(&c.spec)) {
                    Some(m) => {
                        *m = None;
                        true
                    }
                    None => false,
                },
            };
            if keep {
                fx.log(
                    LogLevel::Debug,
                    format!(
                        "FastCGI: {} \"{}\" unchanged, keeping its processes",
                        c.label(),
                        c.name()
                    ),
                );
                continue;
            }
            let running = c.pids().count();
            fx.log(
                LogLevel::Notice,
                if cfg.hard_restart {
                    format!(
                        "FastCGI: {} \"{}\" restarting ({running} process(es) to stop): httpd was restarted",
                        c.label(),
                        c.name()
                    )
                } else {
                    format!(
                        "FastCGI: {} \"{}\" changed or removed: {running} old process(es) will be stopped once the previous httpd generation has exited",
                        c.label(),
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
            for s in &mut c.slots {
                s.scheduled = false;
            }
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
        self.dynamic = cfg.dynamic.clone();
        self.timers.get_or_insert(DynTimers {
            last_update: now,
            last_kill: now,
        });
        self.drop_finished();
    }

    /// Starts what is due, advances retirements, and runs the dynamic load smoothing and
    /// kill policy when due.
    pub fn tick(&mut self, now: Instant, fx: &mut dyn Effects) {
        if self.shutting_down {
            return;
        }
        for c in &mut self.classes {
            if c.retired.is_some() {
                c.tick_retired(now, fx);
            } else {
                c.tick_active(now, fx, &self.dynamic);
            }
        }
        self.dynamic_timers(now, fx);
        self.drop_finished();
    }

    /// When [`tick`](Table::tick) next has something to do; `None` = only on an event.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        if self.shutting_down {
            return None;
        }
        let classes = self.classes.iter().filter_map(|c| c.next_wakeup(now)).min();
        let timers = match self.timers {
            Some(t) if self.active_dynamic().next().is_some() => Some(
                (t.last_update + interval(self.dynamic.update_interval))
                    .min(t.last_kill + interval(self.dynamic.kill_interval)),
            ),
            _ => None,
        };
        later_min(classes, timers)
    }

    /// A process was reaped. Returns false for a pid the table does not know.
    pub fn on_exit(&mut self, pid: i32, how: ChildExit, now: Instant, fx: &mut dyn Effects) -> bool {
        let shutting_down = self.shutting_down;
        let Some(c) = self.classes.iter_mut().find(|c| c.pids().any(|p| p == pid)) else {
            return false;
        };
        let (label, name) = (c.label(), c.name());
        let retired = c.retired.is_some();
        let Some(i) = c.slots.iter().position(|s| s.pid == Some(pid)) else {
            return false;
        };
        let slot = &mut c.slots[i];
        slot.pid = None;
        slot.started_wall = None;
        slot.last_life = slot.started.map(|t| now.saturating_duration_since(t));
        let victim = slot.victim.take();
        let expected = std::mem::take(&mut slot.stopping) || shutting_down;
        slot.unasked_exit = !expected && !retired;
        fx.log(
            if expected { LogLevel::Info } else { LogLevel::Warn },
            exit_text_for(label, &name, pid, how),
        );
        if !expected {
            fx.died(c.id, c.kind, &c.spec, pid, how);
        }
        if !retired && !shutting_down {
            if victim.is_none() && !expected {
                let life = c.slots[i].last_life;
                let death = policy::classify_death(how, life, secs(c.spec.min_server_life));
                if death.counts() {
                    c.failures += 1;
                } else if life.is_some_and(|l| l >= secs(c.spec.min_server_life)) {
                    // It got past start-up: the application starts (as legacy's restore
                    // would judge at the next failure).
                    c.failures = 0;
                }
                if let Some(text) = death_text(label, &name, pid, death, life, &c.spec, c.failures) {
                    fx.log(LogLevel::Warn, text);
                }
            }
            match c.kind {
                ClassKind::Static => c.slots[i].scheduled = true,
                ClassKind::Dynamic => {
                    // PM-57: a victim's slot becomes empty (unless a replacement was
                    // scheduled in it); an outdated process is restarted with -restart.
                    let again = match victim {
                        Some(v) => v.update && self.dynamic.restart,
                        None => c.reschedule_after_death(i, &self.dynamic),
                    };
                    c.slots[i].scheduled |= again;
                }
            }
        }
        self.drop_finished();
        true
    }

    /// A message from a request handler (PM-50..PM-58).
    pub fn on_request(&mut self, msg: &ReqMsg, now: Instant, fx: &mut dyn Effects) {
        if self.shutting_down {
            return;
        }
        if !self.dynamic.enabled {
            if !std::mem::replace(&mut self.disabled_logged, true) {
                fx.log(
                    LogLevel::Warn,
                    format!(
                        "FastCGI: request for (dynamic) server \"{}\" ignored: dynamic applications are not enabled (further requests are ignored silently)",
                        msg.key().path.display()
                    ),
                );
            }
            return;
        }
        let key = msg.key();
        let found = self.find_dynamic(key);
        match msg {
            ReqMsg::Done { conn_us, .. } => {
                if let Some(d) = found.and_then(|i| self.classes[i].dynamic.as_mut()) {
                    d.conn_sum_us = d.conn_sum_us.saturating_add(*conn_us);
                }
            }
            ReqMsg::Start(_) | ReqMsg::Nudge(_) | ReqMsg::Restart(_) => {
                let i = match found {
                    Some(i) => i,
                    None => {
                        // PM-50, bug 22: socket now, first process at once.
                        if let Some(i) = self.create_dynamic(key, fx) {
                            self.schedule(i, now, fx);
                        }
                        return;
                    }
                };
                match msg {
                    // PM-51: ignored while a process runs.
                    ReqMsg::Start(_) if self.classes[i].running() > 0 => {}
                    ReqMsg::Restart(_) if self.dynamic.auto_update => self.auto_update(i, now, fx),
                    ReqMsg::Restart(_) => {}
                    _ => self.schedule(i, now, fx),
                }
            }
        }
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

    /// Dynamic processes (running, being stopped, or scheduled), all classes, retired
    /// ones included: what `maxProcesses` limits.
    pub fn dynamic_total(&self) -> u32 {
        self.classes
            .iter()
            .filter(|c| c.kind == ClassKind::Dynamic)
            .map(|c| c.dyn_count())
            .sum()
    }

    /// One line per class (SIGUSR1).
    pub fn status_lines(&self) -> Vec<String> {
        self.classes
            .iter()
            .map(|c| {
                let pids: Vec<String> = c.pids().map(|p| p.to_string()).collect();
                let load = match &c.dynamic {
                    Some(d) => format!(
                        ", smoothed load {:.0} us per {} s",
                        d.smoothed_us,
                        interval(self.dynamic.update_interval).as_secs()
                    ),
                    None => String::new(),
                };
                format!(
                    "FastCGI: {} \"{}\"{}: {}/{} process(es) running [{}], {} failure(s){}{load}",
                    c.label(),
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

    fn active_dynamic(&self) -> impl Iterator<Item = &Class> {
        self.classes
            .iter()
            .filter(|c| c.kind == ClassKind::Dynamic && c.retired.is_none())
    }

    fn find_dynamic(&self, key: &ClassKey) -> Option<usize> {
        self.classes
            .iter()
            .position(|c| c.retired.is_none() && c.key() == Some(key))
    }

    /// PM-50: a new class with its socket; `None` if the socket could not be created.
    fn create_dynamic(&mut self, key: &ClassKey, fx: &mut dyn Effects) -> Option<usize> {
        let spec = self.dynamic.class_spec(key);
        let id = self.next_id;
        self.next_id += 1;
        if !fx.open_socket(id, &spec) {
            return None;
        }
        fx.log(
            LogLevel::Debug,
            format!(
                "FastCGI: (dynamic) server \"{}\" created (user {}, group {})",
                key.path.display(),
                key.user,
                key.group
            ),
        );
        let wall = fx.wall_now();
        self.classes.push(Class::new_dynamic(id, spec, key.clone(), wall));
        Some(self.classes.len() - 1)
    }

    /// PM-52: schedules one more process of class `i` if the limits and delays allow.
    fn schedule(&mut self, i: usize, now: Instant, fx: &mut dyn Effects) {
        let total = self.dynamic_total();
        let max = self.dynamic.max_processes;
        let c = &mut self.classes[i];
        if c.slots.iter().any(|s| s.scheduled) {
            return; // already scheduled
        }
        if total.saturating_add(1) > max {
            fx.log(
                LogLevel::Warn,
                format!(
                    "FastCGI: can't schedule the start of another (dynamic) server \"{}\" process: exceeded dynamicMaxProcs ({max})",
                    c.name()
                ),
            );
            return;
        }
        let Some(slot) = c.slots.iter().position(|s| s.pid.is_none()) else {
            return; // every slot runs a process
        };
        let ran_before = c.slots[slot].started.is_some();
        let delay = if ran_before {
            c.spec.restart_delay
        } else {
            c.spec.init_start_delay
        };
        if let Some(last) = c.last_spawn {
            if now < last + secs(delay) {
                fx.log(
                    LogLevel::Debug,
                    format!(
                        "FastCGI: (dynamic) server \"{}\": start request ignored, last start less than {delay} seconds ago",
                        c.name()
                    ),
                );
                return;
            }
        }
        c.slots[slot].scheduled = true;
        if c.slots.iter().all(|s| s.pid.is_some() || s.scheduled) {
            fx.log(
                LogLevel::Warn,
                format!(
                    "FastCGI: scheduled the {} of the last (dynamic) server \"{}\" process: reached dynamicMaxClassProcs ({})",
                    if ran_before { "restart" } else { "start" },
                    c.name(),
                    c.slots.len()
                ),
            );
        }
    }

    /// PM-58: a restart message with `-autoUpdate`.
    fn auto_update(&mut self, i: usize, now: Instant, fx: &mut dyn Effects) {
        let total = self.dynamic_total();
        let (max, restart) = (self.dynamic.max_processes, self.dynamic.restart);
        let c = &mut self.classes[i];
        // Whatever happens, the request handlers compare the file with the socket.
        fx.touch_socket(c.id);
        let Some(mtime) = fx.file_mtime(&c.spec.path) else {
            return;
        };
        let Some(d) = c.dynamic.as_mut() else { return };
        if mtime <= d.started_wall {
            return;
        }
        d.started_wall = fx.wall_now();
        fx.log(
            LogLevel::Warn,
            format!(
                "FastCGI: restarting old server \"{}\" processes, newer version found",
                c.name()
            ),
        );
        let outdated: Vec<usize> = (0..c.slots.len())
            .filter(|&j| {
                let s = &c.slots[j];
                s.pid.is_some() && !s.stopping && s.started_wall.map_or(true, |t| t < mtime)
            })
            .collect();
        for &j in &outdated {
            c.stop_victim(j, now, true, fx);
        }
        if (restart && !outdated.is_empty()) || c.slots.iter().any(|s| s.scheduled) {
            return; // -restart replaces the victims / a start is pending anyway
        }
        // One new process: in an empty slot if the limit allows, else in place of an
        // outdated one once it is gone.
        let empty = c.slots.iter().position(|s| s.pid.is_none());
        let slot = match empty {
            Some(j) if total < max => Some(j),
            _ => outdated.first().copied(),
        };
        if let Some(j) = slot {
            c.slots[j].scheduled = true;
        }
    }

    /// PM-54/55: load smoothing every update interval; the kill pass every kill interval,
    /// or at every wake-up while `total + processSlack >= maxProcesses`.
    fn dynamic_timers(&mut self, now: Instant, fx: &mut dyn Effects) {
        let Some(mut t) = self.timers else { return };
        let d = &self.dynamic;
        let pressure = self.dynamic_total().saturating_add(d.process_slack) >= d.max_processes;
        if now >= t.last_kill + interval(d.kill_interval) || pressure {
            self.kill_pass(now, t.last_update, fx);
            t.last_kill = now;
        }
        if now >= t.last_update + interval(self.dynamic.update_interval) {
            let gain = self.dynamic.gain_value;
            for c in &mut self.classes {
                if let (None, Some(d)) = (&c.retired, c.dynamic.as_mut()) {
                    d.smoothed_us = policy::smooth(d.smoothed_us, d.conn_sum_us, gain);
                    d.conn_sum_us = 0;
                }
            }
            t.last_update = now;
        }
        self.timers = Some(t);
    }

    /// PM-56: one kill pass over the active dynamic classes.
    fn kill_pass(&mut self, now: Instant, last_update: Instant, fx: &mut dyn Effects) {
        let d = &self.dynamic;
        let update_window = interval(d.update_interval);
        let (single, multi, min) = (d.single_threshold, d.multi_threshold, d.min_processes);
        let mut total_running: u32 = self.active_dynamic().map(|c| c.running()).sum();
        for c in &mut self.classes {
            let Some(dy) = c.dynamic.as_ref() else { continue };
            if c.retired.is_some() {
                continue;
            }
            let running = c.running();
            let scheduled = c.slots.iter().filter(|s| s.pid.is_none() && s.scheduled).count() as u32;
            let stopping = c.slots.iter().filter(|s| s.pid.is_some() && s.stopping).count() as u32;
            // The newest running process (ties: the highest slot).
            let newest = c
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.pid.is_some() && !s.stopping)
                .max_by_key(|(j, s)| (s.started, *j))
                .map(|(j, s)| (j, s.started));
            let input = PolicyInput {
                running,
                scheduled,
                stopping,
                load: Load {
                    smoothed_us: dy.smoothed_us,
                    update_window,
                    current_us: dy.conn_sum_us,
                    current_window: now.saturating_duration_since(last_update),
                },
                newest_age: newest
                    .and_then(|(_, t)| t)
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
                single_threshold: single,
                multi_threshold: multi,
                total_running,
                min_processes: min,
            };
            match policy::decide(&input) {
                Decision::Keep => {}
                Decision::CancelScheduledStart => {
                    if let Some(s) = c.slots.iter_mut().rev().find(|s| s.pid.is_none() && s.scheduled) {
                        s.scheduled = false;
                        fx.log(
                            LogLevel::Debug,
                            format!(
                                "FastCGI: (dynamic) server \"{}\": scheduled start cancelled, load too low",
                                c.name()
                            ),
                        );
                    }
                }
                Decision::KillNewest => {
                    let Some((j, _)) = newest else { continue };
                    if let Some(pid) = c.slots[j].pid {
                        fx.log(
                            LogLevel::Warn,
                            format!(
                                "FastCGI: (dynamic) server \"{}\" (pid {pid}) termination signaled",
                                c.name()
                            ),
                        );
                    }
                    c.stop_victim(j, now, false, fx);
                    total_running -= 1;
                }
            }
        }
    }
}

fn later_min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
