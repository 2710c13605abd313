//! Per-application counters for mod_status (`/server-status`), in memory
//! shared by httpd's parent, every child and the process manager.
//!
//! One [`AppSlot`] per application (static, external, or a dynamic class
//! once started), keyed by [`app_key`] of its kind, configured path and
//! address. The parent publishes the configured applications each
//! configuration pass ([`Shared::publish`], after
//! [`Shared::free_unconfigured`]); a dynamic class is claimed by the first
//! request for it or by the process manager, whichever comes first
//! ([`Shared::find_or_claim`]).
//!
//! Cost per request: the slot is resolved once per configuration (static
//! and external applications, see `module::status`); a request then does
//! one `fetch_add` when it starts (requests and busy share a word), one
//! `fetch_sub` and one `fetch_add` (wait time) when it ends, and one more
//! when it failed — all `Relaxed`, no lock, no system call. The counters are
//! statistics: a reader may see a request counted as started and not yet
//! ended, which is what "busy" means.
//!
//! Limits, deliberately accepted: an httpd child that dies in the middle of
//! a request (a crash, not a normal exit) leaves `busy` one too high until
//! the slot is freed; a slot freed and reused while a child of the previous
//! generation still counts into it gives that child's few counts to the new
//! owner.

use crate::sys::wait::ChildExit;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

/// Applications shown (configured ones plus started dynamic classes); more
/// are served but not counted.
pub const MAX_APPS: usize = 128;
/// Bytes of "path\0address" kept for display (longer texts are cut).
const TEXT_WORDS: usize = 64;
const TEXT_BYTES: usize = TEXT_WORDS * 8;

/// `busy` is the low [`BUSY_BITS`] bits of the `started` word, the number
/// of requests started the rest (so one `fetch_add` counts a request in).
const BUSY_BITS: u32 = 20;
const BUSY_MASK: u64 = (1 << BUSY_BITS) - 1;
const REQUEST_ONE: u64 = 1 << BUSY_BITS;
/// Unexpected deaths of an application's processes remembered (the most
/// recent ones), for the request handlers' error lines.
pub const DEATHS: usize = 8;

/// What kind of application a slot counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Static = 1,
    Dynamic = 2,
    External = 3,
}

impl Kind {
    fn from_u32(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::Static),
            2 => Some(Kind::Dynamic),
            3 => Some(Kind::External),
            _ => None,
        }
    }

    /// The word `?auto` and the HTML table use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Static => "static",
            Kind::Dynamic => "dynamic",
            Kind::External => "external",
        }
    }
}

/// One application's counters.
#[repr(C)]
pub struct AppSlot {
    /// [`app_key`]; 0 = free.
    key: AtomicU64,
    /// 1 once `kind` and `text` are written (readers skip other slots).
    ready: AtomicU32,
    kind: AtomicU32,
    text_len: AtomicU32,
    /// Running processes (set by the process manager; external: 0).
    processes: AtomicU32,
    /// `requests << BUSY_BITS | busy`.
    started: AtomicU64,
    errors: AtomicU64,
    restarts: AtomicU64,
    /// Sum over finished requests of the time until the application's
    /// first byte (or until the request ended without one), µs.
    wait_us: AtomicU64,
    /// "path\0address", packed little-endian.
    text: [AtomicU64; TEXT_WORDS],
    /// The latest unexpected deaths of its processes (a ring written by
    /// the process manager, see [`Shared::died`]).
    deaths: [DeathRecord; DEATHS],
    death_next: AtomicU32,
}

/// One death: when the process manager reaped it (monotonic clock, ms;
/// 0 while being written) and what ([`encode_death`]).
#[repr(C)]
struct DeathRecord {
    at_ms: AtomicU64,
    what: AtomicU64,
}

/// A process of an application that exited without being asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Death {
    pub pid: u32,
    pub how: ChildExit,
    /// When it was reaped (monotonic clock, ms).
    pub at_ms: u64,
}

fn encode_death(pid: u32, how: ChildExit) -> u64 {
    let low = match how {
        ChildExit::Exited(code) => (1 << 8) | (code as u64 & 0xff),
        ChildExit::Signaled { signal, core_dumped } => ((2 + u64::from(core_dumped)) << 8) | (signal as u64 & 0xff),
    };
    (u64::from(pid) << 32) | low
}

