//! Who owns a row of the connection-reuse table ([`super::reuse::Shared`]):
//! one 64-bit word per row, so that a row is claimed, reclaimed and freed
//! with single compare-and-swaps (issue 12, "reclaiming a dead child's
//! counts races").
//!
//! The word names a process by its pid *and* its start time (field 22 of
//! `/proc/<pid>/stat`, clock ticks since boot, read once when the row is
//! claimed). A pid alone is not enough: once the owner died and its pid
//! went to another process, `kill(pid, 0)` says "exists" (or EPERM, for a
//! process of another user) for good, and the dead child's counts — a
//! `waiting` above zero turns reuse off for the application — were never
//! given back.
//!
//! | word | meaning |
//! |---|---|
//! | [`FREE`] (0) | nobody; claimable |
//! | [`RECLAIMING`] | a reclaimer (or the exiting owner) is giving the counts back; nobody may claim it yet |
//! | `start_low32 << 32 \| pid` | owned by that process |
//!
//! The start time is kept modulo 2^32 ticks (497 days at 100 Hz): a new
//! process would have to get the same pid *and* start a multiple of that
//! later to be mistaken for the owner. A start time of 0 means "not
//! known" (no `/proc`): then only `kill(pid, 0)` decides, as before.

use crate::sys::pidfd;
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// The row is free.
pub const FREE: u64 = 0;
/// The row's counts are being given back; not claimable until [`FREE`].
pub const RECLAIMING: u64 = u64::MAX;

/// The word naming process `pid` started at `start` (clock ticks).
pub fn word(pid: i32, start: u64) -> u64 {
    ((start as u32 as u64) << 32) | (pid as u32 as u64)
}

/// The pid in an owner word (meaningless for [`FREE`] and [`RECLAIMING`]).
pub fn pid_of(word: u64) -> i32 {
    word as u32 as i32
}

fn start_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// The owner word of the running process `pid` (its start time read now).
pub fn of_process(pid: i32) -> u64 {
    word(pid, pidfd::ident(pid).map_or(0, |p| p.start))
}

/// Whether the process an owner word names still runs. A zombie (dead,
/// not yet reaped by httpd), a pid now used by a later process, and a pid
/// that signals EPERM without a matching start time all count as dead.
pub fn running(word: u64) -> bool {
    if word == FREE || word == RECLAIMING {
        return false;
    }
    let pid = pid_of(word);
    if pid <= 0 {
        return false;
    }
    let signalable = match kill(Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::EPERM) => false,
        Err(_) => return false,
    };
    let want = start_of(word);
    match pidfd::ident(pid) {
        Some(p) => !p.zombie && (want == 0 || p.start as u32 == want),
        // No /proc entry to compare with: without a start time recorded a
        // process we may signal is taken for the owner (httpd's children
        // all run as one user); EPERM means another user's process.
        None => want == 0 && signalable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_round_trip() {
        let w = word(4_194_303, (1 << 40) + 12345);
        assert_eq!(pid_of(w), 4_194_303);
        assert_eq!(start_of(w), 12345);
        assert_ne!(word(1, 0), FREE);
        assert_ne!(word(i32::MAX, u64::MAX - 1), RECLAIMING);
    }

    #[test]
    fn running_needs_the_same_process() {
        let me = std::process::id() as i32;
        let w = of_process(me);
        assert!(running(w));
        assert!(start_of(w) != 0, "/proc gives a start time");
        // Our pid with another start time: a later process took the pid.
        assert!(!running(word(me, start_of(w) as u64 + 1)));
        assert!(!running(FREE));
        assert!(!running(RECLAIMING));
        // A process that exited and was reaped.
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id() as i32;
        let w = of_process(pid);
        c.wait().unwrap();
        assert!(!running(w));
    }

    #[test]
    fn zombie_is_not_running() {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id() as i32;
        let w = of_process(pid);
        // Exited but not reaped: kill(pid, 0) still succeeds.
        let gone = std::time::Instant::now();
        while pidfd::ident(pid).is_some_and(|p| !p.zombie) && gone.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(kill(Pid::from_raw(pid), None).is_ok());
        assert!(!running(w));
        c.wait().unwrap();
    }
}
