//! Table-driven tests of the schedule, back-off and reconcile decisions with a fake clock.

use super::*;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Spawn(ClassId),
    Signal(i32, StopSignal),
    Log(LogLevel, String),
    Release(ClassId),
    Transfer(ClassId, ClassId),
    Open(ClassId),
    Touch(ClassId),
}

/// Wall-clock time of the fake clock's start.
fn wall0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

struct Fake {
    events: Vec<Ev>,
    next_pid: i32,
    outcomes: VecDeque<SpawnResult>,
    alive: HashSet<i32>,
    spawned: Vec<(ClassId, i32)>,
    /// Specs given to `spawn`, by class.
    specs: HashMap<ClassId, ClassSpec>,
    /// `open_socket` fails while true.
    socket_fails: bool,
    mtimes: HashMap<PathBuf, SystemTime>,
    wall: SystemTime,
    /// Classes given to `restarted`, in order.
    restarts: Vec<ClassId>,
    /// Classes whose socket file is gone (`socket_gone`).
    gone: HashSet<ClassId>,
    /// Given to `died`, in order.
    deaths: Vec<(ClassId, i32, ChildExit)>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            events: vec![],
            next_pid: 0,
            outcomes: VecDeque::new(),
            alive: HashSet::new(),
            spawned: vec![],
            specs: HashMap::new(),
            socket_fails: false,
            mtimes: HashMap::new(),
            wall: wall0(),
            restarts: vec![],
            gone: HashSet::new(),
            deaths: vec![],
        }
    }
}

impl Effects for Fake {
    fn spawn(&mut self, class: ClassId, spec: &ClassSpec) -> SpawnResult {
        self.events.push(Ev::Spawn(class));
        self.specs.insert(class, spec.clone());
        let r = self.outcomes.pop_front().unwrap_or_else(|| {
            self.next_pid += 1;
            SpawnResult::Started(1000 + self.next_pid)
        });
        if let SpawnResult::Started(pid) = r {
            self.spawned.push((class, pid));
        }
        r
    }
    fn signal(&mut self, pid: i32, sig: StopSignal) {
        self.events.push(Ev::Signal(pid, sig));
    }
    fn log(&mut self, level: LogLevel, msg: String) {
        self.events.push(Ev::Log(level, msg));
    }
    fn release_socket(&mut self, class: ClassId) {
        self.events.push(Ev::Release(class));
    }
    fn transfer_socket(&mut self, from: ClassId, to: ClassId) {
        self.events.push(Ev::Transfer(from, to));
    }
    fn is_alive(&mut self, pid: i32) -> bool {
        self.alive.contains(&pid)
    }
    fn open_socket(&mut self, class: ClassId, spec: &ClassSpec) -> bool {
        self.events.push(Ev::Open(class));
        self.specs.insert(class, spec.clone());
        !self.socket_fails
    }
    fn touch_socket(&mut self, class: ClassId) {
        self.events.push(Ev::Touch(class));
    }
    fn file_mtime(&mut self, path: &Path) -> Option<SystemTime> {
        self.mtimes.get(path).copied()
    }
    fn wall_now(&mut self) -> SystemTime {
        self.wall
    }
    fn restarted(&mut self, class: ClassId, _kind: ClassKind, _spec: &ClassSpec) {
        self.restarts.push(class);
    }
    fn socket_gone(&mut self, class: ClassId) -> bool {
        self.gone.contains(&class)
    }
    fn died(&mut self, class: ClassId, _kind: ClassKind, _spec: &ClassSpec, pid: i32, how: ChildExit) {
        self.deaths.push((class, pid, how));
    }
}

fn spec(path: &str, processes: u32, restart_delay: u32, init_start_delay: u32, mls: u32) -> ClassSpec {
    ClassSpec {
        path: path.into(),
        listen: Listen::Unix(format!("/ipc/{}", path.trim_start_matches('/')).into()),
        processes,
        restart_delay,
        init_start_delay,
        min_server_life: mls,
        priority: 0,
        listen_queue_depth: 100,
        initial_env: vec![],
        app_mtime: 1,
        wrapper: None,
    }
}

fn cfg(classes: Vec<ClassSpec>) -> PmConfig {
    PmConfig {
        generation: 1,
        classes,
        hard_restart: false,
        old_children: vec![],
        log_level: 7,
        dynamic: DynamicSpec::disabled(),
    }
}

/// What a process does once started: `None` = runs until signalled.
type Life = Box<dyn Fn(ClassId, usize) -> Option<(f64, ChildExit)>>;

/// Drives a [`Table`] like the event loop does, with a fake clock and scripted processes.
struct Sim {
    t0: Instant,
    now: Instant,
    table: Table,
    fx: Fake,
    /// Scheduled exits: (when, pid, how).
    exits: Vec<(Instant, i32, ChildExit)>,
    life: Life,
    /// Number of processes started so far per class (the `usize` given to `life`).
    started: std::collections::HashMap<ClassId, usize>,
    /// Timestamped events (seconds since t0).
    log: Vec<(f64, Ev)>,
    /// Processes exit this many seconds after SIGTERM (`None`: they ignore it).
    term_exit: Option<f64>,
    /// Processes exit at once after SIGKILL.
    kill_exits: bool,
}

