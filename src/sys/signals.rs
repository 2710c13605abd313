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
