//! APR tables (headers_in, headers_out, subprocess_env, ...).

use super::opt_cstr;
use crate::ffi;
use std::ffi::CString;
use std::ptr::NonNull;

/// A borrowed `apr_table_t`.
#[derive(Clone, Copy)]
pub struct Table {
    raw: NonNull<ffi::apr_table_t>,
}

fn cstring(bytes: &[u8]) -> CString {
    CString::new(bytes).unwrap_or_else(|e| {
        let mut v = e.into_vec();
        v.retain(|&b| b != 0);
        CString::new(v).unwrap_or_default()
    })
}

/// Calls `f` with `bytes` as a C string: from a stack buffer when short
/// (the usual header names and values: no heap allocation per call, issue
/// 11), else a `CString`. NUL bytes are dropped.
fn with_cstr<R>(bytes: &[u8], f: impl FnOnce(*const std::os::raw::c_char) -> R) -> R {
    const SHORT: usize = 256;
    if bytes.len() < SHORT && memchr::memchr(0, bytes).is_none() {
        let mut buf = [0u8; SHORT];
        buf[..bytes.len()].copy_from_slice(bytes);
        f(buf.as_ptr().cast())
    } else {
        let c = cstring(bytes);
        f(c.as_ptr())
    }
}

impl Table {
    /// # Safety
    /// `t` must be a valid table that outlives every use of the wrapper.
    pub unsafe fn from_raw(t: *mut ffi::apr_table_t) -> Option<Table> {
        NonNull::new(t).map(|raw| Table { raw })
    }

    /// First value for `key` (case-insensitive).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        with_cstr(key, |k| {
            // SAFETY: valid table and NUL-terminated key (alive for the
            // call); the returned value lives as long as the table entry
            // (i.e. the request).
            unsafe { opt_cstr(ffi::apr_table_get(self.raw.as_ptr(), k)) }
        })
    }

    /// Sets `key` to `value`, replacing earlier values (both copied).
    pub fn set(&self, key: &[u8], value: &[u8]) {
        with_cstr(key, |k| {
            with_cstr(value, |v| {
                // SAFETY: valid table; apr_table_set copies key and value,
                // which are NUL-terminated and alive for the call.
                unsafe { ffi::apr_table_set(self.raw.as_ptr(), k, v) }
            })
        })
    }

    /// Adds another `key: value` (duplicates kept; both copied).
    pub fn add(&self, key: &[u8], value: &[u8]) {
        with_cstr(key, |k| {
            with_cstr(value, |v| {
                // SAFETY: valid table; apr_table_add copies key and value,
                // which are NUL-terminated and alive for the call.
                unsafe { ffi::apr_table_add(self.raw.as_ptr(), k, v) }
            })
        })
    }

    pub fn unset(&self, key: &[u8]) {
        with_cstr(key, |k| {
            // SAFETY: valid table and NUL-terminated key, alive for the call.
            unsafe { ffi::apr_table_unset(self.raw.as_ptr(), k) }
        })
    }

    /// Calls `f` for every entry in order (NULL values are passed as empty).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        // SAFETY: an apr_table_t starts with its apr_array_header_t (the
        // documented `apr_table_elts` cast); the elements are
        // apr_table_entry_t and stay valid while we iterate.
        unsafe {
            let arr = self.raw.as_ptr().cast::<ffi::apr_array_header_t>();
            let n = (*arr).nelts.max(0) as usize;
            let elts = (*arr).elts.cast::<ffi::apr_table_entry_t>();
            for i in 0..n {
                let e = &*elts.add(i);
                if let Some(k) = opt_cstr(e.key) {
                    f(k, opt_cstr(e.val).unwrap_or(b""));
                }
            }
        }
    }

    /// A copy of the table (entries copied, strings shared) allocated in
    /// `pool`, which must live at least as long as the strings in `self`.
    pub fn copy(&self, pool: super::Pool) -> Table {
        // SAFETY: valid pool and table; apr_table_copy returns a new
        // non-NULL table in `pool` (it aborts on allocation failure).
        let t = unsafe { ffi::apr_table_copy(pool.as_ptr(), self.raw.as_ptr()) };
        Table {
            raw: NonNull::new(t).expect("apr_table_copy"),
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        // SAFETY: valid table.
        unsafe { ffi::apr_table_clear(self.raw.as_ptr()) }
    }

    /// Makes this table hold exactly the entries of `other`, in order
    /// (duplicates kept).
    pub fn replace_with(&self, other: &Table) {
        self.clear();
        other.for_each(|k, v| self.add(k, v));
    }

    pub fn as_ptr(&self) -> *mut ffi::apr_table_t {
        self.raw.as_ptr()
    }
}
