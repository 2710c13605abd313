//! The soak (issue 12): `make soak` runs this ignored test for `SOAK_SECONDS` (default
//! 3600) under `FCGI_TEST_MPM`. Not part of `make test`.
//!
//! One Apache serves a static application (`FastCgiServer`, 2 processes), an external one
//! (libfcgi probe on a Unix socket, started here) and a dynamic one (`FastCgiConfig`, a
//! probe copy under an `ExecCGI` directory) at once. `SOAK_CLIENTS` client threads (default
//! 6) keep HTTP/1.1 connections and send, spread over the three applications, a mix of
//! small GETs, 1 MiB uploads (echo, checksum compared) and downloads (length compared),
//! chunked uploads, client aborts in the middle of a 4 MiB response and application errors
//! (a malformed header line: 500 expected), paced to `SOAK_RATE` requests per
//! second in all (default 300, about 1.08 million an hour). A graceful restart every
//! `SOAK_RESTART_SECONDS` (default 180).
//!
//! Every 10 s it samples the resident memory and open descriptors of httpd (parent and
//! children, summed), of the process manager and of the application processes, and the
//! process counts, into `target/soak/<mpm>-<unix time>.csv`.
//!
//! Trend rule (the test fails on any of these): after a warm-up of one tenth of the run
//! (at least 60 s), the median of the last fifth of the samples is compared with the
//! median of the first fifth: httpd, process-manager and application RSS must not grow by
//! more than 10 % + 4 MiB each, descriptors by more than 16, process counts by more than
//! 2. The least-squares slope of each series is printed per hour. Any unexpected request
//! failure fails the test too (an expected error must be a 500 with nothing else wrong).

mod common;

use common::*;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One sample of the processes.
#[derive(Clone, Debug, Default)]
struct Sample {
    t: f64,
    requests: u64,
    httpd_rss_kib: u64,
    httpd_fds: u64,
    httpd_procs: u64,
    pm_rss_kib: u64,
    pm_fds: u64,
    app_rss_kib: u64,
    app_fds: u64,
    app_procs: u64,
}

