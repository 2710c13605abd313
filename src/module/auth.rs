//! The authorizer roles (reference section 6, issue #5):
//! `FastCgiAuthenticator` (check_authn), `FastCgiAuthorizer` (check_authz)
//! and `FastCgiAccessChecker` (check_access).
//!
//! One check = one FastCGI exchange in the AUTHORIZER role (AU-10): the
//! environment is httpd's CGI environment plus `FCGI_APACHE_ROLE` (and
//! `REMOTE_PASSWD` for the authenticator), no request body is ever sent,
//! and only the response headers matter (AU-20). Legacy bugs fixed here:
//! - 6 (AU-20): the application's body is read to the end and dropped;
//!   nothing of it ever reaches the client;
//! - 7 (AU-24): `subprocess_env` is restored on every path (pass, denial,
//!   communication failure, panic), so `REMOTE_PASSWD` and the CGI
//!   variables never reach a content handler;
//! - 9 (AU-02): the hooks are registered the 2.4 way ahead of
//!   mod_auth_basic (c_shim), whatever the LoadModule order.
//!
//! Deliberate choices: a failing check returns the application's status
//! when it is an error status (4xx/5xx), else the role's default (401 for
//! the authenticator/authorizer, 403 for the access checker); the
//! application's headers are copied to the error response only when the
//! check is authoritative (legacy also copied them when it declined, so
//! they could appear on a response another module granted, AU-23).

use super::env;
use super::handler::{
    dynamic_conn_options, dynamic_identity, dynamic_start_delay, notify, start_dynamic, DECLINED, MAX_HEADER_BYTES, OK,
};
use super::routing::{self, Refusal};
use crate::cgi::{ResponseHead, StderrEvent};
use crate::config::{AppAddr, AuthRole, ConfigState, ConnOptions, DirAuthConfig, Server};
use crate::gateway::backends::Choice;
use crate::gateway::exchange::{self, ClientGone};
use crate::gateway::{Buffers, ExchangeError, ExchangeOpts, Failure, Frontend, HeadAction};
use crate::httpd::{Level, Request, Table};
use crate::pm::req::{ClassKey, ReqMsg};
use crate::proto::Role;
use std::path::Path;
use std::time::{Duration, Instant};

const HTTP_UNAUTHORIZED: i32 = 401;
const HTTP_FORBIDDEN: i32 = 403;

/// Runs the check for `role` (the caller has verified that `dir` names an
/// application for it). Returns OK, DECLINED or an HTTP status.
pub fn check(state: &ConfigState, r: &mut Request, dir: &DirAuthConfig, role: AuthRole) -> i32 {
    let Some(spec) = dir.server(role) else {
        return DECLINED;
    };
    let authoritative = dir.is_authoritative(role);
    // Issue 10, finding 3: what an .htaccess file tried to weaken.
    let ignored = dir.ignored().iter().filter(|i| i.role == role);
    for setting in ignored {
        let uri = String::from_utf8_lossy(r.uri()).into_owned();
        r.log(Level::Warn, 0, &setting.log_line(&uri));
    }

    // AU-13: the authenticator needs Basic credentials first.
    let password = if role == AuthRole::Authenticator {
        match r.get_basic_auth_pw() {
            Ok(pw) => Some(pw),
            Err(status) => {
                if status == HTTP_UNAUTHORIZED {
                    note_auth_failure(r);
                }
                return status;
            }
        }
    } else {
        None
    };

    // AU-11: a defined server wins, else a dynamic application (checked
    // now: 404/403 whatever the Authoritative setting).
    let target = match Target::resolve(state, r, &spec.path) {
        Ok(t) => t,
        Err(why) => return routing::refuse(r, why),
    };

    let decision = {
        // Restored when this block ends, on every path (AU-24 fixed).
        let _env = EnvRestore::new(r);
        run(r, &target, role, spec.compat, password.as_deref())
    };

    let head = match decision {
        Ok(head) => head,
        // Communication failure (already logged): fail closed.
        Err(status) => return if authoritative { status } else { DECLINED },
    };
    let code = head.status.as_ref().map(|(c, _)| i32::from(*c)).unwrap_or(200);
    let headers = collected_headers(&head);
    if code == 200 {
        export(r, &headers, spec.compat);
        return OK;
    }

    let uri = String::from_utf8_lossy(r.uri()).into_owned();
    let user = String::from_utf8_lossy(r.user().unwrap_or(b"")).into_owned();
    let line = match role {
        AuthRole::Authenticator => format!("FastCGI: authentication failed for user \"{user}\": {uri}"),
        AuthRole::Authorizer => format!("FastCGI: authorization failed for user \"{user}\": {uri}"),
        AuthRole::AccessChecker => format!("FastCGI: access denied: {uri}"),
    };
    if !authoritative {
        r.log(
            Level::Info,
            0,
            &format!("{line} (not authoritative: other modules decide)"),
        );
        return DECLINED;
    }
    r.log(Level::Error, 0, &line);
    let eho = r.err_headers_out();
    for (k, v) in &headers {
        eho.add(k, v);
    }
    let status = if (400..=599).contains(&code) {
        code
    } else if role == AuthRole::AccessChecker {
        HTTP_FORBIDDEN
    } else {
        HTTP_UNAUTHORIZED
    };
    if status == HTTP_UNAUTHORIZED {
        note_auth_failure(r);
    }
    status
}

