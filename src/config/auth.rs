//! Per-directory authorizer directives (2.7, CFG-45, CFG-46) and their merge
//! (SG-8, fixing AU-26).

use std::path::PathBuf;

use super::paths::{executable_by, normalize_path, strerror, FileProbe};
use super::{ConfigError, ConfigState};

/// One `FastCgiAuthenticator`/`FastCgiAuthorizer`/`FastCgiAccessChecker`
/// setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSpec {
    /// Absolute (ServerRoot-relative when given relative) application path.
    pub path: PathBuf,
    /// `-compat`: only `Variable-*` headers are exported on success (AU-22).
    pub compat: bool,
}

/// The three authorizer phases (6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthRole {
    Authenticator,
    Authorizer,
    AccessChecker,
}

impl AuthRole {
    pub const ALL: [AuthRole; 3] = [AuthRole::Authenticator, AuthRole::Authorizer, AuthRole::AccessChecker];

    /// The role whose application directive is `name`
    /// (`FastCgiAuthenticator`, ...), case-insensitively.
    pub fn from_directive(name: &str) -> Option<AuthRole> {
        AuthRole::ALL
            .into_iter()
            .find(|r| r.directive().eq_ignore_ascii_case(name))
    }

    /// The role whose `...Authoritative` flag directive is `name`.
    pub fn from_authoritative_directive(name: &str) -> Option<AuthRole> {
        AuthRole::ALL
            .into_iter()
            .find(|r| r.authoritative_directive().eq_ignore_ascii_case(name))
    }

    pub fn directive(self) -> &'static str {
        match self {
            AuthRole::Authenticator => "FastCgiAuthenticator",
            AuthRole::Authorizer => "FastCgiAuthorizer",
            AuthRole::AccessChecker => "FastCgiAccessChecker",
        }
    }

    pub fn authoritative_directive(self) -> &'static str {
        match self {
            AuthRole::Authenticator => "FastCgiAuthenticatorAuthoritative",
            AuthRole::Authorizer => "FastCgiAuthorizerAuthoritative",
            AuthRole::AccessChecker => "FastCgiAccessCheckerAuthoritative",
        }
    }

    /// Value of the `FCGI_APACHE_ROLE` variable sent to the application.
    pub fn apache_role(self) -> &'static str {
        match self {
            AuthRole::Authenticator => "AUTHENTICATOR",
            AuthRole::Authorizer => "AUTHORIZER",
            AuthRole::AccessChecker => "ACCESS_CHECKER",
        }
    }
}

/// Parses the arguments of an authorizer directive (`TAKE12`: httpd has
/// already checked the argument count).
///
/// The path check of CFG-46 is made when the path is not an already-defined
/// static/external server (RT-10): it must not be a directory and, without a
/// wrapper, must be executable by the User/Group httpd runs as (legacy used
/// 0/0 when no FastCGI server directive preceded it; fixed).
///
/// **Lazy resolution (deliberate):** a path that does not exist is accepted.
/// It may name a `FastCgiExternalServer` defined later in the file (legacy
/// refused that, forcing an order); if it names nothing, each request fails at
/// run time as a dynamic application would (404 + log line).
pub fn parse_auth(
    directive_name: &str,
    path: &str,
    opt: Option<&str>,
    state: &ConfigState,
    fs: &dyn FileProbe,
) -> Result<AuthSpec, ConfigError> {
    let abs = normalize_path(&state.env().server_root, path, false);
    let shown = abs.display().to_string();
    if state.find_server(&abs).is_none() {
        let not_usable = |reason: String| ConfigError::PathNotUsable {
            directive: directive_name.to_string(),
            path: shown.clone(),
            reason,
        };
        match fs.stat(&abs) {
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(not_usable(format!("stat({shown}) failed: {}", strerror(&e)))),
            Ok(info) if info.is_dir => return Err(not_usable("script is a directory!".into())),
            Ok(info) => {
                if state.wrapper_path().is_none() {
                    let id = state.fcgi_identity();
                    let in_group = fs.user_in_group(&id.user, info.gid);
                    executable_by(&info, id.uid, id.gid, in_group).map_err(|r| {
                        not_usable(format!(
                            "access for server (uid {}, gid {}) not allowed: {r}",
                            id.uid, id.gid
                        ))
                    })?;
                }
            }
        }
    }
    if let Some(word) = opt {
        if !word.eq_ignore_ascii_case("-compat") {
            return Err(ConfigError::Directive {
                directive: directive_name.to_string(),
                reason: format!("unknown option: \"{word}\""),
            });
        }
    }
    Ok(AuthSpec {
        path: abs,
        compat: opt.is_some(),
    })
}

