//! Helpers for tests that put a server under load while processes come and go: the
//! application processes of a class, a GET that never panics, concurrent client
//! threads (moved here from tests/static_apps.rs for tests/faults.rs).
#![allow(dead_code)]

use super::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Children of `pm` running `app` (a word of their command line is the path).
pub fn app_children(pm: i32, app: &Path) -> Vec<i32> {
    let want = s(app);
    child_pids(pm)
        .into_iter()
        .filter(|&p| pid_cmdline(p).is_some_and(|c| c.split(' ').any(|w| w == want)))
        .collect()
}

/// Waits until exactly one PM runs with exactly `n` children running `app`, none of them
/// in `not`; returns (pm, sorted pids).  Panics with ps and the log on timeout.
pub fn wait_class(apache: &Apache, app: &Path, n: usize, not: &[i32], timeout: Duration) -> (i32, Vec<i32>) {
    let mut found = (0, Vec::new());
    let ok = wait_until(timeout, || {
        let pms = pm_pids(apache);
        if pms.len() != 1 {
            return false;
        }
        let kids = app_children(pms[0], app);
        let good = kids.len() == n && kids.iter().all(|p| !not.contains(p));
        found = (pms[0], kids);
        good
    });
    assert!(
        ok,
        "expected one fcgi-pm with {n} instance(s) of {} (excluding {not:?}) within {timeout:?}; last seen {found:?}\n{}",
        app.display(),
        evidence(apache)
    );
    found
}

pub fn kill9(pid: i32) {
    // SAFETY: kill(2) on a process of the Apache this test started.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(r, 0, "kill -9 {pid} failed");
}

// ---------------------------------------------------------------------------------------
// Helpers: requests
// ---------------------------------------------------------------------------------------

/// GET with a 15 s timeout; a failing connect is a response with status 0.
pub fn get_t(port: u16, path: &str) -> Response {
    get_tt(port, path, Duration::from_secs(15))
}

/// GET with a timeout; a failing connect is a response with status 0.
pub fn get_tt(port: u16, path: &str, timeout: Duration) -> Response {
    let raw = build_request("GET", path, port, &[], None);
    match std::panic::catch_unwind(|| request_timeout(port, &raw, timeout)) {
        Ok(r) => r,
        Err(e) => Response {
            error: Some(format!(
                "client panicked: {}",
                e.downcast_ref::<String>().cloned().unwrap_or_else(|| "?".into())
            )),
            ..Response::default()
        },
    }
}

/// Asserts a 200 from the probe and returns the serving pid.
pub fn probe_ok(apache: &Apache, path: &str) -> i32 {
    probe_ok_response(apache, path).1
}

/// Asserts a 200 from the probe and returns the response and the serving pid.
pub fn probe_ok_response(apache: &Apache, path: &str) -> (Response, i32) {
    let r = get_t(apache.port(), path);
    assert!(
        r.status == 200 && r.complete,
        "GET {path}: {}\n{}",
        brief(&r),
        evidence(apache)
    );
    let pid = served_by(&r).unwrap_or_else(|| panic!("GET {path}: no X-Probe-Pid\n{}", brief(&r)));
    (r, pid)
}

/// Polls GET `path` until a 200 comes back (each try up to 15 s) or `timeout` passes.
#[allow(clippy::result_large_err)]
pub fn poll_ok(port: u16, path: &str, timeout: Duration) -> Result<Response, Response> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = get_t(port, path);
        if r.status == 200 && r.complete {
            return Ok(r);
        }
        if Instant::now() >= deadline {
            return Err(r);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Concurrent client threads looping GETs until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    t0: Instant,
    #[allow(clippy::type_complexity)]
    handles: Vec<thread::JoinHandle<(usize, Vec<String>, Vec<i32>)>>,
}

pub struct LoadResult {
    pub requests: usize,
    pub failures: Vec<String>,
    pub pids: BTreeMap<i32, usize>,
}

impl Load {
    /// `threads` threads; thread i requests `paths[(i + n) % len]` for its n-th request.
    pub fn start(port: u16, paths: &[&str], threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let handles = (0..threads)
            .map(|i| {
                let stop = stop.clone();
                let paths = paths.clone();
                thread::spawn(move || {
                    let (mut n, mut fails, mut pids) = (0usize, Vec::new(), Vec::new());
                    while !stop.load(Ordering::SeqCst) {
                        let path = &paths[(i + n) % paths.len()];
                        let r = get_t(port, path);
                        n += 1;
                        match served_by(&r) {
                            Some(pid) if r.status == 200 && r.complete => pids.push(pid),
                            _ => fails.push(format!(
                                "t+{:.3}s thread {i} GET {path}: {}",
                                t0.elapsed().as_secs_f64(),
                                brief(&r)
                            )),
                        }
                    }
                    (n, fails, pids)
                })
            })
            .collect();
        Load { stop, t0, handles }
    }

    pub fn elapsed(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    pub fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::SeqCst);
        let mut res = LoadResult {
            requests: 0,
            failures: Vec::new(),
            pids: BTreeMap::new(),
        };
        for h in self.handles {
            let (n, f, p) = h.join().expect("load thread");
            res.requests += n;
            res.failures.extend(f);
            for pid in p {
                *res.pids.entry(pid).or_default() += 1;
            }
        }
        res
    }
}
