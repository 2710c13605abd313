//! One FastCGI request/response exchange over a connected socket.
//!
//! The loop interleaves sending (PARAMS, then the request body as STDIN
//! records, read from the client piece by piece) with receiving (STDOUT,
//! STDERR, END_REQUEST), so neither side can deadlock the other and memory
//! stays bounded by two IO_CHUNK buffers whatever the body sizes
//! (reference RQ-01, RQ-55; legacy used four 8 KiB buffers).
//!
//! httpd is reached only through the [`Frontend`] trait, so the whole loop
//! runs in unit tests against an in-process fake application.

#[cfg(test)]
use super::conn::AppConn;
use super::conn::{IdleTimer, Transport};
use crate::cgi::{
    nph_status_line, HeaderError, HeaderScanner, ResponseHead, Scan, StderrEvent, StderrLines, NPH_PREFIX,
};
use crate::proto::{self, Decoder, Event, ProtoError, ProtocolStatus, RecordType};
use std::io::{self, IoSlice};
use std::time::Duration;

/// How much request body is read from the client per step (the size of the
/// outgoing buffer). Every upload in flight holds it (see `Buffers`): with
/// 64 KiB, 32 concurrent uploads cost httpd several MiB more than
/// mod_proxy_fcgi's 8 KiB buffers.
pub const IO_CHUNK: usize = 16 * 1024;

/// How much application output is read per syscall. Large: the pieces of a
/// read are handed to httpd as transient buckets (no copy) and passed
/// together, so one read becomes one write to the client. (Measured: 16 →
/// 64 KiB here gave 1 MiB responses +15–20 %, with no more memory growth;
/// 64 KiB for IO_CHUNK too cost 1.5 MiB more growth during uploads for no
/// clear gain.)
pub const READ_CHUNK: usize = 64 * 1024;

/// How long the application may pause before data already handed to httpd
/// is flushed to the client (legacy: 100 ms hand-over trigger, RQ-50).
pub const AUTO_FLUSH_AFTER: Duration = Duration::from_millis(100);

/// What the frontend wants done with the response body after the headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadAction {
    /// Stream the body to the client.
    Stream,
    /// Read and drop the body (redirects).
    Discard,
    /// Stop talking to the application now (HEAD requests, RQ-53).
    Stop,
}

/// The client has gone away (or the output filters failed).
#[derive(Debug)]
pub struct ClientGone;

/// httpd's side of an exchange.
pub trait Frontend {
    /// Reads the next piece of the request body (at most `max` bytes),
    /// handing data to `sink`; returns `Ok(true)` once the body is complete.
    /// `Err` carries the status for the failed read.
    fn read_body(&mut self, max: usize, sink: &mut dyn FnMut(&[u8])) -> Result<bool, i32>;
    /// The response headers are complete.
    fn head(&mut self, head: &ResponseHead) -> HeadAction;
    /// Response body bytes (after the head, or everything for nph).
    fn body(&mut self, data: &[u8]) -> Result<(), ClientGone>;
    /// Push what was handed over so far to the client.
    fn flush(&mut self) -> Result<(), ClientGone>;
    /// One line of the application's FCGI_STDERR stream.
    fn stderr(&mut self, event: StderrEvent<'_>);
    /// The application has not answered for `ExchangeOpts::nudge_after`
    /// (dynamic applications: ask the process manager for another process,
    /// legacy PM-62; kept connections: ask for one to be released). Returns
    /// whether to nudge again after another `nudge_after`.
    fn nudge(&mut self) -> bool {
        false
    }
    /// The first byte of the response arrived.
    fn answered(&mut self) {}
    /// Whether the request's method is safe (RFC 9110 section 9.2.1: GET,
    /// HEAD, OPTIONS, TRACE), so that it may be sent again when a kept
    /// connection fails before any answer even though the application may
    /// have read it (see [`ExchangeOpts::reused`]).
    fn safe_method(&self) -> bool {
        false
    }
    /// nph output was checked to start with an HTTP status line: what follows
    /// goes to the client as it is (called once, before the first
    /// [`Frontend::body`]).
    fn raw_start(&mut self) {}
    /// A stale kept connection was replaced by a fresh one (see
    /// [`ExchangeOpts::reused`]).
    fn reconnected(&mut self) {}
    /// What the application sent in one read (`input`) is about to be
    /// handed over: the [`Frontend::body`] pieces that lie in `input` may be
    /// remembered by position instead of copied, and passed on by
    /// [`Frontend::read_consumed`] with the same `input`.
    fn read_begins(&mut self, input: &[u8]) {
        let _ = input;
    }
    /// Everything of one read (`input`, as given to
    /// [`Frontend::read_begins`]) has been handed over, or the exchange
    /// stopped in the middle of it: what is remembered of it must be
    /// passed on now (the next read overwrites the buffer). Called after
    /// every read, the one with `FCGI_END_REQUEST` and failed ones included.
    fn read_consumed(&mut self, input: &[u8]) -> Result<(), ClientGone> {
        let _ = input;
        Ok(())
    }

    /// A request on a kept connection lay unread for
    /// [`ExchangeOpts::stall_after`]: the application does not serve that
    /// connection (see [`Failure::KeptStalled`]).
    /// `tcp`: on a TCP connection the bytes are not even acknowledged by
    /// the peer's kernel (the host is unreachable), which says nothing
    /// about the application's handling of kept connections.
    fn kept_stalled(&mut self, tcp: bool) {
        let _ = tcp;
    }
}

/// Per-exchange settings.
#[derive(Clone, Debug)]
pub struct ExchangeOpts {
    pub request_id: u16,
    pub idle_timeout: Duration,
    /// `-flush`: flush after every piece of output.
    pub flush: bool,
    /// Parse CGI headers (false for nph).
    pub parse_headers: bool,
    pub max_header_bytes: usize,
    /// Call [`Frontend::nudge`] each time this long passes without a first
    /// response byte.
    pub nudge_after: Option<Duration>,
    /// The connection was kept from an earlier request: if it turns out to
    /// have been closed before the application could read a byte of this
    /// request, the request is sent again (once) on a connection from the
    /// `retry` argument of [`run`] (see `State::stale_connection`).
    pub reused: bool,
    /// For a request on a kept connection: after this long without an
    /// answer, check whether the application has read the request at all.
    pub stall_after: Option<Duration>,
    /// The request was sent with `FCGI_KEEP_CONN`: when it ends early (the
    /// client went away, or a HEAD request needs no body) the application
    /// gets `FCGI_ABORT_REQUEST` and the connection is drained to the
    /// request's `FCGI_END_REQUEST` so it can be reused (see [`Abort`]).
    pub keep_conn: bool,
}

/// What became of a request ended early on a kept connection (issue 14).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Abort {
    /// Not ended early, or not on a kept connection (closing the
    /// connection is the abort then).
    #[default]
    NotSent,
    /// `FCGI_ABORT_REQUEST` sent and the request's `FCGI_END_REQUEST`
    /// read: the connection is clean.
    Drained,
    /// Sent, but the application did not end the request within the idle
    /// timeout (or wrote more than [`MAX_DRAIN`] first, or the connection
    /// failed): it is closed.
    Closed,
    /// Sent and answered, but the application wrote on after its
    /// `FCGI_END_REQUEST` (Go's net/http/fcgi lets the handler go on): the
    /// connection is closed rather than reused behind that output.
    EndedThenWrote,
}

/// Most output discarded after `FCGI_ABORT_REQUEST` before the connection
/// is closed instead.
pub const MAX_DRAIN: u64 = 1 << 20;

/// How the exchange ended, when it ended well.
#[derive(Debug)]
pub struct Outcome {
    pub head: Option<ResponseHead>,
    pub action: HeadAction,
    /// Whether the application finished with END_REQUEST (false: stopped
    /// early on purpose, e.g. HEAD).
    pub ended: bool,
    pub app_status: u32,
    /// Whether the application stopped reading the request body early.
    pub body_unsent: bool,
    pub body_bytes_out: u64,
    /// When the first byte came from the application (queue time ends, legacy
    /// PM-54).
    pub first_byte: Option<std::time::Instant>,
    /// The connection may carry another request: END_REQUEST came, the whole
    /// request was sent and nothing followed.
    pub reusable: bool,
    /// The request was sent again on a new connection (see
    /// [`ExchangeOpts::reused`]).
    pub retried: bool,
}

