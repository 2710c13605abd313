//! Directive glue: turns each httpd directive call into a call of the pure
//! parser in [`crate::config`], and its error into the message `apache2 -t`
//! prints.
//!
//! The per-directory authorizer directives write into the section's
//! [`DirAuthConfig`], which the entry layer passes in.

use super::ModuleState;
use crate::config::{self, AuthRole, ConfigState, DirAuthConfig, OsProbe, ParseEnv};
use crate::httpd::{log, server, CmdParms, Level, Pool};
use std::sync::MutexGuard;

/// Directive ids; must match the `D_*` defines in c_shim/mod_fastcgi.c.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectiveId {
    Server = 1,
    External = 2,
    Config = 3,
    IpcDir = 4,
    Wrapper = 5,
    Authenticator = 6,
    Authorizer = 7,
    AccessChecker = 8,
    AuthenticatorAuthoritative = 9,
    AuthorizerAuthoritative = 10,
    AccessCheckerAuthoritative = 11,
    SpoolDir = 12,
    SpoolLimit = 13,
    SpoolTotal = 14,
}

impl DirectiveId {
    pub fn from_info(v: usize) -> Option<DirectiveId> {
        use DirectiveId::*;
        Some(match v {
            1 => Server,
            2 => External,
            3 => Config,
            4 => IpcDir,
            5 => Wrapper,
            6 => Authenticator,
            7 => Authorizer,
            8 => AccessChecker,
            9 => AuthenticatorAuthoritative,
            10 => AuthorizerAuthoritative,
            11 => AccessCheckerAuthoritative,
            12 => SpoolDir,
            13 => SpoolLimit,
            14 => SpoolTotal,
            _ => return None,
        })
    }
}

fn group_name(gid: u32) -> String {
    config::system_group_by_gid(gid).unwrap_or_else(|| format!("#{gid}"))
}

/// The parse environment as httpd knows it right now.
pub fn parse_env(pconf: Pool) -> ParseEnv {
    // Users and groups are looked up afresh once per configuration pass.
    crate::sys::account::forget_cached();
    let who = server::run_as();
    let mut env = ParseEnv::new(
        server::server_root(),
        server::runtime_dir_relative(pconf, c"fastcgi"),
        who.uid,
        who.gid,
        who.user_name,
        group_name(who.gid),
    );
    env.is_root = nix::unistd::geteuid().is_root();
    env.suexec_path = Some(env!("FCGI_SUEXEC_BIN").into());
    // Request bodies are spooled on disk by default (the IPC directory is
    // often a tmpfs): Debian's state directory when there is one.
    if std::path::Path::new("/var/lib/apache2").is_dir() {
        env.default_spool_dir = ("/var/lib/apache2/fastcgi".into(), true);
    }
    env
}

pub fn new_config_state(pconf: Pool) -> ConfigState {
    ConfigState::new(parse_env(pconf))
}

/// Brings the User/Group the parser compares against up to date (they may
/// be set between our directives) and returns the pass's configuration.
fn state_for(cmd: &CmdParms) -> MutexGuard<'static, ConfigState> {
    let mut cfg = ModuleState::of_pass(cmd.pool()).parsing();
    let who = server::run_as();
    let group = group_name(who.gid);
    cfg.set_identity(who.uid, who.gid, &who.user_name, &group);
    cfg
}

fn log_warnings(cfg: &mut ConfigState) {
    for w in cfg.take_warnings() {
        log::main_server(Level::Warn, 0, &w);
    }
}

/// An external server's `-socket` in a directory other users can write:
/// they could put their own socket there (`-peer-user` makes the module
/// check whose socket it reaches).
fn warn_shared_external_socket(cfg: &ConfigState) {
    let Some(crate::config::Server::External(ext)) = cfg.servers().last() else {
        return;
    };
    for addr in &ext.addrs {
        let crate::config::AppAddr::Unix(sock) = addr else {
            continue;
        };
        let Some(risk) = crate::config::socket_dir_risk(sock, &OsProbe) else {
            continue;
        };
        log::main_server(
            Level::Warn,
            0,
            &format!(
                "FastCGI: external server \"{}\": -socket \"{}\" is in a directory other users can write \
                 (\"{}\", mode {:04o}): anyone could put their own socket there{}",
                ext.path.display(),
                sock.display(),
                risk.dir().display(),
                risk.mode(),
                if ext.opts.peer_uid.is_some() {
                    " (-peer-user refuses it)"
                } else {
                    "; add -peer-user <the application's user> or move the socket"
                }
            ),
        );
    }
}

fn internal(name: &str, id: Option<DirectiveId>) -> String {
    format!("{name}: internal error: unexpected directive id {id:?}")
}

