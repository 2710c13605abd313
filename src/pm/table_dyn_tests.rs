//! Dynamic applications (4.6) in the table: creation, scale-up limits, delays, deaths,
//! the kill/shrink sequence, `-autoUpdate` and reconfiguration, with the fake clock of
//! the parent module.

use super::*;
use crate::pm::req::{ClassKey, ReqMsg};

fn key(path: &str) -> ClassKey {
    ClassKey {
        path: path.into(),
        user: "-".into(),
        group: "-".into(),
    }
}

/// Defaults with the timers far away; each test changes what it exercises.
fn dspec() -> DynamicSpec {
    DynamicSpec {
        enabled: true,
        dynamic_dir: "/ipc/dynamic".into(),
        max_processes: 50,
        min_processes: 0,
        max_class_processes: 3,
        kill_interval: 100_000,
        update_interval: 100_000,
        gain_value: 0.5,
        single_threshold: 0,
        multi_threshold: 50,
        listen_queue_depth: 100,
        min_server_life: 30,
        restart_delay: 5,
        init_start_delay: 1,
        process_slack: 1,
        priority: 0,
        restart: false,
        auto_update: false,
        initial_env: vec![("A".into(), "1".into())],
        wrapper: None,
    }
}

fn dcfg(d: DynamicSpec) -> PmConfig {
    PmConfig {
        dynamic: d,
        ..cfg(vec![])
    }
}

fn sim(d: DynamicSpec) -> Sim {
    let mut sim = Sim::new(forever());
    sim.configure(&dcfg(d));
    sim
}

impl Sim {
    /// Delivers a request message at `t` seconds (after running the loop until then).
    fn req_at(&mut self, t: f64, msg: ReqMsg) {
        self.run_until(t);
        self.table.on_request(&msg, self.now, &mut self.fx);
        self.collect();
        // The event loop ticks right after reading messages.
        self.table.tick(self.now, &mut self.fx);
        self.collect();
    }

    fn count(&self, needle: &str) -> usize {
        self.log_times(needle).len()
    }
}

#[test]
fn start_creates_the_class_and_spawns_at_once() {
    let mut d = dspec();
    d.wrapper = Some("/usr/lib/apache2/suexec".into());
    let mut sim = sim(d.clone());
    sim.req_at(0.25, ReqMsg::Start(key("/d.fcgi")));
    // Socket first, then the first process in the same wake-up (bug 22).
    let evs: Vec<Ev> = sim.log.iter().map(|(_, e)| e.clone()).collect();
    let open = evs.iter().position(|e| *e == Ev::Open(0)).unwrap();
    let spawn = evs.iter().position(|e| *e == Ev::Spawn(0)).unwrap();
    assert!(open < spawn);
    assert_eq!(sim.spawn_times(), vec![0.25]);
    assert_eq!(
        sim.log_times("FastCGI: (dynamic) server \"/d.fcgi\" started (pid 1001)"),
        vec![0.25]
    );
    // The process gets FastCgiConfig's settings; user "-" skips the wrapper.
    let spec = &sim.fx.specs[&0];
    assert_eq!(spec, &d.class_spec(&key("/d.fcgi")));
    assert_eq!(spec.wrapper, None);
    assert_eq!(spec.initial_env, vec![("A".to_string(), "1".to_string())]);
    assert_eq!(sim.table.classes()[0].kind(), ClassKind::Dynamic);
    // A start message while a process runs is ignored.
    sim.req_at(10.0, ReqMsg::Start(key("/d.fcgi")));
    assert_eq!(sim.spawn_times().len(), 1);
    // Another identity is another class, started through the wrapper.
    let wrapped = ClassKey {
        path: "/d.fcgi".into(),
        user: "1001".into(),
        group: "1002".into(),
    };
    sim.req_at(11.0, ReqMsg::Nudge(wrapped.clone()));
    assert_eq!(sim.spawn_times(), vec![0.25, 11.0]);
    let w = sim.fx.specs[&1].wrapper.clone().unwrap();
    assert_eq!((w.user.as_str(), w.group.as_str()), ("1001", "1002"));
    assert_eq!(sim.table.classes()[1].key(), Some(&wrapped));
}

