//! Connection reuse (`FCGI_KEEP_CONN`) that never starves an application.
//!
//! A libfcgi process serves one connection at a time: while Apache keeps an
//! idle connection to it, the process accepts nobody else. Pooling
//! connections per worker (as mod_proxy_fcgi's `enablereuse=on` does) can
//! therefore park every application process behind idle connections while
//! other requests wait in the listen backlog. The rules here:
//!
//! 1. **Bounded**: all of Apache (every child process) together keeps at
//!    most `cap` connections per application open in keep mode — the
//!    class's process count for static applications, what the application
//!    answers to `FCGI_GET_VALUES` (`FCGI_MAX_CONNS`) for external ones
//!    (then learnt upwards while requests beyond it find processes to
//!    spare, [`Lease::answered`]), or `-keep-conn N`. The count lives in memory shared by all children
//!    ([`Shared`]); other requests connect without `FCGI_KEEP_CONN`.
//! 2. **Given up when anyone waits**: a request on a fresh connection that
//!    has no answer [`WAIT_MARK`] after it was sent counts as *waiting*
//!    until the application's first byte (it probably sits in the listen
//!    backlog; counting every fresh connection from the start instead kept
//!    reuse off for good under moderate load, issue 11). While any request
//!    waits, requests do not ask to keep their connections, kept
//!    connections that come back from a request are closed instead of
//!    pooled, idle ones are not taken from the pool, and a thread in each
//!    child holding idle ones (woken through a futex on the shared memory)
//!    closes them at once. A
//!    closed connection frees its application process for the backlog, so a
//!    request never waits behind an idle kept connection, and kept
//!    connections never jump the queue, whatever `cap` says (a process may
//!    have died, an external count may be wrong). Under more load than the
//!    application has processes this turns reuse off by itself; below that,
//!    every request reuses a connection. For [`COOL_DOWN_MS`] after a wait
//!    no new connection is kept (else reuse flapped under saturation), and
//!    when the cap is the process count ([`Cap::Processes`]) and all of it
//!    is kept, a fresh connection is known to wait and says so at once.
//! 3. **Never waited for**: when every kept connection is open, a request
//!    connects without keeping at once. (Waiting a moment for one of the
//!    child's busy kept connections to come back stalled requests 20 ms at
//!    a time under load, and cost a futex call per request: issue 11.)
//! 4. **Reused only when clean**: a connection goes back to the pool only
//!    after `FCGI_END_REQUEST` with the whole request sent and nothing read
//!    beyond it; before reuse it is polled, and one the application closed
//!    (libfcgi closes a kept connection whose request left input unread) is
//!    dropped. Idle connections are closed after [`IDLE_KEEP`]. Each request on
//!    a kept connection carries the next request id (`AppConn::next_request_id`),
//!    so records an application writes late for an earlier request are foreign
//!    (a protocol error) instead of the next request's response.
//!
//! The pool is per child process (shared by its threads); the accounting is
//! per child row in the shared memory, so a crashed child's counts are
//! reclaimed by whoever notices the dead pid.

use super::conn::{AppConn, PeerCheck};
use super::row_owner;
use crate::config::AppAddr;
use crate::proto::{self, Decoder, Event};
use crate::sys::{shm, signals};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Applications with reuse (slots in the shared table).
pub const MAX_CLASSES: usize = 64;
/// httpd child processes that can take part (prefork's default ServerLimit
/// is 256); a child without a row simply does not keep connections.
pub const MAX_ROWS: usize = 1024;
/// An idle kept connection is closed after this long.
pub const IDLE_KEEP: Duration = Duration::from_secs(5);
/// A request on a fresh connection without an answer after this long
/// counts as waiting for a process (rule 2).
pub const WAIT_MARK: Duration = Duration::from_millis(1);
/// A request on a kept connection that the application has not even read
/// after this long means it does not serve kept connections: keeping stops
/// for the application (see `exchange::Failure::KeptStalled`).
pub const STALL_AFTER: Duration = Duration::from_secs(1);
/// After a request reported waiting for a process, no new connection is
/// kept for this long (rule 2): the application was saturated a moment ago.
/// Without it, reuse switched on and off under steady saturation — the
/// moment the backlog drained, new connections were kept, and the requests
/// behind them waited for the wait mark and closed them again (at 32 clients
/// and 4 processes about one request in nine waited; issue 11).
pub const COOL_DOWN_MS: u64 = 250;
/// The cool-down doubles, up to this, while the first wait after each one
/// comes within its length of its end (saturation goes on: each new kept
/// connection would only make requests wait again).
pub const COOL_DOWN_MAX_MS: u64 = 4000;
/// How long the `FCGI_GET_VALUES` question may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// The `cap` of a class whose capacity is still to be asked for.
const CAP_PROBE: u32 = u32::MAX;
/// Upper bound for a capacity an application announces.
const CAP_LIMIT: u32 = 4096;
const MAGIC: u32 = 0x4643_4b31; // "FCK1"

/// One application in the shared table.
#[repr(C)]
pub struct ClassSlot {
    /// [`class_key`] of the address; 0 = free.
    key: AtomicU64,
    /// Most connections kept open across all children ([`CAP_PROBE`]: not
    /// known yet, none are kept).
    cap: AtomicU32,
    /// 1 when `cap` is the number of application processes (a static
    /// application without `-keep-conn`): with `cap` connections kept, a
    /// fresh connection is known to wait for one of them.
    exact: AtomicU32,
    /// [`crate::sys::mono_ms`] before which no new connection is kept
    /// ([`COOL_DOWN_MS`] after the latest wait).
    cool_until: AtomicU64,
    /// The length of the current cool-down (0: [`COOL_DOWN_MS`]).
    cool_ms: AtomicU64,
    /// The capacity the application announced (`FCGI_MAX_CONNS`, or 1),
    /// when `cap` was asked for: then `cap` is learnt upwards from there
    /// (see [`Lease::answered`]); 0 when `cap` is configured.
    announced: AtomicU32,
    /// Connections open in keep mode (busy or idle), all children.
    kept: AtomicU32,
    /// Of those, idle in some child's pool.
    idle: AtomicU32,
    /// Requests on fresh connections without an answer [`WAIT_MARK`] after
    /// they were sent, all children (they wait for a process).
    waiting: AtomicU32,
    /// Requests on fresh connections without an answer yet, all children
    /// (while there are any, no new connection is kept).
    fresh: AtomicU32,
    /// 1 while a child asks the application for its capacity.
    probing: AtomicU32,
    /// Unix time before which a failed probe is not retried.
    probe_after: AtomicU64,
    /// Static applications: listening sockets our process manager holds
    /// for this address ([`Shared::socket_bound`]).
    listeners: AtomicU32,
    /// Static applications: 0, or [`BIND_FAILED`] | the uid owning the
    /// file in the way ([`BIND_OWNER_UNKNOWN`] if none was seen), from the
    /// process manager's latest failed bind.
    bind_failed: AtomicU64,
    /// Backends of an external server (issue 14, `super::backends`):
    /// requests in flight to this address, all children.
    busy: AtomicU32,
    /// 1 while the backend is marked down.
    down: AtomicU32,
    /// While down: Unix time in ms of the next health probe.
    retry_at: AtomicU64,
    /// Bumped each time the backend goes down: connections pooled before
    /// are never reused.
    epoch: AtomicU32,
    /// Round-robin turn (used in the first backend's slot of a server).
    turn: AtomicU32,
    /// Requests sent to this backend, and of those the ones whose
    /// connection failed (for mod_status).
    requests: AtomicU64,
    failures: AtomicU64,
    /// Multiplexing (issue 14, `super::mux`): 0 = no; else the requests
    /// one connection may carry (the application answered
    /// `FCGI_MPXS_CONNS=1`; its `FCGI_MAX_REQS`, or
    /// `mux::DEFAULT_MAX_REQS`).
    mux_reqs: AtomicU32,
    /// Requests that took an idle kept connection, all children (for
    /// mod_status: whether reuse works).
    reuses: AtomicU64,
    /// Requests that reported waiting for a process (rule 2), all children
    /// (for mod_status: how often reuse stood in the way).
    waits: AtomicU64,
}

impl ClassSlot {
    /// A request waited at `now`: no new keeps for a while. The first wait
    /// after a cool-down ended, within that cool-down's length of its end,
    /// doubles the next one (up to [`COOL_DOWN_MAX_MS`]); a later one starts
    /// again from [`COOL_DOWN_MS`]. Waits during a cool-down extend it.
    fn cool_down(&self, now: u64) {
        let until = self.cool_until.load(SeqCst);
        let mut len = match self.cool_ms.load(SeqCst) {
            0 => COOL_DOWN_MS,
            n => n,
        };
        if now >= until {
            len = if until != 0 && now < until + len {
                (len * 2).min(COOL_DOWN_MAX_MS)
            } else {
                COOL_DOWN_MS
            };
            self.cool_ms.store(len, SeqCst);
        }
        self.cool_until.fetch_max(now + len, SeqCst);
    }

