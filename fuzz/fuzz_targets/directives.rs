#![no_main]
//! Directive parsing, every directive, in fuzzed sequences against one configuration (as
//! httpd feeds a configuration file): `FastCgiServer`, `FastCgiExternalServer`,
//! `FastCgiConfig`, `FastCgiIpcDir`, `FastCgiWrapper` and the three authorizer
//! directives (`FastCgiAuthenticator`/`Authorizer`/`AccessChecker`, with and without
//! `-compat`), plus the tokenizer. The file system and account look-ups are an in-memory
//! fake (deterministic, no syscalls). Checks: nothing panics; an error is one line (the
//! argument text has no newline, as in a configuration file) and names the directive
//! (except the legacy `AppClass requires a pathname!?`); and what was accepted goes on to
//! the process manager intact: the parsed servers and dynamic settings, turned into a
//! `PmConfig` as the module does, survive a control-message encode/decode round trip, and
//! socket-path helpers do not panic on the parsed paths.
use libfuzzer_sys::fuzz_target;
use mod_fastcgi::config::{parse_auth, AuthRole, ConfigState, FileInfo, FileProbe, ParseEnv, Server};
use mod_fastcgi::pm::msg::{decode_payload, encode, CtlMsg, HEADER_LEN};
use mod_fastcgi::pm::{ClassSpec, DynamicSpec, PmConfig, WrapperExec};
use std::io;
use std::path::{Path, PathBuf};

/// A fixed fake file system: a few executables and directories under /srv and /var.
struct Fs;

impl FileProbe for Fs {
    fn stat(&self, p: &Path) -> io::Result<FileInfo> {
        let b = p.as_os_str().as_encoded_bytes();
        let info = |is_dir, mode, uid, gid| Ok(FileInfo { is_dir, mode, uid, gid });
        match b {
            b"/" | b"/srv" | b"/var" | b"/srv/app" | b"/tmp" => info(true, 0o755, 0, 0),
            b"/srv/run" | b"/srv/run/fastcgi" | b"/srv/run/fastcgi/dynamic" => info(true, 0o700, 33, 33),
            b"/var/ipc" | b"/var/ipc/dynamic" => info(true, 0o700, 33, 33),
            b"/var/world" => info(true, 0o777, 0, 0),
            _ if b.ends_with(b".fcgi") || b.ends_with(b"/wrap") || b.ends_with(b"suexec") => info(
                false,
                if b.len() % 2 == 0 { 0o755 } else { 0o700 },
                (b.len() % 3) as u32 * 33,
                33,
            ),
            _ if b.contains(&b'!') => Err(io::Error::from_raw_os_error(libc::EACCES)),
            _ => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }
    fn user_in_group(&self, user: &str, gid: u32) -> bool {
        user == "www-data" && gid == 50
    }
    fn create_dir(&self, p: &Path, _mode: u32) -> io::Result<()> {
        if p.as_os_str().len() % 2 == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EACCES))
        }
    }
    fn chown(&self, _p: &Path, _uid: u32, _gid: u32) -> io::Result<()> {
        Ok(())
    }
    fn is_symlink(&self, p: &Path) -> bool {
        p.as_os_str().as_encoded_bytes().ends_with(b"link")
    }
}

fn resolve(host: &str, port: u16) -> io::Result<Vec<std::net::SocketAddr>> {
    match host {
        "localhost" => Ok(vec![
            ([127, 0, 0, 1], port).into(),
            ([0u16, 0, 0, 0, 0, 0, 0, 1], port).into(),
        ]),
        "none" => Ok(vec![]),
        _ => Err(io::Error::other("no resolver while fuzzing")),
    }
}