#[test]
fn socket_failure_creates_no_class() {
    let mut sim = sim(dspec());
    sim.fx.socket_fails = true;
    sim.req_at(0.0, ReqMsg::Start(key("/d")));
    assert!(sim.table.classes().is_empty());
    assert!(sim.spawn_times().is_empty());
    // The next message retries.
    sim.fx.socket_fails = false;
    sim.req_at(1.0, ReqMsg::Nudge(key("/d")));
    assert_eq!(sim.spawn_times(), vec![1.0]);
}

#[test]
fn nudges_grow_the_class_up_to_max_class_processes() {
    // (max_class_processes, init_start_delay, nudge times, expected spawn times)
    let cases: &[(u32, u32, &[f64], &[f64])] = &[
        // init 1: a nudge within 1 s of the last spawn is ignored, not deferred.
        (3, 1, &[0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 50.0], &[0.0, 1.0, 2.0]),
        (3, 0, &[0.1, 0.2, 0.3, 0.4], &[0.0, 0.1, 0.2]),
        (1, 0, &[0.1, 0.2], &[0.0]),
        (
            5,
            2,
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            &[0.0, 2.0, 4.0, 6.0, 8.0],
        ),
    ];
    for &(max_class, init, nudges, want) in cases {
        let mut d = dspec();
        d.max_class_processes = max_class;
        d.init_start_delay = init;
        let mut sim = sim(d);
        sim.req_at(0.0, ReqMsg::Start(key("/d")));
        for &t in nudges {
            sim.req_at(t, ReqMsg::Nudge(key("/d")));
        }
        sim.run_until(100.0);
        assert_eq!(sim.spawn_times(), want, "max {max_class} init {init}");
        assert_eq!(sim.running().len(), want.len());
        let last = format!(
            "FastCGI: scheduled the start of the last (dynamic) server \"/d\" process: reached dynamicMaxClassProcs ({max_class})"
        );
        assert_eq!(sim.log_times(&last), vec![*want.last().unwrap()], "max {max_class}");
        assert!(sim
            .log
            .iter()
            .any(|(_, e)| matches!(e, Ev::Log(LogLevel::Warn, m) if *m == last)));
    }
}

#[test]
fn max_processes_is_a_hard_limit_across_classes() {
    let mut d = dspec();
    d.max_processes = 4;
    d.max_class_processes = 3;
    d.init_start_delay = 0;
    let mut sim = sim(d);
    let mut t = 0.0;
    for round in 0..5 {
        for p in ["/a", "/b", "/c"] {
            t += 0.1;
            let msg = if round == 0 {
                ReqMsg::Start(key(p))
            } else {
                ReqMsg::Nudge(key(p))
            };
            sim.req_at(t, msg);
            assert!(sim.table.dynamic_total() <= 4, "at {t}");
        }
    }
    assert_eq!(sim.running().len(), 4);
    // /a: 2, /b: 1, /c: 1 (one each in the first round, then /a's nudge).
    let per_class: Vec<usize> = sim.table.classes().iter().map(|c| c.pids().count()).collect();
    assert_eq!(per_class, vec![2, 1, 1]);
    let refused =
        "FastCGI: can't schedule the start of another (dynamic) server \"/b\" process: exceeded dynamicMaxProcs (4)";
    assert_eq!(sim.count(refused), 4);
    // A process leaving frees a place.
    let pid = sim.table.classes()[0].pids().next().unwrap();
    sim.exit_now(pid, EXIT0);
    sim.req_at(t + 10.0, ReqMsg::Nudge(key("/b")));
    assert_eq!(sim.table.classes()[1].pids().count(), 2);
}

