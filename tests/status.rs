//! The FastCGI section of mod_status (`/server-status` and `?auto`,
//! src/module/status.rs and src/gateway/stats.rs): per-application counts
//! after a known sequence of requests, failures, a request in progress and a
//! killed static process, summed over all httpd children (prefork has many)
//! and the process manager.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

const IPC: &str = "FastCgiIpcDir @ROOT@/ipc";

/// `?auto`'s `FastCgiApp[N]Key: value` lines, by application name (the
/// `Name` line of each block) and key. Panics on a block without a name or
/// numbered out of order.
fn fastcgi_apps(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut blocks: Vec<BTreeMap<String, String>> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("FastCgiApp[") else {
            continue;
        };
        let (n, kv) = rest.split_once(']').expect("FastCgiApp[N]");
        let n: usize = n.parse().expect("block number");
        let (k, v) = kv.split_once(": ").expect("Key: value");
        if n == blocks.len() {
            blocks.push(BTreeMap::new());
        }
        assert_eq!(n + 1, blocks.len(), "blocks numbered from 0 in order:\n{text}");
        blocks[n].insert(k.to_string(), v.to_string());
    }
    blocks
        .into_iter()
        .map(|b| (b.get("Name").cloned().expect("a Name line"), b))
        .collect()
}

fn auto(apache: &Apache) -> String {
    let r = apache.get("/server-status?auto");
    assert_eq!(r.status, 200, "{}", brief(&r));
    r.text()
}

/// The counters of application `name`, as numbers (Name, Type, Address as text).
fn app(apache: &Apache, name: &str) -> Option<BTreeMap<String, String>> {
    fastcgi_apps(&auto(apache)).remove(name)
}

fn num(a: &BTreeMap<String, String>, k: &str) -> u64 {
    a.get(k)
        .unwrap_or_else(|| panic!("no {k} in {a:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{k} is not a number in {a:?}"))
}

/// The seven keys the issue fixes, in order, plus the extra ones.
const KEYS: [&str; 7] = ["Name", "Type", "Processes", "Busy", "Requests", "Errors", "Restarts"];

fn counts(a: &BTreeMap<String, String>) -> (String, u64, u64, u64, u64, u64) {
    (
        a["Type"].clone(),
        num(a, "Processes"),
        num(a, "Busy"),
        num(a, "Requests"),
        num(a, "Errors"),
        num(a, "Restarts"),
    )
}

fn get_status(apache: &Apache, path: &str, want: u16) {
    let r = apache.get(path);
    assert_eq!(r.status, want, "GET {path}: {}\n{}", brief(&r), log_tail(apache));
}

