//! Default implementations of the [`ParseEnv`](super::ParseEnv) hooks:
//! name resolution through `ToSocketAddrs`, the process environment, and
//! account look-ups through the C library's NSS ([`crate::sys::account`],
//! cached per configuration pass; reading `/etc/passwd` and `/etc/group`
//! directly missed LDAP/sssd users and re-read the files on every dynamic
//! request, issue 12).

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
#[cfg(test)]
pub(crate) fn find_entry<'a>(content: &'a str, key_index: usize, key: &str) -> Option<Vec<&'a str>> {
    content
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f.get(key_index) == Some(&key))
}

/// Numeric uid of a user name.
pub fn system_uid_by_name(name: &str) -> Option<u32> {
    crate::sys::account::uid_by_name(name)
}

/// Numeric gid of a group name.
pub fn system_gid_by_name(name: &str) -> Option<u32> {
    crate::sys::account::gid_by_name(name)
}

/// User name of a uid.
pub fn system_user_by_uid(uid: u32) -> Option<String> {
    crate::sys::account::user_by_uid(uid)
}

/// Group name of a gid.
pub fn system_group_by_gid(gid: u32) -> Option<String> {
    crate::sys::account::group_by_gid(gid)
}

/// Members listed for group `gid`.
pub(crate) fn group_members(gid: u32) -> Vec<String> {
    crate::sys::account::group_members(gid)
}

#[cfg(test)]
pub(crate) fn members_of(group_file: &str, gid: u32) -> Vec<String> {
    find_entry(group_file, 2, &gid.to_string())
        .and_then(|f| {
            f.get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
        })
        .unwrap_or_default()
}
