//! Which requests are FastCGI and for which application (reference
//! section 3): the fixups rule RT-11, server lookup RT-10 (with the
//! RT-13 fix), and the dynamic-application checks RT-14.

use crate::config::ConfigState;
use crate::config::Server;
use crate::httpd::{Level, Request};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const HANDLER: &std::ffi::CStr = c"fastcgi-script";

/// The defined server for this request, if any: the one whose path is
/// `r->filename` or a parent of it (RT-10).
///
/// An external server's path usually does not exist on disk. httpd's
/// directory walk stops at the first missing component, so for a server
/// below a missing directory (`/docroot/nodir/app.fcgi`, legacy RT-13) it
/// would end at `/docroot/nodir`; the `dirwalk_stat` hook ([`dirwalk_entry`]) makes the walk continue
/// down to the server's path instead, applying the `<Directory>` and
/// `<Files>` sections of that path on the way. (A former fix matched
/// `r->filename + PATH_INFO` here instead, which skipped those sections:
/// issue 10, finding 9. A request whose walk did not reach the server's
/// path is not routed to it.)
pub fn find_server<'s>(state: &'s ConfigState, r: &Request) -> Option<&'s Server> {
    let filename = r.filename()?;
    state.find_server(Path::new(OsStr::from_bytes(filename)))
}

/// What the directory walk is told about a path that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtualEntry {
    /// A missing directory above a server's path: the walk goes on.
    Directory,
    /// The server's path itself: the walk stops there, the rest of the
    /// URI becomes PATH_INFO.
    File,
}

/// The `dirwalk_stat` hook's decision (issue 10, finding 9): what a path the
/// walk is about to stat (`filename`, with `rest` still to walk) is in the
/// virtual tree of the defined servers, if the request leads to or below a
/// server's path (RT-10). `None` for everything else, including a path
/// leading elsewhere through the same missing directories: the walk ends
/// there as before.
pub fn virtual_entry<'a>(
    server_paths: impl IntoIterator<Item = &'a Path>,
    filename: &[u8],
    rest: &[u8],
) -> Option<VirtualEntry> {
    if filename.len() < 2 || filename.ends_with(b"/") || !filename.starts_with(b"/") {
        return None;
    }
    let mut entry = None;
    for s in server_paths {
        let s = s.as_os_str().as_bytes();
        if filename == s {
            // The walk's remaining path starts with '/' (or is empty).
            if rest.is_empty() || rest.starts_with(b"/") {
                return Some(VirtualEntry::File);
            }
        } else if s.len() > filename.len() && s.starts_with(filename) && s[filename.len()] == b'/' {
            // filename + rest is the server path or below it.
            let tail = &s[filename.len()..];
            if rest.starts_with(tail) && (rest.len() == tail.len() || rest[tail.len()] == b'/') {
                entry = Some(VirtualEntry::Directory);
            }
        }
    }
    entry
}

/// For the `dirwalk_stat` hook: what the walk should be told about the
/// path it is about to stat (`r->filename`, with `r->path_info` still to
/// walk) **if that path does not exist** ([`virtual_entry`]); the caller
/// stats it and uses this only on ENOENT. `None`: leave it to httpd.
pub fn dirwalk_entry(state: &ConfigState, r: &Request) -> Option<VirtualEntry> {
    let filename = r.filename()?;
    let rest = r.path_info().unwrap_or(b"");
    virtual_entry(state.servers().iter().map(Server::path), filename, rest)
}

/// The fixups hook (RT-11): any request whose file belongs to a defined
/// server is handled by `fastcgi-script`, whatever handler was chosen, so
/// an application file is never served as plain text.
pub fn fixups(state: &ConfigState, r: &mut Request) -> bool {
    if find_server(state, r).is_some() {
        r.set_handler(HANDLER);
        true
    } else {
        false
    }
}

/// Why a would-be dynamic application was refused, with its status.
pub struct Refusal {
    pub status: i32,
    pub errno: i32,
    pub message: String,
}

/// RT-14 checks for a `fastcgi-script` request with no defined server, in
/// legacy order: exists (404), not a directory and executable by the
/// server's User (403), `Options ExecCGI` (403).
pub fn check_dynamic(state: &ConfigState, r: &Request) -> Result<(), Refusal> {
    let filename = String::from_utf8_lossy(r.filename().unwrap_or(b"")).into_owned();
    check_dynamic_file(state, Path::new(&filename))?;
    let forced_cgi = r.notes().get(b"alias-forced-type") == Some(b"cgi-script".as_slice());
    if !r.allows_exec_cgi() && !forced_cgi {
        return Err(Refusal {
            status: 403,
            errno: 0,
            message: format!(
                "FastCGI: \"ExecCGI Option\" is off in this directory: {}",
                String::from_utf8_lossy(r.uri())
            ),
        });
    }
    Ok(())
}

