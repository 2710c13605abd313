#![no_main]
//! The response side of an exchange (`gateway::exchange::run`) driven by arbitrary
//! application output: an in-process fake application on the other end of a socketpair
//! (as the unit tests in src/gateway/exchange.rs do) reads the request and writes a
//! structure-aware sequence of writes — well-formed STDOUT/STDERR records with fuzzed
//! contents, CGI headers, stream ends, records of other types or ids with odd padding,
//! raw garbage, END_REQUEST with any status — then closes. A fake frontend serves a
//! fuzzed request body and answers the head with a fuzzed action, and may fail the
//! client after some bytes. Checks: no panic, no hang (the application always closes);
//! when the application's output was well formed and ended with REQUEST_COMPLETE and the
//! client stayed, the exchange succeeds and the body the client got is exactly the STDOUT
//! stream (nph) or its tail after the headers (parsed), the stderr lines carry exactly the
//! STDERR bytes without CR/LF, and the application received the request body intact.
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mod_fastcgi::cgi::{ResponseHead, StderrEvent};
use mod_fastcgi::gateway::exchange::{run, ClientGone, HeadAction};
use mod_fastcgi::gateway::{AppConn, Buffers, ExchangeOpts, Failure, Frontend};
use mod_fastcgi::proto::{self, RecordHeader, RecordType};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
enum Out {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// A CGI header block (Status + one more header + blank line) and a body start.
    Headers {
        status: u16,
        name: u8,
        value: Vec<u8>,
        crlf: bool,
        body: Vec<u8>,
    },
    BigStdout {
        byte: u8,
        len: u16,
    },
    StdoutEnd,
    StderrEnd,
    /// Any record: type, id offset from ours (0 = ours), padding.
    Record {
        rtype: u8,
        id_delta: u8,
        content: Vec<u8>,
        padding: u8,
    },
    /// Corruption.
    Raw(Vec<u8>),
    End {
        app_status: u32,
        status: u8,
    },
    /// Close the connection now.
    Close,
}

#[derive(Arbitrary, Debug)]
struct Input {
    request_id: u8,
    flush: bool,
    nph: bool,
    max_header: u16,
    head_action: u8,
    fail_body_after: Option<u16>,
    body: Vec<u8>,
    body_piece: u8,
    read_first: bool,
    /// Several records per write (else one write per item).
    coalesce: bool,
    out: Vec<Out>,
}

struct Fe {
    body: Vec<u8>,
    body_pos: usize,
    piece: usize,
    action: HeadAction,
    fail_after: Option<usize>,
    failed: bool,
    head: Option<ResponseHead>,
    out: Vec<u8>,
    stderr: Vec<u8>,
    nul: bool,
    /// The read being handed over (`read_begins`), as address and length.
    reading: Option<(usize, usize)>,
    /// Body bytes handed over since the last `read_consumed`.
    unconsumed: usize,
}

impl Frontend for Fe {
    fn read_begins(&mut self, input: &[u8]) {
        assert_eq!(self.reading, None, "read_begins without read_consumed");
        self.reading = Some((input.as_ptr() as usize, input.len()));
    }
    fn read_consumed(&mut self, input: &[u8]) -> Result<(), ClientGone> {
        // The module's frontend passes body pieces by their position in
        // the read: the read handed back must be the one announced.
        assert_eq!(
            self.reading.take(),
            Some((input.as_ptr() as usize, input.len())),
            "read_consumed with another buffer"
        );
        self.unconsumed = 0;
        Ok(())
    }
    fn read_body(&mut self, max: usize, sink: &mut dyn FnMut(&[u8])) -> Result<bool, i32> {
        assert!(max > 0, "read_body asked for 0 bytes");
        let n = max.min(self.piece).min(self.body.len() - self.body_pos);
        if n > 0 {
            sink(&self.body[self.body_pos..self.body_pos + n]);
            self.body_pos += n;
        }
        Ok(self.body_pos == self.body.len())
    }
    fn head(&mut self, head: &ResponseHead) -> HeadAction {
        assert!(self.head.is_none(), "head delivered twice");
        self.head = Some(head.clone());
        self.action
    }
    fn body(&mut self, data: &[u8]) -> Result<(), ClientGone> {
        assert!(!data.is_empty(), "empty body piece");
        assert!(!self.failed, "body after the client went away");
        if let Some(limit) = self.fail_after {
            if self.out.len() + data.len() > limit {
                self.failed = true;
                return Err(ClientGone);
            }
        }
        self.out.extend_from_slice(data);
        self.unconsumed += data.len();
        Ok(())
    }
    fn flush(&mut self) -> Result<(), ClientGone> {
        Ok(())
    }
    fn stderr(&mut self, event: StderrEvent<'_>) {
        match event {
            StderrEvent::Line { text, .. } => self.stderr.extend_from_slice(text),
            StderrEvent::NulDiscarded(_) => self.nul = true,
        }
    }
}