/// Why an exchange failed. `header_bytes` is what legacy logs as
/// `incomplete headers (N bytes)`.
#[derive(Debug)]
pub enum Failure {
    IdleTimeout,
    Read(io::Error),
    Write(io::Error),
    Protocol(ProtoError),
    Header(HeaderError),
    /// END_REQUEST with a status other than REQUEST_COMPLETE.
    Status(ProtocolStatus),
    /// The application closed or ended the request before the blank line.
    Incomplete,
    /// The application closed after the head without END_REQUEST.
    Truncated,
    /// Reading the client's body failed with this status.
    ClientBody(i32),
    ClientGone,
    /// The body did not match the application's `Content-Length`: more bytes
    /// came (`overrun`, only `declared` were passed on) or END_REQUEST came
    /// after `received` bytes.
    Length {
        declared: u64,
        received: u64,
        overrun: bool,
    },
    /// nph output that does not start with an HTTP/1.x status line.
    NotHttp,
    /// A kept connection was closed after the request was sent, with no
    /// answer: the application may have run it, so it is not sent again.
    KeptClosed,
    /// A safe request without a body lay unread on a kept connection for
    /// [`ExchangeOpts::stall_after`]: the application is not serving that
    /// connection (a multi-threaded libfcgi application built like libfcgi's
    /// own threaded example finishes a request, then waits for its accept
    /// lock while another thread holds it in accept(): the next request on
    /// its kept connection waits for a new connection to come). Sent again
    /// on a fresh connection.
    KeptStalled,
}

/// A failure plus where in the exchange it happened.
#[derive(Debug)]
pub struct ExchangeError {
    pub failure: Failure,
    pub header_bytes: usize,
    /// Whether response body bytes were already handed to httpd.
    pub body_started: bool,
    pub head: Option<ResponseHead>,
    /// For [`Failure::ClientGone`] on a kept connection: whether the
    /// request was aborted cleanly (then the connection may be reused).
    pub abort: Abort,
}

impl ExchangeError {
    /// The HTTP status, errno and the one error-log line for this failure
    /// (legacy texts, reference 5.10), for the application at `app` talked
    /// to with idle timeout `idle`.
    pub fn report(&self, app: &str, idle: Duration) -> (i32, i32, String) {
        let comm = format!("FastCGI: comm with server \"{app}\" aborted");
        let errno = |e: &io::Error| e.raw_os_error().unwrap_or(0);
        match &self.failure {
            Failure::IdleTimeout => (500, 0, format!("{comm}: idle timeout ({} sec)", idle.as_secs())),
            Failure::Read(e) => (500, errno(e), format!("{comm}: read failed")),
            Failure::Write(e) => (500, errno(e), format!("{comm}: write failed")),
            Failure::Protocol(e) => (500, 0, format!("{comm}: protocol error: {e}")),
            Failure::Header(e) => {
                let status = if matches!(e, HeaderError::TooLarge { .. }) {
                    502
                } else {
                    500
                };
                (status, 0, format!("{comm}: error parsing headers: {e}"))
            }
            Failure::Status(ProtocolStatus::Overloaded) => (
                503,
                0,
                format!("{comm}: the application is overloaded (FCGI_OVERLOADED)"),
            ),
            Failure::Status(s) => (
                500,
                0,
                format!(
                    "{comm}: protocol error: invalid FCGI_END_REQUEST status: {} != FCGI_REQUEST_COMPLETE(0)",
                    s.as_u8()
                ),
            ),
            Failure::Incomplete => (
                500,
                0,
                format!(
                    "FastCGI: incomplete headers ({} bytes) received from server \"{app}\"",
                    self.header_bytes
                ),
            ),
            Failure::Truncated => (
                500,
                0,
                format!("{comm}: the application closed the connection before FCGI_END_REQUEST"),
            ),
            Failure::ClientBody(s) => (*s, 0, format!("{comm}: reading the request body failed")),
            Failure::ClientGone => (500, 0, format!("{comm}: the client went away")),
            Failure::Length {
                declared,
                received,
                overrun: true,
            } => (
                502,
                0,
                format!("{comm}: response body longer than its Content-Length ({declared} bytes; more than {received} sent)"),
            ),
            Failure::Length { declared, received, .. } => (
                502,
                0,
                format!("{comm}: response body shorter than its Content-Length ({received} of {declared} bytes)"),
            ),
            Failure::NotHttp => (502, 0, format!("{comm}: nph output is not an HTTP response")),
            Failure::KeptClosed => (
                502,
                0,
                format!("{comm}: the application closed a kept connection without answering (the request is not sent again: it may have run)"),
            ),
            Failure::KeptStalled => (
                502,
                0,
                format!("{comm}: the application did not read a request on a kept connection, and no new connection could be made"),
            ),
        }
    }
}

/// Room for record headers and padding in `out` beyond IO_CHUNK of STDIN
/// data (one header per piece the input filters hand over).
const OUT_SLACK: usize = 4096;

/// The two IO_CHUNK buffers of an exchange. They are recycled through a
/// process-wide list instead of being freed: allocated and freed per request
/// in httpd's worker threads they land in glibc's per-thread malloc arenas
/// (up to 8 × cores per process), each of which keeps the freed memory — every
/// httpd child then retained several MiB more than mod_proxy_fcgi.
pub struct Buffers {
    pub out: Vec<u8>,
    pub input: Vec<u8>,
}

/// At most this many spare sets are kept per process (about 0.6 MiB).
const SPARE_MAX: usize = 16;
static SPARE: std::sync::Mutex<Vec<(Vec<u8>, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());

impl Default for Buffers {
    fn default() -> Self {
        if let Some((out, input)) = SPARE.lock().ok().and_then(|mut s| s.pop()) {
            return Buffers { out, input };
        }
        Buffers {
            out: Vec::with_capacity(IO_CHUNK + OUT_SLACK),
            input: vec![0u8; READ_CHUNK],
        }
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // Only the standard sizes go back (a large PARAMS stream may have
        // grown `out`).
        if self.out.capacity() != IO_CHUNK + OUT_SLACK || self.input.len() != READ_CHUNK {
            return;
        }
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let input = std::mem::take(&mut self.input);
        if let Ok(mut s) = SPARE.lock() {
            if s.len() < SPARE_MAX {
                s.push((out, input));
            }
        }
    }
}

struct State {
    out_pos: usize,
    body_done: bool,
    body_unsent: bool,
    write_failed: Option<io::Error>,
    decoder: Decoder,
    /// Bytes read but not fed to the decoder when the exchange stopped in
    /// the middle of a read (for draining after an abort).
    leftover: Vec<u8>,
    scanner: Option<HeaderScanner>,
    head: Option<ResponseHead>,
    action: HeadAction,
    stderr: StderrLines,
    unflushed: bool,
    body_started: bool,
    body_bytes_out: u64,
    ended: Option<u32>,
    first_byte: Option<std::time::Instant>,
    /// Request body bytes taken from the client.
    stdin_bytes: u64,
    /// `bufs.out` was emptied at least once (the request can no longer be
    /// replayed from it).
    out_cleared: bool,
    /// Bytes followed END_REQUEST.
    trailing: bool,
    /// The application's `Content-Length`, enforced on the streamed body.
    body_limit: Option<u64>,
    /// nph output held until its status line is checked (`None` once
    /// checked, and when headers are parsed).
    nph_prefix: Option<Vec<u8>>,
    /// Whether to look for a stalled kept connection (not after a retry).
    stall_check: bool,
}

impl State {
    fn new(opts: &ExchangeOpts) -> State {
        State {
            out_pos: 0,
            body_done: false,
            body_unsent: false,
            write_failed: None,
            decoder: Decoder::new(opts.request_id),
            leftover: Vec::new(),
            scanner: opts.parse_headers.then(|| HeaderScanner::new(opts.max_header_bytes)),
            head: None,
            action: HeadAction::Stream,
            stderr: StderrLines::new(),
            unflushed: false,
            body_started: false,
            body_bytes_out: 0,
            ended: None,
            first_byte: None,
            stdin_bytes: 0,
            out_cleared: false,
            trailing: false,
            body_limit: None,
            nph_prefix: (!opts.parse_headers).then(Vec::new),
            stall_check: opts.stall_after.is_some(),
        }
    }

    /// Whether a failure on a kept connection allows sending the request
    /// again (issue 10, finding 7). Nothing came back and the whole request
    /// is still in hand, and either
    /// - the application provably never saw a byte of it: the very first
    ///   write was refused (EPIPE/ECONNRESET) before the socket accepted
    ///   anything — any method; or
    /// - the method is safe (`safe`) and the connection was reset or closed
    ///   quietly (a request body is never sent twice): the application may
    ///   have read it, but a safe request has no side effect to repeat
    ///   (RFC 9112 section 9.3.1 allows the same automatic retry to clients).
    ///
    /// Any other request that a kept connection took and then dropped may
    /// have run (a `DELETE` ran twice when a quiet close counted as stale):
    /// that is an error for this request.
    fn stale_connection(&self, failure: &Failure, safe: bool) -> bool {
        let refused = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET));
        if self.first_byte.is_some() || self.out_cleared {
            return false;
        }
        match failure {
            Failure::Write(e) if refused(e) && self.out_pos == 0 => true,
            _ if !safe => false,
            Failure::Write(e) | Failure::Read(e) => refused(e),
            Failure::Incomplete => self.stdin_bytes == 0,
            Failure::KeptStalled => true,
            _ => false,
        }
    }
}

/// Whether `failure` is a connection the other side reset (or refused to
/// take a write on).
fn was_reset(failure: &Failure) -> bool {
    matches!(failure, Failure::Write(e) | Failure::Read(e)
        if matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET)))
}

