//! Process-level httpd facilities the process manager glue needs: the
//! server's life-cycle state, data retained across configuration passes,
//! "other child" supervision, forking from the (single-threaded) parent,
//! privilege drop, the process title, and httpd-formatted log lines for a
//! process that no longer shares httpd's logging objects.

use super::Pool;
use crate::ffi;
use std::ffi::{c_void, CStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// httpd's main life-cycle state (`ap_state_query(AP_SQ_MAIN_STATE)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MainState {
    /// The first, trial configuration pass at start-up (and `-t`).
    PreConfig,
    /// A configuration pass of a real generation.
    Config,
    /// The previous generation's configuration is being destroyed (restart).
    DestroyConfig,
    Running,
    Exiting,
    Other,
}

pub fn main_state() -> MainState {
    // SAFETY: a pure query of httpd's global state.
    match unsafe { ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as i32) } as u32 {
        ffi::AP_SQ_MS_CREATE_PRE_CONFIG => MainState::PreConfig,
        ffi::AP_SQ_MS_CREATE_CONFIG => MainState::Config,
        ffi::AP_SQ_MS_DESTROY_CONFIG => MainState::DestroyConfig,
        ffi::AP_SQ_MS_RUN_MPM => MainState::Running,
        ffi::AP_SQ_MS_EXITING => MainState::Exiting,
        _ => MainState::Other,
    }
}

/// Whether the MPM runs several threads per child (worker, event), not one
/// (prefork): `ap_mpm_query(AP_MPMQ_IS_THREADED)`, asked once.
pub fn mpm_is_threaded() -> bool {
    static THREADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *THREADED.get_or_init(|| {
        let mut result: std::os::raw::c_int = 0;
        // SAFETY: the MPM writes one int through the pointer, which points
        // to `result` on our stack.
        let rv = unsafe { ffi::ap_mpm_query(ffi::AP_MPMQ_IS_THREADED as i32, &mut result) };
        rv == 0 && result != ffi::AP_MPMQ_NOT_SUPPORTED as i32
    })
}

/// Whether the generation now being configured follows a hard restart
/// (SIGHUP, `apachectl restart`) rather than a graceful one. (The MPMs
/// record `was_graceful` when they restart; it is 0 at first start too,
/// which callers tell apart by having nothing running yet.)
pub fn restart_was_hard() -> bool {
    // SAFETY: the unixd retained data exists for the Unix MPMs; a NULL
    // result is handled.
    unsafe { ffi::ap_unixd_mpm_get_retained_data().as_ref() }
        .map(|d| d.was_graceful == 0)
        .unwrap_or(true)
}

/// The process manager's identity, kept across configuration passes (and
/// DSO reloads) in httpd's retained data. Plain integers only: nothing in
/// it points into this DSO.
#[repr(C)]
pub struct RetainedPm {
    pub pm_pid: AtomicI32,
    /// The parent's end of the control socket.
    pub ctl_fd: AtomicI32,
    /// Protocol version of the running PM (0 = none).
    pub version: AtomicU32,
    /// The httpd side of the PM's request datagram socket, inherited by
    /// every httpd child (request handlers write to it).
    pub req_fd: AtomicI32,
}

