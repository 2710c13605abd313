#![forbid(unsafe_code)]
//! Directive parsing for every mod_fastcgi directive (reference section 2),
//! as pure functions from the raw argument text to typed specs or a
//! [`ConfigError`] whose `Display` is the complete message httpd prints.
//! Nothing here names an httpd type: the glue passes directive names and
//! argument strings in, and file-system/account questions go through
//! [`FileProbe`] and the hooks in [`ParseEnv`].
//!
//! One [`ConfigState`] holds everything one configuration pass defines
//! (servers, FastCgiConfig defaults, IPC directory, wrapper). Directives that
//! the legacy module kept in globals are methods on it; the per-directory
//! authorizer settings are [`DirAuthConfig`] values built with [`parse_auth`].
//!
//! Messages are the legacy texts (users grep for them); option names match
//! case-insensitively and are echoed as written; directive names are echoed
//! as the glue passes them (`AppClass`, `FCGIConfig`, ... for the aliases).
//!
//! # Deliberate differences from legacy
//!
//! Each is covered by a test in `tests.rs`.
//!
//! 1. **Negative numbers** for unsigned options are rejected
//!    (`"-1" must be a positive integer`, or `"-1" must be >= 0` for options
//!    whose minimum is 0) instead of wrapping to ~4 billion; values beyond the
//!    C type (`> 4294967295`, `> 2147483647` for "int" options) are rejected
//!    with `"<n>" must be <= <max>` instead of being truncated (CFG-03, bug 10).
//! 2. **`-port`** errors show the value given and the real range
//!    (`"65536" must be >= 1 and <= 65535`; legacy printed the previous value
//!    and said `< 65535`). `-port` also accepts a bind address,
//!    `-port 127.0.0.1:8080` / `-port [::1]:8080`; plain `-port n` still binds
//!    all interfaces, flagged by [`StaticListen::binds_all_interfaces`] (SE-2).
//! 3. **`-host`** ports outside 1..=65535 are rejected (`bad port number
//!    "70000"`; legacy truncated to 16 bits first). IPv6 is accepted as
//!    `[addr]:port`; a bare IPv6 literal is refused with a hint to add brackets
//!    and a port. Names are resolved with [`ParseEnv::resolve`]; several
//!    addresses are fine and the first is used (legacy demanded exactly one
//!    IPv4 address). Failure: `failed to resolve "<h>" to an IP address`.
//! 4. **`-pass-header`** with a missing or empty value is rejected
//!    (`invalid value for -pass-header: ""`).
//! 5. **`FastCgiConfig -priority n`** is accepted (the manual documents it).
//! 6. **`FastCgiServer -min-server-life`** errors include the path like every
//!    other option error.
//! 7. **`-gainValue nan`** is rejected (legacy accepted NaN).
//! 8. **Auth directives** check executability against the User/Group httpd
//!    runs as (legacy used 0/0 unless a server directive came first), and a
//!    path that does not exist is accepted (lazy resolution), so an external
//!    server defined *after* the auth directive works (CFG-46).
//! 9. **Per-directory merge**: unset auth settings inherit from the enclosing
//!    section (SG-8; legacy AU-26 reset all six). Repeating an auth directive
//!    in one section replaces the setting, including its `-compat` (legacy
//!    OR-ed `-compat` across repeats).
//! 10. **Wrapper redefinition** compares the new server's own uid/gid (from
//!     `-user`/`-group`) with the existing one's; legacy compared the main
//!     server's ids, so it accepted a duplicate with the same `-user` and could
//!     refuse a distinct one.
//! 11. **Unknown `-user`/`-group` names** with a wrapper are a config error
//!     (`invalid user or group: bad user name <n>`) instead of httpd aborting.
//! 12. **`FastCgiWrapper On`** when httpd has no suexec binary is a clear error.
//! 13. **`FastCgiConfig`** applies all-or-nothing, and `processSlack` vs
//!     `maxProcesses + 1` is compared without 32-bit overflow.
//! 15. **An existing IPC directory** (and its `dynamic/`) must be owned by
//!     the server's User and not writable by group or others (SG-12); legacy
//!     accepted any directory the User could write.
//! 14. **Server paths** lose a trailing slash when cleaned, and lookups do not
//!     truncate long request paths at ~4 KiB (RT-10).

mod auth;
mod md5;
mod paths;
mod system;
mod tokenize;
mod values;

#[cfg(test)]
mod tests;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use auth::{parse_auth, AuthRole, AuthSpec, DirAuthConfig, IgnoredSetting, Origin};
pub use md5::{md5, md5_hex};
pub use paths::{
    check_access, default_static_socket, dynamic_socket, executable_by, normalize_path, socket_dir_risk, FileInfo,
    FileProbe, OsProbe, SocketDirRisk, Want, MAX_UNIX_SOCKET_PATH,
};
pub use system::{
    system_getenv, system_gid_by_name, system_group_by_gid, system_resolve, system_uid_by_name, system_user_by_uid,
};
pub use tokenize::tokenize;

use paths::{check_socket_len, no2slash, strerror};

/// At most this many `-initial-env` entries per directive (Appendix B).
pub const MAX_INIT_ENV_VARS: usize = 64;

/// Config-time warning for `-user`/`-group` without a wrapper (CFG-41); the
/// glue logs it at warn level (see [`ConfigState::take_warnings`]).
pub const NO_WRAPPER_WARNING: &str = "FastCGI: there is no fastcgi wrapper set, user/group options are ignored";

/// Everything about the running httpd that parsing needs, injected so parsing
/// stays pure and testable.
#[derive(Debug, Clone)]
pub struct ParseEnv {
    /// ServerRoot; relative paths are made absolute against it.
    pub server_root: PathBuf,
    /// IPC directory used when `FastCgiIpcDir` is absent
    /// (`<DEFAULT_REL_RUNTIMEDIR>/fastcgi`, made absolute).
    pub default_ipc_dir: PathBuf,
    /// Identity the module acts as (CFG-40): the effective ids when httpd is
    /// not started as root, else the User/Group directives' ids.
    pub uid: u32,
    pub gid: u32,
    /// Names of `uid`/`gid` (used for group-membership checks).
    pub user_name: String,
    pub group_name: String,
    /// Whether httpd runs as root (then a newly created IPC dir is chowned).
    pub is_root: bool,
    /// httpd's compiled-in suexec binary, for `FastCgiWrapper On`.
    pub suexec_path: Option<PathBuf>,
    /// Spool directory used when `FastCgiSpoolDir` is absent, and whether it
    /// is created/checked like the IPC directory (the Debian
    /// `/var/lib/apache2/fastcgi`) or used as it is (`/var/tmp`).
    pub default_spool_dir: (PathBuf, bool),
    /// Resolves a `-host` name (not called for IP literals).
    pub resolve: fn(&str, u16) -> io::Result<Vec<SocketAddr>>,
    /// httpd's own environment, for `-initial-env NAME`.
    pub getenv: fn(&str) -> Option<String>,
    /// Account look-ups for `-user`/`-group` with a wrapper.
    pub uid_by_name: fn(&str) -> Option<u32>,
    pub gid_by_name: fn(&str) -> Option<u32>,
    pub user_by_uid: fn(u32) -> Option<String>,
    pub group_by_gid: fn(u32) -> Option<String>,
}

