//! Logging through httpd's error log with this module's tag. Messages are
//! always passed as data (`"%s"` in the shim), never as format strings.

use crate::ffi;
use std::ffi::CString;

/// httpd log levels (APLOG_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Emerg,
    Alert,
    Crit,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
}

impl Level {
    pub(crate) fn raw(self) -> i32 {
        (match self {
            Level::Emerg => ffi::APLOG_EMERG,
            Level::Alert => ffi::APLOG_ALERT,
            Level::Crit => ffi::APLOG_CRIT,
            Level::Error => ffi::APLOG_ERR,
            Level::Warn => ffi::APLOG_WARNING,
            Level::Notice => ffi::APLOG_NOTICE,
            Level::Info => ffi::APLOG_INFO,
            Level::Debug => ffi::APLOG_DEBUG,
        }) as i32
    }
}

pub(crate) fn message(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).unwrap_or_default()
}

/// Logs to the server's error log. `errno` (0 for none) makes httpd prefix
/// the line with `(<errno>)<strerror>: `.
///
/// # Safety
/// `s` must be NULL or a valid server_rec.
pub unsafe fn server_raw(s: *const ffi::server_rec, level: Level, errno: i32, msg: &str) {
    let m = message(msg);
    // SAFETY: the shim accepts NULL (httpd logs to the main log then) or a
    // valid server_rec; the message is a valid C string.
    unsafe { ffi::fcgi_shim_log_server(s, level.raw(), errno, m.as_ptr()) }
}

/// Logs to the main server's error log (`ap_server_conf`), usable where no
/// request or server is at hand.
pub fn main_server(level: Level, errno: i32, msg: &str) {
    // SAFETY: ap_server_conf is NULL before the first config pass (httpd
    // then writes to stderr) or points at the main server.
    unsafe { server_raw(ffi::ap_server_conf, level, errno, msg) }
}