impl RetainedPm {
    /// Writes all of `bytes` to the control socket; with `pass`, a
    /// duplicate of that descriptor travels with the first bytes
    /// (`SCM_RIGHTS`).
    pub fn write_ctl(&self, bytes: &[u8], pass: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let fd = self.ctl_fd.load(Ordering::SeqCst);
        if fd <= 2 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // SAFETY: a positive ctl_fd is the open control socket this record
        // owns; it is only closed through `close_ctl`.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut rest = bytes;
        if let Some(pass) = pass.filter(|_| !rest.is_empty()) {
            let n = crate::sys::scm::send_with_fd(borrowed, rest, pass)?;
            rest = &rest[n..];
        }
        while !rest.is_empty() {
            match nix::unistd::write(borrowed, rest) {
                Ok(n) => rest = &rest[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Sends one datagram to the PM's request socket without blocking
    /// (request handlers, in httpd children).
    pub fn send_req(&self, datagram: &[u8]) -> io::Result<()> {
        let fd = self.req_fd.load(Ordering::SeqCst);
        if fd <= 2 {
            return Err(io::Error::from_raw_os_error(libc::ENOTCONN));
        }
        // SAFETY: a positive req_fd is the open request socket this record
        // owns; it is only closed through `close_req`.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        nix::sys::socket::send(borrowed.as_raw_fd(), datagram, nix::sys::socket::MsgFlags::MSG_DONTWAIT)
            .map(|_| ())
            .map_err(io::Error::from)
    }

    /// Takes ownership of a new request socket (closing any previous one).
    pub fn set_req(&self, fd: OwnedFd) {
        self.close_req();
        self.req_fd.store(fd.into_raw_fd(), Ordering::SeqCst);
    }

    /// Closes the request socket, if any.
    pub fn close_req(&self) {
        let fd = self.req_fd.swap(-1, Ordering::SeqCst);
        if fd > 2 {
            // SAFETY: the record owned this descriptor; detached above, so it
            // is closed exactly once.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }

    /// Takes ownership of a new control socket (closing any previous one).
    pub fn set_ctl(&self, fd: OwnedFd) {
        self.close_ctl();
        self.ctl_fd.store(fd.into_raw_fd(), Ordering::SeqCst);
    }

    /// Closes the control socket, if any.
    pub fn close_ctl(&self) {
        let fd = self.ctl_fd.swap(-1, Ordering::SeqCst);
        if fd > 2 {
            // SAFETY: the record owned this descriptor; it was just
            // detached from it, so it is closed exactly once.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}

/// The retained PM record (zeroed on first use).
pub fn retained_pm() -> &'static RetainedPm {
    // The key names the layout: change it whenever RetainedPm changes, so a
    // module upgrade + graceful restart never reads an older, shorter block.
    const KEY: &CStr = c"mod_fastcgi:pm/2";
    // SAFETY: httpd returns the same zero-initialised block of the size we
    // ask for under our key for the life of the process; all-zero bytes
    // are valid atomics; only the single-threaded parent writes it.
    unsafe {
        let mut p = ffi::ap_retained_data_get(KEY.as_ptr());
        if p.is_null() {
            p = ffi::ap_retained_data_create(KEY.as_ptr(), std::mem::size_of::<RetainedPm>());
        }
        &*p.cast::<RetainedPm>()
    }
}

/// The PM's start time (`/proc/<pid>/stat` field 22, 0 = unknown), kept
/// next to [`RetainedPm`] (in its own block, so that block's layout stays
/// as older module versions left it): with the pid, it tells the PM's
/// process group from a later one that reused the number.
pub fn retained_pm_start() -> &'static AtomicU64 {
    const KEY: &CStr = c"mod_fastcgi:pm-start/1";
    // SAFETY: as for retained_pm: a zeroed, process-lifetime block of the
    // size asked for, holding one atomic, written only by the parent.
    unsafe {
        let mut p = ffi::ap_retained_data_get(KEY.as_ptr());
        if p.is_null() {
            p = ffi::ap_retained_data_create(KEY.as_ptr(), std::mem::size_of::<AtomicU64>());
        }
        &*p.cast::<AtomicU64>()
    }
}

/// The connection-reuse table shared by the parent and every child: mapped
/// once per server life time by the parent (`create`), found again after a
/// restart or DSO reload through its address in httpd's retained data.
pub fn reuse_table(create: bool) -> Option<&'static crate::gateway::reuse::Shared> {
    // The key names the table's layout (see retained_pm).
    retained_shared(c"mod_fastcgi:reuse/5", create)
}

/// The spool accounting table (`FastCgiSpoolTotal`), like [`reuse_table`].
pub fn spool_table(create: bool) -> Option<&'static crate::gateway::spool::Shared> {
    retained_shared(c"mod_fastcgi:spool/1", create)
}

/// The mod_status counters ([`crate::gateway::stats`]), like [`reuse_table`].
pub fn stats_table(create: bool) -> Option<&'static crate::gateway::stats::Shared> {
    retained_shared(c"mod_fastcgi:stats/2", create)
}

/// A `T` shared by the parent and every child, mapped once per server life
/// time and found again through its address kept in httpd's retained data
/// under `key` (which must name `T`'s layout).
fn retained_shared<T: crate::sys::shm::ZeroShared>(key: &CStr, create: bool) -> Option<&'static T> {
    use std::sync::atomic::AtomicUsize;
    // SAFETY: as for retained_pm: a zeroed, process-lifetime block holding
    // one address, written only by the single-threaded parent.
    let slot = unsafe {
        let mut p = ffi::ap_retained_data_get(key.as_ptr());
        if p.is_null() {
            if !create {
                return None;
            }
            p = ffi::ap_retained_data_create(key.as_ptr(), std::mem::size_of::<AtomicUsize>());
        }
        &*p.cast::<AtomicUsize>()
    };
    let addr = slot.load(Ordering::SeqCst);
    if addr != 0 {
        // SAFETY: a non-zero address was stored below from map_shared of
        // this very type (the key names it), in this process or the parent
        // it was forked from.
        return unsafe { crate::sys::shm::from_addr(addr) };
    }
    if !create {
        return None;
    }
    let table = crate::sys::shm::map_shared::<T>().ok()?;
    slot.store(table as *const T as usize, Ordering::SeqCst);
    Some(table)
}

/// Forks. In the child, `child` runs and the process exits with its
/// result without returning (no httpd pool cleanups, no atexit handlers).
/// Must only be called from httpd's parent while it is single-threaded
/// (post_config, other-child maintenance).
pub fn fork_child(child: impl FnOnce() -> i32) -> io::Result<i32> {
    // SAFETY: the httpd parent process is single-threaded when it runs
    // post_config and its maintenance callbacks, so the child may run
    // arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(child.as_raw()),
        Ok(nix::unistd::ForkResult::Child) => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(70);
            // SAFETY: leaving the forked child without running the
            // parent's exit handlers or pool cleanups.
            unsafe { libc::_exit(code) }
        }
        Err(e) => Err(e.into()),
    }
}

/// httpd's privilege drop for children (`ap_unixd_setup_child`: chroot,
/// setgid, initgroups, setuid to User/Group when started as root).
pub fn drop_privileges() -> bool {
    // SAFETY: plain call into httpd in a forked child.
    unsafe { ffi::ap_unixd_setup_child() == 0 }
}

/// Overwrites the program-name part of the process's argv[0] with `name`
/// (truncated to fit), so `ps` shows e.g. `/usr/sbin/fcgi-pm -k start`, as
/// the legacy module did; also sets the kernel's short name.
pub fn set_process_title(name: &str) {
    let _ = nix::sys::prctl::set_name(&std::ffi::CString::new(name).unwrap_or_default());
    // SAFETY: ap_server_conf->process->argv[0] points into the process's
    // original argument block, which is writable and outlives us; we only
    // write within the existing string's length.
    unsafe {
        let s = ffi::ap_server_conf;
        if s.is_null() || (*s).process.is_null() {
            return;
        }
        let argv = (*(*s).process).argv;
        if argv.is_null() || (*argv).is_null() {
            return;
        }
        let arg0 = (*argv).cast_mut();
        let len = libc::strlen(arg0);
        let bytes = std::slice::from_raw_parts_mut(arg0.cast::<u8>(), len);
        let start = bytes.iter().rposition(|&b| b == b'/').map(|i| i + 1).unwrap_or(0);
        let room = len - start;
        let n = name.len().min(room);
        bytes[start..start + n].copy_from_slice(&name.as_bytes()[..n]);
        for b in &mut bytes[start + n..] {
            *b = 0;
        }
    }
}

/// Closes every descriptor except `keep` (httpd's listeners and logs must
/// not leak into the process manager, legacy PM-06).
pub fn close_fds_except(keep: &[RawFd]) {
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => (3..1024).collect(),
    };
    for fd in fds {
        if !keep.contains(&fd) {
            // SAFETY: closing a descriptor number we do not otherwise use
            // (ReadDir's own fd may be closed after iteration; harmless).
            unsafe { libc::close(fd) };
        }
    }
}