#[test]
fn restart_delay_applies_to_a_slot_used_before() {
    let mut d = dspec();
    d.max_class_processes = 2;
    d.init_start_delay = 0;
    d.restart_delay = 10;
    let mut sim = sim(d);
    sim.req_at(0.0, ReqMsg::Start(key("/d")));
    sim.req_at(1.0, ReqMsg::Nudge(key("/d")));
    assert_eq!(sim.spawn_times(), vec![0.0, 1.0]);
    // 1002 dies unprovoked while 1001 runs: not restarted (no -restart).
    sim.run_until(2.0);
    sim.exit_now(1002, EXIT1);
    sim.run_until(5.0);
    assert_eq!(
        sim.log_times("FastCGI: (dynamic) server \"/d\" (pid 1002) terminated by calling exit with status '1'"),
        vec![2.0]
    );
    assert_eq!(sim.table.classes()[0].failures(), 1);
    // Its slot ran before: restart-delay counts from the class's last spawn (1.0).
    sim.req_at(5.0, ReqMsg::Nudge(key("/d")));
    sim.req_at(10.9, ReqMsg::Nudge(key("/d")));
    assert_eq!(sim.spawn_times(), vec![0.0, 1.0]);
    sim.req_at(11.0, ReqMsg::Nudge(key("/d")));
    assert_eq!(sim.spawn_times(), vec![0.0, 1.0, 11.0]);
    // "restart" wording for the last slot when it ran before.
    assert_eq!(
        sim.count("scheduled the restart of the last (dynamic) server \"/d\""),
        1
    );
}

#[test]
fn death_reschedules_per_pm57() {
    // (restart, single_threshold, other process running, exit, rescheduled)
    let cases: &[(bool, u32, bool, ChildExit, bool)] = &[
        (false, 0, false, EXIT1, true), // the last process, singleThreshold 0
        (false, 0, false, EXIT0, true),
        (false, 5, false, EXIT1, false), // singleThreshold > 0: may stay at zero
        (false, 0, true, EXIT1, false),  // others still serve
        (true, 5, true, EXIT1, true),    // -restart: always
        (true, 0, false, EXIT0, true),
    ];
    for &(restart, single, other, how, want) in cases {
        let mut d = dspec();
        d.restart = restart;
        d.single_threshold = single;
        d.init_start_delay = 0;
        d.restart_delay = 1;
        let mut sim = sim(d);
        sim.req_at(0.0, ReqMsg::Start(key("/d")));
        if other {
            sim.req_at(0.5, ReqMsg::Nudge(key("/d")));
        }
        let before = sim.spawn_times().len();
        sim.run_until(5.0);
        sim.exit_now(1001, how);
        sim.run_until(20.0);
        let again = sim.spawn_times().len() > before;
        assert_eq!(again, want, "restart {restart} single {single} other {other} {how:?}");
        if want {
            // restart-delay from the last spawn (long past).
            assert_eq!(*sim.spawn_times().last().unwrap(), 5.0);
        }
        let failures = sim.table.classes()[0].failures();
        assert_eq!(failures, u32::from(how != EXIT0));
        // An unprovoked death is a warning.
        assert_eq!(
            sim.log_times("FastCGI: (dynamic) server \"/d\" (pid 1001) terminated"),
            vec![5.0]
        );
        assert!(sim
            .log
            .iter()
            .any(|(_, e)| matches!(e, Ev::Log(LogLevel::Warn, m) if m.contains("(pid 1001) terminated"))));
    }
}

#[test]
fn crashing_dynamic_application_backs_off() {
    let mut d = dspec();
    d.restart_delay = 1;
    d.init_start_delay = 0;
    let mut sim = Sim::new(Box::new(|_, _| Some((0.1, EXIT1))));
    sim.configure(&dcfg(d));
    sim.req_at(0.0, ReqMsg::Start(key("/bad")));
    sim.run_until(700.0);
    assert_eq!(
        &sim.spawn_times()[..9],
        &[0.0, 1.0, 2.0, 3.0, 5.0, 9.0, 17.0, 33.0, 65.0]
    );
    assert_eq!(
        sim.log_times("FastCGI: (dynamic) server \"/bad\" has failed to remain running for 30 seconds given 3 attempts, its restart interval has been backed off to 2 seconds"),
        vec![3.1]
    );
    assert_eq!(sim.log_times("backed off to 60 seconds").len(), 11);
}

/// A class grown to `n` processes at t = 0, 1, …, n−1 with the given timers.
fn grown(n: u32, d: DynamicSpec) -> Sim {
    let mut d = d;
    d.max_class_processes = n.max(d.max_class_processes);
    d.init_start_delay = 1;
    let mut sim = sim(d);
    sim.term_exit = Some(0.5);
    sim.kill_exits = true;
    sim.req_at(0.0, ReqMsg::Start(key("/d")));
    for i in 1..n {
        sim.req_at(f64::from(i), ReqMsg::Nudge(key("/d")));
    }
    assert_eq!(sim.running().len(), n as usize);
    sim
}

