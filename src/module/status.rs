//! The FastCGI section of mod_status's `/server-status` (and its `?auto`
//! lines): glue between the configuration, the shared counters of
//! [`crate::gateway::stats`], the request handler, the process manager and
//! the status hook.
//!
//! - The parent publishes every configured application ([`publish`]).
//! - A request handler resolves the slot of a static or external
//!   application once per child and configuration ([`server_slots`]; a
//!   dynamic class per request, [`dynamic_slot`]) and counts the request
//!   with a [`Counted`] guard, whichever way it ends.
//! - The process manager reports running processes and restarts
//!   ([`pm_processes`], [`pm_restarted`]).
//! - The status hook writes one HTML row or one `?auto` block per
//!   application ([`write`]).

use crate::config::{AppAddr, ConfigState, Server};
use crate::gateway::reuse::SlotHint;
use crate::gateway::stats::{self, AppStats, Kind, Shared};
use crate::gateway::ExchangeError;
use crate::gateway::Failure;
use crate::httpd::{log, process, Level, Request};
use crate::sys::wait::ChildExit;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

/// How an application's address is shown (and part of its key).
pub fn addr_text(addr: &AppAddr) -> String {
    crate::gateway::backends::shown(addr)
}

/// The kind, path and address text of a configured application.
fn ident(server: &Server) -> (Kind, &Path, String) {
    match server {
        Server::Static(st) => (Kind::Static, &st.path, addr_text(&st.connect_addr())),
        Server::External(ext) => (
            Kind::External,
            &ext.path,
            ext.addrs.iter().map(addr_text).collect::<Vec<_>>().join(" "),
        ),
    }
}

/// Parent, each configuration pass: gives every configured application its
/// slot (before the children and the process manager start).
pub fn publish(cfg: &ConfigState) {
    let Some(table) = process::stats_table(true) else {
        log::main_server(
            Level::Warn,
            0,
            "FastCGI: can't map the shared status table: no FastCGI section in mod_status",
        );
        return;
    };
    let idents: Vec<_> = cfg.servers().iter().map(ident).collect();
    let keys: Vec<u64> = idents
        .iter()
        .map(|(k, p, a)| stats::app_key(*k, p.as_os_str().as_bytes(), a.as_bytes()))
        .collect();
    table.free_unconfigured(&keys);
    for (kind, path, addr) in &idents {
        if table
            .publish(*kind, path.as_os_str().as_bytes(), addr.as_bytes())
            .is_none()
        {
            log::main_server(
                Level::Warn,
                0,
                &format!(
                    "FastCGI: more than {} applications: \"{}\" is not shown in mod_status",
                    stats::MAX_APPS,
                    path.display()
                ),
            );
        }
    }
}

/// This process's view of the table (`None` without one, e.g. `apache2 -t`).
fn table() -> Option<&'static Shared> {
    static TABLE: OnceLock<Option<&'static Shared>> = OnceLock::new();
    *TABLE.get_or_init(|| process::stats_table(false))
}

/// A configured application's places in the shared tables: its
/// mod_status slot and, for each of its addresses, its connection-reuse
/// slot (checked with one load per request instead of hashing the address:
/// issue 11).
#[derive(Debug, Clone, Default)]
pub struct Slots {
    pub stats: Option<usize>,
    pub reuse: Vec<Option<SlotHint>>,
}

/// The slots of a configuration's servers, in its order.
struct ServerSlots {
    /// The configuration they were resolved for (its address).
    config: usize,
    slots: Vec<Slots>,
}

/// Request handler: the slots of a configured application, resolved once
/// per child for all servers of its configuration (a child serves one
/// configuration all its life); the per-request cost is finding `server`
/// among the configuration's servers by address.
pub fn server_slots(state: &ConfigState, server: &Server) -> Cow<'static, Slots> {
    static CACHE: OnceLock<ServerSlots> = OnceLock::new();
    let find = |s: &Server| {
        let stats = table().and_then(|table| {
            let (kind, path, addr) = ident(s);
            table.find(kind, path.as_os_str().as_bytes(), addr.as_bytes())
        });
        let reuse = super::supervisor::reuse().map(|r| r.shared());
        let addrs = match s {
            Server::Static(st) => vec![st.connect_addr()],
            Server::External(ext) => ext.addrs.clone(),
        };
        Slots {
            stats,
            reuse: addrs.iter().map(|a| reuse.and_then(|t| t.hint(a))).collect(),
        }
    };
    let config = state as *const ConfigState as usize;
    let cache = CACHE.get_or_init(|| ServerSlots {
        config,
        slots: state.servers().iter().map(find).collect(),
    });
    if cache.config != config {
        return Cow::Owned(find(server));
    }
    match state.servers().iter().position(|s| std::ptr::eq(s, server)) {
        Some(i) => cache
            .slots
            .get(i)
            .map_or_else(|| Cow::Owned(Slots::default()), Cow::Borrowed),
        None => Cow::Owned(find(server)),
    }
}

