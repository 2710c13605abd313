//! Per-directory authorizer directives (2.7, CFG-45, CFG-46) and their merge
//! (SG-8, fixing AU-26).

use std::path::PathBuf;
use std::sync::Arc;

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

/// Where a per-directory setting was read. An .htaccess file is written by
/// whoever may write in that directory, not by the administrator, so what
/// it may change is limited (issue 10, finding 3; see [`DirAuthConfig::merge`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origin {
    /// A `<Directory>`, `<Location>` or `<Files>` section of the server
    /// configuration.
    #[default]
    ServerConfig,
    /// The .htaccess file of that name.
    Htaccess(Arc<str>),
}

/// One role's two settings; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RoleSettings {
    server: Option<(AuthSpec, Origin)>,
    authoritative: Option<(bool, Origin)>,
}

/// A setting of an .htaccess file that the merge refused because it would
/// have replaced or weakened a check configured above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredSetting {
    pub role: AuthRole,
    /// The directive as written: `FastCgiAccessChecker` or
    /// `FastCgiAccessCheckerAuthoritative Off`.
    pub directive: String,
    /// The .htaccess file.
    pub file: Arc<str>,
}

impl IgnoredSetting {
    /// The warning logged when a request meets it.
    pub fn log_line(&self, uri: &str) -> String {
        format!(
            "FastCGI: {} in {} ignored: an .htaccess file may not replace or weaken the {} configured above it: {uri}",
            self.directive,
            self.file,
            self.role.directive()
        )
    }
}

/// The six per-directory settings (three roles, each an application and an
/// Authoritative flag). [`DirAuthConfig::merge`] lets unset settings inherit
/// from the enclosing section (SG-8). Legacy had no merge function, so a
/// section containing any mod_fastcgi directive lost all six inherited
/// settings (AU-26).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirAuthConfig {
    roles: [RoleSettings; 3],
    /// Where this section's own directives come from (set before they are
    /// recorded; a merged value keeps each setting's own origin).
    source: Origin,
    /// What the merges that built this value refused, for the log.
    ignored: Vec<IgnoredSetting>,
}

fn index(role: AuthRole) -> usize {
    match role {
        AuthRole::Authenticator => 0,
        AuthRole::Authorizer => 1,
        AuthRole::AccessChecker => 2,
    }
}

impl DirAuthConfig {
    /// Merges a section (`child`) into what encloses it (`parent`): the
    /// child's settings win, unset ones inherit (SG-8) — except that a
    /// setting read from an .htaccess file never weakens a check configured
    /// above it (issue 10, finding 3):
    /// - an .htaccess role directive where the parent already has an
    ///   application for that role is ignored (no replacing a check by an
    ///   application that always says yes);
    /// - an .htaccess `...Authoritative Off` where the parent has an
    ///   application for that role is ignored (no turning a denial into
    ///   "let the other modules decide");
    /// - an .htaccess `...Authoritative` switch never carries over to an
    ///   application the server configuration names in a section merged
    ///   later (an enclosing .htaccess cannot pre-empt a `<Location>`).
    ///
    /// An .htaccess may still add a check where none is configured (with
    /// either flag: it weakens nothing) and make an inherited one
    /// authoritative. Each refusal is recorded in [`Self::ignored`].
    pub fn merge(parent: &DirAuthConfig, child: &DirAuthConfig) -> DirAuthConfig {
        let mut ignored = parent.ignored.clone();
        ignored.extend(child.ignored.iter().cloned());
        let mut roles: [RoleSettings; 3] = Default::default();
        for role in AuthRole::ALL {
            let (p, c) = (&parent.roles[index(role)], &child.roles[index(role)]);
            let guarded = p.server.is_some();
            let mut refuse = |directive: String, file: &Arc<str>| {
                ignored.push(IgnoredSetting {
                    role,
                    directive,
                    file: file.clone(),
                })
            };
            // (Restating what the parent has changes nothing: not logged.)
            let child_server = match &c.server {
                Some((spec, Origin::Htaccess(file))) if guarded => {
                    if p.server.as_ref().is_some_and(|(s, _)| s != spec) {
                        refuse(role.directive().to_string(), file);
                    }
                    None
                }
                other => other.as_ref(),
            };
            let child_flag = match &c.authoritative {
                Some((false, Origin::Htaccess(file))) if guarded => {
                    if !matches!(p.authoritative, Some((false, _))) {
                        refuse(format!("{} Off", role.authoritative_directive()), file);
                    }
                    None
                }
                other => other.as_ref(),
            };
            let authoritative = match (child_flag, child_server) {
                (Some(flag), _) => Some(flag.clone()),
                (None, Some((_, Origin::ServerConfig))) => match &p.authoritative {
                    Some((_, Origin::Htaccess(_))) => None,
                    inherited => inherited.clone(),
                },
                (None, _) => p.authoritative.clone(),
            };
            roles[index(role)] = RoleSettings {
                server: child_server.or(p.server.as_ref()).cloned(),
                authoritative,
            };
        }
        DirAuthConfig {
            roles,
            source: child.source.clone(),
            ignored,
        }
    }