fn timers(kill: u32, update: u32, min: u32) -> DynamicSpec {
    DynamicSpec {
        kill_interval: kill,
        update_interval: update,
        min_processes: min,
        ..dspec()
    }
}

#[test]
fn idle_class_shrinks_one_per_pass_down_to_the_floor() {
    // (min_processes, single_threshold, expected kill times, processes left)
    let cases: &[(u32, u32, &[f64], usize)] = &[
        // Pass at 10: the newest (started at 3) is younger than the 10 s window: kept.
        (0, 0, &[20.0, 30.0, 40.0], 1),
        (1, 0, &[20.0, 30.0, 40.0], 1),
        (2, 0, &[20.0, 30.0], 2),
        (4, 0, &[], 4),
        (5, 0, &[], 4),
        // singleThreshold > 0: even the last process goes.
        (0, 1, &[20.0, 30.0, 40.0, 50.0], 0),
    ];
    for &(min, single, kills, left) in cases {
        let mut d = timers(10, 10, min);
        d.single_threshold = single;
        let mut sim = grown(4, d);
        sim.run_until(200.0);
        assert_eq!(
            sim.log_times("termination signaled"),
            kills,
            "min {min} single {single}"
        );
        assert_eq!(sim.running().len(), left, "min {min} single {single}");
        // Newest first: 1004, 1003, …
        let victims: Vec<i32> = sim
            .log
            .iter()
            .filter_map(|(_, e)| match e {
                Ev::Signal(p, StopSignal::Term) => Some(*p),
                _ => None,
            })
            .collect();
        assert_eq!(victims, (0..kills.len() as i32).map(|i| 1004 - i).collect::<Vec<_>>());
        // Victims' exits are expected (info), not failures, and not restarted.
        assert_eq!(sim.table.classes()[0].failures(), 0);
        assert_eq!(sim.spawn_times().len(), 4);
        assert!(!sim
            .log
            .iter()
            .any(|(_, e)| matches!(e, Ev::Log(LogLevel::Warn, m) if m.contains("terminated due to"))));
    }
    // The log text.
    let mut sim = grown(2, timers(10, 10, 0));
    sim.run_until(20.0);
    assert_eq!(
        sim.log_times("FastCGI: (dynamic) server \"/d\" (pid 1002) termination signaled"),
        vec![20.0]
    );
}

#[test]
fn the_floor_counts_every_class() {
    // Two classes of two processes each, min 3: only one kill in total.
    let mut d = timers(10, 10, 3);
    d.max_class_processes = 2;
    d.init_start_delay = 1;
    let mut sim = sim(d);
    sim.term_exit = Some(0.5);
    sim.req_at(0.0, ReqMsg::Start(key("/a")));
    sim.req_at(0.0, ReqMsg::Start(key("/b")));
    sim.req_at(1.0, ReqMsg::Nudge(key("/a")));
    sim.req_at(1.0, ReqMsg::Nudge(key("/b")));
    sim.run_until(100.0);
    assert_eq!(sim.log_times("termination signaled"), vec![20.0]);
    assert_eq!(sim.running().len(), 3);
}

#[test]
fn victim_ignoring_sigterm_is_killed_after_three_seconds() {
    let mut sim = grown(2, timers(10, 10, 0));
    sim.term_exit = None;
    sim.run_until(22.9);
    let sigs = sim.times(|e| matches!(e, Ev::Signal(1002, _)));
    assert_eq!(sigs, vec![20.0]);
    sim.run_until(23.0);
    assert!(sim.log.contains(&(23.0, Ev::Signal(1002, StopSignal::Kill))));
    assert_eq!(
        sim.count("FastCGI: (dynamic) server \"/d\" (pid 1002) still running 3 seconds after SIGTERM, sending SIGKILL"),
        1
    );
    sim.run_until(40.0);
    // One victim at a time per class: no other kill while 1002 is unreaped... it was
    // reaped at 23 (SIGKILL): the next pass at 30 would take 1001, but it is the last.
    assert_eq!(sim.running(), vec![1001]);
}