impl ParseEnv {
    /// An environment using the `system_*` hooks (std resolver, process
    /// environment, `/etc/passwd`, `/etc/group`), not root, no suexec.
    pub fn new(
        server_root: impl Into<PathBuf>,
        default_ipc_dir: impl Into<PathBuf>,
        uid: u32,
        gid: u32,
        user_name: impl Into<String>,
        group_name: impl Into<String>,
    ) -> Self {
        ParseEnv {
            server_root: server_root.into(),
            default_ipc_dir: default_ipc_dir.into(),
            uid,
            gid,
            user_name: user_name.into(),
            group_name: group_name.into(),
            is_root: false,
            suexec_path: None,
            default_spool_dir: (PathBuf::from("/var/tmp"), false),
            resolve: system_resolve,
            getenv: system_getenv,
            uid_by_name: system_uid_by_name,
            gid_by_name: system_gid_by_name,
            user_by_uid: system_user_by_uid,
            group_by_gid: system_group_by_gid,
        }
    }
}

/// A uid/gid pair with names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
}

/// Options shared by static and external servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnOptions {
    /// `-appConnTimeout` seconds; 0 = blocking connect.
    pub app_conn_timeout: u32,
    /// `-idle-timeout` seconds (default 30).
    pub idle_timeout: u32,
    /// `-flush`.
    pub flush: bool,
    /// `-pass-header`, in order given (duplicates kept).
    pub pass_headers: Vec<String>,
    /// `-nph`.
    pub nph: bool,
    /// `-user` / `-group` exactly as written (only used with a wrapper).
    pub user: Option<String>,
    pub group: Option<String>,
    /// `-keep-conn N` (new): at most N connections to the application kept
    /// open for reuse across all of Apache; 0 turns reuse off. `None`: the
    /// default (static: `-processes`; external: what the application answers
    /// to FCGI_GET_VALUES FCGI_MAX_CONNS).
    pub keep_conn: Option<u32>,
    /// `-peer-user name` (new, `FastCgiExternalServer -socket` only): the
    /// uid the application's listening socket must belong to.
    pub peer_uid: Option<u32>,
    /// `-pass-php-values` (new): forward PHP_VALUE / PHP_ADMIN_VALUE
    /// request variables to the application (dropped by default: they
    /// override php-fpm's pool settings).
    pub pass_php_values: bool,
    /// `-multiplex on|off` (new, `FastCgiExternalServer`): share
    /// connections between the threads of an httpd child when the
    /// application answers `FCGI_MPXS_CONNS=1` (default on).
    pub multiplex: bool,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            app_conn_timeout: 0,
            idle_timeout: 30,
            flush: false,
            pass_headers: Vec::new(),
            nph: false,
            user: None,
            group: None,
            keep_conn: None,
            peer_uid: None,
            pass_php_values: false,
            multiplex: true,
        }
    }
}

/// Where an external server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AppAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// `FastCgiExternalServer` (2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalServer {
    pub path: PathBuf,
    /// The backends, in the order given (issue 14: `-host` and `-socket`
    /// repeat and mix; a `-host` name resolving to several addresses gives
    /// one backend per address). Never empty, no duplicates.
    pub addrs: Vec<AppAddr>,
    /// `-retry n` seconds (default [`DEFAULT_RETRY`]): how long a backend
    /// that failed stays out of the choice before it is probed again (only
    /// with several backends).
    pub retry: u32,
    pub opts: ConnOptions,
    /// Resolved `-user`/`-group` (with a wrapper only).
    pub identity: Option<Identity>,
}

/// A backend as written in `FastCgiExternalServer`.
enum Backend {
    Host((String, u16)),
    Socket(String),
}

/// `-retry` default, seconds.
pub const DEFAULT_RETRY: u32 = 10;

impl ExternalServer {
    /// The first backend (the only one, unless several were configured).
    pub fn addr(&self) -> &AppAddr {
        &self.addrs[0]
    }
}

/// Where the process manager creates a static server's listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticListen {
    /// `-socket` (relative names resolved in the IPC dir) or the md5 default.
    Unix(PathBuf),
    /// `-port n` (0.0.0.0:n, as legacy) or `-port addr:n`.
    Tcp(SocketAddr),
}

impl StaticListen {
    /// True for `-port n` without an address: the application is reachable
    /// from the network (SE-2); the glue should warn.
    pub fn binds_all_interfaces(&self) -> bool {
        matches!(self, StaticListen::Tcp(a) if a.ip().is_unspecified())
    }
}

/// Where a request connects to reach a server bound to `a`: loopback for
/// the unspecified address.
pub fn loopback_if_unspecified(a: SocketAddr) -> SocketAddr {
    use std::net::{Ipv4Addr, Ipv6Addr};
    match a.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
        _ => a,
    }
}

/// `FastCgiServer` (2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticServer {
    pub path: PathBuf,
    pub listen: StaticListen,
    /// `-processes` (default 1).
    pub processes: u32,
    /// `-restart-delay` seconds (default 5).
    pub restart_delay: u32,
    /// `-init-start-delay` seconds (default 1).
    pub init_start_delay: u32,
    /// `-min-server-life` seconds (default 30).
    pub min_server_life: u32,
    /// `-priority`: `nice()` increment (default 0 = not called).
    pub priority: u32,
    /// `-listen-queue-depth` (default 100).
    pub listen_queue_depth: u32,
    /// `-initial-env`: the application's whole environment, in order.
    pub initial_env: Vec<(String, String)>,
    pub opts: ConnOptions,
    /// Resolved `-user`/`-group` (with a wrapper only).
    pub identity: Option<Identity>,
}

impl StaticServer {
    /// Where a request connects to: the socket, or the TCP address — on
    /// loopback when the server listens on all interfaces.
    pub fn connect_addr(&self) -> AppAddr {
        match &self.listen {
            StaticListen::Unix(p) => AppAddr::Unix(p.clone()),
            StaticListen::Tcp(a) => AppAddr::Tcp(loopback_if_unspecified(*a)),
        }
    }