/// Runs the exchange. `bufs.out` must already hold BEGIN_REQUEST and the
/// complete PARAMS stream. With `opts.reused`, a connection the application
/// had already closed is replaced once by `retry` and the request sent again.
#[allow(clippy::result_large_err)] // once per request; boxing buys nothing
pub fn run<T: Transport>(
    conn: &mut T,
    fe: &mut dyn Frontend,
    opts: &ExchangeOpts,
    bufs: &mut Buffers,
    retry: Option<&mut dyn FnMut() -> Option<T>>,
) -> Result<Outcome, ExchangeError> {
    let mut retry = retry;
    let mut st = State::new(opts);
    st.decoder.skip_late(conn.late_id());
    let mut retried = false;
    let res = loop {
        let res = drive(conn, fe, opts, bufs, &mut st);
        if let Err(f) = &res {
            // A kept connection may have gone stale in the pool; a fresh one
            // is only sent again when it was reset (its process died, e.g.
            // killed while the request sat in its backlog or when its
            // process manager was killed: issue 12), never after a quiet
            // close (the application may have run it and crashed).
            if st.stale_connection(f, fe.safe_method()) && (opts.reused || was_reset(f)) {
                if let Some(fresh) = retry.take().and_then(|r| r()) {
                    *conn = fresh;
                    retried = true;
                    fe.reconnected();
                    let body_done = st.body_done;
                    let stdin_bytes = st.stdin_bytes;
                    st = State::new(opts);
                    st.stall_check = false;
                    st.body_done = body_done;
                    st.stdin_bytes = stdin_bytes;
                    continue;
                }
            }
        }
        break res;
    };
    // A kept connection that took a request with side effects and closed
    // without a word (a safe request was offered to `retry`: if no fresh
    // connection could be made, the application is gone and the usual
    // "incomplete headers" applies).
    let res = match res {
        Err(Failure::Incomplete) if opts.reused && !retried && st.first_byte.is_none() && !fe.safe_method() => {
            Err(Failure::KeptClosed)
        }
        other => other,
    };
    if let Some(tail) = st.stderr.finish() {
        fe.stderr(StderrEvent::Line {
            text: tail,
            too_long: false,
        });
    }
    // Ended early on a kept connection: FCGI_ABORT_REQUEST, then drain.
    let ended = st.ended.is_some();
    let abort = match &res {
        Err(Failure::ClientGone) | Ok(()) if opts.keep_conn && !ended => abort_and_drain(conn, opts, bufs, &mut st),
        _ => Abort::NotSent,
    };
    if abort == Abort::Drained {
        conn.aborted(opts.request_id);
    }
    match res {
        Ok(()) => {
            // No flush here: the caller ends the response with EOS, which
            // sends whatever is held together with it.
            Ok(Outcome {
                head: st.head,
                action: st.action,
                ended,
                app_status: st.ended.unwrap_or(0),
                body_unsent: st.body_unsent || !st.body_done,
                body_bytes_out: st.body_bytes_out,
                first_byte: st.first_byte,
                reusable: (ended || abort == Abort::Drained)
                    && !st.trailing
                    && st.body_done
                    && !st.body_unsent
                    && st.write_failed.is_none()
                    && st.out_pos == bufs.out.len(),
                retried,
            })
        }
        Err(failure) => Err(ExchangeError {
            failure,
            header_bytes: st.scanner.as_ref().map(|s| s.bytes_received()).unwrap_or(0),
            body_started: st.body_started,
            head: st.head,
            abort,
        }),
    }
}

/// Sends `FCGI_ABORT_REQUEST` for a request ended early on a kept
/// connection and reads (discarding) up to its `FCGI_END_REQUEST`, within
/// the idle timeout and [`MAX_DRAIN`] bytes of output. Only when the whole
/// request is out (a record cut in the middle could not be followed).
fn abort_and_drain<T: Transport>(conn: &mut T, opts: &ExchangeOpts, bufs: &mut Buffers, st: &mut State) -> Abort {
    if !st.body_done || st.out_pos != bufs.out.len() || st.write_failed.is_some() {
        return Abort::Closed;
    }
    let deadline = std::time::Instant::now() + opts.idle_timeout;
    let mut rec = Vec::with_capacity(8);
    proto::encode_abort_request(&mut rec, opts.request_id);
    let mut sent = 0;
    let mut discarded = 0u64;
    let mut pending = std::mem::take(&mut st.leftover);
    loop {
        // Feed what was read, record by record.
        let mut data = &pending[..];
        while !data.is_empty() {
            let Ok((used, ev)) = st.decoder.feed(data) else {
                return Abort::Closed;
            };
            data = &data[used..];
            match ev {
                Some(Event::Stdout(d)) | Some(Event::Stderr(d)) => {
                    discarded += d.len() as u64;
                    if discarded > MAX_DRAIN {
                        return Abort::Closed;
                    }
                }
                Some(Event::EndRequest { app_status, .. }) => {
                    st.ended = Some(app_status);
                    st.trailing = !data.is_empty();
                    // (Ended before the abort went out, or after all of it.)
                    return if st.trailing {
                        Abort::EndedThenWrote
                    } else if sent > 0 && sent < rec.len() {
                        Abort::Closed
                    } else {
                        Abort::Drained
                    };
                }
                Some(_) => {}
                None if used == 0 => break,
                None => {}
            }
        }
        pending.clear();
        if sent < rec.len() {
            match conn.try_write_vectored(&[IoSlice::new(&rec[sent..])]) {
                Ok(Some(n)) => sent += n,
                Ok(None) => {}
                Err(_) => return Abort::Closed,
            }
        }
        match conn.try_read(&mut bufs.input) {
            Ok(Some(0)) | Err(_) => return Abort::Closed,
            Ok(Some(n)) => {
                pending.extend_from_slice(&bufs.input[..n]);
                continue;
            }
            Ok(None) => {}
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Abort::Closed;
        }
        if conn.wait(true, sent < rec.len(), deadline - now).is_err() {
            return Abort::Closed;
        }
    }
}

/// Header bytes received so far while the head is incomplete.
fn header_progress(st: &State) -> u64 {
    st.scanner.as_ref().map_or(0, |s| s.bytes_received() as u64)
}

