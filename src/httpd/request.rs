//! `request_rec`: the accessors and httpd calls the handler and the hooks
//! need.

use super::{log, opt_cstr, Brigade, Level, Pool, Table};
use crate::ffi;
use std::ffi::{c_void, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Whether body read failure `rv` (an `apr_status_t`) says the client closed
/// or reset its connection: APR_EOF / APR_INCOMPLETE from the input filters,
/// or the socket's ECONNRESET, EPIPE, ECONNABORTED.
pub fn body_error_means_gone(rv: i32) -> bool {
    let gone = [
        ffi::APR_EOF as i32,
        ffi::APR_INCOMPLETE as i32,
        libc::ECONNRESET,
        libc::EPIPE,
        libc::ECONNABORTED,
    ];
    gone.contains(&rv)
}

/// A request borrowed for `'r`, the hook call that received it: its pool
/// ([`Request::pool`]) and brigades ([`Request::new_brigade`]) carry `'r`,
/// so nothing allocated from them can be kept past the call by safe code.
pub struct Request<'r> {
    raw: NonNull<ffi::request_rec>,
    _life: PhantomData<&'r mut ffi::request_rec>,
}

impl<'r> Request<'r> {
    /// # Safety
    /// `r` must be a valid request_rec for all of `'r` (at most the hook
    /// call that received it), used only by the calling thread.
    pub unsafe fn from_raw(r: *mut ffi::request_rec) -> Option<Request<'r>> {
        NonNull::new(r).map(|raw| Request {
            raw,
            _life: PhantomData,
        })
    }

    fn r(&self) -> &ffi::request_rec {
        // SAFETY: valid for the hook call (constructor contract).
        unsafe { self.raw.as_ref() }
    }

    fn r_mut(&mut self) -> &mut ffi::request_rec {
        // SAFETY: as above; httpd hands the request to one thread at a time.
        unsafe { self.raw.as_mut() }
    }

    pub fn as_ptr(&self) -> *mut ffi::request_rec {
        self.raw.as_ptr()
    }

    pub fn pool(&self) -> Pool<'r> {
        // SAFETY: a request's pool lives at least as long as the request
        // (`'r`, constructor contract), and is used by the request's thread.
        unsafe { Pool::from_raw(self.r().pool) }.expect("request without pool")
    }

    pub fn handler(&self) -> Option<&[u8]> {
        // SAFETY: NULL or a NUL-terminated string living with the request.
        unsafe { opt_cstr(self.r().handler) }
    }

    /// Sets `r->handler` to a static string.
    pub fn set_handler(&mut self, h: &'static CStr) {
        self.r_mut().handler = h.as_ptr();
    }

    pub fn filename(&self) -> Option<&[u8]> {
        // SAFETY: NULL or a NUL-terminated string living with the request.
        unsafe { opt_cstr(self.r().filename) }
    }

    pub fn set_filename(&mut self, f: &[u8]) {
        let p = self.pool().strdup(f);
        self.r_mut().filename = p.cast_mut();
    }

    pub fn path_info(&self) -> Option<&[u8]> {
        // SAFETY: as above.
        unsafe { opt_cstr(self.r().path_info) }
    }

    pub fn set_path_info(&mut self, f: &[u8]) {
        let p = self.pool().strdup(f);
        self.r_mut().path_info = p.cast_mut();
    }

    pub fn uri(&self) -> &[u8] {
        // SAFETY: as above.
        unsafe { opt_cstr(self.r().uri) }.unwrap_or(b"")
    }

    pub fn method_number(&self) -> i32 {
        self.r().method_number
    }

    pub fn method(&self) -> &[u8] {
        // SAFETY: as above.
        unsafe { opt_cstr(self.r().method) }.unwrap_or(b"")
    }

    pub fn header_only(&self) -> bool {
        self.r().header_only != 0
    }

    /// Whether `r->finfo` says the file exists, is a directory, and its
    /// permission bits (APR_FPROT_*).
    pub fn finfo(&self) -> (bool, bool, i32) {
        let f = &self.r().finfo;
        let exists = f.filetype != ffi::apr_filetype_e_APR_NOFILE;
        (exists, f.filetype == ffi::apr_filetype_e_APR_DIR, f.protection)
    }

    pub fn headers_in(&self) -> Table {
        // SAFETY: a request always has this table.
        unsafe { Table::from_raw(self.r().headers_in) }.expect("headers_in")
    }

    pub fn headers_out(&self) -> Table {
        // SAFETY: as above.
        unsafe { Table::from_raw(self.r().headers_out) }.expect("headers_out")
    }

    pub fn err_headers_out(&self) -> Table {
        // SAFETY: as above.
        unsafe { Table::from_raw(self.r().err_headers_out) }.expect("err_headers_out")
    }

    pub fn subprocess_env(&self) -> Table {
        // SAFETY: as above.
        unsafe { Table::from_raw(self.r().subprocess_env) }.expect("subprocess_env")
    }

    pub fn notes(&self) -> Table {
        // SAFETY: as above.
        unsafe { Table::from_raw(self.r().notes) }.expect("notes")
    }

    /// `r->user`: the authenticated user, once an authentication module
    /// (or `ap_get_basic_auth_pw`) has set it.
    pub fn user(&self) -> Option<&[u8]> {
        // SAFETY: NULL or a NUL-terminated string living with the request.
        unsafe { opt_cstr(self.r().user) }
    }

    /// `AuthType` in effect (`ap_auth_type`; NULL without mod_authn_core).
    pub fn auth_type(&self) -> Option<&[u8]> {
        // SAFETY: valid request; the result is NULL or a config/pool string
        // that outlives the request.
        unsafe { opt_cstr(ffi::ap_auth_type(self.as_ptr())) }
    }

    /// `AuthName` in effect (`ap_auth_name`).
    pub fn auth_name(&self) -> Option<&[u8]> {
        // SAFETY: as for auth_type.
        unsafe { opt_cstr(ffi::ap_auth_name(self.as_ptr())) }
    }

    /// `ap_get_basic_auth_pw`: decodes the Basic credentials, setting
    /// `r->user`; returns the password, or httpd's status when it is not
    /// OK (DECLINED when AuthType is not Basic, 401 without usable
    /// credentials, 500 without AuthName).
    pub fn get_basic_auth_pw(&mut self) -> Result<Vec<u8>, i32> {
        let mut pw: *const std::os::raw::c_char = std::ptr::null();
        // SAFETY: valid request and out-pointer; on OK `pw` points to a
        // request-pool string, copied out at once.
        let rc = unsafe { ffi::ap_get_basic_auth_pw(self.as_ptr(), &mut pw) };
        if rc != ffi::OK as i32 {
            return Err(rc);
        }
        // SAFETY: NULL or a NUL-terminated pool string (see above).
        Ok(unsafe { opt_cstr(pw) }.unwrap_or(b"").to_vec())
    }

    /// `ap_note_auth_failure`: lets the module of the AuthType add its
    /// challenge header (e.g. WWW-Authenticate) to the error response.
    pub fn note_auth_failure(&mut self) {
        // SAFETY: valid request.
        unsafe { ffi::ap_note_auth_failure(self.as_ptr()) }
    }

    /// Whether this is a forward-proxy request (challenge headers are then
    /// Proxy-Authenticate).
    pub fn is_proxy_request(&self) -> bool {
        // httpd.h: `#define PROXYREQ_PROXY 1` (not in the generated bindings).
        const PROXYREQ_PROXY: i32 = 1;
        self.r().proxyreq == PROXYREQ_PROXY
    }

    /// httpd's suexec identity for this request (`SuexecUserGroup`, userdir):
    /// (uid, gid, is_userdir), or None when httpd provides none.
    pub fn suexec_identity(&self) -> Option<(u32, u32, bool)> {
        // SAFETY: valid request; the hook returns NULL or an identity living
        // in a pool that outlives the request.
        let id = unsafe { ffi::ap_run_get_suexec_identity(self.as_ptr()).as_ref() }?;
        Some((id.uid, id.gid, id.userdir != 0))
    }

    /// Whether `Options ExecCGI` is in effect for this request.
    pub fn allows_exec_cgi(&self) -> bool {
        // SAFETY: valid request.
        let opts = unsafe { ffi::ap_allow_options(self.as_ptr()) };
        (opts & ffi::OPT_EXECCGI as i32) != 0
    }

    /// httpd's standard CGI environment (`ap_add_common_vars`).
    pub fn add_common_vars(&mut self) {
        // SAFETY: valid request.
        unsafe { ffi::ap_add_common_vars(self.as_ptr()) }
    }

    /// httpd's CGI/1.1 variables (`ap_add_cgi_vars`).
    pub fn add_cgi_vars(&mut self) {
        // SAFETY: valid request.
        unsafe { ffi::ap_add_cgi_vars(self.as_ptr()) }
    }

    /// The environment exactly as httpd would give a CGI script
    /// (`ap_create_environment`: names sanitised, TZ added), as
    /// name/value pairs living in the request pool.
    pub fn cgi_env(&self) -> Vec<(&[u8], &[u8])> {
        // SAFETY: valid pool and table; the returned NULL-terminated array
        // of "NAME=VALUE" strings lives in the request pool, which outlives
        // `&self`.
        unsafe {
            let env = ffi::ap_create_environment(self.r().pool, self.r().subprocess_env);
            if env.is_null() {
                return Vec::new();
            }
            // (Counted first: one allocation, issue 11.)
            let mut n = 0;
            while !(*env.add(n)).is_null() {
                n += 1;
            }
            let mut pairs = Vec::with_capacity(n);
            let mut i = 0;
            loop {
                let p = *env.add(i);
                if p.is_null() {
                    break;
                }
                let kv = CStr::from_ptr(p).to_bytes();
                pairs.push(match memchr::memchr(b'=', kv) {
                    Some(eq) => (&kv[..eq], &kv[eq + 1..]),
                    None => (kv, b"".as_slice()),
                });
                i += 1;
            }
            pairs
        }
    }

    pub fn set_status(&mut self, status: i32) {
        self.r_mut().status = status;
    }

    pub fn status(&self) -> i32 {
        self.r().status
    }

    pub fn set_status_line(&mut self, line: &[u8]) {
        let p = self.pool().strdup(line);
        self.r_mut().status_line = p;
    }

    pub fn set_content_type(&mut self, ct: &[u8]) {
        let p = self.pool().strdup(ct);
        // SAFETY: valid request; the string lives in the request pool.
        unsafe { ffi::ap_set_content_type(self.as_ptr(), p) }
    }

    /// Marks the connection as not reusable after this response.
    pub fn close_connection_after(&mut self) {
        // SAFETY: every request has a valid connection.
        unsafe { (*self.r().connection).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE };
    }

    pub fn connection_aborted(&self) -> bool {
        // SAFETY: every request has a valid connection.
        unsafe { (*self.r().connection).aborted != 0 }
    }

    /// Sends the response unparsed (nph): output goes straight to the
    /// connection filters, skipping httpd's header and chunking filters.
    pub fn bypass_protocol_filters(&mut self) {
        // SAFETY: every request has a valid connection.
        let cf = unsafe { (*self.r().connection).output_filters };
        let r = self.r_mut();
        r.output_filters = cf;
        r.proto_output_filters = cf;
    }

    /// A brigade for this request (freed with the request pool).
    pub fn new_brigade(&self) -> Brigade<'r> {
        // SAFETY: the request pool and its connection's allocator are valid
        // for the request's lifetime `'r`.
        unsafe { Brigade::new(self.r().pool, (*self.r().connection).bucket_alloc) }
    }

    /// Reads request body data (blocking) into `sink`; `Ok(true)` at EOS.
    pub fn read_body(&mut self, bb: &mut Brigade, max: usize, sink: &mut dyn FnMut(&[u8])) -> Result<bool, i32> {
        // SAFETY: the request's own input filter chain.
        unsafe { bb.read_from(self.r().input_filters, max, sink) }
    }

    /// Passes `bb` to the request's output filters.
    pub fn pass(&mut self, bb: &mut Brigade) -> i32 {
        // SAFETY: the request's own output filter chain.
        unsafe { bb.pass_to(self.r().output_filters) }
    }

    /// Passes `bb` followed by `pieces` (without copying them) to the
    /// request's output filters; see [`Brigade::pass_transient`].
    pub fn pass_transient(&mut self, bb: &mut Brigade, pieces: &[&[u8]]) -> i32 {
        // SAFETY: the request's own output filter chain.
        unsafe { bb.pass_transient(pieces, self.r().output_filters) }
    }

    /// Aborts a response already under way: error bucket + EOS, so the
    /// client sees a truncated response (connection closed, no final chunk)
    /// instead of a second status (legacy bug 8.1 fixed).
    pub fn abort_response(&mut self, bb: &mut Brigade) {
        // Whatever is held goes out first, on its own: an error bucket in
        // the same brigade as the first data would make httpd's header
        // filter send an error page instead of the response that started.
        let _ = self.pass(bb);
        // SAFETY: request pool is valid.
        unsafe { bb.push_error(ffi::HTTP_BAD_GATEWAY as i32, self.r().pool) };
        bb.push_eos();
        self.close_connection_after();
        let _ = self.pass(bb);
    }

    /// Reads and discards whatever is left of the request body.
    pub fn discard_body(&mut self) -> i32 {
        // SAFETY: valid request.
        unsafe { ffi::ap_discard_request_body(self.as_ptr()) }
    }

    /// `ap_map_http_request_error`: the status for a body read failure.
    pub fn map_body_error(&self, rv: i32) -> i32 {
        // SAFETY: pure function of its arguments.
        unsafe { ffi::ap_map_http_request_error(rv, ffi::HTTP_BAD_REQUEST as i32) }
    }

    /// Whether body read failure `rv` means the client went away mid-body
    /// (connection closed or reset) rather than sent something wrong.
    pub fn body_error_is_client_gone(&self, rv: i32) -> bool {
        self.connection_aborted() || body_error_means_gone(rv)
    }

    /// Marks the client connection as gone: nothing more is written to it
    /// (no error page) and it is closed after this request.
    pub fn mark_client_gone(&mut self) {
        self.close_connection_after();
        // SAFETY: every request has a valid connection; httpd sets the same
        // flag itself when a write to the client fails.
        unsafe { (*self.r().connection).aborted = 1 };
    }

    /// Internal redirect to `uri` (must start with '/').
    pub fn internal_redirect_handler(&mut self, uri: &[u8]) {
        let p = self.pool().strdup(uri);
        // SAFETY: valid request and pool string.
        unsafe { ffi::ap_internal_redirect_handler(p, self.as_ptr()) }
    }

    /// Turns the request into a GET without a body (before an internal
    /// redirect, as CGI does).
    pub fn make_get(&mut self) {
        let r = self.r_mut();
        r.method = c"GET".as_ptr();
        r.method_number = ffi::M_GET as i32;
        self.headers_in().unset(b"Content-Length");
    }

    /// This module's per-server config for the request's (virtual) server.
    pub fn server_config(&self) -> *mut c_void {
        // SAFETY: every request has a valid server_rec with a config vector.
        unsafe { ffi::fcgi_shim_get_server_config(self.r().server) }
    }

    /// The per-directory config of this module for this request.
    pub fn dir_config(&self) -> *mut c_void {
        // SAFETY: valid per_dir_config vector.
        unsafe { ffi::fcgi_shim_get_dir_config(self.r().per_dir_config) }
    }

    /// Whether this internal redirect or subrequest has the very same
    /// per-directory configuration vector as the request it came from
    /// (`r->prev` or `r->main`): httpd then skips the access-control phases
    /// and reuses that request's decision.
    pub fn shares_dir_config_with_origin(&self) -> bool {
        let r = self.r();
        // SAFETY: r->prev and r->main are NULL or requests that outlive
        // this one (httpd keeps them while their redirects/subrequests run).
        let (prev, main) = unsafe { (r.prev.as_ref(), r.main.as_ref()) };
        [prev, main]
            .into_iter()
            .flatten()
            .any(|o| o.per_dir_config == r.per_dir_config)
    }

    /// Gives the request a per-directory configuration vector of its own
    /// holding the same module configurations, so that httpd runs the
    /// access-control phases for it (see
    /// [`Request::shares_dir_config_with_origin`]).
    pub fn unshare_dir_config(&mut self) {
        let pool = self.pool().as_ptr();
        // SAFETY: valid request and pool. Merging onto an empty vector
        // copies every entry and calls no module's merge function (config.c,
        // ap_merge_per_dir_configs: a NULL entry takes the base's).
        unsafe {
            let empty = ffi::ap_create_per_dir_config(pool);
            let own = ffi::ap_merge_per_dir_configs(pool, self.r().per_dir_config, empty);
            (*self.as_ptr()).per_dir_config = own;
        }
    }

    /// What httpd's own `dirwalk_stat` does: `apr_stat` of `r->filename`
    /// into `finfo`. Returns the APR status.
    ///
    /// # Safety
    /// `finfo` must be the `apr_finfo_t` httpd passed to the hook with this
    /// request, valid for the call.
    pub unsafe fn stat_filename(&self, finfo: *mut ffi::apr_finfo_t, wanted: i32) -> ffi::apr_status_t {
        // SAFETY: `finfo` per the contract; r->filename is a NUL-terminated
        // string (the walk's current path) and the pool is the request's.
        unsafe { ffi::apr_stat(finfo, self.r().filename, wanted, self.pool().as_ptr()) }
    }

    /// Answers httpd's `dirwalk_stat` hook for a path that does not exist
    /// on disk: a directory, or a regular file, with only the type known.
    ///
    /// # Safety
    /// `finfo` must be the `apr_finfo_t` httpd passed to the hook with this
    /// request, valid for the call.
    pub unsafe fn set_virtual_stat(&self, finfo: *mut ffi::apr_finfo_t, directory: bool) {
        // SAFETY: per the contract, `finfo` is valid for writes; every field
        // is plain data for which all-zeroes is a valid value.
        let f = unsafe { &mut *finfo };
        // SAFETY: as above.
        *f = unsafe { std::mem::zeroed() };
        f.pool = self.pool().as_ptr();
        f.valid = ffi::APR_FINFO_TYPE as i32;
        f.filetype = if directory {
            ffi::apr_filetype_e_APR_DIR
        } else {
            ffi::apr_filetype_e_APR_REG
        };
        f.fname = self.r().filename;
    }

    /// Writes `data` into the response (`ap_rwrite`, as `ap_rputs` does:
    /// the bytes are data, never a format). Used by the mod_status section.
    /// Returns false when the client is gone.
    pub fn rwrite(&mut self, data: &[u8]) -> bool {
        let Ok(len) = i32::try_from(data.len()) else {
            return false;
        };
        // SAFETY: valid request; ap_rwrite copies `len` bytes from `data`
        // (or buffers them) before returning.
        unsafe { ffi::ap_rwrite(data.as_ptr().cast(), len, self.as_ptr()) >= 0 }
    }

    /// Logs with the request's server and client address.
    pub fn log(&self, level: Level, errno: i32, msg: &str) {
        let m = log::message(msg);
        // SAFETY: valid request and C string.
        unsafe { ffi::fcgi_shim_log_request(self.as_ptr(), level.raw(), errno, m.as_ptr()) }
    }
}