const EXIT1: ChildExit = ChildExit::Exited(1);
const EXIT0: ChildExit = ChildExit::Exited(0);

impl Sim {
    fn new(life: Life) -> Sim {
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            table: Table::new(),
            fx: Fake::default(),
            exits: vec![],
            life,
            started: Default::default(),
            log: vec![],
            term_exit: None,
            kill_exits: false,
        }
    }

    fn set_now(&mut self, t: Instant) {
        self.now = t;
        self.fx.wall = wall0() + (t - self.t0);
    }

    fn secs(&self, t: Instant) -> f64 {
        (t - self.t0).as_secs_f64()
    }

    fn at(&self, s: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(s)
    }

    fn collect(&mut self) {
        let t = self.secs(self.now);
        for e in std::mem::take(&mut self.fx.events) {
            match e {
                Ev::Signal(pid, sig) if self.running_now(pid) => {
                    let after = match sig {
                        StopSignal::Term => self.term_exit,
                        StopSignal::Kill => self.kill_exits.then_some(0.0),
                    };
                    if let Some(after) = after {
                        let signal = if sig == StopSignal::Term { 15 } else { 9 };
                        let at = self.now + Duration::from_secs_f64(after);
                        if !self.exits.iter().any(|x| x.1 == pid && x.0 <= at) {
                            self.exits.retain(|x| x.1 != pid);
                            self.exits.push((
                                at,
                                pid,
                                ChildExit::Signaled {
                                    signal,
                                    core_dumped: false,
                                },
                            ));
                        }
                    }
                }
                _ => {}
            }
            self.log.push((t, e));
        }
        for (class, pid) in std::mem::take(&mut self.fx.spawned) {
            let n = self.started.entry(class).or_default();
            if let Some((after, how)) = (self.life)(class, *n) {
                self.exits.push((self.now + Duration::from_secs_f64(after), pid, how));
            }
            *n += 1;
        }
    }

    fn running_now(&self, pid: i32) -> bool {
        self.table.running_pids().contains(&pid)
    }

    fn configure(&mut self, c: &PmConfig) {
        self.table.configure(c, self.now, &mut self.fx);
        self.collect();
    }

    /// Exit of `pid` now (e.g. after a signal).
    fn exit_now(&mut self, pid: i32, how: ChildExit) {
        self.exits.retain(|e| e.1 != pid);
        assert!(self.table.on_exit(pid, how, self.now, &mut self.fx));
        self.collect();
    }

    /// Runs the loop until `until` seconds.
    fn run_until(&mut self, until: f64) {
        let end = self.at(until);
        loop {
            // Exits due now.
            self.exits.sort_by_key(|e| e.0);
            while let Some(&(t, pid, how)) = self.exits.first() {
                if t > self.now {
                    break;
                }
                self.exits.remove(0);
                self.table.on_exit(pid, how, self.now, &mut self.fx);
            }
            self.collect();
            self.table.tick(self.now, &mut self.fx);
            self.collect();
            let wake = self.table.next_wakeup(self.now);
            if let Some(w) = wake {
                assert!(
                    w > self.now,
                    "next_wakeup {:?} not after now {}",
                    self.secs(w),
                    self.secs(self.now)
                );
            }
            let next_exit = self.exits.iter().map(|e| e.0).min();
            let next = match (wake, next_exit) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(n) => n,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.set_now(next);
        }
        self.set_now(self.now.max(end));
    }

    fn times(&self, f: impl Fn(&Ev) -> bool) -> Vec<f64> {
        self.log
            .iter()
            .filter(|(_, e)| f(e))
            .map(|(t, _)| (t * 1000.0).round() / 1000.0)
            .collect()
    }

    fn spawn_times(&self) -> Vec<f64> {
        self.times(|e| matches!(e, Ev::Spawn(_)))
    }

    fn log_times(&self, needle: &str) -> Vec<f64> {
        self.times(|e| matches!(e, Ev::Log(_, m) if m.contains(needle)))
    }

    fn running(&self) -> Vec<i32> {
        let mut v = self.table.running_pids();
        v.sort();
        v
    }

    fn take_log(&mut self) -> Vec<Ev> {
        self.log.drain(..).map(|(_, e)| e).collect()
    }
}

fn forever() -> Life {
    Box::new(|_, _| None)
}

