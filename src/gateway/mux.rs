//! Multiplexed connections (issue 14): for an application that answers
//! `FCGI_MPXS_CONNS=1` (Go's net/http/fcgi, node-fastcgi), the threads of
//! one httpd child share connections instead of opening one per request.
//!
//! - Each request gets a request id free on its connection (1..=the
//!   application's `FCGI_MAX_REQS`, [`DEFAULT_MAX_REQS`] if it does not say)
//!   and a [`MuxStream`], which the exchange drives like a connection of its
//!   own ([`Transport`]).
//! - Writes go out as whole records under the connection's write lock, so
//!   the records of concurrent requests interleave at record boundaries.
//! - One reader thread per connection splits what arrives into records and
//!   appends each to the inbox of its request id; the request's own decoder
//!   reads them from there (the same code path as a connection of its own).
//! - **Flow control**: one slow client must not stall the others, so the
//!   reader never waits for a request to take its data. An inbox holds
//!   [`MEM_LIMIT`] bytes in memory; past that, the request's output is
//!   **spilled to an unnamed temporary file** in the spool directory and read
//!   back in order (the response is delivered whole, at the client's pace;
//!   memory stays bounded per request). If no file can be made, the request
//!   is aborted with `FCGI_ABORT_REQUEST` and fails.
//! - A request that ends without its `FCGI_END_REQUEST` (a failure, a client
//!   that left) sends `FCGI_ABORT_REQUEST`; its id is only given out again
//!   once the application has ended it.
//! - When the connection fails or the application closes it, every request
//!   on it fails (an application that dies fails exactly the requests it
//!   held); new requests open a new connection. A connection without
//!   requests for [`IDLE_CLOSE`] is closed.

use super::conn::{AppConn, Transport};
use crate::config::AppAddr;
use crate::proto::{self, RecordHeader, RecordType};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Requests in flight on one connection when the application does not
/// announce `FCGI_MAX_REQS`.
pub const DEFAULT_MAX_REQS: u32 = 8;
/// Undelivered output a request may hold in memory before it is spilled
/// to a temporary file.
pub const MEM_LIMIT: usize = 256 * 1024;
/// How long the reader waits for a request over [`MEM_LIMIT`] to take its
/// data before spilling it (a request that keeps up is never spilled; one
/// that does not delays the others on its connection by this much, once).
pub const SPILL_GRACE: Duration = Duration::from_millis(20);
/// A connection without requests this long is closed.
pub const IDLE_CLOSE: Duration = Duration::from_secs(5);
/// Most bytes one write call puts out (whole records).
const WRITE_BATCH: usize = 64 * 1024;
/// Longest wait for the socket to take a record.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// One request's undelivered records.
#[derive(Default)]
struct Inbox {
    mem: VecDeque<u8>,
    /// Spilled bytes: written at `file_w`, read at `file_r`.
    file: Option<File>,
    file_w: u64,
    file_r: u64,
    /// Its `FCGI_END_REQUEST` arrived (it is in the inbox).
    ended: bool,
    /// The request is gone: later records are dropped, the id is freed at
    /// the request's end.
    abandoned: bool,
    /// Spilling failed: the request fails.
    failed: bool,
    /// Its request waits on `cv` for data (only then is it woken: one
    /// wake-up per arrival for the request concerned, not for all).
    waiting: bool,
    cv: Arc<Condvar>,
}

impl Inbox {
    fn push(&mut self, data: &[u8], spill_dir: &std::path::Path) -> io::Result<()> {
        if self.file.is_none() && self.mem.len() + data.len() <= MEM_LIMIT {
            self.mem.extend(data);
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(super::spool::anonymous_file(spill_dir)?);
            self.file_w = 0;
            self.file_r = 0;
        }
        let f = self.file.as_ref().expect("just set");
        f.write_all_at(data, self.file_w)?;
        self.file_w += data.len() as u64;
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.file_r == self.file_w
    }

    fn pop(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.mem.is_empty() {
            let (a, b) = self.mem.as_slices();
            let na = buf.len().min(a.len());
            buf[..na].copy_from_slice(&a[..na]);
            let nb = (buf.len() - na).min(b.len());
            buf[na..na + nb].copy_from_slice(&b[..nb]);
            self.mem.drain(..na + nb);
            return Ok(na + nb);
        }
        let Some(f) = self.file.as_ref() else { return Ok(0) };
        let want = buf.len().min((self.file_w - self.file_r) as usize);
        let n = f.read_at(&mut buf[..want], self.file_r)?;
        self.file_r += n as u64;
        if self.file_r == self.file_w {
            // All read back: new output goes to memory again.
            self.file = None;
            self.file_w = 0;
            self.file_r = 0;
        }
        Ok(n)
    }
}

