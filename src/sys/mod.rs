//! Small safe wrappers around the OS calls the process manager ([`crate::pm`]) needs that
//! Rust cannot express without `unsafe`: child set-up between fork and exec, signal
//! dispositions, close-on-exec sweeps and `waitpid` with the raw status — and the
//! shared memory and futex calls connection reuse needs.
//!
//! Every `unsafe` block here carries a `// SAFETY:` comment; nothing here knows about
//! httpd.

pub mod account;
pub mod caps;
pub mod child;
pub mod fd;
#[cfg(test)]
pub mod fork;
pub mod pidfd;
pub mod scm;
pub mod shm;
pub mod signals;
pub mod sockq;
pub mod wait;

/// The monotonic clock in ms (the same clock in every process of the
/// machine, unlike `Instant`, which cannot cross a process boundary).
pub fn mono_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| (t.tv_sec() as u64).saturating_mul(1000) + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}

/// Gives up the calling process's controlling terminal, if it has one, without
/// leaving its session (`TIOCNOTTY` by a process that does not lead its session
/// detaches that process alone). Returns whether there was one. Processes forked
/// afterwards have none: they cannot open `/dev/tty`, read the terminal or push
/// input into it (`TIOCSTI`).
pub fn give_up_controlling_terminal() -> bool {
    use std::os::fd::{AsRawFd, OwnedFd};
    let Ok(tty) = nix::fcntl::open(
        "/dev/tty",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) else {
        return false; // ENXIO: no controlling terminal
    };
    // SAFETY: `open` returned this descriptor to us alone.
    let tty = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(tty) };
    // SAFETY: TIOCNOTTY takes no argument and touches no memory of ours.
    unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCNOTTY) == 0 }
}