#[test]
fn initial_start_is_staggered_by_init_start_delay() {
    let cases: &[(u32, u32, &[f64])] = &[
        (1, 1, &[0.0]),
        (3, 1, &[0.0, 1.0, 2.0]),
        (3, 0, &[0.0, 0.0, 0.0]),
        (2, 5, &[0.0, 5.0]),
        (4, 2, &[0.0, 2.0, 4.0, 6.0]),
    ];
    for &(processes, init, want) in cases {
        let mut sim = Sim::new(forever());
        sim.configure(&cfg(vec![spec("/a", processes, 5, init, 30)]));
        sim.run_until(100.0);
        assert_eq!(sim.spawn_times(), want, "processes {processes} init {init}");
        assert_eq!(
            sim.log_times("FastCGI: server \"/a\" started (pid ").len(),
            processes as usize
        );
        assert_eq!(sim.table.next_wakeup(sim.now), None, "nothing left to do");
    }
}

#[test]
fn restart_counts_from_the_class_last_spawn() {
    // (restart_delay, lifetime of the first process, time of the restart)
    let cases: &[(u32, f64, f64)] = &[
        (5, 1.0, 5.0),   // waits for last spawn + 5
        (5, 10.0, 10.0), // PM-31: replaced at once
        (2, 0.5, 2.0),   //
        (0, 0.2, 1.0),   // MIN_SLOT_RESPAWN floor
        (0, 3.0, 3.0),   // no floor for a process that lived long
        (3, 2.999, 3.0), // sub-second precision
    ];
    for &(rd, life, want) in cases {
        let mut sim = Sim::new(Box::new(move |_, n| (n == 0).then_some((life, EXIT0))));
        sim.configure(&cfg(vec![spec("/a", 1, rd, 1, 30)]));
        sim.run_until(50.0);
        assert_eq!(sim.spawn_times(), vec![0.0, want], "rd {rd} life {life}");
        assert_eq!(sim.log_times("\"/a\" restarted (pid 1002)"), vec![want]);
        assert_eq!(
            sim.log_times("FastCGI: server \"/a\" (pid 1001) terminated by calling exit with status '0'"),
            vec![life]
        );
    }
}

#[test]
fn restart_waits_for_other_slots_spawns() {
    // Two processes; the first dies at 1.5 — the class last spawned at 1.0 (second
    // slot), so the restart comes at 1.0 + 5.
    let mut sim = Sim::new(Box::new(|_, n| (n == 0).then_some((1.5, EXIT0))));
    sim.configure(&cfg(vec![spec("/a", 2, 5, 1, 30)]));
    sim.run_until(50.0);
    assert_eq!(sim.spawn_times(), vec![0.0, 1.0, 6.0]);
}

#[test]
fn backs_off_after_the_fourth_failure_and_logs_once_per_transition() {
    let mut sim = Sim::new(Box::new(|_, _| Some((0.1, EXIT1))));
    sim.configure(&cfg(vec![spec("/bad", 1, 1, 1, 30)]));
    sim.run_until(250.0);
    // Issue 12: the interval doubles from twice -restart-delay to 60 s (legacy: 600 s).
    let spawns = [0.0, 1.0, 2.0, 3.0, 5.0, 9.0, 17.0, 33.0, 65.0, 125.0, 185.0, 245.0];
    assert_eq!(sim.spawn_times(), spawns);
    let backoff = |d: u32| {
        format!("FastCGI: server \"/bad\" has failed to remain running for 30 seconds given 3 attempts, its restart interval has been backed off to {d} seconds")
    };
    // Bug 12 fixed: once per transition, not at every wake-up.
    for (d, at) in [(2, 3.1), (4, 5.1), (8, 9.1), (16, 17.1), (32, 33.1)] {
        assert_eq!(sim.log_times(&backoff(d)), vec![at], "{d}");
    }
    assert_eq!(sim.log_times(&backoff(60)), vec![65.1, 125.1, 185.1, 245.1]);
    assert!(sim.log_times("has remained running").is_empty());
    assert_eq!(sim.table.classes()[0].failures(), 4);
    assert!(sim.table.classes()[0].is_backed_off());
    let exits = sim.log_times("terminated by calling exit with status '1'");
    let after: Vec<f64> = spawns.iter().map(|t| t + 0.1).collect();
    assert_eq!(exits, after);
    // Each death says which case it was.
    assert_eq!(
        sim.log_times("FastCGI: server \"/bad\" (pid 1001) failed after running 0.1 s (less than -min-server-life 30 s): start-up failure 1 in a row (3 tolerated before restarts slow down)"),
        vec![0.1]
    );
    assert_eq!(sim.log_times("start-up failure 4 ").len(), spawns.len() - 3);
    // Exits are warnings, back-off too.
    assert!(sim
        .log
        .iter()
        .all(|(_, e)| !matches!(e, Ev::Log(l, m) if m.contains("terminated") && *l != LogLevel::Warn)));
}