fn record(out: &mut Vec<u8>, rtype: u8, id: u16, content: &[u8], padding: u8) {
    let mut h = RecordHeader::new(RecordType::from_u8(rtype), id, content.len() as u16);
    h.padding_length = padding;
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(content);
    out.extend(std::iter::repeat(0).take(usize::from(padding)));
}

/// What a well-formed response carries, for the differential check.
#[derive(Default, Debug)]
struct Expect {
    well_formed: bool,
    complete: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn build(inp: &Input, id: u16) -> (Vec<Vec<u8>>, Expect) {
    let mut writes = Vec::new();
    let mut exp = Expect {
        well_formed: true,
        ..Default::default()
    };
    let mut cur = Vec::new();
    for item in &inp.out {
        let mut w = Vec::new();
        match item {
            Out::Stdout(d) => {
                proto::encode_stream(&mut w, RecordType::Stdout, id, d);
                exp.stdout.extend_from_slice(d);
            }
            Out::Stderr(d) => {
                proto::encode_stream(&mut w, RecordType::Stderr, id, d);
                exp.stderr.extend_from_slice(d);
            }
            Out::Headers {
                status,
                name,
                value,
                crlf,
                body,
            } => {
                let eol: &[u8] = if *crlf { b"\r\n" } else { b"\n" };
                let names: [&[u8]; 4] = [b"Content-Type", b"Location", b"X-Test", b"Content-Length"];
                let mut d = Vec::new();
                d.extend_from_slice(format!("Status: {status}").as_bytes());
                d.extend_from_slice(eol);
                d.extend_from_slice(names[usize::from(*name) % 4]);
                d.extend_from_slice(b": ");
                d.extend(value.iter().copied().filter(|&b| b != b'\r' && b != b'\n'));
                d.extend_from_slice(eol);
                d.extend_from_slice(eol);
                d.extend_from_slice(body);
                proto::encode_stream(&mut w, RecordType::Stdout, id, &d);
                exp.stdout.extend_from_slice(&d);
            }
            Out::BigStdout { byte, len } => {
                let d = vec![*byte; usize::from(*len) * 2];
                proto::encode_stream(&mut w, RecordType::Stdout, id, &d);
                exp.stdout.extend_from_slice(&d);
            }
            Out::StdoutEnd => proto::encode_stream_end(&mut w, RecordType::Stdout, id),
            Out::StderrEnd => proto::encode_stream_end(&mut w, RecordType::Stderr, id),
            Out::Record {
                rtype,
                id_delta,
                content,
                padding,
            } => {
                let rid = id.wrapping_add(u16::from(*id_delta));
                let content = &content[..content.len().min(65535)];
                record(&mut w, *rtype, rid, content, *padding);
                match (*rtype, rid == id) {
                    // Streams of ours: data.
                    (6, true) => exp.stdout.extend_from_slice(content),
                    (7, true) => exp.stderr.extend_from_slice(content),
                    // Skipped whatever the id.
                    (0 | 1 | 2 | 4 | 5 | 8 | 9 | 12..=255, _) => {}
                    // Management types with our non-zero id are skipped too.
                    (10 | 11, true) => {}
                    _ => exp.well_formed = false,
                }
            }
            Out::Raw(d) => {
                w.extend_from_slice(d);
                if !d.is_empty() {
                    exp.well_formed = false;
                }
            }
            Out::End { app_status, status } => {
                let mut body = [0u8; 8];
                body[..4].copy_from_slice(&app_status.to_be_bytes());
                body[4] = *status;
                record(&mut w, 3, id, &body, 0);
                if inp.coalesce {
                    cur.extend_from_slice(&w);
                    writes.push(std::mem::take(&mut cur));
                } else {
                    writes.push(w);
                }
                exp.complete = *status == 0;
                return (writes, exp);
            }
            Out::Close => break,
        }
        if inp.coalesce {
            cur.extend_from_slice(&w);
        } else {
            writes.push(w);
        }
    }
    if !cur.is_empty() {
        writes.push(cur);
    }
    exp.complete = false;
    (writes, exp)
}

/// Reads the request records; returns the STDIN content, or None if the stream broke.
fn read_request(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut stdin = Vec::new();
    loop {
        let mut h = [0u8; 8];
        s.read_exact(&mut h).ok()?;
        let hdr = RecordHeader::from_bytes(&h);
        let mut content = vec![0u8; hdr.body_len()];
        s.read_exact(&mut content).ok()?;
        content.truncate(usize::from(hdr.content_length));
        if hdr.rtype == RecordType::Stdin {
            if content.is_empty() {
                return Some(stdin);
            }
            stdin.extend_from_slice(&content);
        }
    }
}

fuzz_target!(
    init: {
        // libFuzzer's main does not run Rust's runtime set-up: ignore SIGPIPE as httpd does.
        // SAFETY: setting a signal disposition to SIG_IGN at start-up, before any thread.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    },
    |inp: Input| {
        let id = u16::from(inp.request_id.max(1));
        let (writes, exp) = build(&inp, id);
        let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
        theirs.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let read_first = inp.read_first;
        let app = std::thread::spawn(move || {
            let mut got = None;
            if read_first {
                got = read_request(&mut theirs);
            }
            for w in &writes {
                if theirs.write_all(w).is_err() {
                    break;
                }
            }
            if !read_first {
                got = read_request(&mut theirs);
            }
            got
        });
        let mut fe = Fe {
            body: inp.body.clone(),
            piece: usize::from(inp.body_piece).max(1) * 97,
            action: match inp.head_action % 4 {
                0 | 1 => HeadAction::Stream,
                2 => HeadAction::Discard,
                _ => HeadAction::Stop,
            },
            fail_after: inp.fail_body_after.map(usize::from),
            body_pos: 0,
            failed: false,
            head: None,
            out: Vec::new(),
            stderr: Vec::new(),
            reading: None,
            unconsumed: 0,
            nul: false,
        };
        let opts = ExchangeOpts {
            request_id: id,
            idle_timeout: Duration::from_secs(20),
            flush: inp.flush,
            parse_headers: !inp.nph,
            max_header_bytes: usize::from(inp.max_header).max(16),
            nudge_after: None,
            reused: false,
            stall_after: None,
            // Odd ids: FCGI_KEEP_CONN, so a HEAD stop or a leaving client
            // aborts and drains (the fake application closes its end once
            // it has written everything: a drain never waits long).
            keep_conn: id % 2 == 1,
        };
        let mut conn = AppConn::from_stream(ours).expect("conn");
        let mut bufs = Buffers::default();
        proto::encode_begin_request(&mut bufs.out, id, proto::Role::Responder, false);
        proto::encode_params(&mut bufs.out, id, [(b"A".as_slice(), b"1".as_slice())]).expect("params");
        let res = run(&mut conn, &mut fe, &opts, &mut bufs, None);
        drop(conn);
        // Every read was handed back, and no body piece was left waiting
        // for a buffer the exchange no longer holds.
        assert_eq!((fe.reading, fe.unconsumed), (None, 0), "a read not handed back");
        let app_stdin = app.join().expect("fake application panicked");

        if let Ok(o) = &res {
            assert_eq!(o.body_bytes_out, fe.out.len() as u64, "body_bytes_out");
            assert_eq!(o.head.is_some(), fe.head.is_some());
        }
        if !(exp.well_formed && exp.complete) || fe.failed {
            return;
        }
        if opts.parse_headers && fe.head.is_none() && res.is_err() {
            // Headers missing, malformed or too large: a header failure is the expected outcome.
            return;
        }
        if !opts.parse_headers {
            if let Err(e) = &res {
                // nph output must start with an HTTP status line (security review): other
                // output, an empty one included, is refused as NotHttp.
                let status_line = exp.stdout.len() >= 12
                    && exp.stdout.starts_with(b"HTTP/1.")
                    && exp.stdout[9..12].iter().all(u8::is_ascii_digit);
                if matches!(e.failure, Failure::NotHttp) && !status_line {
                    return;
                }
            }
        }
        if let Err(e) = &res {
            // A body that does not match the Content-Length the application declared is
            // refused since the security review (the harness generates such headers).
            if let Failure::Length {
                declared,
                received,
                overrun,
            } = e.failure
            {
                // (An overrun passes exactly `declared` bytes on.)
                assert!(overrun || declared != received, "a Length failure with matching lengths");
                return;
            }
        }
        let o = match res {
            Ok(o) => o,
            Err(e) => panic!("well-formed complete response failed: {:?}", e.failure),
        };
        if o.action == HeadAction::Stop {
            // HEAD: the exchange stops at the head, before END_REQUEST.
            assert!(fe.out.is_empty(), "body after Stop");
            return;
        }
        assert!(o.ended, "complete response not reported as ended");
        if opts.parse_headers {
            if o.action == HeadAction::Stream {
                assert!(exp.stdout.ends_with(&fe.out), "body is not the tail of STDOUT");
            } else {
                assert!(fe.out.is_empty(), "discarded body reached the client");
            }
        } else {
            assert_eq!(fe.out, exp.stdout, "nph body differs from STDOUT");
        }
        if !exp.stderr.contains(&0) {
            let want: Vec<u8> = exp.stderr.iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect();
            assert_eq!(fe.stderr, want, "stderr lines differ from STDERR");
        }
        // The application read the whole request body unless it answered first.
        if read_first {
            assert_eq!(app_stdin.as_deref(), Some(&inp.body[..]), "request body corrupted");
        }
    }
);