#[test]
fn one_victim_per_class_at_a_time() {
    let mut sim = grown(3, timers(10, 10, 0));
    sim.term_exit = None; // victims linger until SIGKILL
    sim.run_until(20.0);
    assert_eq!(sim.log_times("termination signaled"), vec![20.0]);
    // Kill pass at every wake-up under pressure: still no second victim while the
    // first is unreaped.
    sim.run_until(22.0);
    assert_eq!(sim.log_times("termination signaled"), vec![20.0]);
}

/// Done messages of `conn_us` every second from `from` to `to`.
fn traffic(sim: &mut Sim, from: u32, to: u32, conn_us: u64) {
    for t in from..to {
        sim.req_at(
            f64::from(t) + 0.5,
            ReqMsg::Done {
                key: key("/d"),
                queue_us: 1,
                conn_us,
            },
        );
    }
}

#[test]
fn load_keeps_processes_and_gain_smooths_it() {
    // Two processes, 10 s windows, multi 50. Traffic: 1.2 s of connection time per
    // second = 12 s per window = 60 % per process.
    // (gain, conn µs per second, expected kill times)
    let cases: &[(f32, u64, &[f64])] = &[
        // Pass at 10: unsmoothed 12 s / (2 × 10 s) = 60 % (the pass runs before the
        // smoothing step). Pass at 20: smoothed 0.5 × 12 s = 6 s → 30 %: kill.
        (0.5, 1_200_000, &[20.0]),
        // gain 1: the newest window only: 60 %, kept.
        (1.0, 1_200_000, &[]),
        // gain 0.75: 9 s → 45 %: kill.
        (0.75, 1_200_000, &[20.0]),
        // gain 0.5 with twice the traffic: 12 s → 60 %, then 18 s → 90 %.
        (0.5, 2_400_000, &[]),
        // Light traffic: 0.5 s per 10 s, 2.5 %.
        (1.0, 50_000, &[20.0]),
    ];
    for &(gain, conn, kills) in cases {
        let mut d = timers(10, 10, 0);
        d.gain_value = gain;
        let mut sim = grown(2, d);
        traffic(&mut sim, 1, 35, conn);
        assert_eq!(sim.log_times("termination signaled"), kills, "gain {gain} conn {conn}");
    }
}

#[test]
fn smoothing_state_follows_the_update_interval() {
    let mut d = timers(1000, 10, 0);
    d.gain_value = 0.5;
    let mut sim = grown(1, d);
    traffic(&mut sim, 0, 10, 1_000_000); // 10 s in the first window
    sim.run_until(10.0);
    assert_eq!(sim.table.classes()[0].smoothed_load_us(), 5e6);
    sim.run_until(20.0); // idle window
    assert_eq!(sim.table.classes()[0].smoothed_load_us(), 2.5e6);
    traffic(&mut sim, 20, 30, 100_000);
    sim.run_until(30.0);
    assert_eq!(sim.table.classes()[0].smoothed_load_us(), 1.75e6);
}

#[test]
fn pressure_runs_the_kill_pass_at_every_wake_up() {
    // max 4, slack 1: with 3 processes the pass runs at every wake-up, not only every
    // 1000 s.
    let mut d = timers(1000, 10, 0);
    d.max_processes = 4;
    d.process_slack = 1;
    let mut sim = grown(3, d.clone());
    // Wake-ups: the updates at 10 s (the newest process, started at 2 s, is younger
    // than the 10 s window) and 20 s.
    sim.run_until(22.0);
    assert_eq!(sim.log_times("termination signaled"), vec![20.0]);
    // Without pressure (slack 0 is not allowed by the config; use a big maximum):
    d.max_processes = 50;
    let mut sim = grown(3, d);
    sim.run_until(500.0);
    assert!(sim.log_times("termination signaled").is_empty());
}

#[test]
fn a_scheduled_start_is_cancelled_instead_of_killing() {
    // -restart with a long restart delay: the replacement of a dead process waits; an
    // idle pass cancels it instead of killing a running process.
    let mut d = timers(20, 10, 0);
    d.restart = true;
    d.restart_delay = 30;
    let mut sim = grown(3, d);
    sim.run_until(15.0);
    sim.exit_now(1001, EXIT1);
    sim.run_until(25.0);
    // Pass at 20: running 2 (idle) and one scheduled: cancelled.
    assert!(sim.log_times("termination signaled").is_empty());
    assert_eq!(
        sim.log_times("FastCGI: (dynamic) server \"/d\": scheduled start cancelled, load too low"),
        vec![20.0]
    );
    sim.run_until(39.0);
    assert_eq!(
        sim.spawn_times(),
        vec![0.0, 1.0, 2.0],
        "the restart at 32 was cancelled"
    );
    // Pass at 40: now a kill.
    sim.run_until(40.0);
    assert_eq!(sim.log_times("termination signaled"), vec![40.0]);
}

