//! The kill policy of dynamic applications (PM-54..PM-56) as pure functions: load
//! smoothing and the per-class decision of one kill pass. The table
//! ([`super::table`]) gathers the inputs, applies the decisions and owns the timers.
//!
//! Load of a class: the sum of the connection times (µs from the first byte received from
//! the application to the end of the connection) that completed requests reported over a
//! measurement window, as a percentage of the time its processes were available in that
//! window: `100 × connTime / (running × window)`.
//!
//! # Deliberate differences from legacy
//!
//! Legacy bug 18 (PM-56) is fixed:
//!
//! - **Real division.** Legacy computed an integer `loadFactor = 100 × connTime /
//!   capacity` and, for several processes, multiplied it by `running / (running − 1)` in
//!   integer arithmetic (×2 for two processes, ×1 for three or more). Here the load is
//!   the real-valued per-process load `100 × connTime / (running × window)`, compared
//!   with `multiThreshold` for several processes and `singleThreshold` for one. For three
//!   or more processes this is what legacy computed (minus truncation); the ×2 quirk for
//!   exactly two processes is gone.
//! - **One window for usage and capacity.** Legacy measured usage per `updateInterval`
//!   (the smoothed sum) but capacity since the last kill pass (`killInterval`), so the
//!   load was off by the ratio of the two intervals. Here both use the window of the
//!   usage figure: the smoothed value is a weighted average of per-`updateInterval` sums,
//!   so its capacity is `running × updateInterval`; when the smoothed value is still 0
//!   (no window completed yet, as legacy) the unsmoothed sum is used with the time since
//!   the last smoothing step as its window. The window is at least 1 ms (legacy added 1
//!   µs to the capacity to avoid dividing by zero).
//!   For the same reason a process younger than one `updateInterval` is never chosen as
//!   a victim: the window it is judged by is longer than its life, so its idle share is
//!   mostly time when it did not exist (and killing a process the request handlers just
//!   asked for makes the class oscillate).
//! - **`minProcesses` is a floor.** Legacy checked it only after a kill, so classes kept
//!   shrinking to one process. Here no process is killed when that would leave fewer
//!   than `minProcesses` dynamic processes (all classes together).
//! - **Victims are followed up**: the table sends SIGKILL to a victim still alive 3 s
//!   after its SIGTERM (legacy never did).
//!
//! Kept: cancelling a scheduled start instead of killing, doing nothing for a class that
//! already has a victim, at most one victim per class per pass, the newest process as
//! the victim, `singleThreshold 0` = the last process is never killed.

#![forbid(unsafe_code)]

use std::time::Duration;

/// Shortest measurement window used in a division.
pub const MIN_WINDOW: Duration = Duration::from_millis(1);

/// `smooth = (1 − gain) × smooth + gain × sum` (PM-54); `gain` is clamped to 0..=1.
pub fn smooth(previous: f64, sum_us: u64, gain: f32) -> f64 {
    let g = if gain.is_nan() {
        0.0
    } else {
        f64::from(gain.clamp(0.0, 1.0))
    };
    (1.0 - g) * previous + g * sum_us as f64
}

/// The usage figures of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Smoothed connection time (µs per `updateInterval`); 0 before the first step.
    pub smoothed_us: f64,
    /// `updateInterval`: the window of `smoothed_us`.
    pub update_window: Duration,
    /// Connection time reported since the last smoothing step (µs).
    pub current_us: u64,
    /// Time since the last smoothing step.
    pub current_window: Duration,
}

impl Load {
    /// The connection time and the window it covers (smoothed if non-zero).
    pub fn measured(&self) -> (f64, Duration) {
        if self.smoothed_us > 0.0 {
            (self.smoothed_us, self.update_window)
        } else {
            (self.current_us as f64, self.current_window)
        }
    }

    /// Per-process load in percent for `running` processes; 0 for no process.
    pub fn percent(&self, running: u32) -> f64 {
        if running == 0 {
            return 0.0;
        }
        let (conn_us, window) = self.measured();
        let capacity_us = f64::from(running) * window.max(MIN_WINDOW).as_micros() as f64;
        100.0 * conn_us / capacity_us
    }
}

/// What the kill pass knows about one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyInput {
    /// Processes running and not being stopped.
    pub running: u32,
    /// Slots scheduled to start.
    pub scheduled: u32,
    /// Victims not reaped yet.
    pub stopping: u32,
    pub load: Load,
    /// Age of the newest running process (the would-be victim).
    pub newest_age: Duration,
    pub single_threshold: u32,
    pub multi_threshold: u32,
    /// Dynamic processes of all classes that will remain: running, not being stopped,
    /// minus the victims already chosen in this pass.
    pub total_running: u32,
    pub min_processes: u32,
}

