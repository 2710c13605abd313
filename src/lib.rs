//! mod_fastcgi: a drop-in successor to Apache's legacy mod_fastcgi.
//!
//! Layers (see README "Design"):
//! - [`ffi`]: raw bindgen output, no logic;
//! - [`httpd`]: small safe wrappers around httpd/APR objects (the only place
//!   with `unsafe` besides `ffi` and the `entry` trampolines);
//! - pure Rust with `#![forbid(unsafe_code)]`: [`proto`] (FastCGI codec),
//!   [`cgi`] (response headers), [`config`] (directive parsing).
pub mod cgi;
pub mod config;
pub mod entry;
pub mod ffi;
pub mod gateway;
pub mod httpd;
pub mod module;
pub mod pm;
pub mod proto;
pub mod sys;

/// Appended to the Server header / SERVER_SOFTWARE (legacy RT-03 appended
/// `mod_fastcgi/mod_fastcgi-SNAP-0910052141`).
pub const VERSION_COMPONENT: &std::ffi::CStr = c"mod_fastcgi/2.4.7-rs";

/// Tests only: counts the heap allocations of one thread while it runs a
/// closure (issue 11: the request path's allocations are bounded by tests,
/// not by timing).
#[cfg(test)]
pub mod test_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<Option<usize>> = const { Cell::new(None) };
    }

    pub struct Counting;

    fn bump() {
        let _ = COUNT.try_with(|c| {
            if let Some(n) = c.get() {
                c.set(Some(n + 1));
            }
        });
    }

    // SAFETY: every call is forwarded unchanged to the system allocator;
    // the counter is a thread-local `Cell` that never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            bump();
            // SAFETY: the caller's contract, forwarded.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract, forwarded.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            bump();
            // SAFETY: the caller's contract, forwarded.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOC: Counting = Counting;

    /// Runs `f`, returning its result and the allocations and
    /// reallocations it made on this thread.
    pub fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
        COUNT.with(|c| c.set(Some(0)));
        let r = f();
        let n = COUNT.with(|c| c.replace(None)).unwrap_or(0);
        (r, n)
    }
}