struct State {
    inboxes: HashMap<u16, Inbox>,
    /// The connection failed or was closed: no new requests, and every
    /// inbox reads to its end.
    dead: bool,
    /// When the last request left (for [`IDLE_CLOSE`]).
    idle_since: Instant,
    /// The reader waits for this request to take data ([`SPILL_GRACE`]).
    reader_waits_for: Option<u16>,
    /// Where the search for a free request id starts.
    next_id: u16,
}

/// One multiplexed connection of this httpd child.
pub struct MuxConn {
    writer: Mutex<AppConn>,
    state: Mutex<State>,
    /// Signalled when the request the reader waits for took data.
    drained: Condvar,
    max_reqs: u32,
    spill_dir: PathBuf,
    tcp: bool,
}

impl MuxConn {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes whole records (`data` must be a sequence of them), all of
    /// them, under the write lock.
    fn write_records(&self, data: &[u8]) -> io::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let mut sent = 0;
        while sent < data.len() {
            match w.try_write_vectored(&[IoSlice::new(&data[sent..])])? {
                Some(n) => sent += n,
                None => {
                    let left = WRITE_TIMEOUT.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return Err(io::Error::from(io::ErrorKind::TimedOut));
                    }
                    w.wait(false, true, left)?;
                }
            }
        }
        Ok(())
    }

    /// A free request id, registered, or `None` when the connection is full
    /// or dead.
    fn claim(&self) -> Option<u16> {
        let mut st = self.state();
        if st.dead || st.inboxes.len() >= self.max_reqs as usize {
            return None;
        }
        // Ids rotate through 1..=65535 (FCGI_MAX_REQS bounds how many are in
        // flight, not their values): records an application writes late for
        // an earlier request — Go's net/http/fcgi goes on writing after it
        // answered an abort — find no inbox and are dropped, never taken
        // for a new request's.
        let mut id = st.next_id;
        while st.inboxes.contains_key(&id) {
            id = id % u16::MAX + 1;
        }
        st.next_id = id % u16::MAX + 1;
        st.inboxes.insert(id, Inbox::default());
        Some(id)
    }

    /// The reader: splits what arrives into records and routes them.
    fn read_loop(self: Arc<Self>, mut reader: AppConn) {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.try_read(&mut buf) {
                Ok(Some(0)) | Err(_) => break,
                Ok(Some(n)) => {
                    pending.extend_from_slice(&buf[..n]);
                    if !self.route(&mut pending) {
                        break;
                    }
                    continue;
                }
                Ok(None) => {}
            }
            {
                let mut st = self.state();
                if st.inboxes.is_empty() && st.idle_since.elapsed() >= IDLE_CLOSE {
                    st.dead = true;
                    break;
                }
            }
            if reader.wait(true, false, Duration::from_secs(1)).is_err() {
                break;
            }
        }
        let mut st = self.state();
        st.dead = true;
        let all: Vec<Arc<Condvar>> = st.inboxes.values().map(|i| i.cv.clone()).collect();
        drop(st);
        for cv in all {
            cv.notify_all();
        }
    }

    /// Routes the complete records at the front of `pending`. Returns
    /// false on a framing error (the connection is then given up).
    fn route(&self, pending: &mut Vec<u8>) -> bool {
        let mut used = 0;
        let mut st = self.state();
        let mut wake: Vec<Arc<Condvar>> = Vec::new();
        while pending.len() - used >= proto::FCGI_HEADER_LEN {
            let mut h = [0u8; 8];
            h.copy_from_slice(&pending[used..used + 8]);
            let hdr = RecordHeader::from_bytes(&h);
            if hdr.version != 1 {
                return false;
            }
            let total = 8 + hdr.body_len();
            if pending.len() - used < total {
                break;
            }
            used += total;
            let id = hdr.request_id;
            let end = hdr.rtype == RecordType::EndRequest;
            let Some(inbox) = st.inboxes.get_mut(&id) else { continue };
            if inbox.abandoned {
                if end {
                    st.inboxes.remove(&id);
                    if st.inboxes.is_empty() {
                        st.idle_since = Instant::now();
                    }
                }
                continue;
            }
            if inbox.ended {
                continue;
            }
            if inbox.file.is_none() && inbox.mem.len() + total > MEM_LIMIT {
                // Over its memory share: give the request a moment to take
                // what it has before spilling (the others wait that long).
                for cv in wake.drain(..) {
                    cv.notify_all();
                }
                st.reader_waits_for = Some(id);
                st = self
                    .drained
                    .wait_timeout_while(st, SPILL_GRACE, |st| {
                        st.inboxes
                            .get(&id)
                            .is_some_and(|i| !i.abandoned && i.file.is_none() && i.mem.len() + total > MEM_LIMIT)
                    })
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                st.reader_waits_for = None;
            }
            let Some(inbox) = st.inboxes.get_mut(&id) else { continue };
            if inbox.abandoned {
                continue;
            }
            let record = &pending[used - total..used];
            if inbox.push(record, &self.spill_dir).is_err() {
                inbox.failed = true;
            }
            inbox.ended |= end;
            if inbox.waiting {
                inbox.waiting = false;
                wake.push(inbox.cv.clone());
            }
        }
        let failed: Vec<u16> = st
            .inboxes
            .iter_mut()
            .filter(|(_, i)| i.failed && !i.abandoned)
            .map(|(id, i)| {
                i.abandoned = true;
                *id
            })
            .collect();
        drop(st);
        pending.drain(..used);
        for id in failed {
            let mut rec = Vec::new();
            proto::encode_abort_request(&mut rec, id);
            let _ = self.write_records(&rec);
        }
        for cv in wake {
            cv.notify_all();
        }
        true
    }
}