#[test]
fn counts_requests_errors_busy_and_restarts_of_every_kind_of_application() {
    let dir = TestDir::new();
    let st = probe_at(&dir, "st/probe.fcgi");
    let dy = probe_at(&dir, "dyn/probe.fcgi");
    let (_ext_app, ext_sock) = start_probe_unix(&dir, "ext");
    let dead_port = free_port();
    let conf = conf_in(
        &dir,
        &format!(
            "{IPC}\n\
             FastCgiServer @HTDOCS@/st/probe.fcgi -processes 2 -init-start-delay 0\n\
             FastCgiExternalServer @HTDOCS@/ext.fcgi -socket {}\n\
             FastCgiExternalServer @HTDOCS@/dead.fcgi -host 127.0.0.1:{dead_port}\n\
             FastCgiConfig -maxClassProcesses 1 -startDelay 5\n\
             <Directory @HTDOCS@/dyn>\n    Options +ExecCGI\n    SetHandler fastcgi-script\n</Directory>\n\
             <Location /server-status>\n    SetHandler server-status\n</Location>",
            ext_sock.display()
        ),
    )
    .with_module("status");
    let apache = Apache::start(&conf);
    let (st, dy) = (s(&st), s(&dy));
    let (ext, dead) = (s(&dir.join("htdocs/ext.fcgi")), s(&dir.join("htdocs/dead.fcgi")));

    // The static class is running with its two processes; the dynamic one
    // does not exist yet.
    assert!(
        wait_until(Duration::from_secs(15), || app(&apache, &st)
            .is_some_and(|a| num(&a, "Processes") == 2)),
        "static class never showed 2 processes:\n{}\n{}",
        auto(&apache),
        evidence(&apache)
    );
    let before = fastcgi_apps(&auto(&apache));
    assert!(
        !before.contains_key(&dy),
        "dynamic class listed before it started:\n{before:?}"
    );
    let a = &before[&st];
    assert_eq!(counts(a), ("static".into(), 2, 0, 0, 0, 0));
    assert_eq!(counts(&before[&ext]), ("external".into(), 0, 0, 0, 0, 0));
    assert_eq!(counts(&before[&dead]), ("external".into(), 0, 0, 0, 0, 0));
    assert_eq!(before[&dead]["Address"], format!("127.0.0.1:{dead_port}"));
    assert_eq!(before[&ext]["Address"], format!("unix:{}", ext_sock.display()));

    // A known sequence, on fresh connections (so that prefork spreads it
    // over several children).
    for _ in 0..5 {
        get_status(&apache, "/st/probe.fcgi?mode=env", 200);
    }
    for _ in 0..2 {
        get_status(&apache, "/st/probe.fcgi?mode=badheader", 500);
    }
    for _ in 0..3 {
        get_status(&apache, "/ext.fcgi?mode=env", 200);
    }
    get_status(&apache, "/ext.fcgi?mode=noheaders", 500);
    for _ in 0..2 {
        let r = apache.get("/dead.fcgi");
        assert!(r.status >= 500, "{}", brief(&r));
    }
    for _ in 0..3 {
        get_status(&apache, "/dyn/probe.fcgi?mode=env", 200);
    }

    let apps = fastcgi_apps(&auto(&apache));
    let blocks = auto(&apache);
    assert_eq!(apps.len(), 4, "{blocks}");
    assert_eq!(counts(&apps[&st]), ("static".into(), 2, 0, 7, 2, 0), "{blocks}");
    assert_eq!(counts(&apps[&ext]), ("external".into(), 0, 0, 4, 1, 0), "{blocks}");
    assert_eq!(counts(&apps[&dead]), ("external".into(), 0, 0, 2, 2, 0), "{blocks}");
    let d = &apps[&dy];
    assert_eq!(
        (d["Type"].as_str(), num(d, "Requests"), num(d, "Errors"), num(d, "Busy")),
        ("dynamic", 3, 0, 0)
    );
    assert!(
        wait_until(Duration::from_secs(10), || app(&apache, &dy)
            .is_some_and(|a| num(&a, "Processes") == 1)),
        "the dynamic class should show its one process:\n{}",
        auto(&apache)
    );
    // Every block starts with the seven keys in that order.
    let first: Vec<&str> = blocks
        .lines()
        .filter(|l| l.starts_with("FastCgiApp[0]"))
        .take(7)
        .map(|l| l[l.find(']').unwrap() + 1..l.find(':').unwrap()].as_ref())
        .collect();
    assert_eq!(first, KEYS);
    assert!(num(&apps[&st], "AvgWaitMicros") > 0, "{blocks}");

    // A request in progress is busy, and no longer once it ended.
    let port = apache.port();
    let slow = thread::spawn(move || {
        request_timeout(
            port,
            &build_request("GET", "/st/probe.fcgi?mode=sleep&ms=3000", port, &[], None),
            Duration::from_secs(30),
        )
    });
    assert!(
        wait_until(Duration::from_secs(10), || app(&apache, &st)
            .is_some_and(|a| num(&a, "Busy") == 1)),
        "the sleeping request never showed as busy:\n{}",
        auto(&apache)
    );
    // Meanwhile other requests are served (under prefork by other
    // children than the one holding the sleeping request), and counted
    // into the same totals.
    for _ in 0..2 {
        get_status(&apache, "/st/probe.fcgi?mode=env", 200);
    }
    assert_eq!(num(&app(&apache, &st).unwrap(), "Requests"), 10);
    assert_eq!(slow.join().unwrap().status, 200);
    let a = app(&apache, &st).unwrap();
    assert_eq!((num(&a, "Busy"), num(&a, "Requests")), (0, 10));

    // A static process killed: the PM restarts it; Restarts 1, back to 2.
    let pm = pm_pids(&apache)[0];
    let victim = child_pids(pm)
        .into_iter()
        .find(|&p| pid_cmdline(p).is_some_and(|c| c.contains(&st)))
        .expect("a static process");
    // SAFETY: kill(2) on a process of the Apache this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    assert!(
        wait_until(Duration::from_secs(20), || app(&apache, &st)
            .is_some_and(|a| num(&a, "Restarts") == 1 && num(&a, "Processes") == 2)),
        "no restart counted:\n{}\n{}",
        auto(&apache),
        evidence(&apache)
    );
    assert!(!pid_alive(victim) || pid_cmdline(victim).is_none());

    // The HTML page has the section, naming every application.
    let r = apache.get("/server-status");
    assert_eq!(r.status, 200);
    let html = r.text();
    let (_, ours) = html
        .split_once("<h2>FastCGI applications</h2>")
        .unwrap_or_else(|| panic!("no FastCGI section:\n{html}"));
    for name in [&st, &ext, &dead, &dy] {
        assert!(
            ours.contains(&format!("<tr><td>{name}</td>")),
            "{name} missing:\n{ours}"
        );
    }
    assert_eq!(ours.matches("<tr><td>").count(), 4, "{ours}");
    // ?notable: the same without a table.
    let html = apache.get("/server-status?notable").text();
    let (_, ours) = html.split_once("<h2>FastCGI applications</h2>").expect("section");
    assert!(!ours.contains("<table"), "{ours}");
    for name in [&st, &ext, &dead, &dy] {
        assert!(ours.contains(&format!("<dt>{name} (")), "{name} missing:\n{ours}");
    }
}