#[test]
fn signals_count_as_failures() {
    let crash = ChildExit::Signaled {
        signal: 11,
        core_dumped: true,
    };
    let mut sim = Sim::new(Box::new(move |_, _| Some((0.1, crash))));
    sim.configure(&cfg(vec![spec("/seg", 1, 1, 1, 30)]));
    sim.run_until(10.0);
    assert_eq!(sim.spawn_times(), vec![0.0, 1.0, 2.0, 3.0, 5.0, 9.0]);
    assert_eq!(sim.log_times("backed off to 2 seconds"), vec![3.1]);
    assert_eq!(
        sim.log_times(
            "FastCGI: server \"/seg\" (pid 1001) terminated due to uncaught signal '11' (Segmentation fault), a core file may have been generated"
        ),
        vec![0.1]
    );
}

#[test]
fn unasked_deaths_are_reported_and_stops_are_not() {
    // The first process dies by itself (SIGKILL from outside), its
    // replacement runs until the class is removed.
    let killed = ChildExit::Signaled {
        signal: 9,
        core_dumped: false,
    };
    let mut sim = Sim::new(Box::new(move |_, n| (n == 0).then_some((0.5, killed))));
    sim.term_exit = Some(0.1);
    sim.configure(&cfg(vec![spec("/d", 1, 1, 0, 0)]));
    sim.run_until(3.0);
    let class = sim.table.classes()[0].id();
    assert_eq!(sim.fx.deaths, vec![(class, 1001, killed)]);
    assert_eq!(sim.table.running_pids(), vec![1002]);
    // Stopped by the PM (class removed): not a death a request reports.
    sim.configure(&cfg(vec![]));
    sim.run_until(6.0);
    assert!(sim.table.running_pids().is_empty());
    assert_eq!(sim.fx.deaths.len(), 1, "{:?}", sim.fx.deaths);
}

#[test]
fn exit_status_zero_never_counts() {
    let mut sim = Sim::new(Box::new(|_, _| Some((0.1, EXIT0))));
    sim.configure(&cfg(vec![spec("/ok", 1, 0, 1, 30)]));
    sim.run_until(20.0);
    // restart-delay 0: one start per MIN_SLOT_RESPAWN, never backed off.
    assert_eq!(sim.spawn_times().len(), 21);
    assert!(sim.log_times("backed off").is_empty());
    assert_eq!(sim.table.classes()[0].failures(), 0);
}

#[test]
fn restored_when_another_process_outlives_min_server_life() {
    // Slot 0 (first start) runs forever; slot 1 keeps failing.
    let mut sim = Sim::new(Box::new(|_, n| (n > 0).then_some((0.1, EXIT1))));
    sim.configure(&cfg(vec![spec("/mix", 2, 1, 1, 10)]));
    sim.run_until(30.0);
    assert_eq!(sim.log_times("backed off to 2 seconds"), vec![4.1]);
    assert_eq!(sim.log_times("backed off to 4 seconds"), vec![6.1]);
    let restored = "FastCGI: server \"/mix\" has remained running for more than 10 seconds, its restart interval has been restored to 1 seconds";
    // Backed off twice (2 s, then 4 s: due at 10.0); the start at 10.0 fails too, and
    // by then slot 0 has crossed min-server-life: restored.
    // Legacy PM-33: while another process is healthy, every fourth failure of the
    // failing slot resets the counter again instead of backing off.
    assert_eq!(sim.log_times(restored), vec![10.1, 14.1, 18.1, 22.1, 26.1]);
    let spawns = sim.spawn_times();
    assert_eq!(&spawns[..8], &[0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 10.0, 11.0]);
    assert_eq!(sim.log_times("backed off to").len(), 2);
}

#[test]
fn restored_when_the_slots_own_process_lived_long() {
    let lives = [0.1, 0.1, 0.1, 5.0, 0.1];
    let mut sim = Sim::new(Box::new(move |_, n| {
        Some((lives.get(n).copied().unwrap_or(100.0), EXIT1))
    }));
    sim.configure(&cfg(vec![spec("/x", 1, 1, 1, 2)]));
    sim.run_until(8.15);
    assert!(sim.log_times("backed off").is_empty());
    // The process that ran 5 s (past -min-server-life 2) reset the counter when it died
    // (legacy: restored at the next failure), so the failure at 8.1 is the first again.
    assert_eq!(
        sim.log_times("(pid 1004) failed after running 5.0 s (at least -min-server-life 2 s): not a start-up failure, not counted"),
        vec![8.0]
    );
    assert_eq!(
        sim.log_times(
            "(pid 1005) failed after running 0.1 s (less than -min-server-life 2 s): start-up failure 1 in a row"
        ),
        vec![8.1]
    );
    assert_eq!(sim.spawn_times(), vec![0.0, 1.0, 2.0, 3.0, 8.0]);
    assert_eq!(sim.table.classes()[0].failures(), 1);
}

