//! APR pools: string copies with pool lifetime and Rust values owned by a
//! pool (dropped by a pool cleanup).

use crate::ffi;
use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::ptr::NonNull;

/// A borrowed APR pool.
#[derive(Clone, Copy)]
pub struct Pool {
    raw: NonNull<ffi::apr_pool_t>,
}

// SAFETY: a Pool is a handle; APR pools are not thread-safe, and this
// module only uses a pool from the thread that owns it (request pools in
// their request's thread, pconf in the single-threaded parent). Sharing
// the handle (e.g. inside pool-owned state) does not share the use.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

impl Pool {
    /// # Safety
    /// `p` must be a valid pool that outlives every use of the wrapper.
    pub unsafe fn from_raw(p: *mut ffi::apr_pool_t) -> Option<Pool> {
        NonNull::new(p).map(|raw| Pool { raw })
    }

    pub fn as_ptr(self) -> *mut ffi::apr_pool_t {
        self.raw.as_ptr()
    }

    /// Copies `bytes` into the pool as a NUL-terminated string. Interior NUL
    /// bytes would truncate the C string, so they are replaced with spaces
    /// (callers validate data beforehand; this is only a guard).
    pub fn strdup(self, bytes: &[u8]) -> *const c_char {
        // SAFETY: the pool is valid (constructor contract); apr_pstrmemdup
        // copies `len` bytes from a valid slice and NUL-terminates.
        let p = unsafe { ffi::apr_pstrmemdup(self.as_ptr(), bytes.as_ptr().cast(), bytes.len()) };
        if memchr::memchr(0, bytes).is_some() {
            // SAFETY: `p` points to `bytes.len() + 1` writable bytes just
            // allocated from the pool.
            let s = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), bytes.len()) };
            for b in s.iter_mut().filter(|b| **b == 0) {
                *b = b' ';
            }
        }
        p
    }

    /// Stores `value` in the pool: it is dropped when the pool is cleared
    /// or destroyed. Returns a shared reference valid for the pool's
    /// lifetime (the `'static` stands for "as long as this pool", which
    /// outlives every hook call that can reach the value).
    pub fn alloc_owned<T: Sync + 'static>(self, value: T) -> &'static T {
        let raw = self.alloc_owned_raw(value);
        // SAFETY: the box lives until the pool cleanup runs, which is after
        // every user of this pool (httpd's pool discipline); only shared
        // references are handed out.
        unsafe { &*raw }
    }

    /// Like [`Pool::alloc_owned`], but returns the box's own (mutable)
    /// pointer, for values httpd hands back to us for mutation (per-dir
    /// configs filled in by directive handlers). Whoever dereferences it
    /// mutably must ensure no other reference is in use at that time.
    pub fn alloc_owned_raw<T: Sync + 'static>(self, value: T) -> *mut T {
        let raw = Box::into_raw(Box::new(value));
        unsafe extern "C" fn drop_box<T>(data: *mut c_void) -> ffi::apr_status_t {
            // SAFETY: `data` came from Box::into_raw::<T> below and this
            // cleanup runs exactly once.
            drop(unsafe { Box::from_raw(data.cast::<T>()) });
            0
        }
        // SAFETY: valid pool; the cleanup frees exactly the box we created.
        unsafe {
            ffi::apr_pool_cleanup_register(
                self.as_ptr(),
                raw.cast(),
                Some(drop_box::<T>),
                Some(ffi::apr_pool_cleanup_null),
            );
        }
        raw
    }

    /// Reads a pointer stored with [`Pool::userdata_set`].
    fn userdata_get(self, key: &CStr) -> *mut c_void {
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid pool and key; `out` is a valid out-pointer.
        unsafe { ffi::apr_pool_userdata_get(&mut out, key.as_ptr(), self.as_ptr()) };
        out
    }

    /// Stores a pointer under `key` for the pool's lifetime (no cleanup;
    /// pair with [`Pool::alloc_owned`] for ownership).
    fn userdata_set(self, key: &'static CStr, value: *const c_void) {
        // SAFETY: valid pool; the key is 'static as APR requires (it does
        // not copy it); the value's lifetime is the caller's concern.
        unsafe { ffi::apr_pool_userdata_setn(value, key.as_ptr(), None, self.as_ptr()) };
    }

    /// The value of type `T` stored under `key` in this pool, created with
    /// `make` on first use and dropped with the pool. One type per key.
    pub fn singleton<T: Sync + 'static>(self, key: &'static CStr, make: impl FnOnce() -> T) -> &'static T {
        let p = self.userdata_get(key).cast::<T>();
        // SAFETY: a non-NULL pointer under `key` was stored below for a
        // `T` owned by this same pool, so it is alive and of type T.
        if let Some(v) = unsafe { p.as_ref() } {
            return v;
        }
        let v = self.alloc_owned(make());
        self.userdata_set(key, (v as *const T).cast());
        v
    }
}
