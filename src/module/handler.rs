//! The `fastcgi-script` handler (responder role): routes the request,
//! prepares the environment, connects, runs the exchange and turns its
//! outcome into httpd's response — or into the right status and one clear
//! log line (reference 5.10, with legacy bug 8.1 fixed: once the body has
//! started, a failure aborts the connection instead of appending an error
//! page).

use super::connect::Runner;
use super::env;
use super::routing::{self, HANDLER};
use crate::cgi::{redirect_kind, Redirect, ResponseHead, StderrCap, StderrEvent, StderrVerdict};
use crate::config::ConfigState;
use crate::config::{AppAddr, ConnOptions, DynamicConfig, Server};
use crate::gateway::backends::{self, Choice, Failed};
use crate::gateway::exchange::{self, ClientGone};
use crate::gateway::mux::{self, Link};
use crate::gateway::reuse::{self, Lease};
use crate::gateway::spool::{self, Spool, SpoolError};
use crate::gateway::ConnectError;
use crate::gateway::{AppConn, Buffers, ExchangeOpts, Failure, Frontend, HeadAction};
use crate::httpd::{Brigade, Level, Request};
use crate::pm::{self, req::ClassKey, req::ReqMsg};
use crate::proto::Role;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Upper bound of the CGI header block an application may send (legacy:
/// unbounded, bug 8.20).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

pub const DECLINED: i32 = -1;
pub const OK: i32 = 0;

/// Where the request body comes from.
enum Body {
    /// Streamed from the client, piece by piece.
    Client,
    /// Collected first (chunked request), replayed from the spool.
    Spooled(Spool),
    /// No body at all.
    None,
}

struct HttpdFrontend<'a, 'r> {
    r: &'a mut Request<'r>,
    out: Brigade<'r>,
    input: Brigade<'r>,
    body: Body,
    app: &'a str,
    scratch: Vec<u8>,
    warned_long_stderr: bool,
    /// Per-request cap on the stderr text logged.
    stderr_cap: StderrCap,
    dynamic: Option<&'a DynamicCtx>,
    /// Bytes copied into `out` and not passed yet.
    pending: usize,
    /// The response is past the small-response hold: pieces go out
    /// without a copy, read by read (`streamed`).
    transient: bool,
    /// The read being handed over (`Frontend::read_begins`: its address
    /// and length), and its body pieces in order, passed without a copy by
    /// `read_consumed` (see [`Streamed`]).
    reading: Option<(usize, usize)>,
    streamed: Vec<Streamed>,
    /// A flush asked for while pieces wait for `read_consumed`.
    flush_after: bool,
    /// Connection reuse for this request.
    lease: Option<Lease>,
    /// Reading the client's body failed because the client went away.
    client_left: bool,
}

/// A response body piece waiting for the end of its read.
enum Streamed {
    /// `len` bytes at `at` of the read (passed as a transient bucket, no
    /// copy: the read buffer is borrowed again by `read_consumed`).
    InRead { at: usize, len: usize },
    /// A piece that was not in the read buffer (e.g. an nph prefix the
    /// exchange held): a copy.
    Copied(Vec<u8>),
}

/// Response pieces smaller than this are copied and held (see `body`).
const COALESCE_BELOW: usize = 8 * 1024;
/// Held bytes are passed on once they would exceed this.
const HOLD_AT_MOST: usize = 64 * 1024;

impl Frontend for HttpdFrontend<'_, '_> {
    fn read_body(&mut self, max: usize, sink: &mut dyn FnMut(&[u8])) -> Result<bool, i32> {
        match &mut self.body {
            Body::None => Ok(true),
            // An input filter's failure is an APR status, not an HTTP one
            // (LimitRequestBody: ENOSPC → 413, Timeout: TIMEUP → 408).
            Body::Client => self.r.read_body(&mut self.input, max, sink).map_err(|rv| {
                self.client_left = self.r.body_error_is_client_gone(rv);
                self.r.map_body_error(rv)
            }),
            Body::Spooled(sp) => {
                self.scratch.resize(max, 0);
                let n = sp.read(&mut self.scratch).map_err(|_| 500)?;
                if n > 0 {
                    sink(&self.scratch[..n]);
                }
                Ok(n == 0)
            }
        }
    }

    fn head(&mut self, head: &ResponseHead) -> HeadAction {
        apply_head(self.r, head);
        if redirect_kind(head).is_some() {
            HeadAction::Discard
        } else if self.r.header_only() {
            HeadAction::Stop
        } else {
            HeadAction::Stream
        }
    }

    fn body(&mut self, data: &[u8]) -> Result<(), ClientGone> {
        // Small pieces are copied and held while the response is small, so
        // it leaves with its headers and the final EOS in one write; once
        // it is larger, pieces go down the filters without a copy
        // (transient buckets into the read buffer, passed together after
        // each read).
        if !self.transient && data.len() < COALESCE_BELOW && self.pending + data.len() <= HOLD_AT_MOST {
            if self.out.write_copy(data) != 0 {
                return Err(ClientGone);
            }
            self.pending += data.len();
            return Ok(());
        }
        // Remembered by position in the read (no copy, no pointer kept):
        // `read_consumed` gets the read buffer back and passes the pieces.
        let at = data.as_ptr() as usize;
        let piece = match self.reading {
            Some((base, len)) if at >= base && at + data.len() <= base + len => Streamed::InRead {
                at: at - base,
                len: data.len(),
            },
            _ => Streamed::Copied(data.to_vec()),
        };
        self.streamed.push(piece);
        self.pending = 0;
        self.transient = true;
        Ok(())
    }

    fn read_begins(&mut self, input: &[u8]) {
        self.reading = Some((input.as_ptr() as usize, input.len()));
    }

    fn read_consumed(&mut self, input: &[u8]) -> Result<(), ClientGone> {
        let reading = self.reading.take();
        let flush = std::mem::take(&mut self.flush_after);
        if self.streamed.is_empty() {
            return Ok(());
        }
        let streamed = std::mem::take(&mut self.streamed);
        // (The exchange hands back the read it announced; a piece that
        // does not fit it is never passed — nothing is read out of bounds.)
        let same = reading == Some((input.as_ptr() as usize, input.len()));
        let pieces: Option<Vec<&[u8]>> = streamed
            .iter()
            .map(|p| match p {
                Streamed::InRead { at, len } => same.then(|| input.get(*at..at + len)).flatten(),
                Streamed::Copied(v) => Some(v.as_slice()),
            })
            .collect();
        let Some(pieces) = pieces else {
            return Err(ClientGone);
        };
        if self.r.pass_transient(&mut self.out, &pieces) != 0 || self.r.connection_aborted() {
            return Err(ClientGone);
        }
        if flush {
            self.out.push_flush();
            if self.r.pass(&mut self.out) != 0 {
                return Err(ClientGone);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ClientGone> {
        if !self.streamed.is_empty() {
            // After the pieces: at the end of this read.
            self.flush_after = true;
            return Ok(());
        }
        self.out.push_flush();
        self.pending = 0;
        if self.r.pass(&mut self.out) != 0 {
            return Err(ClientGone);
        }
        Ok(())
    }

    fn nudge(&mut self) -> bool {
        if let Some(d) = self.dynamic {
            notify(self.r, &ReqMsg::Nudge(d.key.clone()));
            return true;
        }
        // Connection reuse: no answer on a fresh connection after
        // `reuse::WAIT_MARK` — it waits for a process (see gateway::reuse).
        if let Some(lease) = self.lease.as_mut() {
            lease.waiting();
        }
        false
    }

    fn safe_method(&self) -> bool {
        matches!(self.r.method(), b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE")
    }

    fn raw_start(&mut self) {
        // Only now: an nph response that turns out not to be HTTP gets
        // httpd's own 502 page, which needs the protocol filters.
        self.r.bypass_protocol_filters();
        self.r.close_connection_after();
    }

    fn answered(&mut self) {
        if let Some(lease) = self.lease.as_mut() {
            lease.answered();
        }
    }

    fn kept_stalled(&mut self, tcp: bool) {
        // (Over TCP the peer's kernel has not even acknowledged the request:
        // the host is unreachable — the fresh connection that follows fails
        // or succeeds on its own — not an application that ignores kept
        // connections.)
        if tcp {
            return;
        }
        if let Some(lease) = self.lease.as_mut() {
            if lease.stop_keeping() {
                self.r.log(
                    Level::Warn,
                    0,
                    &format!(
                        "FastCGI: server \"{}\" left a request on a kept connection unread for {} ms: it does not serve \
                         kept connections (e.g. a threaded libfcgi application holding its accept lock); connections \
                         to it are no longer kept until the next restart (set -keep-conn 0 to make that permanent)",
                        self.app,
                        reuse::STALL_AFTER.as_millis()
                    ),
                );
            }
        }
    }

    fn reconnected(&mut self) {
        // The new connection may wait in the backlog like any fresh one.
        if let Some(lease) = self.lease.as_mut() {
            lease.connected_fresh();
            lease.waiting();
        }
    }

    fn stderr(&mut self, event: StderrEvent<'_>) {
        let app = self.app;
        match event {
            StderrEvent::Line { text, .. } if self.stderr_cap.line(text.len()) == StderrVerdict::Suppress => {}
            StderrEvent::NulDiscarded(_) if self.stderr_cap.notice() == StderrVerdict::Suppress => {}
            StderrEvent::Line { text, too_long } => {
                if too_long && !self.warned_long_stderr {
                    self.warned_long_stderr = true;
                    self.r.log(
                        Level::Warn,
                        0,
                        &format!("FastCGI: too much stderr received from server \"{app}\", increase FCGI_SERVER_MAX_STDERR_LINE_LEN (1023) and rebuild or use \"\\n\" to terminate lines"),
                    );
                }
                self.r.log(Level::Error, 0, &format!("FastCGI: server \"{app}\" stderr: {}", String::from_utf8_lossy(text)));
            }
            StderrEvent::NulDiscarded(n) => self.r.log(
                Level::Error,
                0,
                &format!("FastCGI: server \"{app}\" sent a null character in the stderr stream!?, discarding {n} characters of stderr"),
            ),
        }
    }
}

/// Applies the application's CGI headers to the request (RQ-42..RQ-44).
fn apply_head(r: &mut Request, head: &ResponseHead) {
    if let Some((code, line)) = &head.status {
        r.set_status(*code as i32);
        r.set_status_line(line);
    }
    if let Some(ct) = &head.content_type {
        r.set_content_type(ct);
    }
    if let Some(loc) = &head.location {
        r.headers_out().set(b"Location", loc);
    }
    if let Some(cl) = &head.content_length {
        r.headers_out().set(b"Content-Length", cl);
    }
    let eho = r.err_headers_out();
    for (k, v) in &head.other {
        eho.add(k, v);
    }
}

/// The handler hook.
pub fn handle(state: &ConfigState, r: &mut Request) -> i32 {
    if r.handler() != Some(HANDLER.to_bytes()) {
        return DECLINED;
    }
    let server = match routing::find_server(state, r) {
        Some(s) => s,
        None => {
            if let Err(why) = routing::check_dynamic(state, r) {
                return routing::refuse(r, why);
            }
            return serve_dynamic(state, r);
        }
    };
    match server {
        Server::External(ext) => {
            let app = ext.path.to_string_lossy();
            let slots = super::status::server_slots(state, server);
            serve(r, &app, &ext.addrs, ext.retry, &ext.opts, spool_limits(state), &slots)
        }
        Server::Static(st) => {
            let app = st.path.to_string_lossy();
            let addr = st.connect_addr();
            let slots = super::status::server_slots(state, server);
            let addrs = std::slice::from_ref(&addr);
            serve_with(
                r,
                &app,
                addrs,
                0,
                &st.opts,
                spool_limits(state),
                Connect::Patiently,
                &slots,
            )
        }
    }
}

/// Tells the process manager something about a dynamic class (legacy
/// PM-60/61: failures are ignored, and reported once they pile up).
pub(crate) fn notify(r: &Request, msg: &ReqMsg) {
    static FAILURES: AtomicU32 = AtomicU32::new(0);
    let sent = match pm::req::encode(msg) {
        Ok(bytes) => crate::httpd::process::retained_pm()
            .send_req(&bytes)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if sent.is_err() && FAILURES.fetch_add(1, Ordering::Relaxed) == 10 {
        r.log(
            Level::Warn,
            0,
            "FastCGI: write() to PM failed (ignore if a restart or shutdown is pending)",
        );
    }
}

/// A request for a dynamic application (reference 4.6, RT-14): any
/// executable `fastcgi-script` file without a server definition. The
/// process manager starts it on demand (the first request does not poll
/// for the socket as legacy did; it connects as soon as the PM has bound
/// it) and adds processes when requests wait (`-startDelay`).
fn serve_dynamic(state: &ConfigState, r: &mut Request) -> i32 {
    let d = state.dynamic();
    let file = PathBuf::from(std::ffi::OsStr::from_bytes(r.filename().unwrap_or(b"")));
    let (user, group) = dynamic_identity(state, r);
    let sock = state.dynamic_socket_for(&file, &user, &group);
    let key = ClassKey {
        path: file.clone(),
        user,
        group,
    };
    start_dynamic(r, d, &file, &sock, &key);
    let opts = dynamic_conn_options(d, d.flush);
    let app = file.to_string_lossy().into_owned();
    let dynamic = DynamicCtx {
        key,
        start_delay: dynamic_start_delay(d),
    };
    let slots = super::status::Slots {
        stats: super::status::dynamic_slot(&file, &sock),
        reuse: Vec::new(),
    };
    serve_with(
        r,
        &app,
        &[AppAddr::Unix(sock)],
        0,
        &opts,
        spool_limits(state),
        Connect::Dynamic(&dynamic),
        &slots,
    )
}

/// The user and group a dynamic class runs as, part of its key. Without a
/// wrapper the class is keyed "-"/"-" and started directly (legacy
/// PM-21). With `FastCgiWrapper` it always starts through the wrapper
/// (PM-27): as the request's suexec identity (user name, group as a
/// number), else — unlike legacy, which then exec'd the application
/// directly — as the server's User and Group, like a static application.
pub(crate) fn dynamic_identity(state: &ConfigState, r: &Request) -> (String, String) {
    if state.wrapper_path().is_none() {
        return ("-".to_string(), "-".to_string());
    }
    match r.suexec_identity() {
        Some((uid, gid, userdir)) if uid != 0 || gid != 0 => {
            (super::suexec_id::wrapper_user(uid, userdir), gid.to_string())
        }
        _ => {
            let id = state.fcgi_identity();
            (id.user, id.group)
        }
    }
}

/// Asks the process manager to start the dynamic class `key` when its
/// socket `sock` is missing, or — with `-autoUpdate` — to restart it when
/// `file` is newer than the socket (shared by the handler and the
/// authorizer roles).
pub(crate) fn start_dynamic(r: &Request, d: &DynamicConfig, file: &Path, sock: &Path, key: &ClassKey) {
    match std::fs::metadata(sock) {
        Err(_) => notify(r, &ReqMsg::Start(key.clone())),
        Ok(sock_meta) if d.auto_update => {
            let newer = std::fs::metadata(file)
                .map(|m| m.mtime() > sock_meta.mtime())
                .unwrap_or(false);
            if newer {
                notify(r, &ReqMsg::Restart(key.clone()));
                // As legacy (PM-58): give the PM a moment to retire the old
                // processes before this request connects.
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Ok(_) => {}
    }
}

/// The connection options of a dynamic application (`FastCgiConfig`).
pub(crate) fn dynamic_conn_options(d: &DynamicConfig, flush: bool) -> ConnOptions {
    ConnOptions {
        app_conn_timeout: d.app_conn_timeout,
        idle_timeout: d.idle_timeout,
        flush,
        pass_headers: d.pass_headers.clone(),
        pass_php_values: d.pass_php_values,
        nph: false,
        user: None,
        group: None,
        // Dynamic applications are never kept: the process manager counts
        // and stops their processes by load.
        keep_conn: Some(0),
        // Checked against the process manager's uid anyway (connect.rs).
        peer_uid: None,
        multiplex: false,
    }
}

/// How long a dynamic request waits for an answer before it asks the
/// process manager for another process (`-startDelay`, at least 1 s).
pub(crate) fn dynamic_start_delay(d: &DynamicConfig) -> Duration {
    Duration::from_secs(u64::from(d.start_delay.max(1)))
}

/// What a dynamic request needs to talk to the process manager.
pub struct DynamicCtx {
    key: ClassKey,
    start_delay: Duration,
}

fn is_nph(app: &str, opts: &ConnOptions) -> bool {
    opts.nph
        || Path::new(app)
            .file_name()
            .map(|n| n.to_string_lossy().starts_with("nph-"))
            .unwrap_or(false)
}

fn wants_chunked_body(r: &Request) -> bool {
    r.headers_in()
        .get(b"Transfer-Encoding")
        .map(|v| !v.eq_ignore_ascii_case(b"identity"))
        .unwrap_or(false)
}

/// Where and how much chunked request bodies may be spooled
/// (`FastCgiSpoolDir`, `FastCgiSpoolLimit`, `FastCgiSpoolTotal`).
fn spool_limits(state: &ConfigState) -> spool::Limits<'_> {
    static TABLE: std::sync::OnceLock<Option<&'static spool::Shared>> = std::sync::OnceLock::new();
    let table = *TABLE.get_or_init(|| crate::httpd::process::spool_table(false));
    spool::Limits {
        dir: state.effective_spool_dir(),
        limit: state.spool_limit(),
        total: table.map(|t| (t, state.spool_total())),
    }
}

/// Reads the whole (chunked) body into a spool: 413 past
/// `FastCgiSpoolLimit`, 503 while the bodies of all children would exceed
/// `FastCgiSpoolTotal` (one log line each).
fn spool_body(r: &mut Request, app: &str, limits: &spool::Limits<'_>) -> Result<Spool, i32> {
    let mut spool = Spool::new();
    let mut bb = r.new_brigade();
    loop {
        let mut failed = None;
        let eos = r.read_body(&mut bb, exchange::IO_CHUNK, &mut |d| {
            if failed.is_none() {
                if let Err(e) = spool.write(d, limits) {
                    failed = Some(e);
                }
            }
        });
        match failed {
            None => {}
            Some(SpoolError::TooLarge) => {
                r.log(
                    Level::Error,
                    0,
                    &format!(
                        "FastCGI: chunked request body for server \"{app}\" larger than FastCgiSpoolLimit ({} bytes): refused",
                        limits.limit
                    ),
                );
                r.close_connection_after();
                return Err(413);
            }
            Some(SpoolError::Full) => {
                r.log(
                    Level::Error,
                    0,
                    &format!(
                        "FastCGI: can't spool the chunked request body for server \"{app}\": FastCgiSpoolTotal ({} bytes) in use by other requests",
                        limits.total.map_or(0, |(_, t)| t)
                    ),
                );
                r.close_connection_after();
                return Err(503);
            }
            Some(SpoolError::Io(e)) => {
                r.log(
                    Level::Error,
                    e.raw_os_error().unwrap_or(0),
                    &format!(
                        "FastCGI: can't spool the chunked request body for server \"{app}\" in {}",
                        limits.dir.display()
                    ),
                );
                return Err(500);
            }
        }
        match eos {
            Ok(true) => break,
            Ok(false) => {}
            Err(rv) if r.body_error_is_client_gone(rv) => {
                r.log(
                    Level::Info,
                    0,
                    &format!("FastCGI: client stopped connection before the chunked request body for server \"{app}\" was complete"),
                );
                r.set_status(400);
                r.mark_client_gone();
                return Err(OK);
            }
            Err(rv) => return Err(r.map_body_error(rv)),
        }
    }
    spool.rewind().map_err(|_| 500)?;
    Ok(spool)
}

/// How to connect.
#[derive(Clone, Copy)]
pub enum Connect<'a> {
    /// Once (external applications: a refusal is final).
    Once,
    /// Retrying while the socket is being (re)created (applications our
    /// process manager runs).
    Patiently,
    /// A dynamic application: patiently, nudging the process manager while
    /// the request waits, and reporting its timing when done.
    Dynamic(&'a DynamicCtx),
}

/// Serves the request from the external application at one of `addrs`
/// (its backends, `retry`: their `-retry`).
pub fn serve(
    r: &mut Request,
    app: &str,
    addrs: &[AppAddr],
    retry: u32,
    opts: &ConnOptions,
    spool: spool::Limits<'_>,
    slots: &super::status::Slots,
) -> i32 {
    serve_with(r, app, addrs, retry, opts, spool, Connect::Once, slots)
}

/// Serves the request from the application at one of `addrs` (one, unless
/// an external server has several backends: `gateway::backends`), counted
/// for mod_status in slot `stats` (see `super::status`).
#[allow(clippy::too_many_arguments)]
pub fn serve_with(
    r: &mut Request,
    app: &str,
    addrs: &[AppAddr],
    retry: u32,
    opts: &ConnOptions,
    spool: spool::Limits<'_>,
    how: Connect<'_>,
    slots: &super::status::Slots,
) -> i32 {
    let stats = slots.stats;
    let nph = is_nph(app, opts);
    let body = if wants_chunked_body(r) {
        match spool_body(r, app, &spool) {
            Ok(s) => Body::Spooled(s),
            Err(status) => return status,
        }
    } else if r.headers_in().get(b"Content-Length").is_some() {
        Body::Client
    } else {
        Body::None
    };
    let spooled_len = match &body {
        Body::Spooled(s) => Some(s.len()),
        _ => None,
    };
    env::prepare(r, &opts.pass_headers, spooled_len);

    let runner = match how {
        Connect::Once => Runner::External,
        Connect::Patiently => Runner::Static,
        Connect::Dynamic(_) => Runner::Dynamic,
    };
    // The check every connection to this application must pass (the
    // capacity probe's too).
    let peer = super::connect::peer_check(opts, runner);
    let reuse = super::supervisor::reuse();
    let idle = Duration::from_secs(u64::from(opts.idle_timeout.max(1)));
    let connect_timeout = if opts.app_conn_timeout > 0 {
        Duration::from_secs(u64::from(opts.app_conn_timeout))
    } else {
        idle
    };
    // Which backend (several only for an external server: issue 14); the
    // shared table is not used for dynamic applications.
    let table = match how {
        Connect::Dynamic(_) => None,
        _ => reuse,
    };
    let mut choice = Choice::new(table, addrs, &slots.reuse, retry, Some((app, peer, log_backend_state)));
    // Deaths of application processes from here on may be this request's.
    let since_ms = crate::sys::mono_ms();
    let mut bufs = Buffers::default();
    // mod_status: counted from here to the end, whichever way it ends.
    let mut counted: Option<super::status::Counted> = None;
    let (pick, mut lease, request_id, reused, keep, connected) = loop {
        let Some(pick) = choice.next_backend() else {
            super::status::Counted::begin(stats).failed();
            return no_backend(r, app, &choice);
        };
        let addr = choice.addr(pick);
        let slot = pick.slot;
        // Multiplexing (gateway::mux), for an application that answered
        // FCGI_MPXS_CONNS=1 to the capacity question, under a threaded MPM
        // (prefork's one thread per child has nobody to share with).
        let mux_reqs = match (table, slot) {
            (Some(reuse), Some(slot)) if opts.keep_conn != Some(0) => {
                reuse.probe_if_needed(slot, addr, peer, |line| {
                    crate::httpd::log::main_server(Level::Info, 0, &line)
                });
                if opts.multiplex && crate::httpd::process::mpm_is_threaded() {
                    reuse.shared().mux_reqs(slot)
                } else {
                    0
                }
            }
            _ => 0,
        };
        // Connection reuse (static and external applications, see
        // gateway::reuse): a kept connection from the pool, or the right to
        // keep the new one.
        let mut lease = match (table, slot) {
            (Some(reuse), Some(slot)) if opts.keep_conn != Some(0) && mux_reqs == 0 => Some(reuse.lease(slot)),
            _ => None,
        };
        let counted = counted.get_or_insert_with(|| super::status::Counted::begin(stats));
        let open = || super::connect::open(addr, opts, runner, connect_timeout, slot);
        let (keep, reused, connected) = if mux_reqs > 0 {
            let stream = mux::pool().stream(addr, mux_reqs, spool.dir.to_path_buf(), open);
            (true, false, stream.map(Link::Mux))
        } else {
            let keep = lease.as_ref().is_some_and(|l| l.keep());
            // A kept connection may have been opened for another definition
            // of the same address, with another peer check (or none).
            let pooled = lease
                .as_mut()
                .and_then(|l| l.take_pooled())
                .filter(|c| c.peer_passes(peer));
            let reused = pooled.is_some();
            let connected = match pooled {
                Some(c) => Ok(c),
                None => open(),
            };
            (keep, reused, connected.map(Link::Own))
        };
        match connected {
            Ok(c) => {
                // A kept connection carries the next request id (finding 6:
                // late records of an earlier request are then foreign); a
                // multiplexed one, an id free on it.
                let request_id = match &c {
                    Link::Own(c) if reused => c.next_request_id(),
                    Link::Own(_) => 1,
                    Link::Mux(m) => m.request_id(),
                };
                if let Err(e) = env::encode(
                    r,
                    &mut bufs.out,
                    request_id,
                    Role::Responder,
                    keep,
                    opts.pass_php_values,
                ) {
                    r.log(
                        Level::Error,
                        0,
                        &format!(
                            "FastCGI: comm with server \"{app}\" aborted: can't encode the request environment: {e}"
                        ),
                    );
                    return 500;
                }
                backend_connected(r, app, &choice, pick);
                break (pick, lease, request_id, reused, keep, c);
            }
            Err(e) => match choice.failed(pick) {
                Failed::Single => {
                    counted.failed();
                    return super::connect::failed(r, app, addr, e, connect_timeout);
                }
                Failed::NowDown => backend_down(r, app, addr, &e, connect_timeout, choice.retry_secs()),
                Failed::AlreadyDown => {}
            },
        }
    };
    let mut counted = counted.unwrap_or_else(|| super::status::Counted::begin(stats));
    // A fresh connection with reuse: counted until its answer; the wait is
    // reported after `WAIT_MARK` if connections are kept somewhere.
    let report_wait = match (reused, lease.as_mut()) {
        (false, Some(l)) => l.connected_fresh(),
        _ => false,
    };
    let connected_at = Instant::now();
    let mut conn = connected;

    let opts_x = ExchangeOpts {
        // (A multiplexed request is not drained by its worker: dropping its
        // stream sends the abort and the reader discards the rest.)
        keep_conn: keep && !matches!(conn, Link::Mux(_)),
        request_id,
        idle_timeout: idle,
        flush: opts.flush,
        parse_headers: !nph,
        max_header_bytes: MAX_HEADER_BYTES,
        nudge_after: match how {
            Connect::Dynamic(d) => Some(d.start_delay),
            // A fresh connection still unanswered after this long is
            // probably in the listen backlog: `nudge` counts it as waiting.
            _ if report_wait => Some(reuse::WAIT_MARK),
            _ => None,
        },
        reused,
        // A kept connection whose request lies unread this long: the
        // application is not serving it (see `Failure::KeptStalled`).
        stall_after: reused.then_some(reuse::STALL_AFTER),
    };
    let out = r.new_brigade();
    let input = r.new_brigade();
    let dynamic = match how {
        Connect::Dynamic(d) => Some(d),
        _ => None,
    };
    let mut fe = HttpdFrontend {
        r,
        out,
        input,
        body,
        app,
        scratch: Vec::new(),
        warned_long_stderr: false,
        stderr_cap: StderrCap::default(),
        dynamic,
        pending: 0,
        transient: false,
        reading: None,
        streamed: Vec::new(),
        flush_after: false,
        lease,
        client_left: false,
    };
    // The backend serving the request, and whether a reconnect moved it to
    // another backend than `pick` (its lease is then not reused).
    let mut cur = pick;
    let mut switched = false;
    let mut reconnect =
        || reconnect_any(&mut choice, &mut cur, &mut switched, app, opts, runner, connect_timeout).map(Link::Own);
    let result = exchange::run(&mut conn, &mut fe, &opts_x, &mut bufs, Some(&mut reconnect));
    if let Some(line) = fe.stderr_cap.summary(app) {
        fe.r.log(Level::Error, 0, &line);
    }
    if let Link::Own(c) = &mut conn {
        c.used_request_id(request_id);
    }
    let muxed = matches!(conn, Link::Mux(_));
    // (The exchange hands every read back before it returns: no piece is
    // left waiting for a buffer that is about to go.)
    debug_assert!(fe.streamed.is_empty());
    let HttpdFrontend {
        r,
        mut out,
        dynamic,
        lease,
        client_left,
        ..
    } = fe;
    match lease {
        Some(lease) => {
            // (A request aborted with FCGI_ABORT_REQUEST and drained to
            // its END_REQUEST leaves a clean connection too.)
            let clean = match &result {
                Ok(o) => o.reusable,
                Err(e) => e.abort == exchange::Abort::Drained,
            };
            match conn {
                Link::Own(c) => lease.finish(c, !switched && clean),
                Link::Mux(m) => drop(m),
            }
        }
        None => drop(conn),
    }

    if let (Ok(outcome), Some(d)) = (&result, dynamic) {
        let done = Instant::now();
        let first = outcome.first_byte.unwrap_or(done);
        notify(
            r,
            &ReqMsg::Done {
                key: d.key.clone(),
                queue_us: first.duration_since(connected_at).as_micros() as u64,
                conn_us: done.duration_since(first).as_micros() as u64,
            },
        );
    }
    match &result {
        Ok(outcome) => counted.answered(outcome.first_byte),
        Err(err) if !client_left => counted.exchange_failed(err),
        Err(_) => {}
    }
    // The request is no longer busy before its response goes out: a client
    // that has its answer must not find it counted still (a graceful
    // restart right after it kept a removed application's row, busy, for
    // the next configuration pass: tests/status.rs, seen under prefork).
    drop(counted);
    // A backend that took the connection but never answered is down too
    // (only with several backends).
    if let Err(err) = &result {
        if matches!(err.failure, Failure::IdleTimeout) && err.header_bytes == 0 && choice.failed(cur) == Failed::NowDown
        {
            r.log(
                Level::Error,
                0,
                &format!(
                    "FastCGI: server \"{app}\": backend {} is down: no answer within the idle timeout ({} sec); \
                     out of the choice for {} s",
                    backends::shown(choice.addr(cur)),
                    idle.as_secs(),
                    choice.retry_secs()
                ),
            );
        }
    }
    // (External applications: error lines name the backend's address too.)
    // (Formatted only for an error line.)
    let at = (runner == Runner::External).then(|| choice.addr(cur));
    drop(choice);
    // An application process of ours that died during the request: the
    // error line says which and how (the process manager records deaths).
    let died = match (&result, runner, stats) {
        (Err(err), Runner::Static | Runner::Dynamic, Some(slot))
            if !client_left && super::status::is_app_failure(err) && may_be_a_death(&err.failure) =>
        {
            super::status::deaths_since(slot, since_ms, DEATH_WAIT)
        }
        _ => Vec::new(),
    };
    match result {
        Ok(outcome) => {
            if let Some(head) = &outcome.head {
                match redirect_kind(head) {
                    Some(Redirect::Internal(path)) => {
                        r.discard_body();
                        r.make_get();
                        r.internal_redirect_handler(path);
                        return OK;
                    }
                    Some(Redirect::External(_)) => {
                        r.discard_body();
                        return 302;
                    }
                    None => {}
                }
            }
            if !r.header_only() || nph {
                // Flushed now, inside the handler: httpd looks for the
                // client's next request right after the handler returns
                // and, finding none because the response was still held,
                // hands the connection to the MPM's poller (an epoll round
                // trip and a thread hand-over per request). Written first,
                // the response lets the next request arrive in time more
                // often (issue 11; the legacy module flushed too).
                out.push_flush();
                out.push_eos();
                let _ = r.pass(&mut out);
            }
            OK
        }
        Err(_) if client_left => {
            r.log(
                Level::Info,
                0,
                &format!("FastCGI: client stopped connection before the request body to server \"{app}\" was complete"),
            );
            // Nothing more goes to the client; the access log shows 400.
            r.set_status(400);
            r.mark_client_gone();
            OK
        }
        Err(err) => {
            // What the line adds to the legacy text: an external
            // application's address, a dead process of ours.
            let mut detail = at
                .map(|at| format!(" (server address {})", backends::shown(at)))
                .unwrap_or_default();
            detail.push_str(&super::status::deaths_text(&died));
            fail(r, &mut out, app, idle, err, muxed, &detail)
        }
    }
}

/// How long a failed request waits for the process manager to report the
/// death of the process that was serving it (only after a failure a death
/// causes: the connection closed or reset before the end).
pub(super) const DEATH_WAIT: Duration = Duration::from_millis(200);

/// Whether `failure` is what a process dying during the request causes.
pub(super) fn may_be_a_death(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::Incomplete
            | Failure::Truncated
            | Failure::Read(_)
            | Failure::Write(_)
            | Failure::KeptClosed
            | Failure::Length { overrun: false, .. }
    )
}

/// The errno and the line for a backend of several that goes down.
fn down_line(app: &str, addr: &AppAddr, err: &ConnectError, timeout: Duration, retry: u64) -> (i32, String) {
    let (errno, why) = match err {
        ConnectError::Failed(errno) => (*errno as i32, "connect() failed".to_string()),
        ConnectError::TimedOut => (0, format!("connect() timed out ({} sec)", timeout.as_secs())),
        ConnectError::WrongPeer { uid, expected } => (
            0,
            format!(
                "its socket is held by {}, not by uid {expected}",
                uid.map_or_else(|| "an unknown user".to_string(), |u| format!("uid {u}"))
            ),
        ),
        ConnectError::NotBound { .. } => (0, "not bound".to_string()),
    };
    (
        errno,
        format!(
            "FastCGI: server \"{app}\": backend {} is down: {why}; out of the choice for {retry} s, \
             the request goes to the next backend",
            backends::shown(addr)
        ),
    )
}

/// A backend of several could not be reached: one line when it goes down.
fn backend_down(r: &Request, app: &str, addr: &AppAddr, err: &ConnectError, timeout: Duration, retry: u64) {
    let (errno, line) = down_line(app, addr, err, timeout, retry);
    r.log(Level::Error, errno, &line);
}

/// The exchange's reconnect (a stale kept connection, or a safe request
/// reset on a fresh one): the same backend again, else — with several —
/// the next ones (the backend's process may have died with the request in
/// its listen backlog). Lines go to the main log (the request is held by
/// the exchange).
#[allow(clippy::too_many_arguments)]
fn reconnect_any(
    choice: &mut Choice<'_>,
    cur: &mut backends::Pick,
    switched: &mut bool,
    app: &str,
    opts: &ConnOptions,
    runner: Runner,
    timeout: Duration,
) -> Option<AppConn> {
    loop {
        let addr = choice.addr(*cur);
        match super::connect::open(addr, opts, runner, timeout, cur.slot) {
            Ok(c) => {
                if choice.connected(*cur) {
                    log_backend_state(format!(
                        "FastCGI: server \"{app}\": backend {} is up again (a request reached it)",
                        backends::shown(addr)
                    ));
                }
                return Some(c);
            }
            Err(e) => match choice.failed(*cur) {
                Failed::Single => return None,
                Failed::NowDown => {
                    let (errno, line) = down_line(app, addr, &e, timeout, choice.retry_secs());
                    crate::httpd::log::main_server(Level::Error, errno, &line);
                }
                Failed::AlreadyDown => {}
            },
        }
        *cur = choice.next_backend()?;
        *switched = true;
    }
}

/// Connects to one of the backends of `choice` without connection reuse
/// (authorizers): the backend picked and the connection, or the status
/// after one log line.
pub(crate) fn connect_choice(
    r: &Request,
    app: &str,
    choice: &mut Choice<'_>,
    opts: &ConnOptions,
    runner: Runner,
    timeout: Duration,
) -> Result<(backends::Pick, AppConn), i32> {
    loop {
        let Some(pick) = choice.next_backend() else {
            return Err(no_backend(r, app, choice));
        };
        let addr = choice.addr(pick);
        match super::connect::open(addr, opts, runner, timeout, pick.slot) {
            Ok(c) => {
                backend_connected(r, app, choice, pick);
                return Ok((pick, c));
            }
            Err(e) => match choice.failed(pick) {
                Failed::Single => return Err(super::connect::failed(r, app, addr, e, timeout)),
                Failed::NowDown => backend_down(r, app, addr, &e, timeout, choice.retry_secs()),
                Failed::AlreadyDown => {}
            },
        }
    }
}

/// A backend-state line for the main server's log from a helper thread (no
/// request). At `warn`, as the down lines are errors: both show at
/// httpd's default `LogLevel warn`.
pub(crate) fn log_backend_state(line: String) {
    crate::httpd::log::main_server(Level::Warn, 0, &line);
}

/// A backend took the request: one line if it had been down.
fn backend_connected(r: &Request, app: &str, choice: &Choice<'_>, pick: backends::Pick) {
    if choice.connected(pick) {
        r.log(
            Level::Warn,
            0,
            &format!(
                "FastCGI: server \"{app}\": backend {} is up again (a request reached it)",
                backends::shown(choice.addr(pick))
            ),
        );
    }
}

/// Every backend of a server is down: 503 at once, one line.
fn no_backend(r: &Request, app: &str, choice: &Choice<'_>) -> i32 {
    r.log(
        Level::Error,
        0,
        &format!(
            "FastCGI: server \"{app}\": no backend available (all {} are down; each is retried every {} s)",
            choice.count(),
            choice.retry_secs()
        ),
    );
    503
}

/// Maps an exchange failure to a status and one log line (`detail`
/// appended to the failure's own text).
fn fail(
    r: &mut Request,
    out: &mut Brigade,
    app: &str,
    idle: Duration,
    err: exchange::ExchangeError,
    muxed: bool,
    detail: &str,
) -> i32 {
    match &err.failure {
        Failure::ClientGone => {
            let abort = match err.abort {
                exchange::Abort::NotSent if muxed => {
                    "; FCGI_ABORT_REQUEST sent on the multiplexed connection, the rest of the request's output is dropped"
                }
                exchange::Abort::NotSent => "",
                exchange::Abort::Drained => {
                    "; FCGI_ABORT_REQUEST sent, the application ended the request: connection kept"
                }
                exchange::Abort::EndedThenWrote => {
                    "; FCGI_ABORT_REQUEST sent, the application ended the request but wrote on after it: \
                     connection closed"
                }
                exchange::Abort::Closed => {
                    "; FCGI_ABORT_REQUEST sent, the application did not end the request within the idle timeout \
                     and 1 MiB of output: connection closed"
                }
            };
            r.log(
                Level::Info,
                0,
                &format!("FastCGI: client stopped connection before send body completed (server \"{app}\"){abort}"),
            );
            return OK;
        }
        Failure::ClientBody(status) if !err.body_started => {
            r.log(
                Level::Info,
                0,
                &format!("FastCGI: reading the request body for server \"{app}\" failed (status {status})"),
            );
            return *status;
        }
        // The body of a redirect is discarded anyway.
        Failure::Truncated => match err.head.as_ref().and_then(redirect_kind) {
            Some(Redirect::Internal(path)) => {
                r.discard_body();
                r.make_get();
                r.internal_redirect_handler(path);
                return OK;
            }
            Some(Redirect::External(_)) => return 302,
            None => {}
        },
        _ => {}
    }
    let (status, errno, mut msg) = err.report(app, idle);
    msg.push_str(detail);
    if err.body_started {
        r.log(
            Level::Error,
            errno,
            &format!("{msg} (response already started: connection aborted)"),
        );
        r.abort_response(out);
        return OK;
    }
    r.log(Level::Error, errno, &msg);
    status
}
