//! Claiming and reclaiming rows of the shared table concurrently (issue
//! 12): threads play httpd children that claim a row, keep connections up
//! to the cap, and then exit cleanly or crash; every claim also reclaims the
//! rows of crashed ones, and pids are reused with new start times.

use super::*;
use crate::gateway::row_owner;
use std::sync::atomic::AtomicBool;

/// Fake pids 1..PIDS; each thread reuses its own few pids.
const PIDS: usize = 64;
/// The owner word of the fake process currently running under each pid
/// (0: none), for [`fake_running`].
static ALIVE: [AtomicU64; PIDS] = [const { AtomicU64::new(0) }; PIDS];
static START: AtomicU64 = AtomicU64::new(1);

fn fake_running(w: u64) -> bool {
    let pid = row_owner::pid_of(w) as usize;
    pid < PIDS && ALIVE[pid].load(SeqCst) == w
}

#[test]
fn concurrent_claims_and_reclaims_keep_the_counts() {
    const CAP: u32 = 3;
    const THREADS: usize = 8;
    const ROUNDS: usize = 20_000;
    let shared: &'static Shared = shm::map_shared().unwrap();
    let slot = shared
        .publish(&AppAddr::Unix("/rows-stress".into()), Cap::Fixed(CAP))
        .unwrap();
    // Connections held by live fake children (what really is open).
    static HELD: AtomicU32 = AtomicU32::new(0);
    static FAILED: AtomicBool = AtomicBool::new(false);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    if FAILED.load(SeqCst) {
                        return;
                    }
                    // pids 1 + 7t .. 1 + 7t + 6, reused round after round.
                    let pid = 1 + 7 * t + round % 7;
                    let me = row_owner::word(pid as i32, START.fetch_add(1, SeqCst));
                    ALIVE[pid].store(me, SeqCst);
                    let i = shared.claim_row_as(me, fake_running).expect("a free row");
                    let row = &shared.rows[i];
                    let c = &shared.classes[slot];
                    // Keep as many as the cap allows, and wait once.
                    let mut mine = 0;
                    while c.kept.fetch_update(SeqCst, SeqCst, |k| (k < CAP).then_some(k + 1)).is_ok() {
                        row.kept[slot].fetch_add(1, SeqCst);
                        mine += 1;
                        let held = HELD.fetch_add(1, SeqCst) + 1;
                        if held > CAP {
                            FAILED.store(true, SeqCst);
                            panic!("{held} connections kept with cap {CAP}");
                        }
                    }
                    row.waiting[slot].fetch_add(1, SeqCst);
                    c.waiting.fetch_add(1, SeqCst);
                    std::thread::yield_now();
                    // Nobody took or zeroed this live child's row.
                    let (k, w) = (row.kept[slot].load(SeqCst), row.waiting[slot].load(SeqCst));
                    let owner = shared.pids[i].load(SeqCst);
                    if (k, w, owner) != (mine, 1, me) {
                        FAILED.store(true, SeqCst);
                        panic!("live row {i} changed under its owner: kept {k} (mine {mine}), waiting {w}, owner {owner:#x} (me {me:#x})");
                    }
                    HELD.fetch_sub(mine, SeqCst);
                    if round % 3 == 0 {
                        ALIVE[pid].store(0, SeqCst);
                        shared.release_row(i, pid as i32);
                    } else {
                        // Crashes: the counts stay until someone reclaims.
                        ALIVE[pid].store(0, SeqCst);
                    }
                }
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join()).collect();
    assert!(results.iter().all(Result::is_ok), "a thread failed (see its panic)");
    // Everyone is dead: one more pass gives every count back, exactly.
    shared.reclaim_rows_by(fake_running);
    let c = &shared.classes[slot];
    assert_eq!((c.kept.load(SeqCst), c.waiting.load(SeqCst)), (0, 0));
    assert!(shared.pids.iter().all(|p| p.load(SeqCst) == row_owner::FREE));
}

/// A child that died but was not reaped yet (a zombie) and a child whose
/// pid now belongs to another process are both dead: their rows are
/// reclaimed (a `waiting` left behind would turn reuse off for good).
#[test]
fn zombie_and_reused_pid_rows_are_reclaimed() {
    let shared: &'static Shared = shm::map_shared().unwrap();
    let addr = AppAddr::Unix("/rows-zombie".into());
    let slot = shared.publish(&addr, Cap::Fixed(3)).unwrap();
    let pid = crate::sys::fork::fork_run(move || {
        let r: &'static Reuse = Box::leak(Box::new(Reuse::new(shared)));
        let mut l = r.lease(slot);
        l.connected_fresh();
        l.waiting();
        std::mem::forget(l);
        0
    })
    .unwrap();
    // Dead, not reaped.
    let t = Instant::now();
    while crate::sys::pidfd::ident(pid.as_raw()).is_some_and(|p| !p.zombie) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(shared.counts(slot).3, 1);
    shared.reclaim_dead_rows();
    assert_eq!(shared.counts(slot), (3, 0, 0, 0), "the zombie's row is reclaimed");
    let _ = nix::sys::wait::waitpid(pid, None);

    // A row owned by "our pid's sibling": a live process (a sleep) whose
    // start time is not the one recorded — the pid was reused.
    let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let spid = sleeper.id() as i32;
    let start = crate::sys::pidfd::ident(spid).unwrap().start;
    let stale = row_owner::word(spid, start.wrapping_sub(1000));
    let i = shared.claim_row_as(stale, |_| true).unwrap();
    shared.rows[i].waiting[slot].fetch_add(1, SeqCst);
    shared.classes[slot].waiting.fetch_add(1, SeqCst);
    shared.reclaim_dead_rows();
    assert_eq!(shared.counts(slot).3, 0, "a reused pid is not the owner");
    assert_eq!(shared.pids[i].load(SeqCst), row_owner::FREE);
    // The same process with its real start time is alive.
    let live = row_owner::word(spid, start);
    let i = shared.claim_row_as(live, |_| true).unwrap();
    shared.reclaim_dead_rows();
    assert_eq!(shared.pids[i].load(SeqCst), live);
    // Our own pid with another start time: a child that had our pid crashed.
    let me = row_owner::of_process(std::process::id() as i32);
    let old_me = row_owner::word(row_owner::pid_of(me), (me >> 32).wrapping_sub(1000));
    let j = shared.claim_row_as(old_me, |_| true).unwrap();
    let k = shared.claim_row_as(me, |_| true).unwrap();
    shared.reclaim_dead_rows();
    assert_eq!(
        shared.pids[j].load(SeqCst),
        row_owner::FREE,
        "a dead child with our pid"
    );
    assert_eq!(shared.pids[k].load(SeqCst), me, "our own row stays");
    shared.release_row(k, row_owner::pid_of(me));
    assert_eq!(shared.pids[k].load(SeqCst), row_owner::FREE);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    shared.reclaim_dead_rows();
    assert_eq!(shared.pids[i].load(SeqCst), row_owner::FREE);
}