/// One request's share of a multiplexed connection.
pub struct MuxStream {
    conn: Arc<MuxConn>,
    id: u16,
}

impl MuxStream {
    /// The request id the exchange must use.
    pub fn request_id(&self) -> u16 {
        self.id
    }
}

/// Whole records at the front of `data`, at most `limit` bytes (at least
/// one record if one is complete).
fn whole_records(data: &[u8], limit: usize) -> usize {
    let mut n = 0;
    while data.len() - n >= proto::FCGI_HEADER_LEN {
        let mut h = [0u8; 8];
        h.copy_from_slice(&data[n..n + 8]);
        let total = 8 + RecordHeader::from_bytes(&h).body_len();
        if data.len() - n < total || (n > 0 && n + total > limit) {
            break;
        }
        n += total;
    }
    n
}

impl Transport for MuxStream {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut st = self.conn.state();
        let dead = st.dead;
        let inbox = st.inboxes.get_mut(&self.id).expect("registered");
        if inbox.failed {
            return Err(io::Error::other("the multiplexed response could not be spilled"));
        }
        if !inbox.is_empty() {
            let n = inbox.pop(buf);
            if st.reader_waits_for == Some(self.id) {
                self.conn.drained.notify_all();
            }
            return n.map(Some);
        }
        if dead || inbox.abandoned {
            return Ok(Some(0));
        }
        Ok(None)
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        let data: &[u8] = bufs.first().map_or(&[], |b| &b[..]);
        let n = whole_records(data, WRITE_BATCH);
        if n == 0 {
            return Ok(Some(0));
        }
        if self.conn.state().dead {
            return Err(io::Error::from(io::ErrorKind::ConnectionReset));
        }
        self.conn.write_records(&data[..n])?;
        Ok(Some(n))
    }

    fn wait(&self, want_read: bool, want_write: bool, timeout: Duration) -> io::Result<Option<(bool, bool)>> {
        let st = self.conn.state();
        let ready = |st: &State| {
            let i = &st.inboxes[&self.id];
            st.dead || i.failed || !i.is_empty()
        };
        if want_write || !want_read {
            let r = ready(&st);
            return Ok(Some((r, want_write)));
        }
        let mut st = st;
        if ready(&st) {
            return Ok(Some((true, false)));
        }
        let cv = {
            let i = st.inboxes.get_mut(&self.id).expect("registered");
            i.waiting = true;
            i.cv.clone()
        };
        let (mut st, _) = cv
            .wait_timeout_while(st, timeout, |st| !ready(st))
            .unwrap_or_else(|e| e.into_inner());
        if let Some(i) = st.inboxes.get_mut(&self.id) {
            i.waiting = false;
        }
        Ok(ready(&st).then_some((true, false)))
    }

    fn peer_has_unread(&self) -> bool {
        false
    }

    fn is_tcp(&self) -> bool {
        self.conn.tcp
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        let mut st = self.conn.state();
        let (ended, dead) = match st.inboxes.get(&self.id) {
            Some(i) => (i.ended, st.dead),
            None => return,
        };
        if ended || dead {
            st.inboxes.remove(&self.id);
            if st.inboxes.is_empty() {
                st.idle_since = Instant::now();
            }
            return;
        }
        // Not ended: the application is told, and the id stays taken until
        // it ends the request.
        if let Some(i) = st.inboxes.get_mut(&self.id) {
            i.abandoned = true;
            i.mem.clear();
            i.file = None;
            i.file_w = 0;
            i.file_r = 0;
        }
        drop(st);
        let mut rec = Vec::new();
        proto::encode_abort_request(&mut rec, self.id);
        let _ = self.conn.write_records(&rec);
    }
}