/// Issue 10, finding 12: an authorizer decides on the URI it is shown, so
/// an internal redirect or a subrequest in a section naming a FastCGI check
/// must be checked for its own URI. httpd skips the checks of a request
/// whose per-directory configuration is its origin's (the same vector):
/// such a request gets its own copy.
pub fn recheck_internal_requests(r: &mut Request, dir: &DirAuthConfig) {
    if dir.any_server() && r.shares_dir_config_with_origin() {
        r.unshare_dir_config();
    }
}

/// Adds the challenge header of the request's AuthType. For Basic it is
/// set here (`Basic realm="<AuthName>"`, as mod_auth_basic does), so the
/// 401 carries it even when mod_auth_basic is not loaded; other types ask
/// their module through `ap_note_auth_failure`.
fn note_auth_failure(r: &mut Request) {
    let basic = r.auth_type().map(|t| t.eq_ignore_ascii_case(b"Basic")).unwrap_or(false);
    if !basic {
        if r.auth_type().is_some() {
            r.note_auth_failure();
        }
        return;
    }
    let mut v = b"Basic realm=\"".to_vec();
    v.extend_from_slice(r.auth_name().unwrap_or(b""));
    v.push(b'"');
    let name: &[u8] = if r.is_proxy_request() {
        b"Proxy-Authenticate"
    } else {
        b"WWW-Authenticate"
    };
    r.err_headers_out().set(name, &v);
}

/// Every header the application sent except `Status` (AU-20: nothing is
/// interpreted; Content-Type and Location are collected like the others).
fn collected_headers(head: &ResponseHead) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(head.other.len() + 3);
    if let Some(v) = &head.content_type {
        out.push((b"Content-Type".to_vec(), v.clone()));
    }
    if let Some(v) = &head.location {
        out.push((b"Location".to_vec(), v.clone()));
    }
    if let Some(v) = &head.content_length {
        out.push((b"Content-Length".to_vec(), v.clone()));
    }
    out.extend(head.other.iter().cloned());
    out
}

/// `Variable-NAME` → `NAME` (prefix case-insensitive), or None.
fn strip_variable(name: &[u8]) -> Option<&[u8]> {
    const P: &[u8] = b"Variable-";
    (name.len() > P.len() && name[..P.len()].eq_ignore_ascii_case(P)).then(|| &name[P.len()..])
}

/// AU-22: a passed check exports the headers as environment variables
/// for the rest of the request: all of them (a leading `Variable-`
/// stripped), or with `-compat` only the `Variable-*` ones.
fn export(r: &Request, headers: &[(Vec<u8>, Vec<u8>)], compat: bool) {
    let env = r.subprocess_env();
    for (k, v) in headers {
        match (strip_variable(k), compat) {
            (Some(name), _) => env.set(name, v),
            (None, false) => env.set(k, v),
            (None, true) => {}
        }
    }
}

/// Puts `r->subprocess_env` back as it was when created, when dropped.
struct EnvRestore {
    env: Table,
    saved: Table,
}

impl EnvRestore {
    fn new(r: &Request) -> EnvRestore {
        let env = r.subprocess_env();
        EnvRestore {
            env,
            saved: env.copy(r.pool()),
        }
    }
}

impl Drop for EnvRestore {
    fn drop(&mut self) {
        self.env.replace_with(&self.saved);
    }
}

/// How to reach the application.
enum How {
    /// External application: one attempt.
    Once,
    /// Static application: retry while the PM (re)creates the socket.
    Patiently,
    /// Dynamic application of this class.
    Dynamic { key: ClassKey, start_delay: Duration },
}

