//! Test support: run a closure in a forked child process.

use nix::unistd::{ForkResult, Pid};

/// Forks; the child runs `f` and exits with its return value (101 if it panics) without
/// running exit handlers or unwinding into the test harness.
///
/// Test-only: the test process is multi-threaded and only the calling thread survives in
/// the child. glibc keeps `malloc` usable after fork; the caller must not use anything
/// in the child that other threads may hold locked (stdout capture, environment writes).
/// The process-manager test satisfies this: its child only opens files, spawns processes
/// with a cleared environment and talks over sockets.
pub fn fork_run(f: impl FnOnce() -> i32) -> nix::Result<Pid> {
    // SAFETY: see the function documentation: the child runs only `f`, which the caller
    // keeps free of locks other threads could hold, and then `_exit`s.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: _exit is async-signal-safe and never returns; skipping exit
            // handlers is the point (they belong to the test harness).
            unsafe { libc::_exit(code) }
        }
    }
}
