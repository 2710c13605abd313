//! Every C entry point (hooks, directive handlers, config constructors):
//! each one is a trampoline that wraps its Rust body in `catch_unwind`, so
//! a panic is logged as one error line and turned into an error status
//! instead of unwinding into httpd (which would abort the child).

use crate::config::{AuthRole, ConfigState, DirAuthConfig};
use crate::ffi;
use crate::httpd::{self, log, CmdParms, Level, Pool, Request};
use crate::module::{auth, directives, handler, routing, supervisor, ModuleState, ServerConf};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs `body`; on panic logs one line naming the entry point and returns
/// `fallback`.
fn guarded<T>(what: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(p) => {
            log::main_server(
                Level::Crit,
                0,
                &format!(
                    "FastCGI: internal error in {what}: {} (please report this bug)",
                    panic_text(&*p)
                ),
            );
            fallback
        }
    }
}

fn state_of(r: &Request) -> Option<&'static ConfigState> {
    state_of_server_config(r.server_config())
}

/// The frozen configuration behind a per-server config pointer of ours.
fn state_of_server_config(conf: *mut c_void) -> Option<&'static ConfigState> {
    let conf = conf.cast::<ServerConf>();
    // SAFETY: our per-server config is always a ServerConf allocated by
    // fcgi_rs_create_server_config in a pool that outlives the request.
    unsafe { conf.as_ref() }
        .and_then(|c| c.state.get().copied())
        .and_then(|m| m.config())
}

const HTTP_INTERNAL_SERVER_ERROR: c_int = 500;

/// # Safety
/// Called by httpd with a valid pool.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_create_server_config(
    p: *mut ffi::apr_pool_t,
    _s: *mut ffi::server_rec,
) -> *mut c_void {
    guarded("create_server_config", std::ptr::null_mut(), || {
        // SAFETY: httpd passes its valid config pool (pconf), used here by
        // the parent's one thread. `'static` stands for "this configuration
        // pass": the ServerConf is reached only through this pass's
        // server_rec, which goes with the same pool.
        match unsafe { Pool::<'static>::from_raw(p) } {
            Some(pool) => config_ptr(pool.alloc_owned(ServerConf::default())),
            None => std::ptr::null_mut(),
        }
    })
}

/// Hands a pool-owned value to httpd as its untyped config pointer.
fn config_ptr<T>(v: &'static T) -> *mut c_void {
    (v as *const T).cast_mut().cast()
}

/// # Safety
/// Called by httpd with a valid pool.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_create_dir_config(p: *mut ffi::apr_pool_t, _dir: *mut c_char) -> *mut c_void {
    guarded("create_dir_config", std::ptr::null_mut(), || {
        // SAFETY: httpd passes its valid config pool (pconf, or the request
        // pool for .htaccess files).
        match unsafe { Pool::from_raw(p) } {
            // The box's own mutable pointer: the directive handlers of this
            // section fill it in (fcgi_rs_cmd_take12/flag).
            Some(pool) => pool.alloc_owned_raw(DirAuthConfig::default()).cast(),
            None => std::ptr::null_mut(),
        }
    })
}

/// # Safety
/// Called by httpd with a valid pool and two configs we created.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_merge_dir_config(
    p: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    guarded("merge_dir_config", add, || {
        // SAFETY: both are DirAuthConfig values we allocated, and httpd
        // passes its valid pool.
        let (pool, b, a) = unsafe {
            (
                Pool::from_raw(p),
                base.cast::<DirAuthConfig>().as_ref(),
                add.cast::<DirAuthConfig>().as_ref(),
            )
        };
        match (pool, b, a) {
            (Some(pool), Some(b), Some(a)) => pool.alloc_owned_raw(DirAuthConfig::merge(b, a)).cast(),
            _ => add,
        }
    })
}

/// # Safety
/// Called by httpd.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_pre_config(
    _pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
) -> c_int {
    0
}

