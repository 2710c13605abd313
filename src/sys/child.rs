//! Spawning an application process (PM-25).
//!
//! [`spawn`] runs a [`Command`] the caller has prepared (program = application path, so
//! argv = `[path]`; `env_clear` + `-initial-env`; `current_dir`; stdin/stdout/stderr) and
//! adds, between fork and exec:
//! - an empty signal mask (the PM blocks the signals it reads from its signalfd, and std's
//!   fork/exec path does not reset the mask: verified by the PM's end-to-end test);
//! - every signal disposition reset to default, then SIGPIPE ignored;
//! - every descriptor ≥ 3 marked close-on-exec (std's own exec-error pipe is already
//!   close-on-exec, so its error reporting keeps working);
//! - `nice(priority)` when non-zero (failure fails the spawn, as legacy);
//! - `PR_SET_PDEATHSIG(SIGTERM)`, so applications die with the PM, and a check that the
//!   PM did not already die before that took effect.

use super::fd::set_cloexec_from_in_child;
use super::signals::reset_dispositions;
use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Extra set-up for the child.
#[derive(Debug, Clone, Copy)]
pub struct ChildSetup {
    /// `nice()` increment; 0 = not called.
    pub nice: i32,
    /// pid of the spawning process (the PM), for the parent-death check.
    pub parent_pid: i32,
}

fn setup_in_child(s: ChildSetup) -> io::Result<()> {
    SigSet::empty().thread_set_mask().map_err(io::Error::from)?;
    reset_dispositions(true);
    set_cloexec_from_in_child(3);
    if s.nice != 0 {
        // nice() may legitimately return -1, so errno is what tells failure apart.
        Errno::clear();
        // SAFETY: nice() only changes this process's scheduling priority.
        let r = unsafe { libc::nice(s.nice) };
        if r == -1 && Errno::last_raw() != 0 {
            return Err(io::Error::from_raw_os_error(Errno::last_raw()));
        }
    }
    // A saved uid other than the effective one is never passed on: the
    // application (or the wrapper) runs with real, effective and saved uid
    // all the server's User. (The PM of a wrapper configuration no longer
    // keeps a saved root uid — only CAP_KILL, which is not inherited across
    // exec, `sys::caps` — so this is a safeguard.)
    if let Ok(ids) = nix::unistd::getresuid() {
        if ids.saved != ids.effective {
            nix::unistd::setresuid(ids.effective, ids.effective, ids.effective).map_err(io::Error::from)?;
        }
    }
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from)?;
    if nix::unistd::getppid().as_raw() != s.parent_pid {
        // The PM died before PDEATHSIG was armed: nobody would ever stop this process.
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Spawns `cmd` with the [`ChildSetup`] applied in the child just before exec. Errors
/// from fork, from std's own set-up (dup2, chdir), from this set-up and from exec are all
/// returned here (std reports them back over a close-on-exec pipe).
pub fn spawn(cmd: &mut Command, setup: ChildSetup) -> io::Result<Child> {
    // SAFETY: the closure runs in the forked child before exec. It only makes
    // async-signal-safe calls (sigprocmask, signal, close_range, nice, prctl, getppid,
    // errno access),
    // allocates nothing (io::Error::from_raw_os_error does not allocate), takes no locks
    // and touches no state shared with other threads.
    unsafe {
        cmd.pre_exec(move || setup_in_child(setup));
    }
    cmd.spawn()
}