    /// The application answered (or not) how many connections it serves:
    /// `cap` starts there and is learnt upwards (see [`Reuse::learn_more`]).
    fn set_announced(&self, n: u32) {
        self.announced.store(n, SeqCst);
        let _ = self.cap.compare_exchange(CAP_PROBE, n, SeqCst, SeqCst);
    }
}

const BIND_FAILED: u64 = 1 << 32;
const BIND_OWNER_UNKNOWN: u64 = 1 << 33;

/// Whether a static application's address is held by our process manager
/// (see [`Shared::bind_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindStatus {
    /// The PM listens on it.
    Bound,
    /// The PM's last bind failed: someone else holds the address (for a Unix
    /// socket, the uid owning the file, if known).
    Failed { owner: Option<u32> },
    /// Neither yet (the PM is starting, or restarting the class).
    Unknown,
}

/// One httpd child's share of the counts (for reclaiming a dead child's).
#[repr(C)]
pub struct Row {
    kept: [AtomicU32; MAX_CLASSES],
    idle: [AtomicU32; MAX_CLASSES],
    waiting: [AtomicU32; MAX_CLASSES],
    fresh: [AtomicU32; MAX_CLASSES],
    busy: [AtomicU32; MAX_CLASSES],
}

/// The table shared by httpd's parent and children.
#[repr(C)]
pub struct Shared {
    magic: AtomicU32,
    /// Bumped (and futex-woken) when a request starts waiting while
    /// connections are idle somewhere.
    seq: AtomicU32,
    /// 1 from such a wake until a reaper starts its pass: later waiters need
    /// not wake anyone again (one futex call per reaper pass at most).
    wake_pending: AtomicU32,
    classes: [ClassSlot; MAX_CLASSES],
    /// The owner of each row ([`row_owner`]: pid and start time; 0 = free),
    /// apart from the counts so that a scan for dead owners reads two
    /// pages, not every row.
    pids: [AtomicU64; MAX_ROWS],
    rows: [Row; MAX_ROWS],
}

/// Where an address was found in the table ([`Shared::hint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotHint {
    slot: usize,
    key: u64,
}

/// How many connections an application may have kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// As many as the application has processes (each serving one
    /// connection at a time): a static application's `-processes`.
    Processes(u32),
    Fixed(u32),
    /// Ask the application (`FCGI_GET_VALUES`).
    Probe,
}

/// The shared-table key of an application address (stable across the
/// processes of one build: SipHash with fixed keys).
pub fn class_key(addr: &AppAddr) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    addr.hash(&mut h);
    h.finish() | 1
}

fn sub_sat(a: &AtomicU32, n: u32) {
    let _ = a.fetch_update(SeqCst, SeqCst, |v| Some(v.saturating_sub(n)));
}

impl Shared {
    /// Parent, each configuration pass: makes sure `addr` has a slot with
    /// capacity `cap`. Existing counts stay (children of the previous
    /// generation may still hold connections). `None` if the table is full.
    pub fn publish(&self, addr: &AppAddr, cap: Cap) -> Option<usize> {
        self.magic.store(MAGIC, SeqCst);
        let key = class_key(addr);
        let slot = self.find_key(key).or_else(|| {
            (0..MAX_CLASSES).find(|&i| self.classes[i].key.compare_exchange(0, key, SeqCst, SeqCst).is_ok())
        })?;
        let c = &self.classes[slot];
        c.exact.store(u32::from(matches!(cap, Cap::Processes(_))), SeqCst);
        c.announced.store(0, SeqCst);
        match cap {
            Cap::Processes(n) | Cap::Fixed(n) => c.cap.store(n.min(CAP_LIMIT), SeqCst),
            Cap::Probe => {
                c.cap.store(CAP_PROBE, SeqCst);
                c.probe_after.store(0, SeqCst);
                // (Asked again with the capacity.)
                c.mux_reqs.store(0, SeqCst);
            }
        }
        Some(slot)
    }

    /// Parent, each configuration pass, before [`Shared::publish`]: frees
    /// the slots of addresses not in `configured` that hold nothing (no
    /// connection kept or idle, no request waiting, no probe under way), so
    /// that configuration churn over the server's life does not use up the
    /// table. Returns how many were freed.
    ///
    /// A child of the previous generation finds its slot per request: after
    /// the free it no longer finds the retired address and simply does not
    /// keep. One that found it just before may still count a kept connection
    /// into the slot; the count is given back when that connection closes,
    /// so at worst the slot's next owner keeps one connection fewer
    /// meanwhile. Slots still in use are freed on a later pass.
    pub fn free_unconfigured(&self, configured: &[AppAddr]) -> usize {
        let keep: Vec<u64> = configured.iter().map(class_key).collect();
        let mut freed = 0;
        for c in &self.classes {
            let key = c.key.load(SeqCst);
            if key == 0 || keep.contains(&key) {
                continue;
            }
            let busy = [&c.kept, &c.idle, &c.waiting, &c.fresh, &c.probing, &c.busy]
                .iter()
                .any(|n| n.load(SeqCst) != 0);
            if busy {
                continue;
            }
            // The fields first, the key last: a slot is only found again
            // once it is published with fresh values.
            c.cap.store(CAP_PROBE, SeqCst);
            c.probe_after.store(0, SeqCst);
            c.listeners.store(0, SeqCst);
            c.bind_failed.store(0, SeqCst);
            c.down.store(0, SeqCst);
            c.retry_at.store(0, SeqCst);
            c.requests.store(0, SeqCst);
            c.failures.store(0, SeqCst);
            c.mux_reqs.store(0, SeqCst);
            c.reuses.store(0, SeqCst);
            c.waits.store(0, SeqCst);
            c.exact.store(0, SeqCst);
            c.cool_until.store(0, SeqCst);
            c.cool_ms.store(0, SeqCst);
            c.announced.store(0, SeqCst);
            if c.key.compare_exchange(key, 0, SeqCst, SeqCst).is_ok() {
                freed += 1;
            }
        }
        freed
    }

    fn find_key(&self, key: u64) -> Option<usize> {
        (0..MAX_CLASSES).find(|&i| self.classes[i].key.load(SeqCst) == key)
    }

    /// The slot of `addr` and its key, to be checked later with one load
    /// instead of hashing the address and scanning the table
    /// ([`Shared::find_hinted`]; issue 11).
    pub fn hint(&self, addr: &AppAddr) -> Option<SlotHint> {
        let slot = self.find(addr)?;
        Some(SlotHint {
            slot,
            key: self.classes[slot].key.load(SeqCst),
        })
    }

    /// The slot of `addr`: `hint`'s if that slot still belongs to the same
    /// address (one load), else found again.
    pub fn find_hinted(&self, addr: &AppAddr, hint: Option<SlotHint>) -> Option<usize> {
        match hint {
            Some(h) if h.slot < MAX_CLASSES && self.classes[h.slot].key.load(SeqCst) == h.key => Some(h.slot),
            _ => self.find(addr),
        }
    }

    /// The slot of `addr`, if the parent published it.
    pub fn find(&self, addr: &AppAddr) -> Option<usize> {
        if self.magic.load(SeqCst) != MAGIC {
            return None;
        }
        self.find_key(class_key(addr))
    }

    /// Process manager: a listening socket for `addr` was bound.
    pub fn socket_bound(&self, addr: &AppAddr) {
        if let Some(slot) = self.find(addr) {
            let c = &self.classes[slot];
            c.listeners.fetch_add(1, SeqCst);
            c.bind_failed.store(0, SeqCst);
        }
    }

    /// Process manager: binding `addr` failed.
    pub fn socket_failed(&self, addr: &AppAddr, owner: Option<u32>) {
        if let Some(slot) = self.find(addr) {
            let v = BIND_FAILED | owner.map_or(BIND_OWNER_UNKNOWN, u64::from);
            self.classes[slot].bind_failed.store(v, SeqCst);
        }
    }

    /// Process manager: one of its listening sockets for `addr` was closed.
    pub fn socket_released(&self, addr: &AppAddr) {
        if let Some(slot) = self.find(addr) {
            sub_sat(&self.classes[slot].listeners, 1);
        }
    }

    /// Parent, before a new process manager starts: the old one's sockets
    /// are gone (or about to go with its applications).
    pub fn forget_sockets(&self) {
        for c in &self.classes {
            c.listeners.store(0, SeqCst);
            c.bind_failed.store(0, SeqCst);
        }
    }

    /// Request handlers (two atomic loads, no system call): may a request
    /// connect to the static application in `slot`?
    pub fn bind_status(&self, slot: usize) -> BindStatus {
        let c = &self.classes[slot];
        let failed = c.bind_failed.load(SeqCst);
        if failed != 0 {
            return BindStatus::Failed {
                owner: (failed & BIND_OWNER_UNKNOWN == 0).then_some(failed as u32),
            };
        }
        if c.listeners.load(SeqCst) > 0 {
            BindStatus::Bound
        } else {
            BindStatus::Unknown
        }
    }

