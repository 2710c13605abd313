#![no_main]
//! Directive parsing must never panic on any argument text.
use libfuzzer_sys::fuzz_target;
use mod_fastcgi::config::{ConfigState, ParseEnv};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut env = ParseEnv::new("/srv", "/srv/run/fastcgi", 33, 33, "www-data", "www-data");
    env.resolve = |_, _| Err(std::io::Error::other("no resolver while fuzzing"));
    let mut cfg = ConfigState::new(env);
    let _ = cfg.external_server("FastCgiExternalServer", text);
    let _ = cfg.fastcgi_config("FastCgiConfig", text);
    let _ = mod_fastcgi::config::tokenize(text);
});