#[test]
fn spawn_failure_is_treated_as_an_exit() {
    let mut sim = Sim::new(forever());
    for _ in 0..4 {
        sim.fx
            .outcomes
            .push_back(SpawnResult::Failed("No such file or directory (os error 2)".into()));
    }
    sim.configure(&cfg(vec![spec("/missing", 1, 1, 1, 30)]));
    sim.run_until(700.0);
    assert_eq!(
        sim.log_times("FastCGI: can't start server \"/missing\": spawn_fs_process() failed: No such file or directory (os error 2)"),
        vec![0.0, 1.0, 2.0, 3.0]
    );
    assert!(sim
        .log
        .iter()
        .any(|(_, e)| matches!(e, Ev::Log(LogLevel::Crit, m) if m.contains("can't start"))));
    assert_eq!(sim.log_times("backed off to 2 seconds"), vec![3.0]);
    assert_eq!(sim.spawn_times(), vec![0.0, 1.0, 2.0, 3.0, 5.0]);
    assert_eq!(sim.log_times("\"/missing\" restarted (pid 1001)"), vec![5.0]);
}

#[test]
fn socket_failure_retries_after_init_start_delay() {
    // (init_start_delay, attempt times)
    let cases: &[(u32, &[f64])] = &[(1, &[0.0, 1.0, 2.0]), (0, &[0.0, 1.0, 2.0]), (5, &[0.0, 5.0, 10.0])];
    for &(init, want) in cases {
        let mut sim = Sim::new(forever());
        sim.fx
            .outcomes
            .extend([SpawnResult::SocketFailed, SpawnResult::SocketFailed]);
        sim.configure(&cfg(vec![spec("/s", 1, 1, init, 30)]));
        sim.run_until(60.0);
        assert_eq!(sim.spawn_times(), want, "init {init}");
        // Not a failure, and the first real start is "started".
        assert_eq!(sim.table.classes()[0].failures(), 0);
        assert_eq!(sim.log_times("\"/s\" started (pid 1001)"), vec![want[2]]);
    }
}

/// A running table with classes /a (Unix, 2 processes) and /t (TCP, 1 process).
fn running_pair() -> (Sim, ClassSpec, ClassSpec) {
    let a = spec("/a", 2, 5, 0, 30);
    let mut t = spec("/t", 1, 5, 0, 30);
    t.listen = Listen::Tcp("0.0.0.0:9000".parse().unwrap());
    let mut sim = Sim::new(forever());
    sim.configure(&cfg(vec![a.clone(), t.clone()]));
    sim.run_until(10.0);
    assert_eq!(sim.running(), vec![1001, 1002, 1003]);
    sim.take_log();
    (sim, a, t)
}

fn only<'a>(evs: &'a [Ev], f: impl Fn(&Ev) -> bool + 'a) -> Vec<&'a Ev> {
    evs.iter().filter(|e| f(e)).collect()
}

fn not_log(e: &Ev) -> bool {
    !matches!(e, Ev::Log(..))
}

#[test]
fn reconcile_identical_spec_keeps_everything() {
    let (mut sim, a, t) = running_pair();
    let mut c = cfg(vec![t.clone(), a.clone()]); // order does not matter
    c.old_children = vec![1, 2];
    sim.configure(&c);
    sim.run_until(2000.0);
    let evs = sim.take_log();
    assert!(only(&evs, not_log).is_empty(), "{evs:?}");
    assert_eq!(sim.running(), vec![1001, 1002, 1003]);
    assert_eq!(sim.table.classes().len(), 2);
}

/// Issue 12: FastCgiIpcDir removed while running. An unchanged class whose socket file
/// is gone is retired (its socket released) and started again on a new socket; the
/// other class is kept.
#[test]
fn reconcile_restarts_a_class_whose_socket_file_is_gone() {
    let (mut sim, a, t) = running_pair();
    sim.fx.gone.insert(0);
    let mut c = cfg(vec![a.clone(), t.clone()]);
    c.old_children = vec![];
    sim.configure(&c);
    sim.run_until(2000.0);
    let evs = sim.take_log();
    assert!(evs.contains(&Ev::Release(0)), "{evs:?}");
    assert!(!evs.contains(&Ev::Release(1)), "{evs:?}");
    assert!(
        evs.iter()
            .any(|e| matches!(e, Ev::Log(LogLevel::Warn, m) if m.contains("socket file is gone"))),
        "{evs:?}"
    );
    assert_eq!(evs.iter().filter(|e| matches!(e, Ev::Spawn(2))).count(), 2, "{evs:?}");
    assert!(evs.contains(&Ev::Signal(1001, StopSignal::Term)), "{evs:?}");
    assert!(!evs.iter().any(|e| matches!(e, Ev::Signal(1003, _))), "{evs:?}");
}

