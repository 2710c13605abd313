//! The module proper: configuration state of one configuration pass,
//! directive glue, the fixups rule and the `fastcgi-script` handler.
//!
//! State lives in the configuration pool (`pconf`) of the pass that parsed
//! it — nothing survives httpd's unload/reload of the DSO between passes
//! (STYLE habit 5). Each server's module config points at it once
//! `post_config` has run.
#![forbid(unsafe_code)]

pub mod directives;
pub mod env;
pub mod handler;
pub mod routing;

use crate::config::ConfigState;
use crate::httpd::Pool;
use std::sync::OnceLock;

/// Everything this module knows about the running configuration.
pub struct ModuleState {
    pub cfg: ConfigState,
}

/// Per-server module config: the pass's [`ModuleState`], filled in by
/// `post_config` (request handlers only read it).
#[derive(Default)]
pub struct ServerConf {
    pub state: OnceLock<&'static ModuleState>,
}

impl ModuleState {
    /// The state of the configuration pass that owns `pconf`.
    pub fn of_pass(pconf: Pool) -> &'static mut ModuleState {
        pconf.singleton(c"mod_fastcgi:state", || ModuleState {
            cfg: directives::new_config_state(pconf),
        })
    }
}