    /// Connections kept open (busy or idle) to the application in `slot`,
    /// all children (for mod_status).
    pub fn kept(&self, slot: usize) -> u32 {
        self.classes[slot].kept.load(SeqCst)
    }

    /// (requests on a reused connection, requests that reported waiting for
    /// a process) of `slot` since it was published, all children (for
    /// mod_status).
    pub fn reuse_counts(&self, slot: usize) -> (u64, u64) {
        let c = &self.classes[slot];
        (c.reuses.load(SeqCst), c.waits.load(SeqCst))
    }

    /// What choosing among the backends needs to know about `slot` at
    /// Unix time `now_ms` (issue 14, see `super::backends`).
    pub fn backend_view(&self, slot: usize, now_ms: u64) -> super::backends::View {
        let c = &self.classes[slot];
        let down = c.down.load(SeqCst) != 0;
        super::backends::View {
            busy: c.busy.load(SeqCst),
            down,
            retry_due: down && now_ms >= c.retry_at.load(SeqCst),
        }
    }

    /// Requests one multiplexed connection to `slot` may carry; 0 when the
    /// application does not multiplex (or was not asked).
    pub fn mux_reqs(&self, slot: usize) -> u32 {
        self.classes[slot].mux_reqs.load(SeqCst)
    }

    /// The next round-robin turn of the server whose first backend is in
    /// `slot`.
    pub fn next_turn(&self, slot: usize) -> u32 {
        self.classes[slot].turn.fetch_add(1, SeqCst)
    }

    pub fn is_down(&self, slot: usize) -> bool {
        self.classes[slot].down.load(SeqCst) != 0
    }

    /// Marks the backend in `slot` down until a probe or a request finds it
    /// answering, the next probe due `retry_ms` from `now_ms`. Its pooled
    /// connections are never reused. Returns whether it was up (for one
    /// log line per change).
    pub fn mark_down(&self, slot: usize, now_ms: u64, retry_ms: u64) -> bool {
        let c = &self.classes[slot];
        c.retry_at.store(now_ms.saturating_add(retry_ms), SeqCst);
        let was_up = c.down.swap(1, SeqCst) == 0;
        if was_up {
            c.epoch.fetch_add(1, SeqCst);
        }
        was_up
    }

    /// The backend in `slot` answered. Returns whether it was down.
    pub fn mark_up(&self, slot: usize) -> bool {
        self.classes[slot].down.swap(0, SeqCst) != 0
    }

    /// While the backend in `slot` is down and its probe is due at
    /// `now_ms`: claims the probe (one caller across all children) and sets
    /// the next one `retry_ms` later.
    pub fn claim_probe(&self, slot: usize, now_ms: u64, retry_ms: u64) -> bool {
        let c = &self.classes[slot];
        let due = c.retry_at.load(SeqCst);
        c.down.load(SeqCst) != 0
            && now_ms >= due
            && c.retry_at
                .compare_exchange(due, now_ms.saturating_add(retry_ms), SeqCst, SeqCst)
                .is_ok()
    }

    /// A request was sent to (`failed`: could not connect to) the backend
    /// in `slot`.
    pub fn count_request(&self, slot: usize, failed: bool) {
        let c = &self.classes[slot];
        c.requests.fetch_add(1, SeqCst);
        if failed {
            c.failures.fetch_add(1, SeqCst);
        }
    }

    /// (requests in flight, requests, connect failures, down) of `slot`,
    /// for mod_status.
    pub fn backend_counts(&self, slot: usize) -> (u32, u64, u64, bool) {
        let c = &self.classes[slot];
        (
            c.busy.load(SeqCst),
            c.requests.load(SeqCst),
            c.failures.load(SeqCst),
            c.down.load(SeqCst) != 0,
        )
    }

    /// Current (cap, kept, idle, waiting) of a slot.
    #[cfg(test)]
    pub fn counts(&self, slot: usize) -> (u32, u32, u32, u32) {
        let c = &self.classes[slot];
        (
            c.cap.load(SeqCst),
            c.kept.load(SeqCst),
            c.idle.load(SeqCst),
            c.waiting.load(SeqCst),
        )
    }

    /// Claims a row for the running process `pid` (named by pid and start
    /// time, [`row_owner`]), reclaiming rows of dead processes on the way.
    fn claim_row(&self, pid: i32) -> Option<usize> {
        self.claim_row_as(row_owner::of_process(pid), row_owner::running)
    }

    fn claim_row_as(&self, owner: u64, running: fn(u64) -> bool) -> Option<usize> {
        self.reclaim_rows_by(running);
        (0..MAX_ROWS).find(|&i| {
            self.pids[i]
                .compare_exchange(row_owner::FREE, owner, SeqCst, SeqCst)
                .is_ok()
        })
    }

    /// Gives back the counts of rows whose process is gone (the caller's
    /// own row included, should its pid once have belonged to a child that
    /// crashed: the start time tells them apart).
    fn reclaim_dead_rows(&self) {
        self.reclaim_rows_by(row_owner::running);
    }

    /// The row is taken first (owner → [`row_owner::RECLAIMING`]), its
    /// counts given back, and only then freed: of several processes that
    /// find the same dead owner, one reclaims, and nobody can claim the row
    /// (and count into it) while its counts are being zeroed. The owner
    /// word holds a start time, so the CAS cannot succeed for a later
    /// process with the dead one's pid.
    fn reclaim_rows_by(&self, running: fn(u64) -> bool) {
        for (owner, row) in self.pids.iter().zip(&self.rows) {
            let w = owner.load(SeqCst);
            if w == row_owner::FREE || w == row_owner::RECLAIMING || running(w) {
                continue;
            }
            if owner.compare_exchange(w, row_owner::RECLAIMING, SeqCst, SeqCst).is_ok() {
                self.drop_row(row);
                owner.store(row_owner::FREE, SeqCst);
            }
        }
    }

    /// The owner `pid` gives its row `i` back (as a reclaimer would).
    fn release_row(&self, i: usize, pid: i32) {
        let owner = &self.pids[i];
        let w = owner.load(SeqCst);
        if w == row_owner::FREE || w == row_owner::RECLAIMING || row_owner::pid_of(w) != pid {
            return;
        }
        if owner.compare_exchange(w, row_owner::RECLAIMING, SeqCst, SeqCst).is_ok() {
            self.drop_row(&self.rows[i]);
            owner.store(row_owner::FREE, SeqCst);
        }
    }

    fn drop_row(&self, row: &Row) {
        for (i, c) in self.classes.iter().enumerate() {
            sub_sat(&c.kept, row.kept[i].swap(0, SeqCst));
            sub_sat(&c.idle, row.idle[i].swap(0, SeqCst));
            sub_sat(&c.waiting, row.waiting[i].swap(0, SeqCst));
            sub_sat(&c.fresh, row.fresh[i].swap(0, SeqCst));
            sub_sat(&c.busy, row.busy[i].swap(0, SeqCst));
        }
    }

    fn someone_waits(&self, slot: usize) -> bool {
        self.classes[slot].waiting.load(SeqCst) > 0
    }
}

struct Idle {
    conn: AppConn,
    since: Instant,
    /// The slot's `epoch` when the connection was pooled.
    epoch: u32,
}

/// One child process's pools, over the shared table.
pub struct Reuse {
    shared: &'static Shared,
    pid: i32,
    row: OnceLock<Option<usize>>,
    pools: [Mutex<Vec<Idle>>; MAX_CLASSES],
    reaper: Once,
}

/// What [`Reuse::reserve`] found.
enum Reserved {
    Kept,
    /// `cap` connections are kept already.
    Full,
    /// Nothing is kept for the application (yet), or this child has no row.
    No,
}

/// How a request talks to an application with reuse.
pub struct Lease {
    reuse: &'static Reuse,
    slot: usize,
    /// The connection counts as kept: `FCGI_KEEP_CONN` is sent.
    keep: bool,
    /// An idle connection taken from the pool, until the caller takes it.
    pooled: Option<AppConn>,
    /// Whether the connection was reused (a stale one may be retried).
    reused: bool,
    /// Counted in `fresh` (a fresh connection without an answer yet).
    fresh: bool,
    /// Counted in `waiting` (the same, for longer than [`WAIT_MARK`]).
    waiting: bool,
    /// Not kept because `cap` connections were (with nobody fresh or
    /// waiting): if its fresh connection is answered at once, the
    /// application had a process to spare ([`Reuse::learn_more`]).
    capped: bool,
}

impl Reuse {
    pub fn new(shared: &'static Shared) -> Reuse {
        Reuse {
            shared,
            pid: std::process::id() as i32,
            row: OnceLock::new(),
            pools: std::array::from_fn(|_| Mutex::new(Vec::new())),
            reaper: Once::new(),
        }
    }

