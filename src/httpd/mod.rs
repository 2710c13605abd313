//! Safe wrappers around the httpd and APR objects this module touches.
//!
//! This is the only layer (with `ffi` and the `entry` trampolines) that
//! dereferences raw pointers. Each wrapper borrows an object whose lifetime
//! httpd guarantees for the duration of the hook call that handed it to us;
//! the wrappers never outlive that call.
//!
//! The borrow checker holds them to it: a [`Request<'r>`](Request) hands out
//! its [`Pool<'r>`](Pool) and [`Brigade<'r>`](Brigade) with the request's
//! lifetime, values stored in a pool are borrowed for the pool's, pools are
//! neither `Send` nor `Sync`, and a brigade refers to borrowed response bytes
//! only within one call ([`Request::pass_transient`]). Only the FFI entry
//! points (`unsafe` `from_raw`, with the contract stated) choose a lifetime.
//! Each of these is checked by a test that must not compile:
//!
//! A value allocated in a request's pool cannot outlive the request:
//! ```compile_fail
//! use mod_fastcgi::httpd::Request;
//! fn keep<'r>(r: &Request<'r>) -> &'static u32 {
//!     r.pool().alloc_owned(7u32)
//! }
//! # fn main() {}
//! ```
//! nor can the pool itself:
//! ```compile_fail
//! use mod_fastcgi::httpd::{Pool, Request};
//! fn keep<'r>(r: &Request<'r>) -> Pool<'static> {
//!     r.pool()
//! }
//! # fn main() {}
//! ```
//! A pool cannot be handed to another thread:
//! ```compile_fail,E0277
//! use mod_fastcgi::httpd::Pool;
//! fn share(p: Pool<'static>) {
//!     std::thread::spawn(move || {
//!         let _ = p.strdup(b"x");
//!     });
//! }
//! # fn main() {}
//! ```
//! A brigade cannot outlive its request:
//! ```compile_fail
//! use mod_fastcgi::httpd::{Brigade, Request};
//! fn keep<'r>(r: &Request<'r>) -> Brigade<'static> {
//!     r.new_brigade()
//! }
//! # fn main() {}
//! ```
//! and response bytes reach a brigade only for the length of one pass (no
//! method keeps a borrowed slice in it):
//! ```compile_fail,E0599
//! use mod_fastcgi::httpd::Brigade;
//! fn hold(b: &mut Brigade<'_>, data: &[u8]) {
//!     b.push_transient(data);
//! }
//! # fn main() {}
//! ```

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
pub use pool::{ConfigPool, Pool};
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
