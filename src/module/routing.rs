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

/// The defined server for this request, if any. Looks at `r->filename`
/// first; if nothing matches and there is path info, at
/// `filename + path_info` — httpd stops its directory walk at the first
/// missing component, so an external server below a directory that does
/// not exist would otherwise never match (legacy RT-13, fixed). On such a
/// match the request's filename and path info are re-split at the
/// server's path.
pub fn find_server<'s>(state: &'s ConfigState, r: &mut Request) -> Option<&'s Server> {
    let filename = r.filename()?.to_vec();
    if let Some(s) = state.find_server(Path::new(OsStr::from_bytes(&filename))) {
        return Some(s);
    }
    let info = r.path_info().filter(|p| !p.is_empty())?.to_vec();
    let mut full = filename;
    full.extend_from_slice(&info);
    let server = state.find_server(Path::new(OsStr::from_bytes(&full)))?;
    let spath = server.path().as_os_str().as_bytes();
    if full.len() >= spath.len() && full.starts_with(spath) {
        let rest = full[spath.len()..].to_vec();
        r.set_filename(spath);
        r.set_path_info(&rest);
    }
    Some(server)
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