/// # Safety
/// Called by httpd with valid pools and the main server.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_post_config(
    pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> c_int {
    guarded("post_config", HTTP_INTERNAL_SERVER_ERROR, || {
        // SAFETY: httpd passes its valid config pool, used by the parent's
        // one thread; `'static` = this configuration pass, as for the
        // server configs (the state is reached only through them, and
        // through the PM's other-child registration, which APR removes
        // with the same pool).
        let Some(pool) = (unsafe { Pool::<'static>::from_raw(pconf) }) else {
            return HTTP_INTERNAL_SERVER_ERROR;
        };
        let state: &'static ModuleState = ModuleState::of_pass(pool);
        let cfg = state.freeze();
        if let Err(reason) = cfg.prepare_ipc_dir(&crate::config::OsProbe) {
            log::main_server(Level::Error, 0, &format!("FastCGI: {reason}"));
        }
        if let Err(reason) = cfg.prepare_spool_dir(&crate::config::OsProbe) {
            log::main_server(Level::Error, 0, &format!("FastCGI: {reason}"));
        }
        if httpd::process::spool_table(true).is_none() {
            log::main_server(
                Level::Warn,
                0,
                "FastCGI: can't map the shared spool table: FastCgiSpoolTotal is not enforced",
            );
        }
        supervisor::post_config(pool, state, cfg);
        // SAFETY: httpd passes the main server to post_config.
        unsafe {
            httpd::server::for_each_server_config(s, |conf| {
                // SAFETY: our per-server config is a ServerConf (see
                // fcgi_rs_create_server_config), alive for the pass.
                if let Some(c) = conf.cast::<ServerConf>().as_ref() {
                    let _ = c.state.set(state);
                }
            })
        };
        httpd::server::add_version_component(pool, crate::VERSION_COMPONENT);
        0
    })
}

/// # Safety
/// Called by httpd.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_child_init(p: *mut ffi::apr_pool_t, _s: *mut ffi::server_rec) {
    guarded("child_init", (), || {
        // SAFETY: httpd passes the child's pool.
        if let Some(pchild) = unsafe { Pool::from_raw(p) } {
            supervisor::child_init(pchild)
        }
    })
}

/// httpd's other-child notification for the process manager.
///
/// # Safety
/// Called by APR with the data pointer registered in
/// `supervisor::post_config` (the pass's `ModuleState`).
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_pm_maintenance(reason: c_int, data: *mut c_void, status: c_int) {
    guarded("the process manager supervision", (), || {
        if reason as u32 == ffi::APR_OC_REASON_DEATH || reason as u32 == ffi::APR_OC_REASON_LOST {
            // SAFETY: `data` is the pool-owned ModuleState of this generation.
            if let Some(state) = unsafe { data.cast::<ModuleState>().as_ref() } {
                httpd::process::unregister_other_child(state);
                supervisor::pm_died(state, status);
            }
        }
    })
}

/// mod_status's `status_hook` (registered by the C shim at pre_config):
/// the FastCGI section of `/server-status`, or its `?auto` lines.
///
/// # Safety
/// Called by mod_status with a valid request.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_status_hook(r: *mut ffi::request_rec, flags: c_int) -> c_int {
    guarded("the mod_status section", handler::OK, || {
        // SAFETY: valid request for this hook call.
        let Some(mut req) = (unsafe { Request::from_raw(r) }) else {
            return handler::OK;
        };
        use crate::module::status::Format;
        let flags = flags as u32;
        let format = if flags & ffi::AP_STATUS_SHORT != 0 {
            Format::Auto
        } else if flags & ffi::AP_STATUS_NOTABLE != 0 {
            Format::HtmlNoTable
        } else {
            Format::Html
        };
        crate::module::status::write(state_of(&req), &mut req, format);
        handler::OK
    })
}

/// # Safety
/// Called by httpd with a valid request.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_fixups(r: *mut ffi::request_rec) -> c_int {
    guarded("fixups", handler::DECLINED, || {
        // SAFETY: valid request for this hook call.
        let Some(mut req) = (unsafe { Request::from_raw(r) }) else {
            return handler::DECLINED;
        };
        if let Some(state) = state_of(&req) {
            if req.filename().is_some() {
                routing::fixups(state, &mut req);
            }
        }
        handler::DECLINED
    })
}

