//! Several backends per external server (issue 14): which one a request
//! goes to, failover when one cannot be reached, and health probes while
//! one is down.
//!
//! `FastCgiExternalServer <path> -host a:p -host b:p -socket s …` names
//! several application servers running the same application. For each
//! request:
//!
//! - **Choice**: the backends that are up, fewest requests in flight across
//!   all httpd children first (the counts live in the shared table of
//!   [`super::reuse`], one slot per backend address), ties broken
//!   round-robin from a turn counter shared by all children, so sequential
//!   requests alternate.
//! - **Failover**: a backend whose connect fails (refused, timed out, the
//!   wrong peer) is marked down for `-retry` seconds and the request goes
//!   to the next one; nothing had been sent, so the whole request, body
//!   included, goes there.
//! - **Health**: while a backend is down, a background thread in the child
//!   that noticed the probe was due asks it `FCGI_GET_VALUES` every
//!   `-retry` seconds (one prober across all children: the due time is
//!   claimed with a compare-and-swap); an answer puts it back at once.
//!   Connections kept to it before it went down are never reused.
//! - **None left**: when every backend is down, a backend whose retry time
//!   has come is tried by the request itself; if none is due, the request
//!   gets 503 at once.
//!
//! With one backend none of this applies: it is never marked down, and a
//! failed connect fails the request as it always did.
//!
//! [`order`] is the pure policy; [`Choice`] applies it to the shared table.

use super::conn::PeerCheck;
use super::reuse::{self, Reuse, SlotHint};
use crate::config::AppAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the choice needs to know about one backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Requests in flight to it, all children.
    pub busy: u32,
    pub down: bool,
    /// Down, and its retry time has come.
    pub retry_due: bool,
}

/// The order in which a request tries the backends: those up, fewest
/// requests in flight first, ties in round-robin order starting at `turn`;
/// when none is up, the down ones whose retry time has come, in round-robin
/// order; else none.
pub fn order(views: &[View], turn: usize) -> Vec<usize> {
    let n = views.len();
    if n == 0 {
        return Vec::new();
    }
    let rotated = |i: usize| (i + n - turn % n) % n;
    let mut up: Vec<usize> = (0..n).filter(|&i| !views[i].down).collect();
    if !up.is_empty() {
        up.sort_by_key(|&i| (views[i].busy, rotated(i)));
        return up;
    }
    let mut due: Vec<usize> = (0..n).filter(|&i| views[i].retry_due).collect();
    due.sort_by_key(|&i| rotated(i));
    due
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How long a health probe waits for the answer.
pub const PROBE_ANSWER: Duration = Duration::from_secs(2);

/// The backend a request is trying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    /// Index into the server's backends.
    pub index: usize,
    /// Its slot in the shared table (`None`: not published; no counts).
    pub slot: Option<usize>,
}

/// What a health-probe thread needs: the server's path, the peer check, and
/// where its line goes when a backend is up again.
pub type Probe<'s> = (&'s str, PeerCheck, fn(String));

/// One request's walk through the backends of a server.
pub struct Choice<'a> {
    addrs: &'a [AppAddr],
    /// The slot of the first backend (the only one, mostly).
    first_slot: Option<usize>,
    /// With several backends: every slot, and the order to try them in.
    /// (One backend, the common case, allocates nothing per request.)
    slots: Vec<Option<usize>>,
    order: Vec<usize>,
    next: usize,
    retry_ms: u64,
    reuse: Option<&'static Reuse>,
    /// The backend currently counted in flight.
    busy: Option<usize>,
    /// Backends down before this request (for the "none left" line).
    down_before: usize,
}

/// What [`Choice::failed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// One backend only: nothing is marked.
    Single,
    /// Marked down by this request (log it).
    NowDown,
    /// It was down already (another request noticed first).
    AlreadyDown,
}

