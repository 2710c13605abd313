//! What the process manager is told: one [`PmConfig`] per httpd generation, listing the
//! static application classes (`FastCgiServer`, section 2.2) it must keep running and the
//! settings of dynamic applications (`FastCgiConfig`, section 2.4).

use super::req::ClassKey;
use crate::config::{DynamicConfig, StaticListen, StaticServer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// `FastCgiConfig` as the PM needs it (section 2.4, 4.6): how dynamic application classes
/// are created, started and scaled.
///
/// Two specs compare equal exactly when the PM may keep the running dynamic classes across
/// a graceful restart.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicSpec {
    /// Dynamic applications may be started (`FastCgiConfig` present or a `fastcgi-script`
    /// handler in use). Request messages are ignored otherwise.
    pub enabled: bool,
    /// `<FastCgiIpcDir>/dynamic`: where the class sockets live (PM-21).
    pub dynamic_dir: PathBuf,
    /// `-maxProcesses`: hard cap on dynamic processes, all classes together.
    pub max_processes: u32,
    /// `-minProcesses`: the kill policy never goes below this many dynamic processes.
    pub min_processes: u32,
    /// `-maxClassProcesses`: hard cap per class.
    pub max_class_processes: u32,
    /// `-killInterval` seconds.
    pub kill_interval: u32,
    /// `-updateInterval` seconds: the load measurement window.
    pub update_interval: u32,
    /// `-gainValue`: weight of the newest window in the smoothed load.
    pub gain_value: f32,
    /// `-singleThreshold`: keep the only process of a class at or above this load (%);
    /// 0 = never kill it.
    pub single_threshold: u32,
    /// `-multiThreshold`: keep all processes of a class at or above this per-process load.
    pub multi_threshold: u32,
    pub listen_queue_depth: u32,
    pub min_server_life: u32,
    pub restart_delay: u32,
    pub init_start_delay: u32,
    /// `-processSlack`: run the kill policy at every wake-up once
    /// `total + process_slack >= max_processes`.
    pub process_slack: u32,
    /// `-priority`: `nice()` increment (accepted here, unlike legacy; bug 24).
    pub priority: u32,
    /// `-restart`: restart processes that die unprovoked.
    pub restart: bool,
    /// `-autoUpdate`: honour restart messages (PM-58).
    pub auto_update: bool,
    /// `-initial-env`: the processes' whole environment.
    pub initial_env: Vec<(String, String)>,
    /// `FastCgiWrapper`: used for classes whose key names a user (PM-27).
    pub wrapper: Option<PathBuf>,
}

impl DynamicSpec {
    /// The PM's view of `FastCgiConfig`; `enabled` is set.
    pub fn from_config(cfg: &DynamicConfig, dynamic_dir: PathBuf, wrapper: Option<PathBuf>) -> DynamicSpec {
        DynamicSpec {
            enabled: true,
            dynamic_dir,
            max_processes: cfg.max_processes,
            min_processes: cfg.min_processes,
            max_class_processes: cfg.max_class_processes,
            kill_interval: cfg.kill_interval,
            update_interval: cfg.update_interval,
            gain_value: cfg.gain_value,
            single_threshold: cfg.single_threshold,
            multi_threshold: cfg.multi_threshold,
            listen_queue_depth: cfg.listen_queue_depth,
            min_server_life: cfg.min_server_life,
            restart_delay: cfg.restart_delay,
            init_start_delay: cfg.init_start_delay,
            process_slack: cfg.process_slack,
            priority: cfg.priority,
            restart: cfg.restart,
            auto_update: cfg.auto_update,
            initial_env: cfg.initial_env.clone(),
            wrapper,
        }
    }

    /// `FastCgiConfig` defaults, not enabled, no directory.
    pub fn disabled() -> DynamicSpec {
        DynamicSpec {
            enabled: false,
            ..DynamicSpec::from_config(&DynamicConfig::default(), PathBuf::new(), None)
        }
    }

    /// The socket of a dynamic class: `<dynamic_dir>/<md5 of path + user + group>`, the
    /// name computed by [`crate::config::dynamic_socket`] exactly as the request handler
    /// computes it.
    pub fn socket_path(&self, key: &ClassKey) -> PathBuf {
        let full = crate::config::dynamic_socket(Path::new(""), &key.path, &key.user, &key.group);
        match full.file_name() {
            Some(name) => self.dynamic_dir.join(name),
            None => full,
        }
    }