/// The file checks of RT-14 alone (exists: 404; not a directory and
/// executable by the server's User: 403), for a would-be dynamic
/// application named by path (also the authorizer directives, AU-11).
pub fn check_dynamic_file(state: &ConfigState, file: &Path) -> Result<(), Refusal> {
    let filename = file.to_string_lossy().into_owned();
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) => {
            return Err(Refusal {
                status: 404,
                errno: e.raw_os_error().unwrap_or(0),
                message: format!("FastCGI: stat() of \"{filename}\" failed"),
            })
        }
    };
    let who = state.fcgi_identity();
    let info = meta_info(&meta);
    let in_group = crate::config::FileProbe::user_in_group(&crate::config::OsProbe, &who.user, info.gid);
    let check = if info.is_dir {
        Err("script is a directory!".to_string())
    } else if state.wrapper_path().is_some() {
        Ok(())
    } else {
        crate::config::executable_by(&info, who.uid, who.gid, in_group)
            .map_err(|r| format!("access for server (uid {}, gid {}) not allowed: {r}", who.uid, who.gid))
    };
    if let Err(reason) = check {
        return Err(Refusal {
            status: 403,
            errno: 0,
            message: format!("FastCGI: invalid (dynamic) server \"{filename}\": {reason}"),
        });
    }
    Ok(())
}

fn meta_info(m: &std::fs::Metadata) -> crate::config::FileInfo {
    use std::os::unix::fs::MetadataExt;
    crate::config::FileInfo {
        is_dir: m.is_dir(),
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
    }
}

/// Logs a refusal and returns its status.
pub fn refuse(r: &Request, why: Refusal) -> i32 {
    r.log(Level::Error, why.errno, &why.message);
    why.status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(servers: &[&str], filename: &str, rest: &str) -> Option<VirtualEntry> {
        virtual_entry(servers.iter().map(Path::new), filename.as_bytes(), rest.as_bytes())
    }

    #[test]
    fn walk_goes_down_to_the_server_path() {
        let s = ["/www/missing/api"];
        // The initial stat of the whole path, then the walk component by component.
        assert_eq!(entry(&s, "/www/missing/api/x", ""), None);
        assert_eq!(entry(&s, "/www", "/missing/api/x"), Some(VirtualEntry::Directory));
        assert_eq!(entry(&s, "/www/missing", "/api/x"), Some(VirtualEntry::Directory));
        assert_eq!(entry(&s, "/www/missing/api", "/x"), Some(VirtualEntry::File));
        assert_eq!(entry(&s, "/www/missing/api", ""), Some(VirtualEntry::File));
        assert_eq!(entry(&s, "/www/missing/api", "/"), Some(VirtualEntry::File));
        // The request for the server path itself, stat'ed whole.
        assert_eq!(entry(&s, "/www/missing", "/api"), Some(VirtualEntry::Directory));
    }

    #[test]
    fn other_paths_are_left_alone() {
        let s = ["/www/missing/api"];
        // Elsewhere below the same missing directory.
        assert_eq!(entry(&s, "/www/missing", "/other"), None);
        assert_eq!(entry(&s, "/www/missing", "/apiary"), None);
        assert_eq!(entry(&s, "/www/missing", ""), None);
        assert_eq!(entry(&s, "/www/missing/apix", ""), None);
        assert_eq!(entry(&s, "/www/miss", "/ing/api"), None);
        // Below the server path (the walk stopped at it already).
        assert_eq!(entry(&s, "/www/missing/api/x", "/y"), None);
        // Trailing slashes and relative names are httpd's business.
        assert_eq!(entry(&s, "/www/missing/", "api"), None);
        assert_eq!(entry(&s, "www/missing", "/api"), None);
        assert_eq!(entry(&[], "/www/missing", "/api"), None);
    }

    #[test]
    fn the_server_matching_the_target_decides() {
        let s = ["/www/a/b", "/www/a/c/d"];
        assert_eq!(entry(&s, "/www/a", "/c/d/e"), Some(VirtualEntry::Directory));
        assert_eq!(entry(&s, "/www/a/c", "/d/e"), Some(VirtualEntry::Directory));
        assert_eq!(entry(&s, "/www/a/c/d", "/e"), Some(VirtualEntry::File));
        assert_eq!(entry(&s, "/www/a/b", "/e"), Some(VirtualEntry::File));
        assert_eq!(entry(&s, "/www/a/c", "/x"), None);
    }
}