fn drive<T: Transport>(
    conn: &mut T,
    fe: &mut dyn Frontend,
    opts: &ExchangeOpts,
    bufs: &mut Buffers,
    st: &mut State,
) -> Result<(), Failure> {
    let mut idle = IdleTimer::new(opts.idle_timeout);
    let mut next_nudge = opts.nudge_after.map(|d| std::time::Instant::now() + d);
    // Whether a read may find something: not before the application has
    // had the request (a fresh connection has nothing to read, a kept one
    // was polled empty before reuse), and not after a read came back empty
    // until poll says so — each empty read is a wasted system call (issue
    // 11: two per request before).
    let mut may_read = false;
    let mut next_stall = if st.stall_check {
        opts.stall_after.map(|d| std::time::Instant::now() + d)
    } else {
        None
    };
    loop {
        let mut progressed = false;

        // 1. Refill the outgoing buffer from the client body — also before
        // the first write, so BEGIN_REQUEST, PARAMS and the start of STDIN
        // (all of it for a GET) leave in one write and wake the application
        // once.
        let pending = bufs.out.len() - st.out_pos;
        if pending < IO_CHUNK && !st.body_done && st.write_failed.is_none() {
            if pending == 0 && st.out_pos > 0 {
                bufs.out.clear();
                st.out_pos = 0;
                st.out_cleared = true;
            } else if st.out_pos > 0 {
                // Keep `out` within IO_CHUNK + OUT_SLACK (no regrowth).
                bufs.out.drain(..st.out_pos);
                st.out_pos = 0;
                st.out_cleared = true;
            }
            let out = &mut bufs.out;
            let stdin_bytes = &mut st.stdin_bytes;
            // (The pieces of one read go out as few records as possible.)
            let mut records = proto::StreamAppender::new(RecordType::Stdin, opts.request_id);
            let read = fe.read_body(IO_CHUNK - pending, &mut |data| {
                *stdin_bytes += data.len() as u64;
                records.push(out, data)
            });
            records.close(out);
            let eos = read.map_err(Failure::ClientBody)?;
            if eos {
                proto::encode_stream_end(&mut bufs.out, RecordType::Stdin, opts.request_id);
                st.body_done = true;
            }
            progressed = true;
        }

        // 2. Send what is pending.
        let want_write = st.out_pos < bufs.out.len() && st.write_failed.is_none();
        if want_write {
            match conn.try_write_vectored(&[IoSlice::new(&bufs.out[st.out_pos..])]) {
                Ok(Some(n)) if n > 0 => {
                    st.out_pos += n;
                    idle.touch();
                    progressed = true;
                }
                Ok(_) => {}
                Err(e) => {
                    // The application stopped reading (it may well have
                    // answered already): keep reading its response.
                    st.write_failed = Some(e);
                    st.body_unsent = true;
                    progressed = true;
                }
            }
        }

        // 3. Receive what is available.
        let read = if may_read {
            conn.try_read(&mut bufs.input)
        } else {
            Ok(None)
        };
        match read {
            Ok(Some(0)) => {
                return Err(eof_failure(st));
            }
            Ok(Some(n)) => {
                progressed = true;
                if st.first_byte.is_none() {
                    st.first_byte = Some(std::time::Instant::now());
                    next_nudge = None;
                    next_stall = None;
                    fe.answered();
                }
                let head_before = header_progress(st);
                let input = &bufs.input[..n];
                fe.read_begins(input);
                let handled = handle_input(fe, opts, st, input);
                // Whatever came of it, the read's pieces go out now (those
                // before a failure too: e.g. the body up to its
                // Content-Length before an overrun).
                let consumed = fe.read_consumed(input);
                if handled? {
                    // (The request is complete; a client that left during
                    // its last piece is the handler's to notice.)
                    return Ok(());
                }
                // Header bytes trickling in do not hold the idle timer off (issue 12).
                if st.head.is_some() || header_progress(st) == head_before {
                    idle.touch();
                }
                consumed.map_err(|_| Failure::ClientGone)?;
            }
            Ok(None) => may_read = false,
            Err(e) => {
                if st.head.is_none() {
                    if let Some(w) = st.write_failed.take() {
                        return Err(Failure::Write(w));
                    }
                }
                return Err(Failure::Read(e));
            }
        }

        if progressed {
            continue;
        }

        // 4. Nothing to do right now: wait.
        let remaining = idle.remaining();
        if remaining.is_zero() {
            return Err(Failure::IdleTimeout);
        }
        let mut wait_for = if st.unflushed {
            remaining.min(AUTO_FLUSH_AFTER)
        } else {
            remaining
        };
        if let Some(due) = next_stall {
            let now = std::time::Instant::now();
            if due <= now {
                next_stall = None;
                if st.out_pos == bufs.out.len() && conn.peer_has_unread() {
                    fe.kept_stalled(conn.is_tcp());
                    if st.body_done && st.stdin_bytes == 0 && fe.safe_method() {
                        return Err(Failure::KeptStalled);
                    }
                }
                continue;
            }
            wait_for = wait_for.min(due - now);
        }
        if let Some(due) = next_nudge {
            let now = std::time::Instant::now();
            if due <= now {
                next_nudge = if fe.nudge() {
                    opts.nudge_after.map(|d| now + d)
                } else {
                    None
                };
                continue;
            }
            wait_for = wait_for.min(due - now);
        }
        let want_write = st.out_pos < bufs.out.len() && st.write_failed.is_none();
        match conn.wait(true, want_write, wait_for) {
            Ok(Some((readable, _))) => may_read |= readable,
            Ok(None) => {
                if st.unflushed {
                    st.unflushed = false;
                    fe.flush().map_err(|_| Failure::ClientGone)?;
                }
            }
            Err(e) => return Err(Failure::Read(e)),
        }
    }
}

fn eof_failure(st: &mut State) -> Failure {
    if let Some(prefix) = &st.nph_prefix {
        if nph_status_line(prefix, true) != Some(true) {
            return Failure::NotHttp;
        }
    }
    if st.head.is_none() && st.scanner.is_some() {
        if let Some(w) = st.write_failed.take() {
            return Failure::Write(w);
        }
        Failure::Incomplete
    } else {
        Failure::Truncated
    }
}

/// Feeds received bytes through the decoder. Returns `Ok(true)` when the
/// exchange is over.
fn handle_input(fe: &mut dyn Frontend, opts: &ExchangeOpts, st: &mut State, mut data: &[u8]) -> Result<bool, Failure> {
    while !data.is_empty() {
        let (used, ev) = st.decoder.feed(data).map_err(Failure::Protocol)?;
        data = &data[used..];
        match ev {
            Some(Event::Stdout(d)) => {
                let stop = on_stdout(fe, opts, st, d);
                if !matches!(stop, Ok(false)) {
                    // (Stopped mid-read: what follows is kept for draining.)
                    st.leftover = data.to_vec();
                }
                if stop? {
                    return Ok(true);
                }
            }
            Some(Event::Stderr(d)) => st.stderr.push(d, &mut |e| fe.stderr(e)),
            Some(Event::EndRequest {
                app_status,
                protocol_status,
            }) => {
                if protocol_status != ProtocolStatus::RequestComplete {
                    return Err(Failure::Status(protocol_status));
                }
                if st.head.is_none() && st.scanner.is_some() {
                    return Err(Failure::Incomplete);
                }
                if let Some(prefix) = st.nph_prefix.take() {
                    if nph_status_line(&prefix, true) != Some(true) {
                        return Err(Failure::NotHttp);
                    }
                    fe.raw_start();
                    send_body(fe, opts, st, &prefix)?;
                }
                if let Some(declared) = st.body_limit {
                    if st.body_bytes_out < declared {
                        return Err(Failure::Length {
                            declared,
                            received: st.body_bytes_out,
                            overrun: false,
                        });
                    }
                }
                st.ended = Some(app_status);
                st.trailing = !data.is_empty();
                return Ok(true);
            }
            Some(_) => {}
            None => {
                if used == 0 {
                    break;
                }
            }
        }
    }
    Ok(false)
}

fn on_stdout(fe: &mut dyn Frontend, opts: &ExchangeOpts, st: &mut State, d: &[u8]) -> Result<bool, Failure> {
    if d.is_empty() {
        return Ok(false);
    }
    if st.head.is_none() {
        if let Some(scanner) = st.scanner.as_mut() {
            match scanner.push(d).map_err(Failure::Header)? {
                Scan::NeedMore => return Ok(false),
                Scan::Done { headers, body_start } => {
                    st.action = fe.head(&headers);
                    st.body_limit = match st.action {
                        HeadAction::Stream if status_has_body(&headers) => headers.declared_length(),
                        _ => None,
                    };
                    st.head = Some(headers);
                    match st.action {
                        HeadAction::Stop => return Ok(true),
                        HeadAction::Discard => return Ok(false),
                        HeadAction::Stream => return send_body(fe, opts, st, body_start).map(|_| false),
                    }
                }
            }
        }
    }
    if let Some(prefix) = st.nph_prefix.as_mut() {
        // nph: hold the first bytes until they show an HTTP status line.
        let take = d.len().min(NPH_PREFIX.saturating_sub(prefix.len()));
        prefix.extend_from_slice(&d[..take]);
        match nph_status_line(prefix, false) {
            None => return Ok(false),
            Some(false) => return Err(Failure::NotHttp),
            Some(true) => {
                let prefix = st.nph_prefix.take().unwrap_or_default();
                fe.raw_start();
                send_body(fe, opts, st, &prefix)?;
                send_body(fe, opts, st, &d[take..])?;
                return Ok(false);
            }
        }
    }
    if st.action == HeadAction::Stream {
        send_body(fe, opts, st, d)?;
    }
    Ok(false)
}

/// Whether the response status may carry a body (RFC 9110 sections 6.4.1,
/// 15.3.5, 15.4.5): the `Content-Length` of a 1xx, 204 or 304 describes no
/// bytes on the wire, and httpd drops such a body itself.
fn status_has_body(head: &ResponseHead) -> bool {
    let code = head.status.as_ref().map_or(200, |(c, _)| *c);
    !(100..200).contains(&code) && code != 204 && code != 304
}

