//! Safe wrappers around the httpd and APR objects this module touches.
//!
//! This is the only layer (with `ffi` and the `entry` trampolines) that
//! dereferences raw pointers. Each wrapper borrows an object whose lifetime
//! httpd guarantees for the duration of the hook call that handed it to us;
//! the wrappers never outlive that call.

pub mod brigade;
pub mod log;
pub mod pool;
pub mod process;
pub mod request;
pub mod scoreboard;
pub mod server;
pub mod table;

pub use brigade::{Brigade, BucketData};
pub use log::Level;
pub use pool::Pool;
pub use request::Request;
pub use server::CmdParms;
pub use table::Table;

use std::ffi::CStr;

/// Converts a possibly-NULL C string pointer into bytes.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that stays valid
/// for `'a`.
pub(crate) unsafe fn opt_cstr<'a>(p: *const std::os::raw::c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL and NUL-terminated per the function contract.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}