    pub fn shared(&self) -> &'static Shared {
        self.shared
    }

    fn row(&self) -> Option<&Row> {
        let i = (*self.row.get_or_init(|| self.shared.claim_row(self.pid)))?;
        Some(&self.shared.rows[i])
    }

    fn pool(&self, slot: usize) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.pools[slot].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves this child's share of one count of `slot` — and the class's
    /// total, when given — up or down by one.
    fn count(&self, slot: usize, up: bool, share: fn(&Row) -> &[AtomicU32; MAX_CLASSES], total: Option<&AtomicU32>) {
        let Some(row) = self.row() else { return };
        for counter in std::iter::once(&share(row)[slot]).chain(total) {
            if up {
                counter.fetch_add(1, SeqCst);
            } else {
                sub_sat(counter, 1);
            }
        }
    }

    /// (The class total of `kept` goes up in [`Reuse::reserve`], bounded.)
    fn count_kept(&self, slot: usize, up: bool) {
        let total = (!up).then_some(&self.shared.classes[slot].kept);
        self.count(slot, up, |r| &r.kept, total);
    }

    fn count_idle(&self, slot: usize, up: bool) {
        self.count(slot, up, |r| &r.idle, Some(&self.shared.classes[slot].idle));
    }

    /// A request starting to wait wakes the children's reapers when some
    /// connection is idle.
    fn count_fresh(&self, slot: usize, up: bool) {
        self.count(slot, up, |r| &r.fresh, Some(&self.shared.classes[slot].fresh));
    }

    fn count_waiting(&self, slot: usize, up: bool) {
        let c = &self.shared.classes[slot];
        self.count(slot, up, |r| &r.waiting, Some(&c.waiting));
        if up {
            c.waits.fetch_add(1, SeqCst);
            c.cool_down(crate::sys::mono_ms());
            // A learnt capacity was too high (or the application is
            // saturated): one less, down to what the application announced.
            let floor = c.announced.load(SeqCst);
            if floor > 0 {
                let _ = c
                    .cap
                    .fetch_update(SeqCst, SeqCst, |v| (v > floor && v != CAP_PROBE).then(|| v - 1));
            }
        }
        if up && c.idle.load(SeqCst) > 0 && self.shared.wake_pending.swap(1, SeqCst) == 0 {
            self.shared.seq.fetch_add(1, SeqCst);
            shm::futex_wake_all(&self.shared.seq);
        }
    }

    /// A request to the backend in `slot` starts (`up`) or ends: the
    /// requests in flight that choosing among backends compares.
    pub fn count_busy(&self, slot: usize, up: bool) {
        self.count(slot, up, |r| &r.busy, Some(&self.shared.classes[slot].busy));
    }

    /// Whether the cool-down after the latest wait is over.
    fn cooled(&self, slot: usize) -> bool {
        let until = self.shared.classes[slot].cool_until.load(SeqCst);
        until == 0 || crate::sys::mono_ms() >= until
    }

    /// Reserves a kept connection if fewer than `cap` are open.
    fn reserve(&self, slot: usize) -> Reserved {
        if self.row().is_none() {
            return Reserved::No;
        }
        let c = &self.shared.classes[slot];
        let cap = c.cap.load(SeqCst);
        if cap == CAP_PROBE || cap == 0 {
            return Reserved::No;
        }
        if c.kept
            .fetch_update(SeqCst, SeqCst, |k| (k < cap).then_some(k + 1))
            .is_err()
        {
            return Reserved::Full;
        }
        self.count_kept(slot, true);
        Reserved::Kept
    }

    /// A request that found all `cap` connections kept got a process on a
    /// fresh connection without waiting: the application has more processes
    /// than it announced (libfcgi answers 1 per process, however many share
    /// the socket) — one more may be kept.
    fn learn_more(&self, slot: usize) {
        let c = &self.shared.classes[slot];
        if c.announced.load(SeqCst) == 0 {
            return;
        }
        let _ = c.cap.fetch_update(SeqCst, SeqCst, |v| {
            (v != 0 && v != CAP_PROBE && v < CAP_LIMIT && c.kept.load(SeqCst) >= v).then(|| v + 1)
        });
    }

    /// Takes the most recently pooled live connection of `slot`.
    fn pop_idle(&self, slot: usize) -> Option<AppConn> {
        if self.shared.classes[slot].cap.load(SeqCst) == 0 {
            // Keeping was stopped (`Lease::stop_keeping`): the idle ones go.
            self.drop_idle(slot);
            return None;
        }
        loop {
            let idle = self.pool(slot).pop()?;
            self.count_idle(slot, false);
            let epoch = self.shared.classes[slot].epoch.load(SeqCst);
            if idle.since.elapsed() < IDLE_KEEP && idle.epoch == epoch && idle.conn.is_idle_alive() {
                return Some(idle.conn);
            }
            drop(idle);
            self.count_kept(slot, false);
        }
    }

    /// What a request to `slot` starts with: a pooled connection, or the
    /// right to keep a new one, or neither.
    pub fn lease(&'static self, slot: usize) -> Lease {
        let mut lease = Lease::plain(self, slot);
        // (Claiming this child's row first reclaims those of dead children.)
        let Some(row) = self.row() else { return lease };
        // While anyone waits for a process, the application is saturated:
        // idle kept connections are given up rather than used (they would
        // jump the queue), and the request does not ask to keep its
        // connection either (it would only be closed when it comes back,
        // after holding the process until then). Under saturation reuse
        // costs a load.
        if self.shared.someone_waits(slot) {
            if row.idle[slot].load(SeqCst) > 0 {
                self.reap_slot(slot);
            }
            return lease;
        }
        if let Some(conn) = self.pop_idle(slot) {
            self.shared.classes[slot].reuses.fetch_add(1, SeqCst);
            lease.keep = true;
            lease.reused = true;
            lease.pooled = Some(conn);
        } else if self.shared.classes[slot].fresh.load(SeqCst) == 0 && self.cooled(slot) {
            // (While fresh connections are in flight, the application may
            // be short of processes: no new connection is kept then; nor
            // for a while after a request waited for a process.)
            match self.reserve(slot) {
                Reserved::Kept => lease.keep = true,
                Reserved::Full => lease.capped = true,
                Reserved::No => {}
            }
        }
        lease
    }

    /// Back from a request: pool `conn` unless a request waits for a
    /// process, otherwise close it.
    fn give_back(&'static self, slot: usize, conn: AppConn) {
        if self.shared.someone_waits(slot) {
            drop(conn);
            self.count_kept(slot, false);
            return;
        }
        // Counted idle before it can be taken (a thread popping it first
        // would otherwise decrement a count still at 0 — lost, saturating —
        // and this late increment would leave `idle` above 0 for good, so
        // that every waiting request would wake every child's reaper).
        self.count_idle(slot, true);
        self.pool(slot).push(Idle {
            conn,
            since: Instant::now(),
            epoch: self.shared.classes[slot].epoch.load(SeqCst),
        });
        self.reaper.call_once(|| {
            let _ = signals::spawn_with_signals_blocked(
                std::thread::Builder::new().name("fcgi-keep-reaper".into()),
                move || self.reap_forever(),
            );
        });
    }

    /// Closes every idle connection of `slot` in this child.
    fn drop_idle(&self, slot: usize) {
        let n = std::mem::take(&mut *self.pool(slot)).len();
        for _ in 0..n {
            self.count_idle(slot, false);
            self.count_kept(slot, false);
        }
    }

    /// Closes the idle connections of `slot` that must go: all of them while
    /// a request waits, otherwise those idle for [`IDLE_KEEP`]. Returns
    /// whether any are left.
    fn reap_slot(&self, slot: usize) -> bool {
        let all = self.shared.someone_waits(slot) || self.shared.is_down(slot);
        let closed = {
            let mut pool = self.pool(slot);
            let before = pool.len();
            pool.retain(|i| !all && i.since.elapsed() < IDLE_KEEP);
            before - pool.len()
        };
        for _ in 0..closed {
            self.count_idle(slot, false);
            self.count_kept(slot, false);
        }
        !self.pool(slot).is_empty()
    }

    /// One pass of the reaper over every slot. Returns whether any idle
    /// connections are left.
    pub fn reap_once(&self) -> bool {
        self.shared.wake_pending.store(0, SeqCst);
        let Some(row) = self.row() else { return false };
        let mut left = false;
        for slot in 0..MAX_CLASSES {
            if row.idle[slot].load(SeqCst) > 0 {
                left |= self.reap_slot(slot);
            }
        }
        left
    }

    fn reap_forever(&self) {
        let mut last_reclaim = Instant::now();
        loop {
            let seen = self.shared.seq.load(SeqCst);
            let left = self.reap_once();
            if last_reclaim.elapsed() > Duration::from_secs(10) {
                self.shared.reclaim_dead_rows();
                last_reclaim = Instant::now();
            }
            let nap = if left {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(2)
            };
            shm::futex_wait(&self.shared.seq, seen, nap);
        }
    }

    /// The child is exiting: close every pooled connection and give back
    /// its row.
    pub fn child_exit(&self) {
        for slot in 0..MAX_CLASSES {
            self.drop_idle(slot);
        }
        if let Some(Some(i)) = self.row.get() {
            self.shared.release_row(*i, self.pid);
        }
    }

    /// For an application of unknown capacity: asks it once (in the
    /// background) with `FCGI_GET_VALUES`; until the answer, nothing is kept.
    /// `report` gets one line saying what was found.
    pub fn probe_if_needed(&'static self, slot: usize, addr: &AppAddr, peer: PeerCheck, report: fn(String)) {
        let c = &self.shared.classes[slot];
        if c.cap.load(SeqCst) != CAP_PROBE || unix_now() < c.probe_after.load(SeqCst) {
            return;
        }
        if c.probing.compare_exchange(0, 1, SeqCst, SeqCst).is_err() {
            return;
        }
        let addr = addr.clone();
        let builder = std::thread::Builder::new().name("fcgi-get-values".into());
        let spawned = signals::spawn_with_signals_blocked(builder, move || {
            let c = &self.shared.classes[slot];
            let target = match &addr {
                AppAddr::Unix(p) => p.display().to_string(),
                AppAddr::Tcp(a) => a.to_string(),
            };
            match ask_values(&addr, PROBE_TIMEOUT, peer) {
                Ok(v) => {
                    let n = v.max_conns.min(CAP_LIMIT);
                    c.set_announced(n);
                    if v.mpxs {
                        let reqs = if v.max_reqs == 0 {
                            super::mux::DEFAULT_MAX_REQS
                        } else {
                            v.max_reqs.min(1024)
                        };
                        c.mux_reqs.store(reqs, SeqCst);
                        report(format!(
                            "FastCGI: {target} answers FCGI_MPXS_CONNS=1: it multiplexes, up to {reqs} requests per \
                             connection{} (used under a threaded MPM unless -multiplex off)",
                            if v.max_reqs == 0 {
                                " (FCGI_MAX_REQS not given)"
                            } else {
                                ""
                            }
                        ));
                    } else {
                        report(format!(
                            "FastCGI: {target} answers FCGI_MAX_CONNS={n}: {n} connection(s) kept for reuse to start \
                             with, more while requests find processes to spare"
                        ));
                    }
                }
                // Not running yet: ask again later.
                Err(ProbeError::Unreachable) => c.probe_after.store(unix_now() + 5, SeqCst),
                // It does not answer management records: keep one.
                Err(ProbeError::NoAnswer) => {
                    c.set_announced(1);
                    report(format!(
                        "FastCGI: {target} did not answer FCGI_GET_VALUES within {} ms: 1 connection kept for \
                         reuse to start with, more while requests find processes to spare",
                        PROBE_TIMEOUT.as_millis()
                    ));
                }
            }
            c.probing.store(0, SeqCst);
        });
        if spawned.is_err() {
            c.probing.store(0, SeqCst);
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why [`ask_max_conns`] got no number.
#[derive(Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// No connection (the application is not running yet).
    Unreachable,
    /// Connected, but no usable answer in time.
    NoAnswer,
}

/// Asks the application at `addr` how many connections it serves at once:
/// its `FCGI_MAX_CONNS` (1 when it answers without it, or does not know the
/// record type).
///
/// The question is sent twice: libfcgi answers a management record only once
/// it has read past it, and would otherwise sit on the connection (and its
/// only thread) until we give up.
pub fn ask_max_conns(addr: &AppAddr, timeout: Duration, peer: PeerCheck) -> Result<u32, ProbeError> {
    ask_values(addr, timeout, peer).map(|v| v.max_conns)
}

/// What an application answers to `FCGI_GET_VALUES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Values {
    /// `FCGI_MAX_CONNS` (1 when not given).
    pub max_conns: u32,
    /// `FCGI_MAX_REQS` (0 when not given).
    pub max_reqs: u32,
    /// `FCGI_MPXS_CONNS=1`.
    pub mpxs: bool,
}