    /// See [`StaticListen::binds_all_interfaces`].
    pub fn binds_all_interfaces(&self) -> bool {
        self.listen.binds_all_interfaces()
    }
}

/// A configured (static or external) server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    Static(StaticServer),
    External(ExternalServer),
}

impl Server {
    pub fn path(&self) -> &Path {
        match self {
            Server::Static(s) => &s.path,
            Server::External(s) => &s.path,
        }
    }

    pub fn opts(&self) -> &ConnOptions {
        match self {
            Server::Static(s) => &s.opts,
            Server::External(s) => &s.opts,
        }
    }

    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Server::Static(s) => s.identity.as_ref(),
            Server::External(s) => s.identity.as_ref(),
        }
    }
}

/// `FastCgiConfig` (2.4): defaults for dynamic applications.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicConfig {
    pub max_processes: u32,
    pub min_processes: u32,
    pub max_class_processes: u32,
    pub kill_interval: u32,
    pub update_interval: u32,
    pub gain_value: f32,
    pub single_threshold: u32,
    pub multi_threshold: u32,
    pub start_delay: u32,
    pub app_conn_timeout: u32,
    pub idle_timeout: u32,
    pub initial_env: Vec<(String, String)>,
    pub pass_headers: Vec<String>,
    /// `-pass-php-values` (see [`ConnOptions::pass_php_values`]).
    pub pass_php_values: bool,
    pub flush: bool,
    pub listen_queue_depth: u32,
    pub min_server_life: u32,
    pub restart_delay: u32,
    pub init_start_delay: u32,
    pub process_slack: u32,
    /// `-restart`.
    pub restart: bool,
    /// `-autoUpdate`.
    pub auto_update: bool,
    /// `-priority` (accepted here, unlike legacy; bug 24).
    pub priority: u32,
}

impl Default for DynamicConfig {
    fn default() -> Self {
        DynamicConfig {
            max_processes: 50,
            min_processes: 5,
            max_class_processes: 10,
            kill_interval: 300,
            update_interval: 300,
            gain_value: 0.5,
            single_threshold: 0,
            multi_threshold: 50,
            start_delay: 3,
            app_conn_timeout: 0,
            idle_timeout: 30,
            initial_env: Vec::new(),
            pass_headers: Vec::new(),
            pass_php_values: false,
            flush: false,
            listen_queue_depth: 100,
            min_server_life: 30,
            restart_delay: 5,
            init_start_delay: 1,
            process_slack: 5,
            restart: false,
            auto_update: false,
            priority: 0,
        }
    }
}

/// Which redefinition text to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Static,
    External,
}

fn with_space(path: &Option<String>) -> String {
    path.as_ref().map(|p| format!(" {p}")).unwrap_or_default()
}

fn redefinition_text(directive: &str, path: &str, kind: &ServerKind, ids: &Option<(u32, u32)>) -> String {
    let what = match kind {
        ServerKind::Static => "a previously defined FastCGI server",
        ServerKind::External => "previously defined class",
    };
    let ids = ids
        .map(|(u, g)| format!(" with uid={u} and gid={g}"))
        .unwrap_or_default();
    format!("{directive}: redefinition of {what} \"{path}\"{ids}")
}

/// A directive that cannot be accepted. `Display` is the whole message for
/// httpd (the glue only copies it into a pool string).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `FastCgiServer`/`AppClass` without a path (same text for both names).
    #[error("AppClass requires a pathname!?")]
    StaticPathMissing,
    #[error("{directive} requires a path and either a -socket or -host option")]
    ExternalPathMissing { directive: String },
    /// `<D>[ <path>]: invalid value for <opt>: <reason>` (CFG-06).
    #[error("{directive}{}: invalid value for {option}: {reason}", with_space(.path))]
    InvalidValue {
        directive: String,
        path: Option<String>,
        option: String,
        reason: String,
    },
    /// `<D>[ <path>]: invalid option: <opt>` (CFG-06).
    #[error("{directive}{}: invalid option: {option}", with_space(.path))]
    InvalidOption {
        directive: String,
        path: Option<String>,
        option: String,
    },
    /// The path is taken by a server defined earlier (RT-10 prefix rule).
    #[error("{}", redefinition_text(.directive, .path, .kind, .ids))]
    Redefinition {
        directive: String,
        path: String,
        kind: ServerKind,
        ids: Option<(u32, u32)>,
    },
    /// `<D>: "<path>" <reason>`: a file check failed.
    #[error("{directive}: \"{path}\" {reason}")]
    PathNotUsable {
        directive: String,
        path: String,
        reason: String,
    },
    /// `<D> <subject>: <reason>`.
    #[error("{directive} {subject}: {reason}")]
    Subject {
        directive: String,
        subject: String,
        reason: String,
    },
    /// `<D>: <reason>`.
    #[error("{directive}: {reason}")]
    Directive { directive: String, reason: String },
    #[error("The {directive} command must preceed static FastCGI server definitions")]
    MustPrecede { directive: String },
    #[error("{directive} was already set to \"{previous}\"")]
    AlreadySet { directive: String, previous: String },
}

/// Consumes the next word as an option value; a missing word reads as "".
fn value(words: &mut std::vec::IntoIter<String>) -> String {
    words.next().unwrap_or_default()
}

/// A string-valued option (`-socket`, `-user`, `-group`, `-pass-header`).
fn text(words: &mut std::vec::IntoIter<String>) -> Result<String, String> {
    let v = value(words);
    if v.is_empty() {
        return Err(values::EMPTY.into());
    }
    Ok(v)
}

/// A `-pass-header` value. `Proxy` is refused: passed as `HTTP_PROXY` it
/// is taken by CGI libraries as their outgoing proxy (httpoxy), which
/// httpd itself never passes.
fn pass_header(words: &mut std::vec::IntoIter<String>) -> Result<String, String> {
    let v = text(words)?;
    if v.eq_ignore_ascii_case("proxy") {
        return Err(format!(
            "\"{v}\" is refused: it would be passed as HTTP_PROXY, which applications take as their outgoing proxy (httpoxy)"
        ));
    }
    Ok(v)
}