/// `[<time>] [fastcgi:<level>] [pid <n>] <prefix><msg>` — the line httpd
/// itself would write, for processes that write to the error log directly.
pub fn format_log_line(level: &str, errno: i32, msg: &str) -> String {
    let mut buf = [0 as std::os::raw::c_char; 64];
    let mut len: i32 = buf.len() as i32;
    // SAFETY: `buf` is larger than the 32 bytes the USEC format needs.
    let time = unsafe {
        ffi::ap_recent_ctime_ex(
            buf.as_mut_ptr(),
            ffi::apr_time_now(),
            ffi::AP_CTIME_OPTION_USEC as i32,
            &mut len,
        );
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    };
    let prefix = if errno != 0 {
        format!(
            "({errno}){}: ",
            io::Error::from_raw_os_error(errno)
                .to_string()
                .split(" (os error")
                .next()
                .unwrap_or("")
        )
    } else {
        String::new()
    };
    format!(
        "[{time}] [fastcgi:{level}] [pid {}] {prefix}{msg}\n",
        std::process::id()
    )
}

/// Supervision of a child process through httpd's "other child" mechanism:
/// httpd calls `callback(reason, data, status)` when it reaps the child (or
/// on restarts/health checks). Registered for the lifetime of `pool`.
pub fn register_other_child<T: Sync>(
    pool: Pool,
    pid: i32,
    callback: unsafe extern "C" fn(i32, *mut c_void, i32),
    data: &'static T,
) {
    let data = (data as *const T).cast_mut().cast::<c_void>();
    // SAFETY: the apr_proc_t lives in `pool`, as does the registration
    // (APR unregisters it in a cleanup of the same pool).
    unsafe {
        let size = std::mem::size_of::<ffi::apr_proc_t>();
        let proc_ = ffi::apr_palloc(pool.as_ptr(), size).cast::<ffi::apr_proc_t>();
        std::ptr::write_bytes(proc_.cast::<u8>(), 0, size);
        (*proc_).pid = pid;
        ffi::apr_proc_other_child_register(proc_, Some(callback), data, std::ptr::null_mut(), pool.as_ptr());
    }
}