/// What a request talks through: a connection of its own, or its share of
/// a multiplexed one.
pub enum Link {
    Own(AppConn),
    Mux(MuxStream),
}

impl Transport for Link {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            Link::Own(c) => c.try_read(buf),
            Link::Mux(m) => m.try_read(buf),
        }
    }
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        match self {
            Link::Own(c) => c.try_write_vectored(bufs),
            Link::Mux(m) => m.try_write_vectored(bufs),
        }
    }
    fn wait(&self, want_read: bool, want_write: bool, timeout: Duration) -> io::Result<Option<(bool, bool)>> {
        match self {
            Link::Own(c) => c.wait(want_read, want_write, timeout),
            Link::Mux(m) => m.wait(want_read, want_write, timeout),
        }
    }
    fn peer_has_unread(&self) -> bool {
        match self {
            Link::Own(c) => c.peer_has_unread(),
            Link::Mux(m) => m.peer_has_unread(),
        }
    }
    fn is_tcp(&self) -> bool {
        match self {
            Link::Own(c) => c.is_tcp(),
            Link::Mux(m) => m.is_tcp(),
        }
    }
    fn late_id(&self) -> u16 {
        match self {
            Link::Own(c) => Transport::late_id(c),
            Link::Mux(_) => 0,
        }
    }
    fn aborted(&mut self, id: u16) {
        if let Link::Own(c) = self {
            Transport::aborted(c, id);
        }
    }
}

/// This child's pool of multiplexed connections.
pub fn pool() -> &'static Pool {
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    POOL.get_or_init(Pool::default)
}

/// This child's multiplexed connections, per application address.
#[derive(Default)]
pub struct Pool {
    conns: Mutex<HashMap<AppAddr, Vec<Arc<MuxConn>>>>,
    /// One connection is opened at a time per address: a burst of requests
    /// finding every connection full waits for the one being opened
    /// instead of each opening its own.
    opening: Mutex<HashMap<AppAddr, Arc<Mutex<()>>>>,
}

impl Pool {
    /// A stream for one request to `addr`: on a connection with a free id,
    /// or on a new one made by `connect`. `max_reqs`: what the application
    /// announced (0: [`DEFAULT_MAX_REQS`]).
    pub fn stream(
        &self,
        addr: &AppAddr,
        max_reqs: u32,
        spill_dir: PathBuf,
        connect: impl FnOnce() -> Result<AppConn, super::ConnectError>,
    ) -> Result<MuxStream, super::ConnectError> {
        if let Some(s) = self.claim(addr) {
            return Ok(s);
        }
        let opener = self
            .opening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(addr.clone())
            .or_default()
            .clone();
        let _opening = opener.lock().unwrap_or_else(|e| e.into_inner());
        // (Opened by someone else meanwhile?)
        if let Some(s) = self.claim(addr) {
            return Ok(s);
        }
        let conn = connect()?;
        let reader = conn.try_clone().map_err(|e| {
            super::ConnectError::Failed(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
        })?;
        let tcp = conn.is_tcp();
        let mc = Arc::new(MuxConn {
            writer: Mutex::new(conn),
            state: Mutex::new(State {
                inboxes: HashMap::new(),
                dead: false,
                idle_since: Instant::now(),
                reader_waits_for: None,
                next_id: 1,
            }),
            drained: Condvar::new(),
            max_reqs: if max_reqs == 0 {
                DEFAULT_MAX_REQS
            } else {
                max_reqs.min(1024)
            },
            spill_dir,
            tcp,
        });
        let id = mc.claim().expect("a new connection has a free id");
        let for_reader = mc.clone();
        let spawned = crate::sys::signals::spawn_with_signals_blocked(
            std::thread::Builder::new().name("fcgi-mux-reader".into()),
            move || for_reader.read_loop(reader),
        );
        if spawned.is_err() {
            return Err(super::ConnectError::Failed(nix::errno::Errno::EAGAIN));
        }
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(addr.clone())
            .or_default()
            .push(mc.clone());
        Ok(MuxStream { conn: mc, id })
    }

    /// A free id on an open connection to `addr`.
    fn claim(&self, addr: &AppAddr) -> Option<MuxStream> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let list = conns.entry(addr.clone()).or_default();
        list.retain(|c| !c.state().dead);
        list.iter()
            .find_map(|c| c.claim().map(|id| MuxStream { conn: c.clone(), id }))
    }

    /// Open connections to `addr` (tests, status).
    pub fn connections(&self, addr: &AppAddr) -> usize {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns
            .get(addr)
            .map_or(0, |l| l.iter().filter(|c| !c.state().dead).count())
    }
}

#[cfg(test)]
mod tests;