/// Options common to static and external servers. `None` when `lower` is not
/// one of them.
fn conn_option(
    opts: &mut ConnOptions,
    lower: &str,
    words: &mut std::vec::IntoIter<String>,
) -> Option<Result<(), String>> {
    let r = match lower {
        "-appconntimeout" => values::unsigned(&value(words), 0).map(|v| opts.app_conn_timeout = v),
        "-idle-timeout" => values::unsigned(&value(words), 1).map(|v| opts.idle_timeout = v),
        "-pass-header" => pass_header(words).map(|v| opts.pass_headers.push(v)),
        "-pass-php-values" => {
            opts.pass_php_values = true;
            Ok(())
        }
        "-flush" => {
            opts.flush = true;
            Ok(())
        }
        "-nph" => {
            opts.nph = true;
            Ok(())
        }
        "-user" => text(words).map(|v| opts.user = Some(v)),
        "-group" => text(words).map(|v| opts.group = Some(v)),
        "-keep-conn" => values::unsigned(&value(words), 0).map(|v| opts.keep_conn = Some(v)),
        _ => return None,
    };
    Some(r)
}

fn path_string(p: &Path) -> String {
    p.display().to_string()
}

/// Does server path `server` match request path `p` (already `no2slash`ed)
/// under RT-10: prefix, followed by end of string or `/`.
fn prefix_matches(server: &Path, p: &[u8]) -> bool {
    let s = server.as_os_str().as_bytes();
    p.starts_with(s) && (p.len() == s.len() || p[s.len()] == b'/')
}

/// Everything one configuration pass has defined.
#[derive(Debug, Clone)]
pub struct ConfigState {
    env: ParseEnv,
    /// Configured or default IPC dir (absolute, no trailing slash).
    ipc_dir: PathBuf,
    /// Set by `FastCgiIpcDir` or when a Unix-socket server fixed the default
    /// (CFG-11); a later `FastCgiIpcDir` then fails.
    ipc_dir_fixed: bool,
    wrapper: Option<PathBuf>,
    servers: Vec<Server>,
    dynamic: DynamicConfig,
    /// User/Group snapshot (CFG-40).
    identity_snapshot: Option<Identity>,
    warnings: Vec<String>,
    /// `FastCgiSpoolDir` (None: the default of [`ParseEnv`]).
    spool_dir: Option<PathBuf>,
    /// `FastCgiSpoolLimit`, `FastCgiSpoolTotal` (bytes).
    spool_limit: u64,
    spool_total: u64,
}

impl ConfigState {
    pub fn new(env: ParseEnv) -> Self {
        let ipc = normalize_path(&env.server_root, &env.default_ipc_dir.to_string_lossy(), false);
        ConfigState {
            ipc_dir: trim_trailing_slashes(ipc),
            env,
            ipc_dir_fixed: false,
            wrapper: None,
            servers: Vec::new(),
            dynamic: DynamicConfig::default(),
            identity_snapshot: None,
            warnings: Vec::new(),
            spool_dir: None,
            spool_limit: crate::gateway::spool::DEFAULT_LIMIT,
            spool_total: crate::gateway::spool::DEFAULT_TOTAL,
        }
    }

    /// Where chunked request bodies are spooled: `FastCgiSpoolDir`, else
    /// `/var/lib/apache2/fastcgi` where `/var/lib/apache2` exists, else
    /// `/var/tmp`.
    pub fn effective_spool_dir(&self) -> &Path {
        self.spool_dir.as_deref().unwrap_or(&self.env.default_spool_dir.0)
    }

    /// `FastCgiSpoolLimit` in effect (bytes per request body).
    pub fn spool_limit(&self) -> u64 {
        self.spool_limit
    }

    /// `FastCgiSpoolTotal` in effect (bytes across all requests).
    pub fn spool_total(&self) -> u64 {
        self.spool_total
    }

    /// Creates (0700, owned by User:Group) or checks the spool directory
    /// like the IPC directory; `/var/tmp` (the last-resort default) is used
    /// as it is. The glue calls this at post_config and logs a failure.
    pub fn prepare_spool_dir(&self, fs: &dyn FileProbe) -> Result<(), String> {
        if self.spool_dir.is_none() && !self.env.default_spool_dir.1 {
            return Ok(());
        }
        let dir = self.effective_spool_dir();
        self.prepare_dir(dir, fs)
            .map_err(|e| format!("FastCgiSpoolDir \"{}\": {e}", dir.display()))
    }

    /// `FastCgiSpoolDir dir` (new, server config): where chunked request
    /// bodies are spooled.
    pub fn spool_dir_directive(&mut self, arg: &str, fs: &dyn FileProbe) -> Result<(), ConfigError> {
        const NAME: &str = "FastCgiSpoolDir";
        let dir = trim_trailing_slashes(normalize_path(&self.env.server_root, arg, false));
        self.prepare_dir(&dir, fs).map_err(|reason| ConfigError::Subject {
            directive: NAME.into(),
            subject: path_string(&dir),
            reason,
        })?;
        self.spool_dir = Some(dir);
        Ok(())
    }

    /// `FastCgiSpoolLimit bytes` / `FastCgiSpoolTotal bytes` (new, server
    /// config; `K`, `M`, `G` suffixes accepted).
    pub fn spool_size_directive(&mut self, name: &str, arg: &str) -> Result<(), ConfigError> {
        let v = values::bytes(arg).map_err(|reason| ConfigError::Directive {
            directive: name.to_string(),
            reason,
        })?;
        if name.eq_ignore_ascii_case("FastCgiSpoolTotal") {
            self.spool_total = v;
        } else {
            self.spool_limit = v;
        }
        Ok(())
    }

    pub fn env(&self) -> &ParseEnv {
        &self.env
    }

    /// Updates the identity httpd currently reports (User/Group directives may
    /// appear between FastCGI directives; CFG-40 compares against it).
    pub fn set_identity(&mut self, uid: u32, gid: u32, user_name: &str, group_name: &str) {
        self.env.uid = uid;
        self.env.gid = gid;
        self.env.user_name = user_name.to_string();
        self.env.group_name = group_name.to_string();
    }