#[test]
fn auto_update_restarts_outdated_processes() {
    // (-restart, expected spawn times)
    let cases: &[(bool, &[f64])] = &[
        // One new process in an empty slot right away.
        (false, &[0.0, 1.0, 20.0]),
        // -restart: the victims are restarted when they exit (20.5), one per
        // restart-delay (5 s) counted from the class's last spawn (PM-31).
        (true, &[0.0, 1.0, 20.5, 25.5]),
    ];
    for &(restart, want) in cases {
        let mut d = dspec();
        d.auto_update = true;
        d.restart = restart;
        d.init_start_delay = 0;
        d.max_class_processes = 3;
        let mut sim = sim(d);
        sim.term_exit = Some(0.5);
        sim.req_at(0.0, ReqMsg::Start(key("/d")));
        sim.req_at(1.0, ReqMsg::Nudge(key("/d")));
        // Not newer than the class: only the socket is touched.
        sim.fx.mtimes.insert("/d".into(), wall0() - Duration::from_secs(5));
        sim.req_at(10.0, ReqMsg::Restart(key("/d")));
        assert_eq!(sim.log_times("newer version found"), Vec::<f64>::new());
        assert!(sim.log.contains(&(10.0, Ev::Touch(0))));
        // Modified at 15.
        sim.fx.mtimes.insert("/d".into(), wall0() + Duration::from_secs(15));
        sim.req_at(20.0, ReqMsg::Restart(key("/d")));
        assert_eq!(
            sim.log_times("FastCGI: restarting old server \"/d\" processes, newer version found"),
            vec![20.0]
        );
        let terms = sim.times(|e| matches!(e, Ev::Signal(_, StopSignal::Term)));
        assert_eq!(terms, vec![20.0, 20.0]);
        sim.run_until(30.0);
        assert_eq!(sim.spawn_times(), want, "restart {restart}");
        // Victims' exits are not failures.
        assert_eq!(sim.table.classes()[0].failures(), 0);
        // The class start moved to 20: the same file is not newer any more.
        sim.req_at(31.0, ReqMsg::Restart(key("/d")));
        assert_eq!(sim.count("newer version found"), 1);
        // The processes started after the modification are not touched.
        assert_eq!(sim.times(|e| matches!(e, Ev::Signal(..))).len(), 2);
    }
}

#[test]
fn auto_update_off_ignores_restart_messages() {
    let mut sim = sim(dspec());
    sim.req_at(0.0, ReqMsg::Start(key("/d")));
    sim.fx.mtimes.insert("/d".into(), wall0() + Duration::from_secs(5));
    sim.req_at(10.0, ReqMsg::Restart(key("/d")));
    assert_eq!(sim.count("newer version"), 0);
    assert!(!sim.log.iter().any(|(_, e)| matches!(e, Ev::Touch(_) | Ev::Signal(..))));
    // An unknown class is created by a restart message like by a start message.
    sim.req_at(11.0, ReqMsg::Restart(key("/e")));
    assert_eq!(sim.spawn_times(), vec![0.0, 11.0]);
}

#[test]
fn done_messages_and_unknown_classes() {
    let mut sim = sim(timers(1000, 10, 0));
    // Done for a class that does not exist: ignored, nothing created.
    sim.req_at(
        1.0,
        ReqMsg::Done {
            key: key("/nope"),
            queue_us: 1,
            conn_us: 1,
        },
    );
    assert!(sim.table.classes().is_empty());
    assert!(sim.log.is_empty());
    // Saturating sum.
    sim.req_at(2.0, ReqMsg::Start(key("/d")));
    for _ in 0..2 {
        sim.req_at(
            3.0,
            ReqMsg::Done {
                key: key("/d"),
                queue_us: 0,
                conn_us: u64::MAX,
            },
        );
    }
    sim.run_until(10.0);
    assert_eq!(sim.table.classes()[0].smoothed_load_us(), 0.5 * u64::MAX as f64);
}

