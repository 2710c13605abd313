//! Server-wide facts from httpd (ServerRoot, User/Group, runtime dir) and
//! the directive-time `cmd_parms`.

use super::{opt_cstr, Pool};
use crate::ffi;
use std::ffi::{CStr, OsStr};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr::NonNull;

/// httpd's ServerRoot.
pub fn server_root() -> PathBuf {
    // SAFETY: ap_server_root is set by httpd before any configuration is
    // read and is a NUL-terminated string for the process lifetime.
    let root = unsafe { opt_cstr(ffi::ap_server_root) }.unwrap_or(b"/");
    PathBuf::from(OsStr::from_bytes(root))
}

/// A duplicate (close-on-exec) of the main server's error log descriptor as
/// opened for the current configuration pass (the file, or the pipe to an
/// `ErrorLog "|…"` logger). `None` before configuration and with
/// `ErrorLog syslog` (no descriptor).
pub fn main_error_log() -> Option<OwnedFd> {
    // SAFETY: ap_server_conf is NULL before configuration or the main server.
    let s = unsafe { ffi::ap_server_conf.as_ref() }?;
    if s.error_log.is_null() {
        return None;
    }
    let mut fd: ffi::apr_os_file_t = -1;
    // SAFETY: error_log is the open apr_file_t httpd opened for this pass;
    // apr_os_file_get only reads its descriptor into `fd`.
    let rv = unsafe { ffi::apr_os_file_get(&mut fd, s.error_log) };
    if rv != 0 || fd < 0 {
        return None;
    }
    // SAFETY: the descriptor stays open for this call at least (it belongs
    // to the configuration pool, alive while httpd runs our hooks); it is
    // only duplicated here.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    b.try_clone_to_owned().ok()
}

/// The `User`/`Group` httpd's children run as (mod_unixd), as configured so
/// far in the current pass.
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub user_name: String,
}

pub fn run_as() -> RunAs {
    // SAFETY: ap_unixd_config is a plain global filled in by mod_unixd
    // while the configuration is read (single-threaded at that time) and
    // only read afterwards.
    unsafe {
        let c = &*std::ptr::addr_of!(ffi::ap_unixd_config);
        RunAs {
            uid: c.user_id,
            gid: c.group_id,
            user_name: opt_cstr(c.user_name)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        }
    }
}

/// `ap_runtime_dir_relative(pool, name)`: `name` inside httpd's
/// DefaultRuntimeDir (Debian: /var/run/apache2).
pub fn runtime_dir_relative(pool: Pool, name: &CStr) -> PathBuf {
    // SAFETY: valid pool and C string; the result lives in the pool and is
    // copied out immediately.
    let p = unsafe { ffi::ap_runtime_dir_relative(pool.as_ptr(), name.as_ptr()) };
    // SAFETY: NULL or a pool string.
    let b = unsafe { opt_cstr(p) }.unwrap_or(b"");
    PathBuf::from(OsStr::from_bytes(b))
}

/// Adds `component` to the Server header / SERVER_SOFTWARE.
pub fn add_version_component(pconf: Pool, component: &CStr) {
    // SAFETY: valid pool; httpd copies the string.
    unsafe { ffi::ap_add_version_component(pconf.as_ptr(), component.as_ptr()) }
}

/// Calls `f` with this module's per-server config of every server (main
/// server first, then the virtual hosts).
///
/// # Safety
/// `s` must be httpd's main server_rec, passed to post_config.
pub unsafe fn for_each_server_config(s: *mut ffi::server_rec, mut f: impl FnMut(*mut std::ffi::c_void)) {
    let mut cur = s;
    while !cur.is_null() {
        // SAFETY: httpd's server list is a NULL-terminated linked list of
        // valid records during post_config.
        unsafe {
            f(ffi::fcgi_shim_get_server_config(cur));
            cur = (*cur).next;
        }
    }
}

/// A directive invocation.
pub struct CmdParms {
    raw: NonNull<ffi::cmd_parms>,
}

impl CmdParms {
    /// # Safety
    /// `cmd` must be the valid cmd_parms httpd passed to the directive
    /// handler, used only during that call.
    pub unsafe fn from_raw(cmd: *mut ffi::cmd_parms) -> Option<CmdParms> {
        NonNull::new(cmd).map(|raw| CmdParms { raw })
    }

    fn c(&self) -> &ffi::cmd_parms {
        // SAFETY: valid for the directive call (constructor contract).
        unsafe { self.raw.as_ref() }
    }

    /// The directive id the C table stored in `cmd->info`.
    pub fn info(&self) -> usize {
        self.c().info as usize
    }

    /// The directive name as declared (the alias actually used).
    pub fn name(&self) -> String {
        // SAFETY: cmd->cmd is the command_rec being processed; its name is
        // a static C string.
        let n = unsafe { self.c().cmd.as_ref().and_then(|c| opt_cstr(c.name)) };
        String::from_utf8_lossy(n.unwrap_or(b"?")).into_owned()
    }

    pub fn pool(&self) -> Pool<'static> {
        // SAFETY: cmd->pool is pconf, valid for the whole pass; the
        // configuration state allocated in it is reached only through this
        // pass's server configs (see `entry`), and the pass runs on the
        // parent's one thread.
        unsafe { Pool::from_raw(self.c().pool) }.expect("cmd->pool")
    }

    pub fn server(&self) -> *mut ffi::server_rec {
        self.c().server
    }

    /// httpd's context check (e.g. `GLOBAL_ONLY`); `Err` carries httpd's
    /// own message.
    pub fn check_context(&self, forbidden: u32) -> Result<(), String> {
        // SAFETY: valid cmd_parms; the returned message is a static or pool
        // string.
        let msg = unsafe { ffi::ap_check_cmd_context(self.raw.as_ptr(), forbidden) };
        // SAFETY: NULL or a NUL-terminated string.
        match unsafe { opt_cstr(msg) } {
            None => Ok(()),
            Some(m) => Err(String::from_utf8_lossy(m).into_owned()),
        }
    }

    /// Whether the directive is being read from an .htaccess file (httpd's
    /// own test, as `NOT_IN_HTACCESS` makes it).
    pub fn in_htaccess(&self) -> bool {
        self.check_context(ffi::NOT_IN_HTACCESS).is_err()
    }

    /// The name of the file the directive is read from (`cmd->config_file`).
    pub fn config_file_name(&self) -> Option<String> {
        // SAFETY: cmd->config_file is NULL or the ap_configfile_t being
        // read, whose name is a NUL-terminated string, both valid for the
        // directive call.
        let name = unsafe { self.c().config_file.as_ref().and_then(|f| opt_cstr(f.name)) };
        name.map(|n| String::from_utf8_lossy(n).into_owned())
    }

    /// Copies an error message into the pool, for returning to httpd.
    pub fn error(&self, msg: &str) -> *const std::os::raw::c_char {
        self.pool().strdup(msg.as_bytes())
    }
}
