//! Default implementations of the [`ParseEnv`](super::ParseEnv) hooks, in safe
//! `std` only: name resolution through `ToSocketAddrs`, the process
//! environment, and account look-ups read from `/etc/passwd` and `/etc/group`.
//! The glue may replace the account hooks with NSS-aware ones
//! (`getpwnam`/`ap_uname2id`); these files cover the common local case.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `host` (a name or an IP literal) with the system resolver.
pub fn system_resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    (host, port).to_socket_addrs().map(Iterator::collect)
}

/// `getenv` of httpd's own environment (for `-initial-env NAME`).
pub fn system_getenv(name: &str) -> Option<String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return None;
    }
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// The colon-separated fields of the first line of `content` whose field
/// `key_index` equals `key`.
pub(crate) fn find_entry<'a>(content: &'a str, key_index: usize, key: &str) -> Option<Vec<&'a str>> {
    content
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f.get(key_index) == Some(&key))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Numeric uid of a user name, from `/etc/passwd`.
pub fn system_uid_by_name(name: &str) -> Option<u32> {
    find_entry(&read("/etc/passwd"), 0, name)?.get(2)?.parse().ok()
}

/// Numeric gid of a group name, from `/etc/group`.
pub fn system_gid_by_name(name: &str) -> Option<u32> {
    find_entry(&read("/etc/group"), 0, name)?.get(2)?.parse().ok()
}

/// User name of a uid, from `/etc/passwd`.
pub fn system_user_by_uid(uid: u32) -> Option<String> {
    Some(find_entry(&read("/etc/passwd"), 2, &uid.to_string())?[0].to_string())
}

/// Group name of a gid, from `/etc/group`.
pub fn system_group_by_gid(gid: u32) -> Option<String> {
    Some(find_entry(&read("/etc/group"), 2, &gid.to_string())?[0].to_string())
}

/// Members listed for group `gid` in `/etc/group`.
pub(crate) fn group_members(gid: u32) -> Vec<String> {
    members_of(&read("/etc/group"), gid)
}

pub(crate) fn members_of(group_file: &str, gid: u32) -> Vec<String> {
    find_entry(group_file, 2, &gid.to_string())
        .and_then(|f| {
            f.get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
        })
        .unwrap_or_default()
}
