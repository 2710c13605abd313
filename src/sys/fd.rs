//! Descriptor hygiene (legacy bug 17: the PM inherited httpd's listening sockets and log
//! descriptors and handed descriptors ≥ 1024 on to applications).

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)` (Linux ≥ 5.11). Async-signal-safe.
fn close_range_cloexec(first: u32) -> bool {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets the close-on-exec flag of
    // descriptors; it closes nothing and touches no memory. Older kernels fail with
    // ENOSYS/EINVAL, which the caller handles.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    r == 0
}

/// Marks every open descriptor `>= first` close-on-exec, so that no exec'd child
/// inherits it. Uses `close_range`, or walks `/proc/self/fd` on older kernels.
pub fn set_cloexec_from(first: u32) -> io::Result<()> {
    if close_range_cloexec(first) {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd >= first as i32 {
            // Fails with EBADF for the directory stream's own (now closed) descriptor.
            let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
        }
    }
    Ok(())
}

/// The variant for a child between fork and exec: no allocation, no fallback (the PM
/// already swept inherited descriptors with [`set_cloexec_from`] at start-up and creates
/// all of its own with `O_CLOEXEC`, so this is belt and braces).
pub fn set_cloexec_from_in_child(first: u32) {
    let _ = close_range_cloexec(first);
}

/// Makes sure descriptors 0, 1 and 2 are open (on `/dev/null` if they were closed), so
/// that sockets the PM creates later can never land on them.
pub fn ensure_std_fds_open() -> io::Result<()> {
    for fd in 0..=2 {
        if fcntl(fd, FcntlArg::F_GETFD).is_err() {
            let f = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
            if f.as_raw_fd() == fd {
                // Deliberately leaked: it now *is* the standard descriptor.
                let _ = f.into_raw_fd();
            } else {
                nix::unistd::dup2(f.as_raw_fd(), fd)?;
            }
        }
    }
    Ok(())
}