#[test]
fn disabled_dynamic_spec_logs_once() {
    let mut sim = Sim::new(forever());
    sim.configure(&cfg(vec![]));
    sim.req_at(0.0, ReqMsg::Start(key("/d")));
    sim.req_at(1.0, ReqMsg::Nudge(key("/e")));
    let evs = sim.take_log();
    assert_eq!(
        evs,
        vec![Ev::Log(
            LogLevel::Warn,
            "FastCGI: request for (dynamic) server \"/d\" ignored: dynamic applications are not enabled (further requests are ignored silently)".into()
        )]
    );
    assert!(sim.table.classes().is_empty());
}

#[test]
fn no_timer_wake_ups_without_dynamic_classes() {
    let sim = sim(timers(1, 1, 0));
    assert_eq!(sim.table.next_wakeup(sim.now), None);
}

#[test]
fn reconfigure_keeps_or_retires_dynamic_classes() {
    // Unchanged FastCgiConfig: kept, no events at all.
    let mut sim = grown(2, dspec());
    sim.take_log();
    sim.configure(&dcfg(DynamicSpec {
        max_class_processes: 3,
        init_start_delay: 1,
        ..dspec()
    }));
    sim.run_until(100.0);
    assert!(only(&sim.take_log(), not_log).is_empty());
    assert_eq!(sim.running(), vec![1001, 1002]);

    // Changed: retired like a static class (socket released at once, processes stopped
    // once the old generation is gone); the next request creates a new class.
    let mut changed = dcfg(DynamicSpec {
        max_class_processes: 3,
        init_start_delay: 1,
        restart_delay: 7,
        ..dspec()
    });
    changed.old_children = vec![77];
    sim.fx.alive.insert(77);
    sim.configure(&changed);
    let evs = sim.take_log();
    assert!(evs.contains(&Ev::Release(0)));
    assert!(evs.iter().any(|e| matches!(e, Ev::Log(LogLevel::Notice, m)
        if m == "FastCGI: (dynamic) server \"/d\" changed or removed: 2 old process(es) will be stopped once the previous httpd generation has exited")));
    sim.req_at(101.0, ReqMsg::Start(key("/d")));
    assert_eq!(sim.table.classes().len(), 2);
    assert_eq!(sim.table.classes()[1].key(), Some(&key("/d")));
    assert!(sim.log.contains(&(101.0, Ev::Open(1))));
    assert!(sim.log.contains(&(101.0, Ev::Spawn(1))));
    // The retired processes count against maxProcesses until they are gone.
    assert_eq!(sim.table.dynamic_total(), 3);
    sim.fx.alive.remove(&77);
    sim.run_until(103.0);
    assert_eq!(sim.running(), vec![1003]);
    assert_eq!(sim.table.classes().len(), 1);

    // Hard restart: retired too.
    sim.take_log();
    let mut hard = changed.clone();
    hard.hard_restart = true;
    hard.old_children = vec![];
    sim.configure(&hard);
    sim.run_until(110.0);
    let evs = sim.take_log();
    assert!(evs.contains(&Ev::Release(1)));
    assert!(evs.contains(&Ev::Signal(1003, StopSignal::Term)));
    assert!(sim.running().is_empty());
}

#[test]
fn shutdown_stops_dynamic_processes_and_ignores_requests() {
    let mut sim = grown(2, dspec());
    sim.take_log();
    sim.table.begin_shutdown(&mut sim.fx);
    sim.collect();
    let evs = sim.take_log();
    assert_eq!(
        only(&evs, not_log),
        vec![&Ev::Signal(1001, StopSignal::Term), &Ev::Signal(1002, StopSignal::Term)]
    );
    sim.req_at(5.0, ReqMsg::Start(key("/x")));
    assert!(only(&sim.take_log(), |e| matches!(e, Ev::Open(_) | Ev::Spawn(_))).is_empty());
}

#[test]
fn status_lines_name_dynamic_classes() {
    let sim = grown(2, dspec());
    assert_eq!(
        sim.table.status_lines(),
        vec!["FastCGI: (dynamic) server \"/d\": 2/3 process(es) running [1001 1002], 0 failure(s), smoothed load 0 us per 100000 s".to_string()]
    );
}