/// Asks `FCGI_MAX_CONNS`, `FCGI_MAX_REQS` and `FCGI_MPXS_CONNS` (see
/// [`ask_max_conns`]).
pub fn ask_values(addr: &AppAddr, timeout: Duration, peer: PeerCheck) -> Result<Values, ProbeError> {
    let start = Instant::now();
    let mut conn = AppConn::connect(addr, timeout, peer).map_err(|_| ProbeError::Unreachable)?;
    let mut out = Vec::new();
    for _ in 0..2 {
        proto::encode_get_values(&mut out, &[b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"])
            .map_err(|_| ProbeError::NoAnswer)?;
    }
    let mut sent = 0;
    let mut dec = Decoder::new(1);
    let mut buf = [0u8; 4096];
    loop {
        let left = timeout.checked_sub(start.elapsed()).ok_or(ProbeError::NoAnswer)?;
        if sent < out.len() {
            match conn.try_write_vectored(&[std::io::IoSlice::new(&out[sent..])]) {
                Ok(Some(n)) => sent += n,
                Ok(None) => {}
                Err(_) => return Err(ProbeError::NoAnswer),
            }
        }
        match conn.try_read(&mut buf) {
            Ok(Some(0)) | Err(_) => return Err(ProbeError::NoAnswer),
            Ok(Some(n)) => {
                let mut data = &buf[..n];
                while !data.is_empty() {
                    let (used, ev) = dec.feed(data).map_err(|_| ProbeError::NoAnswer)?;
                    data = &data[used..];
                    match ev {
                        Some(Event::GetValuesResult(pairs)) => {
                            let num = |name: &[u8]| {
                                pairs
                                    .iter()
                                    .find(|(k, _)| k.as_slice() == name)
                                    .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok())
                            };
                            return Ok(Values {
                                max_conns: num(b"FCGI_MAX_CONNS").unwrap_or(1).max(1),
                                max_reqs: num(b"FCGI_MAX_REQS").unwrap_or(0),
                                mpxs: num(b"FCGI_MPXS_CONNS") == Some(1),
                            });
                        }
                        Some(Event::UnknownTypeReply(_)) => {
                            return Ok(Values {
                                max_conns: 1,
                                max_reqs: 0,
                                mpxs: false,
                            })
                        }
                        Some(_) => {}
                        None if used == 0 => break,
                        None => {}
                    }
                }
            }
            Ok(None) => {
                let _ = conn.wait(true, sent < out.len(), left);
            }
        }
    }
}

impl Lease {
    /// A lease with nothing: no pooled connection, no right to keep.
    fn plain(reuse: &'static Reuse, slot: usize) -> Lease {
        Lease {
            reuse,
            slot,
            keep: false,
            pooled: None,
            reused: false,
            fresh: false,
            waiting: false,
            capped: false,
        }
    }

    /// Whether `FCGI_KEEP_CONN` is to be sent.
    pub fn keep(&self) -> bool {
        self.keep
    }

    /// Whether the connection came from the pool.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// The pooled connection, if the lease started with one.
    pub fn take_pooled(&mut self) -> Option<AppConn> {
        self.pooled.take()
    }

    /// A fresh connection was made for this request (it may sit in the
    /// listen backlog until [`Lease::answered`]). Returns whether the
    /// caller should report [`Lease::waiting`] if no answer comes within
    /// [`WAIT_MARK`]: only while other requests keep connections (only they
    /// can hold a process the request waits for; otherwise the timer would
    /// be a wasted wake-up per request under saturation).
    ///
    /// When `cap` is the application's process count and that many
    /// connections are kept (this one not among them), every process is
    /// held by one: the request is known to wait, and says so at once
    /// instead of after [`WAIT_MARK`] (issue 11: a request of a child
    /// without an idle connection of its own, at as many clients as
    /// processes).
    pub fn connected_fresh(&mut self) -> bool {
        if !self.fresh {
            self.fresh = true;
            self.reuse.count_fresh(self.slot, true);
        }
        let c = &self.reuse.shared.classes[self.slot];
        let kept = c.kept.load(SeqCst);
        if !self.keep && kept > 0 && c.exact.load(SeqCst) == 1 && kept >= c.cap.load(SeqCst) {
            self.waiting();
            return false;
        }
        // (Connections kept by others: this request's own reservation
        // cannot hold the process it waits for. Counting it made the first
        // request of a slow application "wait", which then stopped keeping.)
        kept > u32::from(self.keep)
    }

    /// No answer [`WAIT_MARK`] after a fresh connection: the request waits
    /// for a process, kept connections are to give theirs up.
    pub fn waiting(&mut self) {
        if self.fresh && !self.waiting {
            self.waiting = true;
            self.reuse.count_waiting(self.slot, true);
        }
    }

    /// The application left this request unread on its kept connection:
    /// keep nothing more for it (until the next configuration publishes its
    /// capacity again) and close the idle ones. Returns whether this call
    /// turned keeping off (for one log line).
    pub fn stop_keeping(&mut self) -> bool {
        let c = &self.reuse.shared.classes[self.slot];
        c.announced.store(0, SeqCst);
        let was = c.cap.swap(0, SeqCst);
        self.reuse.drop_idle(self.slot);
        was != 0 && was != CAP_PROBE
    }

    /// The application's first byte arrived: the request no longer waits.
    /// A request that was not kept only because `cap` connections were, and
    /// was answered without waiting, shows that the application has a
    /// process to spare: `cap` grows by one (for a capacity that was asked
    /// for; a wait makes it shrink again).
    pub fn answered(&mut self) {
        if self.capped && self.fresh && !self.waiting {
            self.reuse.learn_more(self.slot);
        }
        self.capped = false;
        self.settle();
    }

    /// No longer counted as fresh or waiting.
    fn settle(&mut self) {
        if self.fresh {
            self.fresh = false;
            self.reuse.count_fresh(self.slot, false);
        }
        if self.waiting {
            self.waiting = false;
            self.reuse.count_waiting(self.slot, false);
        }
    }

    /// The request is over: `conn` goes back to the pool when `reusable`
    /// (and kept), otherwise it is closed.
    pub fn finish(mut self, conn: AppConn, reusable: bool) {
        self.settle();
        if self.keep && reusable {
            self.keep = false; // the pool owns the count now
            self.reuse.give_back(self.slot, conn);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.settle();
        if self.keep {
            self.pooled = None;
            self.reuse.count_kept(self.slot, false);
        }
    }
}

#[cfg(test)]
mod rows_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn setup(cap: Cap) -> (&'static Reuse, usize, AppAddr) {
        let shared: &'static Shared = shm::map_shared().unwrap();
        let addr = AppAddr::Unix("/nonexistent/app.sock".into());
        let slot = shared.publish(&addr, cap).unwrap();
        (Box::leak(Box::new(Reuse::new(shared))), slot, addr)
    }

    fn pair() -> (AppConn, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (AppConn::from_stream(a).unwrap(), b)
    }

    #[test]
    fn keys_and_publish() {
        let shared: &'static Shared = shm::map_shared().unwrap();
        let a = AppAddr::Unix("/a".into());
        let b = AppAddr::Tcp("127.0.0.1:9000".parse().unwrap());
        assert_eq!(shared.find(&a), None, "nothing before the parent published");
        let sa = shared.publish(&a, Cap::Fixed(4)).unwrap();
        let sb = shared.publish(&b, Cap::Probe).unwrap();
        assert_ne!(sa, sb);
        assert_eq!(shared.find(&a), Some(sa));
        assert_eq!(shared.publish(&a, Cap::Fixed(2)), Some(sa), "same address, same slot");
        assert_eq!(shared.counts(sa).0, 2);
        assert_eq!(shared.counts(sb).0, CAP_PROBE);
        assert_eq!(class_key(&a), class_key(&AppAddr::Unix("/a".into())));
        for i in 0..MAX_CLASSES {
            shared.publish(&AppAddr::Unix(format!("/x{i}").into()), Cap::Fixed(1));
        }
        assert_eq!(shared.publish(&AppAddr::Unix("/full".into()), Cap::Fixed(1)), None);
    }

    // Issue 12: slots of addresses no longer configured are freed when they
    // hold nothing, so more than MAX_CLASSES addresses over the server's
    // life (configuration churn) keep getting slots.
    // Issue 11: a slot cached per configuration is checked with one load,
    // and never used once the slot went to another address.
    #[test]
    fn hinted_slots_are_checked_against_the_key() {
        let shared: &'static Shared = shm::map_shared().unwrap();
        let a = AppAddr::Unix("/hint-a".into());
        let b = AppAddr::Unix("/hint-b".into());
        assert_eq!(shared.hint(&a), None, "not published");
        let sa = shared.publish(&a, Cap::Fixed(1)).unwrap();
        let hint = shared.hint(&a);
        assert_eq!(shared.find_hinted(&a, hint), Some(sa));
        // The slot is freed and given to another address: the hint no longer
        // matches, and `a` is found (or not) afresh.
        shared.free_unconfigured(std::slice::from_ref(&b));
        let sb = shared.publish(&b, Cap::Fixed(1)).unwrap();
        assert_eq!(sb, sa, "the freed slot is reused");
        assert_eq!(shared.find_hinted(&a, hint), None);
        assert_eq!(shared.find_hinted(&b, hint), Some(sb), "b's own slot, found by its key");
        let sa2 = shared.publish(&a, Cap::Fixed(1)).unwrap();
        assert_eq!(shared.find_hinted(&a, hint), Some(sa2));
        assert_eq!(shared.find_hinted(&a, None), Some(sa2));
    }

    #[test]
    fn unconfigured_slots_are_freed_across_generations() {
        let shared: &'static Shared = shm::map_shared().unwrap();
        let reuse: &'static Reuse = Box::leak(Box::new(Reuse::new(shared)));
        // A long-lived application configured in every generation, holding
        // a kept connection all along.
        let stay = AppAddr::Unix("/stay".into());
        let s_stay = shared.publish(&stay, Cap::Fixed(4)).unwrap();
        let lease = reuse.lease(s_stay);
        assert!(lease.keep());
        // An application retired while one of its connections is kept.
        let busy = AppAddr::Unix("/busy".into());
        let s_busy = shared.publish(&busy, Cap::Fixed(1)).unwrap();
        let busy_lease = reuse.lease(s_busy);
        assert!(busy_lease.keep());
        // Five generations of 30 new addresses each (150 in all, more than
        // MAX_CLASSES): every one gets a slot.
        for generation in 0..5 {
            let configured: Vec<AppAddr> = (0..30)
                .map(|i| AppAddr::Tcp(format!("127.0.0.1:{}", 10000 + generation * 100 + i).parse().unwrap()))
                .chain([stay.clone()])
                .collect();
            shared.free_unconfigured(&configured);
            for addr in &configured {
                assert!(
                    shared.publish(addr, Cap::Fixed(1)).is_some(),
                    "generation {generation}: no slot for {addr:?}"
                );
            }
            assert_eq!(shared.find(&stay), Some(s_stay), "a configured slot keeps its place");
            assert_eq!(shared.counts(s_stay).1, 1, "and its counts");
            assert_eq!(shared.find(&busy), Some(s_busy), "a retired slot in use is not freed");
            if generation > 0 {
                let old = AppAddr::Tcp(format!("127.0.0.1:{}", 10000 + (generation - 1) * 100).parse().unwrap());
                assert_eq!(shared.find(&old), None, "the previous generation's slots are free");
            }
        }
        // Once its connection is gone, the retired slot is freed too.
        drop(busy_lease);
        shared.free_unconfigured(std::slice::from_ref(&stay));
        assert_eq!(shared.find(&busy), None);
        // A freed slot comes back with fresh values.
        let again = shared.publish(&AppAddr::Unix("/new".into()), Cap::Probe).unwrap();
        assert_eq!(shared.counts(again), (CAP_PROBE, 0, 0, 0));
        assert_eq!(shared.bind_status(again), BindStatus::Unknown);
        drop(lease);
    }

    // Issue 11, finding 1: under concurrent give-back and take, the shared
    // counts return exactly to what the pool holds (a connection counted
    // idle only after it became visible could be taken first, losing the
    // decrement and leaving `idle` above 0 for good).
    #[test]
    fn counts_match_the_pool_after_concurrent_use() {
        const CAP: u32 = 2;
        const THREADS: usize = 8;
        const ROUNDS: usize = 20_000;
        let (reuse, slot, _) = setup(Cap::Fixed(CAP));
        let apps = std::sync::Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let apps = apps.clone();
                std::thread::spawn(move || {
                    for i in 0..ROUNDS {
                        let mut l = reuse.lease(slot);
                        let conn = match l.take_pooled() {
                            Some(c) => c,
                            None => {
                                let (c, app) = pair();
                                // (Old application ends are closed: their
                                // pooled connections are found dead.)
                                let mut apps = apps.lock().unwrap();
                                apps.push(app);
                                if apps.len() > 32 {
                                    apps.remove(0);
                                }
                                l.connected_fresh();
                                c
                            }
                        };
                        if (i + t) % 7 == 0 {
                            std::thread::yield_now();
                        }
                        l.answered();
                        l.finish(conn, (i + t) % 11 != 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let pooled = reuse.pool(slot).len() as u32;
        assert!(pooled <= CAP);
        assert_eq!(reuse.shared().counts(slot), (CAP, pooled, pooled, 0), "counts at rest");
        let row = reuse.row().unwrap();
        assert_eq!(row.idle[slot].load(SeqCst), pooled);
        assert_eq!(row.kept[slot].load(SeqCst), pooled);
    }

    #[test]
    fn bounded_by_cap() {
        let (reuse, slot, _) = setup(Cap::Fixed(2));
        let l1 = reuse.lease(slot);
        let l2 = reuse.lease(slot);
        let l3 = reuse.lease(slot);
        assert!(l1.keep() && l2.keep());
        assert!(!l3.keep(), "a third connection is not kept");
        assert_eq!(reuse.shared().counts(slot).1, 2);
        drop(l1); // e.g. the connect failed
        assert_eq!(reuse.shared().counts(slot).1, 1);
        let l4 = reuse.lease(slot);
        assert!(l4.keep());
        drop((l2, l3, l4));
        assert_eq!(reuse.shared().counts(slot).1, 0);
    }

    #[test]
    fn reuse_after_clean_finish_only() {
        let (reuse, slot, _) = setup(Cap::Fixed(1));
        let (c1, _app1) = pair();
        let l = reuse.lease(slot);
        assert!(l.keep() && !l.reused());
        l.finish(c1, true);
        assert_eq!(reuse.shared().counts(slot), (1, 1, 1, 0));
        let mut l = reuse.lease(slot);
        assert!(l.reused());
        let c = l.take_pooled().unwrap();
        assert_eq!(reuse.shared().counts(slot), (1, 1, 0, 0));
        l.finish(c, false); // not reusable: closed, count given back
        assert_eq!(reuse.shared().counts(slot), (1, 0, 0, 0));
        let l = reuse.lease(slot);
        assert!(!l.reused() && l.keep());
    }

    #[test]
    fn closed_idle_connection_is_not_reused() {
        let (reuse, slot, _) = setup(Cap::Fixed(2));
        let (c1, app1) = pair();
        let (c2, _app2) = pair();
        let (l1, l2) = (reuse.lease(slot), reuse.lease(slot));
        l2.finish(c2, true);
        l1.finish(c1, true); // most recent: taken first
        drop(app1); // the application closed it while idle
        let mut l = reuse.lease(slot);
        assert!(l.reused(), "the live one is found");
        let c = l.take_pooled().unwrap();
        assert_eq!(reuse.shared().counts(slot), (2, 1, 0, 0), "the dead one was dropped");
        l.finish(c, true);
        assert_eq!(reuse.shared().counts(slot), (2, 1, 1, 0));
    }

    #[test]
    fn waiting_requests_make_kept_connections_go() {
        let (reuse, slot, _) = setup(Cap::Fixed(3));
        let (c1, _a1) = pair();
        let (c2, _a2) = pair();
        let (l1, l2, mut w) = (reuse.lease(slot), reuse.lease(slot), reuse.lease(slot));
        l1.finish(c1, true); // idle
        assert_eq!(reuse.shared().counts(slot), (3, 3, 1, 0));
        // A request connects fresh and waits for its answer.
        assert!(!w.reused() && w.keep(), "the third kept slot");
        assert!(w.connected_fresh(), "connections are kept: the wait is to be reported");
        assert_eq!(reuse.shared().counts(slot), (3, 3, 1, 0), "not waiting yet");
        w.waiting();
        w.waiting(); // counted once
        assert_eq!(reuse.shared().counts(slot), (3, 3, 1, 1));
        // The reaper closes the idle one; the busy one is closed when it
        // comes back; the pool is not used meanwhile.
        assert!(!reuse.reap_once());
        assert_eq!(reuse.shared().counts(slot), (3, 2, 0, 1));
        l2.finish(c2, true);
        assert_eq!(reuse.shared().counts(slot), (3, 1, 0, 1));
        // Answered: connections are kept again.
        w.answered();
        let (c3, _a3) = pair();
        w.finish(c3, true);
        assert_eq!(reuse.shared().counts(slot), (3, 1, 1, 0));
        let mut again = reuse.lease(slot);
        assert!(again.reused());
        // A waiter elsewhere: the idle connection is given up, not used.
        let c = again.take_pooled().unwrap();
        again.finish(c, true);
        let mut other = reuse.lease(slot);
        other.connected_fresh();
        other.waiting();
        let l = reuse.lease(slot);
        assert!(!l.reused(), "no queue jumping");
        assert_eq!(reuse.shared().counts(slot).2, 0, "the idle one was closed");
        drop((l, other));
        assert_eq!(reuse.shared().counts(slot), (3, 0, 0, 0));
    }

    // Issue 11: a fresh connection still unanswered stops new connections
    // from being kept (the application may be short of processes) without
    // giving up the kept ones; only a request still unanswered after
    // WAIT_MARK does that. (Counting every fresh connection as waiting from
    // the start made each one close every idle connection of every child:
    // under four clients and four processes a quarter of the requests
    // connected fresh, for good.)
    #[test]
    fn fresh_connections_stop_new_keeps_and_only_waits_give_kept_ones_up() {
        let (reuse, slot, _) = setup(Cap::Fixed(3));
        let (c1, _a1) = pair();
        let l1 = reuse.lease(slot);
        assert!(l1.keep());
        l1.finish(c1, true); // idle
        let mut f = reuse.lease(slot);
        assert!(f.reused(), "the idle one is used");
        let c1 = f.take_pooled().unwrap();
        let mut g = reuse.lease(slot);
        assert!(g.keep() && !g.reused(), "a second kept one");
        assert!(g.connected_fresh(), "kept connections exist: a wait would be reported");
        let h = reuse.lease(slot);
        assert!(!h.keep(), "no new keep while a fresh connection is unanswered");
        drop(h);
        f.finish(c1, true); // back to the pool: nobody waits
        assert_eq!(reuse.shared().counts(slot), (3, 2, 1, 0));
        let mut i = reuse.lease(slot);
        assert!(i.reused(), "kept connections are still used");
        let c1 = i.take_pooled().unwrap();
        g.answered();
        let (c2, _a2) = pair();
        g.finish(c2, true);
        i.finish(c1, true);
        assert_eq!(reuse.shared().counts(slot), (3, 2, 2, 0));
        let j = reuse.lease(slot);
        let k = reuse.lease(slot);
        let l = reuse.lease(slot);
        assert!(
            j.reused() && k.reused() && l.keep() && !l.reused(),
            "keeping again once answered"
        );
        drop((j, k, l));
        // With nothing kept anywhere, a fresh connection needs no wait report.
        let (reuse, slot, _) = setup(Cap::Fixed(1));
        let a = reuse.lease(slot);
        let mut b = reuse.lease(slot);
        assert!(a.keep() && !b.keep());
        drop(a);
        assert!(!b.connected_fresh());
    }

    // Issue 11: after a wait, no new connection is kept for COOL_DOWN_MS
    // (kept ones are still used); without it, reuse flapped under steady
    // saturation, a keep and a wait behind it every time the backlog drained.
    #[test]
    fn no_new_keeps_for_a_while_after_a_wait() {
        let (reuse, slot, _) = setup(Cap::Fixed(4));
        let (c1, _a1) = pair();
        let l1 = reuse.lease(slot);
        assert!(l1.keep());
        l1.finish(c1, true);
        let mut w = reuse.lease(slot);
        let c1 = w.take_pooled().expect("the idle one");
        let mut f = reuse.lease(slot);
        assert!(f.keep(), "nobody waited yet: a second one may be kept");
        drop(f);
        let mut late = reuse.lease(slot);
        late.connected_fresh();
        late.waiting();
        late.answered();
        drop(late);
        w.finish(c1, true);
        assert_eq!(reuse.shared().counts(slot), (4, 1, 1, 0));
        f = reuse.lease(slot);
        assert!(f.reused(), "kept connections are still used");
        let c1 = f.take_pooled().unwrap();
        let g = reuse.lease(slot);
        assert!(!g.keep(), "but none is added during the cool-down");
        drop(g);
        std::thread::sleep(Duration::from_millis(COOL_DOWN_MS + 20));
        let g = reuse.lease(slot);
        assert!(g.keep(), "after it, keeping resumes");
        f.finish(c1, true);
        drop(g);
        assert_eq!(reuse.shared().counts(slot), (4, 1, 1, 0));
    }

    // Issue 11: with a static application's process count as the cap and
    // every process held by a kept connection, a fresh connection is known to
    // wait: it says so at once (the reapers close idle connections now, not
    // after WAIT_MARK). Not so for a cap that is not a process count.
    #[test]
    fn a_fresh_connection_behind_every_process_waits_at_once() {
        for (cap, at_once) in [(Cap::Processes(2), true), (Cap::Fixed(2), false)] {
            let (reuse, slot, _) = setup(cap);
            let (c1, _a1) = pair();
            let (l1, l2) = (reuse.lease(slot), reuse.lease(slot));
            assert!(l1.keep() && l2.keep());
            l1.finish(c1, true); // one idle, one busy: both processes held
            let mut other = reuse.lease(slot);
            let pooled = other.take_pooled().expect("the idle one");
            other.finish(pooled, true);
            // A request in a child without an idle connection of its own
            // (here: the pool is emptied by hand to play that child).
            let idle = std::mem::take(&mut *reuse.pool(slot));
            let mut fresh = Lease::plain(reuse, slot);
            let timer = fresh.connected_fresh();
            assert_eq!(reuse.shared().counts(slot).3, u32::from(at_once), "{cap:?}");
            assert_eq!(timer, !at_once, "{cap:?}: the timer only when the wait is not known");
            *reuse.pool(slot) = idle;
            drop(fresh);
            drop(l2);
            reuse.drop_idle(slot);
            assert_eq!(reuse.shared().counts(slot), (2, 0, 0, 0), "{cap:?}");
        }
    }

    /// A request on a fresh connection, answered before the wait mark.
    fn answered_fresh(l: &mut Lease) {
        l.connected_fresh();
        l.answered();
    }

    // Issue 11: an application that announced 1 connection (libfcgi says 1
    // per process, however many processes share the socket) gets one more
    // kept whenever a request that found every kept connection in use is
    // answered on a fresh one without waiting; a wait takes one back, down
    // to the announced number. A configured or process-count cap is not
    // learnt.
    #[test]
    fn an_announced_capacity_is_learnt_upwards_and_back() {
        let (reuse, slot, _) = setup(Cap::Probe);
        reuse.shared().classes[slot].set_announced(1);
        let cap = || reuse.shared().counts(slot).0;
        // One kept, busy; the next request finds the cap reached.
        let mut k1 = reuse.lease(slot);
        assert!(k1.keep());
        answered_fresh(&mut k1);
        let mut f = reuse.lease(slot);
        assert!(!f.keep() && f.capped);
        answered_fresh(&mut f); // no wait: a second process exists
        assert_eq!(cap(), 2);
        drop(f);
        let mut k2 = reuse.lease(slot);
        assert!(k2.keep(), "a second connection is kept");
        answered_fresh(&mut k2);
        // A capped request that had to wait proves nothing (and the wait
        // takes one back).
        let mut g = reuse.lease(slot);
        assert!(g.capped);
        g.connected_fresh();
        g.waiting();
        g.answered();
        assert_eq!(cap(), 1, "the wait took one back");
        drop(g);
        let mut h = reuse.lease(slot);
        h.connected_fresh();
        h.waiting();
        assert_eq!(cap(), 1, "never below what was announced");
        drop((h, k1, k2));
        // Stopped keeping (an application that does not serve kept
        // connections): nothing is learnt from 0.
        let mut s = reuse.lease(slot);
        assert!(s.stop_keeping() || cap() == 0);
        answered_fresh(&mut s);
        assert_eq!(cap(), 0);
        drop(s);
        // Configured capacities are never learnt.
        for fixed in [Cap::Fixed(1), Cap::Processes(1)] {
            let (reuse, slot, _) = setup(fixed);
            let mut k = reuse.lease(slot);
            answered_fresh(&mut k);
            let mut f = reuse.lease(slot);
            assert!(f.capped);
            answered_fresh(&mut f);
            assert_eq!(reuse.shared().counts(slot).0, 1, "{fixed:?}");
            drop((k, f));
        }
    }

    // Issue 11: under lasting saturation each cool-down ends with a new
    // kept connection and a wait behind it; the cool-down doubles then, so
    // that reuse tries less and less often, and starts short again once
    // waits stop.
    #[test]
    fn cool_downs_double_while_saturation_lasts() {
        let (reuse, slot, _) = setup(Cap::Fixed(4));
        let c = &reuse.shared().classes[slot];
        let t0 = 1_000_000;
        c.cool_down(t0);
        assert_eq!(c.cool_until.load(SeqCst), t0 + COOL_DOWN_MS);
        c.cool_down(t0 + 10); // during it: extended, not doubled
        assert_eq!(c.cool_until.load(SeqCst), t0 + 10 + COOL_DOWN_MS);
        let mut end = t0 + 10 + COOL_DOWN_MS;
        let mut len = COOL_DOWN_MS;
        for _ in 0..6 {
            // The first wait soon after the end: twice as long.
            c.cool_down(end + 5);
            len = (len * 2).min(COOL_DOWN_MAX_MS);
            assert_eq!(c.cool_until.load(SeqCst), end + 5 + len);
            end += 5 + len;
        }
        assert_eq!(len, COOL_DOWN_MAX_MS);
        // Long after the last one: short again.
        c.cool_down(end + 10 * COOL_DOWN_MAX_MS);
        assert_eq!(c.cool_until.load(SeqCst), end + 10 * COOL_DOWN_MAX_MS + COOL_DOWN_MS);
    }

    // Issue 11: when every kept connection is open, a request does not wait
    // for one to come back (that stalled requests 20 ms at a time).
    #[test]
    fn all_kept_busy_means_a_plain_connection_at_once() {
        let (reuse, slot, _) = setup(Cap::Fixed(1));
        let l1 = reuse.lease(slot);
        assert!(l1.keep());
        let start = Instant::now();
        let l2 = reuse.lease(slot);
        assert!(!l2.keep() && !l2.reused());
        assert!(start.elapsed() < Duration::from_millis(5), "{:?}", start.elapsed());
        drop((l1, l2));
    }

    #[test]
    fn probe_class_keeps_nothing_until_known() {
        let (reuse, slot, addr) = setup(Cap::Probe);
        assert!(!reuse.lease(slot).keep());
        reuse.probe_if_needed(slot, &addr, PeerCheck::Any, |_| {}); // nothing listens: retried later
        let start = Instant::now();
        while reuse.shared().classes[slot].probing.load(SeqCst) == 1 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(reuse.shared().counts(slot).0, CAP_PROBE);
        assert!(reuse.shared().classes[slot].probe_after.load(SeqCst) > 0);
    }

    #[test]
    fn dead_child_rows_are_reclaimed() {
        let shared: &'static Shared = shm::map_shared().unwrap();
        let addr = AppAddr::Unix("/r".into());
        let slot = shared.publish(&addr, Cap::Fixed(3)).unwrap();
        let pid = crate::sys::fork::fork_run(move || {
            let r: &'static Reuse = Box::leak(Box::new(Reuse::new(shared)));
            let mut l = r.lease(slot);
            l.connected_fresh();
            l.waiting();
            std::mem::forget(l); // dies holding a kept connection, waiting
            0
        })
        .unwrap();
        let _ = nix::sys::wait::waitpid(pid, None);
        assert_eq!(shared.counts(slot).1, 1);
        assert_eq!(shared.counts(slot).3, 1);
        assert_eq!(shared.classes[slot].fresh.load(SeqCst), 1);
        let me: &'static Reuse = Box::leak(Box::new(Reuse::new(shared)));
        // (Its wait started a cool-down; this test is about the counts.)
        shared.classes[slot].cool_until.store(0, SeqCst);
        assert!(me.lease(slot).keep()); // claims a row, reclaiming the dead one
        assert_eq!(shared.counts(slot), (3, 0, 0, 0));
        assert_eq!(shared.classes[slot].fresh.load(SeqCst), 0);
        me.child_exit();
        assert!(shared.pids.iter().all(|p| p.load(SeqCst) == 0));
    }

    /// A minimal application answering FCGI_GET_VALUES like libfcgi.
    #[test]
    fn get_values_probe() {
        use std::io::{Read, Write};
        let dir = std::env::temp_dir().join(format!("fcgi-reuse-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("gv.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut hdr = [0u8; 8];
            s.read_exact(&mut hdr).unwrap();
            assert_eq!(hdr[1], 9, "FCGI_GET_VALUES");
            let len = u16::from_be_bytes([hdr[4], hdr[5]]) as usize + hdr[6] as usize;
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).unwrap();
            let mut nv = Vec::new();
            for (k, v) in [("FCGI_MAX_CONNS", "7"), ("FCGI_MPXS_CONNS", "0")] {
                nv.push(k.len() as u8);
                nv.push(v.len() as u8);
                nv.extend_from_slice(k.as_bytes());
                nv.extend_from_slice(v.as_bytes());
            }
            let mut rec = vec![1, 10, 0, 0, 0, nv.len() as u8, 0, 0];
            rec.extend_from_slice(&nv);
            s.write_all(&rec).unwrap();
        });
        assert_eq!(
            ask_max_conns(
                &AppAddr::Unix(path.clone()),
                Duration::from_secs(5),
                PeerCheck::Uid(nix::unistd::geteuid().as_raw())
            ),
            Ok(7)
        );
        t.join().unwrap();
        assert_eq!(
            ask_max_conns(&AppAddr::Unix(path.clone()), Duration::from_secs(1), PeerCheck::Any),
            Err(ProbeError::Unreachable)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