    /// Servers in definition order.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    pub fn dynamic(&self) -> &DynamicConfig {
        &self.dynamic
    }

    pub fn wrapper_path(&self) -> Option<&Path> {
        self.wrapper.as_deref()
    }

    /// The IPC directory in effect (configured or default).
    pub fn effective_ipc_dir(&self) -> &Path {
        &self.ipc_dir
    }

    /// `<ipc dir>/dynamic`.
    pub fn dynamic_dir(&self) -> PathBuf {
        self.ipc_dir.join("dynamic")
    }

    pub fn ipc_dir_fixed(&self) -> bool {
        self.ipc_dir_fixed
    }

    /// Warnings produced by the directives parsed so far (e.g.
    /// [`NO_WRAPPER_WARNING`]); the glue logs each at warn level.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The identity used for permission checks: the CFG-40 snapshot, or the
    /// current User/Group before any server directive.
    pub fn fcgi_identity(&self) -> Identity {
        self.identity_snapshot.clone().unwrap_or_else(|| Identity {
            uid: self.env.uid,
            gid: self.env.gid,
            user: self.env.user_name.clone(),
            group: self.env.group_name.clone(),
        })
    }

    /// RT-10: the server whose path is `filename` or a `/`-bounded prefix of
    /// it (doubled slashes collapsed first), latest definition first. Ignores
    /// wrapper identities (see [`ConfigState::find_server_for_identity`]).
    pub fn find_server(&self, filename: &Path) -> Option<&Server> {
        let p = no2slash(filename.as_os_str().as_bytes());
        self.servers.iter().rev().find(|s| prefix_matches(s.path(), &p))
    }

    /// RT-10 with RT-16: with a wrapper, the server's uid/gid must also equal
    /// the request's suexec identity.
    pub fn find_server_for_identity(&self, filename: &Path, uid: u32, gid: u32) -> Option<&Server> {
        let p = no2slash(filename.as_os_str().as_bytes());
        self.servers.iter().rev().find(|s| {
            prefix_matches(s.path(), &p)
                && (self.wrapper.is_none() || s.identity().is_some_and(|i| i.uid == uid && i.gid == gid))
        })
    }

    /// Socket of a dynamic application (PM-21).
    pub fn dynamic_socket_for(&self, app_path: &Path, user: &str, group: &str) -> PathBuf {
        dynamic_socket(&self.ipc_dir, app_path, user, group)
    }

    /// CFG-40: snapshot the identity on first use, refuse a change later.
    fn check_identity(&mut self, directive: &str, subject: &str) -> Result<(), ConfigError> {
        let current = Identity {
            uid: self.env.uid,
            gid: self.env.gid,
            user: self.env.user_name.clone(),
            group: self.env.group_name.clone(),
        };
        match &self.identity_snapshot {
            Some(s) if (s.uid, s.gid) != (current.uid, current.gid) => Err(ConfigError::Subject {
                directive: directive.to_string(),
                subject: subject.to_string(),
                reason: "User/Group commands must preceed FastCGI server definitions".into(),
            }),
            Some(_) => Ok(()),
            None => {
                self.identity_snapshot = Some(current);
                Ok(())
            }
        }
    }

    /// Fixes the IPC directory (CFG-11) and returns it.
    fn fix_ipc_dir(&mut self) -> PathBuf {
        self.ipc_dir_fixed = true;
        self.ipc_dir.clone()
    }

    /// A `-socket` value: absolute as is, relative inside the IPC dir.
    fn socket_path(&mut self, name: &str) -> PathBuf {
        let dir = self.fix_ipc_dir();
        if name.starts_with('/') {
            PathBuf::from(name)
        } else {
            dir.join(name)
        }
    }

    /// `-initial-env NAME[=VALUE]`.
    fn env_entry(&self, word: &str, count: usize) -> Result<(String, String), String> {
        if word.is_empty() {
            return Err(values::EMPTY.into());
        }
        if count >= MAX_INIT_ENV_VARS {
            return Err("too many variables, must be <= MAX_INIT_ENV_VARS".into());
        }
        Ok(match word.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (word.to_string(), (self.env.getenv)(word).unwrap_or_default()),
        })
    }

    /// Legacy `fcgi_util_fs_is_path_ok` for an application file.
    fn check_script(&self, path: &Path, fs: &dyn FileProbe) -> Result<(), String> {
        let info = fs
            .stat(path)
            .map_err(|e| format!("stat({}) failed: {}", path.display(), strerror(&e)))?;
        if info.is_dir {
            return Err("script is a directory!".into());
        }
        if self.wrapper.is_none() {
            let id = self.fcgi_identity();
            let in_group = fs.user_in_group(&id.user, info.gid);
            executable_by(&info, id.uid, id.gid, in_group)
                .map_err(|r| format!("access for server (uid {}, gid {}) not allowed: {r}", id.uid, id.gid))?;
        }
        Ok(())
    }

    /// CFG-37/CFG-41: with a wrapper, resolve `-user`/`-group` (defaults: the
    /// main server's User/Group) to an identity; without one, warn if given.
    fn wrapper_identity(
        &mut self,
        directive: &str,
        path: &str,
        opts: &ConnOptions,
    ) -> Result<Option<Identity>, ConfigError> {
        if self.wrapper.is_none() {
            if opts.user.is_some() || opts.group.is_some() {
                self.warnings.push(NO_WRAPPER_WARNING.to_string());
            }
            return Ok(None);
        }
        let fail = |reason: String| ConfigError::Subject {
            directive: directive.to_string(),
            subject: path.to_string(),
            reason: format!("invalid user or group: {reason}"),
        };
        let user = opts.user.clone().unwrap_or_else(|| format!("#{}", self.env.uid));
        let group = opts.group.clone().unwrap_or_else(|| format!("#{}", self.env.gid));
        let uid = id_of(&user, self.env.uid_by_name).ok_or_else(|| fail(format!("bad user name {user}")))?;
        let gid = id_of(&group, self.env.gid_by_name).ok_or_else(|| fail(format!("bad group name {group}")))?;
        if uid == 0 || gid == 0 {
            return Err(fail("invalid uid or gid, see the -user and -group options".into()));
        }
        let user_name = (self.env.user_by_uid)(uid).ok_or_else(|| {
            fail(format!(
                "getpwuid() couldn't determine the username for uid '{uid}', \
                 you probably need to modify the User directive"
            ))
        })?;
        let group_name = (self.env.group_by_gid)(gid).ok_or_else(|| {
            fail(format!(
                "getgrgid() couldn't determine the group name for gid '{gid}', \
                 you probably need to modify the Group directive"
            ))
        })?;
        Ok(Some(Identity {
            uid,
            gid,
            user: user_name,
            group: group_name,
        }))
    }

    /// CFG-42: is `path` (or a `/`-bounded prefix) already defined, for this
    /// identity when a wrapper is in use?
    fn check_redefinition(
        &self,
        directive: &str,
        path: &Path,
        kind: ServerKind,
        identity: Option<&Identity>,
    ) -> Result<(), ConfigError> {
        let taken = match identity {
            Some(id) => self.find_server_for_identity(path, id.uid, id.gid).is_some(),
            None => self.find_server(path).is_some(),
        };
        if taken {
            return Err(ConfigError::Redefinition {
                directive: directive.to_string(),
                path: path_string(path),
                kind,
                ids: identity.map(|i| (i.uid, i.gid)),
            });
        }
        Ok(())
    }

    /// `FastCgiServer <path> [option ...]` (alias `AppClass`), 2.2.
    pub fn fastcgi_server(&mut self, directive_name: &str, args: &str, fs: &dyn FileProbe) -> Result<(), ConfigError> {
        let directive = directive_name;
        let mut words = tokenize(args).into_iter();
        let raw = value(&mut words);
        if raw.is_empty() {
            return Err(ConfigError::StaticPathMissing);
        }
        self.check_identity(directive, &raw)?;
        let path = normalize_path(&self.env.server_root, &raw, true);
        let shown = path_string(&path);
        if self.wrapper.is_none() {
            self.check_redefinition(directive, &path, ServerKind::Static, None)?;
        }
        self.check_script(&path, fs)
            .map_err(|reason| ConfigError::PathNotUsable {
                directive: directive.to_string(),
                path: shown.clone(),
                reason,
            })?;

        let mut s = StaticServer {
            path: path.clone(),
            listen: StaticListen::Unix(PathBuf::new()),
            processes: 1,
            restart_delay: 5,
            init_start_delay: 1,
            min_server_life: 30,
            priority: 0,
            listen_queue_depth: 100,
            initial_env: Vec::new(),
            opts: ConnOptions::default(),
            identity: None,
        };
        let mut port: Option<SocketAddr> = None;
        let mut socket: Option<String> = None;
        while let Some(option) = words.next() {
            let lower = option.to_ascii_lowercase();
            let invalid = |reason: String| ConfigError::InvalidValue {
                directive: directive.to_string(),
                path: Some(shown.clone()),
                option: option.clone(),
                reason,
            };
            if let Some(r) = conn_option(&mut s.opts, &lower, &mut words) {
                r.map_err(invalid)?;
                continue;
            }
            match lower.as_str() {
                "-processes" => s.processes = values::unsigned(&value(&mut words), 1).map_err(invalid)?,
                "-restart-delay" => s.restart_delay = values::unsigned(&value(&mut words), 0).map_err(invalid)?,
                "-init-start-delay" => s.init_start_delay = values::signed(&value(&mut words), 0).map_err(invalid)?,
                "-min-server-life" => s.min_server_life = values::unsigned(&value(&mut words), 0).map_err(invalid)?,
                "-priority" => s.priority = values::unsigned(&value(&mut words), 0).map_err(invalid)?,
                "-listen-queue-depth" => {
                    s.listen_queue_depth = values::unsigned(&value(&mut words), 1).map_err(invalid)?
                }
                "-port" => port = Some(values::bind_address(&value(&mut words)).map_err(invalid)?),
                "-socket" => socket = Some(text(&mut words).map_err(invalid)?),
                "-initial-env" => {
                    let entry = self
                        .env_entry(&value(&mut words), s.initial_env.len())
                        .map_err(invalid)?;
                    s.initial_env.push(entry);
                }
                _ => {
                    return Err(ConfigError::InvalidOption {
                        directive: directive.to_string(),
                        path: Some(shown),
                        option,
                    })
                }
            }
        }

        let subject_err = |reason: String| ConfigError::Subject {
            directive: directive.to_string(),
            subject: shown.clone(),
            reason,
        };
        s.identity = self.wrapper_identity(directive, &shown, &s.opts)?;
        if s.identity.is_some() {
            self.check_redefinition(directive, &path, ServerKind::Static, s.identity.as_ref())?;
        }
        if socket.is_some() && port.is_some() {
            return Err(subject_err("-port and -socket are mutually exclusive options".into()));
        }
        s.listen = match (port, socket) {
            (Some(addr), _) => StaticListen::Tcp(addr),
            (None, Some(name)) => StaticListen::Unix(self.socket_path(&name)),
            (None, None) => {
                let dir = self.fix_ipc_dir();
                let names = s.identity.as_ref().map(|i| (i.user.as_str(), i.group.as_str()));
                StaticListen::Unix(default_static_socket(&dir, &path, names))
            }
        };
        if let StaticListen::Unix(sock) = &s.listen {
            check_socket_len(sock).map_err(subject_err)?;
            match paths::socket_dir_risk(sock, fs) {
                Some(paths::SocketDirRisk::Open { dir, mode }) => {
                    return Err(ConfigError::InvalidValue {
                        directive: directive.to_string(),
                        path: Some(shown.clone()),
                        option: "-socket".into(),
                        reason: format!(
                            "the directory \"{}\" is writable by its group or by others and not sticky (mode \
                             {mode:04o}): anyone with write access could replace the socket; use a name relative \
                             to FastCgiIpcDir",
                            dir.display()
                        ),
                    })
                }
                Some(paths::SocketDirRisk::Sticky { dir, mode }) => self.warnings.push(format!(
                    "FastCGI: server \"{shown}\": -socket \"{}\" is in the shared directory \"{}\" (mode \
                     {mode:04o}): another local user can bind that name first (requests are then refused with \
                     503, never sent to them); use a name relative to FastCgiIpcDir",
                    sock.display(),
                    dir.display()
                )),
                None => {}
            }
        }
        self.servers.push(Server::Static(s));
        Ok(())
    }

    /// `FastCgiExternalServer <path> -host h:p | -socket s [option ...]`
    /// (alias `ExternalAppClass`), 2.3. The path need not exist.
    pub fn external_server(&mut self, directive_name: &str, args: &str) -> Result<(), ConfigError> {
        let directive = directive_name;
        let mut words = tokenize(args).into_iter();
        let raw = value(&mut words);
        if raw.is_empty() {
            return Err(ConfigError::ExternalPathMissing {
                directive: directive.to_string(),
            });
        }
        self.check_identity(directive, &raw)?;
        let path = normalize_path(&self.env.server_root, &raw, true);
        let shown = path_string(&path);
        if self.wrapper.is_none() {
            self.check_redefinition(directive, &path, ServerKind::External, None)?;
        }

        let mut opts = ConnOptions::default();
        // Backends in the order given: `-host` (resolved below) or `-socket`.
        let mut given: Vec<Backend> = Vec::new();
        let mut retry = DEFAULT_RETRY;
        while let Some(option) = words.next() {
            let lower = option.to_ascii_lowercase();
            let invalid = |reason: String| ConfigError::InvalidValue {
                directive: directive.to_string(),
                path: Some(shown.clone()),
                option: option.clone(),
                reason,
            };
            if let Some(r) = conn_option(&mut opts, &lower, &mut words) {
                r.map_err(invalid)?;
                continue;
            }
            match lower.as_str() {
                "-host" => given.push(Backend::Host(
                    values::host_and_port(&value(&mut words)).map_err(invalid)?,
                )),
                "-socket" => given.push(Backend::Socket(text(&mut words).map_err(invalid)?)),
                "-retry" => retry = values::unsigned(&value(&mut words), 1).map_err(invalid)?,
                "-multiplex" => {
                    opts.multiplex = match value(&mut words).to_ascii_lowercase().as_str() {
                        "on" => true,
                        "off" => false,
                        other => return Err(invalid(format!("\"{other}\": must be on or off"))),
                    }
                }
                "-peer-user" => {
                    let name = text(&mut words).map_err(invalid)?;
                    let uid = match name.strip_prefix('#') {
                        Some(n) => n.parse().ok(),
                        None => (self.env.uid_by_name)(&name),
                    };
                    opts.peer_uid = Some(uid.ok_or_else(|| invalid(format!("no such user \"{name}\"")))?);
                }
                _ => {
                    return Err(ConfigError::InvalidOption {
                        directive: directive.to_string(),
                        path: Some(shown),
                        option,
                    })
                }
            }
        }

        let subject_err = |reason: String| ConfigError::Subject {
            directive: directive.to_string(),
            subject: shown.clone(),
            reason,
        };
        let identity = self.wrapper_identity(directive, &shown, &opts)?;
        if identity.is_some() {
            self.check_redefinition(directive, &path, ServerKind::External, identity.as_ref())?;
        }
        if given.is_empty() {
            return Err(subject_err("-socket or -host option missing".into()));
        }
        if opts.peer_uid.is_some() && given.iter().any(|b| matches!(b, Backend::Host(_))) {
            return Err(ConfigError::InvalidValue {
                directive: directive.to_string(),
                path: Some(shown.clone()),
                option: "-peer-user".into(),
                reason: "only works with -socket (a TCP peer's user can't be checked)".into(),
            });
        }
        let mut addrs: Vec<AppAddr> = Vec::new();
        for b in given {
            let found = match b {
                Backend::Host((h, port)) => self
                    .resolve_all(&h, port)
                    .map_err(subject_err)?
                    .into_iter()
                    .map(AppAddr::Tcp)
                    .collect(),
                Backend::Socket(name) => {
                    let sock = self.socket_path(&name);
                    check_socket_len(&sock).map_err(subject_err)?;
                    vec![AppAddr::Unix(sock)]
                }
            };
            // (The same backend named twice, or reached through two names,
            // counts once.)
            for a in found {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
        self.servers.push(Server::External(ExternalServer {
            path,
            addrs,
            retry,
            opts,
            identity,
        }));
        Ok(())
    }

    /// Every address of a `-host` name (one for an IP literal), in the
    /// resolver's order, without duplicates.
    fn resolve_all(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let failed = format!("failed to resolve \"{host}\" to an IP address");
        if host.is_empty() {
            return Err(failed);
        }
        match (self.env.resolve)(host, port) {
            Ok(found) => {
                let mut addrs: Vec<SocketAddr> = Vec::new();
                for a in found.into_iter().map(|a| SocketAddr::new(a.ip(), port)) {
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
                if addrs.is_empty() {
                    Err(failed)
                } else {
                    Ok(addrs)
                }
            }
            Err(e) => Err(format!("{failed}: {}", strerror(&e))),
        }
    }

    /// `FastCgiConfig [option ...]` (alias `FCGIConfig`), 2.4. Options named
    /// overwrite their current values; `-initial-env` replaces the whole
    /// environment (an occurrence without it empties it); `-pass-header`
    /// accumulates across occurrences (CFG-20, CFG-21).
    pub fn fastcgi_config(&mut self, directive_name: &str, args: &str) -> Result<(), ConfigError> {
        let directive = directive_name;
        let mut d = self.dynamic.clone();
        let mut env: Vec<(String, String)> = Vec::new();
        let mut words = tokenize(args).into_iter();
        while let Some(option) = words.next() {
            let invalid = |reason: String| ConfigError::InvalidValue {
                directive: directive.to_string(),
                path: None,
                option: option.clone(),
                reason,
            };
            let lower = option.to_ascii_lowercase();
            let w = &mut words;
            match lower.as_str() {
                "-maxprocesses" => d.max_processes = values::unsigned(&value(w), 1).map_err(invalid)?,
                "-minprocesses" => d.min_processes = values::signed(&value(w), 0).map_err(invalid)?,
                "-maxclassprocesses" => d.max_class_processes = values::signed(&value(w), 1).map_err(invalid)?,
                "-killinterval" => d.kill_interval = values::unsigned(&value(w), 1).map_err(invalid)?,
                "-updateinterval" => d.update_interval = values::unsigned(&value(w), 1).map_err(invalid)?,
                "-gainvalue" => d.gain_value = values::float(&value(w), 0.0, 1.0).map_err(invalid)?,
                "-singlethreshold" | "-singlethreshhold" => {
                    d.single_threshold = values::signed(&value(w), 0).map_err(invalid)?
                }
                "-multithreshold" | "-multithreshhold" => {
                    d.multi_threshold = values::signed(&value(w), 0).map_err(invalid)?
                }
                "-startdelay" => d.start_delay = values::unsigned(&value(w), 1).map_err(invalid)?,
                "-initial-env" => {
                    let entry = self.env_entry(&value(w), env.len()).map_err(invalid)?;
                    env.push(entry);
                }
                "-pass-header" => d.pass_headers.push(pass_header(w).map_err(invalid)?),
                "-pass-php-values" => d.pass_php_values = true,
                "-appconntimeout" => d.app_conn_timeout = values::unsigned(&value(w), 0).map_err(invalid)?,
                "-idle-timeout" => d.idle_timeout = values::unsigned(&value(w), 1).map_err(invalid)?,
                "-listen-queue-depth" => d.listen_queue_depth = values::unsigned(&value(w), 1).map_err(invalid)?,
                "-min-server-life" => d.min_server_life = values::signed(&value(w), 0).map_err(invalid)?,
                "-restart-delay" => d.restart_delay = values::unsigned(&value(w), 0).map_err(invalid)?,
                "-init-start-delay" => d.init_start_delay = values::unsigned(&value(w), 0).map_err(invalid)?,
                "-processslack" => d.process_slack = values::unsigned(&value(w), 1).map_err(invalid)?,
                "-priority" => d.priority = values::unsigned(&value(w), 0).map_err(invalid)?,
                "-restart" => d.restart = true,
                "-autoupdate" => d.auto_update = true,
                "-flush" => d.flush = true,
                _ => {
                    return Err(ConfigError::InvalidOption {
                        directive: directive.to_string(),
                        path: None,
                        option,
                    })
                }
            }
        }
        if d.process_slack > d.max_processes {
            return Err(ConfigError::Directive {
                directive: directive.to_string(),
                reason: format!(
                    "processSlack ({}) must be less than maxProcesses ({}) + 1",
                    d.process_slack, d.max_processes
                ),
            });
        }
        d.initial_env = env;
        self.dynamic = d;
        Ok(())
    }

    /// `FastCgiIpcDir <dir>` (2.5): fixes the IPC directory and creates or
    /// checks it and its `dynamic/` subdirectory right away (CFG-08, CFG-30).
    pub fn ipc_dir(&mut self, arg: &str, fs: &dyn FileProbe) -> Result<(), ConfigError> {
        const NAME: &str = "FastCgiIpcDir";
        if self.ipc_dir_fixed {
            return Err(ConfigError::Subject {
                directive: NAME.into(),
                subject: arg.to_string(),
                reason: format!("already defined as \"{}\"", self.ipc_dir.display()),
            });
        }
        self.check_identity(NAME, arg)?;
        if !self.servers.is_empty() {
            return Err(ConfigError::MustPrecede { directive: NAME.into() });
        }
        let dir = trim_trailing_slashes(normalize_path(&self.env.server_root, arg, false));
        let previous = std::mem::replace(&mut self.ipc_dir, dir);
        if let Err(reason) = self.prepare_ipc_dir(fs) {
            let shown = path_string(&self.ipc_dir);
            self.ipc_dir = previous;
            return Err(ConfigError::Subject {
                directive: NAME.into(),
                subject: shown,
                reason,
            });
        }
        self.ipc_dir_fixed = true;
        Ok(())
    }

    /// Creates (mode 0700, chowned to User:Group when root) or checks (must be
    /// a directory with rwx for the module's identity) the IPC directory and
    /// `dynamic/` (CFG-30). At post_config the glue calls this again and logs
    /// a failure as `FastCGI: <reason>` (CFG-32).
    pub fn prepare_ipc_dir(&self, fs: &dyn FileProbe) -> Result<(), String> {
        self.prepare_dir(&self.ipc_dir, fs)?;
        let dynamic = self.dynamic_dir();
        self.prepare_dir(&dynamic, fs)
            .map_err(|e| format!("can't create dynamic directory \"{}\": {e}", dynamic.display()))
    }

    fn prepare_dir(&self, dir: &Path, fs: &dyn FileProbe) -> Result<(), String> {
        if !dir.is_absolute() {
            return Err("path is not absolute (it must start with a \"/\")".into());
        }
        // Security review, finding 2: a link passes the checks below with its
        // target's owner and mode, and can be re-pointed afterwards.
        if fs.is_symlink(dir) {
            return Err(
                "is a symbolic link; refusing it because whoever controls the link could redirect the \
                 application sockets (name the real directory)"
                    .into(),
            );
        }
        match fs.stat(dir) {
            Err(_) => {
                fs.create_dir(dir, 0o700)
                    .map_err(|e| format!("doesn't exist and can't be created: {}", strerror(&e)))?;
                if self.env.is_root {
                    fs.chown(dir, self.env.uid, self.env.gid).map_err(|e| {
                        format!(
                            "can't chown() to the server (uid {}, gid {}): {}",
                            self.env.uid,
                            self.env.gid,
                            strerror(&e)
                        )
                    })?;
                }
                Ok(())
            }
            Ok(info) if !info.is_dir => Err("isn't a directory!".into()),
            Ok(info) => {
                let id = self.fcgi_identity();
                let in_group = fs.user_in_group(&id.user, info.gid);
                check_access(&info, Want::ALL, id.uid, id.gid, in_group)
                    .map_err(|r| format!("access for server (uid {}, gid {}) failed: {r}", id.uid, id.gid))?;
                // SG-12 (deliberate hardening, legacy accepted these): whoever
                // can write the directory can replace the sockets in it.
                if info.mode & 0o022 != 0 {
                    return Err(format!(
                        "is writable by its group or by others (mode {:04o}); refusing it because anyone with \
                         write access could replace the application sockets (chmod go-w it, or use another directory)",
                        info.mode & 0o7777
                    ));
                }
                if info.uid != id.uid {
                    return Err(format!(
                        "is owned by uid {}, not by the server's user {} (uid {}); chown it or use another directory",
                        info.uid, id.user, id.uid
                    ));
                }
                Ok(())
            }
        }
    }

    /// `FastCgiWrapper On|Off|<path>` (alias `FastCgiSuexec`), 2.6.
    pub fn wrapper(&mut self, directive_name: &str, arg: &str, fs: &dyn FileProbe) -> Result<(), ConfigError> {
        let directive = directive_name;
        if let Some(previous) = &self.wrapper {
            return Err(ConfigError::AlreadySet {
                directive: directive.to_string(),
                previous: path_string(previous),
            });
        }
        self.check_identity(directive, arg)?;
        if !self.servers.is_empty() {
            return Err(ConfigError::MustPrecede {
                directive: directive.to_string(),
            });
        }
        if arg.eq_ignore_ascii_case("off") {
            return Ok(());
        }
        let wrapper = if arg.eq_ignore_ascii_case("on") {
            self.env.suexec_path.clone().ok_or_else(|| ConfigError::Directive {
                directive: directive.to_string(),
                reason: "\"On\" selects httpd's suexec, but this httpd has no suexec binary".into(),
            })?
        } else {
            normalize_path(&self.env.server_root, arg, false)
        };
        let id = self.fcgi_identity();
        let checked = match fs.stat(&wrapper) {
            Err(e) => Err(format!("stat({}) failed: {}", wrapper.display(), strerror(&e))),
            Ok(info) => {
                let in_group = fs.user_in_group(&id.user, info.gid);
                executable_by(&info, id.uid, id.gid, in_group).map_err(str::to_string)
            }
        };
        if let Err(reason) = checked {
            return Err(ConfigError::PathNotUsable {
                directive: directive.to_string(),
                path: path_string(&wrapper),
                reason: format!(
                    "execute access for server (uid {}, gid {}) failed: {reason}",
                    id.uid, id.gid
                ),
            });
        }
        self.wrapper = Some(wrapper);
        Ok(())
    }
}

/// `#123` or a name, through `by_name` (legacy `ap_uname2id`/`ap_gname2id`).
fn id_of(spec: &str, by_name: fn(&str) -> Option<u32>) -> Option<u32> {
    match spec.strip_prefix('#') {
        Some(num) if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => num.parse().ok(),
        Some(_) => None,
        None => by_name(spec),
    }
}

/// CFG-30: trailing slashes are removed (a lone `/` stays).
fn trim_trailing_slashes(p: PathBuf) -> PathBuf {
    let s = p.to_string_lossy();
    let t = s.trim_end_matches('/');
    if t.is_empty() {
        PathBuf::from("/")
    } else {
        PathBuf::from(t)
    }
}