    /// Marks this section as read from the .htaccess file `file`: the
    /// settings recorded from now on carry that origin.
    pub fn read_from_htaccess(&mut self, file: &str) {
        if !matches!(&self.source, Origin::Htaccess(f) if &**f == file) {
            self.source = Origin::Htaccess(file.into());
        }
    }

    /// Records an application directive's result.
    pub fn set_server(&mut self, role: AuthRole, spec: AuthSpec) {
        self.roles[index(role)].server = Some((spec, self.source.clone()));
    }

    /// Records a `...Authoritative On|Off` directive.
    pub fn set_authoritative(&mut self, role: AuthRole, on: bool) {
        self.roles[index(role)].authoritative = Some((on, self.source.clone()));
    }

    /// The application configured for `role`, if any.
    pub fn server(&self, role: AuthRole) -> Option<&AuthSpec> {
        self.roles[index(role)].server.as_ref().map(|(s, _)| s)
    }

    /// Whether any role has an application.
    pub fn any_server(&self) -> bool {
        self.roles.iter().any(|r| r.server.is_some())
    }

    /// Effective authoritative flag for `role` (default On).
    pub fn is_authoritative(&self, role: AuthRole) -> bool {
        self.roles[index(role)]
            .authoritative
            .as_ref()
            .map_or(true, |(on, _)| *on)
    }