fn rss_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn fds(pid: i32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn sample(apache: &Apache, external: i32, t: f64, requests: u64) -> Sample {
    let mut s = Sample {
        t,
        requests,
        ..Default::default()
    };
    let mut httpd = vec![apache.pid()];
    let mut apps = vec![external];
    for pid in apache.descendant_pids() {
        let c = comm(pid);
        if c == "apache2" || c == "httpd" {
            httpd.push(pid);
        } else if c.starts_with("fcgi-pm") {
            s.pm_rss_kib += rss_kib(pid);
            s.pm_fds += fds(pid);
        } else {
            apps.push(pid);
        }
    }
    for pid in &httpd {
        s.httpd_rss_kib += rss_kib(*pid);
        s.httpd_fds += fds(*pid);
    }
    s.httpd_procs = httpd.len() as u64;
    for pid in &apps {
        s.app_rss_kib += rss_kib(*pid);
        s.app_fds += fds(*pid);
    }
    s.app_procs = apps.len() as u64;
    s
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

/// Least-squares slope of `y` over `t` (per second).
fn slope(t: &[f64], y: &[f64]) -> f64 {
    let n = t.len() as f64;
    if t.len() < 2 {
        return 0.0;
    }
    let (mt, my) = (t.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let num: f64 = t.iter().zip(y).map(|(a, b)| (a - mt) * (b - my)).sum();
    let den: f64 = t.iter().map(|a| (a - mt) * (a - mt)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// How a response is judged.
type Check = Box<dyn Fn(&Response) -> Result<(), String>>;

/// What one client does for its n-th request; returns an error text if it went wrong.
fn one_request(conn: &mut Option<Conn>, port: u16, n: u64, seed: u64) -> Result<(), String> {
    let app = ["/static.fcgi", "/ext.fcgi", "/dyn/app.fcgi"][(n % 3) as usize];
    let c = conn.get_or_insert_with(|| Conn::open(port));
    let kind = n % 200;
    let (raw, check): (Vec<u8>, Check) = match kind {
        // A 1 MiB upload, echoed.
        7 | 107 => {
            let body = pattern(1 << 20, seed);
            let sum = checksum_hex(&body);
            let mut raw = format!(
                "POST {app}?mode=echo HTTP/1.1\r\nHost: soak\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            raw.extend_from_slice(&body);
            (
                raw,
                Box::new(move |r: &Response| {
                    if r.status == 200 && r.body.len() == 1 << 20 && r.header("X-Body-Sum") == Some(sum.as_str()) {
                        Ok(())
                    } else {
                        Err(format!("upload echo: {}", brief(r)))
                    }
                }),
            )
        }
        // A 1 MiB download.
        17 | 117 => (
            format!("GET {app}?mode=big&size=1048576 HTTP/1.1\r\nHost: soak\r\n\r\n").into_bytes(),
            Box::new(|r: &Response| {
                if r.status == 200 && r.body.len() == 1 << 20 {
                    Ok(())
                } else {
                    Err(format!("download: {}", brief(r)))
                }
            }),
        ),
        // A chunked upload (spooled), 200 kB in uneven chunks.
        27 => {
            let body = pattern(200_000, seed);
            let sum = checksum_hex(&body);
            let mut raw = format!(
                "POST {app}?mode=echo HTTP/1.1\r\nHost: soak\r\nContent-Type: application/octet-stream\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            )
            .into_bytes();
            for chunk in body.chunks(7_001) {
                raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                raw.extend_from_slice(chunk);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"0\r\n\r\n");
            (
                raw,
                Box::new(move |r: &Response| {
                    if r.status == 200 && r.header("X-Body-Sum") == Some(sum.as_str()) {
                        Ok(())
                    } else {
                        Err(format!("chunked upload: {}", brief(r)))
                    }
                }),
            )
        }
        // An application error: a malformed header line (the process lives on; one that
        // exited would count against the static class's start-up back-off and end the
        // external one for good).
        37 => (
            format!("GET {app}?mode=badheader HTTP/1.1\r\nHost: soak\r\n\r\n").into_bytes(),
            Box::new(|r: &Response| {
                if r.status == 500 {
                    Ok(())
                } else {
                    Err(format!("expected 500: {}", brief(r)))
                }
            }),
        ),
        // A client that leaves in the middle of a 4 MiB response.
        47 => {
            *conn = None;
            let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(30))).ok();
            write!(s, "GET {app}?mode=big&size=4194304 HTTP/1.1\r\nHost: soak\r\n\r\n").map_err(|e| e.to_string())?;
            let mut got = 0;
            let mut buf = [0u8; 16384];
            while got < 200_000 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return Err(format!("abort client: response ended after {got} bytes")),
                    Ok(n) => got += n,
                }
            }
            return Ok(());
        }
        _ => (
            format!("GET {app}?mode=env HTTP/1.1\r\nHost: soak\r\n\r\n").into_bytes(),
            Box::new(|r: &Response| {
                if r.status == 200 && r.complete {
                    Ok(())
                } else {
                    Err(format!("small GET: {}", brief(r)))
                }
            }),
        ),
    };
    let r = c.roundtrip(&raw);
    let closed = r.header("Connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) || r.error.is_some();
    let res = check(&r);
    if closed || res.is_err() {
        *conn = None;
    }
    // A keep-alive connection that httpd closed between requests (a graceful restart,
    // KeepAliveTimeout) is no failure: the request is sent again once on a new one.
    if res.is_err() && r.status == 0 && r.body.is_empty() {
        let c = conn.get_or_insert_with(|| Conn::open(port));
        let r = c.roundtrip(&raw);
        if r.header("Connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            *conn = None;
        }
        return check(&r);
    }
    res
}

#[test]
#[ignore = "the soak runs for an hour: make soak"]
fn soak() {
    let seconds = env_u64("SOAK_SECONDS", 3600);
    let clients = env_u64("SOAK_CLIENTS", 6);
    let rate = env_u64("SOAK_RATE", 300).max(1);
    let restart_every = env_u64("SOAK_RESTART_SECONDS", 180).max(10);
    let dir = TestDir::new();
    probe_at(&dir, "static.fcgi");
    probe_at(&dir, "dyn/app.fcgi");
    let (ext, sock) = start_probe_unix(&dir, "ext");
    let conf = ApacheConf::new().root(dir.path()).extra(&format!(
        "FastCgiIpcDir @ROOT@/ipc\n\
         FastCgiServer @HTDOCS@/static.fcgi -processes 2\n\
         FastCgiExternalServer @HTDOCS@/ext.fcgi -socket {}\n\
         FastCgiConfig -maxClassProcesses 3 -killInterval 30\n\
         <Directory @HTDOCS@/dyn>\n    Options +ExecCGI\n    SetHandler fastcgi-script\n</Directory>\n\
         KeepAlive On\nMaxKeepAliveRequests 1000\nKeepAliveTimeout 5\n",
        sock.display()
    ));
    let apache = Apache::start(&conf);
    let port = apache.port();
    for p in ["/static.fcgi", "/ext.fcgi", "/dyn/app.fcgi"] {
        poll_ok(port, &format!("{p}?mode=env"), Duration::from_secs(20)).expect("application up");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let t0 = Instant::now();
    let per_client = rate as f64 / clients as f64;
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (stop, total, failures) = (stop.clone(), total.clone(), failures.clone());
            thread::spawn(move || {
                let mut conn = None;
                let mut n = i * 1000;
                let start = Instant::now();
                let mut done = 0f64;
                while !stop.load(Ordering::SeqCst) {
                    if let Err(e) = one_request(&mut conn, port, n, n ^ 0x5eed) {
                        let mut f = failures.lock().unwrap();
                        if f.len() < 200 {
                            f.push(format!("t+{:.1}s client {i} #{n}: {e}", t0.elapsed().as_secs_f64()));
                        } else {
                            f.push(String::new());
                        }
                    }
                    n += 1;
                    done += 1.0;
                    total.fetch_add(1, Ordering::Relaxed);
                    // Pace: this client's share of the rate.
                    let due = Duration::from_secs_f64(done / per_client);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        thread::sleep(wait);
                    }
                }
            })
        })
        .collect();

    let out_dir = manifest_dir().join("target/soak");
    fs::create_dir_all(&out_dir).unwrap();
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let csv_path: PathBuf = out_dir.join(format!("{}-{stamp}.csv", mpm().name()));
    let mut csv = String::from(
        "t_s,requests,httpd_rss_kib,httpd_fds,httpd_procs,pm_rss_kib,pm_fds,app_rss_kib,app_fds,app_procs\n",
    );
    let mut samples = Vec::new();
    let mut restarts = 0;
    let mut next_restart = Duration::from_secs(restart_every);
    while t0.elapsed() < Duration::from_secs(seconds) {
        thread::sleep(Duration::from_secs(10).min(Duration::from_secs(seconds).saturating_sub(t0.elapsed())));
        let t = t0.elapsed();
        if t >= next_restart {
            apache.graceful();
            restarts += 1;
            next_restart += Duration::from_secs(restart_every);
            // (Sampled after the new generation took over.)
            thread::sleep(Duration::from_secs(3));
        }
        let s = sample(
            &apache,
            ext.pid(),
            t0.elapsed().as_secs_f64(),
            total.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            csv,
            "{:.0},{},{},{},{},{},{},{},{},{}",
            s.t,
            s.requests,
            s.httpd_rss_kib,
            s.httpd_fds,
            s.httpd_procs,
            s.pm_rss_kib,
            s.pm_fds,
            s.app_rss_kib,
            s.app_fds,
            s.app_procs
        );
        fs::write(&csv_path, &csv).unwrap();
        samples.push(s);
    }
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    let requests = total.load(Ordering::Relaxed);
    let failures = failures.lock().unwrap().clone();

    // The trend rule.
    let warm = (seconds as f64 / 10.0).max(60.0);
    let kept: Vec<&Sample> = samples.iter().filter(|s| s.t >= warm).collect();
    let fifth = (kept.len() / 5).max(1);
    let mut report = format!(
        "soak {}: {seconds} s, {requests} requests ({:.0}/s), {restarts} graceful restarts, {} failed, \
         {} samples; CSV {}\n",
        mpm().name(),
        requests as f64 / seconds as f64,
        failures.len(),
        samples.len(),
        csv_path.display()
    );
    let mut problems = Vec::new();
    type Field = fn(&Sample) -> u64;
    let series: [(&str, Field, f64, f64); 8] = [
        ("httpd RSS KiB", |s| s.httpd_rss_kib, 0.10, 4096.0),
        ("process-manager RSS KiB", |s| s.pm_rss_kib, 0.10, 4096.0),
        ("application RSS KiB", |s| s.app_rss_kib, 0.10, 4096.0),
        ("httpd descriptors", |s| s.httpd_fds, 0.0, 16.0),
        ("process-manager descriptors", |s| s.pm_fds, 0.0, 16.0),
        ("application descriptors", |s| s.app_fds, 0.0, 16.0),
        ("httpd processes", |s| s.httpd_procs, 0.0, 2.0),
        ("application processes", |s| s.app_procs, 0.0, 2.0),
    ];
    if kept.len() >= 5 {
        for (name, f, rel, abs) in series {
            let ys: Vec<f64> = kept.iter().map(|s| f(s) as f64).collect();
            let ts: Vec<f64> = kept.iter().map(|s| s.t).collect();
            let first = median(&ys[..fifth]);
            let last = median(&ys[ys.len() - fifth..]);
            let per_hour = slope(&ts, &ys) * 3600.0;
            let _ = writeln!(
                report,
                "  {name}: start {:.0}, end {:.0} (median of first/last fifth {first:.0} → {last:.0}), \
                 slope {per_hour:+.1}/h",
                ys[0],
                ys[ys.len() - 1]
            );
            if last > first * (1.0 + rel) + abs {
                problems.push(format!("{name} grew from {first:.0} to {last:.0}"));
            }
        }
    } else {
        problems.push(format!("too few samples after the warm-up ({})", kept.len()));
    }
    for f in failures.iter().filter(|f| !f.is_empty()).take(20) {
        let _ = writeln!(report, "  failure: {f}");
    }
    eprintln!("{report}");
    fs::write(out_dir.join(format!("{}-{stamp}.txt", mpm().name())), &report).unwrap();
    assert!(problems.is_empty(), "upward trend: {problems:?}\n{report}");
    assert!(failures.is_empty(), "{} failed requests\n{report}", failures.len());
}
