//! Memory shared by httpd's parent and all of its children, and futex waits on it
//! (connection reuse: the children account for kept application connections
//! together, see [`crate::gateway::reuse`]).

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Types made only of atomics (and arrays of them), for which all-zero bytes are a
/// valid value and which may be shared between processes.
///
/// # Safety
/// The implementor must be `#[repr(C)]`, contain no pointers, and be valid when
/// zeroed.
pub unsafe trait ZeroShared: Sync + 'static {}

// SAFETY: the connection-reuse table is repr(C) and made of atomics and arrays
// of atomics only (no pointers); all-zero bytes are the empty table.
unsafe impl ZeroShared for crate::gateway::reuse::Shared {}
// SAFETY: the spool accounting table is repr(C), arrays of atomics only;
// all-zero bytes are "no body spooled".
unsafe impl ZeroShared for crate::gateway::spool::Shared {}
// SAFETY: the mod_status counters are repr(C), atomics and arrays of atomics
// only; all-zero bytes are "no application".
unsafe impl ZeroShared for crate::gateway::stats::Shared {}

/// Maps a zeroed `T` shared with every process forked afterwards. The mapping is
/// never unmapped (it lives as long as the process, and httpd keeps one per
/// server life time).
pub fn map_shared<T: ZeroShared>() -> io::Result<&'static T> {
    let len = std::mem::size_of::<T>().max(1);
    // SAFETY: an anonymous shared mapping has no file behind it; the kernel
    // returns page-aligned zeroed memory or MAP_FAILED, which is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping is large enough for T, page-aligned (more than any
    // atomic needs), zeroed (valid by ZeroShared) and never unmapped, so a
    // 'static shared reference is sound; T is Sync.
    Ok(unsafe { &*(p as *const T) })
}

/// Reinterprets an address stored by [`map_shared`]'s caller (e.g. in httpd's
/// retained data, which survives a DSO reload) as the mapping again.
///
/// # Safety
/// `addr` must be 0 or an address returned by `map_shared::<T>()` in this
/// process or an ancestor it was forked from.
pub unsafe fn from_addr<T: ZeroShared>(addr: usize) -> Option<&'static T> {
    // SAFETY: per the contract, a non-zero addr is a live mapping of T.
    unsafe { (addr as *const T).as_ref() }
}

/// Sleeps while `word` holds `expected`, at most `timeout` (spurious wake-ups
/// possible: callers re-check their condition). Works across processes on a
/// [`map_shared`] mapping.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT only reads the 4-byte word (a valid, aligned atomic)
    // and the timespec on our stack; it never writes memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes every waiter on `word` (in any process sharing it).
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE touches no memory; the address is only used as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// Whether process `pid` still exists (`kill(pid, 0)`; EPERM means it does).
pub fn process_exists(pid: i32) -> bool {
    pid > 0
        && match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
            Ok(()) => true,
            Err(e) => e != nix::errno::Errno::ESRCH,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[repr(C)]
    struct Words {
        a: AtomicU32,
        b: [AtomicU32; 3],
    }
    // SAFETY: atomics only, valid when zeroed.
    unsafe impl ZeroShared for Words {}

    #[test]
    fn shared_across_fork_and_futex() {
        let w: &Words = map_shared().unwrap();
        assert_eq!(w.a.load(Ordering::SeqCst), 0);
        assert_eq!(w.b[2].load(Ordering::SeqCst), 0);
        let pid = crate::sys::fork::fork_run(|| {
            w.b[1].store(7, Ordering::SeqCst);
            w.a.store(1, Ordering::SeqCst);
            futex_wake_all(&w.a);
            0
        })
        .unwrap();
        let start = std::time::Instant::now();
        while w.a.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(5) {
            futex_wait(&w.a, 0, Duration::from_millis(100));
        }
        let _ = nix::sys::wait::waitpid(pid, None);
        assert_eq!(w.b[1].load(Ordering::SeqCst), 7);
        assert!(process_exists(std::process::id() as i32));
        assert!(!process_exists(pid.as_raw()));
        // A wait on a word that differs returns at once.
        let t = std::time::Instant::now();
        futex_wait(&w.a, 0, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(1));
        // SAFETY: the address came from map_shared above.
        let again: &Words = unsafe { from_addr(w as *const Words as usize) }.unwrap();
        assert_eq!(again.b[1].load(Ordering::SeqCst), 7);
    }
}