#[test]
fn reconcile_changes_retire_the_old_class() {
    // (description, change to /a, expected ok)
    type Change = fn(&mut ClassSpec);
    let changes: &[(&str, Change)] = &[
        ("mtime", |s| s.app_mtime += 1),
        ("processes", |s| s.processes = 3),
        ("env", |s| s.initial_env.push(("X".into(), "1".into()))),
        ("restart delay", |s| s.restart_delay = 6),
        ("priority", |s| s.priority = 1),
        ("depth", |s| s.listen_queue_depth = 5),
        ("socket", |s| s.listen = Listen::Unix("/ipc/other".into())),
    ];
    for (what, change) in changes {
        let (mut sim, a, t) = running_pair();
        let mut a2 = a.clone();
        change(&mut a2);
        let mut c = cfg(vec![a2.clone(), t.clone()]);
        c.old_children = vec![7, 8];
        sim.fx.alive.extend([7, 8]);
        sim.configure(&c);
        // The old Unix socket is released at once; the new class starts at once.
        sim.run_until(10.0);
        let evs = sim.take_log();
        assert_eq!(
            evs.iter().filter(|e| matches!(e, Ev::Release(0))).count(),
            1,
            "{what}: {evs:?}"
        );
        assert!(evs.iter().any(|e| matches!(e, Ev::Spawn(2))), "{what}");
        assert!(
            evs.iter()
                .any(|e| matches!(e, Ev::Log(LogLevel::Notice, m) if m.contains("\"/a\" changed or removed: 2 old process(es)"))),
            "{what}"
        );
        // Old processes keep running while the previous httpd generation lives.
        sim.run_until(100.0);
        assert!(
            only(&sim.take_log(), |e| matches!(e, Ev::Signal(..))).is_empty(),
            "{what}"
        );
        assert!(sim.running().starts_with(&[1001, 1002, 1003]));
        // One old child exits: still waiting. Both: SIGTERM within a second.
        sim.fx.alive.remove(&7);
        sim.run_until(110.0);
        assert!(only(&sim.take_log(), |e| matches!(e, Ev::Signal(..))).is_empty());
        sim.fx.alive.remove(&8);
        sim.run_until(111.0);
        let evs = sim.take_log();
        assert_eq!(
            only(&evs, |e| matches!(e, Ev::Signal(..))),
            vec![&Ev::Signal(1001, StopSignal::Term), &Ev::Signal(1002, StopSignal::Term)],
            "{what}"
        );
        // 1001 exits, 1002 ignores SIGTERM: SIGKILL 3 s later.
        sim.exit_now(
            1001,
            ChildExit::Signaled {
                signal: 15,
                core_dumped: false,
            },
        );
        sim.run_until(120.0);
        let evs = sim.take_log();
        assert_eq!(only(&evs, not_log), vec![&Ev::Signal(1002, StopSignal::Kill)], "{what}");
        assert!(evs.iter().any(|e| matches!(e, Ev::Log(LogLevel::Info, m) if m
            == "FastCGI: server \"/a\" (pid 1001) terminated due to uncaught signal '15' (Terminated)")));
        sim.exit_now(
            1002,
            ChildExit::Signaled {
                signal: 9,
                core_dumped: false,
            },
        );
        // The retired class is gone; nothing was restarted.
        assert_eq!(sim.table.classes().len(), 2);
        assert!(sim.table.classes().iter().all(|c| !c.is_retired()));
        sim.run_until(2000.0);
        assert!(only(&sim.take_log(), |e| matches!(e, Ev::Spawn(0))).is_empty());
        assert!(!sim.running().contains(&1002));
    }
}

#[test]
fn retired_class_stops_after_ten_minutes_at_most() {
    let (mut sim, a, t) = running_pair();
    let mut c = cfg(vec![t]);
    c.old_children = vec![7];
    sim.fx.alive.insert(7); // never exits
    let _ = a;
    sim.configure(&c);
    sim.run_until(609.9);
    assert!(only(&sim.take_log(), |e| matches!(e, Ev::Signal(..))).is_empty());
    sim.run_until(610.0);
    let evs = sim.take_log();
    assert_eq!(
        only(&evs, |e| matches!(e, Ev::Signal(..))),
        vec![&Ev::Signal(1001, StopSignal::Term), &Ev::Signal(1002, StopSignal::Term)]
    );
    assert!(evs
        .iter()
        .any(|e| matches!(e, Ev::Log(_, m) if m.contains("old httpd children still running after 600 seconds"))));
}

#[test]
fn hard_restart_restarts_every_class() {
    let (mut sim, a, t) = running_pair();
    let mut c = cfg(vec![a, t]);
    c.hard_restart = true;
    sim.configure(&c);
    sim.run_until(10.0);
    let evs = sim.take_log();
    let mut signals: Vec<_> = only(&evs, |e| matches!(e, Ev::Signal(..)))
        .into_iter()
        .cloned()
        .collect();
    signals.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        signals,
        vec![
            Ev::Signal(1001, StopSignal::Term),
            Ev::Signal(1002, StopSignal::Term),
            Ev::Signal(1003, StopSignal::Term)
        ]
    );
    // Unix socket released, TCP socket handed to its successor.
    assert!(evs.contains(&Ev::Release(0)));
    assert!(evs.contains(&Ev::Transfer(1, 3)));
    assert!(!evs.contains(&Ev::Release(1)));
    assert_eq!(only(&evs, |e| matches!(e, Ev::Spawn(_))).len(), 3);
}

