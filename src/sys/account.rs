//! User and group look-ups through the C library (`getpwnam_r`,
//! `getpwuid_r`, `getgrnam_r`, `getgrgid_r`, via nix), so that every NSS
//! source — LDAP, sssd, systemd's userdb — is seen, not only `/etc/passwd`
//! and `/etc/group` (issue 12).
//!
//! Answers (including "no such user") are cached in the process: httpd's
//! parent forgets them at the start of every configuration pass
//! ([`forget_cached`]), and its children inherit what the configuration
//! looked up and add what their requests need, so a request does not ask
//! NSS (with the files backend: open and read `/etc/passwd`) again. A
//! change to the user database is seen at the next restart, as httpd
//! itself sees User/Group and SuexecUserGroup.

use nix::unistd::{Gid, Group, Uid, User};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Query {
    UidOfName(String),
    GidOfName(String),
    NameOfUid(u32),
    GroupOf(u32),
}

#[derive(Clone)]
enum Answer {
    Id(Option<u32>),
    Name(Option<String>),
    /// Group name and members.
    Group(Option<(String, Vec<String>)>),
}

static CACHE: Mutex<Option<HashMap<Query, Answer>>> = Mutex::new(None);

fn cached(q: Query, look_up: impl FnOnce(&Query) -> Answer) -> Answer {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(a) = map.get(&q) {
        return a.clone();
    }
    // (Looked up under the lock: NSS calls are rare here, and two threads
    // asking for the same id at once ask NSS once.)
    let a = look_up(&q);
    map.insert(q, a.clone());
    a
}

/// Forgets every cached answer (httpd's parent, at the start of a
/// configuration pass).
pub fn forget_cached() {
    *CACHE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

fn group(gid: u32) -> Option<(String, Vec<String>)> {
    match cached(Query::GroupOf(gid), |_| {
        Answer::Group(
            Group::from_gid(Gid::from_raw(gid))
                .ok()
                .flatten()
                .map(|g| (g.name, g.mem)),
        )
    }) {
        Answer::Group(g) => g,
        _ => None,
    }
}

/// The uid of user `name`.
pub fn uid_by_name(name: &str) -> Option<u32> {
    match cached(Query::UidOfName(name.to_string()), |_| {
        Answer::Id(User::from_name(name).ok().flatten().map(|u| u.uid.as_raw()))
    }) {
        Answer::Id(id) => id,
        _ => None,
    }
}

/// The gid of group `name`.
pub fn gid_by_name(name: &str) -> Option<u32> {
    match cached(Query::GidOfName(name.to_string()), |_| {
        Answer::Id(Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw()))
    }) {
        Answer::Id(id) => id,
        _ => None,
    }
}

/// The name of user `uid`.
pub fn user_by_uid(uid: u32) -> Option<String> {
    match cached(Query::NameOfUid(uid), |_| {
        Answer::Name(User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name))
    }) {
        Answer::Name(n) => n,
        _ => None,
    }
}

/// The name of group `gid`.
pub fn group_by_gid(gid: u32) -> Option<String> {
    group(gid).map(|(name, _)| name)
}

/// The members listed for group `gid` (its supplementary members; users
/// whose primary group it is are not listed, as in `/etc/group`).
pub fn group_members(gid: u32) -> Vec<String> {
    group(gid).map(|(_, mem)| mem).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_system_and_caches() {
        assert_eq!(uid_by_name("root"), Some(0));
        assert_eq!(user_by_uid(0).as_deref(), Some("root"));
        assert_eq!(gid_by_name("root"), Some(0));
        assert_eq!(group_by_gid(0).as_deref(), Some("root"));
        assert_eq!(uid_by_name("no-such-user-fcgi-test"), None);
        assert_eq!(user_by_uid(4_000_000_123), None);
        // Cached: the answers are in the table (also the negative ones).
        let cache = CACHE.lock().unwrap();
        let map = cache.as_ref().unwrap();
        assert!(map.contains_key(&Query::NameOfUid(4_000_000_123)));
        assert!(map.contains_key(&Query::UidOfName("root".into())));
    }
}
