//! The user argument a dynamic application's wrapper gets for a request's
//! suexec identity (`SuexecUserGroup`, `~user` directories).
//!
//! The name when the C library (NSS: files, LDAP, sssd …) knows the uid —
//! looked up once per process, not per request ([`crate::sys::account`]) —
//! else the number itself, as httpd's own suexec path passes it
//! (`ap_os_create_privileged_process`: `"<uid>"` or `"~<uid>"`), which
//! suexec resolves with `getpwuid`. (The earlier `#<uid>` is what httpd's
//! *directives* accept, but suexec takes it for a name and refuses it.)

/// `uid`, as the wrapper's user argument; `~` first for a user directory.
pub fn wrapper_user(uid: u32, userdir: bool) -> String {
    let name = crate::sys::account::user_by_uid(uid).unwrap_or_else(|| uid.to_string());
    if userdir {
        format!("~{name}")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn known_users_by_name_unknown_by_number() {
        assert_eq!(wrapper_user(0, false), "root");
        assert_eq!(wrapper_user(0, true), "~root");
        // No such user anywhere: the number, which suexec looks up itself.
        assert_eq!(wrapper_user(3_999_999_001, false), "3999999001");
        assert_eq!(wrapper_user(3_999_999_001, true), "~3999999001");
    }

    /// A user only NSS knows (not in /etc/passwd): a systemd userdb
    /// drop-in record, served by nss-systemd (`passwd: files systemd`).
    /// Skipped, saying so, where nss-systemd is not configured.
    #[test]
    fn a_user_only_nss_knows_is_resolved() {
        let nss = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
        let systemd = nss
            .lines()
            .any(|l| l.starts_with("passwd:") && l.split_whitespace().any(|w| w == "systemd"));
        if !systemd || !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root and nss-systemd in /etc/nsswitch.conf");
            return;
        }
        const UID: u32 = 61_234;
        const NAME: &str = "fcgi-nss-test";
        assert!(
            !std::fs::read_to_string("/etc/passwd").unwrap().contains(NAME),
            "the test user must not be in /etc/passwd"
        );
        let dir = Path::new("/run/userdb");
        let made_dir = !dir.exists();
        std::fs::create_dir_all(dir).unwrap();
        let record = dir.join(format!("{NAME}.user"));
        let by_uid = dir.join(format!("{UID}.user"));
        std::fs::write(
            &record,
            format!(r#"{{"userName":"{NAME}","uid":{UID},"gid":{UID},"disposition":"regular","homeDirectory":"/nonexistent","shell":"/usr/sbin/nologin"}}"#),
        )
        .unwrap();
        let _ = std::fs::remove_file(&by_uid);
        std::os::unix::fs::symlink(format!("{NAME}.user"), &by_uid).unwrap();
        let got = (wrapper_user(UID, false), crate::config::system_uid_by_name(NAME));
        let _ = std::fs::remove_file(&by_uid);
        let _ = std::fs::remove_file(&record);
        if made_dir {
            let _ = std::fs::remove_dir(dir);
        }
        assert_eq!(got, (NAME.to_string(), Some(UID)));
    }
}
