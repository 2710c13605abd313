//! The module proper: configuration state of one configuration pass,
//! directive glue, the fixups rule and the `fastcgi-script` handler.
//!
//! State lives in the configuration pool (`pconf`) of the pass that parsed
//! it — nothing survives httpd's unload/reload of the DSO between passes
//! (STYLE habit 5). Each server's module config points at it once
//! `post_config` has run.
#![forbid(unsafe_code)]

pub mod auth;
pub mod connect;
pub mod directives;
pub mod env;
pub mod handler;
mod pm_backoff;
pub mod routing;
pub mod status;
mod suexec_id;
pub mod supervisor;

use crate::config::ConfigState;
use crate::httpd::{ConfigPool, Pool};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Everything this module knows about one configuration pass.
pub struct ModuleState {
    /// Built by the directives (single-threaded config reading).
    parsing: Mutex<ConfigState>,
    /// Frozen by `post_config`; what requests read, without locking.
    running: OnceLock<ConfigState>,
    /// The configuration pool this state lives in (usable in httpd's
    /// parent only).
    pub pconf: ConfigPool,
}

/// Per-server module config: the pass's [`ModuleState`], filled in by
/// `post_config`.
#[derive(Default)]
pub struct ServerConf {
    pub state: OnceLock<&'static ModuleState>,
}

impl ModuleState {
    /// The state of the configuration pass that owns `pconf`.
    pub fn of_pass(pconf: Pool<'static>) -> &'static ModuleState {
        pconf.singleton(c"mod_fastcgi:state", || ModuleState {
            parsing: Mutex::new(directives::new_config_state(pconf)),
            running: OnceLock::new(),
            pconf: ConfigPool::new(pconf),
        })
    }

    /// The configuration being parsed.
    pub fn parsing(&self) -> MutexGuard<'_, ConfigState> {
        self.parsing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Freezes the parsed configuration for request processing.
    pub fn freeze(&self) -> &ConfigState {
        self.running.get_or_init(|| self.parsing().clone())
    }

    /// The frozen configuration (None before post_config).
    pub fn config(&self) -> Option<&ConfigState> {
        self.running.get()
    }
}
