//! Helpers shared by the integration tests that start applications and look at the
//! processes the module starts (static, dynamic and authorizer applications).
#![allow(dead_code)]

use super::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// md5 hex of `data` (through coreutils' md5sum).
pub fn md5_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run md5sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().expect("md5sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The fields of /proc/<pid>/stat after the command name: [0] = state (field 3),
/// [1] = ppid, [2] = pgrp, [3] = session, ..., [19] = starttime (field 22).
pub fn stat_fields(pid: i32) -> Vec<String> {
    let st = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    match st.rfind(')') {
        Some(i) => st[i + 1..].split_whitespace().map(String::from).collect(),
        None => Vec::new(),
    }
}

/// Field `i` of /proc/<pid>/stat after the command name (0: state), as a number; -1
/// if the process or the field is not there.
fn stat_num(pid: i32, i: usize) -> i64 {
    stat_fields(pid).get(i).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

pub fn ppid_of(pid: i32) -> i32 {
    stat_num(pid, 1) as i32
}

pub fn pgrp_of(pid: i32) -> i32 {
    stat_num(pid, 2) as i32
}

pub fn session_of(pid: i32) -> i32 {
    stat_num(pid, 3) as i32
}

/// The controlling terminal's device number (0: none).
pub fn tty_of(pid: i32) -> i64 {
    stat_num(pid, 4)
}

/// (Uid line, Gid line) of /proc/<pid>/status as number lists.
pub fn ids(pid: i32) -> (Vec<u32>, Vec<u32>) {
    let st = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let nums = |key: &str| -> Vec<u32> {
        st.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|r| r.split_whitespace().filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default()
    };
    (nums("Uid:"), nums("Gid:"))
}

pub fn assert_www(pid: i32, what: &str) {
    let (u, g) = ids(pid);
    assert!(
        !u.is_empty() && u.iter().all(|&x| x == WWW_UID) && !g.is_empty() && g.iter().all(|&x| x == WWW_GID),
        "{what} (pid {pid}) should run as www-data (33/33), has Uid {u:?} Gid {g:?}"
    );
}

/// The process environment, sorted.
pub fn environ(pid: i32) -> Vec<String> {
    let raw = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let mut v: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    v.sort();
    v
}

pub fn cwd_of(pid: i32) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default()
}

/// Inode of the socket on fd `fd` of `pid`.
pub fn fd_socket_inode(pid: i32, fd: i32) -> Option<u64> {
    let l = fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let l = l.to_string_lossy();
    l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Inode of the listening unix socket bound at `path` (/proc/net/unix).
pub fn unix_listener_inode(path: &Path) -> Option<u64> {
    let want = s(path);
    fs::read_to_string("/proc/net/unix")
        .ok()?
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode Path; St 01 = listening.
            if f.len() >= 8 && f[7] == want && f[5] == "01" {
                f[6].parse().ok()
            } else {
                None
            }
        })
}

pub fn ps_of(pids: &[i32]) -> String {
    if pids.is_empty() {
        return "(no processes)".into();
    }
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    let out = Command::new("ps")
        .args(["-o", "pid,ppid,pgid,sid,user,stat,etimes,args", "-p", &list.join(",")])
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("(ps failed: {e})"),
    }
}

/// Any live process (anywhere) running `app`.
pub fn all_app_processes(app: &Path) -> Vec<i32> {
    let want = s(app);
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if pid_alive(p) && pid_cmdline(p).is_some_and(|c| c.split(' ').any(|w| w == want)) {
                out.push(p);
            }
        }
    }
    out.sort_unstable();
    out
}

/// `ps` of apache and all its descendants, for assertion messages.
pub fn ps_tree(apache: &Apache) -> String {
    ps_of(&[vec![apache.pid()], apache.descendant_pids()].concat())
}

/// The last lines of the error log.
pub fn log_tail(apache: &Apache) -> String {
    let log = apache.error_log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Live children of apache whose command line says `fcgi-pm`.
pub fn pm_pids(apache: &Apache) -> Vec<i32> {
    apache
        .child_pids()
        .into_iter()
        .filter(|&p| pid_cmdline(p).is_some_and(|c| c.contains("fcgi-pm")))
        .collect()
}

pub fn brief(r: &Response) -> String {
    let t = r.text();
    let body: String = t.chars().take(300).collect();
    format!(
        "status {} complete={} timed_out={} error={:?} in {:?}\n{}\n--- body ---\n{}",
        r.status, r.complete, r.timed_out, r.error, r.elapsed, r.raw_head, body
    )
}

pub fn served_by(r: &Response) -> Option<i32> {
    r.header("X-Probe-Pid").and_then(|v| v.trim().parse().ok())
}

/// Apache with ServerRoot = `dir` (htdocs = `<dir>/htdocs`) and `extra` configuration.
pub fn conf_in(dir: &TestDir, extra: &str) -> ApacheConf {
    ApacheConf::new().root(dir.path()).extra(extra)
}

pub fn start_in(dir: &TestDir, extra: &str) -> Apache {
    Apache::start(&conf_in(dir, extra))
}

/// Copies the probe binary to `<dir>/htdocs/<rel>` (mode 0755); returns the path.
pub fn probe_at(dir: &TestDir, rel: &str) -> PathBuf {
    let dst = dir.join("htdocs").join(rel);
    if let Some(p) = dst.parent() {
        fs::create_dir_all(p).expect("mkdir");
        let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
    }
    fs::copy(probe_binary(), &dst).unwrap_or_else(|e| panic!("copy probe to {}: {e}", dst.display()));
    fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).expect("chmod probe");
    dst
}

pub fn evidence(apache: &Apache) -> String {
    format!(
        "--- ps ---\n{}--- error_log (tail) ---\n{}",
        ps_tree(apache),
        log_tail(apache)
    )
}