/// # Safety
/// Called by httpd with a valid request.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_handler(r: *mut ffi::request_rec) -> c_int {
    guarded("the fastcgi-script handler", HTTP_INTERNAL_SERVER_ERROR, || {
        // SAFETY: valid request for this hook call.
        let Some(mut req) = (unsafe { Request::from_raw(r) }) else {
            return handler::DECLINED;
        };
        if req.handler() != Some(routing::HANDLER.to_bytes()) {
            return handler::DECLINED;
        }
        match state_of(&req) {
            Some(state) => handler::handle(state, &mut req),
            None => {
                req.log(
                    Level::Error,
                    0,
                    "FastCGI: module not initialised (post_config did not run)",
                );
                HTTP_INTERNAL_SERVER_ERROR
            }
        }
    })
}

/// `dirwalk_stat`: lets httpd's directory walk continue through the
/// missing directories of a defined server's path (issue 10, finding 9).
/// A path on the way to a server's path is stat'ed here as httpd would
/// (so it is stat'ed once); when it does not exist, the walk is told it is
/// a directory (or, for the server's path, a file). Everything else is
/// left to httpd.
///
/// # Safety
/// Called by httpd with a valid `apr_finfo_t` and request.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_dirwalk_stat(
    finfo: *mut ffi::apr_finfo_t,
    r: *mut ffi::request_rec,
    wanted: i32,
) -> ffi::apr_status_t {
    const AP_DECLINED: ffi::apr_status_t = ffi::AP_DECLINED as ffi::apr_status_t;
    guarded("dirwalk_stat", AP_DECLINED, || {
        // SAFETY: valid request for this hook call.
        let Some(req) = (unsafe { Request::from_raw(r) }) else {
            return AP_DECLINED;
        };
        let Some(entry) = state_of(&req).and_then(|state| routing::dirwalk_entry(state, &req)) else {
            return AP_DECLINED;
        };
        // SAFETY: httpd passes the finfo it wants filled, valid for the call.
        let rv = unsafe { req.stat_filename(finfo, wanted) };
        if rv != ffi::APR_ENOENT as ffi::apr_status_t {
            return rv;
        }
        // SAFETY: as above.
        unsafe { req.set_virtual_stat(finfo, entry == routing::VirtualEntry::Directory) };
        0
    })
}

/// One of the three authorizer hooks: acts only when the request's
/// per-dir config names an application for `role` (reference section 6).
fn auth_hook(r: *mut ffi::request_rec, role: AuthRole) -> c_int {
    guarded("an authorizer hook", HTTP_INTERNAL_SERVER_ERROR, || {
        // SAFETY: valid request for this hook call.
        let Some(mut req) = (unsafe { Request::from_raw(r) }) else {
            return handler::DECLINED;
        };
        // SAFETY: our per-dir config is always a DirAuthConfig created by
        // fcgi_rs_create_dir_config/merge_dir_config in a pool that
        // outlives the request; nothing mutates it after configuration.
        let Some(dir) = (unsafe { req.dir_config().cast::<DirAuthConfig>().as_ref() }) else {
            return handler::DECLINED;
        };
        if dir.server(role).is_none() {
            return handler::DECLINED;
        }
        match state_of(&req) {
            Some(state) => auth::check(state, &mut req, dir, role),
            None => {
                req.log(
                    Level::Error,
                    0,
                    "FastCGI: module not initialised (post_config did not run)",
                );
                HTTP_INTERNAL_SERVER_ERROR
            }
        }
    })
}

/// `check_authn` (FastCgiAuthenticator).
///
/// # Safety
/// Called by httpd with a valid request.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_check_authn(r: *mut ffi::request_rec) -> c_int {
    auth_hook(r, AuthRole::Authenticator)
}

/// `check_authz` (FastCgiAuthorizer).
///
/// # Safety
/// Called by httpd with a valid request.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_check_authz(r: *mut ffi::request_rec) -> c_int {
    auth_hook(r, AuthRole::Authorizer)
}

/// `check_access` (FastCgiAccessChecker).
///
/// # Safety
/// Called by httpd with a valid request.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_check_access(r: *mut ffi::request_rec) -> c_int {
    auth_hook(r, AuthRole::AccessChecker)
}