struct Target {
    app: String,
    /// The backends (several only for an external server, issue 14).
    addrs: Vec<AppAddr>,
    retry: u32,
    opts: ConnOptions,
    how: How,
    /// Its mod_status slot (static and dynamic: where the process manager
    /// records the deaths of its processes).
    stats: Option<usize>,
}

impl Target {
    fn resolve(state: &ConfigState, r: &Request, path: &Path) -> Result<Target, Refusal> {
        match state.find_server(path) {
            Some(Server::External(ext)) => Ok(Target {
                app: ext.path.to_string_lossy().into_owned(),
                addrs: ext.addrs.clone(),
                retry: ext.retry,
                opts: ext.opts.clone(),
                how: How::Once,
                stats: None,
            }),
            Some(server @ Server::Static(st)) => Ok(Target {
                app: st.path.to_string_lossy().into_owned(),
                addrs: vec![st.connect_addr()],
                retry: 0,
                opts: st.opts.clone(),
                how: How::Patiently,
                stats: super::status::server_slots(state, server).stats,
            }),
            None => {
                routing::check_dynamic_file(state, path)?;
                Ok(Target::dynamic(state, r, path))
            }
        }
    }

    /// A dynamic application (as the handler's, reference 4.6): asks the
    /// process manager to start (or, with -autoUpdate, restart) it.
    fn dynamic(state: &ConfigState, r: &Request, file: &Path) -> Target {
        let d = state.dynamic();
        let (user, group) = dynamic_identity(state, r);
        let sock = state.dynamic_socket_for(file, &user, &group);
        let key = ClassKey {
            path: file.to_path_buf(),
            user,
            group,
        };
        start_dynamic(r, d, file, &sock, &key);
        let stats = super::status::dynamic_slot(file, &sock);
        Target {
            app: file.to_string_lossy().into_owned(),
            addrs: vec![AppAddr::Unix(sock)],
            retry: 0,
            opts: dynamic_conn_options(d, false),
            how: How::Dynamic {
                key,
                start_delay: dynamic_start_delay(d),
            },
            stats,
        }
    }
}

/// The exchange's view of httpd during a check: no body goes out, the
/// response body is dropped.
struct AuthFrontend<'a, 'r> {
    r: &'a Request<'r>,
    app: &'a str,
    dynamic: Option<&'a ClassKey>,
}

impl Frontend for AuthFrontend<'_, '_> {
    fn read_body(&mut self, _max: usize, _sink: &mut dyn FnMut(&[u8])) -> Result<bool, i32> {
        // AU-10: an empty STDIN, whatever the request carries.
        Ok(true)
    }

    fn head(&mut self, _head: &ResponseHead) -> HeadAction {
        // Read the body to END_REQUEST and drop it (legacy bug 6 fixed).
        HeadAction::Discard
    }

    fn body(&mut self, _data: &[u8]) -> Result<(), ClientGone> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ClientGone> {
        Ok(())
    }

    fn nudge(&mut self) -> bool {
        if let Some(key) = self.dynamic {
            notify(self.r, &ReqMsg::Nudge(key.clone()));
        }
        true
    }

    fn stderr(&mut self, event: StderrEvent<'_>) {
        let app = self.app;
        match event {
            StderrEvent::Line { text, .. } => self.r.log(
                Level::Error,
                0,
                &format!("FastCGI: server \"{app}\" stderr: {}", String::from_utf8_lossy(text)),
            ),
            StderrEvent::NulDiscarded(n) => self.r.log(
                Level::Error,
                0,
                &format!("FastCGI: server \"{app}\" sent a null character in the stderr stream!?, discarding {n} characters of stderr"),
            ),
        }
    }
}

