//! Signal dispositions.
//!
//! The PM is forked from the httpd parent without exec, so it inherits httpd's signal
//! handlers and ignored signals (an inherited `SIGCHLD = SIG_IGN` would even make the
//! kernel reap the applications behind our back). It resets them all and then receives
//! the signals it cares about through a signalfd; its children get the same reset before
//! exec (exec itself only resets *caught* signals, not ignored ones).

/// Highest signal number + 1 on Linux (`_NSIG`).
const NSIG: libc::c_int = 65;

/// Sets every signal's disposition to `SIG_DFL`, then `SIGPIPE` to `SIG_IGN` when
/// `ignore_sigpipe` (PM-25: applications start with SIGPIPE ignored).
///
/// Async-signal-safe (only `signal()` calls), so it may run between fork and exec. It
/// changes process-wide state: only call it in a process that owns its signal handling
/// (the PM, or a child about to exec). Numbers the C library reserves for itself (32, 33
/// in glibc) are refused by it with `EINVAL` and stay untouched, as do SIGKILL/SIGSTOP.
pub fn reset_dispositions(ignore_sigpipe: bool) {
    for sig in 1..NSIG {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler code, so no Rust code can be run
        // asynchronously as a result; `signal()` has no memory effects on our side and
        // failures (reserved/invalid numbers) are harmless and ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    if ignore_sigpipe {
        // SAFETY: as above; SIG_IGN installs no handler either.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    }
}

/// Spawns a thread through `builder` with every signal blocked in it, and leaves the
/// caller's signal mask as it was.
///
/// httpd handles signals in its process's main thread (prefork's `just_die`, the
/// graceful-stop handlers): a thread of ours with signals unblocked could be chosen by
/// the kernel to run such a handler, destroying the child's pool under the main thread
/// or deadlocking on a lock the helper holds. A new thread inherits its creator's mask,
/// so the mask is set to "all blocked" just around the spawn. (The C library keeps the
/// two signals it reserves for itself unblocked; the kernel never blocks SIGKILL and
/// SIGSTOP.)
pub fn spawn_with_signals_blocked<F, T>(
    builder: std::thread::Builder,
    f: F,
) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: `sigset_t` is plain data; an all-zero value is a valid (empty) set, and
    // `sigfillset` only writes into the set we own.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `all` is a valid, exclusively borrowed set.
    unsafe { libc::sigfillset(&mut all) };
    // SAFETY: both pointers are to valid sets we own; `pthread_sigmask` changes only
    // this thread's mask, which is restored below before returning.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    let spawned = builder.spawn(f);
    // SAFETY: `old` holds the mask `pthread_sigmask` reported above; the old-set
    // pointer may be null.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    spawned
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `SigBlk` mask of the calling thread, from `/proc/thread-self/status`.
    fn blocked_mask() -> u64 {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
        u64::from_str_radix(line["SigBlk:".len()..].trim(), 16).unwrap()
    }

    #[test]
    fn spawned_thread_has_every_signal_blocked_and_caller_mask_is_kept() {
        let before = blocked_mask();
        let t = spawn_with_signals_blocked(std::thread::Builder::new().name("sigtest".into()), blocked_mask).unwrap();
        let child = t.join().unwrap();
        assert_eq!(blocked_mask(), before, "the caller's mask changed");
        for sig in 1..NSIG {
            // Never blockable (kernel), or reserved by glibc for itself.
            if [libc::SIGKILL, libc::SIGSTOP, 32, 33].contains(&sig) {
                continue;
            }
            assert!(
                child & (1u64 << (sig - 1)) != 0,
                "signal {sig} not blocked in the thread: {child:#x}"
            );
        }
    }
}
