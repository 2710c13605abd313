//! What the process manager is told: one [`PmConfig`] per httpd generation, listing the
//! static application classes (`FastCgiServer`, section 2.2) it must keep running.

use crate::config::{StaticListen, StaticServer};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a class's shared listening socket lives (PM-20, PM-22).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Listen {
    /// Unix socket file: `-socket` or the md5 name in the IPC dir.
    Unix(PathBuf),
    /// `-port`: TCP, usually `0.0.0.0:<port>` (SE-2).
    Tcp(SocketAddr),
}

/// One static application class (`FastCgiServer <path> [options]`).
///
/// Two specs compare equal exactly when the PM may keep the running processes of one for
/// the other across a graceful restart (including `app_mtime`: a rebuilt application is
/// restarted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSpec {
    /// Canonical application path; also argv\[0\] and (its directory) the working directory.
    pub path: PathBuf,
    pub listen: Listen,
    /// `-processes` (≥ 1).
    pub processes: u32,
    /// `-restart-delay` seconds.
    pub restart_delay: u32,
    /// `-init-start-delay` seconds.
    pub init_start_delay: u32,
    /// `-min-server-life` seconds.
    pub min_server_life: u32,
    /// `-priority`: `nice()` increment, 0 = not called. Passed as a C `int`, so a wrapped
    /// negative value is a negative increment (legacy).
    pub priority: u32,
    /// `-listen-queue-depth`: the `listen()` backlog.
    pub listen_queue_depth: u32,
    /// `-initial-env`: the process's whole environment, in order.
    pub initial_env: Vec<(String, String)>,
    /// mtime (seconds) of the application file when the configuration was read.
    pub app_mtime: i64,
    /// `FastCgiWrapper`: start the application through this wrapper (PM-27).
    pub wrapper: Option<WrapperExec>,
}

/// How a class is started through `FastCgiWrapper` (PM-27): `argv = [wrapper, user, group,
/// basename of the application]`, working directory the application's, same environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperExec {
    pub path: PathBuf,
    /// User and group names the wrapper is asked to run the application as.
    pub user: String,
    pub group: String,
}

impl ClassSpec {
    /// Builds the PM's view of a parsed `FastCgiServer`. `app_mtime` is the application
    /// file's mtime (seconds) as the glue saw it at post_config.
    pub fn from_static(s: &StaticServer, app_mtime: i64, wrapper: Option<WrapperExec>) -> ClassSpec {
        ClassSpec {
            path: s.path.clone(),
            listen: match &s.listen {
                StaticListen::Unix(p) => Listen::Unix(p.clone()),
                StaticListen::Tcp(a) => Listen::Tcp(*a),
            },
            processes: s.processes,
            restart_delay: s.restart_delay,
            init_start_delay: s.init_start_delay,
            min_server_life: s.min_server_life,
            priority: s.priority,
            listen_queue_depth: s.listen_queue_depth,
            initial_env: s.initial_env.clone(),
            app_mtime,
            wrapper,
        }
    }
}

/// A complete configuration, sent once per httpd generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmConfig {
    /// Increases with every generation (only logged).
    pub generation: u64,
    pub classes: Vec<ClassSpec>,
    /// httpd did a hard restart (`restart`/SIGHUP): restart every class.
    pub hard_restart: bool,
    /// pids of the httpd children of the previous generation (graceful restart): the PM
    /// may only stop processes of retired classes once none of these is alive any more
    /// (they may still be talking to them).
    pub old_children: Vec<i32>,
    /// httpd `LogLevel` as an APLOG_* number (0 = emerg .. 7 = debug): only lines at or
    /// below it are logged.
    pub log_level: u8,
}