/// "Does not exist" in the sense of lazy resolution: no such file, or a path
/// component that is not a directory.
fn is_missing(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// The six per-directory settings. `None` means "not set in this section";
/// [`DirAuthConfig::merge`] lets such fields inherit from the enclosing
/// section (SG-8). Legacy had no merge function, so a section containing any
/// mod_fastcgi directive lost all six inherited settings (AU-26).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirAuthConfig {
    pub authenticator: Option<AuthSpec>,
    pub authenticator_authoritative: Option<bool>,
    pub authorizer: Option<AuthSpec>,
    pub authorizer_authoritative: Option<bool>,
    pub access_checker: Option<AuthSpec>,
    pub access_checker_authoritative: Option<bool>,
}

impl DirAuthConfig {
    /// Child settings win; unset child fields inherit the parent's.
    pub fn merge(parent: &DirAuthConfig, child: &DirAuthConfig) -> DirAuthConfig {
        DirAuthConfig {
            authenticator: child.authenticator.clone().or_else(|| parent.authenticator.clone()),
            authenticator_authoritative: child.authenticator_authoritative.or(parent.authenticator_authoritative),
            authorizer: child.authorizer.clone().or_else(|| parent.authorizer.clone()),
            authorizer_authoritative: child.authorizer_authoritative.or(parent.authorizer_authoritative),
            access_checker: child.access_checker.clone().or_else(|| parent.access_checker.clone()),
            access_checker_authoritative: child
                .access_checker_authoritative
                .or(parent.access_checker_authoritative),
        }
    }

    fn slots(&mut self, role: AuthRole) -> (&mut Option<AuthSpec>, &mut Option<bool>) {
        match role {
            AuthRole::Authenticator => (&mut self.authenticator, &mut self.authenticator_authoritative),
            AuthRole::Authorizer => (&mut self.authorizer, &mut self.authorizer_authoritative),
            AuthRole::AccessChecker => (&mut self.access_checker, &mut self.access_checker_authoritative),
        }
    }

    /// Records an application directive's result.
    pub fn set_server(&mut self, role: AuthRole, spec: AuthSpec) {
        *self.slots(role).0 = Some(spec);
    }

    /// Records a `...Authoritative On|Off` directive.
    pub fn set_authoritative(&mut self, role: AuthRole, on: bool) {
        *self.slots(role).1 = Some(on);
    }

    /// The application configured for `role`, if any.
    pub fn server(&self, role: AuthRole) -> Option<&AuthSpec> {
        match role {
            AuthRole::Authenticator => self.authenticator.as_ref(),
            AuthRole::Authorizer => self.authorizer.as_ref(),
            AuthRole::AccessChecker => self.access_checker.as_ref(),
        }
    }

    /// Effective authoritative flag for `role` (default On).
    pub fn is_authoritative(&self, role: AuthRole) -> bool {
        match role {
            AuthRole::Authenticator => self.authenticator_authoritative,
            AuthRole::Authorizer => self.authorizer_authoritative,
            AuthRole::AccessChecker => self.access_checker_authoritative,
        }
        .unwrap_or(true)
    }
}