#[test]
fn tcp_socket_is_taken_over_only_for_the_same_address() {
    // (new listen for /t, expected events)
    let same: Listen = Listen::Tcp("0.0.0.0:9000".parse().unwrap());
    let cases: Vec<(Listen, Vec<Ev>)> = vec![
        (same, vec![Ev::Transfer(1, 2)]),
        (Listen::Tcp("127.0.0.1:9000".parse().unwrap()), vec![Ev::Release(1)]),
        (Listen::Tcp("0.0.0.0:9001".parse().unwrap()), vec![Ev::Release(1)]),
        (Listen::Unix("/ipc/t".into()), vec![Ev::Release(1)]),
    ];
    for (listen, want) in cases {
        let (mut sim, a, t) = running_pair();
        let mut t2 = t.clone();
        t2.processes = 2;
        t2.listen = listen.clone();
        sim.configure(&cfg(vec![a, t2]));
        let evs = sim.take_log();
        assert_eq!(
            only(&evs, |e| matches!(e, Ev::Release(_) | Ev::Transfer(..))),
            want.iter().collect::<Vec<_>>(),
            "{listen:?}"
        );
    }
}

#[test]
fn removed_and_added_classes() {
    let (mut sim, a, t) = running_pair();
    let b = spec("/b", 1, 5, 1, 30);
    let _ = t;
    sim.configure(&cfg(vec![a, b]));
    sim.run_until(20.0);
    let evs = sim.take_log();
    // /t retired (no old children: stopped at once), /b started, /a untouched.
    assert!(evs.contains(&Ev::Release(1)));
    assert!(evs.contains(&Ev::Signal(1003, StopSignal::Term)));
    assert_eq!(only(&evs, |e| matches!(e, Ev::Spawn(_))), vec![&Ev::Spawn(2)]);
    assert!(!evs.iter().any(|e| matches!(e, Ev::Signal(1001 | 1002, _))));
}

#[test]
fn retired_process_exiting_by_itself_is_not_restarted() {
    let (mut sim, a, _t) = running_pair();
    let mut c = cfg(vec![a]);
    c.old_children = vec![7];
    sim.fx.alive.insert(7);
    sim.configure(&c);
    sim.run_until(20.0);
    sim.take_log();
    sim.exit_now(1003, EXIT1);
    let evs = sim.take_log();
    assert_eq!(
        evs,
        vec![Ev::Log(
            LogLevel::Warn,
            "FastCGI: server \"/t\" (pid 1003) terminated by calling exit with status '1'".into()
        )]
    );
    assert_eq!(sim.table.classes().len(), 1, "retired class dropped");
    sim.run_until(700.0);
    assert!(only(&sim.take_log(), not_log).is_empty());
}

// mod_status: a process that died by itself and was started again is a
// restart; first starts, and exits the PM asked for, are not.
#[test]
fn restarts_are_reported_once_per_unasked_exit() {
    let mut sim = Sim::new(forever());
    sim.configure(&cfg(vec![spec("/r", 2, 1, 0, 30)]));
    sim.run_until(1.0);
    assert_eq!(sim.table.classes()[0].running_processes(), 2);
    assert!(sim.fx.restarts.is_empty(), "first starts are not restarts");
    let pid = sim.table.classes()[0].pids().next().unwrap();
    sim.exit_now(
        pid,
        ChildExit::Signaled {
            signal: 9,
            core_dumped: false,
        },
    );
    assert_eq!(sim.table.classes()[0].running_processes(), 1);
    sim.run_until(10.0);
    assert_eq!(sim.table.classes()[0].running_processes(), 2);
    let id = sim.table.classes()[0].id();
    assert_eq!(sim.fx.restarts, vec![id]);
    // Exiting by itself with status 0 is restarted too.
    let pid = sim.table.classes()[0].pids().next().unwrap();
    sim.exit_now(pid, EXIT0);
    sim.run_until(20.0);
    assert_eq!(sim.fx.restarts, vec![id, id]);
    // Shutdown exits are asked for: nothing more.
    sim.table.begin_shutdown(&mut sim.fx);
    for pid in sim.table.running_pids() {
        sim.exit_now(pid, EXIT1);
    }
    sim.run_until(30.0);
    assert_eq!(sim.fx.restarts, vec![id, id]);
}

#[test]
fn shutdown_terms_then_kills() {
    let (mut sim, _a, _t) = running_pair();
    sim.table.begin_shutdown(&mut sim.fx);
    sim.collect();
    let evs = sim.take_log();
    assert_eq!(
        evs,
        vec![
            Ev::Signal(1001, StopSignal::Term),
            Ev::Signal(1002, StopSignal::Term),
            Ev::Signal(1003, StopSignal::Term)
        ]
    );
    // No restarts while shutting down; exits are expected (info) and not failures.
    sim.exit_now(1001, EXIT1);
    sim.run_until(100.0);
    let evs = sim.take_log();
    assert_eq!(
        evs,
        vec![Ev::Log(
            LogLevel::Info,
            "FastCGI: server \"/a\" (pid 1001) terminated by calling exit with status '1'".into()
        )]
    );
    assert_eq!(sim.table.next_wakeup(sim.now), None);
    sim.table.kill_remaining(&mut sim.fx);
    sim.collect();
    assert_eq!(
        sim.take_log(),
        vec![Ev::Signal(1002, StopSignal::Kill), Ev::Signal(1003, StopSignal::Kill)]
    );
    // A configuration arriving now is ignored.
    sim.configure(&cfg(vec![spec("/z", 1, 1, 1, 1)]));
    assert!(sim.take_log().is_empty());
}