/// Request handler: the slot of a dynamic class (claimed by its first
/// request if the process manager has not yet).
pub fn dynamic_slot(file: &Path, sock: &Path) -> Option<usize> {
    let addr = addr_text(&AppAddr::Unix(sock.to_path_buf()));
    table()?.find_or_claim(Kind::Dynamic, file.as_os_str().as_bytes(), addr.as_bytes())
}

/// One request, counted from its start to its end (however it ends: the
/// guard's drop ends it).
pub struct Counted {
    at: Option<(&'static Shared, usize, Instant)>,
    first_byte: Option<Instant>,
    failed: bool,
}

impl Counted {
    /// Counts a request for the application in `slot` (nothing if `None`).
    pub fn begin(slot: Option<usize>) -> Counted {
        let at = slot.and_then(|s| {
            let t = table()?;
            t.begin(s);
            Some((t, s, Instant::now()))
        });
        Counted {
            at,
            first_byte: None,
            failed: false,
        }
    }

    /// The application's first byte came at `at` (the wait ends there).
    pub fn answered(&mut self, at: Option<Instant>) {
        self.first_byte = at;
    }

    /// The request failed (connect, timeout, protocol, headers, crash).
    pub fn failed(&mut self) {
        self.failed = true;
    }

    /// Counts the request as failed when `err` is the application's failure
    /// (not the client's, not a redirect whose body was cut short).
    pub fn exchange_failed(&mut self, err: &ExchangeError) {
        if is_app_failure(err) {
            self.failed = true;
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some((t, slot, start)) = self.at {
            let end = self.first_byte.unwrap_or_else(Instant::now);
            let wait = end.saturating_duration_since(start).as_micros();
            t.end(slot, u64::try_from(wait).unwrap_or(u64::MAX), self.failed);
        }
    }
}

/// Whether an exchange failure is the application's (counted in Errors).
pub fn is_app_failure(err: &ExchangeError) -> bool {
    match &err.failure {
        Failure::ClientGone | Failure::ClientBody(_) => false,
        Failure::Truncated => err.head.as_ref().and_then(crate::cgi::redirect_kind).is_none(),
        _ => true,
    }
}

/// A class as the process manager reports it.
pub struct PmClass<'a> {
    pub dynamic: bool,
    pub retired: bool,
    pub path: &'a Path,
    /// Where requests connect (loopback for a wildcard TCP address).
    pub addr: AppAddr,
    pub running: u32,
}

/// The slot of a class: a static one's was published by the parent (one
/// removed from the configuration is not listed again for its retired
/// processes); an active dynamic class is claimed if need be.
fn pm_slot(table: &Shared, dynamic: bool, retired: bool, path: &Path, addr: &AppAddr) -> Option<usize> {
    let (path, addr) = (path.as_os_str().as_bytes(), addr_text(addr));
    if dynamic && !retired {
        table.find_or_claim(Kind::Dynamic, path, addr.as_bytes())
    } else {
        let kind = if dynamic { Kind::Dynamic } else { Kind::Static };
        table.find(kind, path, addr.as_bytes())
    }
}

/// Process manager: the processes running per class (retired classes
/// included: their processes still serve the previous generation); every
/// other application has none.
pub fn pm_processes(table: &Shared, classes: &[PmClass<'_>]) {
    let mut seen = [false; stats::MAX_APPS];
    let mut running = [0u32; stats::MAX_APPS];
    for c in classes {
        if let Some(slot) = pm_slot(table, c.dynamic, c.retired, c.path, &c.addr) {
            seen[slot] = true;
            running[slot] = running[slot].saturating_add(c.running);
        }
    }
    for (slot, n) in running.iter().enumerate().filter(|(s, _)| seen[*s]) {
        table.set_processes(slot, *n);
    }
    table.clear_processes_except(&seen);
}

/// Process manager: it restarted a process of a class.
pub fn pm_restarted(table: &Shared, dynamic: bool, path: &Path, addr: &AppAddr) {
    if let Some(slot) = pm_slot(table, dynamic, false, path, addr) {
        table.restarted(slot);
    }
}

/// Process manager: a process of a class exited without being asked to
/// (retired classes too: their processes still serve requests).
pub fn pm_died(table: &Shared, dynamic: bool, path: &Path, addr: &AppAddr, pid: i32, how: ChildExit) {
    if let Some(slot) = pm_slot(table, dynamic, true, path, addr) {
        table.died(slot, pid as u32, how, crate::sys::mono_ms());
    }
}

/// Request handler, after its application connection failed the way a
/// dying process fails it: the processes of the application in `slot` that
/// died since `since_ms` ([`crate::sys::mono_ms`]), waiting up to `wait`
/// for the process manager to reap them (it learns of a death a moment
/// after the connection breaks). Empty if none did.
pub fn deaths_since(slot: usize, since_ms: u64, wait: std::time::Duration) -> Vec<stats::Death> {
    let Some(t) = table() else { return Vec::new() };
    let until = Instant::now() + wait;
    loop {
        let found = t.deaths_since(slot, since_ms);
        if !found.is_empty() || Instant::now() >= until {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The words for `deaths` appended to a request's error line.
pub fn deaths_text(deaths: &[stats::Death]) -> String {
    let one = |d: &stats::Death| match d.how {
        ChildExit::Exited(code) => format!("pid {}, exit status {code}", d.pid),
        ChildExit::Signaled { signal, core_dumped } => format!(
            "pid {}, signal {signal} ({}){}",
            d.pid,
            crate::pm::table::signal_description(signal),
            if core_dumped { ", core dumped" } else { "" }
        ),
    };
    match deaths {
        [] => String::new(),
        [d] => format!(": the application process died during the request ({})", one(d)),
        more => format!(
            ": {} application processes died during the request ({})",
            more.len(),
            more.iter().map(one).collect::<Vec<_>>().join("; ")
        ),
    }
}

/// One row of the section: the counters and what the configuration adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub app: AppStats,
    /// Connections kept open to the application (connection reuse).
    pub kept: u32,
    /// Requests that took an idle kept connection, and requests that
    /// reported waiting for a process while connections were kept
    /// (`gateway::reuse`), since the application got its reuse slot.
    pub reuses: u64,
    pub waits: u64,
    /// An external server with several backends (issue 14): each one.
    pub backends: Vec<BackendRow>,
}

/// One backend of an external server with several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRow {
    pub addr: String,
    pub up: bool,
    /// Requests in flight to it now, all children.
    pub busy: u32,
    /// Requests sent to it (connections made), and connections that failed.
    pub requests: u64,
    pub failures: u64,
}

/// How mod_status asked for its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `?auto` (`AP_STATUS_SHORT`).
    Auto,
    Html,
    /// `?notable` (`AP_STATUS_NOTABLE`): HTML without tables.
    HtmlNoTable,
}

/// mod_status's hook: the FastCGI section.
pub fn write(state: Option<&ConfigState>, r: &mut Request, format: Format) {
    let Some(table) = table() else { return };
    let reuse = super::supervisor::reuse();
    let rows: Vec<Row> = table
        .snapshot()
        .into_iter()
        .map(|app| {
            let server = state.and_then(|cfg| {
                cfg.servers().iter().find(|s| {
                    let (k, p, a) = ident(s);
                    k == app.kind && p.as_os_str().as_bytes() == app.path.as_bytes() && a == app.addr
                })
            });
            let addrs = match server {
                Some(Server::Static(st)) => vec![st.connect_addr()],
                Some(Server::External(ext)) => ext.addrs.clone(),
                None => Vec::new(),
            };
            let shared = reuse.map(|r| r.shared());
            let slots: Vec<Option<usize>> = addrs.iter().map(|a| shared.and_then(|t| t.find(a))).collect();
            // Summed over the server's addresses (backends).
            let (kept, reuses, waits) = match shared {
                Some(t) => slots.iter().flatten().fold((0, 0, 0), |(k, r, w), &s| {
                    let (sr, sw) = t.reuse_counts(s);
                    (k + t.kept(s), r + sr, w + sw)
                }),
                None => (0, 0, 0),
            };
            let backends = match shared {
                Some(t) if addrs.len() > 1 => addrs
                    .iter()
                    .zip(&slots)
                    .map(|(a, slot)| {
                        let (busy, requests, failures, down) = slot.map_or((0, 0, 0, false), |s| t.backend_counts(s));
                        BackendRow {
                            addr: addr_text(a),
                            up: !down,
                            busy,
                            requests,
                            failures,
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Row {
                app,
                kept,
                reuses,
                waits,
                backends,
            }
        })
        .collect();
    let text = match format {
        Format::Auto => auto_lines(&rows),
        Format::Html => html_section(&rows, true),
        Format::HtmlNoTable => html_section(&rows, false),
    };
    r.rwrite(text.as_bytes());
}

/// A value on one `?auto` line: control characters would end the line.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The `?auto` block of every application, numbered from 0 (as
/// mod_proxy_balancer's `ProxyBalancer[N]…` lines).
pub fn auto_lines(rows: &[Row]) -> String {
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let a = &row.app;
        let _ = write!(
            out,
            "FastCgiApp[{n}]Name: {}\n\
             FastCgiApp[{n}]Type: {}\n\
             FastCgiApp[{n}]Processes: {}\n\
             FastCgiApp[{n}]Busy: {}\n\
             FastCgiApp[{n}]Requests: {}\n\
             FastCgiApp[{n}]Errors: {}\n\
             FastCgiApp[{n}]Restarts: {}\n\
             FastCgiApp[{n}]Address: {}\n\
             FastCgiApp[{n}]KeptConns: {}\n\
             FastCgiApp[{n}]AvgWaitMicros: {}\n\
             FastCgiApp[{n}]KeptConnReuses: {}\n\
             FastCgiApp[{n}]BacklogWaits: {}\n",
            one_line(&a.path),
            a.kind.name(),
            a.processes,
            a.busy,
            a.requests,
            a.errors,
            a.restarts,
            one_line(&a.addr),
            row.kept,
            a.avg_wait_us(),
            row.reuses,
            row.waits,
        );
        for (m, b) in row.backends.iter().enumerate() {
            let _ = write!(
                out,
                "FastCgiApp[{n}]Backend[{m}]Address: {}\n\
                 FastCgiApp[{n}]Backend[{m}]State: {}\n\
                 FastCgiApp[{n}]Backend[{m}]Busy: {}\n\
                 FastCgiApp[{n}]Backend[{m}]Requests: {}\n\
                 FastCgiApp[{n}]Backend[{m}]ConnectFailures: {}\n",
                one_line(&b.addr),
                if b.up { "up" } else { "down" },
                b.busy,
                b.requests,
                b.failures,
            );
        }
    }
    out
}

/// HTML-escapes `s` as `ap_escape_html` does (`<`, `>`, `&`, `"`), and `'`.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A wait in µs, for people.
fn wait_text(us: u64) -> String {
    if us < 1000 {
        format!("{us} &micro;s")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", us as f64 / 1_000_000.0)
    }
}

/// One backend of several, for people.
fn backend_text(b: &BackendRow) -> String {
    format!(
        "backend {}: {}, {} busy, {} request(s), {} failed connect(s)",
        escape_html(&b.addr),
        if b.up { "up" } else { "<b>down</b>" },
        b.busy,
        b.requests,
        b.failures
    )
}

/// The HTML section: one table row per application (`table`), else one
/// `<dt>` line each.
pub fn html_section(rows: &[Row], table: bool) -> String {
    let mut out = String::from("<hr />\n<h2>FastCGI applications</h2>\n");
    if rows.is_empty() {
        out.push_str("<p>No FastCGI application has been configured or started.</p>\n");
        return out;
    }
    if !table {
        out.push_str("<dl>\n");
        for row in rows {
            let a = &row.app;
            let _ = writeln!(
                out,
                "<dt>{} ({}, {}): {} process(es), {} busy, {} request(s), {} failed, {} restart(s), \
                 {} kept connection(s), average wait {}</dt>",
                escape_html(&a.path),
                a.kind.name(),
                escape_html(&a.addr),
                a.processes,
                a.busy,
                a.requests,
                a.errors,
                a.restarts,
                row.kept,
                wait_text(a.avg_wait_us()),
            );
            for b in &row.backends {
                let _ = writeln!(out, "<dd>{}</dd>", backend_text(b));
            }
        }
        out.push_str("</dl>\n");
        return out;
    }
    out.push_str(
        "<table border=\"0\">\n<tr><th>Application</th><th>Type</th><th>Address</th>\
         <th>Processes</th><th>Busy</th><th>Requests</th><th>Failed</th>\
         <th>Restarts</th><th>Kept conns</th><th>Avg wait</th></tr>\n",
    );
    for row in rows {
        let a = &row.app;
        let processes = if a.kind == Kind::External {
            "-".to_string()
        } else {
            a.processes.to_string()
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{processes}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_html(&a.path),
            a.kind.name(),
            escape_html(&a.addr),
            a.busy,
            a.requests,
            a.errors,
            a.restarts,
            row.kept,
            wait_text(a.avg_wait_us()),
        );
        for b in &row.backends {
            let _ = writeln!(out, "<tr><td></td><td colspan=\"9\">{}</td></tr>", backend_text(b));
        }
    }
    out.push_str(
        "</table>\n<p>Busy: requests in progress now. Avg wait: average time until the \
         application's first byte (connecting and waiting for a free process included).</p>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(slot: usize, kind: Kind, path: &str, requests: u64, errors: u64) -> Row {
        Row {
            app: AppStats {
                slot,
                kind,
                path: path.into(),
                addr: "unix:/ipc/x".into(),
                processes: 2,
                busy: 1,
                requests,
                errors,
                restarts: 3,
                wait_us: 1000,
            },
            kept: 4,
            reuses: 70,
            waits: 2,
            backends: Vec::new(),
        }
    }

    // Issue 14: each backend of a server with several, in ?auto and HTML.
    #[test]
    fn backends_of_an_external_server_are_listed() {
        let mut r = row(0, Kind::External, "/srv/e.fcgi", 9, 1);
        r.backends = vec![
            BackendRow {
                addr: "127.0.0.1:9000".into(),
                up: true,
                busy: 2,
                requests: 7,
                failures: 0,
            },
            BackendRow {
                addr: "unix:/run/<b>.sock".into(),
                up: false,
                busy: 0,
                requests: 3,
                failures: 1,
            },
        ];
        let text = auto_lines(std::slice::from_ref(&r));
        for line in [
            "FastCgiApp[0]Backend[0]Address: 127.0.0.1:9000",
            "FastCgiApp[0]Backend[0]State: up",
            "FastCgiApp[0]Backend[0]Busy: 2",
            "FastCgiApp[0]Backend[0]Requests: 7",
            "FastCgiApp[0]Backend[0]ConnectFailures: 0",
            "FastCgiApp[0]Backend[1]Address: unix:/run/<b>.sock",
            "FastCgiApp[0]Backend[1]State: down",
            "FastCgiApp[0]Backend[1]ConnectFailures: 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
        }
        let html = html_section(std::slice::from_ref(&r), true);
        assert!(
            html.contains("backend unix:/run/&lt;b&gt;.sock: <b>down</b>, 0 busy, 3 request(s), 1 failed connect(s)")
        );
        assert!(html.contains("backend 127.0.0.1:9000: up, 2 busy, 7 request(s), 0 failed connect(s)"));
    }

    #[test]
    fn auto_lines_numbered_from_zero_with_exact_keys() {
        let rows = [
            row(5, Kind::Static, "/srv/a.fcgi", 11, 1),
            row(2, Kind::External, "/srv/b\nX: 1", 3, 0),
        ];
        let text = auto_lines(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 24);
        assert_eq!(
            &lines[..7],
            &[
                "FastCgiApp[0]Name: /srv/a.fcgi",
                "FastCgiApp[0]Type: static",
                "FastCgiApp[0]Processes: 2",
                "FastCgiApp[0]Busy: 1",
                "FastCgiApp[0]Requests: 11",
                "FastCgiApp[0]Errors: 1",
                "FastCgiApp[0]Restarts: 3",
            ]
        );
        // 1000 µs over 10 finished requests.
        assert_eq!(lines[9], "FastCgiApp[0]AvgWaitMicros: 100");
        assert_eq!(lines[8], "FastCgiApp[0]KeptConns: 4");
        assert_eq!(lines[10], "FastCgiApp[0]KeptConnReuses: 70");
        assert_eq!(lines[11], "FastCgiApp[0]BacklogWaits: 2");
        // A newline in a path cannot forge a line.
        assert_eq!(lines[12], "FastCgiApp[1]Name: /srv/b?X: 1");
        assert_eq!(lines[13], "FastCgiApp[1]Type: external");
        assert_eq!(auto_lines(&[]), "");
    }

    #[test]
    fn html_escapes_and_names_every_application() {
        let rows = [
            row(0, Kind::Static, "/srv/<script>&\"'.fcgi", 1, 0),
            row(1, Kind::Dynamic, "/srv/d.fcgi", 0, 0),
        ];
        let html = html_section(&rows, true);
        assert!(html.contains("<td>/srv/&lt;script&gt;&amp;&quot;&#39;.fcgi</td><td>static</td>"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("<td>/srv/d.fcgi</td><td>dynamic</td>"));
        assert_eq!(html.matches("<tr><td>").count(), 2);
        assert!(html_section(&[], true).contains("No FastCGI application"));
        let plain = html_section(&rows, false);
        assert!(!plain.contains("<table"));
        assert!(plain.contains(
            "<dt>/srv/d.fcgi (dynamic, unix:/ipc/x): 2 process(es), 1 busy, 0 request(s), 0 failed, \
             3 restart(s), 4 kept connection(s), average wait 0 &micro;s</dt>"
        ));
        assert!(plain.contains("<dt>/srv/&lt;script&gt;"));
        assert_eq!(wait_text(999), "999 &micro;s");
        assert_eq!(wait_text(1500), "1.5 ms");
        assert_eq!(wait_text(2_500_000), "2.50 s");
    }

    #[test]
    fn failures_that_are_the_applications() {
        let err = |failure| ExchangeError {
            failure,
            header_bytes: 0,
            body_started: false,
            head: None,
            abort: Default::default(),
        };
        assert!(!is_app_failure(&err(Failure::ClientGone)));
        assert!(!is_app_failure(&err(Failure::ClientBody(413))));
        assert!(is_app_failure(&err(Failure::IdleTimeout)));
        assert!(is_app_failure(&err(Failure::Incomplete)));
        assert!(is_app_failure(&err(Failure::Truncated)));
        assert!(is_app_failure(&err(Failure::NotHttp)));
    }

    #[test]
    fn process_manager_reports() {
        let table: &'static Shared = crate::sys::shm::map_shared().unwrap();
        let sock = AppAddr::Unix("/ipc/s".into());
        let st = table.publish(Kind::Static, b"/st", b"unix:/ipc/s").unwrap();
        let class = |dynamic, retired, path: &'static str, running| PmClass {
            dynamic,
            retired,
            path: Path::new(path),
            addr: sock.clone(),
            running,
        };
        // An active and a retired class of one application add up; a
        // retired class of an application no longer configured is not
        // listed again; an active dynamic class is.
        pm_processes(
            table,
            &[
                class(false, false, "/st", 2),
                class(false, true, "/st", 1),
                class(false, true, "/removed", 1),
                class(true, false, "/dyn", 1),
            ],
        );
        let snap = table.snapshot();
        assert_eq!(snap.len(), 2, "{snap:?}");
        assert_eq!(snap.iter().find(|a| a.slot == st).unwrap().processes, 3);
        let d = snap.iter().find(|a| a.kind == Kind::Dynamic).unwrap();
        assert_eq!(
            (d.path.as_str(), d.addr.as_str(), d.processes),
            ("/dyn", "unix:/ipc/s", 1)
        );
        pm_restarted(table, false, Path::new("/st"), &sock);
        pm_restarted(table, false, Path::new("/removed"), &sock);
        pm_processes(table, &[class(false, false, "/st", 2)]);
        let snap = table.snapshot();
        assert_eq!(snap.len(), 2);
        let a = snap.iter().find(|a| a.slot == st).unwrap();
        assert_eq!((a.processes, a.restarts), (2, 1));
        assert_eq!(snap.iter().find(|a| a.kind == Kind::Dynamic).unwrap().processes, 0);
    }

    #[test]
    fn addresses_as_shown() {
        assert_eq!(addr_text(&AppAddr::Unix("/ipc/s".into())), "unix:/ipc/s");
        assert_eq!(
            addr_text(&AppAddr::Tcp("127.0.0.1:9000".parse().unwrap())),
            "127.0.0.1:9000"
        );
    }
}