/// The decision for one class in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// Unschedule a pending start instead of killing (legacy: back to "empty").
    CancelScheduledStart,
    /// SIGTERM the most recently started running process.
    KillNewest,
}

/// PM-56 for one class (see the module documentation for the differences from legacy).
pub fn decide(i: &PolicyInput) -> Decision {
    if i.running == 0 {
        // Nothing measured; a pending start is some request's only hope.
        return Decision::Keep;
    }
    let threshold = if i.running == 1 {
        i.single_threshold
    } else {
        i.multi_threshold
    };
    if i.load.percent(i.running) >= f64::from(threshold) {
        return Decision::Keep;
    }
    if i.scheduled > 0 {
        return Decision::CancelScheduledStart;
    }
    if i.stopping > 0 || i.total_running <= i.min_processes || i.newest_age < i.load.update_window {
        return Decision::Keep;
    }
    Decision::KillNewest
}

/// Longest restart interval of a class backed off for failing at start-up.
pub const MAX_STARTUP_BACKOFF: Duration = Duration::from_secs(60);

/// How an unprovoked death of an application process is judged (the PM did not signal
/// it). See [`classify_death`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    /// `exit(0)`: never a failure (legacy PM-32).
    Clean,
    /// SIGKILL or SIGTERM from outside (the OOM killer, an operator, a supervisor): the
    /// application did not fail, something killed it, typically while it was serving.
    /// Never counted towards the back-off.
    Killed,
    /// Ended on its own (exit status other than 0, or a crash signal) before
    /// `-min-server-life`: the application fails at start-up (or on its first
    /// requests). Counted towards the back-off.
    StartupFailure,
    /// Ended on its own after `-min-server-life`: it had been serving. Not counted
    /// (legacy counted it but the next look restored the class at once).
    LateFailure,
}

impl Death {
    /// Whether this death counts towards the crash-loop back-off.
    pub fn counts(self) -> bool {
        self == Death::StartupFailure
    }
}

/// Classifies an unprovoked death from how the process ended and how long it ran
/// (`None`: start time unknown, judged as at start-up).
///
/// The signal: the process manager sees no request of a static application (the
/// request handlers connect to a listening socket shared by all its processes, so nobody
/// knows which process accepted a connection, and no per-request message exists for
/// static classes). What it does see at every death is how the process ended and how
/// long it ran. A start-up crash loop shows as processes that end *on their own* (exit
/// status, or a crash signal such as SIGSEGV/SIGABRT) soon after their start; a process
/// killed under load shows as SIGKILL/SIGTERM that the PM did not send. The first
/// is counted (legacy protection, with `-min-server-life` as the start-up window); the
/// second never is, however young the process was.
pub fn classify_death(exit: crate::sys::wait::ChildExit, life: Option<Duration>, min_server_life: Duration) -> Death {
    use crate::sys::wait::ChildExit;
    match exit {
        ChildExit::Exited(0) => Death::Clean,
        ChildExit::Signaled { signal, .. } if signal == libc::SIGKILL || signal == libc::SIGTERM => Death::Killed,
        _ if life.is_some_and(|l| l >= min_server_life) => Death::LateFailure,
        _ => Death::StartupFailure,
    }
}