#[test]
fn exit_texts() {
    let cases: &[(ChildExit, &str)] = &[
        (
            ChildExit::Exited(0),
            "FastCGI: server \"/p\" (pid 7) terminated by calling exit with status '0'",
        ),
        (
            ChildExit::Exited(255),
            "FastCGI: server \"/p\" (pid 7) terminated by calling exit with status '255'",
        ),
        (
            ChildExit::Signaled {
                signal: 9,
                core_dumped: false,
            },
            "FastCGI: server \"/p\" (pid 7) terminated due to uncaught signal '9' (Killed)",
        ),
        (
            ChildExit::Signaled {
                signal: 6,
                core_dumped: true,
            },
            "FastCGI: server \"/p\" (pid 7) terminated due to uncaught signal '6' (Aborted), a core file may have been generated",
        ),
        (
            ChildExit::Signaled {
                signal: 36,
                core_dumped: false,
            },
            "FastCGI: server \"/p\" (pid 7) terminated due to uncaught signal '36' (Real-time signal 2)",
        ),
    ];
    for (how, want) in cases {
        assert_eq!(exit_text("/p", 7, *how), *want);
    }
}

#[test]
fn unknown_pid_is_ignored() {
    let (mut sim, _a, _t) = running_pair();
    assert!(!sim.table.on_exit(4242, EXIT1, sim.now, &mut sim.fx));
    assert!(sim.fx.events.is_empty());
}

#[test]
fn status_lines() {
    let (sim, _a, _t) = running_pair();
    assert_eq!(
        sim.table.status_lines(),
        vec![
            "FastCGI: server \"/a\": 2/2 process(es) running [1001 1002], 0 failure(s)".to_string(),
            "FastCGI: server \"/t\": 1/1 process(es) running [1003], 0 failure(s)".to_string(),
        ]
    );
}

#[path = "table_dyn_tests.rs"]
mod dynamic;

#[test]
fn processes_killed_under_load_never_back_the_class_off() {
    // Issue 12: four processes, one SIGKILLed from outside every 0.5 s for 10 s (the
    // youngest too), defaults -min-server-life 30. Legacy backed the class off for 600 s
    // after the third kill; here no kill counts and the class is back to four processes
    // one -restart-delay after the last restart.
    let kill = ChildExit::Signaled {
        signal: libc::SIGKILL,
        core_dumped: false,
    };
    // -restart-delay 0: each slot restarts MIN_SLOT_RESPAWN after its previous start (with
    // 1 s counted from the class's last spawn, two kills a second outpace the restarts).
    let mut sim = Sim::new(forever());
    sim.configure(&cfg(vec![spec("/app", 4, 0, 0, 30)]));
    sim.run_until(5.0);
    assert_eq!(sim.table.classes()[0].pids().count(), 4);
    let mut kills = 0;
    for step in 0..20 {
        let t = 5.0 + 0.5 * f64::from(step);
        sim.run_until(t);
        let pids: Vec<i32> = sim.table.classes()[0].pids().collect();
        // Alternate between the oldest and the newest process.
        let pid = if step % 2 == 0 {
            pids[0]
        } else {
            *pids.iter().max().unwrap()
        };
        sim.exit_now(pid, kill);
        kills += 1;
    }
    assert_eq!(sim.table.classes()[0].failures(), 0);
    assert!(!sim.table.classes()[0].is_backed_off());
    assert!(sim.log_times("backed off").is_empty());
    assert_eq!(
        sim.log_times("was killed by a signal the process manager did not send")
            .len(),
        kills
    );
    // Full strength again within MIN_SLOT_RESPAWN of the last kill.
    sim.run_until(14.5 + 1.0);
    assert_eq!(sim.table.classes()[0].pids().count(), 4);

    // The same deaths as exits on their own: start-up failures, backed off (2 s first).
    let mut sim = Sim::new(forever());
    sim.configure(&cfg(vec![spec("/app", 4, 1, 0, 30)]));
    sim.run_until(5.0);
    for step in 0..4 {
        sim.run_until(5.0 + 0.5 * f64::from(step));
        let pid = sim.table.classes()[0].pids().next().unwrap();
        sim.exit_now(pid, EXIT1);
    }
    sim.run_until(7.0);
    assert_eq!(sim.log_times("backed off to 2 seconds").len(), 1);
    assert!(sim.table.classes()[0].is_backed_off());
}
