//! One FastCGI request/response exchange over a connected socket.
//!
//! The loop interleaves sending (PARAMS, then the request body as STDIN
//! records, read from the client piece by piece) with receiving (STDOUT,
//! STDERR, END_REQUEST), so neither side can deadlock the other and memory
//! stays bounded by a few 64 KiB buffers whatever the body sizes
//! (reference RQ-01, RQ-55; legacy used four 8 KiB buffers).
//!
//! httpd is reached only through the [`Frontend`] trait, so the whole loop
//! runs in unit tests against an in-process fake application.

use super::conn::{AppConn, IdleTimer};
use crate::cgi::{HeaderError, HeaderScanner, ResponseHead, Scan, StderrEvent, StderrLines};
use crate::proto::{self, Decoder, Event, ProtoError, ProtocolStatus, RecordType};
use std::io::{self, IoSlice};
use std::time::Duration;

/// How much request body is read from the client per step, and how much
/// application output is read per syscall.
pub const IO_CHUNK: usize = 64 * 1024;

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
}

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
}

/// A failure plus where in the exchange it happened.
#[derive(Debug)]
pub struct ExchangeError {
    pub failure: Failure,
    pub header_bytes: usize,
    /// Whether response body bytes were already handed to httpd.
    pub body_started: bool,
    pub head: Option<ResponseHead>,
}

/// Reusable buffers (one set per worker thread would do; per request is
/// fine: they are only allocated once per exchange).
pub struct Buffers {
    pub out: Vec<u8>,
    pub input: Vec<u8>,
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers {
            out: Vec::with_capacity(IO_CHUNK + 64),
            input: vec![0u8; IO_CHUNK],
        }
    }
}

struct State {
    out_pos: usize,
    body_done: bool,
    body_unsent: bool,
    write_failed: Option<io::Error>,
    decoder: Decoder,
    scanner: Option<HeaderScanner>,
    head: Option<ResponseHead>,
    action: HeadAction,
    stderr: StderrLines,
    unflushed: bool,
    body_started: bool,
    body_bytes_out: u64,
    ended: Option<u32>,
}

/// Runs the exchange. `bufs.out` must already hold BEGIN_REQUEST and the
/// complete PARAMS stream.
#[allow(clippy::result_large_err)] // once per request; boxing buys nothing
pub fn run(
    conn: &mut AppConn,
    fe: &mut dyn Frontend,
    opts: &ExchangeOpts,
    bufs: &mut Buffers,
) -> Result<Outcome, ExchangeError> {
    let mut st = State {
        out_pos: 0,
        body_done: false,
        body_unsent: false,
        write_failed: None,
        decoder: Decoder::new(opts.request_id),
        scanner: opts.parse_headers.then(|| HeaderScanner::new(opts.max_header_bytes)),
        head: None,
        action: HeadAction::Stream,
        stderr: StderrLines::new(),
        unflushed: false,
        body_started: false,
        body_bytes_out: 0,
        ended: None,
    };
    let res = drive(conn, fe, opts, bufs, &mut st);
    if let Some(tail) = st.stderr.finish() {
        fe.stderr(StderrEvent::Line {
            text: tail,
            too_long: false,
        });
    }
    match res {
        Ok(()) => {
            if st.unflushed && st.action == HeadAction::Stream {
                let _ = fe.flush();
            }
            Ok(Outcome {
                head: st.head,
                action: st.action,
                ended: st.ended.is_some(),
                app_status: st.ended.unwrap_or(0),
                body_unsent: st.body_unsent || !st.body_done,
                body_bytes_out: st.body_bytes_out,
            })
        }
        Err(failure) => Err(ExchangeError {
            failure,
            header_bytes: st.scanner.as_ref().map(|s| s.bytes_received()).unwrap_or(0),
            body_started: st.body_started,
            head: st.head,
        }),
    }
}

fn drive(
    conn: &mut AppConn,
    fe: &mut dyn Frontend,
    opts: &ExchangeOpts,
    bufs: &mut Buffers,
    st: &mut State,
) -> Result<(), Failure> {
    let mut idle = IdleTimer::new(opts.idle_timeout);
    loop {
        let mut progressed = false;

        // 1. Refill the outgoing buffer from the client body.
        if st.out_pos == bufs.out.len() && !st.body_done && st.write_failed.is_none() {
            bufs.out.clear();
            st.out_pos = 0;
            let out = &mut bufs.out;
            let id = opts.request_id;
            let eos = fe
                .read_body(IO_CHUNK, &mut |data| {
                    proto::encode_stream(out, RecordType::Stdin, id, data)
                })
                .map_err(Failure::ClientBody)?;
            if eos {
                proto::encode_stream_end(&mut bufs.out, RecordType::Stdin, id);
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
        match conn.try_read(&mut bufs.input) {
            Ok(Some(0)) => {
                return Err(eof_failure(st));
            }
            Ok(Some(n)) => {
                idle.touch();
                progressed = true;
                if handle_input(fe, opts, st, &bufs.input[..n])? {
                    return Ok(());
                }
            }
            Ok(None) => {}
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
        let wait_for = if st.unflushed {
            remaining.min(AUTO_FLUSH_AFTER)
        } else {
            remaining
        };
        let want_write = st.out_pos < bufs.out.len() && st.write_failed.is_none();
        match conn.wait(true, want_write, wait_for) {
            Ok(Some(_)) => {}
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
                if on_stdout(fe, opts, st, d)? {
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
                st.ended = Some(app_status);
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
    if st.action == HeadAction::Stream {
        send_body(fe, opts, st, d)?;
    }
    Ok(false)
}

fn send_body(fe: &mut dyn Frontend, opts: &ExchangeOpts, st: &mut State, d: &[u8]) -> Result<(), Failure> {
    if d.is_empty() {
        return Ok(());
    }
    st.body_started = true;
    st.body_bytes_out += d.len() as u64;
    fe.body(d).map_err(|_| Failure::ClientGone)?;
    if opts.flush {
        fe.flush().map_err(|_| Failure::ClientGone)?;
        st.unflushed = false;
    } else {
        st.unflushed = true;
    }
    Ok(())
}