impl<'a> Choice<'a> {
    /// Orders the backends of a server for one request; with several, starts
    /// a health probe for each down backend whose probe is due while others
    /// are up. `probe`: what a probe thread needs (the server's path, the
    /// peer check, and where its line goes when a backend is up again).
    pub fn new(
        reuse: Option<&'static Reuse>,
        addrs: &'a [AppAddr],
        hints: &[Option<SlotHint>],
        retry_secs: u32,
        probe: Option<Probe<'_>>,
    ) -> Choice<'a> {
        let retry_ms = u64::from(retry_secs.max(1)) * 1000;
        let shared = reuse.map(Reuse::shared);
        let find = |i: usize| {
            let t = shared?;
            t.find_hinted(addrs.get(i)?, hints.get(i).copied().flatten())
        };
        let mut choice = Choice {
            addrs,
            first_slot: find(0),
            slots: Vec::new(),
            order: Vec::new(),
            next: 0,
            retry_ms,
            reuse,
            busy: None,
            down_before: 0,
        };
        if addrs.len() < 2 {
            return choice;
        }
        choice.slots = (0..addrs.len()).map(find).collect();
        let now = now_ms();
        let views: Vec<View> = choice
            .slots
            .iter()
            .map(|s| match (shared, s) {
                (Some(t), Some(slot)) => t.backend_view(*slot, now),
                _ => View::default(),
            })
            .collect();
        choice.down_before = views.iter().filter(|v| v.down).count();
        let turn = match (shared, choice.slots[0]) {
            (Some(t), Some(slot)) => t.next_turn(slot) as usize,
            _ => {
                static LOCAL_TURN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                LOCAL_TURN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            }
        };
        let mut order = order(&views, turn);
        let all_down = views.iter().all(|v| v.down);
        if let Some(t) = shared {
            if all_down {
                // The request itself is the probe: only the one that claims
                // a due backend tries it; the others get 503 at once.
                order.retain(|&i| choice.slots[i].is_some_and(|slot| t.claim_probe(slot, now, retry_ms)));
            } else if let (Some(reuse), Some((app, peer, report))) = (reuse, probe) {
                for (i, v) in views.iter().enumerate() {
                    let Some(slot) = choice.slots[i] else { continue };
                    if v.retry_due && t.claim_probe(slot, now, retry_ms) {
                        let line = format!("FastCGI: server \"{app}\": backend {} is up again", shown(&addrs[i]));
                        spawn_probe(reuse, slot, addrs[i].clone(), peer, line, retry_ms, report);
                    }
                }
            }
        }
        choice.order = order;
        choice
    }

    /// How many backends the server has.
    pub fn count(&self) -> usize {
        self.addrs.len()
    }

    /// Whether the server has more than one backend.
    pub fn several(&self) -> bool {
        self.addrs.len() > 1
    }

    /// The next backend to try (counted in flight until the next call, or
    /// until the choice is dropped), or `None` when none is left.
    pub fn next_backend(&mut self) -> Option<Pick> {
        self.release();
        if !self.several() {
            self.next += 1;
            return (self.next == 1 && !self.addrs.is_empty()).then_some(Pick {
                index: 0,
                slot: self.first_slot,
            });
        }
        let index = *self.order.get(self.next)?;
        self.next += 1;
        let slot = self.slots[index];
        if let (Some(reuse), Some(slot)) = (self.reuse, slot) {
            if self.several() {
                reuse.count_busy(slot, true);
                self.busy = Some(slot);
            }
        }
        Some(Pick { index, slot })
    }

    fn release(&mut self) {
        if let (Some(reuse), Some(slot)) = (self.reuse, self.busy.take()) {
            reuse.count_busy(slot, false);
        }
    }

    /// The address of a pick.
    pub fn addr(&self, pick: Pick) -> &'a AppAddr {
        &self.addrs[pick.index]
    }

    /// The backend of `pick` could not be reached (or did not answer):
    /// with several backends it goes down for `-retry` seconds.
    pub fn failed(&self, pick: Pick) -> Failed {
        let (Some(reuse), Some(slot), true) = (self.reuse, pick.slot, self.several()) else {
            return if self.several() {
                Failed::AlreadyDown
            } else {
                Failed::Single
            };
        };
        let t = reuse.shared();
        t.count_request(slot, true);
        if t.mark_down(slot, now_ms(), self.retry_ms) {
            Failed::NowDown
        } else {
            Failed::AlreadyDown
        }
    }

    /// The backend of `pick` took the request. Returns whether it had been
    /// down (for one log line: it is up again).
    pub fn connected(&self, pick: Pick) -> bool {
        let (Some(reuse), Some(slot), true) = (self.reuse, pick.slot, self.several()) else {
            return false;
        };
        let t = reuse.shared();
        t.count_request(slot, false);
        t.is_down(slot) && t.mark_up(slot)
    }

    /// Backends that were down when the request started.
    pub fn down_before(&self) -> usize {
        self.down_before
    }

    /// The retry time in seconds, for log lines.
    pub fn retry_secs(&self) -> u64 {
        self.retry_ms / 1000
    }
}