    /// The settings one process of class `key` is started with. With a wrapper and a key
    /// naming a user, `argv = [wrapper, user, group, basename]`; with user `-` (legacy:
    /// uid and gid 0) the application is executed directly (PM-27).
    pub fn class_spec(&self, key: &ClassKey) -> ClassSpec {
        ClassSpec {
            path: key.path.clone(),
            listen: Listen::Unix(self.socket_path(key)),
            processes: self.max_class_processes.max(1),
            restart_delay: self.restart_delay,
            init_start_delay: self.init_start_delay,
            min_server_life: self.min_server_life,
            priority: self.priority,
            listen_queue_depth: self.listen_queue_depth,
            initial_env: self.initial_env.clone(),
            app_mtime: 0,
            wrapper: match &self.wrapper {
                Some(w) if key.user != "-" => Some(WrapperExec {
                    path: w.clone(),
                    user: key.user.clone(),
                    group: key.group.clone(),
                }),
                _ => None,
            },
        }
    }
}

impl Default for DynamicSpec {
    fn default() -> Self {
        DynamicSpec::disabled()
    }
}

/// A complete configuration, sent once per httpd generation.
#[derive(Debug, Clone, PartialEq)]
pub struct PmConfig {
    /// Increases with every generation (only logged).
    pub generation: u64,
    pub classes: Vec<ClassSpec>,
    /// httpd did a hard restart (`restart`/SIGHUP): restart every class.
    pub hard_restart: bool,
    /// pids of the httpd worker processes of the previous generation (from httpd's
    /// scoreboard; piped loggers and other helper children are not in it): the PM
    /// may only stop processes of retired classes once none of these is alive any more
    /// (they may still be talking to them).
    pub old_children: Vec<i32>,
    /// httpd `LogLevel` as an APLOG_* number (0 = emerg .. 7 = debug): only lines at or
    /// below it are logged.
    pub log_level: u8,
    /// Dynamic applications (`FastCgiConfig`).
    pub dynamic: DynamicSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_socket_name_matches_the_request_handlers() {
        let mut d = DynamicSpec::disabled();
        d.dynamic_dir = "/var/lib/apache2/fastcgi/dynamic".into();
        let key = ClassKey {
            path: "/srv/app.fcgi".into(),
            user: "-".into(),
            group: "-".into(),
        };
        let want = crate::config::dynamic_socket(Path::new("/var/lib/apache2/fastcgi"), &key.path, "-", "-");
        assert_eq!(d.socket_path(&key), want);
        // md5("/srv/app.fcgi--")
        assert_eq!(
            d.socket_path(&key).file_name().unwrap().to_str().unwrap(),
            crate::config::md5_hex(b"/srv/app.fcgi--")
        );
    }

    #[test]
    fn class_spec_and_wrapper_convention() {
        let mut d = DynamicSpec::from_config(&DynamicConfig::default(), "/ipc/dynamic".into(), None);
        assert!(d.enabled);
        let plain = ClassKey {
            path: "/srv/a.fcgi".into(),
            user: "-".into(),
            group: "-".into(),
        };
        let c = d.class_spec(&plain);
        assert_eq!(c.processes, 10);
        assert_eq!((c.restart_delay, c.init_start_delay, c.min_server_life), (5, 1, 30));
        assert_eq!(c.listen_queue_depth, 100);
        assert_eq!(c.wrapper, None);
        d.wrapper = Some("/usr/lib/apache2/suexec".into());
        assert_eq!(d.class_spec(&plain).wrapper, None, "user - skips the wrapper");
        let wrapped = ClassKey {
            user: "1001".into(),
            group: "1002".into(),
            ..plain
        };
        assert_eq!(
            d.class_spec(&wrapped).wrapper,
            Some(WrapperExec {
                path: "/usr/lib/apache2/suexec".into(),
                user: "1001".into(),
                group: "1002".into()
            })
        );
        assert_ne!(d.class_spec(&wrapped).listen, d.class_spec(&plain_key()).listen);
    }

    fn plain_key() -> ClassKey {
        ClassKey {
            path: "/srv/a.fcgi".into(),
            user: "-".into(),
            group: "-".into(),
        }
    }
}