/// `post_perdir_config`: an internal redirect or subrequest whose checks
/// httpd would skip because its per-directory configuration is its
/// origin's gets a configuration of its own when it names a FastCGI check,
/// so the check runs for its URI (issue 10, finding 12).
///
/// # Safety
/// Called by httpd with a valid request.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_post_perdir_config(r: *mut ffi::request_rec) -> c_int {
    guarded("post_perdir_config", handler::DECLINED, || {
        // SAFETY: valid request for this hook call.
        let Some(mut req) = (unsafe { Request::from_raw(r) }) else {
            return handler::DECLINED;
        };
        // SAFETY: as in auth_hook.
        if let Some(dir) = unsafe { req.dir_config().cast::<DirAuthConfig>().as_ref() } {
            auth::recheck_internal_requests(&mut req, dir);
        }
        handler::DECLINED
    })
}

fn cstr_arg<'a>(p: *const c_char) -> Option<&'a str> {
    // SAFETY: httpd passes NULL or NUL-terminated argument strings valid
    // for the directive call.
    unsafe { httpd::opt_cstr(p) }.map(|b| std::str::from_utf8(b).unwrap_or(""))
}

fn directive_result(cmd: &CmdParms, r: Result<(), String>) -> *const c_char {
    match r {
        Ok(()) => std::ptr::null(),
        Err(msg) => cmd.error(&msg),
    }
}

fn directive(cmd: *mut ffi::cmd_parms, body: impl FnOnce(&CmdParms) -> Result<(), String>) -> *const c_char {
    guarded(
        "a directive handler",
        c"mod_fastcgi: internal error while parsing a directive (see the error log)".as_ptr(),
        || {
            // SAFETY: httpd passes a valid cmd_parms for this call.
            let Some(c) = (unsafe { CmdParms::from_raw(cmd) }) else {
                return std::ptr::null();
            };
            let r = body(&c);
            directive_result(&c, r)
        },
    )
}

/// # Safety
/// Called by httpd for RAW_ARGS directives.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_cmd_raw(
    cmd: *mut ffi::cmd_parms,
    _m: *mut c_void,
    args: *const c_char,
) -> *const c_char {
    directive(cmd, |c| directives::raw(c, cstr_arg(args).unwrap_or("")))
}

/// # Safety
/// Called by httpd for TAKE1 directives.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_cmd_take1(
    cmd: *mut ffi::cmd_parms,
    _m: *mut c_void,
    arg: *const c_char,
) -> *const c_char {
    directive(cmd, |c| directives::take1(c, cstr_arg(arg).unwrap_or("")))
}

/// # Safety
/// Called by httpd for TAKE12 directives.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_cmd_take12(
    cmd: *mut ffi::cmd_parms,
    m: *mut c_void,
    a1: *const c_char,
    a2: *const c_char,
) -> *const c_char {
    directive(cmd, |c| {
        // SAFETY: `m` is this section's DirAuthConfig, created by
        // fcgi_rs_create_dir_config from the box's own mutable pointer;
        // configuration reading is single-threaded and nothing else holds
        // a reference to a section's config while its directives run.
        let Some(dir) = (unsafe { m.cast::<DirAuthConfig>().as_mut() }) else {
            return Err(format!("{}: internal error: no per-directory config", c.name()));
        };
        let running = running_state(c);
        directives::take12(c, dir, running, cstr_arg(a1).unwrap_or(""), cstr_arg(a2))
    })
}

/// The frozen configuration when a directive is read from an .htaccess
/// file at request time (None while the main configuration is parsed).
fn running_state(c: &CmdParms) -> Option<&'static ConfigState> {
    if c.check_context(ffi::NOT_IN_HTACCESS).is_ok() {
        return None;
    }
    // SAFETY: cmd->server is a valid server_rec with our config vector.
    state_of_server_config(unsafe { ffi::fcgi_shim_get_server_config(c.server()) })
}

/// # Safety
/// Called by httpd for FLAG directives.
#[no_mangle]
pub unsafe extern "C" fn fcgi_rs_cmd_flag(cmd: *mut ffi::cmd_parms, m: *mut c_void, on: c_int) -> *const c_char {
    directive(cmd, |c| {
        // SAFETY: as in fcgi_rs_cmd_take12.
        let Some(dir) = (unsafe { m.cast::<DirAuthConfig>().as_mut() }) else {
            return Err(format!("{}: internal error: no per-directory config", c.name()));
        };
        directives::flag(c, dir, on != 0)
    })
}

#[allow(dead_code)]
fn _assert_cstr(_: &CStr) {}
