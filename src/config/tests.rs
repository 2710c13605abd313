//! Table-driven tests for directive parsing: every option of every directive,
//! every alias and legacy spelling, every rejection with its exact text, the
//! legacy defaults (Appendix B), and each deliberate difference from legacy.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::paths::{getparents, no2slash};
use super::*;

// ---------------------------------------------------------------- fixtures

const P: &str = "/srv/app/static.fcgi";
const IPC: &str = "/srv/httpd/logs/fastcgi";

struct FakeFs {
    files: RefCell<HashMap<PathBuf, FileInfo>>,
    /// (user, gid) supplementary memberships.
    members: Vec<(&'static str, u32)>,
    /// stat() errno overrides.
    stat_errors: HashMap<PathBuf, i32>,
    mkdir_errors: HashMap<PathBuf, i32>,
    chown_error: Option<i32>,
    created: RefCell<Vec<(PathBuf, u32)>>,
    chowned: RefCell<Vec<(PathBuf, u32, u32)>>,
    /// Paths that are symbolic links themselves (lstat).
    symlinks: Vec<PathBuf>,
}

fn file(mode: u32, uid: u32, gid: u32) -> FileInfo {
    FileInfo {
        is_dir: false,
        mode,
        uid,
        gid,
    }
}

fn dir(mode: u32, uid: u32, gid: u32) -> FileInfo {
    FileInfo {
        is_dir: true,
        mode,
        uid,
        gid,
    }
}

fn fs() -> FakeFs {
    let entries = [
        ("/", dir(0o755, 0, 0)),
        ("/srv", dir(0o755, 0, 0)),
        ("/srv/app", dir(0o755, 0, 0)),
        ("/srv/app/static.fcgi", file(0o755, 0, 0)),
        ("/srv/app/other.fcgi", file(0o755, 0, 0)),
        ("/srv/app/noexec.fcgi", file(0o644, 0, 0)),
        ("/srv/app/owner.fcgi", file(0o655, 33, 0)),
        ("/srv/app/group.fcgi", file(0o745, 0, 33)),
        ("/srv/app/member.fcgi", file(0o745, 0, 50)),
        ("/srv/app/member-ok.fcgi", file(0o750, 0, 50)),
        ("/srv/app/own33.fcgi", file(0o700, 33, 33)),
        ("/srv/app/dir", dir(0o755, 0, 0)),
        ("/srv/httpd", dir(0o755, 0, 0)),
        ("/srv/httpd/logs", dir(0o755, 0, 0)),
        ("/srv/httpd/fcgi-bin", dir(0o755, 0, 0)),
        ("/srv/httpd/fcgi-bin/rel.fcgi", file(0o755, 0, 0)),
        ("/srv/httpd/bin", dir(0o755, 0, 0)),
        ("/srv/httpd/bin/wrap", file(0o755, 0, 0)),
        ("/srv/wrap.sh", file(0o755, 0, 0)),
        ("/srv/wrap-noexec.sh", file(0o644, 0, 0)),
        ("/usr/lib/apache2/suexec", file(0o4754, 0, 33)),
        ("/x", dir(0o755, 0, 0)),
        ("/x/app", file(0o755, 0, 0)),
        ("/x/application", file(0o755, 0, 0)),
        ("/tmp", dir(0o1777, 0, 0)),
        ("/tmp/ft/htdocs/fcgi/static.fcgi", file(0o755, 33, 33)),
        ("/var", dir(0o755, 0, 0)),
        ("/var/ipc-ok", dir(0o700, 33, 33)),
        ("/var/ipc-ok/dynamic", dir(0o700, 33, 33)),
        ("/var/ipc-ro", dir(0o500, 33, 33)),
        ("/var/ipc-file", file(0o600, 33, 33)),
        ("/var/ipc-dynfile", dir(0o700, 33, 33)),
        ("/var/ipc-dynfile/dynamic", file(0o600, 33, 33)),
        ("/var/ipc-other", dir(0o770, 0, 50)),
        ("/var/ipc-world", dir(0o777, 33, 33)),
        ("/var/ipc-root", dir(0o757, 0, 0)),
        // A symbolic link to /var/ipc-ok (stat follows it).
        ("/var/ipc-link", dir(0o700, 33, 33)),
        ("/var/ipc-link/dynamic", dir(0o700, 33, 33)),
        ("/var/ipc-dynlink", dir(0o700, 33, 33)),
        ("/var/ipc-dynlink/dynamic", dir(0o700, 33, 33)),
        ("/var/shared-sock", dir(0o777, 0, 0)),
        ("/var/group-sock", dir(0o2770, 0, 33)),
    ];
    FakeFs {
        files: RefCell::new(entries.iter().map(|(p, i)| (PathBuf::from(p), *i)).collect()),
        members: vec![("www-data", 50)],
        stat_errors: [
            ("/srv/app/locked.fcgi", libc::EACCES),
            ("/srv/app/static.fcgi/sub", libc::ENOTDIR),
        ]
        .iter()
        .map(|(p, e)| (PathBuf::from(p), *e))
        .collect(),
        mkdir_errors: HashMap::new(),
        chown_error: None,
        created: RefCell::new(Vec::new()),
        chowned: RefCell::new(Vec::new()),
        symlinks: vec![
            PathBuf::from("/var/ipc-link"),
            PathBuf::from("/var/ipc-dynlink/dynamic"),
        ],
    }
}

impl FileProbe for FakeFs {
    fn stat(&self, p: &Path) -> io::Result<FileInfo> {
        if let Some(e) = self.stat_errors.get(p) {
            return Err(io::Error::from_raw_os_error(*e));
        }
        self.files
            .borrow()
            .get(p)
            .copied()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn user_in_group(&self, user: &str, gid: u32) -> bool {
        self.members.iter().any(|(u, g)| *u == user && *g == gid)
    }

    fn create_dir(&self, p: &Path, mode: u32) -> io::Result<()> {
        if let Some(e) = self.mkdir_errors.get(p) {
            return Err(io::Error::from_raw_os_error(*e));
        }
        let parent_ok = p
            .parent()
            .is_some_and(|d| self.files.borrow().get(d).is_some_and(|i| i.is_dir));
        if !parent_ok {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        if self.files.borrow().contains_key(p) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.files.borrow_mut().insert(p.to_path_buf(), dir(mode, 0, 0));
        self.created.borrow_mut().push((p.to_path_buf(), mode));
        Ok(())
    }

    fn is_symlink(&self, p: &Path) -> bool {
        self.symlinks.iter().any(|l| l == p)
    }

    fn chown(&self, p: &Path, uid: u32, gid: u32) -> io::Result<()> {
        if let Some(e) = self.chown_error {
            return Err(io::Error::from_raw_os_error(e));
        }
        self.chowned.borrow_mut().push((p.to_path_buf(), uid, gid));
        Ok(())
    }
}

fn fake_resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let at = |s: &str| SocketAddr::new(s.parse().unwrap(), port);
    match host {
        "app.example" => Ok(vec![at("10.0.0.5")]),
        "multi.example" => Ok(vec![at("10.0.0.6"), at("10.0.0.7")]),
        "v6.example" => Ok(vec![at("2001:db8::5")]),
        "empty.example" => Ok(vec![]),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, "Name or service not known")),
    }
}

fn fake_getenv(name: &str) -> Option<String> {
    (name == "FCGI_TEST_SET").then(|| "set-value".to_string())
}

fn fake_uid_by_name(n: &str) -> Option<u32> {
    match n {
        "root" => Some(0),
        "www-data" => Some(33),
        "bob" => Some(1001),
        _ => None,
    }
}

fn fake_gid_by_name(n: &str) -> Option<u32> {
    match n {
        "root" => Some(0),
        "www-data" => Some(33),
        "staff" => Some(50),
        _ => None,
    }
}

fn fake_user_by_uid(u: u32) -> Option<String> {
    match u {
        0 => Some("root".into()),
        33 => Some("www-data".into()),
        1001 => Some("bob".into()),
        _ => None,
    }
}

fn fake_group_by_gid(g: u32) -> Option<String> {
    match g {
        0 => Some("root".into()),
        33 => Some("www-data".into()),
        50 => Some("staff".into()),
        _ => None,
    }
}

fn env() -> ParseEnv {
    let mut e = ParseEnv::new("/srv/httpd", "logs/fastcgi", 33, 33, "www-data", "www-data");
    e.suexec_path = Some(PathBuf::from("/usr/lib/apache2/suexec"));
    e.resolve = fake_resolve;
    e.getenv = fake_getenv;
    e.uid_by_name = fake_uid_by_name;
    e.gid_by_name = fake_gid_by_name;
    e.user_by_uid = fake_user_by_uid;
    e.group_by_gid = fake_group_by_gid;
    e
}

fn st() -> ConfigState {
    ConfigState::new(env())
}

fn wrapped() -> ConfigState {
    let mut s = st();
    s.wrapper("FastCgiWrapper", "/srv/wrap.sh", &fs()).unwrap();
    s
}

fn as_static(s: &Server) -> &StaticServer {
    match s {
        Server::Static(x) => x,
        Server::External(_) => panic!("expected a static server"),
    }
}

fn as_external(s: &Server) -> &ExternalServer {
    match s {
        Server::External(x) => x,
        Server::Static(_) => panic!("expected an external server"),
    }
}

fn static_ok(args: &str) -> StaticServer {
    let mut s = st();
    s.fastcgi_server("FastCgiServer", args, &fs())
        .unwrap_or_else(|e| panic!("{args}: {e}"));
    as_static(&s.servers()[0]).clone()
}

fn external_ok(args: &str) -> ExternalServer {
    let mut s = st();
    s.external_server("FastCgiExternalServer", args)
        .unwrap_or_else(|e| panic!("{args}: {e}"));
    as_external(&s.servers()[0]).clone()
}

fn dynamic_ok(args: &str) -> DynamicConfig {
    let mut s = st();
    s.fastcgi_config("FastCgiConfig", args)
        .unwrap_or_else(|e| panic!("{args}: {e}"));
    s.dynamic().clone()
}

fn ipc(name: &str) -> PathBuf {
    Path::new(IPC).join(name)
}