fn decode_death(v: u64) -> Option<(u32, ChildExit)> {
    let code = (v & 0xff) as i32;
    let how = match (v >> 8) & 0xff {
        1 => ChildExit::Exited(code),
        2 => ChildExit::Signaled {
            signal: code,
            core_dumped: false,
        },
        3 => ChildExit::Signaled {
            signal: code,
            core_dumped: true,
        },
        _ => return None,
    };
    Some(((v >> 32) as u32, how))
}

/// The table shared by httpd's parent, its children and the process manager.
#[repr(C)]
pub struct Shared {
    slots: [AppSlot; MAX_APPS],
}

/// The key of an application: its kind, path and address (a changed
/// address is a new application; a hash, never 0).
pub fn app_key(kind: Kind, path: &[u8], addr: &[u8]) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    kind.hash(&mut h);
    path.hash(&mut h);
    addr.hash(&mut h);
    h.finish() | 1
}

/// One application as read for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStats {
    pub slot: usize,
    pub kind: Kind,
    pub path: String,
    pub addr: String,
    pub processes: u32,
    pub busy: u64,
    pub requests: u64,
    pub errors: u64,
    pub restarts: u64,
    /// Summed wait of the requests finished so far (`requests - busy`), µs.
    pub wait_us: u64,
}

impl AppStats {
    /// Average wait of the finished requests, µs (0 before the first).
    pub fn avg_wait_us(&self) -> u64 {
        let done = self.requests.saturating_sub(self.busy);
        self.wait_us.checked_div(done).unwrap_or(0)
    }
}

impl AppSlot {
    fn reset(&self) {
        self.ready.store(0, Release);
        self.processes.store(0, Relaxed);
        self.started.store(0, Relaxed);
        self.errors.store(0, Relaxed);
        self.restarts.store(0, Relaxed);
        self.wait_us.store(0, Relaxed);
        for d in &self.deaths {
            d.at_ms.store(0, Relaxed);
        }
    }

    fn write_text(&self, kind: Kind, path: &[u8], addr: &[u8]) {
        let mut bytes = Vec::with_capacity(path.len() + 1 + addr.len());
        bytes.extend_from_slice(path);
        bytes.push(0);
        bytes.extend_from_slice(addr);
        bytes.truncate(TEXT_BYTES);
        for (i, w) in self.text.iter().enumerate() {
            let mut word = [0u8; 8];
            let from = (i * 8).min(bytes.len());
            let to = (i * 8 + 8).min(bytes.len());
            word[..to - from].copy_from_slice(&bytes[from..to]);
            w.store(u64::from_le_bytes(word), Relaxed);
        }
        self.text_len.store(bytes.len() as u32, Relaxed);
        self.kind.store(kind as u32, Relaxed);
        self.ready.store(1, Release);
    }

    fn read_text(&self) -> (String, String) {
        let len = (self.text_len.load(Relaxed) as usize).min(TEXT_BYTES);
        let mut bytes: Vec<u8> = self.text.iter().flat_map(|w| w.load(Relaxed).to_le_bytes()).collect();
        bytes.truncate(len);
        let mut parts = bytes.splitn(2, |&b| b == 0);
        let path = String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned();
        let addr = String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned();
        (path, addr)
    }
}