fn env() -> ParseEnv {
    let mut env = ParseEnv::new("/srv", "/srv/run/fastcgi", 33, 33, "www-data", "www-data");
    env.suexec_path = Some(PathBuf::from("/usr/lib/apache2/suexec"));
    env.resolve = resolve;
    env.getenv = |n| (n == "PATH").then(|| "/usr/bin:/bin".to_string());
    env.uid_by_name = |n| match n {
        "www-data" => Some(33),
        "app" => Some(1000),
        "root" => Some(0),
        _ => n.strip_prefix('#').and_then(|d| d.parse().ok()),
    };
    env.gid_by_name = |n| match n {
        "www-data" => Some(33),
        "app" => Some(1000),
        _ => n.strip_prefix('#').and_then(|d| d.parse().ok()),
    };
    env.user_by_uid = |u| match u {
        33 => Some("www-data".into()),
        1000 => Some("app".into()),
        _ => None,
    };
    env.group_by_gid = |g| match g {
        33 => Some("www-data".into()),
        _ => None,
    };
    env
}

const NAMES: [&str; 13] = [
    "FastCgiServer",
    "AppClass",
    "FastCgiExternalServer",
    "ExternalAppClass",
    "FastCgiConfig",
    "FCGIConfig",
    "FastCgiIpcDir",
    "FastCgiWrapper",
    "FastCgiSuexec",
    "FastCgiAuthenticator",
    "FastCgiAuthorizer",
    "FastCgiAccessChecker",
    "FastCgiServer",
];

fn check_err(name: &str, e: impl std::fmt::Display) {
    let text = e.to_string();
    assert!(!text.is_empty(), "{name}: empty error");
    assert!(!text.contains('\n'), "{name}: multi-line error {text:?}");
    assert!(
        text.contains(name) || text == "AppClass requires a pathname!?",
        "error does not name the directive {name}: {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.contains('\n') || text.contains('\r') {
        return;
    }
    let _ = mod_fastcgi::config::tokenize(text);
    let mut cfg = ConfigState::new(env());
    // One directive per `|`-separated part; its first byte picks the directive.
    for part in text.split('|') {
        let Some(first) = part.bytes().next() else { continue };
        let args = part.get(1..).unwrap_or("");
        let name = NAMES[usize::from(first) % NAMES.len()];
        let res = match name {
            "FastCgiServer" | "AppClass" => cfg.fastcgi_server(name, args, &Fs),
            "FastCgiExternalServer" | "ExternalAppClass" => cfg.external_server(name, args),
            "FastCgiConfig" | "FCGIConfig" => cfg.fastcgi_config(name, args),
            "FastCgiIpcDir" => cfg.ipc_dir(args, &Fs),
            "FastCgiWrapper" | "FastCgiSuexec" => cfg.wrapper(name, args, &Fs),
            _ => {
                let toks = mod_fastcgi::config::tokenize(args);
                let role = AuthRole::from_directive(name).expect("auth directive");
                assert_eq!(role.directive(), name);
                match toks.as_slice() {
                    [p] => parse_auth(name, p, None, &cfg, &Fs).map(|_| ()),
                    [p, o] => parse_auth(name, p, Some(o), &cfg, &Fs).map(|_| ()),
                    _ => Ok(()),
                }
            }
        };
        if let Err(e) = res {
            check_err(name, e);
        }
        let _ = cfg.take_warnings();
    }
    let _ = cfg.prepare_ipc_dir(&Fs);
    // What the module hands to the process manager must survive the control channel.
    let wrapper = cfg.wrapper_path().map(Path::to_path_buf);
    let mut classes = Vec::new();
    for s in cfg.servers() {
        let _ = cfg.find_server(s.path());
        if let Server::Static(st) = s {
            let _ = st.binds_all_interfaces();
            let w = wrapper.as_ref().map(|p| WrapperExec {
                path: p.clone(),
                user: "app".into(),
                group: "app".into(),
            });
            classes.push(ClassSpec::from_static(st, 0, w));
        }
    }
    let dir = cfg.dynamic_dir();
    let _ = cfg.dynamic_socket_for(Path::new("/srv/app/x.fcgi"), "app", "app");
    let msg = CtlMsg::Configure(PmConfig {
        generation: 1,
        classes,
        hard_restart: false,
        old_children: vec![],
        log_level: 7,
        dynamic: DynamicSpec::from_config(cfg.dynamic(), dir, wrapper),
    });
    let mut frame = Vec::new();
    encode(&msg, &mut frame);
    let back = decode_payload(&frame[HEADER_LEN..])
        .unwrap_or_else(|e| panic!("parsed config does not cross the control channel: {e}"));
    assert_eq!(back, msg);
});