fn tcp(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- tokenizer

#[test]
fn tokenizer_follows_ap_getword_conf() {
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("   \t ", &[]),
        ("a b  c", &["a", "b", "c"]),
        ("\ta\tb\n", &["a", "b"]),
        ("a\x0bb\x0cc\rd", &["a", "b", "c", "d"]),
        (r#"-initial-env "A=b c""#, &["-initial-env", "A=b c"]),
        ("'single quoted' x", &["single quoted", "x"]),
        (r#""say \"hi\"""#, &[r#"say "hi""#]),
        (r"'it\'s'", &["it's"]),
        (r#""a\'b""#, &[r"a\'b"]),
        (r#"'a\"b'"#, &[r#"a\"b"#]),
        (r"a\\b", &[r"a\b"]),
        (r"a\b", &[r"a\b"]),
        (r"a\ b", &[r"a\", "b"]),
        (r#""c:\\dir""#, &[r"c:\dir"]),
        (r#""\\""#, &[r"\"]),
        (r#""unterminated word"#, &["unterminated word"]),
        (r#""a"b"#, &["a", "b"]),
        (r#""""#, &[""]),
        (r#"x "" y"#, &["x", "", "y"]),
        (r#"x '' y"#, &["x", "", "y"]),
        (r#"a"b c""#, &[r#"a"b"#, r#"c""#]),
        ("\"tab\tinside\"", &["tab\tinside"]),
        ("  lead trail  ", &["lead", "trail"]),
        ("\"ünïcode wörd\" ß", &["ünïcode wörd", "ß"]),
    ];
    for (input, want) in cases {
        assert_eq!(tokenize(input), *want, "input {input:?}");
    }
}

// ---------------------------------------------------------------- md5

#[test]
fn md5_rfc1321_vectors_and_block_boundaries() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "d41d8cd98f00b204e9800998ecf8427e"),
        (b"a", "0cc175b9c0f1b6a831c399e269772661"),
        (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
        (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        (
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "d174ab98d277d9f5a5611c2c9f419d9f",
        ),
        (
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
        (&[b'a'; 55], "ef1772b6dff9a122358552954ad0df65"),
        (&[b'a'; 56], "3b0c8ac703f828b04c6c197006d17218"),
        (&[b'a'; 63], "b06521f39153d618550606be297466d5"),
        (&[b'a'; 64], "014842d480b571495a4a0363793f7367"),
        (&[b'a'; 65], "c743a45e0d2e6a95cb859adae0248435"),
        (&[b'a'; 119], "8a7bd0732ed6a28ce75f6dabc90e1613"),
        (&[b'a'; 1000], "cabe45dcc9ae5b66ba86600cca6b8ba8"),
        // CFG-10, verified against legacy.
        (b"/tmp/ft/htdocs/fcgi/static.fcgi", "ef4edba908d9b9b211f406ff52556041"),
    ];
    for (input, want) in cases {
        assert_eq!(md5_hex(input), *want, "input of {} bytes", input.len());
    }
}

// ---------------------------------------------------------------- paths

#[test]
fn normalize_path_table() {
    let root = Path::new("/srv/httpd");
    let cases: &[(&str, bool, &str)] = &[
        ("/abs/app.fcgi", true, "/abs/app.fcgi"),
        ("rel/app.fcgi", true, "/srv/httpd/rel/app.fcgi"),
        ("/a//b///c", true, "/a/b/c"),
        ("/a/./b/.", true, "/a/b"),
        ("/a/x/../b", true, "/a/b"),
        ("/../../a", true, "/a"),
        ("../up", true, "/srv/up"),
        ("/a/b/", true, "/a/b"),
        ("/", true, "/"),
        ("/abs//x/../y", false, "/abs//x/../y"),
        ("rel/x", false, "/srv/httpd/rel/x"),
        ("./rel", false, "/srv/httpd/./rel"),
    ];
    for (input, clean, want) in cases {
        assert_eq!(
            normalize_path(root, input, *clean),
            PathBuf::from(want),
            "{input} clean={clean}"
        );
    }
    assert_eq!(normalize_path(Path::new("/root/"), "x", true), PathBuf::from("/root/x"));
}

#[test]
fn getparents_matches_httpd() {
    let cases: &[(&str, &str)] = &[
        ("/a/b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("./a", "a"),
        ("../a", "a"),
        ("/a/b/../../c", "/c"),
        ("/srv/app.fcgi--", "/srv/app.fcgi--"),
        ("/x/app~bob-", "/x/app~bob-"),
        ("/x/.hidden/app", "/x/.hidden/app"),
        ("..", ""),
        (".", ""),
    ];
    for (input, want) in cases {
        assert_eq!(
            String::from_utf8(getparents(input.as_bytes())).unwrap(),
            *want,
            "{input}"
        );
    }
}

#[test]
fn no2slash_collapses_runs() {
    assert_eq!(&*no2slash(b"//a///b/c//"), b"/a/b/c/");
    assert_eq!(&*no2slash(b"abc"), b"abc");
    assert!(matches!(no2slash(b"/a/b"), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn socket_names() {
    // CFG-10 legacy vector.
    assert_eq!(
        default_static_socket(Path::new("/ipc"), Path::new("/tmp/ft/htdocs/fcgi/static.fcgi"), None),
        PathBuf::from("/ipc/ef4edba908d9b9b211f406ff52556041")
    );
    assert_eq!(
        default_static_socket(Path::new("/ipc"), Path::new(P), Some(("www-data", "www-data"))),
        PathBuf::from("/ipc/1c49365a2e2d38934c3a018cdd8a80cc")
    );
    // PM-21: md5("/srv/app.fcgi--") without a wrapper.
    assert_eq!(
        dynamic_socket(Path::new("/ipc"), Path::new("/srv/app.fcgi"), "-", "-"),
        PathBuf::from("/ipc/dynamic/b55bf9586061bf04dbe978258e663d1b")
    );
    assert_eq!(
        st().dynamic_socket_for(Path::new("/srv/app.fcgi"), "-", "-"),
        PathBuf::from(format!("{IPC}/dynamic/b55bf9586061bf04dbe978258e663d1b"))
    );
    // The concatenation is normalised before hashing.
    assert_eq!(
        dynamic_socket(Path::new("/ipc"), Path::new("/srv/x/../app.fcgi"), "-", "-"),
        dynamic_socket(Path::new("/ipc"), Path::new("/srv/app.fcgi"), "-", "-")
    );
}

#[test]
fn access_check_table() {
    const R: Want = Want {
        read: true,
        write: false,
        execute: false,
    };
    const W: Want = Want {
        read: false,
        write: true,
        execute: false,
    };
    const X: Want = Want::EXECUTE;
    let cases: &[(FileInfo, Want, bool, Result<(), &str>)] = &[
        (file(0o700, 33, 0), Want::ALL, false, Ok(())),
        (file(0o300, 33, 0), R, false, Err("read not allowed by owner")),
        (file(0o500, 33, 0), W, false, Err("write not allowed by owner")),
        (file(0o677, 33, 0), X, false, Err("execute not allowed by owner")),
        (file(0o070, 0, 33), Want::ALL, false, Ok(())),
        (file(0o037, 0, 33), R, false, Err("read not allowed by group")),
        (file(0o057, 0, 33), W, false, Err("write not allowed by group")),
        (file(0o067, 0, 33), X, false, Err("execute not allowed by group")),
        (file(0o067, 0, 50), X, true, Err("execute not allowed by group")),
        (file(0o010, 0, 50), X, true, Ok(())),
        (file(0o001, 0, 0), X, false, Ok(())),
        (file(0o773, 0, 0), R, false, Err("read not allowed")),
        (file(0o775, 0, 0), W, false, Err("write not allowed")),
        (file(0o776, 0, 0), X, false, Err("execute not allowed")),
        // Owner bits decide even when "other" would allow (legacy order).
        (file(0o607, 33, 0), X, false, Err("execute not allowed by owner")),
    ];
    for (info, want, in_group, expect) in cases {
        assert_eq!(
            check_access(info, *want, 33, 33, *in_group),
            *expect,
            "{info:?} {want:?}"
        );
    }
    assert_eq!(executable_by(&file(0o755, 0, 0), 33, 33, false), Ok(()));
}

#[test]
fn strerror_strips_os_error_suffix() {
    assert_eq!(
        paths::strerror(&io::Error::from_raw_os_error(libc::ENOENT)),
        "No such file or directory"
    );
    assert_eq!(paths::strerror(&io::Error::other("custom")), "custom");
}

// ---------------------------------------------------------------- FastCgiServer

#[test]
fn static_defaults_match_legacy() {
    let s = static_ok(P);
    assert_eq!(s.path, PathBuf::from(P));
    assert_eq!(s.processes, 1);
    assert_eq!(s.restart_delay, 5);
    assert_eq!(s.init_start_delay, 1);
    assert_eq!(s.min_server_life, 30);
    assert_eq!(s.priority, 0);
    assert_eq!(s.listen_queue_depth, 100);
    assert!(s.initial_env.is_empty());
    assert_eq!(s.opts, ConnOptions::default());
    assert_eq!(s.opts.idle_timeout, 30);
    assert_eq!(s.opts.app_conn_timeout, 0);
    assert!(!s.opts.flush && !s.opts.nph && s.opts.pass_headers.is_empty());
    assert_eq!(s.identity, None);
    assert_eq!(s.listen, StaticListen::Unix(ipc("1bafac9c0b2d71cc4986c3742a2e22de")));
    assert!(!s.binds_all_interfaces());
}

#[test]
fn static_options_accepted() {
    type Check = fn(&StaticServer) -> bool;
    let cases: &[(&str, Check)] = &[
        ("-processes 4", |s| s.processes == 4),
        ("-PROCESSES 4", |s| s.processes == 4),
        ("-processes +4", |s| s.processes == 4),
        ("-processes 007", |s| s.processes == 7),
        ("-processes 1", |s| s.processes == 1),
        ("-restart-delay 0", |s| s.restart_delay == 0),
        ("-restart-delay 10", |s| s.restart_delay == 10),
        ("-Restart-Delay 4294967295", |s| s.restart_delay == u32::MAX),
        ("-init-start-delay 0", |s| s.init_start_delay == 0),
        ("-init-start-delay 3", |s| s.init_start_delay == 3),
        ("-min-server-life 0", |s| s.min_server_life == 0),
        ("-min-server-life 60", |s| s.min_server_life == 60),
        ("-priority 5", |s| s.priority == 5),
        ("-priority 0", |s| s.priority == 0),
        ("-listen-queue-depth 1", |s| s.listen_queue_depth == 1),
        ("-listen-queue-depth 512", |s| s.listen_queue_depth == 512),
        ("-appConnTimeout 7", |s| s.opts.app_conn_timeout == 7),
        ("-appconntimeout 0", |s| s.opts.app_conn_timeout == 0),
        ("-idle-timeout 120", |s| s.opts.idle_timeout == 120),
        ("-port 8080", |s| {
            s.listen == StaticListen::Tcp(tcp("0.0.0.0:8080")) && s.binds_all_interfaces()
        }),
        ("-port 65535", |s| s.listen == StaticListen::Tcp(tcp("0.0.0.0:65535"))),
        ("-port 1", |s| s.listen == StaticListen::Tcp(tcp("0.0.0.0:1"))),
        ("-port 127.0.0.1:8080", |s| {
            s.listen == StaticListen::Tcp(tcp("127.0.0.1:8080")) && !s.binds_all_interfaces()
        }),
        ("-port [::1]:8080", |s| {
            s.listen == StaticListen::Tcp(tcp("[::1]:8080")) && !s.binds_all_interfaces()
        }),
        ("-port 0.0.0.0:80", |s| s.binds_all_interfaces()),
        ("-port [::]:80", |s| s.binds_all_interfaces()),
        ("-socket app.sock", |s| s.listen == StaticListen::Unix(ipc("app.sock"))),
        ("-socket sub/app.sock", |s| {
            s.listen == StaticListen::Unix(ipc("sub/app.sock"))
        }),
        ("-socket /run/app.sock", |s| {
            s.listen == StaticListen::Unix("/run/app.sock".into())
        }),
        ("-SOCKET 'with space.sock'", |s| {
            s.listen == StaticListen::Unix(ipc("with space.sock"))
        }),
        ("-initial-env A=b", |s| {
            s.initial_env == [("A".to_string(), "b".to_string())]
        }),
        (r#"-initial-env "A=b c""#, |s| {
            s.initial_env == [("A".to_string(), "b c".to_string())]
        }),
        ("-initial-env A=b=c", |s| {
            s.initial_env == [("A".to_string(), "b=c".to_string())]
        }),
        ("-initial-env A=", |s| {
            s.initial_env == [("A".to_string(), String::new())]
        }),
        ("-initial-env FCGI_TEST_SET", |s| {
            s.initial_env == [("FCGI_TEST_SET".to_string(), "set-value".to_string())]
        }),
        ("-initial-env FCGI_TEST_UNSET", |s| {
            s.initial_env == [("FCGI_TEST_UNSET".to_string(), String::new())]
        }),
        ("-initial-env B=2 -Initial-Env A=1", |s| {
            s.initial_env == [("B".to_string(), "2".to_string()), ("A".to_string(), "1".to_string())]
        }),
        ("-pass-header Authorization -pass-header X-Foo", |s| {
            s.opts.pass_headers == ["Authorization", "X-Foo"]
        }),
        ("-pass-header X -pass-header X", |s| s.opts.pass_headers == ["X", "X"]),
        ("-flush", |s| s.opts.flush),
        ("-Flush", |s| s.opts.flush),
        ("-nph", |s| s.opts.nph),
        ("-NPH", |s| s.opts.nph),
        ("-user bob -group staff", |s| {
            s.opts.user.as_deref() == Some("bob") && s.opts.group.as_deref() == Some("staff") && s.identity.is_none()
        }),
        ("-processes 3 -port 9000 -flush -nph -idle-timeout 5 -priority 2", |s| {
            s.processes == 3 && s.opts.flush && s.opts.nph && s.opts.idle_timeout == 5 && s.priority == 2
        }),
    ];
    for (opts, check) in cases {
        let s = static_ok(&format!("{P} {opts}"));
        assert!(check(&s), "{opts}: {s:?}");
    }
}

#[test]
fn static_initial_env_limit_is_64() {
    let ok: String = (0..64).map(|i| format!(" -initial-env V{i}=x")).collect();
    assert_eq!(static_ok(&format!("{P}{ok}")).initial_env.len(), 64);
    let err = st()
        .fastcgi_server("FastCgiServer", &format!("{P}{ok} -initial-env V64=x"), &fs())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("FastCgiServer {P}: invalid value for -initial-env: too many variables, must be <= MAX_INIT_ENV_VARS")
    );
}

#[test]
fn static_paths_are_normalised() {
    let cases: &[(&str, &str)] = &[
        ("fcgi-bin/rel.fcgi", "/srv/httpd/fcgi-bin/rel.fcgi"),
        ("/srv/app//./static.fcgi", P),
        ("/srv/app/x/../static.fcgi", P),
        (r#""/srv/app/static.fcgi" -flush"#, P),
    ];
    for (args, want) in cases {
        assert_eq!(static_ok(args).path, PathBuf::from(want), "{args}");
    }
}

#[test]
fn static_rejections() {
    let too_long_abs = format!("/tmp/{}", "s".repeat(103)); // 108 bytes
    let too_long_rel = "r".repeat(108 - IPC.len() - 1); // IPC + "/" + name = 108 bytes
    let cases: Vec<(&str, String, String)> = vec![
        ("FastCgiServer", String::new(), "AppClass requires a pathname!?".into()),
        ("FastCgiServer", "   ".into(), "AppClass requires a pathname!?".into()),
        ("FastCgiServer", r#""""#.into(), "AppClass requires a pathname!?".into()),
        ("AppClass", String::new(), "AppClass requires a pathname!?".into()),
        ("FastCgiServer", format!("{P} -Bogus"), format!("FastCgiServer {P}: invalid option: -Bogus")),
        ("AppClass", format!("{P} -bogus"), format!("AppClass {P}: invalid option: -bogus")),
        ("FastCgiServer", format!("{P} -host a:1"), format!("FastCgiServer {P}: invalid option: -host")),
        ("FastCgiServer", format!("{P} processes 2"), format!("FastCgiServer {P}: invalid option: processes")),
        ("FastCgiServer", format!("{P} -processes"), format!("FastCgiServer {P}: invalid value for -processes: \"\"")),
        (
            "FastCgiServer",
            format!("{P} -processes 5x"),
            format!("FastCgiServer {P}: invalid value for -processes: \"5x\" must be a positive integer"),
        ),
        (
            "FastCgiServer",
            format!("{P} -PROCESSES x"),
            format!("FastCgiServer {P}: invalid value for -PROCESSES: \"x\" must be a positive integer"),
        ),
        (
            "FastCgiServer",
            format!("{P} -processes 0"),
            format!("FastCgiServer {P}: invalid value for -processes: \"0\" must be >= 1"),
        ),
        (
            "FastCgiServer",
            format!("{P} -processes -1"),
            format!("FastCgiServer {P}: invalid value for -processes: \"-1\" must be a positive integer"),
        ),
        (
            "FastCgiServer",
            format!("{P} -processes 4294967296"),
            format!("FastCgiServer {P}: invalid value for -processes: \"4294967296\" must be <= 4294967295"),
        ),
        (
            "FastCgiServer",
            format!("{P} -restart-delay -1"),
            format!("FastCgiServer {P}: invalid value for -restart-delay: \"-1\" must be >= 0"),
        ),
        (
            "FastCgiServer",
            format!("{P} -restart-delay abc"),
            format!("FastCgiServer {P}: invalid value for -restart-delay: \"abc\" must be a positive integer"),
        ),
        (
            "FastCgiServer",
            format!("{P} -init-start-delay x"),
            format!("FastCgiServer {P}: invalid value for -init-start-delay: can't parse \"x\""),
        ),
        (
            "FastCgiServer",
            format!("{P} -init-start-delay -1"),
            format!("FastCgiServer {P}: invalid value for -init-start-delay: \"-1\" must be >= 0"),
        ),
        (
            "FastCgiServer",
            format!("{P} -init-start-delay 2147483648"),
            format!("FastCgiServer {P}: invalid value for -init-start-delay: \"2147483648\" must be <= 2147483647"),
        ),
        (
            "FastCgiServer",
            format!("{P} -min-server-life -5"),
            format!("FastCgiServer {P}: invalid value for -min-server-life: \"-5\" must be >= 0"),
        ),
        (
            "FastCgiServer",
            format!("{P} -min-server-life"),
            format!("FastCgiServer {P}: invalid value for -min-server-life: \"\""),
        ),
        (
            "FastCgiServer",
            format!("{P} -priority -1"),
            format!("FastCgiServer {P}: invalid value for -priority: \"-1\" must be >= 0"),
        ),
        (
            "FastCgiServer",
            format!("{P} -listen-queue-depth 0"),
            format!("FastCgiServer {P}: invalid value for -listen-queue-depth: \"0\" must be >= 1"),
        ),
        (
            "FastCgiServer",
            format!("{P} -appConnTimeout -3"),
            format!("FastCgiServer {P}: invalid value for -appConnTimeout: \"-3\" must be >= 0"),
        ),
        (
            "FastCgiServer",
            format!("{P} -idle-timeout 0"),
            format!("FastCgiServer {P}: invalid value for -idle-timeout: \"0\" must be >= 1"),
        ),
        (
            "FastCgiServer",
            format!("{P} -idle-timeout"),
            format!("FastCgiServer {P}: invalid value for -idle-timeout: \"\""),
        ),
        ("FastCgiServer", format!("{P} -port"), format!("FastCgiServer {P}: invalid value for -port: \"\"")),
        (
            "FastCgiServer",
            format!("{P} -port 0"),
            format!("FastCgiServer {P}: invalid value for -port: \"0\" must be >= 1 and <= 65535"),
        ),
        (
            "FastCgiServer",
            format!("{P} -port 65536"),
            format!("FastCgiServer {P}: invalid value for -port: \"65536\" must be >= 1 and <= 65535"),
        ),
        (
            "FastCgiServer",
            format!("{P} -port -1"),
            format!("FastCgiServer {P}: invalid value for -port: \"-1\" must be >= 1 and <= 65535"),
        ),
        (
            "FastCgiServer",
            format!("{P} -port abc"),
            format!("FastCgiServer {P}: invalid value for -port: \"abc\" must be a positive integer"),
        ),
        (
            "FastCgiServer",
            format!("{P} -port localhost:80"),
            format!("FastCgiServer {P}: invalid value for -port: \"localhost\" is not an IP address to bind to"),
        ),
        (
            "FastCgiServer",
            format!("{P} -port 127.0.0.1:0"),
            format!("FastCgiServer {P}: invalid value for -port: \"0\" must be >= 1 and <= 65535"),
        ),
        (
            "FastCgiServer",
            format!("{P} -port 127.0.0.1:"),
            format!("FastCgiServer {P}: invalid value for -port: missing port specification"),
        ),
        (
            "FastCgiServer",
            format!("{P} -port [::1]"),
            format!("FastCgiServer {P}: invalid value for -port: missing port specification"),
        ),
        (
            "FastCgiServer",
            format!("{P} -port ::1"),
            format!(
                "FastCgiServer {P}: invalid value for -port: missing port specification \
                 (an IPv6 address with a port is written [::1]:port)"
            ),
        ),
        ("FastCgiServer", format!("{P} -socket"), format!("FastCgiServer {P}: invalid value for -socket: \"\"")),
        (
            "FastCgiServer",
            format!("{P} -socket \"\""),
            format!("FastCgiServer {P}: invalid value for -socket: \"\""),
        ),
        (
            "FastCgiServer",
            format!("{P} -initial-env"),
            format!("FastCgiServer {P}: invalid value for -initial-env: \"\""),
        ),
        (
            "FastCgiServer",
            format!("{P} -pass-header"),
            format!("FastCgiServer {P}: invalid value for -pass-header: \"\""),
        ),
        (
            "FastCgiServer",
            format!("{P} -pass-header ''"),
            format!("FastCgiServer {P}: invalid value for -pass-header: \"\""),
        ),
        ("FastCgiServer", format!("{P} -user"), format!("FastCgiServer {P}: invalid value for -user: \"\"")),
        ("FastCgiServer", format!("{P} -group"), format!("FastCgiServer {P}: invalid value for -group: \"\"")),
        (
            "FastCgiServer",
            format!("{P} -port 8080 -socket s"),
            format!("FastCgiServer {P}: -port and -socket are mutually exclusive options"),
        ),
        (
            "FastCgiServer",
            format!("{P} -socket s -port 8080"),
            format!("FastCgiServer {P}: -port and -socket are mutually exclusive options"),
        ),
        (
            "FastCgiServer",
            "/srv/app/missing.fcgi".into(),
            "FastCgiServer: \"/srv/app/missing.fcgi\" stat(/srv/app/missing.fcgi) failed: No such file or directory"
                .into(),
        ),
        (
            "FastCgiServer",
            "/srv/app/locked.fcgi".into(),
            "FastCgiServer: \"/srv/app/locked.fcgi\" stat(/srv/app/locked.fcgi) failed: Permission denied".into(),
        ),
        ("FastCgiServer", "/srv/app/dir".into(), "FastCgiServer: \"/srv/app/dir\" script is a directory!".into()),
        (
            "FastCgiServer",
            "/srv/app/noexec.fcgi".into(),
            "FastCgiServer: \"/srv/app/noexec.fcgi\" access for server (uid 33, gid 33) not allowed: execute not allowed"
                .into(),
        ),
        (
            "FastCgiServer",
            "/srv/app/owner.fcgi".into(),
            "FastCgiServer: \"/srv/app/owner.fcgi\" access for server (uid 33, gid 33) not allowed: \
             execute not allowed by owner"
                .into(),
        ),
        (
            "FastCgiServer",
            "/srv/app/group.fcgi".into(),
            "FastCgiServer: \"/srv/app/group.fcgi\" access for server (uid 33, gid 33) not allowed: \
             execute not allowed by group"
                .into(),
        ),
        (
            "AppClass",
            "/srv/app/member.fcgi".into(),
            "AppClass: \"/srv/app/member.fcgi\" access for server (uid 33, gid 33) not allowed: \
             execute not allowed by group"
                .into(),
        ),
        (
            "FastCgiServer",
            format!("{P} -socket {too_long_abs}"),
            format!("FastCgiServer {P}: path \"{too_long_abs}\" is too long for a Domain socket"),
        ),
        (
            "FastCgiServer",
            format!("{P} -socket {too_long_rel}"),
            format!("FastCgiServer {P}: path \"{IPC}/{too_long_rel}\" is too long for a Domain socket"),
        ),
    ];
    for (directive, args, want) in &cases {
        let err = st().fastcgi_server(directive, args, &fs()).expect_err(args);
        assert_eq!(err.to_string(), *want, "{directive} {args}");
    }
    assert!(cases.len() > 50);
}

#[test]
fn static_socket_length_boundary() {
    let ok_abs = format!("/tmp/{}", "s".repeat(102)); // 107 bytes
    let s = static_ok(&format!("{P} -socket {ok_abs}"));
    assert_eq!(s.listen, StaticListen::Unix(PathBuf::from(&ok_abs)));
    let ok_rel = "r".repeat(107 - IPC.len() - 1);
    assert_eq!(
        static_ok(&format!("{P} -socket {ok_rel}")).listen,
        StaticListen::Unix(ipc(&ok_rel))
    );
    // The md5 default is checked too: a long IPC dir makes it fail.
    let mut e = env();
    e.default_ipc_dir = PathBuf::from(format!("/{}", "d".repeat(75))); // 76 + 1 + 32 = 109
    let err = ConfigState::new(e)
        .fastcgi_server("FastCgiServer", P, &fs())
        .unwrap_err();
    assert!(err.to_string().ends_with("is too long for a Domain socket"), "{err}");
}

#[test]
fn static_accepts_executable_variants() {
    for p in ["/srv/app/member-ok.fcgi", "/srv/app/own33.fcgi", "fcgi-bin/rel.fcgi"] {
        static_ok(p);
    }
}

#[test]
fn legacy_cfg10_socket_name() {
    let mut e = env();
    e.default_ipc_dir = PathBuf::from("/tmp/ft/ipc");
    let mut s = ConfigState::new(e);
    s.fastcgi_server("FastCgiServer", "/tmp/ft/htdocs/fcgi/static.fcgi", &fs())
        .unwrap();
    assert_eq!(
        as_static(&s.servers()[0]).listen,
        StaticListen::Unix("/tmp/ft/ipc/ef4edba908d9b9b211f406ff52556041".into())
    );
}

// ---------------------------------------------------------------- FastCgiExternalServer

#[test]
fn external_options_accepted() {
    type Check = fn(&ExternalServer) -> bool;
    let cases: &[(&str, Check)] = &[
        ("-host 127.0.0.1:9000", |s| {
            *s.addr() == AppAddr::Tcp(tcp("127.0.0.1:9000"))
        }),
        ("-HOST 127.0.0.1:65535", |s| {
            *s.addr() == AppAddr::Tcp(tcp("127.0.0.1:65535"))
        }),
        ("-host 127.0.0.1:1", |s| *s.addr() == AppAddr::Tcp(tcp("127.0.0.1:1"))),
        ("-host app.example:9000", |s| {
            *s.addr() == AppAddr::Tcp(tcp("10.0.0.5:9000"))
        }),
        ("-host multi.example:9000", |s| {
            *s.addr() == AppAddr::Tcp(tcp("10.0.0.6:9000"))
        }),
        ("-host v6.example:9000", |s| {
            *s.addr() == AppAddr::Tcp(tcp("[2001:db8::5]:9000"))
        }),
        ("-host [::1]:9000", |s| *s.addr() == AppAddr::Tcp(tcp("[::1]:9000"))),
        ("-host [2001:db8::1]:80", |s| {
            *s.addr() == AppAddr::Tcp(tcp("[2001:db8::1]:80"))
        }),
        ("-socket ext.sock", |s| *s.addr() == AppAddr::Unix(ipc("ext.sock"))),
        ("-Socket /run/ext.sock", |s| {
            *s.addr() == AppAddr::Unix("/run/ext.sock".into())
        }),
        ("-socket s -appConnTimeout 5", |s| s.opts.app_conn_timeout == 5),
        ("-socket s -idle-timeout 60", |s| s.opts.idle_timeout == 60),
        ("-socket s -flush", |s| s.opts.flush),
        ("-socket s -nph", |s| s.opts.nph),
        ("-socket s -pass-header Authorization -Pass-Header X", |s| {
            s.opts.pass_headers == ["Authorization", "X"]
        }),
        ("-socket s -user bob -group staff", |s| {
            s.opts.user.as_deref() == Some("bob") && s.opts.group.as_deref() == Some("staff") && s.identity.is_none()
        }),
        ("-flush -host 127.0.0.1:9000 -nph", |s| s.opts.flush && s.opts.nph),
    ];
    for (opts, check) in cases {
        let s = external_ok(&format!("{P} {opts}"));
        assert!(check(&s), "{opts}: {s:?}");
    }
}

#[test]
fn external_defaults_and_nonexistent_path() {
    let s = external_ok("/srv/nowhere/ext.fcgi -socket s");
    assert_eq!(s.path, PathBuf::from("/srv/nowhere/ext.fcgi"));
    assert_eq!(s.opts, ConnOptions::default());
    assert_eq!(
        external_ok("rel/ext.fcgi -socket s").path,
        PathBuf::from("/srv/httpd/rel/ext.fcgi")
    );
    assert_eq!(
        external_ok("ExternalAppClass/../e.fcgi -socket s").path,
        PathBuf::from("/srv/httpd/e.fcgi")
    );
}

#[test]
fn external_rejections() {
    let too_long = format!("/tmp/{}", "s".repeat(103));
    let d = "FastCgiExternalServer";
    let cases: Vec<(&str, String, String)> = vec![
        (
            d,
            String::new(),
            format!("{d} requires a path and either a -socket or -host option"),
        ),
        (
            "ExternalAppClass",
            String::new(),
            "ExternalAppClass requires a path and either a -socket or -host option".into(),
        ),
        (d, P.into(), format!("{d} {P}: -socket or -host option missing")),
        (
            d,
            format!("{P} -flush"),
            format!("{d} {P}: -socket or -host option missing"),
        ),
        (
            d,
            format!("{P} -host"),
            format!("{d} {P}: invalid value for -host: \"\""),
        ),
        (
            d,
            format!("{P} -host localhost"),
            format!("{d} {P}: invalid value for -host: missing port specification"),
        ),
        (
            d,
            format!("{P} -host 127.0.0.1:0"),
            format!("{d} {P}: invalid value for -host: bad port number \"0\""),
        ),
        (
            d,
            format!("{P} -host 127.0.0.1:65536"),
            format!("{d} {P}: invalid value for -host: bad port number \"65536\""),
        ),
        (
            d,
            format!("{P} -host 127.0.0.1:70000"),
            format!("{d} {P}: invalid value for -host: bad port number \"70000\""),
        ),
        (
            d,
            format!("{P} -host 127.0.0.1:-1"),
            format!("{d} {P}: invalid value for -host: bad port number \"-1\""),
        ),
        (
            d,
            format!("{P} -host 127.0.0.1:x"),
            format!("{d} {P}: invalid value for -host: bad port number \"x\""),
        ),
        (
            d,
            format!("{P} -host 127.0.0.1:"),
            format!("{d} {P}: invalid value for -host: bad port number \"\""),
        ),
        (
            d,
            format!("{P} -host ::1"),
            format!(
                "{d} {P}: invalid value for -host: missing port specification \
                 (an IPv6 address with a port is written [::1]:port)"
            ),
        ),
        (
            d,
            format!("{P} -host [::1"),
            format!("{d} {P}: invalid value for -host: missing \"]\" in \"[::1\""),
        ),
        (
            d,
            format!("{P} -host [::1]9000"),
            format!("{d} {P}: invalid value for -host: missing port specification"),
        ),
        (
            d,
            format!("{P} -host nosuch.example:80"),
            format!("{d} {P}: failed to resolve \"nosuch.example\" to an IP address: Name or service not known"),
        ),
        (
            d,
            format!("{P} -host empty.example:80"),
            format!("{d} {P}: failed to resolve \"empty.example\" to an IP address"),
        ),
        (
            d,
            format!("{P} -host :80"),
            format!("{d} {P}: failed to resolve \"\" to an IP address"),
        ),
        (
            d,
            format!("{P} -socket s -processes 2"),
            format!("{d} {P}: invalid option: -processes"),
        ),
        (d, format!("{P} -port 80"), format!("{d} {P}: invalid option: -port")),
        (
            d,
            format!("{P} -socket s -priority 1"),
            format!("{d} {P}: invalid option: -priority"),
        ),
        (
            d,
            format!("{P} -socket s -initial-env A=b"),
            format!("{d} {P}: invalid option: -initial-env"),
        ),
        (
            d,
            format!("{P} -socket s -restart-delay 1"),
            format!("{d} {P}: invalid option: -restart-delay"),
        ),
        (
            d,
            format!("{P} -socket s -listen-queue-depth 1"),
            format!("{d} {P}: invalid option: -listen-queue-depth"),
        ),
        (
            "ExternalAppClass",
            format!("{P} -Bogus"),
            format!("ExternalAppClass {P}: invalid option: -Bogus"),
        ),
        (
            d,
            format!("{P} -socket s -appConnTimeout -1"),
            format!("{d} {P}: invalid value for -appConnTimeout: \"-1\" must be >= 0"),
        ),
        (
            d,
            format!("{P} -socket s -idle-timeout 0"),
            format!("{d} {P}: invalid value for -idle-timeout: \"0\" must be >= 1"),
        ),
        (
            d,
            format!("{P} -socket s -pass-header"),
            format!("{d} {P}: invalid value for -pass-header: \"\""),
        ),
        (
            d,
            format!("{P} -socket"),
            format!("{d} {P}: invalid value for -socket: \"\""),
        ),
        (
            d,
            format!("{P} -socket s -user"),
            format!("{d} {P}: invalid value for -user: \"\""),
        ),
        (
            d,
            format!("{P} -socket s -group"),
            format!("{d} {P}: invalid value for -group: \"\""),
        ),
        (
            d,
            format!("{P} -socket {too_long}"),
            format!("{d} {P}: path \"{too_long}\" is too long for a Domain socket"),
        ),
    ];
    for (directive, args, want) in &cases {
        let err = st().external_server(directive, args).expect_err(args);
        assert_eq!(err.to_string(), *want, "{directive} {args}");
    }
}

// ---------------------------------------------------------------- FastCgiConfig

#[test]
fn dynamic_defaults_match_legacy_table() {
    let d = DynamicConfig::default();
    assert_eq!(
        (d.max_processes, d.min_processes, d.max_class_processes),
        (50, 5, 10),
        "maxProcesses / minProcesses / maxClassProcesses"
    );
    assert_eq!((d.kill_interval, d.update_interval, d.gain_value), (300, 300, 0.5));
    assert_eq!(
        (d.single_threshold, d.multi_threshold, d.start_delay, d.process_slack),
        (0, 50, 3, 5)
    );
    assert_eq!((d.app_conn_timeout, d.idle_timeout, d.listen_queue_depth), (0, 30, 100));
    assert_eq!(
        (d.min_server_life, d.restart_delay, d.init_start_delay, d.priority),
        (30, 5, 1, 0)
    );
    assert!(!d.restart && !d.auto_update && !d.flush);
    assert!(d.initial_env.is_empty() && d.pass_headers.is_empty());
    assert_eq!(st().dynamic(), &d);
    // No arguments is accepted.
    assert_eq!(dynamic_ok(""), d);
}

#[test]
fn dynamic_options_accepted() {
    type Check = fn(&DynamicConfig) -> bool;
    let cases: &[(&str, Check)] = &[
        ("-maxProcesses 100", |d| d.max_processes == 100),
        ("-MAXPROCESSES 6", |d| d.max_processes == 6),
        ("-minProcesses 0", |d| d.min_processes == 0),
        ("-minProcesses 7", |d| d.min_processes == 7),
        ("-maxClassProcesses 1", |d| d.max_class_processes == 1),
        ("-maxClassProcesses 99", |d| d.max_class_processes == 99),
        ("-killInterval 60", |d| d.kill_interval == 60),
        ("-updateInterval 30", |d| d.update_interval == 30),
        ("-gainValue 0", |d| d.gain_value == 0.0),
        ("-gainValue 1", |d| d.gain_value == 1.0),
        ("-gainValue 0.25", |d| d.gain_value == 0.25),
        ("-gainValue .75", |d| d.gain_value == 0.75),
        ("-gainValue 5e-1", |d| d.gain_value == 0.5),
        ("-singleThreshold 10", |d| d.single_threshold == 10),
        ("-singleThreshhold 11", |d| d.single_threshold == 11),
        ("-SINGLETHRESHHOLD 12", |d| d.single_threshold == 12),
        ("-singleThreshold 150", |d| d.single_threshold == 150),
        ("-multiThreshold 20", |d| d.multi_threshold == 20),
        ("-multiThreshhold 21", |d| d.multi_threshold == 21),
        ("-multiThreshold 0", |d| d.multi_threshold == 0),
        ("-startDelay 1", |d| d.start_delay == 1),
        ("-appConnTimeout 9", |d| d.app_conn_timeout == 9),
        ("-idle-timeout 45", |d| d.idle_timeout == 45),
        ("-listen-queue-depth 8", |d| d.listen_queue_depth == 8),
        ("-min-server-life 0", |d| d.min_server_life == 0),
        ("-restart-delay 0", |d| d.restart_delay == 0),
        ("-init-start-delay 0", |d| d.init_start_delay == 0),
        ("-processSlack 1", |d| d.process_slack == 1),
        ("-maxProcesses 3 -processSlack 3", |d| {
            d.max_processes == 3 && d.process_slack == 3
        }),
        ("-processSlack 50", |d| d.process_slack == 50),
        ("-priority 5", |d| d.priority == 5),
        ("-restart", |d| d.restart),
        ("-autoUpdate", |d| d.auto_update),
        ("-AUTOUPDATE", |d| d.auto_update),
        ("-flush", |d| d.flush),
        ("-initial-env A=1 -initial-env FCGI_TEST_SET", |d| {
            d.initial_env
                == [
                    ("A".to_string(), "1".to_string()),
                    ("FCGI_TEST_SET".to_string(), "set-value".to_string()),
                ]
        }),
        ("-pass-header X-A -pass-header X-B", |d| {
            d.pass_headers == ["X-A", "X-B"]
        }),
    ];
    for (args, check) in cases {
        let d = dynamic_ok(args);
        assert!(check(&d), "{args}: {d:?}");
    }
    let mut s = st();
    s.fastcgi_config("FCGIConfig", "-maxProcesses 10").unwrap();
    assert_eq!(s.dynamic().max_processes, 10);
}

#[test]
fn dynamic_rejections() {
    let d = "FastCgiConfig";
    let sixty_five: String = (0..65).map(|i| format!(" -initial-env V{i}=x")).collect();
    let cases: Vec<(&str, String, String)> = vec![
        (d, "-processes 2".into(), format!("{d}: invalid option: -processes")),
        (d, "-port 80".into(), format!("{d}: invalid option: -port")),
        (d, "-socket s".into(), format!("{d}: invalid option: -socket")),
        (d, "-nph".into(), format!("{d}: invalid option: -nph")),
        (d, "-user bob".into(), format!("{d}: invalid option: -user")),
        (d, "-group staff".into(), format!("{d}: invalid option: -group")),
        (d, "-host a:1".into(), format!("{d}: invalid option: -host")),
        (d, "-Bogus".into(), format!("{d}: invalid option: -Bogus")),
        (
            "FCGIConfig",
            "-bogus".into(),
            "FCGIConfig: invalid option: -bogus".into(),
        ),
        (
            d,
            "-maxProcesses".into(),
            format!("{d}: invalid value for -maxProcesses: \"\""),
        ),
        (
            d,
            "-maxProcesses 0".into(),
            format!("{d}: invalid value for -maxProcesses: \"0\" must be >= 1"),
        ),
        (
            d,
            "-maxProcesses -1".into(),
            format!("{d}: invalid value for -maxProcesses: \"-1\" must be a positive integer"),
        ),
        (
            d,
            "-minProcesses -1".into(),
            format!("{d}: invalid value for -minProcesses: \"-1\" must be >= 0"),
        ),
        (
            d,
            "-minProcesses x".into(),
            format!("{d}: invalid value for -minProcesses: can't parse \"x\""),
        ),
        (
            d,
            "-maxClassProcesses 0".into(),
            format!("{d}: invalid value for -maxClassProcesses: \"0\" must be >= 1"),
        ),
        (
            d,
            "-killInterval 0".into(),
            format!("{d}: invalid value for -killInterval: \"0\" must be >= 1"),
        ),
        (
            d,
            "-updateInterval 0".into(),
            format!("{d}: invalid value for -updateInterval: \"0\" must be >= 1"),
        ),
        (
            d,
            "-gainValue".into(),
            format!("{d}: invalid value for -gainValue: \"\""),
        ),
        (
            d,
            "-gainValue abc".into(),
            format!("{d}: invalid value for -gainValue: \"abc\" is not a floating point number"),
        ),
        (
            d,
            "-gainValue 0.5x".into(),
            format!("{d}: invalid value for -gainValue: \"0.5x\" is not a floating point number"),
        ),
        (
            d,
            "-gainValue 1.5".into(),
            format!("{d}: invalid value for -gainValue: \"1.500000\" is not between 0.000000 and 1.000000"),
        ),
        (
            d,
            "-gainValue -0.1".into(),
            format!("{d}: invalid value for -gainValue: \"-0.100000\" is not between 0.000000 and 1.000000"),
        ),
        (
            d,
            "-gainValue nan".into(),
            format!("{d}: invalid value for -gainValue: \"nan\" is not a floating point number"),
        ),
        (
            d,
            "-singleThreshold -1".into(),
            format!("{d}: invalid value for -singleThreshold: \"-1\" must be >= 0"),
        ),
        (
            d,
            "-singleThreshhold x".into(),
            format!("{d}: invalid value for -singleThreshhold: can't parse \"x\""),
        ),
        (
            d,
            "-multiThreshhold -2".into(),
            format!("{d}: invalid value for -multiThreshhold: \"-2\" must be >= 0"),
        ),
        (
            d,
            "-startDelay 0".into(),
            format!("{d}: invalid value for -startDelay: \"0\" must be >= 1"),
        ),
        (
            d,
            "-appConnTimeout -3".into(),
            format!("{d}: invalid value for -appConnTimeout: \"-3\" must be >= 0"),
        ),
        (
            d,
            "-idle-timeout 0".into(),
            format!("{d}: invalid value for -idle-timeout: \"0\" must be >= 1"),
        ),
        (
            d,
            "-listen-queue-depth 0".into(),
            format!("{d}: invalid value for -listen-queue-depth: \"0\" must be >= 1"),
        ),
        (
            d,
            "-min-server-life -1".into(),
            format!("{d}: invalid value for -min-server-life: \"-1\" must be >= 0"),
        ),
        (
            d,
            "-restart-delay -1".into(),
            format!("{d}: invalid value for -restart-delay: \"-1\" must be >= 0"),
        ),
        (
            d,
            "-init-start-delay -1".into(),
            format!("{d}: invalid value for -init-start-delay: \"-1\" must be >= 0"),
        ),
        (
            d,
            "-processSlack 0".into(),
            format!("{d}: invalid value for -processSlack: \"0\" must be >= 1"),
        ),
        (
            d,
            "-priority -1".into(),
            format!("{d}: invalid value for -priority: \"-1\" must be >= 0"),
        ),
        (
            d,
            "-initial-env".into(),
            format!("{d}: invalid value for -initial-env: \"\""),
        ),
        (
            d,
            sixty_five,
            format!("{d}: invalid value for -initial-env: too many variables, must be <= MAX_INIT_ENV_VARS"),
        ),
        (
            d,
            "-pass-header".into(),
            format!("{d}: invalid value for -pass-header: \"\""),
        ),
        (
            d,
            "-maxProcesses 3".into(),
            format!("{d}: processSlack (5) must be less than maxProcesses (3) + 1"),
        ),
        (
            d,
            "-processSlack 51".into(),
            format!("{d}: processSlack (51) must be less than maxProcesses (50) + 1"),
        ),
        (
            "FCGIConfig",
            "-maxProcesses 4 -processSlack 5".into(),
            "FCGIConfig: processSlack (5) must be less than maxProcesses (4) + 1".into(),
        ),
    ];
    for (directive, args, want) in &cases {
        let mut s = st();
        let err = s.fastcgi_config(directive, args).expect_err(args);
        assert_eq!(err.to_string(), *want, "{directive} {args}");
        assert_eq!(
            s.dynamic(),
            &DynamicConfig::default(),
            "a failed directive changes nothing: {args}"
        );
    }
}

#[test]
fn dynamic_repeat_semantics_cfg20() {
    let mut s = st();
    s.fastcgi_config(
        "FastCgiConfig",
        "-maxProcesses 20 -initial-env A=1 -pass-header X-A -flush",
    )
    .unwrap();
    s.fastcgi_config("FastCgiConfig", "-minProcesses 2 -pass-header X-B")
        .unwrap();
    let d = s.dynamic();
    assert_eq!(d.max_processes, 20, "not named again: kept");
    assert_eq!(d.min_processes, 2);
    assert!(d.flush, "flags are kept");
    assert!(d.initial_env.is_empty(), "initial env replaced wholesale (emptied)");
    assert_eq!(d.pass_headers, ["X-A", "X-B"], "pass-header accumulates");
    s.fastcgi_config("FastCgiConfig", "-initial-env B=2").unwrap();
    assert_eq!(s.dynamic().initial_env, [("B".to_string(), "2".to_string())]);
    // CFG-20 uses the values current at that point: slack 5 vs a later small max.
    assert!(s.fastcgi_config("FastCgiConfig", "-maxProcesses 4").is_err());
    s.fastcgi_config("FastCgiConfig", "-processSlack 2").unwrap();
    s.fastcgi_config("FastCgiConfig", "-maxProcesses 4").unwrap();
}

// ---------------------------------------------------------------- FastCgiIpcDir

#[test]
fn ipc_dir_default_and_configured() {
    let s = st();
    assert_eq!(s.effective_ipc_dir(), Path::new(IPC));
    assert!(!s.ipc_dir_fixed());
    assert_eq!(s.dynamic_dir(), PathBuf::from(format!("{IPC}/dynamic")));

    let cases: &[(&str, &str)] = &[
        ("/var/ipc-ok", "/var/ipc-ok"),
        ("/var/ipc-ok///", "/var/ipc-ok"),
        ("ipc", "/srv/httpd/ipc"),
        ("/var/new-ipc", "/var/new-ipc"),
    ];
    for (arg, want) in cases {
        let mut s = st();
        let fs = fs();
        s.ipc_dir(arg, &fs).unwrap_or_else(|e| panic!("{arg}: {e}"));
        assert_eq!(s.effective_ipc_dir(), Path::new(want));
        assert!(s.ipc_dir_fixed());
        assert!(fs.stat(&Path::new(want).join("dynamic")).unwrap().is_dir, "{arg}");
    }

    let mut s = st();
    let fs = fs();
    s.ipc_dir("/var/new-ipc", &fs).unwrap();
    assert_eq!(
        *fs.created.borrow(),
        [
            (PathBuf::from("/var/new-ipc"), 0o700),
            (PathBuf::from("/var/new-ipc/dynamic"), 0o700)
        ]
    );
    assert!(fs.chowned.borrow().is_empty(), "not root: no chown");
    s.fastcgi_server("FastCgiServer", P, &fs).unwrap();
    assert!(matches!(&as_static(&s.servers()[0]).listen, StaticListen::Unix(p) if p.starts_with("/var/new-ipc")));
}

#[test]
fn ipc_dir_chowns_when_root() {
    let mut e = env();
    e.is_root = true;
    let fs = fs();
    ConfigState::new(e.clone()).ipc_dir("/var/new-ipc", &fs).unwrap();
    assert_eq!(
        *fs.chowned.borrow(),
        [
            (PathBuf::from("/var/new-ipc"), 33, 33),
            (PathBuf::from("/var/new-ipc/dynamic"), 33, 33)
        ]
    );
    let mut fs = self::fs();
    fs.chown_error = Some(libc::EPERM);
    let err = ConfigState::new(e).ipc_dir("/var/new-ipc", &fs).unwrap_err();
    assert_eq!(
        err.to_string(),
        "FastCgiIpcDir /var/new-ipc: can't chown() to the server (uid 33, gid 33): Operation not permitted"
    );
}

#[test]
fn ipc_dir_rejections() {
    let mut mkdir_fails = fs();
    mkdir_fails
        .mkdir_errors
        .insert(PathBuf::from("/var/ipc-ok/dynamic-x"), libc::EACCES);
    let cases: &[(&str, &str)] = &[
        (
            "/nonexistent/ipc",
            "FastCgiIpcDir /nonexistent/ipc: doesn't exist and can't be created: No such file or directory",
        ),
        ("/var/ipc-file", "FastCgiIpcDir /var/ipc-file: isn't a directory!"),
        (
            "/var/ipc-other",
            "FastCgiIpcDir /var/ipc-other: is writable by its group or by others (mode 0770); refusing it because \
             anyone with write access could replace the application sockets (chmod go-w it, or use another directory)",
        ),
        (
            "/var/ipc-world",
            "FastCgiIpcDir /var/ipc-world: is writable by its group or by others (mode 0777); refusing it because \
             anyone with write access could replace the application sockets (chmod go-w it, or use another directory)",
        ),
        (
            "/var/ipc-root",
            "FastCgiIpcDir /var/ipc-root: is writable by its group or by others (mode 0757); refusing it because \
             anyone with write access could replace the application sockets (chmod go-w it, or use another directory)",
        ),
        (
            "/var/ipc-ro",
            "FastCgiIpcDir /var/ipc-ro: access for server (uid 33, gid 33) failed: write not allowed by owner",
        ),
        (
            "/srv/app",
            "FastCgiIpcDir /srv/app: access for server (uid 33, gid 33) failed: write not allowed",
        ),
        (
            "/var/ipc-dynfile/",
            "FastCgiIpcDir /var/ipc-dynfile: can't create dynamic directory \"/var/ipc-dynfile/dynamic\": \
             isn't a directory!",
        ),
    ];
    for (arg, want) in cases {
        let mut s = st();
        let err = s.ipc_dir(arg, &fs()).unwrap_err();
        assert_eq!(err.to_string(), *want, "{arg}");
        assert!(!s.ipc_dir_fixed(), "a failed FastCgiIpcDir fixes nothing");
        assert_eq!(s.effective_ipc_dir(), Path::new(IPC));
    }
}

#[test]
fn ipc_dir_ordering_cfg31() {
    // Second occurrence.
    let mut s = st();
    s.ipc_dir("/var/ipc-ok", &fs()).unwrap();
    assert_eq!(
        s.ipc_dir("/other", &fs()).unwrap_err().to_string(),
        "FastCgiIpcDir /other: already defined as \"/var/ipc-ok\""
    );
    // After a Unix-socket server fixed the default (static md5 or external -socket).
    for (static_def, args) in [(true, P), (false, "/e -socket s"), (false, "/e -socket /abs/s")] {
        let mut s = st();
        if static_def {
            s.fastcgi_server("FastCgiServer", args, &fs()).unwrap();
        } else {
            s.external_server("FastCgiExternalServer", args).unwrap();
        }
        assert!(s.ipc_dir_fixed());
        assert_eq!(
            s.ipc_dir("/var/ipc-ok", &fs()).unwrap_err().to_string(),
            format!("FastCgiIpcDir /var/ipc-ok: already defined as \"{IPC}\"")
        );
    }
    // After TCP-only servers.
    for external in [false, true] {
        let mut s = st();
        if external {
            s.external_server("FastCgiExternalServer", "/e -host 127.0.0.1:9000")
                .unwrap();
        } else {
            s.fastcgi_server("FastCgiServer", &format!("{P} -port 9000"), &fs())
                .unwrap();
        }
        assert!(!s.ipc_dir_fixed());
        assert_eq!(
            s.ipc_dir("/var/ipc-ok", &fs()).unwrap_err().to_string(),
            "The FastCgiIpcDir command must preceed static FastCGI server definitions"
        );
    }
    // FastCgiConfig and auth directives before it are fine.
    let mut s = st();
    s.fastcgi_config("FastCgiConfig", "-maxProcesses 10").unwrap();
    parse_auth("FastCgiAuthenticator", P, None, &s, &fs()).unwrap();
    s.ipc_dir("/var/ipc-ok", &fs()).unwrap();
}

#[test]
fn prepare_ipc_dir_for_post_config() {
    let s = st();
    let fs = fs();
    s.prepare_ipc_dir(&fs).unwrap();
    assert!(fs.stat(Path::new(IPC)).unwrap().is_dir);
    assert!(fs.stat(&s.dynamic_dir()).unwrap().is_dir);
    let mut e = env();
    e.default_ipc_dir = "/var/ipc-file".into();
    assert_eq!(
        ConfigState::new(e).prepare_ipc_dir(&fs).unwrap_err(),
        "isn't a directory!"
    );
}

// ---------------------------------------------------------------- FastCgiWrapper

#[test]
fn wrapper_values() {
    let cases: &[(&str, Option<&str>)] = &[
        ("Off", None),
        ("off", None),
        ("On", Some("/usr/lib/apache2/suexec")),
        ("ON", Some("/usr/lib/apache2/suexec")),
        ("/srv/wrap.sh", Some("/srv/wrap.sh")),
        ("bin/wrap", Some("/srv/httpd/bin/wrap")),
    ];
    for (arg, want) in cases {
        let mut s = st();
        s.wrapper("FastCgiWrapper", arg, &fs())
            .unwrap_or_else(|e| panic!("{arg}: {e}"));
        assert_eq!(s.wrapper_path(), want.map(Path::new), "{arg}");
    }
    // Off does not count as "already set" (legacy).
    let mut s = st();
    s.wrapper("FastCgiWrapper", "Off", &fs()).unwrap();
    s.wrapper("FastCgiSuexec", "On", &fs()).unwrap();
    assert!(s.wrapper_path().is_some());
}

#[test]
fn wrapper_rejections() {
    let mut twice = st();
    twice.wrapper("FastCgiWrapper", "/srv/wrap.sh", &fs()).unwrap();
    assert_eq!(
        twice.wrapper("FastCgiWrapper", "On", &fs()).unwrap_err().to_string(),
        "FastCgiWrapper was already set to \"/srv/wrap.sh\""
    );
    assert_eq!(
        twice.wrapper("FastCgiSuexec", "Off", &fs()).unwrap_err().to_string(),
        "FastCgiSuexec was already set to \"/srv/wrap.sh\""
    );

    let mut after = st();
    after.external_server("FastCgiExternalServer", "/e -socket s").unwrap();
    for arg in ["On", "Off", "/srv/wrap.sh"] {
        assert_eq!(
            after.wrapper("FastCgiWrapper", arg, &fs()).unwrap_err().to_string(),
            "The FastCgiWrapper command must preceed static FastCGI server definitions"
        );
    }

    let cases: &[(&str, &str, &str)] = &[
        (
            "FastCgiWrapper",
            "/srv/none.sh",
            "FastCgiWrapper: \"/srv/none.sh\" execute access for server (uid 33, gid 33) failed: \
             stat(/srv/none.sh) failed: No such file or directory",
        ),
        (
            "FastCgiSuexec",
            "/srv/wrap-noexec.sh",
            "FastCgiSuexec: \"/srv/wrap-noexec.sh\" execute access for server (uid 33, gid 33) failed: \
             execute not allowed",
        ),
    ];
    for (d, arg, want) in cases {
        let mut s = st();
        assert_eq!(s.wrapper(d, arg, &fs()).unwrap_err().to_string(), *want);
        assert_eq!(s.wrapper_path(), None);
    }

    let mut e = env();
    e.suexec_path = None;
    assert_eq!(
        ConfigState::new(e)
            .wrapper("FastCgiWrapper", "On", &fs())
            .unwrap_err()
            .to_string(),
        "FastCgiWrapper: \"On\" selects httpd's suexec, but this httpd has no suexec binary"
    );
}

#[test]
fn wrapper_server_identities() {
    type Check = fn(&StaticServer) -> bool;
    let cases: &[(&str, Check)] = &[
        ("", |s| {
            s.identity
                == Some(Identity {
                    uid: 33,
                    gid: 33,
                    user: "www-data".into(),
                    group: "www-data".into(),
                })
                && s.listen == StaticListen::Unix(ipc("1c49365a2e2d38934c3a018cdd8a80cc"))
        }),
        ("-user bob -group staff", |s| {
            s.identity
                == Some(Identity {
                    uid: 1001,
                    gid: 50,
                    user: "bob".into(),
                    group: "staff".into(),
                })
                && s.listen
                    == StaticListen::Unix(default_static_socket(
                        Path::new(IPC),
                        Path::new(P),
                        Some(("bob", "staff")),
                    ))
        }),
        ("-user #1001", |s| {
            s.identity
                .as_ref()
                .is_some_and(|i| i.uid == 1001 && i.user == "bob" && i.gid == 33)
        }),
        ("-group #50", |s| {
            s.identity.as_ref().is_some_and(|i| i.gid == 50 && i.group == "staff")
        }),
        ("-port 9000", |s| s.identity.is_some()),
    ];
    for (opts, check) in cases {
        let mut s = wrapped();
        s.fastcgi_server("FastCgiServer", &format!("{P} {opts}"), &fs())
            .unwrap_or_else(|e| panic!("{opts}: {e}"));
        assert!(check(as_static(&s.servers()[0])), "{opts}: {:?}", s.servers()[0]);
        assert!(s.take_warnings().is_empty());
    }
    // With a wrapper there is no execute check (the wrapper decides) ...
    wrapped()
        .fastcgi_server("FastCgiServer", "/srv/app/noexec.fcgi", &fs())
        .unwrap();
    // ... but the file must still exist and not be a directory.
    assert_eq!(
        wrapped()
            .fastcgi_server("FastCgiServer", "/srv/app/dir", &fs())
            .unwrap_err()
            .to_string(),
        "FastCgiServer: \"/srv/app/dir\" script is a directory!"
    );
    let mut s = wrapped();
    s.external_server("FastCgiExternalServer", "/e -socket s -user bob")
        .unwrap();
    assert_eq!(
        as_external(&s.servers()[0]).identity.as_ref().map(|i| i.uid),
        Some(1001)
    );
}

#[test]
fn wrapper_identity_rejections() {
    let cases: &[(&str, String)] = &[
        ("-user root", format!("FastCgiServer {P}: invalid user or group: invalid uid or gid, see the -user and -group options")),
        ("-group #0", format!("FastCgiServer {P}: invalid user or group: invalid uid or gid, see the -user and -group options")),
        ("-user nosuch", format!("FastCgiServer {P}: invalid user or group: bad user name nosuch")),
        ("-group nosuch", format!("FastCgiServer {P}: invalid user or group: bad group name nosuch")),
        ("-user #abc", format!("FastCgiServer {P}: invalid user or group: bad user name #abc")),
        (
            "-user #4242",
            format!(
                "FastCgiServer {P}: invalid user or group: getpwuid() couldn't determine the username for uid '4242', \
                 you probably need to modify the User directive"
            ),
        ),
        (
            "-group #4343",
            format!(
                "FastCgiServer {P}: invalid user or group: getgrgid() couldn't determine the group name for gid '4343', \
                 you probably need to modify the Group directive"
            ),
        ),
    ];
    for (opts, want) in cases {
        let err = wrapped()
            .fastcgi_server("FastCgiServer", &format!("{P} {opts}"), &fs())
            .unwrap_err();
        assert_eq!(err.to_string(), *want, "{opts}");
    }
    let err = wrapped()
        .external_server("ExternalAppClass", "/e -socket s -user root")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ExternalAppClass /e: invalid user or group: invalid uid or gid, see the -user and -group options"
    );
    // Main server running as root without User: the default identity is 0.
    let mut e = env();
    e.uid = 0;
    e.gid = 0;
    let mut s = ConfigState::new(e);
    s.wrapper("FastCgiWrapper", "/srv/wrap.sh", &fs()).unwrap();
    assert!(s
        .fastcgi_server("FastCgiServer", P, &fs())
        .unwrap_err()
        .to_string()
        .contains("invalid uid or gid"));
}

#[test]
fn user_group_without_wrapper_warns_cfg41() {
    let mut s = st();
    s.fastcgi_server("FastCgiServer", &format!("{P} -user bob"), &fs())
        .unwrap();
    assert_eq!(s.take_warnings(), [NO_WRAPPER_WARNING]);
    assert!(s.take_warnings().is_empty());
    s.external_server("FastCgiExternalServer", "/e -socket s -group staff")
        .unwrap();
    assert_eq!(
        s.take_warnings(),
        ["FastCGI: there is no fastcgi wrapper set, user/group options are ignored"]
    );
    s.external_server("FastCgiExternalServer", "/f -socket s").unwrap();
    assert!(s.take_warnings().is_empty());
}

// ---------------------------------------------------------------- CFG-40 identity

#[test]
fn user_group_must_precede_cfg40() {
    let msg = "User/Group commands must preceed FastCGI server definitions";
    let mut s = st();
    s.set_identity(34, 34, "other", "other"); // before any FastCGI directive: fine
    s.fastcgi_server("FastCgiServer", P, &fs()).unwrap();
    assert_eq!(s.fcgi_identity().uid, 34);
    let mut s = st();
    s.set_identity(1001, 50, "bob", "staff");
    s.fastcgi_server("FastCgiServer", P, &fs()).unwrap();
    s.set_identity(33, 33, "www-data", "www-data");
    assert_eq!(
        s.fastcgi_server("FastCgiServer", "fcgi-bin/rel.fcgi", &fs())
            .unwrap_err()
            .to_string(),
        format!("FastCgiServer fcgi-bin/rel.fcgi: {msg}")
    );
    assert_eq!(
        s.external_server("FastCgiExternalServer", "ext -socket s")
            .unwrap_err()
            .to_string(),
        format!("FastCgiExternalServer ext: {msg}")
    );
    assert_eq!(
        s.ipc_dir("ipc", &fs()).unwrap_err().to_string(),
        "FastCgiIpcDir ipc: already defined as \"/srv/httpd/logs/fastcgi\""
    );

    let mut s = st();
    s.ipc_dir("/var/ipc-ok", &fs()).unwrap();
    s.set_identity(1001, 50, "bob", "staff");
    assert_eq!(
        s.wrapper("FastCgiWrapper", "/srv/wrap.sh", &fs())
            .unwrap_err()
            .to_string(),
        format!("FastCgiWrapper /srv/wrap.sh: {msg}")
    );
    let mut s = st();
    s.wrapper("FastCgiWrapper", "Off", &fs()).unwrap();
    s.set_identity(1001, 50, "bob", "staff");
    assert_eq!(
        s.ipc_dir("/var/ipc-ok", &fs()).unwrap_err().to_string(),
        format!("FastCgiIpcDir /var/ipc-ok: {msg}")
    );
    // The snapshot identity is what permission checks use.
    let mut s = st();
    s.set_identity(1001, 50, "bob", "staff");
    s.fastcgi_server("FastCgiServer", "/srv/app/member-ok.fcgi", &fs())
        .unwrap();
    assert_eq!(s.fcgi_identity().uid, 1001);
}

// ---------------------------------------------------------------- redefinition

#[test]
fn redefinition_cfg42() {
    let sd = |s: &mut ConfigState, a: &str| s.fastcgi_server("FastCgiServer", a, &fs()).map(|_| ());
    let ed = |s: &mut ConfigState, a: &str| s.external_server("FastCgiExternalServer", a).map(|_| ());

    let mut s = st();
    sd(&mut s, P).unwrap();
    assert_eq!(
        sd(&mut s, P).unwrap_err().to_string(),
        format!("FastCgiServer: redefinition of a previously defined FastCGI server \"{P}\"")
    );
    assert_eq!(
        s.fastcgi_server("AppClass", "/srv/app//./static.fcgi -processes 2", &fs())
            .unwrap_err()
            .to_string(),
        format!("AppClass: redefinition of a previously defined FastCGI server \"{P}\"")
    );
    assert_eq!(
        ed(&mut s, &format!("{P} -socket s")).unwrap_err().to_string(),
        format!("FastCgiExternalServer: redefinition of previously defined class \"{P}\"")
    );
    assert_eq!(
        ed(&mut s, &format!("{P}/sub -socket s")).unwrap_err().to_string(),
        format!("FastCgiExternalServer: redefinition of previously defined class \"{P}/sub\""),
        "prefix rule"
    );
    // The static redefinition check comes before the file check.
    assert_eq!(
        sd(&mut s, &format!("{P}/sub")).unwrap_err().to_string(),
        format!("FastCgiServer: redefinition of a previously defined FastCGI server \"{P}/sub\"")
    );

    let mut s = st();
    ed(&mut s, "/x/app -socket a").unwrap();
    assert_eq!(
        sd(&mut s, "/x/app").unwrap_err().to_string(),
        "FastCgiServer: redefinition of a previously defined FastCGI server \"/x/app\""
    );
    sd(&mut s, "/x/application").unwrap();
    let mut s = st();
    ed(&mut s, "/x/app/sub -socket a").unwrap();
    ed(&mut s, "/x/app -socket b").unwrap(); // a longer earlier path is not a prefix
    assert_eq!(s.servers().len(), 2);
}

#[test]
fn wrapper_redefinition_uses_server_identity() {
    let mut s = wrapped();
    s.fastcgi_server("FastCgiServer", P, &fs()).unwrap();
    assert_eq!(
        s.fastcgi_server("FastCgiServer", P, &fs()).unwrap_err().to_string(),
        format!("FastCgiServer: redefinition of a previously defined FastCGI server \"{P}\" with uid=33 and gid=33")
    );
    // Different identity: a separate definition.
    s.fastcgi_server("FastCgiServer", &format!("{P} -user bob -group staff"), &fs())
        .unwrap();
    assert_eq!(
        s.fastcgi_server("FastCgiServer", &format!("{P} -user bob -group staff"), &fs())
            .unwrap_err()
            .to_string(),
        format!("FastCgiServer: redefinition of a previously defined FastCGI server \"{P}\" with uid=1001 and gid=50")
    );
    assert_eq!(
        s.external_server("FastCgiExternalServer", &format!("{P} -socket s"))
            .unwrap_err()
            .to_string(),
        format!("FastCgiExternalServer: redefinition of previously defined class \"{P}\" with uid=33 and gid=33")
    );
    let bob = s.find_server_for_identity(Path::new(P), 1001, 50).unwrap();
    assert_eq!(bob.identity().unwrap().user, "bob");
    let www = s.find_server_for_identity(Path::new(P), 33, 33).unwrap();
    assert_eq!(www.identity().unwrap().user, "www-data");
    assert!(s.find_server_for_identity(Path::new(P), 0, 0).is_none(), "RT-16");
}

// ---------------------------------------------------------------- RT-10 lookup

#[test]
fn find_server_rt10() {
    let mut s = st();
    s.external_server("FastCgiExternalServer", "/x/app -socket app")
        .unwrap();
    s.external_server("FastCgiExternalServer", "/y/prog -socket prog")
        .unwrap();
    let cases: &[(&str, Option<&str>)] = &[
        ("/x/app", Some("/x/app")),
        ("/x/app/", Some("/x/app")),
        ("/x/app/extra/path", Some("/x/app")),
        ("/x//app", Some("/x/app")),
        ("//x/app//info", Some("/x/app")),
        ("/x/application", None),
        ("/x/app.fcgi", None),
        ("/x/ap", None),
        ("/x", None),
        ("/", None),
        ("", None),
        ("x/app", None),
        ("/y/prog", Some("/y/prog")),
        ("/y/prog/x", Some("/y/prog")),
        ("/y/program", None),
    ];
    for (lookup, want) in cases {
        let got = s.find_server(Path::new(lookup)).map(|srv| srv.path().to_path_buf());
        assert_eq!(got, want.map(PathBuf::from), "{lookup}");
    }
    // No ~4 KiB truncation of the looked-up path (legacy FCGI_MAXPATH).
    let long = format!("/x/app/{}", "a".repeat(5000));
    assert!(s.find_server(Path::new(&long)).is_some());
    let long_miss = format!("/x/{}", "a".repeat(5000));
    assert!(s.find_server(Path::new(&long_miss)).is_none());
    // Reverse definition order: the later /x/app wins over the earlier /x/app/sub.
    let mut s = st();
    s.external_server("FastCgiExternalServer", "/x/app/sub -socket first")
        .unwrap();
    s.external_server("FastCgiExternalServer", "/x/app -socket second")
        .unwrap();
    let hit = s.find_server(Path::new("/x/app/sub/z")).unwrap();
    assert_eq!(*as_external(hit).addr(), AppAddr::Unix(ipc("second")));
    // Without a wrapper, identities are ignored.
    assert!(s.find_server_for_identity(Path::new("/x/app"), 0, 0).is_some());
}

// ---------------------------------------------------------------- auth

#[test]
fn auth_accepted() {
    let mut s = st();
    s.external_server("FastCgiExternalServer", "/srv/app/ext-auth -socket a")
        .unwrap();
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, bool);
    let cases: &[Case] = &[
        ("FastCgiAuthenticator", P, None, P, false),
        ("FastCgiAuthorizer", P, Some("-compat"), P, true),
        ("FastCgiAccessChecker", P, Some("-COMPAT"), P, true),
        (
            "FastCgiAuthenticator",
            "fcgi-bin/rel.fcgi",
            None,
            "/srv/httpd/fcgi-bin/rel.fcgi",
            false,
        ),
        (
            "FastCgiAuthenticator",
            "/srv/app/own33.fcgi",
            None,
            "/srv/app/own33.fcgi",
            false,
        ),
        (
            "FastCgiAuthenticator",
            "/srv/app/member-ok.fcgi",
            None,
            "/srv/app/member-ok.fcgi",
            false,
        ),
        // Lazy resolution: not (yet) existing paths are accepted.
        (
            "FastCgiAuthenticator",
            "/srv/app/later.fcgi",
            None,
            "/srv/app/later.fcgi",
            false,
        ),
        (
            "FastCgiAuthorizer",
            "/srv/nodir/later.fcgi",
            None,
            "/srv/nodir/later.fcgi",
            false,
        ),
        (
            "FastCgiAuthorizer",
            "/srv/app/static.fcgi/sub",
            None,
            "/srv/app/static.fcgi/sub",
            false,
        ),
        // A defined server is not stat()ed at all.
        (
            "FastCgiAccessChecker",
            "/srv/app/ext-auth",
            None,
            "/srv/app/ext-auth",
            false,
        ),
    ];
    for (d, path, opt, want, compat) in cases {
        let spec = parse_auth(d, path, *opt, &s, &fs()).unwrap_or_else(|e| panic!("{d} {path}: {e}"));
        assert_eq!(
            spec,
            AuthSpec {
                path: PathBuf::from(want),
                compat: *compat
            },
            "{d} {path}"
        );
    }
    // With a wrapper the execute check is the wrapper's business.
    parse_auth("FastCgiAuthenticator", "/srv/app/noexec.fcgi", None, &wrapped(), &fs()).unwrap();
}

#[test]
fn auth_rejections() {
    let s = st();
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "FastCgiAuthenticator",
            P,
            Some("-bogus"),
            "FastCgiAuthenticator: unknown option: \"-bogus\"",
        ),
        (
            "FastCgiAuthorizer",
            P,
            Some("compat"),
            "FastCgiAuthorizer: unknown option: \"compat\"",
        ),
        (
            "FastCgiAuthorizer",
            "/srv/app/dir",
            None,
            "FastCgiAuthorizer: \"/srv/app/dir\" script is a directory!",
        ),
        (
            "FastCgiAccessChecker",
            "/srv/app/noexec.fcgi",
            None,
            "FastCgiAccessChecker: \"/srv/app/noexec.fcgi\" access for server (uid 33, gid 33) not allowed: \
             execute not allowed",
        ),
        (
            "FastCgiAuthenticator",
            "/srv/app/owner.fcgi",
            None,
            "FastCgiAuthenticator: \"/srv/app/owner.fcgi\" access for server (uid 33, gid 33) not allowed: \
             execute not allowed by owner",
        ),
        (
            "FastCgiAuthenticator",
            "/srv/app/locked.fcgi",
            None,
            "FastCgiAuthenticator: \"/srv/app/locked.fcgi\" stat(/srv/app/locked.fcgi) failed: Permission denied",
        ),
        // The path check comes before the option check (legacy order).
        (
            "FastCgiAuthenticator",
            "/srv/app/dir",
            Some("-bogus"),
            "FastCgiAuthenticator: \"/srv/app/dir\" script is a directory!",
        ),
    ];
    for (d, path, opt, want) in cases {
        let err = parse_auth(d, path, *opt, &s, &fs()).unwrap_err();
        assert_eq!(err.to_string(), *want, "{d} {path} {opt:?}");
    }
}

#[test]
fn auth_external_defined_later_works() {
    let mut s = st();
    let spec = parse_auth("FastCgiAuthorizer", "/srv/app/ext-later", None, &s, &fs()).unwrap();
    s.external_server("FastCgiExternalServer", "/srv/app/ext-later -host 127.0.0.1:9000")
        .unwrap();
    assert!(s.find_server(&spec.path).is_some());
}

#[test]
fn auth_uses_real_user_group_not_zero() {
    // own33.fcgi is 0700 owned by 33: legacy (checking as uid 0) refused it
    // when no server directive preceded the auth directive.
    let s = st();
    assert!(s.servers().is_empty());
    parse_auth("FastCgiAuthenticator", "/srv/app/own33.fcgi", None, &s, &fs()).unwrap();
}

#[test]
fn auth_roles() {
    let cases: &[(&str, Option<AuthRole>)] = &[
        ("FastCgiAuthenticator", Some(AuthRole::Authenticator)),
        ("fastcgiauthorizer", Some(AuthRole::Authorizer)),
        ("FastCgiAccessChecker", Some(AuthRole::AccessChecker)),
        ("FastCgiAuthenticatorAuthoritative", None),
        ("FastCgiServer", None),
    ];
    for (name, want) in cases {
        assert_eq!(AuthRole::from_directive(name), *want, "{name}");
    }
    assert_eq!(
        AuthRole::from_authoritative_directive("FastCgiAccessCheckerAuthoritative"),
        Some(AuthRole::AccessChecker)
    );
    assert_eq!(AuthRole::from_authoritative_directive("FastCgiAccessChecker"), None);
    let roles: Vec<_> = AuthRole::ALL.iter().map(|r| r.apache_role()).collect();
    assert_eq!(roles, ["AUTHENTICATOR", "AUTHORIZER", "ACCESS_CHECKER"]);
}

#[test]
fn dir_auth_merge_sg8() {
    let spec = |p: &str| AuthSpec {
        path: PathBuf::from(p),
        compat: false,
    };
    let mut parent = DirAuthConfig::default();
    parent.set_server(AuthRole::Authenticator, spec("/a"));
    parent.set_authoritative(AuthRole::Authenticator, false);
    parent.set_server(AuthRole::AccessChecker, spec("/ac"));

    // AU-26 scenario: a child with only an Authoritative flag keeps the parent's authenticator.
    let mut child = DirAuthConfig::default();
    child.set_authoritative(AuthRole::Authenticator, true);
    let m = DirAuthConfig::merge(&parent, &child);
    assert_eq!(m.server(AuthRole::Authenticator), Some(&spec("/a")));
    assert!(m.is_authoritative(AuthRole::Authenticator));
    assert_eq!(m.server(AuthRole::AccessChecker), Some(&spec("/ac")));

    let mut child = DirAuthConfig::default();
    child.set_server(AuthRole::Authorizer, spec("/z"));
    child.set_server(AuthRole::Authenticator, spec("/b"));
    let m = DirAuthConfig::merge(&parent, &child);
    assert_eq!(m.server(AuthRole::Authenticator), Some(&spec("/b")));
    assert!(!m.is_authoritative(AuthRole::Authenticator), "inherited Off");
    assert_eq!(m.server(AuthRole::Authorizer), Some(&spec("/z")));
    assert!(m.is_authoritative(AuthRole::Authorizer), "default On");

    assert_eq!(DirAuthConfig::merge(&parent, &DirAuthConfig::default()), parent);
    assert_eq!(DirAuthConfig::merge(&DirAuthConfig::default(), &parent), parent);
    let d = DirAuthConfig::default();
    assert!(AuthRole::ALL
        .iter()
        .all(|r| d.is_authoritative(*r) && d.server(*r).is_none()));
    // Repeating a directive replaces the setting, -compat included.
    let mut c = DirAuthConfig::default();
    c.set_server(
        AuthRole::Authorizer,
        AuthSpec {
            path: "/x".into(),
            compat: true,
        },
    );
    c.set_server(AuthRole::Authorizer, spec("/y"));
    assert_eq!(c.server(AuthRole::Authorizer), Some(&spec("/y")));
}

// ---------------------------------------------------------------- deliberate differences

#[test]
fn legacy_fixes_are_in_place() {
    // 1. negatives rejected for unsigned options
    for (opt, want) in [
        ("-processes -1", "\"-1\" must be a positive integer"),
        ("-restart-delay -1", "\"-1\" must be >= 0"),
        ("-appConnTimeout -3", "\"-3\" must be >= 0"),
    ] {
        let e = st()
            .fastcgi_server("FastCgiServer", &format!("{P} {opt}"), &fs())
            .unwrap_err();
        assert!(e.to_string().ends_with(want), "{opt}: {e}");
    }
    // 2. -port message shows the value given
    let e = st()
        .fastcgi_server("FastCgiServer", &format!("{P} -port 65536"), &fs())
        .unwrap_err();
    assert!(e.to_string().contains("\"65536\""));
    // 3. -host port no longer wraps; IPv6; several addresses
    assert!(st()
        .external_server("FastCgiExternalServer", "/e -host 127.0.0.1:70000")
        .is_err());
    assert_eq!(
        *external_ok("/e -host [::1]:9000").addr(),
        AppAddr::Tcp(tcp("[::1]:9000"))
    );
    // (Issue 14: a name with several addresses is several backends.)
    assert_eq!(
        external_ok("/e -host multi.example:1").addrs,
        vec![AppAddr::Tcp(tcp("10.0.0.6:1")), AppAddr::Tcp(tcp("10.0.0.7:1"))]
    );
    // 4. -pass-header needs a value
    assert!(st()
        .external_server("FastCgiExternalServer", "/e -socket s -pass-header")
        .is_err());
    // 5. FastCgiConfig -priority accepted
    assert_eq!(dynamic_ok("-priority 3").priority, 3);
    // 6. -min-server-life names the path
    let e = st()
        .fastcgi_server("FastCgiServer", &format!("{P} -min-server-life x"), &fs())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("FastCgiServer {P}: invalid value for -min-server-life: \"x\" must be a positive integer")
    );
    // 7. NaN gain rejected
    assert!(st().fastcgi_config("FastCgiConfig", "-gainValue NaN").is_err());
    // 13. no u32 overflow in the slack check
    assert_eq!(dynamic_ok("-maxProcesses 4294967295").max_processes, u32::MAX);
}

#[test]
fn error_variants_render() {
    let cases: Vec<(ConfigError, &str)> = vec![
        (ConfigError::StaticPathMissing, "AppClass requires a pathname!?"),
        (
            ConfigError::InvalidValue {
                directive: "D".into(),
                path: None,
                option: "-o".into(),
                reason: "r".into(),
            },
            "D: invalid value for -o: r",
        ),
        (
            ConfigError::InvalidOption {
                directive: "D".into(),
                path: Some("/p".into()),
                option: "-o".into(),
            },
            "D /p: invalid option: -o",
        ),
        (
            ConfigError::MustPrecede {
                directive: "FastCgiIpcDir".into(),
            },
            "The FastCgiIpcDir command must preceed static FastCGI server definitions",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(e.to_string(), want);
    }
}

// ---------------------------------------------------------------- system hooks

#[test]
fn passwd_and_group_parsing() {
    let passwd = "# comment\nroot:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n";
    let group = "root:x:0:\nwww-data:x:33:\nstaff:x:50:www-data,bob\nempty:x:60:\n";
    assert_eq!(system::find_entry(passwd, 0, "www-data").unwrap()[2], "33");
    assert_eq!(system::find_entry(passwd, 2, "0").unwrap()[0], "root");
    assert!(system::find_entry(passwd, 0, "nobody").is_none());
    assert_eq!(system::members_of(group, 50), ["www-data", "bob"]);
    assert!(system::members_of(group, 60).is_empty());
    assert!(system::members_of(group, 99).is_empty());
    assert_eq!(system_getenv(""), None);
    assert_eq!(system_getenv("A=B"), None);
}

#[test]
fn os_probe_and_system_resolver_smoke() {
    let info = OsProbe.stat(Path::new("/")).unwrap();
    assert!(info.is_dir);
    assert!(OsProbe.stat(Path::new("/nonexistent/x")).is_err());
    assert_eq!(system_resolve("127.0.0.1", 80).unwrap(), [tcp("127.0.0.1:80")]);
    assert_eq!(system_uid_by_name("root"), Some(0));
    assert_eq!(system_user_by_uid(0).as_deref(), Some("root"));
}

// Security review, finding 2: the IPC directory (and dynamic/) must not be
// a symbolic link, whatever its target looks like.
#[test]
fn ipc_dir_symlink_is_refused() {
    for (arg, want) in [
        (
            "/var/ipc-link",
            "FastCgiIpcDir /var/ipc-link: is a symbolic link; refusing it because whoever controls the link could \
             redirect the application sockets (name the real directory)",
        ),
        (
            "/var/ipc-dynlink",
            "FastCgiIpcDir /var/ipc-dynlink: can't create dynamic directory \"/var/ipc-dynlink/dynamic\": is a \
             symbolic link; refusing it because whoever controls the link could redirect the application sockets \
             (name the real directory)",
        ),
    ] {
        let mut s = st();
        assert_eq!(s.ipc_dir(arg, &fs()).unwrap_err().to_string(), want);
    }
}

// Security review, finding 1: a static application's socket in a
// directory others can write.
#[test]
fn static_socket_in_shared_directory() {
    let mut s = st();
    let err = s
        .fastcgi_server("FastCgiServer", &format!("{P} -socket /var/shared-sock/a.sock"), &fs())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "FastCgiServer /srv/app/static.fcgi: invalid value for -socket: the directory \"/var/shared-sock\" is \
         writable by its group or by others and not sticky (mode 0777): anyone with write access could replace the \
         socket; use a name relative to FastCgiIpcDir",
    );
    let err = s
        .fastcgi_server("FastCgiServer", &format!("{P} -socket /var/group-sock/a.sock"), &fs())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("-socket") && err.contains("/var/group-sock") && err.contains("mode 2770"),
        "{err}"
    );
    assert!(s.take_warnings().is_empty());
    // Sticky (like /tmp): accepted with one warning (the seed guide's
    // `-socket /tmp/fcgi.sock` keeps working).
    s.fastcgi_server("FastCgiServer", &format!("{P} -socket /tmp/fcgi.sock"), &fs())
        .unwrap();
    let w = s.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("\"/tmp/fcgi.sock\" is in the shared directory \"/tmp\" (mode 1777)"),
        "{w:?}"
    );
    // A private directory: nothing to say.
    static_ok(&format!("{P} -socket /var/ipc-ok/a.sock"));
}

#[test]
fn external_peer_user() {
    let x = external_ok("/e -socket /var/shared-sock/php.sock -peer-user www-data");
    assert_eq!(x.opts.peer_uid, Some(33));
    let x = external_ok("/e -socket s -peer-user #1234");
    assert_eq!(x.opts.peer_uid, Some(1234));
    assert_eq!(external_ok("/e -socket s").opts.peer_uid, None, "off by default");
    let mut s = st();
    let e = s
        .external_server("FastCgiExternalServer", "/e -host 127.0.0.1:9000 -peer-user www-data")
        .unwrap_err()
        .to_string();
    assert!(e.contains("-peer-user") && e.contains("only works with -socket"), "{e}");
    let e = s
        .external_server("FastCgiExternalServer", "/e -socket s -peer-user no-such-user")
        .unwrap_err()
        .to_string();
    assert!(e.contains("-peer-user") && e.contains("no such user"), "{e}");
    // Not an option of FastCgiServer (its peer is always checked).
    let e = s
        .fastcgi_server("FastCgiServer", &format!("{P} -peer-user www-data"), &fs())
        .unwrap_err()
        .to_string();
    assert!(e.contains("-peer-user"), "{e}");
}

/// Security (issue 10, finding 11): `-pass-header Proxy` would re-create
/// HTTP_PROXY (httpoxy); refused in every directive that takes it, any case.
#[test]
fn pass_header_proxy_is_refused() {
    let why = "is refused: it would be passed as HTTP_PROXY, which applications take as their outgoing proxy (httpoxy)";
    let e = st()
        .fastcgi_server("FastCgiServer", &format!("{P} -pass-header Proxy"), &fs())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("FastCgiServer {P}: invalid value for -pass-header: \"Proxy\" {why}")
    );
    let e = st()
        .external_server("FastCgiExternalServer", "/e -socket s -pass-header pRoXy")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("FastCgiExternalServer /e: invalid value for -pass-header: \"pRoXy\" {why}")
    );
    let e = st().fastcgi_config("FastCgiConfig", "-pass-header PROXY").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("FastCgiConfig: invalid value for -pass-header: \"PROXY\" {why}")
    );
    // Headers that merely contain the word are fine.
    assert_eq!(
        dynamic_ok("-pass-header Proxy-Authorization").pass_headers,
        ["Proxy-Authorization"]
    );
}

/// Security (issue 10, finding 4): PHP_VALUE / PHP_ADMIN_VALUE are passed
/// only with `-pass-php-values`.
#[test]
fn pass_php_values_option() {
    assert!(!ConnOptions::default().pass_php_values);
    assert!(!dynamic_ok("-flush").pass_php_values);
    assert!(dynamic_ok("-Pass-PHP-Values").pass_php_values);
    assert!(external_ok("/e -socket s -pass-php-values").opts.pass_php_values);
    assert!(!external_ok("/e -socket s").opts.pass_php_values);
}

/// Security (issue 10, finding 8): the spool directives.
#[test]
fn spool_directives() {
    let mut s = st();
    assert_eq!(s.spool_limit(), 128 << 20);
    assert_eq!(s.spool_total(), 1 << 30);
    assert_eq!(s.effective_spool_dir(), Path::new("/var/tmp"));
    for (arg, want) in [
        ("1", 1u64),
        ("4096", 4096),
        ("64k", 64 << 10),
        ("2M", 2 << 20),
        ("1G", 1 << 30),
    ] {
        s.spool_size_directive("FastCgiSpoolLimit", arg).unwrap();
        assert_eq!(s.spool_limit(), want, "{arg}");
    }
    s.spool_size_directive("FastCgiSpoolTotal", "3m").unwrap();
    assert_eq!(s.spool_total(), 3 << 20);
    for bad in ["", "0", "-1", "1.5M", "12X", "M", "99999999999999999999G"] {
        let e = s
            .spool_size_directive("FastCgiSpoolLimit", bad)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("FastCgiSpoolLimit: "), "{bad}: {e}");
    }
    let e = s
        .spool_size_directive("FastCgiSpoolTotal", "0")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "FastCgiSpoolTotal: \"0\" must be a number of bytes >= 1 (optionally followed by K, M or G)"
    );
}

/// Issue 14: `-host` and `-socket` repeat and mix, in the order given; a
/// name with several addresses gives one backend each; the same backend
/// twice counts once; `-retry` (default 10 s, at least 1).
#[test]
fn external_several_backends() {
    let x = external_ok("/e -host 127.0.0.1:9000 -socket a -host 127.0.0.1:9001 -socket /run/b.sock");
    assert_eq!(
        x.addrs,
        vec![
            AppAddr::Tcp(tcp("127.0.0.1:9000")),
            AppAddr::Unix(ipc("a")),
            AppAddr::Tcp(tcp("127.0.0.1:9001")),
            AppAddr::Unix("/run/b.sock".into()),
        ]
    );
    assert_eq!(x.retry, DEFAULT_RETRY);
    assert_eq!(DEFAULT_RETRY, 10);
    assert_eq!(external_ok("/e -socket a").addrs.len(), 1, "one backend as before");
    let x = external_ok("/e -host multi.example:9 -host 10.0.0.6:9 -socket a -socket a -retry 3");
    assert_eq!(
        x.addrs,
        vec![
            AppAddr::Tcp(tcp("10.0.0.6:9")),
            AppAddr::Tcp(tcp("10.0.0.7:9")),
            AppAddr::Unix(ipc("a")),
        ]
    );
    assert_eq!(x.retry, 3);
    for bad in ["-retry 0", "-retry x", "-retry"] {
        let e = st()
            .external_server("FastCgiExternalServer", &format!("/e -socket a {bad}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("-retry") && e.contains("/e"), "{bad}: {e}");
    }
    // -peer-user can't check a TCP backend, even next to Unix ones.
    let e = st()
        .external_server(
            "FastCgiExternalServer",
            "/e -socket a -host 127.0.0.1:9 -peer-user www-data",
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("-peer-user") && e.contains("only works with -socket"), "{e}");
    assert_eq!(
        external_ok("/e -socket a -socket b -peer-user www-data").opts.peer_uid,
        Some(33)
    );
    // -retry is not an option of FastCgiServer.
    let e = st()
        .fastcgi_server("FastCgiServer", &format!("{P} -retry 5"), &fs())
        .unwrap_err()
        .to_string();
    assert!(e.contains("-retry"), "{e}");
}

/// Issue 14: `-multiplex on|off` (default on), external servers only.
#[test]
fn external_multiplex_option() {
    assert!(external_ok("/e -socket a").opts.multiplex);
    assert!(!external_ok("/e -socket a -multiplex off").opts.multiplex);
    assert!(external_ok("/e -socket a -multiplex OFF -multiplex On").opts.multiplex);
    let e = st()
        .external_server("FastCgiExternalServer", "/e -socket a -multiplex maybe")
        .unwrap_err()
        .to_string();
    assert!(e.contains("-multiplex") && e.contains("on or off"), "{e}");
    let e = st()
        .fastcgi_server("FastCgiServer", &format!("{P} -multiplex off"), &fs())
        .unwrap_err()
        .to_string();
    assert!(e.contains("-multiplex"), "{e}");
}