/// Builds the environment, talks to the application and returns its
/// header block, or (after logging one line) the status of a
/// communication failure. The caller restores `subprocess_env`.
fn run(
    r: &mut Request,
    t: &Target,
    role: AuthRole,
    compat: bool,
    password: Option<&[u8]>,
) -> Result<ResponseHead, i32> {
    let app = t.app.as_str();
    // AU-12: REMOTE_PASSWD and FCGI_APACHE_ROLE first, then httpd's CGI
    // environment with the pass-headers.
    let envt = r.subprocess_env();
    if let Some(pw) = password {
        envt.set(b"REMOTE_PASSWD", pw);
    }
    envt.set(b"FCGI_APACHE_ROLE", role.apache_role().as_bytes());
    env::prepare(r, &t.opts.pass_headers, None);
    envt.unset(b"PATH_TRANSLATED");
    if compat {
        for k in [b"SCRIPT_NAME".as_slice(), b"PATH_INFO", b"CONTENT_LENGTH"] {
            envt.unset(k);
        }
    }

    let mut bufs = Buffers::default();
    if let Err(e) = env::encode(r, &mut bufs.out, 1, Role::Authorizer, false, t.opts.pass_php_values) {
        r.log(
            Level::Error,
            0,
            &format!("FastCGI: comm with server \"{app}\" aborted: can't encode the request environment: {e}"),
        );
        return Err(500);
    }

    let idle = Duration::from_secs(u64::from(t.opts.idle_timeout.max(1)));
    let connect_timeout = if t.opts.app_conn_timeout > 0 {
        Duration::from_secs(u64::from(t.opts.app_conn_timeout))
    } else {
        idle
    };
    let runner = match t.how {
        How::Once => super::connect::Runner::External,
        How::Patiently => super::connect::Runner::Static,
        How::Dynamic { .. } => super::connect::Runner::Dynamic,
    };
    // (No connection reuse for authorizers: the shared table only serves
    // the choice among several backends.)
    let table = match t.how {
        How::Once => super::supervisor::reuse(),
        _ => None,
    };
    let peer = super::connect::peer_check(&t.opts, runner);
    let mut choice = Choice::new(
        table,
        &t.addrs,
        &[],
        t.retry,
        Some((app, peer, super::handler::log_backend_state)),
    );
    let since_ms = crate::sys::mono_ms();
    let mut conn = super::handler::connect_choice(r, app, &mut choice, &t.opts, runner, connect_timeout)?.1;
    let connected_at = Instant::now();

    let dynamic = match &t.how {
        How::Dynamic { key, start_delay } => Some((key, *start_delay)),
        _ => None,
    };
    let opts = ExchangeOpts {
        keep_conn: false,
        request_id: 1,
        idle_timeout: idle,
        flush: false,
        parse_headers: true,
        max_header_bytes: MAX_HEADER_BYTES,
        nudge_after: dynamic.map(|(_, d)| d),
        // Authorizer checks use a connection of their own each time.
        reused: false,
        stall_after: None,
    };
    let mut fe = AuthFrontend {
        r,
        app,
        dynamic: dynamic.map(|(k, _)| k),
    };
    let result = exchange::run(&mut conn, &mut fe, &opts, &mut bufs, None);
    drop(conn);

    if let (Ok(outcome), Some((key, _))) = (&result, dynamic) {
        let done = Instant::now();
        let first = outcome.first_byte.unwrap_or(done);
        notify(
            r,
            &ReqMsg::Done {
                key: key.clone(),
                queue_us: first.duration_since(connected_at).as_micros() as u64,
                conn_us: done.duration_since(first).as_micros() as u64,
            },
        );
    }
    match result {
        Ok(outcome) => outcome.head.ok_or_else(|| {
            r.log(
                Level::Error,
                0,
                &format!("FastCGI: incomplete headers (0 bytes) received from server \"{app}\""),
            );
            500
        }),
        // The decision is complete once the header block is: an
        // application that closes without END_REQUEST after it still
        // decided (its body is dropped anyway).
        Err(ExchangeError {
            failure: Failure::Truncated,
            head: Some(head),
            ..
        }) => Ok(head),
        Err(err) => {
            let (status, errno, mut msg) = err.report(app, idle);
            if let Some(slot) = t.stats.filter(|_| super::handler::may_be_a_death(&err.failure)) {
                let died = super::status::deaths_since(slot, since_ms, super::handler::DEATH_WAIT);
                msg.push_str(&super::status::deaths_text(&died));
            }
            r.log(Level::Error, errno, &msg);
            Err(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_prefix() {
        assert_eq!(strip_variable(b"Variable-AUTH_VAR"), Some(b"AUTH_VAR".as_slice()));
        assert_eq!(strip_variable(b"variable-x"), Some(b"x".as_slice()));
        assert_eq!(strip_variable(b"Variable-"), None);
        assert_eq!(strip_variable(b"X-Plain"), None);
    }

    #[test]
    fn collected_keeps_everything_but_status() {
        let head = ResponseHead {
            status: Some((403, b"403".to_vec())),
            content_type: Some(b"text/html".to_vec()),
            location: Some(b"/x".to_vec()),
            content_length: None,
            other: vec![(b"X-Fail-Hdr".to_vec(), b"f1".to_vec())],
        };
        let names: Vec<Vec<u8>> = collected_headers(&head).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            vec![b"Content-Type".to_vec(), b"Location".to_vec(), b"X-Fail-Hdr".to_vec()]
        );
    }
}