/// `FastCgiServer`, `FastCgiExternalServer`, `FastCgiConfig` (RAW_ARGS).
pub fn raw(cmd: &CmdParms, args: &str) -> Result<(), String> {
    let name = cmd.name();
    let mut cfg = state_for(cmd);
    let res = match DirectiveId::from_info(cmd.info()) {
        Some(DirectiveId::Server) => cfg
            .fastcgi_server(&name, args, &OsProbe)
            .map_err(|e| e.to_string())
            .map(|()| {
                if let Some(crate::config::Server::Static(st)) = cfg.servers().last() {
                    if st.binds_all_interfaces() {
                        log::main_server(
                            Level::Warn,
                            0,
                            &format!(
                                "FastCGI: server \"{}\" listens on all network interfaces (-port without an address); \
                             use -port 127.0.0.1:<port> to keep it local",
                                st.path.display()
                            ),
                        );
                    }
                }
            }),
        Some(DirectiveId::External) => cfg
            .external_server(&name, args)
            .map_err(|e| e.to_string())
            .map(|()| warn_shared_external_socket(&cfg)),
        Some(DirectiveId::Config) => cmd
            .check_context(crate::ffi::GLOBAL_ONLY)
            .and_then(|()| cfg.fastcgi_config(&name, args).map_err(|e| e.to_string())),
        other => Err(internal(&name, other)),
    };
    log_warnings(&mut cfg);
    res
}

/// `FastCgiIpcDir`, `FastCgiWrapper`, `FastCgiSpoolDir`,
/// `FastCgiSpoolLimit`, `FastCgiSpoolTotal` (TAKE1).
pub fn take1(cmd: &CmdParms, arg: &str) -> Result<(), String> {
    let name = cmd.name();
    cmd.check_context(crate::ffi::GLOBAL_ONLY)?;
    let mut cfg = state_for(cmd);
    match DirectiveId::from_info(cmd.info()) {
        Some(DirectiveId::IpcDir) => cfg.ipc_dir(arg, &OsProbe).map_err(|e| e.to_string()),
        Some(DirectiveId::Wrapper) => cfg.wrapper(&name, arg, &OsProbe).map_err(|e| e.to_string()),
        Some(DirectiveId::SpoolDir) => cfg.spool_dir_directive(arg, &OsProbe).map_err(|e| e.to_string()),
        Some(DirectiveId::SpoolLimit | DirectiveId::SpoolTotal) => {
            cfg.spool_size_directive(&name, arg).map_err(|e| e.to_string())
        }
        other => Err(internal(&name, other)),
    }
}

/// The three authorizer directives (TAKE12), in `<Directory>`,
/// `<Location>`, `<Files>` and (with `AllowOverride AuthConfig`) .htaccess
/// files. `running` is the frozen configuration when the directive comes
/// from an .htaccess file (read at request time).
///
/// In .htaccess files the application must be a defined
/// `FastCgiServer`/`FastCgiExternalServer`: AuthConfig does not let an
/// .htaccess author run arbitrary programs, so naming a would-be dynamic
/// application there is refused (the request fails with 500 and httpd
/// logs the message). Nor may it replace an application configured above
/// it for the same role: that is ignored when the sections are merged
/// ([`DirAuthConfig::merge`]).
pub fn take12(
    cmd: &CmdParms,
    dir: &mut DirAuthConfig,
    running: Option<&ConfigState>,
    path: &str,
    opt: Option<&str>,
) -> Result<(), String> {
    let name = cmd.name();
    let role = AuthRole::from_directive(&name).ok_or_else(|| internal(&name, DirectiveId::from_info(cmd.info())))?;
    let spec = match running {
        Some(state) => {
            let spec = config::parse_auth(&name, path, opt, state, &OsProbe).map_err(|e| e.to_string())?;
            if state.find_server(&spec.path).is_none() {
                return Err(format!(
                    "{name}: in .htaccess files the application must be defined with FastCgiServer or \
                     FastCgiExternalServer (\"{}\" is not)",
                    spec.path.display()
                ));
            }
            spec
        }
        None => {
            let cfg = state_for(cmd);
            config::parse_auth(&name, path, opt, &cfg, &OsProbe).map_err(|e| e.to_string())?
        }
    };
    if running.is_some() {
        mark_htaccess(cmd, dir);
    }
    dir.set_server(role, spec);
    Ok(())
}

/// Records that `dir` is an .htaccess file's section, so that its settings
/// cannot weaken a check configured above it (issue 10, finding 3).
fn mark_htaccess(cmd: &CmdParms, dir: &mut DirAuthConfig) {
    dir.read_from_htaccess(&cmd.config_file_name().unwrap_or_else(|| ".htaccess".into()));
}

/// The three `...Authoritative` switches (FLAG). In an .htaccess file, Off
/// only applies to a check that file adds (see [`DirAuthConfig::merge`]).
pub fn flag(cmd: &CmdParms, dir: &mut DirAuthConfig, on: bool) -> Result<(), String> {
    let name = cmd.name();
    let role = AuthRole::from_authoritative_directive(&name)
        .ok_or_else(|| internal(&name, DirectiveId::from_info(cmd.info())))?;
    if cmd.in_htaccess() {
        mark_htaccess(cmd, dir);
    }
    dir.set_authoritative(role, on);
    Ok(())
}
