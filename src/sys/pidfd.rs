//! Process file descriptors (Linux ≥ 5.3): a signal sent through a pidfd
//! reaches exactly the process the descriptor was opened for, never a
//! later process that reused its pid.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `pidfd_open(pid, 0)`.
pub fn open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or
    // -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_send_signal(fd, sig, NULL, 0)`.
pub fn send_signal(fd: &OwnedFd, sig: nix::sys::signal::Signal) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, a null siginfo (allowed: the
    // kernel fills in a SI_USER one) and no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What `/proc/<pid>/stat` says about a process's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcIdent {
    pub pgrp: i32,
    pub session: i32,
    /// Start time in clock ticks since boot (field 22): with the pid, it
    /// names one process for the whole uptime.
    pub start: u64,
    pub zombie: bool,
}

/// Parses the text of `/proc/<pid>/stat`.
pub fn parse_stat(stat: &str) -> Option<ProcIdent> {
    // "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
    // majflt cmajflt utime stime cutime cstime priority nice threads
    // itrealvalue starttime ..."; comm may contain anything: split after
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcIdent {
        zombie: matches!(*f.first()?, "Z" | "X"),
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// Reads and parses `/proc/<pid>/stat`.
pub fn ident(pid: i32) -> Option<ProcIdent> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let s = "1234 (a) b) (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(s),
            Some(ProcIdent {
                pgrp: 1234,
                session: 1234,
                start: 987654,
                zombie: false
            })
        );
        assert!(
            parse_stat("1 (x) Z 0 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77")
                .unwrap()
                .zombie
        );
        assert_eq!(parse_stat("garbage"), None);
        let me = ident(std::process::id() as i32).unwrap();
        assert_eq!(me.pgrp, nix::unistd::getpgrp().as_raw());
        assert!(me.start > 0);
    }

    #[test]
    fn pidfd_signals_the_process_it_names() {
        let mut child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        let fd = open(child.id() as i32).unwrap();
        send_signal(&fd, nix::sys::signal::Signal::SIGKILL).unwrap();
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(9));
        // Reaped: the descriptor still names it, and signals fail (ESRCH).
        assert_eq!(
            send_signal(&fd, nix::sys::signal::Signal::SIGKILL)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ESRCH)
        );
    }
}