fn send_body(fe: &mut dyn Frontend, opts: &ExchangeOpts, st: &mut State, d: &[u8]) -> Result<(), Failure> {
    if d.is_empty() {
        return Ok(());
    }
    // The application's Content-Length is what httpd tells the client:
    // bytes beyond it would be read as the next response on a kept client
    // connection (issue 10, finding 5). Pass what fits, then fail.
    let (d, overrun) = match st.body_limit {
        Some(limit) if st.body_bytes_out + d.len() as u64 > limit => (&d[..(limit - st.body_bytes_out) as usize], true),
        _ => (d, false),
    };
    if !d.is_empty() {
        st.body_started = true;
        st.body_bytes_out += d.len() as u64;
        fe.body(d).map_err(|_| Failure::ClientGone)?;
    }
    if overrun {
        return Err(Failure::Length {
            declared: st.body_bytes_out,
            received: st.body_bytes_out,
            overrun: true,
        });
    }
    if opts.flush {
        fe.flush().map_err(|_| Failure::ClientGone)?;
        st.unflushed = false;
    } else {
        st.unflushed = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The exchange loop against an in-process fake application over a
    //! socketpair (STYLE tier 2): no httpd involved.
    use super::*;
    use crate::proto::RecordHeader;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::thread;

    /// A frontend that serves a body from memory and records the response.
    #[derive(Default)]
    struct Fake {
        body: Vec<u8>,
        body_pos: usize,
        piece: usize,
        head: Option<ResponseHead>,
        out: Vec<u8>,
        flushes: usize,
        stderr: Vec<Vec<u8>>,
        fail_body_after: Option<usize>,
        /// Answer the head with `HeadAction::Stop` (a HEAD request).
        stop_at_head: bool,
        /// Body bytes received since the last `read_consumed`, per call.
        since_consumed: usize,
        /// The read being handed over (`read_begins`: address, length).
        reading: Option<(usize, usize)>,
        /// Body bytes that did not lie in the read being handed over.
        outside_read: usize,
        consumed_calls: Vec<usize>,
        reconnects: usize,
        safe: bool,
    }

    impl Frontend for Fake {
        fn safe_method(&self) -> bool {
            self.safe
        }
        fn reconnected(&mut self) {
            self.reconnects += 1;
        }
        fn read_begins(&mut self, input: &[u8]) {
            assert_eq!(self.reading, None, "read_begins twice");
            self.reading = Some((input.as_ptr() as usize, input.len()));
        }
        fn read_consumed(&mut self, input: &[u8]) -> Result<(), ClientGone> {
            assert_eq!(self.reading.take(), Some((input.as_ptr() as usize, input.len())));
            self.consumed_calls.push(std::mem::take(&mut self.since_consumed));
            Ok(())
        }
        fn read_body(&mut self, max: usize, sink: &mut dyn FnMut(&[u8])) -> Result<bool, i32> {
            let n = max.min(self.piece.max(1)).min(self.body.len() - self.body_pos);
            if n > 0 {
                sink(&self.body[self.body_pos..self.body_pos + n]);
                self.body_pos += n;
            }
            Ok(self.body_pos == self.body.len())
        }
        fn head(&mut self, head: &ResponseHead) -> HeadAction {
            self.head = Some(head.clone());
            if self.stop_at_head {
                HeadAction::Stop
            } else {
                HeadAction::Stream
            }
        }
        fn body(&mut self, data: &[u8]) -> Result<(), ClientGone> {
            if let Some(limit) = self.fail_body_after {
                if self.out.len() + data.len() > limit {
                    return Err(ClientGone);
                }
            }
            self.out.extend_from_slice(data);
            self.since_consumed += data.len();
            let at = data.as_ptr() as usize;
            match self.reading {
                Some((base, len)) if at >= base && at + data.len() <= base + len => {}
                _ => self.outside_read += data.len(),
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<(), ClientGone> {
            self.flushes += 1;
            Ok(())
        }
        fn stderr(&mut self, event: StderrEvent<'_>) {
            if let StderrEvent::Line { text, .. } = event {
                self.stderr.push(text.to_vec());
            }
        }
    }

    fn opts() -> ExchangeOpts {
        ExchangeOpts {
            request_id: 1,
            idle_timeout: Duration::from_secs(5),
            flush: false,
            parse_headers: true,
            max_header_bytes: 64 * 1024,
            nudge_after: None,
            reused: false,
            stall_after: None,
            keep_conn: false,
        }
    }

    fn read_record(s: &mut UnixStream) -> std::io::Result<(RecordType, Vec<u8>)> {
        let mut h = [0u8; 8];
        s.read_exact(&mut h)?;
        let hdr = RecordHeader::from_bytes(&h);
        let mut content = vec![0u8; usize::from(hdr.content_length) + usize::from(hdr.padding_length)];
        s.read_exact(&mut content)?;
        content.truncate(usize::from(hdr.content_length));
        Ok((hdr.rtype, content))
    }

    /// Reads the whole request; returns (params bytes, stdin bytes).
    fn read_request(s: &mut UnixStream) -> (Vec<u8>, Vec<u8>) {
        let (mut params, mut stdin) = (Vec::new(), Vec::new());
        loop {
            let (t, c) = read_record(s).expect("request record");
            match t {
                RecordType::Params => params.extend_from_slice(&c),
                RecordType::Stdin if c.is_empty() => return (params, stdin),
                RecordType::Stdin => stdin.extend_from_slice(&c),
                _ => {}
            }
        }
    }

    fn respond(s: &mut UnixStream, stdout: &[u8]) {
        let mut out = Vec::new();
        proto::encode_stream(&mut out, RecordType::Stdout, 1, stdout);
        proto::encode_stream_end(&mut out, RecordType::Stdout, 1);
        out.extend_from_slice(&RecordHeader::new(RecordType::EndRequest, 1, 8).to_bytes());
        out.extend_from_slice(&[0; 8]);
        s.write_all(&out).unwrap();
    }

    #[allow(clippy::result_large_err)]
    fn run_with(
        fake: &mut Fake,
        o: &ExchangeOpts,
        app: impl FnOnce(UnixStream) + Send + 'static,
    ) -> Result<Outcome, ExchangeError> {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || app(theirs));
        let mut conn = AppConn::from_stream(ours).unwrap();
        let mut bufs = Buffers::default();
        proto::encode_begin_request(&mut bufs.out, 1, proto::Role::Responder, false);
        proto::encode_params(&mut bufs.out, 1, [(b"A".as_slice(), b"1".as_slice())]).unwrap();
        let r = run(&mut conn, fake, o, &mut bufs, None);
        drop(conn);
        t.join().unwrap();
        r
    }

    fn request_bufs() -> Buffers {
        let mut bufs = Buffers::default();
        proto::encode_begin_request(&mut bufs.out, 1, proto::Role::Responder, true);
        proto::encode_params(&mut bufs.out, 1, [(b"A".as_slice(), b"1".as_slice())]).unwrap();
        bufs
    }

    #[test]
    fn body_pieces_are_released_after_each_read() {
        // Pieces handed to `body` may point into the read buffer: the
        // frontend hears after every read, before the buffer is reused.
        let mut fake = Fake::default();
        let r = run_with(&mut fake, &opts(), |mut s| {
            read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Content-Type: text/plain\r\n\r\n");
            for i in 0..40u8 {
                proto::encode_stream(&mut out, RecordType::Stdout, 1, &[b'a' + i % 26; 8000]);
            }
            proto::encode_stream_end(&mut out, RecordType::Stdout, 1);
            out.extend_from_slice(&RecordHeader::new(RecordType::EndRequest, 1, 8).to_bytes());
            out.extend_from_slice(&[0; 8]);
            for piece in out.chunks(50_000) {
                s.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .unwrap();
        assert!(r.ended);
        assert_eq!(fake.out.len(), 320_000);
        assert!(fake.consumed_calls.len() >= 4, "{:?}", fake.consumed_calls);
        assert!(fake.consumed_calls.iter().all(|&n| n <= READ_CHUNK));
        // Every piece was handed over inside a read and released with it,
        // the last read's (with END_REQUEST) included.
        assert_eq!(fake.consumed_calls.iter().sum::<usize>(), 320_000);
        assert_eq!((fake.since_consumed, fake.outside_read, fake.reading), (0, 0, None));
    }

    #[test]
    fn kept_connection_carries_several_requests() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || {
            for i in 0..3 {
                let (_p, stdin) = read_request(&mut theirs);
                respond(
                    &mut theirs,
                    format!("Content-Type: text/plain\r\n\r\n{i}:{}", stdin.len()).as_bytes(),
                );
            }
        });
        let mut conn = AppConn::from_stream(ours).unwrap();
        for i in 0..3 {
            let mut fake = Fake {
                body: body(i * 70_000),
                piece: 30_000,
                ..Default::default()
            };
            let o = ExchangeOpts {
                reused: i > 0,
                ..opts()
            };
            let r = run(&mut conn, &mut fake, &o, &mut request_bufs(), None).unwrap();
            assert!(r.reusable && !r.retried, "request {i}");
            assert_eq!(fake.out, format!("{i}:{}", i * 70_000).as_bytes());
        }
        t.join().unwrap();
    }

    #[test]
    fn not_reusable_unless_clean() {
        // Bytes after END_REQUEST.
        let mut fake = Fake::default();
        let r = run_with(&mut fake, &opts(), |mut s| {
            read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Content-Type: text/plain\r\n\r\nok");
            out.extend_from_slice(&RecordHeader::new(RecordType::EndRequest, 1, 8).to_bytes());
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&RecordHeader::new(RecordType::Stdout, 1, 0).to_bytes());
            s.write_all(&out).unwrap();
        })
        .unwrap();
        assert!(r.ended && !r.reusable);
        // END_REQUEST before the application read the body.
        let mut fake = Fake {
            body: body(4 << 20),
            piece: 65536,
            ..Default::default()
        };
        let r = run_with(&mut fake, &opts(), |mut s| {
            let _ = read_record(&mut s);
            respond(&mut s, b"Content-Type: text/plain\r\n\r\nearly");
            std::thread::sleep(Duration::from_millis(100));
        })
        .unwrap();
        assert!(r.ended && !r.reusable);
        // A clean one is.
        let mut fake = Fake::default();
        let r = run_with(&mut fake, &opts(), |mut s| {
            read_request(&mut s);
            respond(&mut s, b"Content-Type: text/plain\r\n\r\nok");
        })
        .unwrap();
        assert!(r.reusable);
    }

    /// A fresh connection to an application thread that reads one request
    /// and answers `answer(its stdin)` as STDOUT.
    fn answering_conn(answer: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static) -> AppConn {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        thread::spawn(move || {
            let (_p, stdin) = read_request(&mut theirs);
            respond(&mut theirs, &answer(&stdin));
        });
        AppConn::from_stream(ours).unwrap()
    }

    /// Runs one request on a "kept" connection the application has already
    /// closed; `retry` hands out a working one.
    #[allow(clippy::result_large_err)]
    fn run_stale(fake: &mut Fake, reused: bool, with_retry: bool) -> (Result<Outcome, ExchangeError>, usize) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let mut conn = AppConn::from_stream(ours).unwrap();
        let mut calls = 0;
        let mut retry = || {
            calls += 1;
            Some(answering_conn(|stdin| {
                format!("Content-Type: text/plain\r\n\r\nfresh {}", stdin.len()).into_bytes()
            }))
        };
        let o = ExchangeOpts { reused, ..opts() };
        let r = run(
            &mut conn,
            fake,
            &o,
            &mut request_bufs(),
            if with_retry { Some(&mut retry) } else { None },
        );
        (r, calls)
    }

    #[test]
    fn stale_kept_connection_is_retried_once_on_a_fresh_one() {
        let mut fake = Fake::default();
        let (r, calls) = run_stale(&mut fake, true, true);
        let r = r.unwrap();
        assert!(r.retried && r.reusable);
        assert_eq!((calls, fake.out.as_slice()), (1, b"fresh 0".as_slice()));
        assert_eq!(fake.reconnects, 1, "the frontend hears of the new connection");
        // A small body is still in hand: sent again (EPIPE: nothing was taken).
        let mut fake = Fake {
            body: body(1000),
            piece: 1000,
            ..Default::default()
        };
        let (r, calls) = run_stale(&mut fake, true, true);
        assert_eq!((calls, fake.out.as_slice()), (1, b"fresh 1000".as_slice()));
        assert!(r.unwrap().retried);
        // A larger body: the first write failed, so nothing left our
        // hands; the rest still comes from the client.
        let mut fake = Fake {
            body: body(300_000),
            piece: 65536,
            ..Default::default()
        };
        let (r, calls) = run_stale(&mut fake, true, true);
        assert_eq!((calls, fake.out.as_slice()), (1, b"fresh 300000".as_slice()));
        assert!(r.unwrap().retried);
        // A fresh connection refused at once (its process died after the
        // accept: issue 12) is retried the same way.
        let mut fake = Fake::default();
        let (r, calls) = run_stale(&mut fake, false, true);
        assert!(r.unwrap().retried);
        assert_eq!(calls, 1);
    }

    // Issue 12: on a fresh connection, a safe request reset after the
    // application took it is sent again once; one closed quietly (the
    // application may have run it) or an unsafe one is not.
    #[test]
    fn fresh_connection_is_retried_only_when_reset() {
        for (safe, reset, retried) in [(true, true, true), (true, false, false), (false, true, false)] {
            let (ours, mut theirs) = UnixStream::pair().unwrap();
            let app = thread::spawn(move || {
                let mut head = [0u8; 8];
                theirs.read_exact(&mut head).unwrap();
                if !reset {
                    // Read everything, then close without an answer.
                    theirs
                        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
                        .unwrap();
                    let mut rest = Vec::new();
                    let _ = theirs.read_to_end(&mut rest);
                }
                // (Closing with unread input resets the connection.)
            });
            let mut conn = AppConn::from_stream(ours).unwrap();
            let mut calls = 0;
            let mut retry = || {
                calls += 1;
                Some(answering_conn(|_| b"Content-Type: text/plain\r\n\r\nagain".to_vec()))
            };
            let mut fake = Fake {
                safe,
                ..Default::default()
            };
            let r = run(&mut conn, &mut fake, &opts(), &mut request_bufs(), Some(&mut retry));
            app.join().unwrap();
            assert_eq!(calls, usize::from(retried), "safe {safe} reset {reset}");
            assert_eq!(
                r.is_ok(),
                retried,
                "safe {safe} reset {reset}: {:?}",
                r.err().map(|e| e.failure)
            );
        }
    }

    /// Runs a request with a body of `len` bytes on a "reused" connection
    /// served by `app`; returns the result and how often a retry was asked for.
    #[allow(clippy::result_large_err)]
    fn run_reused_with(
        len: usize,
        app: impl FnOnce(UnixStream) + Send + 'static,
    ) -> (Result<Outcome, ExchangeError>, usize) {
        run_reused(len, false, app)
    }

    #[allow(clippy::result_large_err)]
    fn run_reused_safe(
        safe: bool,
        app: impl FnOnce(UnixStream) + Send + 'static,
    ) -> (Result<Outcome, ExchangeError>, usize) {
        run_reused(0, safe, app)
    }

    #[allow(clippy::result_large_err)]
    fn run_reused(
        len: usize,
        safe: bool,
        app: impl FnOnce(UnixStream) + Send + 'static,
    ) -> (Result<Outcome, ExchangeError>, usize) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || app(theirs));
        let mut conn = AppConn::from_stream(ours).unwrap();
        let mut fake = Fake {
            body: body(len),
            piece: 65536,
            safe,
            ..Default::default()
        };
        let mut calls = 0;
        let mut retry = || {
            calls += 1;
            None
        };
        let o = ExchangeOpts { reused: true, ..opts() };
        let r = run(&mut conn, &mut fake, &o, &mut request_bufs(), Some(&mut retry));
        t.join().unwrap();
        (r, calls)
    }

    #[test]
    fn kept_connection_closed_mid_body_is_not_retried() {
        // The application took part of a large body, then reset the
        // connection: part of the request was sent, so it is not sent again.
        let (r, calls) = run_reused_with(3 << 20, |mut theirs| {
            let mut got = vec![0u8; 150_000];
            theirs.read_exact(&mut got).unwrap();
        });
        assert!(r.is_err());
        assert_eq!(calls, 0);
    }

    #[test]
    fn quiet_close_after_taking_a_body_is_not_retried() {
        // The application read the request (body included) and closed without
        // a word: it may have acted on it, so it is not sent twice.
        let (r, calls) = run_reused_with(10, |mut theirs| {
            read_request(&mut theirs);
        });
        assert!(matches!(
            r,
            Err(ExchangeError {
                failure: Failure::KeptClosed,
                ..
            })
        ));
        assert_eq!(calls, 0);
    }

    #[test]
    fn quiet_close_after_taking_a_request_is_retried_only_when_safe() {
        // Finding 7: no body does not mean no side effect (a DELETE has
        // none): once the application could read the request, it is not
        // sent again, unless its method is safe.
        let (r, calls) = run_reused_safe(true, |mut theirs| {
            read_request(&mut theirs);
        });
        assert!(r.is_err());
        assert_eq!(calls, 1, "a GET is sent again");
        let (r, calls) = run_reused_with(0, |mut theirs| {
            read_request(&mut theirs);
        });
        let err = r.unwrap_err();
        assert!(matches!(err.failure, Failure::KeptClosed), "{err:?}");
        assert_eq!(err.report("/app", Duration::from_secs(1)).0, 502);
        assert_eq!(calls, 0);
        // Nor when it reset the connection after reading.
        let (r, calls) = run_reused_with(0, |mut theirs| {
            read_request(&mut theirs);
            let _ = nix::sys::socket::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(&theirs),
                nix::sys::socket::Shutdown::Both,
            );
        });
        assert!(r.is_err());
        assert_eq!(calls, 0);
    }

    /// A response `stdout` with request id `id` and END_REQUEST.
    fn answer(id: u16, stdout: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        proto::encode_stream(&mut out, RecordType::Stdout, id, stdout);
        proto::encode_stream_end(&mut out, RecordType::Stdout, id);
        out.extend_from_slice(&RecordHeader::new(RecordType::EndRequest, id, 8).to_bytes());
        out.extend_from_slice(&[0; 8]);
        out
    }

    #[test]
    fn body_beyond_content_length_is_cut_and_fails() {
        // Finding 5, at every size around the 64 KiB read buffer.
        for (declared, sent) in [(5usize, 6usize), (10, 1000), (65_536, 65_537), (70_000, 300_000)] {
            let mut fake = Fake::default();
            let err = run_with(&mut fake, &opts(), move |mut s| {
                read_request(&mut s);
                let mut stdout = format!("Content-Type: text/plain\r\nContent-Length: {declared}\r\n\r\n").into_bytes();
                stdout.extend_from_slice(&body(sent));
                let _ = s.write_all(&answer(1, &stdout));
            })
            .unwrap_err();
            assert!(
                matches!(err.failure, Failure::Length { overrun: true, declared: d, .. } if d == declared as u64),
                "{declared}: {err:?}"
            );
            assert!(err.body_started);
            assert!(
                fake.out == body(declared),
                "{declared}: exactly the declared bytes went out"
            );
            assert_eq!(err.report("/a", Duration::from_secs(1)).0, 502);
        }
    }

    #[test]
    fn body_short_of_content_length_fails_and_exact_passes() {
        for (declared, sent) in [(6usize, 5usize), (300_000, 70_000), (10, 0)] {
            let mut fake = Fake::default();
            let err = run_with(&mut fake, &opts(), move |mut s| {
                read_request(&mut s);
                let mut stdout = format!("Content-Length: {declared}\r\n\r\n").into_bytes();
                stdout.extend_from_slice(&body(sent));
                s.write_all(&answer(1, &stdout)).unwrap();
            })
            .unwrap_err();
            assert!(
                matches!(err.failure, Failure::Length { overrun: false, received: r, .. } if r == sent as u64),
                "{declared}: {err:?}"
            );
            assert_eq!(err.body_started, sent > 0);
        }
        // Exact lengths, and statuses without a body, pass.
        for (status, declared, sent) in [
            (200u16, 200_000usize, 200_000usize),
            (304, 1234, 0),
            (204, 10, 0),
            (200, 0, 0),
        ] {
            let mut fake = Fake::default();
            let r = run_with(&mut fake, &opts(), move |mut s| {
                read_request(&mut s);
                let mut stdout = format!("Status: {status}\r\nContent-Length: {declared}\r\n\r\n").into_bytes();
                stdout.extend_from_slice(&body(sent));
                s.write_all(&answer(1, &stdout)).unwrap();
            })
            .unwrap();
            assert!(r.ended && r.reusable, "{status} {declared}");
            assert!(fake.out == body(sent));
        }
    }

    #[test]
    fn nph_output_must_start_with_an_http_status_line() {
        let nph = ExchangeOpts {
            parse_headers: false,
            ..opts()
        };
        for bad in [&b"Status: 200 OK\r\n\r\nhi"[..], b"", b"HTTP/1.1"] {
            let mut fake = Fake::default();
            let data = bad.to_vec();
            let err = run_with(&mut fake, &nph, move |mut s| {
                read_request(&mut s);
                s.write_all(&answer(1, &data)).unwrap();
            })
            .unwrap_err();
            assert!(matches!(err.failure, Failure::NotHttp), "{bad:?}: {err:?}");
            assert!(!err.body_started && fake.out.is_empty(), "nothing reached the client");
            let (status, _, msg) = err.report("/p", Duration::from_secs(1));
            assert_eq!(status, 502);
            assert_eq!(
                msg,
                "FastCGI: comm with server \"/p\" aborted: nph output is not an HTTP response"
            );
        }
        // Valid output passes untouched, even when it arrives byte by byte.
        let good = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nraw body".to_vec();
        let mut fake = Fake::default();
        let g = good.clone();
        let r = run_with(&mut fake, &nph, move |mut s| {
            read_request(&mut s);
            for b in &g {
                let mut out = Vec::new();
                proto::encode_stream(&mut out, RecordType::Stdout, 1, std::slice::from_ref(b));
                s.write_all(&out).unwrap();
            }
            s.write_all(&answer(1, b"")).unwrap();
        })
        .unwrap();
        assert!(r.ended);
        assert_eq!(fake.out, good);
        let mut fake = Fake::default();
        run_with(&mut fake, &nph, |mut s| {
            read_request(&mut s);
            s.write_all(&answer(1, b"HTTP/1.0 204")).unwrap();
        })
        .unwrap();
        assert_eq!(fake.out, b"HTTP/1.0 204");
    }

    #[test]
    fn late_records_of_an_earlier_request_are_foreign() {
        // Finding 6: on a kept connection the second request has id 2, so
        // output the application wrote late for request 1 is an error, not
        // the answer to request 2.
        let mut fake = Fake::default();
        let o = ExchangeOpts {
            request_id: 2,
            reused: true,
            ..opts()
        };
        let err = run_with(&mut fake, &o, |mut s| {
            read_request(&mut s);
            let mut late = Vec::new();
            proto::encode_stream(
                &mut late,
                RecordType::Stdout,
                1,
                b"Content-Type: text/html\r\n\r\ninjected",
            );
            s.write_all(&late).unwrap();
            let _ = s.write_all(&answer(2, b"Content-Type: text/plain\r\n\r\ngenuine"));
        })
        .unwrap_err();
        assert!(matches!(err.failure, Failure::Protocol(_)), "{err:?}");
        assert!(fake.out.is_empty() && fake.head.is_none());
        // And the right id is answered normally.
        let mut fake = Fake::default();
        let r = run_with(&mut fake, &o, |mut s| {
            read_request(&mut s);
            s.write_all(&answer(2, b"Content-Type: text/plain\r\n\r\ngenuine"))
                .unwrap();
        })
        .unwrap();
        assert!(r.reusable);
        assert_eq!(fake.out, b"genuine");
    }

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn echo_round_trips_bodies_of_many_sizes() {
        for &n in &[0usize, 1, 65535, 65536, 65537, 3 * 1024 * 1024 + 5] {
            let mut fake = Fake {
                body: body(n),
                piece: 10_000,
                ..Default::default()
            };
            let r = run_with(&mut fake, &opts(), |mut s| {
                let (_p, stdin) = read_request(&mut s);
                let mut resp = b"Content-Type: application/octet-stream\r\n\r\n".to_vec();
                resp.extend_from_slice(&stdin);
                respond(&mut s, &resp);
            })
            .unwrap();
            assert!(r.ended);
            assert_eq!(fake.out.len(), n, "size {n}");
            assert!(fake.out == body(n), "size {n}");
        }
    }

    #[test]
    fn app_writing_while_we_send_does_not_deadlock() {
        // The app answers with 8 MiB before reading any of the 8 MiB body:
        // both socket buffers fill up; the loop must read while it writes.
        let n = 8 * 1024 * 1024;
        let mut fake = Fake {
            body: body(n),
            piece: 65536,
            ..Default::default()
        };
        let r = run_with(&mut fake, &opts(), move |mut s| {
            // Read BEGIN + PARAMS only.
            loop {
                let (t, c) = read_record(&mut s).unwrap();
                if t == RecordType::Params && c.is_empty() {
                    break;
                }
            }
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Status: 200\r\n\r\n");
            proto::encode_stream(&mut out, RecordType::Stdout, 1, &body(n));
            let mut w = s.try_clone().unwrap();
            let writer = thread::spawn(move || w.write_all(&out).unwrap());
            // Only now drain the body.
            let mut stdin = Vec::new();
            loop {
                let (t, c) = read_record(&mut s).unwrap();
                if t == RecordType::Stdin && c.is_empty() {
                    break;
                }
                stdin.extend_from_slice(&c);
            }
            writer.join().unwrap();
            assert_eq!(stdin.len(), n);
            let mut end = RecordHeader::new(RecordType::EndRequest, 1, 8).to_bytes().to_vec();
            end.extend_from_slice(&[0; 8]);
            s.write_all(&end).unwrap();
        })
        .unwrap();
        assert!(r.ended);
        assert!(fake.out == body(n));
    }

    #[test]
    fn idle_timeout_fires_and_reports_header_bytes() {
        let mut fake = Fake::default();
        let mut o = opts();
        o.idle_timeout = Duration::from_millis(300);
        let err = run_with(&mut fake, &o, |mut s| {
            let _ = read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"X-Partial: 1\r\n");
            s.write_all(&out).unwrap();
            thread::sleep(Duration::from_millis(800));
        })
        .unwrap_err();
        assert!(matches!(err.failure, Failure::IdleTimeout));
        assert_eq!(err.header_bytes, 14);
        assert!(!err.body_started);
    }

    /// Issue 12: headers sent one byte at a time, each well within the idle timeout, do
    /// not hold the request past it.
    #[test]
    fn trickled_headers_do_not_hold_the_idle_timer_off() {
        let mut fake = Fake::default();
        let mut o = opts();
        o.idle_timeout = Duration::from_millis(400);
        let t0 = std::time::Instant::now();
        let err = run_with(&mut fake, &o, |mut s| {
            let _ = read_request(&mut s);
            for b in b"Content-Type: text/plain\r\n\r\nlate\n" {
                let mut out = Vec::new();
                proto::encode_stream(&mut out, RecordType::Stdout, 1, &[*b]);
                if s.write_all(&out).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
        .unwrap_err();
        assert!(matches!(err.failure, Failure::IdleTimeout));
        assert!(err.header_bytes > 0 && err.header_bytes < 26, "{}", err.header_bytes);
        assert!(t0.elapsed() < Duration::from_millis(2500), "{:?}", t0.elapsed());
    }

    #[test]
    fn eof_before_headers_is_incomplete_and_after_is_truncated() {
        let mut fake = Fake::default();
        let err = run_with(&mut fake, &opts(), |mut s| {
            let _ = read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Content-Type: text/plain\r\n");
            s.write_all(&out).unwrap();
        })
        .unwrap_err();
        assert!(matches!(err.failure, Failure::Incomplete));
        assert_eq!(err.header_bytes, 26);

        let mut fake = Fake::default();
        let err = run_with(&mut fake, &opts(), |mut s| {
            let _ = read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Content-Type: text/plain\r\n\r\nhalf");
            s.write_all(&out).unwrap();
        })
        .unwrap_err();
        assert!(matches!(err.failure, Failure::Truncated));
        assert!(err.body_started);
        assert_eq!(fake.out, b"half");
    }

    #[test]
    fn stderr_lines_and_overloaded_status() {
        let mut fake = Fake::default();
        let err = run_with(&mut fake, &opts(), |mut s| {
            let _ = read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stderr, 1, b"one\ntwo\npartial");
            out.extend_from_slice(&RecordHeader::new(RecordType::EndRequest, 1, 8).to_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 2, 0, 0, 0]);
            s.write_all(&out).unwrap();
        })
        .unwrap_err();
        assert!(matches!(err.failure, Failure::Status(ProtocolStatus::Overloaded)));
        assert_eq!(fake.stderr, vec![b"one".to_vec(), b"two".to_vec(), b"partial".to_vec()]);
    }

    #[test]
    fn client_gone_stops_the_exchange() {
        let mut fake = Fake {
            fail_body_after: Some(100_000),
            ..Default::default()
        };
        let err = run_with(&mut fake, &opts(), |mut s| {
            let _ = read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Content-Type: x\r\n\r\n");
            proto::encode_stream(&mut out, RecordType::Stdout, 1, &body(1_000_000));
            let _ = s.write_all(&out);
        })
        .unwrap_err();
        assert!(matches!(err.failure, Failure::ClientGone));
    }

    fn end_request(s: &mut UnixStream, id: u16) {
        let mut out = RecordHeader::new(RecordType::EndRequest, id, 8).to_bytes().to_vec();
        out.extend_from_slice(&[0; 8]);
        s.write_all(&out).unwrap();
    }

    /// An application that streams a 1 MB response to a client who leaves
    /// after 100 kB; it then reads the next record and, if `answer`, ends
    /// the request. Returns the type of that record (None: EOF).
    fn leaving_client(keep: bool, answer: bool, idle: Duration) -> (ExchangeError, Option<RecordType>) {
        let mut fake = Fake {
            fail_body_after: Some(100_000),
            ..Default::default()
        };
        let o = ExchangeOpts {
            keep_conn: keep,
            idle_timeout: idle,
            ..opts()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let err = run_with(&mut fake, &o, move |mut s| {
            let _ = read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Content-Type: x\r\n\r\n");
            proto::encode_stream(&mut out, RecordType::Stdout, 1, &body(1_000_000));
            if s.write_all(&out).is_err() {
                let _ = tx.send(None);
                return;
            }
            let next = read_record(&mut s).ok().map(|(t, _)| t);
            if answer && next == Some(RecordType::AbortRequest) {
                end_request(&mut s, 1);
            }
            let _ = tx.send(next);
            // Until the exchange closes its side.
            let _ = s.read_to_end(&mut Vec::new());
        })
        .unwrap_err();
        (err, rx.recv().unwrap())
    }

    // Issue 14: a client leaving mid-response on a kept connection: the
    // application gets FCGI_ABORT_REQUEST for the request; its END_REQUEST
    // leaves the connection clean (reusable).
    #[test]
    fn client_gone_on_a_kept_connection_aborts_and_drains() {
        let (err, seen) = leaving_client(true, true, Duration::from_secs(5));
        assert!(matches!(err.failure, Failure::ClientGone));
        assert_eq!(seen, Some(RecordType::AbortRequest));
        assert_eq!(err.abort, Abort::Drained);
    }

    #[test]
    fn an_abort_left_unanswered_closes_the_connection_after_the_idle_timeout() {
        let t = std::time::Instant::now();
        let (err, seen) = leaving_client(true, false, Duration::from_millis(500));
        assert_eq!(seen, Some(RecordType::AbortRequest));
        assert_eq!(err.abort, Abort::Closed);
        assert!(t.elapsed() < Duration::from_secs(4), "bounded by the idle timeout");
    }

    #[test]
    fn without_keep_conn_closing_is_the_abort() {
        let (err, seen) = leaving_client(false, true, Duration::from_secs(5));
        assert!(matches!(err.failure, Failure::ClientGone));
        assert_eq!(seen, None, "no record: the connection was closed");
        assert_eq!(err.abort, Abort::NotSent);
    }

    /// A frontend answering the head with `Stop` (a HEAD request).
    fn head_stopper() -> Fake {
        Fake {
            stop_at_head: true,
            ..Default::default()
        }
    }

    /// The request sent with FCGI_KEEP_CONN.
    fn kept_opts() -> ExchangeOpts {
        ExchangeOpts {
            keep_conn: true,
            ..opts()
        }
    }

    // A HEAD request (the head is all httpd wants) on a kept connection is
    // aborted and drained too: the connection stays reusable.
    #[test]
    fn head_request_on_a_kept_connection_stays_reusable() {
        let mut fake = head_stopper();
        let o = kept_opts();
        let out = run_with(&mut fake, &o, |mut s| {
            let _ = read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Content-Type: x\r\n\r\nbody");
            s.write_all(&out).unwrap();
            let (t, _) = read_record(&mut s).unwrap();
            assert_eq!(t, RecordType::AbortRequest);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"more body");
            proto::encode_stream_end(&mut out, RecordType::Stdout, 1);
            s.write_all(&out).unwrap();
            end_request(&mut s, 1);
        })
        .unwrap();
        assert!(!out.ended && out.reusable);
        assert!(fake.out.is_empty());
        // Without keep-conn: not reusable (closed).
        let mut fake = head_stopper();
        let out = run_with(&mut fake, &opts(), |mut s| {
            let _ = read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Content-Type: x\r\n\r\nbody");
            s.write_all(&out).unwrap();
        })
        .unwrap();
        assert!(!out.reusable);
    }

    // Issue 14: an application that goes on writing for an aborted request
    // after answering the abort (Go's net/http/fcgi) does not break the
    // next request on the kept connection: those late records are skipped.
    #[test]
    fn late_records_after_an_answered_abort_do_not_break_the_next_request() {
        let (ours, mut s) = UnixStream::pair().unwrap();
        let app = thread::spawn(move || {
            let _ = read_request(&mut s);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"Content-Type: x\r\n\r\nbody");
            s.write_all(&out).unwrap();
            let (t, _) = read_record(&mut s).unwrap();
            assert_eq!(t, RecordType::AbortRequest);
            end_request(&mut s, 1);
            let _ = read_request(&mut s);
            // Late output of request 1, then the answer to request 2.
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 1, b"late");
            proto::encode_stream_end(&mut out, RecordType::Stdout, 1);
            s.write_all(&out).unwrap();
            end_request(&mut s, 1);
            let mut out = Vec::new();
            proto::encode_stream(&mut out, RecordType::Stdout, 2, b"Content-Type: x\r\n\r\nsecond");
            proto::encode_stream_end(&mut out, RecordType::Stdout, 2);
            s.write_all(&out).unwrap();
            end_request(&mut s, 2);
        });
        let mut conn = AppConn::from_stream(ours).unwrap();
        let mut fake = head_stopper();
        let o1 = kept_opts();
        let mut bufs = request_bufs();
        let out = run(&mut conn, &mut fake, &o1, &mut bufs, None).unwrap();
        assert!(out.reusable);
        let mut fake = Fake::default();
        let o2 = ExchangeOpts {
            keep_conn: true,
            request_id: 2,
            reused: true,
            ..opts()
        };
        let mut bufs = Buffers::default();
        proto::encode_begin_request(&mut bufs.out, 2, proto::Role::Responder, true);
        proto::encode_params(&mut bufs.out, 2, [(b"A".as_slice(), b"1".as_slice())]).unwrap();
        let out = run(&mut conn, &mut fake, &o2, &mut bufs, None).unwrap();
        assert!(out.ended);
        assert_eq!(fake.out, b"second");
        drop(conn);
        app.join().unwrap();
    }

    #[test]
    fn flush_option_flushes_every_piece() {
        let mut fake = Fake::default();
        let mut o = opts();
        o.flush = true;
        run_with(&mut fake, &o, |mut s| {
            let _ = read_request(&mut s);
            for i in 0..3 {
                let mut out = Vec::new();
                let data = if i == 0 {
                    b"Content-Type: x\r\n\r\nchunk".to_vec()
                } else {
                    b"chunk".to_vec()
                };
                proto::encode_stream(&mut out, RecordType::Stdout, 1, &data);
                s.write_all(&out).unwrap();
                thread::sleep(Duration::from_millis(50));
            }
            let mut end = RecordHeader::new(RecordType::EndRequest, 1, 8).to_bytes().to_vec();
            end.extend_from_slice(&[0; 8]);
            s.write_all(&end).unwrap();
        })
        .unwrap();
        assert_eq!(fake.out, b"chunkchunkchunk");
        assert!(fake.flushes >= 3, "flushes: {}", fake.flushes);
    }
}