impl Drop for Choice<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// How a backend is named in log lines.
pub fn shown(addr: &AppAddr) -> String {
    match addr {
        AppAddr::Unix(p) => format!("unix:{}", p.display()),
        AppAddr::Tcp(a) => a.to_string(),
    }
}

/// Probes the down backend in `slot` with `FCGI_GET_VALUES` now and every
/// `retry_ms` after, while it stays down and this thread keeps winning the
/// claim; an answer marks it up (one `line` to `report`).
fn spawn_probe(
    reuse: &'static Reuse,
    slot: usize,
    addr: AppAddr,
    peer: PeerCheck,
    line: String,
    retry_ms: u64,
    report: fn(String),
) {
    let builder = std::thread::Builder::new().name("fcgi-health".into());
    let _ = crate::sys::signals::spawn_with_signals_blocked(builder, move || {
        let t = reuse.shared();
        loop {
            if reuse::ask_max_conns(&addr, PROBE_ANSWER, peer).is_ok() {
                if t.mark_up(slot) {
                    report(format!("{line} (it answered FCGI_GET_VALUES)"));
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(retry_ms));
            if !t.claim_probe(slot, now_ms(), retry_ms) {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(busy: u32) -> View {
        View {
            busy,
            down: false,
            retry_due: false,
        }
    }

    fn down(due: bool) -> View {
        View {
            busy: 0,
            down: true,
            retry_due: due,
        }
    }

    #[test]
    fn fewest_in_flight_first() {
        assert_eq!(order(&[up(3), up(1), up(2)], 0), vec![1, 2, 0]);
        assert_eq!(order(&[up(0), up(5)], 7), vec![0, 1]);
    }

    #[test]
    fn ties_rotate_so_sequential_requests_alternate() {
        let idle = [up(0), up(0), up(0)];
        let firsts: Vec<usize> = (0..6).map(|turn| order(&idle, turn)[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(order(&idle, 1), vec![1, 2, 0]);
        // Only among equals: the least busy still wins whatever the turn.
        assert_eq!(order(&[up(1), up(0), up(0)], 0), vec![1, 2, 0]);
        assert_eq!(order(&[up(1), up(0), up(0)], 2), vec![2, 1, 0]);
    }

    #[test]
    fn down_backends_are_skipped_while_any_is_up() {
        assert_eq!(order(&[down(true), up(9), down(false)], 0), vec![1]);
    }

    #[test]
    fn when_all_are_down_only_due_ones_are_tried() {
        assert_eq!(order(&[down(false), down(true), down(true)], 0), vec![1, 2]);
        assert_eq!(order(&[down(false), down(true), down(true)], 2), vec![2, 1]);
        assert!(order(&[down(false), down(false)], 0).is_empty());
        assert!(order(&[], 3).is_empty());
    }

    fn table() -> &'static Reuse {
        let shared: &'static reuse::Shared = crate::sys::shm::map_shared().unwrap();
        Box::leak(Box::new(Reuse::new(shared)))
    }

    fn addrs(ports: &[u16]) -> Vec<AppAddr> {
        ports
            .iter()
            .map(|p| AppAddr::Tcp(format!("127.0.0.1:{p}").parse().unwrap()))
            .collect()
    }

    #[test]
    fn a_failed_backend_is_down_until_it_answers_and_busy_counts_return_to_zero() {
        let reuse = table();
        let a = addrs(&[9101, 9102]);
        for x in &a {
            reuse.shared().publish(x, reuse::Cap::Fixed(1)).unwrap();
        }
        let mut c = Choice::new(Some(reuse), &a, &[], 10, None);
        let first = c.next_backend().unwrap();
        assert_eq!(
            reuse.shared().backend_counts(first.slot.unwrap()).0,
            1,
            "counted in flight"
        );
        assert_eq!(c.failed(first), Failed::NowDown);
        let second = c.next_backend().unwrap();
        assert_ne!(first.index, second.index);
        assert_eq!(reuse.shared().backend_counts(first.slot.unwrap()).0, 0, "released");
        assert!(!c.connected(second), "the second was up");
        assert!(c.next_backend().is_none(), "only the up one was in the order");
        drop(c);
        for x in &a {
            let s = reuse.shared().find(x).unwrap();
            assert_eq!(reuse.shared().backend_counts(s).0, 0);
        }
        // Later requests skip the down one, whatever the turn.
        for _ in 0..4 {
            let mut c = Choice::new(Some(reuse), &a, &[], 10, None);
            assert_eq!(c.next_backend().unwrap().index, second.index);
            assert_eq!(c.down_before(), 1);
        }
        // Marked again by another request: no second line.
        let c = Choice::new(Some(reuse), &a, &[], 10, None);
        assert_eq!(c.failed(first), Failed::AlreadyDown);
        // It answers (a request that tried it, or a probe): up again, once.
        assert!(c.connected(first));
        assert!(!c.connected(first));
    }

    #[test]
    fn all_down_and_none_due_leaves_no_backend_and_one_due_is_claimed_once() {
        let reuse = table();
        let a = addrs(&[9201, 9202]);
        let t = reuse.shared();
        let slots: Vec<usize> = a.iter().map(|x| t.publish(x, reuse::Cap::Fixed(1)).unwrap()).collect();
        let now = now_ms();
        assert!(t.mark_down(slots[0], now, 60_000));
        assert!(t.mark_down(slots[1], now, 60_000));
        let mut c = Choice::new(Some(reuse), &a, &[], 60, None);
        assert!(c.next_backend().is_none(), "503 at once");
        // Backend 1's retry time has come: exactly one request tries it.
        t.mark_down(slots[1], now - 120_000, 60_000);
        let mut first = Choice::new(Some(reuse), &a, &[], 60, None);
        let mut second = Choice::new(Some(reuse), &a, &[], 60, None);
        assert_eq!(first.next_backend().map(|p| p.index), Some(1));
        assert!(second.next_backend().is_none());
    }

    #[test]
    fn one_backend_is_never_marked() {
        let reuse = table();
        let a = addrs(&[9301]);
        let slot = reuse.shared().publish(&a[0], reuse::Cap::Fixed(1)).unwrap();
        let mut c = Choice::new(Some(reuse), &a, &[], 10, None);
        let p = c.next_backend().unwrap();
        assert_eq!(c.failed(p), Failed::Single);
        assert!(!reuse.shared().is_down(slot));
        assert_eq!(reuse.shared().backend_counts(slot).0, 0, "not counted either");
        assert!(c.next_backend().is_none());
    }
}