/// Restart interval of a class backed off for the `round`-th time in a row (0 = first):
/// twice `-restart-delay` (at least 1 s), doubling each round, at most
/// [`MAX_STARTUP_BACKOFF`] — or `-restart-delay` itself when that is longer.
pub fn startup_backoff(restart_delay: Duration, round: u32) -> Duration {
    let base = restart_delay.max(Duration::from_secs(1));
    let factor = 1u32 << round.saturating_add(1).min(16);
    base.saturating_mul(factor).min(MAX_STARTUP_BACKOFF).max(restart_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn load(smoothed_us: f64, current_us: u64, current_secs: f64) -> Load {
        Load {
            smoothed_us,
            update_window: 10 * S,
            current_us,
            current_window: Duration::from_secs_f64(current_secs),
        }
    }

    fn input(running: u32, l: Load) -> PolicyInput {
        PolicyInput {
            running,
            scheduled: 0,
            stopping: 0,
            load: l,
            newest_age: 100 * S,
            single_threshold: 0,
            multi_threshold: 50,
            total_running: 100,
            min_processes: 0,
        }
    }

    #[test]
    fn smoothing() {
        // (previous, sum, gain, expected)
        let cases: &[(f64, u64, f32, f64)] = &[
            (0.0, 1_000_000, 0.5, 500_000.0),
            (500_000.0, 1_000_000, 0.5, 750_000.0),
            (750_000.0, 0, 0.5, 375_000.0),
            (1000.0, 0, 0.0, 1000.0), // gain 0: frozen
            (1000.0, 7, 1.0, 7.0),    // gain 1: newest window only
            (1000.0, 0, 0.25, 750.0), //
            (0.0, u64::MAX, 1.0, u64::MAX as f64),
            (100.0, 0, 7.0, 0.0),         // clamped to 1
            (100.0, 50, -1.0, 100.0),     // clamped to 0
            (100.0, 50, f32::NAN, 100.0), // NaN: no change
        ];
        for &(prev, sum, gain, want) in cases {
            assert_eq!(smooth(prev, sum, gain), want, "prev {prev} sum {sum} gain {gain}");
        }
        // Idle decay with the default gain: halves per window, approaching 0.
        let mut v = 8_000_000.0;
        for want in [4e6, 2e6, 1e6, 5e5] {
            v = smooth(v, 0, 0.5);
            assert_eq!(v, want);
        }
    }

    #[test]
    fn load_percent_uses_one_window() {
        // (load, running, expected percent)
        let cases: &[(Load, u32, f64)] = &[
            // Smoothed: 5 s of connection time per 10 s window, one process: 50 %.
            (load(5e6, 0, 0.0), 1, 50.0),
            (load(5e6, 0, 0.0), 2, 25.0),
            // Three processes: real division, not integer.
            (load(5e6, 0, 0.0), 3, 100.0 * 5.0 / 30.0),
            // The unsmoothed sum is ignored once a smoothed value exists.
            (load(5e6, 99_000_000, 1.0), 1, 50.0),
            // Smoothed 0: the current sum over its own window.
            (load(0.0, 1_500_000, 3.0), 1, 50.0),
            (load(0.0, 1_500_000, 3.0), 2, 25.0),
            (load(0.0, 0, 3.0), 4, 0.0),
            // A zero window counts as 1 ms.
            (load(0.0, 1_000, 0.0), 1, 100.0),
            (load(1.0, 0, 0.0), 0, 0.0),
            // Overloaded (queueing): above 100 %.
            (load(3e7, 0, 0.0), 2, 150.0),
        ];
        for (l, running, want) in cases {
            let got = l.percent(*running);
            assert!((got - want).abs() < 1e-9, "{l:?} x{running}: {got} != {want}");
        }
    }

    #[test]
    fn thresholds() {
        use Decision::*;
        // (running, smoothed conn µs per 10 s, single, multi, expected)
        let cases: &[(u32, f64, u32, u32, Decision)] = &[
            // One process: singleThreshold 0 never kills, even when idle.
            (1, 0.0, 0, 50, Keep),
            (1, 1.0, 0, 50, Keep),
            (1, 0.0, 10, 50, KillNewest),
            (1, 999_999.0, 10, 50, KillNewest), // 9.99999 %
            (1, 1e6, 10, 50, Keep),             // exactly 10 %: keep
            (1, 9e6, 100, 0, KillNewest),       // 90 % < 100
            // Several: per-process load against multiThreshold.
            (2, 1e7, 0, 50, Keep),          // 50 % each: keep (legacy: ×2 → 100)
            (2, 9.99e6, 0, 50, KillNewest), // 49.95 %
            (3, 1.5e7, 0, 50, Keep),        // 50 %
            (3, 1.49e7, 0, 50, KillNewest),
            (3, 1.49e7, 0, 49, Keep), // 49.67 % ≥ 49
            (4, 0.0, 0, 1, KillNewest),
            (4, 0.0, 0, 0, Keep), // multi 0: never
            // Two processes 30 % busy each: legacy doubled this to 60 and kept both.
            (2, 6e6, 0, 50, KillNewest),
        ];
        for &(running, sm, single, multi, want) in cases {
            let mut i = input(running, load(sm, 0, 0.0));
            i.single_threshold = single;
            i.multi_threshold = multi;
            assert_eq!(
                decide(&i),
                want,
                "running {running} smoothed {sm} single {single} multi {multi}"
            );
        }
    }

    #[test]
    fn cancel_victims_floor_and_age() {
        use Decision::*;
        let idle = load(0.0, 0, 10.0);
        type Change = fn(&mut PolicyInput);
        // (description, change, expected)
        let cases: &[(&str, Change, Decision)] = &[
            ("idle, nothing special", |_| {}, KillNewest),
            (
                "scheduled start is cancelled first",
                |i| i.scheduled = 1,
                CancelScheduledStart,
            ),
            (
                "cancel even with a victim pending",
                |i| {
                    i.scheduled = 1;
                    i.stopping = 1
                },
                CancelScheduledStart,
            ),
            ("a victim pending: nothing more", |i| i.stopping = 1, Keep),
            (
                "floor reached",
                |i| {
                    i.total_running = 5;
                    i.min_processes = 5
                },
                Keep,
            ),
            (
                "floor below",
                |i| {
                    i.total_running = 6;
                    i.min_processes = 5
                },
                KillNewest,
            ),
            (
                "floor 0",
                |i| {
                    i.total_running = 2;
                    i.min_processes = 0
                },
                KillNewest,
            ),
            ("newest younger than the window", |i| i.newest_age = 9 * S, Keep),
            ("newest exactly one window old", |i| i.newest_age = 10 * S, KillNewest),
            (
                "no running process",
                |i| {
                    i.running = 0;
                    i.scheduled = 2
                },
                Keep,
            ),
            (
                "busy: scheduled start kept",
                |i| {
                    i.scheduled = 1;
                    i.load = load(2e7, 0, 0.0)
                },
                Keep,
            ),
        ];
        for (what, change, want) in cases {
            let mut i = input(2, idle);
            change(&mut i);
            assert_eq!(decide(&i), *want, "{what}");
        }
    }

    #[test]
    fn deaths_are_classified_by_cause_and_life() {
        use crate::sys::wait::ChildExit;
        use Death::*;
        let sig = |signal| ChildExit::Signaled {
            signal,
            core_dumped: false,
        };
        let mls = 30 * S;
        // (how, life, expected)
        let cases: &[(ChildExit, Option<Duration>, Death)] = &[
            (ChildExit::Exited(0), Some(S / 10), Clean),
            (ChildExit::Exited(0), None, Clean),
            // Killed from outside: never counted, however young.
            (sig(libc::SIGKILL), Some(Duration::ZERO), Killed),
            (sig(libc::SIGKILL), Some(S / 2), Killed),
            (sig(libc::SIGKILL), Some(1000 * S), Killed),
            (sig(libc::SIGTERM), Some(S), Killed),
            (sig(libc::SIGKILL), None, Killed),
            // Ended on its own within -min-server-life: start-up failure.
            (ChildExit::Exited(1), Some(S / 10), StartupFailure),
            (ChildExit::Exited(1), Some(29 * S), StartupFailure),
            (ChildExit::Exited(1), None, StartupFailure),
            (sig(libc::SIGSEGV), Some(S), StartupFailure),
            (sig(libc::SIGABRT), Some(S), StartupFailure),
            (sig(libc::SIGHUP), Some(S), StartupFailure),
            // After it: it had been serving.
            (ChildExit::Exited(1), Some(30 * S), LateFailure),
            (sig(libc::SIGSEGV), Some(31 * S), LateFailure),
        ];
        for &(how, life, want) in cases {
            let got = classify_death(how, life, mls);
            assert_eq!(got, want, "{how:?} after {life:?}");
            assert_eq!(got.counts(), want == StartupFailure);
        }
        // -min-server-life 0: every process is past start-up.
        assert_eq!(
            classify_death(ChildExit::Exited(1), Some(Duration::ZERO), Duration::ZERO),
            LateFailure
        );
    }

    #[test]
    fn startup_backoff_doubles_to_the_cap() {
        let rounds = |rd: u64| -> Vec<u64> {
            (0..9)
                .map(|r| startup_backoff(Duration::from_secs(rd), r).as_secs())
                .collect()
        };
        assert_eq!(rounds(1), [2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(rounds(0), [2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(rounds(5), [10, 20, 40, 60, 60, 60, 60, 60, 60]);
        // A restart delay above the cap is kept: the back-off never restarts sooner.
        assert_eq!(rounds(100), [100; 9]);
        // Far below legacy's 600 s, and no overflow for huge round counts.
        assert_eq!(startup_backoff(S, u32::MAX), MAX_STARTUP_BACKOFF);
        assert_eq!(
            startup_backoff(Duration::from_secs(u64::MAX / 2), 3),
            Duration::from_secs(u64::MAX / 2)
        );
    }
}
