//! APR pools: string copies with pool lifetime and Rust values owned by a
//! pool (dropped by a pool cleanup).

use crate::ffi;
use std::ffi::{c_void, CStr};
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::ptr::NonNull;

/// A borrowed APR pool, alive for `'p`.
///
/// Neither `Send` nor `Sync` (APR pools are not thread-safe): a `Pool` is
/// used by the thread that was handed it (a request's pool by the request's
/// thread, `pconf` by the parent during a configuration pass). Values it
/// owns are borrowed for `'p`, so they cannot outlive the wrapper's
/// promise; only the FFI entry points choose `'p` (see [`Pool::from_raw`]).
#[derive(Clone, Copy)]
pub struct Pool<'p> {
    raw: NonNull<ffi::apr_pool_t>,
    _life: PhantomData<&'p ()>,
}

impl<'p> Pool<'p> {
    /// # Safety
    /// `p` must be a valid pool that lives (is neither cleared nor
    /// destroyed) for all of `'p`, and the wrapper and its copies must only
    /// be used by the thread that owns the pool.
    pub unsafe fn from_raw(p: *mut ffi::apr_pool_t) -> Option<Pool<'p>> {
        NonNull::new(p).map(|raw| Pool {
            raw,
            _life: PhantomData,
        })
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
    /// lifetime `'p`.
    pub fn alloc_owned<T: Sync + 'static>(self, value: T) -> &'p T {
        let raw = self.alloc_owned_raw(value);
        // SAFETY: the box lives until the pool's cleanup runs, which is
        // after `'p` (constructor contract); only shared references are
        // handed out.
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
    pub fn singleton<T: Sync + 'static>(self, key: &'static CStr, make: impl FnOnce() -> T) -> &'p T {
        let p = self.userdata_get(key).cast::<T>();
        // SAFETY: a non-NULL pointer under `key` was stored below for a
        // `T` owned by this same pool, so it is alive for `'p` and of type T.
        if let Some(v) = unsafe { p.as_ref() } {
            return v;
        }
        let v = self.alloc_owned(make());
        self.userdata_set(key, (v as *const T).cast());
        v
    }
}

/// A configuration pool kept in state that request threads can reach (the
/// pass's `ModuleState`): usable only in the process that created the
/// handle — httpd's parent, whose configuration passes and "other child"
/// callbacks run on its one thread — never from a child's threads.
#[derive(Clone, Copy)]
pub struct ConfigPool {
    raw: NonNull<ffi::apr_pool_t>,
    owner: u32,
}

// SAFETY: the handle itself is only an address and a pid; the pool can be
// used through it only in the owner process (`ConfigPool::in_owner`), where
// it is single-threaded.
unsafe impl Send for ConfigPool {}
// SAFETY: as above.
unsafe impl Sync for ConfigPool {}

impl ConfigPool {
    /// The handle of `pconf`, owned by this process.
    pub fn new(pconf: Pool<'static>) -> ConfigPool {
        ConfigPool {
            raw: pconf.raw,
            owner: std::process::id(),
        }
    }

    /// The pool, in the process that created the handle (`None` elsewhere,
    /// e.g. in an httpd child, which must not use the parent's pconf).
    pub fn in_owner(&self) -> Option<Pool<'static>> {
        (std::process::id() == self.owner).then_some(Pool {
            raw: self.raw,
            _life: PhantomData,
        })
    }
}