impl Shared {
    fn find_key(&self, key: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.key.load(Acquire) == key)
    }

    /// The slot of an application, if someone published or claimed it.
    pub fn find(&self, kind: Kind, path: &[u8], addr: &[u8]) -> Option<usize> {
        self.find_key(app_key(kind, path, addr))
    }

    /// The slot of an application, claiming a free one for it if needed
    /// (`None`: the table is full). Two processes claiming the same
    /// application at once end up with the same slot: the one with the
    /// higher index gives its slot back.
    pub fn find_or_claim(&self, kind: Kind, path: &[u8], addr: &[u8]) -> Option<usize> {
        let key = app_key(kind, path, addr);
        if let Some(i) = self.find_key(key) {
            return Some(i);
        }
        // A free slot's counters are zero (see `release`).
        let mine = (0..MAX_APPS).find(|&i| {
            let s = &self.slots[i];
            s.key.load(Relaxed) == 0 && s.key.compare_exchange(0, key, AcqRel, Relaxed).is_ok()
        })?;
        self.slots[mine].write_text(kind, path, addr);
        match self.find_key(key) {
            Some(first) if first < mine => {
                self.release(mine, key);
                Some(first)
            }
            _ => Some(mine),
        }
    }

    /// Parent, each configuration pass: the slot of a configured (static or
    /// external) application; its counts go on where it had one already.
    pub fn publish(&self, kind: Kind, path: &[u8], addr: &[u8]) -> Option<usize> {
        self.find_or_claim(kind, path, addr)
    }

    /// Parent, each configuration pass, before [`Shared::publish`]: frees
    /// the slots of static and external applications no longer configured
    /// (keys not in `configured`) and of dynamic classes without processes,
    /// unless requests are still in progress in them. Returns how many.
    pub fn free_unconfigured(&self, configured: &[u64]) -> usize {
        let mut freed = 0;
        for (i, s) in self.slots.iter().enumerate() {
            let key = s.key.load(Acquire);
            if key == 0 || configured.contains(&key) || s.started.load(Relaxed) & BUSY_MASK != 0 {
                continue;
            }
            if Kind::from_u32(s.kind.load(Relaxed)) == Some(Kind::Dynamic) && s.processes.load(Relaxed) != 0 {
                continue;
            }
            if self.release(i, key) {
                freed += 1;
            }
        }
        freed
    }

    /// Frees `slot` (held by `key`), its counters zeroed first so that a
    /// free slot always starts from zero.
    fn release(&self, slot: usize, key: u64) -> bool {
        let s = &self.slots[slot];
        s.reset();
        s.key.compare_exchange(key, 0, AcqRel, Relaxed).is_ok()
    }

    /// A request for the application in `slot` starts (counted in
    /// `requests` and `busy`).
    pub fn begin(&self, slot: usize) {
        self.slots[slot].started.fetch_add(REQUEST_ONE + 1, Relaxed);
    }

    /// The request begun with [`Shared::begin`] ended, after waiting
    /// `wait_us` for the application's first byte; `failed`: it failed.
    pub fn end(&self, slot: usize, wait_us: u64, failed: bool) {
        let s = &self.slots[slot];
        s.started.fetch_sub(1, Relaxed);
        s.wait_us.fetch_add(wait_us, Relaxed);
        if failed {
            s.errors.fetch_add(1, Relaxed);
        }
    }

    /// Process manager: it restarted a process of the application.
    pub fn restarted(&self, slot: usize) {
        self.slots[slot].restarts.fetch_add(1, Relaxed);
    }

    /// Process manager: a process of the application in `slot` exited
    /// without being asked to (reaped at `now_ms`, monotonic clock).
    pub fn died(&self, slot: usize, pid: u32, how: ChildExit, now_ms: u64) {
        let s = &self.slots[slot];
        let d = &s.deaths[s.death_next.fetch_add(1, Relaxed) as usize % DEATHS];
        // A reader that sees the same non-zero time before and after
        // reading `what` has a consistent record.
        d.at_ms.store(0, Release);
        d.what.store(encode_death(pid, how), Release);
        d.at_ms.store(now_ms.max(1), Release);
    }

    /// Request handlers: the deaths recorded for `slot` at or after
    /// `since_ms` (monotonic clock), oldest first.
    pub fn deaths_since(&self, slot: usize, since_ms: u64) -> Vec<Death> {
        let mut out: Vec<Death> = self.slots[slot]
            .deaths
            .iter()
            .filter_map(|d| {
                let at = d.at_ms.load(Acquire);
                if at == 0 || at < since_ms {
                    return None;
                }
                let what = d.what.load(Acquire);
                if d.at_ms.load(Acquire) != at {
                    return None;
                }
                let (pid, how) = decode_death(what)?;
                Some(Death { pid, how, at_ms: at })
            })
            .collect();
        out.sort_by_key(|d| d.at_ms);
        out
    }

    /// Process manager: the application has `n` processes running.
    pub fn set_processes(&self, slot: usize, n: u32) {
        self.slots[slot].processes.store(n, Relaxed);
    }

    /// Process manager: every static or dynamic application not in `seen`
    /// (indexed by slot) has no process.
    pub fn clear_processes_except(&self, seen: &[bool; MAX_APPS]) {
        for (s, seen) in self.slots.iter().zip(seen) {
            if !seen && s.processes.load(Relaxed) != 0 {
                s.processes.store(0, Relaxed);
            }
        }
    }

    /// Every application with a slot, in slot order.
    pub fn snapshot(&self) -> Vec<AppStats> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.key.load(Acquire) != 0 && s.ready.load(Acquire) == 1)
            .filter_map(|(slot, s)| {
                let kind = Kind::from_u32(s.kind.load(Relaxed))?;
                let (path, addr) = s.read_text();
                let started = s.started.load(Relaxed);
                Some(AppStats {
                    slot,
                    kind,
                    path,
                    addr,
                    processes: s.processes.load(Relaxed),
                    busy: started & BUSY_MASK,
                    requests: started >> BUSY_BITS,
                    errors: s.errors.load(Relaxed),
                    restarts: s.restarts.load(Relaxed),
                    wait_us: s.wait_us.load(Relaxed),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::shm;

    fn table() -> &'static Shared {
        shm::map_shared().unwrap()
    }

    #[test]
    fn counts_requests_busy_errors_and_wait() {
        let t = table();
        let a = t.publish(Kind::Static, b"/srv/a.fcgi", b"unix:/ipc/a").unwrap();
        let b = t.publish(Kind::External, b"/srv/b.fcgi", b"127.0.0.1:9000").unwrap();
        assert_ne!(a, b);
        assert_eq!(t.publish(Kind::Static, b"/srv/a.fcgi", b"unix:/ipc/a"), Some(a));
        t.begin(a);
        t.begin(a);
        t.begin(b);
        t.end(a, 100, false);
        t.end(b, 50, true);
        let s = t.snapshot();
        assert_eq!(s.len(), 2);
        let sa = s.iter().find(|x| x.slot == a).unwrap();
        assert_eq!(
            (sa.kind, sa.path.as_str(), sa.addr.as_str()),
            (Kind::Static, "/srv/a.fcgi", "unix:/ipc/a")
        );
        assert_eq!((sa.requests, sa.busy, sa.errors, sa.wait_us), (2, 1, 0, 100));
        assert_eq!(sa.avg_wait_us(), 100);
        let sb = s.iter().find(|x| x.slot == b).unwrap();
        assert_eq!((sb.requests, sb.busy, sb.errors, sb.avg_wait_us()), (1, 0, 1, 50));
        // Many requests: the request count never spills into busy.
        for _ in 0..3000 {
            t.begin(b);
            t.end(b, 0, false);
        }
        let sb = t.snapshot().into_iter().find(|x| x.slot == b).unwrap();
        assert_eq!((sb.requests, sb.busy), (3001, 0));
    }

    #[test]
    fn processes_and_restarts_from_the_process_manager() {
        let t = table();
        let a = t.publish(Kind::Static, b"/a", b"x").unwrap();
        let d = t.find_or_claim(Kind::Dynamic, b"/d", b"y").unwrap();
        t.set_processes(a, 3);
        t.set_processes(d, 2);
        t.restarted(a);
        let mut seen = [false; MAX_APPS];
        seen[a] = true;
        t.clear_processes_except(&seen);
        let s = t.snapshot();
        let sa = s.iter().find(|x| x.slot == a).unwrap();
        assert_eq!((sa.processes, sa.restarts), (3, 1));
        assert_eq!(s.iter().find(|x| x.slot == d).unwrap().processes, 0);
    }

    #[test]
    fn free_unconfigured_keeps_configured_busy_and_running() {
        let t = table();
        let keep = t.publish(Kind::Static, b"/keep", b"k").unwrap();
        let gone = t.publish(Kind::External, b"/gone", b"g").unwrap();
        let busy = t.publish(Kind::External, b"/busy", b"b").unwrap();
        let dyn_running = t.find_or_claim(Kind::Dynamic, b"/dr", b"s1").unwrap();
        let dyn_idle = t.find_or_claim(Kind::Dynamic, b"/di", b"s2").unwrap();
        t.begin(busy);
        t.set_processes(dyn_running, 1);
        t.begin(gone);
        t.end(gone, 0, false);
        let freed = t.free_unconfigured(&[app_key(Kind::Static, b"/keep", b"k")]);
        assert_eq!(freed, 2);
        let slots: Vec<usize> = t.snapshot().iter().map(|s| s.slot).collect();
        assert_eq!(slots, vec![keep, busy, dyn_running]);
        assert!(!slots.contains(&dyn_idle));
        // A freed slot comes back with fresh counts.
        let again = t.publish(Kind::External, b"/gone", b"g").unwrap();
        let s = t.snapshot().into_iter().find(|x| x.slot == again).unwrap();
        assert_eq!((s.requests, s.errors, s.busy), (0, 0, 0));
        // Same path, other address: another application.
        assert_ne!(t.publish(Kind::External, b"/gone", b"h"), Some(again));
    }

    #[test]
    fn deaths_are_kept_per_application_and_read_since_a_time() {
        let t = table();
        let a = t.publish(Kind::Static, b"/da", b"x").unwrap();
        let b = t.find_or_claim(Kind::Dynamic, b"/db", b"y").unwrap();
        assert!(t.deaths_since(a, 0).is_empty());
        t.died(a, 100, ChildExit::Exited(3), 1_000);
        t.died(
            a,
            101,
            ChildExit::Signaled {
                signal: 9,
                core_dumped: false,
            },
            1_005,
        );
        t.died(
            b,
            200,
            ChildExit::Signaled {
                signal: 11,
                core_dumped: true,
            },
            1_010,
        );
        let got = t.deaths_since(a, 1_001);
        assert_eq!(
            got,
            vec![Death {
                pid: 101,
                how: ChildExit::Signaled {
                    signal: 9,
                    core_dumped: false
                },
                at_ms: 1_005
            }]
        );
        assert_eq!(
            t.deaths_since(a, 0).iter().map(|d| d.pid).collect::<Vec<_>>(),
            vec![100, 101]
        );
        assert_eq!(
            t.deaths_since(b, 0)[0].how,
            ChildExit::Signaled {
                signal: 11,
                core_dumped: true
            }
        );
        // The ring keeps the latest DEATHS, in order; exit codes and
        // signals up to 255 and pids up to u32::MAX survive the encoding.
        for i in 0..(DEATHS as u64 + 3) {
            t.died(a, u32::MAX - i as u32, ChildExit::Exited(255), 2_000 + i);
        }
        let got = t.deaths_since(a, 0);
        assert_eq!(got.len(), DEATHS);
        assert_eq!(got[0].at_ms, 2_003);
        assert_eq!(got[DEATHS - 1].pid, u32::MAX - (DEATHS as u32 + 2));
        assert!(got.iter().all(|d| d.how == ChildExit::Exited(255)));
        // A freed slot forgets them.
        t.free_unconfigured(&[]);
        let again = t.publish(Kind::Static, b"/da", b"x").unwrap();
        assert!(t.deaths_since(again, 0).is_empty());
    }

    #[test]
    fn full_table_and_long_texts() {
        let t = table();
        for i in 0..MAX_APPS {
            assert!(t
                .find_or_claim(Kind::Dynamic, format!("/d{i}").as_bytes(), b"")
                .is_some());
        }
        assert_eq!(t.find_or_claim(Kind::Dynamic, b"/one-more", b""), None);
        let t = table();
        let long = vec![b'p'; 1000];
        let s = t.publish(Kind::Static, &long, b"addr").unwrap();
        let st = t.snapshot().into_iter().find(|x| x.slot == s).unwrap();
        assert_eq!(st.path.len(), TEXT_BYTES);
        assert_eq!(st.addr, "");
    }

    #[test]
    fn concurrent_claims_of_one_application_share_a_slot() {
        let t = table();
        let slots: Vec<usize> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|_| sc.spawn(|| t.find_or_claim(Kind::Dynamic, b"/same", b"sock").unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(slots.iter().all(|&s| s == slots[0]), "{slots:?}");
        assert_eq!(t.snapshot().len(), 1);
    }

    #[test]
    fn counted_across_processes() {
        let t = table();
        let a = t.publish(Kind::Static, b"/a", b"x").unwrap();
        let pid = crate::sys::fork::fork_run(|| {
            for _ in 0..10 {
                t.begin(a);
                t.end(a, 1, false);
            }
            t.restarted(a);
            0
        })
        .unwrap();
        let _ = nix::sys::wait::waitpid(pid, None);
        let s = t.snapshot().into_iter().find(|x| x.slot == a).unwrap();
        assert_eq!((s.requests, s.busy, s.restarts, s.wait_us), (10, 0, 1, 10));
    }
}
