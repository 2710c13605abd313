//! Giving up root for good while keeping the one capability a process
//! manager of wrapped applications needs: `CAP_KILL`, to signal
//! applications a setuid wrapper (suexec) started as other users
//! (issue 12; legacy mod_fastcgi, and this module before, kept a saved uid
//! of 0 for that, so a flaw in the PM's message decoding could have
//! regained root with one `seteuid(0)`).

use nix::unistd::{getresuid, initgroups, setgid, setresuid, Gid, Uid};
use std::ffi::CStr;
use std::io;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// `CAP_KILL` (linux/capability.h).
const CAP_KILL: u32 = 5;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `capset`: this thread's effective and permitted sets become `caps`
/// (a bit mask of capability numbers below 32), nothing inheritable.
fn set_caps(caps: u32) -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: caps,
            permitted: caps,
            inheritable: 0,
        },
        CapData::default(),
    ];
    // SAFETY: version 3 of the interface takes a header and an array of two
    // data structs, both repr(C) and live on our stack for the call; the
    // kernel only reads the data (and may write the header's version).
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run as root: becomes `uid`/`gid` with `user`'s supplementary groups —
/// real, effective and saved ids, so root cannot be taken back — keeping
/// only `CAP_KILL` (effective and permitted; not inheritable, so nothing
/// the process executes gets it). The bounding set is left alone: a
/// setuid-root wrapper run later must still get its privileges.
pub fn become_user_keeping_kill(uid: u32, gid: u32, user: &CStr) -> io::Result<()> {
    nix::sys::prctl::set_keepcaps(true)?;
    setgid(Gid::from_raw(gid))?;
    initgroups(user, Gid::from_raw(gid))?;
    let uid = Uid::from_raw(uid);
    setresuid(uid, uid, uid)?;
    set_caps(1 << CAP_KILL)?;
    nix::sys::prctl::set_keepcaps(false)?;
    let ids = getresuid()?;
    if ids.real != uid || ids.effective != uid || ids.saved != uid {
        return Err(io::Error::other("the uids did not all change"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `CapPrm`/`CapEff` and the `Uid` line of `/proc/self/status`.
    fn status() -> (u64, u64, String) {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let hex = |k: &str| {
            let l = s.lines().find(|l| l.starts_with(k)).unwrap();
            u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        let uid = s.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
        (hex("CapPrm:"), hex("CapEff:"), uid)
    }

    /// In a forked child (the test process keeps root): no uid 0 left,
    /// only CAP_KILL, and a process of another user can still be signalled.
    #[test]
    fn keeps_only_cap_kill() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root");
            return;
        }
        use std::os::unix::process::CommandExt;
        let mut victim = std::process::Command::new("sleep")
            .arg("30")
            .uid(65534)
            .gid(65534)
            .spawn()
            .unwrap();
        let vpid = victim.id() as i32;
        let child = crate::sys::fork::fork_run(move || {
            if become_user_keeping_kill(33, 33, c"www-data").is_err() {
                return 2;
            }
            let (prm, eff, uid) = status();
            if prm != 1 << CAP_KILL || eff != 1 << CAP_KILL || uid.split_whitespace().any(|f| f == "0") {
                return 3;
            }
            if nix::unistd::seteuid(Uid::from_raw(0)).is_ok() {
                return 4;
            }
            match nix::sys::signal::kill(nix::unistd::Pid::from_raw(vpid), nix::sys::signal::Signal::SIGTERM) {
                Ok(()) => 0,
                Err(_) => 5,
            }
        })
        .unwrap();
        let st = nix::sys::wait::waitpid(child, None).unwrap();
        assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(victim.wait().unwrap().signal(), Some(libc::SIGTERM));
    }
}
