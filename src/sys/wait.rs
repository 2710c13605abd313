//! Reaping children with `waitpid(-1, WNOHANG)`.
//!
//! nix's `waitpid` turns the raw status into an enum and fails (after the child was
//! already reaped, losing its pid) for signals it has no name for, e.g. real-time signals;
//! this wrapper decodes the raw status itself.

use std::io;

/// How a child ended (PM-29).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// `exit(status)`.
    Exited(i32),
    /// Killed by an uncaught signal.
    Signaled { signal: i32, core_dumped: bool },
}

impl ChildExit {
    /// Decodes a raw `wait()` status; `None` for stop/continue notifications.
    pub fn from_raw(status: i32) -> Option<ChildExit> {
        if libc::WIFEXITED(status) {
            Some(ChildExit::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(ChildExit::Signaled {
                signal: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            })
        } else {
            None
        }
    }
}

/// Reaps one terminated child of this process without blocking. `Ok(None)` when no child
/// has terminated (or there are no children at all).
pub fn reap_any() -> io::Result<Option<(i32, ChildExit)>> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid, writable c_int for the duration of the call; the
        // call has no other memory effects.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            match ChildExit::from_raw(status) {
                Some(how) => return Ok(Some((pid, how))),
                None => continue, // not requested (no WUNTRACED/WCONTINUED); be safe
            }
        }
        if pid == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(None),
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_raw_statuses() {
        assert_eq!(ChildExit::from_raw(0), Some(ChildExit::Exited(0)));
        assert_eq!(ChildExit::from_raw(3 << 8), Some(ChildExit::Exited(3)));
        assert_eq!(ChildExit::from_raw(255 << 8), Some(ChildExit::Exited(255)));
        assert_eq!(
            ChildExit::from_raw(9),
            Some(ChildExit::Signaled {
                signal: 9,
                core_dumped: false
            })
        );
        assert_eq!(
            ChildExit::from_raw(11 | 0x80),
            Some(ChildExit::Signaled {
                signal: 11,
                core_dumped: true
            })
        );
        assert_eq!(
            ChildExit::from_raw(40),
            Some(ChildExit::Signaled {
                signal: 40,
                core_dumped: false
            })
        );
        // stopped by SIGSTOP
        assert_eq!(ChildExit::from_raw((19 << 8) | 0x7f), None);
    }
}
