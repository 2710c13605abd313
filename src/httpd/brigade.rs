//! Bucket brigades: reading the request body from the input filters and
//! handing response data to the output filters.

use crate::ffi;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The most one input filter read asks for (mod_proxy_fcgi reads 8 KiB
/// at a time too).
const READ_PIECE: usize = 8 * 1024;

/// A brigade allocated from a request pool (freed with the pool), usable
/// for the pool's lifetime `'p`. It never holds a bucket that refers to
/// memory it does not own beyond one call (see [`Brigade::pass_transient`]).
pub struct Brigade<'p> {
    raw: NonNull<ffi::apr_bucket_brigade>,
    alloc: *mut ffi::apr_bucket_alloc_t,
    _life: PhantomData<&'p ()>,
}

/// What one read from the input filters produced.
pub enum BucketData {
    Data,
    Eos,
}

impl<'p> Brigade<'p> {
    /// # Safety
    /// `pool` and `alloc` must be valid for `'p` (the request's pool and its
    /// connection's bucket allocator).
    pub unsafe fn new(pool: *mut ffi::apr_pool_t, alloc: *mut ffi::apr_bucket_alloc_t) -> Brigade<'p> {
        // SAFETY: valid pool and allocator per the contract.
        let raw = unsafe { ffi::apr_brigade_create(pool, alloc) };
        Brigade {
            raw: NonNull::new(raw).expect("apr_brigade_create returned NULL"),
            alloc,
            _life: PhantomData,
        }
    }

    pub fn as_ptr(&self) -> *mut ffi::apr_bucket_brigade {
        self.raw.as_ptr()
    }

    /// Reads up to `max` bytes from `filters`, calling `sink` for every data
    /// block in order. Returns whether EOS was seen.
    ///
    /// The first read blocks; further reads only take what is already there
    /// (we never block while holding data to send). Each read asks for at
    /// most READ_PIECE bytes and its buckets are freed before the next one,
    /// so the core input filter holds one or two 8000-byte heap buckets at a
    /// time instead of up to nine: the connection's bucket allocator keeps
    /// every buffer it ever handed out on its free list.
    ///
    /// # Safety
    /// `filters` must be the request's valid input filter chain.
    pub unsafe fn read_from(
        &mut self,
        filters: *mut ffi::ap_filter_t,
        max: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, ffi::apr_status_t> {
        let mut total = 0usize;
        let mut block = ffi::apr_read_type_e_APR_BLOCK_READ;
        loop {
            let want = (max - total).min(READ_PIECE);
            // SAFETY: valid filter chain per the contract.
            match unsafe { self.read_once(filters, want, block, sink) } {
                Ok(None) => return Ok(true),
                Ok(Some(got)) => {
                    total += got;
                    if got == 0 || total >= max {
                        return Ok(false);
                    }
                }
                // Non-blocking: nothing more for now.
                Err(rv)
                    if block == ffi::apr_read_type_e_APR_NONBLOCK_READ
                        && rv == ffi::APR_EAGAIN as ffi::apr_status_t =>
                {
                    return Ok(false);
                }
                Err(rv) => return Err(rv),
            }
            block = ffi::apr_read_type_e_APR_NONBLOCK_READ;
        }
    }

    /// One `ap_get_brigade` of at most `max` bytes: how many data bytes went
    /// to `sink`, or None at EOS.
    ///
    /// # Safety
    /// `filters` must be the request's valid input filter chain.
    unsafe fn read_once(
        &mut self,
        filters: *mut ffi::ap_filter_t,
        max: usize,
        block: ffi::apr_read_type_e,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<Option<usize>, ffi::apr_status_t> {
        let bb = self.as_ptr();
        // SAFETY: valid filter chain and brigade; a read of at most `max`
        // bytes.
        let rv = unsafe {
            ffi::ap_get_brigade(
                filters,
                bb,
                ffi::ap_input_mode_t_AP_MODE_READBYTES,
                block,
                max as ffi::apr_off_t,
            )
        };
        if rv != 0 {
            // SAFETY: valid brigade.
            unsafe { ffi::apr_brigade_cleanup(bb.cast()) };
            return Err(rv);
        }
        let mut eos = false;
        let mut got = 0usize;
        // SAFETY: we walk the brigade's own list with the shim's macro
        // wrappers; each bucket is valid until deleted by cleanup below.
        unsafe {
            let mut b = ffi::fcgi_shim_brigade_first(bb);
            while !b.is_null() {
                if ffi::fcgi_shim_bucket_is_eos(b) != 0 {
                    eos = true;
                    break;
                }
                if ffi::fcgi_shim_bucket_is_metadata(b) == 0 {
                    let mut data: *const std::os::raw::c_char = std::ptr::null();
                    let mut len: ffi::apr_size_t = 0;
                    let rv = ffi::fcgi_shim_bucket_read(b, &mut data, &mut len, 1);
                    if rv != 0 {
                        ffi::apr_brigade_cleanup(bb.cast());
                        return Err(rv);
                    }
                    if len > 0 && !data.is_null() {
                        sink(std::slice::from_raw_parts(data.cast::<u8>(), len));
                        got += len;
                    }
                }
                b = ffi::fcgi_shim_bucket_next(bb, b);
            }
            ffi::apr_brigade_cleanup(bb.cast());
        }
        Ok(if eos { None } else { Some(got) })
    }

    /// Appends a transient bucket for each of `pieces` (after what the
    /// brigade already holds), passes the brigade down `filters` and empties
    /// it, all within this call: the buckets refer to the borrowed pieces
    /// without a copy, and none of them outlives the borrow (a filter that
    /// keeps data past the pass sets it aside, i.e. copies it, as the
    /// transient bucket contract requires).
    ///
    /// # Safety
    /// `filters` must be the request's valid output filter chain.
    pub unsafe fn pass_transient(&mut self, pieces: &[&[u8]], filters: *mut ffi::ap_filter_t) -> ffi::apr_status_t {
        for data in pieces.iter().filter(|d| !d.is_empty()) {
            // SAFETY: valid allocator and brigade; the bucket refers to
            // `data`, borrowed for this whole call, and pass_to below
            // removes every bucket before the call returns.
            unsafe {
                let b = ffi::apr_bucket_transient_create(data.as_ptr().cast(), data.len(), self.alloc);
                ffi::fcgi_shim_brigade_insert_tail(self.as_ptr(), b);
            }
        }
        // SAFETY: valid filter chain per the contract; pass_to empties the
        // brigade (apr_brigade_cleanup) whatever the filters returned.
        unsafe { self.pass_to(filters) }
    }

    /// Whether the brigade holds no bucket.
    pub fn is_empty(&self) -> bool {
        // SAFETY: valid brigade; only its list head is read.
        unsafe { ffi::fcgi_shim_brigade_first(self.as_ptr()).is_null() }
    }

    /// Appends a copy of `data` (small writes are coalesced into heap
    /// buckets of about 8 KiB, so many small pieces become one write).
    pub fn write_copy(&mut self, data: &[u8]) -> ffi::apr_status_t {
        // SAFETY: valid brigade; APR copies `len` bytes from the slice;
        // with no flush callback it only appends.
        unsafe {
            ffi::apr_brigade_write(
                self.as_ptr(),
                None,
                std::ptr::null_mut(),
                data.as_ptr().cast(),
                data.len(),
            )
        }
    }

    pub fn push_flush(&mut self) {
        // SAFETY: valid allocator and brigade.
        unsafe {
            let b = ffi::apr_bucket_flush_create(self.alloc);
            ffi::fcgi_shim_brigade_insert_tail(self.as_ptr(), b);
        }
    }

    pub fn push_eos(&mut self) {
        // SAFETY: valid allocator and brigade.
        unsafe {
            let b = ffi::apr_bucket_eos_create(self.alloc);
            ffi::fcgi_shim_brigade_insert_tail(self.as_ptr(), b);
        }
    }

    /// An error bucket: the HTTP output filters close the connection
    /// without completing the response (no terminating chunk).
    ///
    /// # Safety
    /// `pool` must be the request pool.
    pub unsafe fn push_error(&mut self, status: i32, pool: *mut ffi::apr_pool_t) {
        // SAFETY: valid pool/allocator/brigade.
        unsafe {
            let b = ffi::ap_bucket_error_create(status, std::ptr::null(), pool, self.alloc);
            ffi::fcgi_shim_brigade_insert_tail(self.as_ptr(), b);
        }
    }

    /// Passes the brigade down `filters` and empties it.
    ///
    /// # Safety
    /// `filters` must be the request's valid output filter chain.
    pub unsafe fn pass_to(&mut self, filters: *mut ffi::ap_filter_t) -> ffi::apr_status_t {
        // SAFETY: valid filter chain and brigade.
        unsafe {
            let rv = ffi::ap_pass_brigade(filters, self.as_ptr());
            ffi::apr_brigade_cleanup(self.as_ptr().cast());
            rv
        }
    }
}