/// Counts survive a graceful restart for an unchanged application and
/// vanish for a removed one.
#[test]
fn graceful_restart_keeps_configured_counts_and_drops_removed_applications() {
    let dir = TestDir::new();
    let (_a, sock_a) = start_probe_unix(&dir, "a");
    let (_b, sock_b) = start_probe_unix(&dir, "b");
    let status = "<Location /server-status>\n    SetHandler server-status\n</Location>";
    let ext = |name: &str, sock: &std::path::Path| {
        format!(
            "FastCgiExternalServer @HTDOCS@/{name}.fcgi -socket {}\n",
            sock.display()
        )
    };
    let mut apache = Apache::start(
        &conf_in(
            &dir,
            &format!("{IPC}\n{}{}{status}", ext("a", &sock_a), ext("b", &sock_b)),
        )
        .with_module("status"),
    );
    let (a, b) = (s(&dir.join("htdocs/a.fcgi")), s(&dir.join("htdocs/b.fcgi")));
    for _ in 0..3 {
        get_status(&apache, "/a.fcgi?mode=env", 200);
    }
    get_status(&apache, "/b.fcgi?mode=env", 200);
    let apps = fastcgi_apps(&auto(&apache));
    assert_eq!(
        (num(&apps[&a], "Requests"), num(&apps[&b], "Requests")),
        (3, 1),
        "{apps:?}"
    );
    apache.reconfigure(&conf_in(&dir, &format!("{IPC}\n{}{status}", ext("a", &sock_a))).with_module("status"));
    apache.graceful();
    assert!(
        wait_until(Duration::from_secs(15), || !fastcgi_apps(&auto(&apache))
            .contains_key(&b)),
        "removed application still listed:\n{}",
        auto(&apache)
    );
    let apps = fastcgi_apps(&auto(&apache));
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!(num(&apps[&a], "Requests"), 3, "{apps:?}");
    get_status(&apache, "/a.fcgi?mode=env", 200);
    assert_eq!(num(&app(&apache, &a).unwrap(), "Requests"), 4);
}