/// Registers `f` to run when `pool` is cleared or destroyed.
pub fn on_pool_cleanup(pool: Pool, f: fn()) {
    unsafe extern "C" fn run(data: *mut c_void) -> ffi::apr_status_t {
        // SAFETY: `data` is the `fn()` pointer stored below.
        let f: fn() = unsafe { std::mem::transmute::<*mut c_void, fn()>(data) };
        let _ = std::panic::catch_unwind(f);
        0
    }
    // SAFETY: valid pool; the data is a plain function pointer of this
    // DSO, which stays loaded until after pool cleanups of its generation.
    unsafe {
        ffi::apr_pool_cleanup_register(
            pool.as_ptr(),
            f as *const () as *mut c_void,
            Some(run),
            Some(ffi::apr_pool_cleanup_null),
        )
    }
}

/// Ends an "other child" registration made with `data` (required after a
/// DEATH notification).
pub fn unregister_other_child<T: Sync>(data: &'static T) {
    let data = (data as *const T).cast_mut().cast::<c_void>();
    // SAFETY: APR looks the registration up by its data pointer.
    unsafe { ffi::apr_proc_other_child_unregister(data) }
}

/// The main server's LogLevel (APLOG_* number).
pub fn main_log_level() -> u8 {
    // SAFETY: ap_server_conf is the main server once configuration is read.
    unsafe { ffi::ap_server_conf.as_ref() }
        .map(|s| s.log.level.clamp(0, 15) as u8)
        .unwrap_or(4)
}