    /// The .htaccess settings the merges refused (to be logged).
    pub fn ignored(&self) -> &[IgnoredSetting] {
        &self.ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(p: &str) -> AuthSpec {
        AuthSpec {
            path: PathBuf::from(p),
            compat: false,
        }
    }

    /// A server-configuration section setting `role`'s application (and flag).
    fn admin(role: AuthRole, app: Option<&str>, flag: Option<bool>) -> DirAuthConfig {
        let mut d = DirAuthConfig::default();
        if let Some(a) = app {
            d.set_server(role, spec(a));
        }
        if let Some(f) = flag {
            d.set_authoritative(role, f);
        }
        d
    }

    /// The same, read from `/www/<dir>/.htaccess`.
    fn htaccess(dir: &str, role: AuthRole, app: Option<&str>, flag: Option<bool>) -> DirAuthConfig {
        let mut d = DirAuthConfig::default();
        d.read_from_htaccess(&format!("/www/{dir}/.htaccess"));
        if let Some(a) = app {
            d.set_server(role, spec(a));
        }
        if let Some(f) = flag {
            d.set_authoritative(role, f);
        }
        d
    }

    fn merge_all(sections: &[DirAuthConfig]) -> DirAuthConfig {
        sections
            .iter()
            .fold(DirAuthConfig::default(), |acc, s| DirAuthConfig::merge(&acc, s))
    }

    fn ignored(d: &DirAuthConfig) -> Vec<String> {
        d.ignored()
            .iter()
            .map(|i| format!("{} @ {}", i.directive, i.file))
            .collect()
    }

    #[test]
    fn htaccess_cannot_switch_off_or_replace_a_check_above_it() {
        for role in AuthRole::ALL {
            let above = admin(role, Some("/checker"), None);
            // Authoritative Off.
            let m = merge_all(&[above.clone(), htaccess("a", role, None, Some(false))]);
            assert_eq!(m.server(role), Some(&spec("/checker")));
            assert!(m.is_authoritative(role), "{role:?}: switched off");
            assert_eq!(
                ignored(&m),
                [format!("{} Off @ /www/a/.htaccess", role.authoritative_directive())]
            );
            // Replaced (with and without Off).
            let m = merge_all(&[above.clone(), htaccess("a", role, Some("/yes-man"), None)]);
            assert_eq!(m.server(role), Some(&spec("/checker")), "{role:?}: replaced");
            assert_eq!(ignored(&m), [format!("{} @ /www/a/.htaccess", role.directive())]);
            let m = merge_all(&[above.clone(), htaccess("a", role, Some("/yes-man"), Some(false))]);
            assert_eq!(m.server(role), Some(&spec("/checker")));
            assert!(m.is_authoritative(role));
            assert_eq!(m.ignored().len(), 2);
            // A role set by an upper .htaccess is protected from a lower one too.
            let m = merge_all(&[
                htaccess("a", role, Some("/tenant"), None),
                htaccess("a/b", role, Some("/yes-man"), Some(false)),
            ]);
            assert_eq!(m.server(role), Some(&spec("/tenant")));
            assert!(m.is_authoritative(role));
            assert_eq!(m.ignored().len(), 2);
            // Other roles are unaffected by the refusal.
            for other in AuthRole::ALL.into_iter().filter(|o| *o != role) {
                assert!(m.server(other).is_none());
            }
        }
    }

    #[test]
    fn htaccess_switch_does_not_reach_a_later_server_config_checker() {
        let role = AuthRole::AccessChecker;
        // <Directory /www> (nothing), /www/a/.htaccess Off, then <Location> names a checker.
        let m = merge_all(&[
            htaccess("a", role, None, Some(false)),
            admin(role, Some("/checker"), None),
        ]);
        assert_eq!(m.server(role), Some(&spec("/checker")));
        assert!(m.is_authoritative(role), "the .htaccess Off pre-empted the <Location>");
        // The same when the later section arrives merged with others (httpd merges the
        // walk's result onto the server defaults, and the location walk onto that).
        let dir_walk = merge_all(&[htaccess("a", role, None, Some(false))]);
        let location = merge_all(&[admin(role, Some("/checker"), None)]);
        assert!(DirAuthConfig::merge(&dir_walk, &location).is_authoritative(role));
        // The administrator's own Off still carries over (SG-8).
        let m = merge_all(&[admin(role, None, Some(false)), admin(role, Some("/checker"), None)]);
        assert!(!m.is_authoritative(role));
    }

    #[test]
    fn htaccess_may_add_a_check_or_make_one_authoritative() {
        let role = AuthRole::AccessChecker;
        // Nothing above: its own check, authoritative or not.
        let m = merge_all(&[
            admin(AuthRole::Authenticator, Some("/authn"), None),
            htaccess("a", role, Some("/own"), None),
        ]);
        assert_eq!(m.server(role), Some(&spec("/own")));
        assert!(m.is_authoritative(role));
        let m = merge_all(&[htaccess("a", role, Some("/own"), Some(false))]);
        assert_eq!(m.server(role), Some(&spec("/own")));
        assert!(!m.is_authoritative(role));
        assert!(m.ignored().is_empty());
        // A non-authoritative administrator's check made authoritative.
        let m = merge_all(&[
            admin(role, Some("/checker"), Some(false)),
            htaccess("a", role, None, Some(true)),
        ]);
        assert!(m.is_authoritative(role));
        assert!(m.ignored().is_empty());
        // Restating what is configured above changes nothing and is not reported.
        let m = merge_all(&[
            admin(role, Some("/checker"), Some(false)),
            htaccess("a", role, Some("/checker"), Some(false)),
        ]);
        assert_eq!(m.server(role), Some(&spec("/checker")));
        assert!(!m.is_authoritative(role));
        assert!(m.ignored().is_empty());
        // A later server-configuration section still decides.
        let m = merge_all(&[
            admin(role, Some("/checker"), None),
            htaccess("a", role, None, Some(false)),
            admin(role, None, Some(false)),
        ]);
        assert!(!m.is_authoritative(role));
        assert_eq!(m.ignored().len(), 1, "the refusal stays recorded");
    }

    #[test]
    fn refusal_log_line_names_directive_file_and_role() {
        let m = merge_all(&[
            admin(AuthRole::AccessChecker, Some("/checker"), None),
            htaccess("a", AuthRole::AccessChecker, None, Some(false)),
        ]);
        assert_eq!(
            m.ignored()[0].log_line("/a/page"),
            "FastCGI: FastCgiAccessCheckerAuthoritative Off in /www/a/.htaccess ignored: an .htaccess file \
             may not replace or weaken the FastCgiAccessChecker configured above it: /a/page"
        );
    }
}
