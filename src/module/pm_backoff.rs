//! Back-off for re-forking a process manager that keeps failing at start-up
//! (issue 12). httpd reaps a dead PM through its other-child mechanism and
//! [`super::supervisor::pm_died`] starts a new one; a PM that cannot start
//! (privileges it cannot drop, an unusable FastCgiIpcDir, ...) would
//! otherwise be re-forked on every reap, filling the error log.
//!
//! A PM that dies within [`START_GRACE`] of starting counts as a start-up
//! failure. After the first one the next PM starts at once (it may have
//! been killed by accident); after further ones in a row it is forked at
//! once too (httpd's main loop must not sleep), reaps the applications of
//! the one before, and then waits 1 s, 2 s, 4 s ... up to [`MAX_DELAY`]
//! before it does anything else — unless the parent writes to its control socket first (a new
//! configuration after a reload, or the shutdown request), which ends the
//! wait. A PM that ran longer resets the back-off. The parent logs one line
//! per back-off step, not one per reap.
//!
//! The state lives in this configuration generation's copy of the module
//! (httpd reloads the module on a restart): a reload starts afresh.

use std::os::fd::BorrowedFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A PM that ran at least this long (after its start delay) started fine.
pub const START_GRACE: Duration = Duration::from_secs(10);
/// The first delay after a start-up failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// What to do after a PM died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// How long the next PM waits before starting.
    pub delay: Duration,
    /// Whether this death starts a new back-off step (log it).
    pub log: bool,
    /// Start-up failures in a row (0: it had started fine).
    pub failures: u32,
}

/// The back-off policy: pure, driven by how long each PM ran.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
    last_delay: Option<Duration>,
}

impl Backoff {
    /// A PM died after running `ran` (not counting its own start delay).
    pub fn on_death(&mut self, ran: Duration) -> Decision {
        let delay = if ran >= START_GRACE {
            self.failures = 0;
            self.last_delay = None;
            Duration::ZERO
        } else {
            self.failures = self.failures.saturating_add(1);
            match self.failures {
                // One failure may be a PM killed by accident: start at once.
                1 => Duration::ZERO,
                n => (FIRST_DELAY * (1u32 << (n - 2).min(16))).min(MAX_DELAY),
            }
        };
        let log = self.failures <= 1 || self.last_delay != Some(delay);
        self.last_delay = Some(delay);
        Decision {
            delay,
            log,
            failures: self.failures,
        }
    }
}

struct State {
    policy: Backoff,
    /// When the current PM was forked, and the delay it was given.
    started: Option<(Instant, Duration)>,
    /// The delay for the next fork.
    next: Duration,
}

static STATE: Mutex<State> = Mutex::new(State {
    policy: Backoff {
        failures: 0,
        last_delay: None,
    },
    started: None,
    next: Duration::ZERO,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parent, when the PM was reaped: the decision for the next one.
pub fn pm_died() -> Decision {
    let mut s = state();
    let ran = s
        .started
        .map_or(START_GRACE, |(at, delay)| at.elapsed().saturating_sub(delay));
    let d = s.policy.on_death(ran);
    s.next = d.delay;
    d
}

/// Parent, just before forking a PM: the delay it is to wait (taken: a
/// later fork for another reason, e.g. a reload, starts at once).
pub fn take_start_delay() -> Duration {
    let mut s = state();
    let delay = std::mem::take(&mut s.next);
    s.started = Some((Instant::now(), delay));
    delay
}

/// New PM, first thing: waits `delay`, or until the parent writes to the
/// control socket `ctl`.
pub fn wait_before_start(delay: Duration, ctl: BorrowedFd<'_>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    if delay.is_zero() {
        return;
    }
    let ms = u16::try_from(delay.as_millis()).unwrap_or(u16::MAX);
    let _ = poll(&mut [PollFd::new(ctl, PollFlags::POLLIN)], PollTimeout::from(ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Duration = Duration::from_millis(50);

    #[test]
    fn start_up_failures_back_off_doubling_to_the_cap_with_one_line_per_step() {
        let mut b = Backoff::default();
        let mut delays = Vec::new();
        let mut logged = 0;
        for _ in 0..12 {
            let d = b.on_death(FAIL);
            delays.push(d.delay.as_secs());
            logged += u32::from(d.log);
        }
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]);
        // One line per step: 0, 1, 2, 4, 8, 16, 32, 60 — not one per reap.
        assert_eq!(logged, 8);
        assert_eq!(b.on_death(FAIL).failures, 13);
        // Many more failures: still capped, no overflow, no new line.
        for _ in 0..100 {
            let d = b.on_death(FAIL);
            assert_eq!(d.delay, MAX_DELAY);
            assert!(!d.log);
        }
    }

    #[test]
    fn a_pm_that_ran_resets_the_back_off() {
        let mut b = Backoff::default();
        // Died after running normally: restart at once, and say so.
        let d = b.on_death(START_GRACE + Duration::from_secs(1));
        assert_eq!((d.delay, d.log, d.failures), (Duration::ZERO, true, 0));
        b.on_death(FAIL);
        b.on_death(FAIL);
        b.on_death(FAIL);
        assert_eq!(b.on_death(FAIL).delay, Duration::from_secs(4));
        let d = b.on_death(START_GRACE);
        assert_eq!((d.delay, d.log, d.failures), (Duration::ZERO, true, 0));
        let d = b.on_death(FAIL);
        assert_eq!((d.delay, d.log, d.failures), (Duration::ZERO, true, 1));
        let d = b.on_death(FAIL);
        assert_eq!((d.delay, d.log, d.failures), (FIRST_DELAY, true, 2));
        // Every death of a PM that ran is logged (each is news).
        b.on_death(START_GRACE);
        assert!(b.on_death(START_GRACE).log);
    }
}
