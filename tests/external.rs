//! `FastCgiExternalServer` end to end: a real apache2 with the built module, under the MPM
//! chosen by `FCGI_TEST_MPM`, talking to real FastCGI applications (the libfcgi probe, the
//! seed guide's flup app, Perl FCGI, php-fpm).
//!
//!   cargo build --release --lib && cp target/release/libmod_fastcgi.so mod_fastcgi.so
//!   FCGI_TEST_MPM=event MOD_FASTCGI_SO=$PWD/mod_fastcgi.so cargo test --release --test external
//!
//! Every test starts its own Apache (ServerRoot = a fresh [`TestDir`]) and its own
//! applications, so the tests run in parallel.  References (RT-, RQ-) are to the legacy
//! behaviour reference; "improvement" marks a documented difference from legacy.

mod common;

use common::*;
use std::fs;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Apache with ServerRoot = `dir` (htdocs = `<dir>/htdocs`) and `extra` configuration.
fn start_in(dir: &TestDir, extra: &str) -> Apache {
    Apache::start(&ApacheConf::new().root(dir.path()).extra(extra))
}

/// `FastCgiExternalServer @HTDOCS@/<name> -socket <sock> <opts>`.
fn ext_socket(name: &str, sock: &Path, opts: &str) -> String {
    format!(
        "FastCgiExternalServer @HTDOCS@/{name} -socket {} {opts}",
        sock.display()
    )
}

/// Asserts that every name of `expected` is in `names`, in that relative order.
fn assert_order(names: &[String], expected: &[&str]) {
    let mut last: Option<(usize, &str)> = None;
    for want in expected {
        let i = names
            .iter()
            .position(|n| n == want)
            .unwrap_or_else(|| panic!("{want} missing from the environment: {names:?}"));
        if let Some((j, prev)) = last {
            assert!(i > j, "{want} (#{i}) should come after {prev} (#{j}): {names:?}");
        }
        last = Some((i, want));
    }
}

/// Copies `src` to `dst` with `mode`.
fn install(src: &Path, dst: &Path, mode: u32) {
    fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
    fs::set_permissions(dst, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Uneven chunk sizes adding up to exactly `total`.
fn uneven_chunks(total: usize, seed: u64) -> Vec<Vec<u8>> {
    let data = pattern(total, seed);
    let sizes = [1usize, 7, 8191, 65535, 65537, 100_003, 3, 300_000, 12_345, 4096];
    let mut out = Vec::new();
    let (mut pos, mut i) = (0, 0);
    while pos < total {
        let n = sizes[i % sizes.len()].min(total - pos);
        out.push(data[pos..pos + n].to_vec());
        pos += n;
        i += 1;
    }
    out
}

/// A probe whose fd 0 is an already listening IPv6 loopback TCP socket (libfcgi accepts
/// any listening socket on fd 0; `probe --port` cannot bind IPv6).  Killed on drop.
struct Probe6 {
    child: Child,
    log: PathBuf,
}

impl Drop for Probe6 {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- probe6 log ---\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// None (with a printed note) when IPv6 loopback is unavailable.
fn start_probe_tcp6(dir: &TestDir) -> Option<(Probe6, u16)> {
    let listener = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("NOTE: IPv6 loopback unavailable ({e}); IPv6 test skipped");
            return None;
        }
    };
    let port = listener.local_addr().expect("local addr").port();
    let log = dir.join("probe6.log");
    let f = fs::File::create(&log).expect("create probe6.log");
    let child = Command::new(probe_binary())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(f.try_clone().expect("dup"))
        .stderr(f)
        .uid(WWW_UID)
        .gid(WWW_GID)
        .process_group(0)
        .spawn()
        .expect("spawn probe on [::1]");
    Some((Probe6 { child, log }, port))
}

// ---------------------------------------------------------------------------------------
// 1. Module identity
// ---------------------------------------------------------------------------------------

#[test]
fn module_identity_dump_ifmodule_and_server_header() {
    let dir = TestDir::new();
    fs::write(dir.join("ifc.txt"), "ifmodule mod_fastcgi.c active\n").unwrap();
    fs::write(dir.join("ifm.txt"), "ifmodule fastcgi_module active\n").unwrap();
    let conf = ApacheConf::new().root(dir.path()).extra(
        "<IfModule mod_fastcgi.c>\n    Alias /ifc @ROOT@/ifc.txt\n</IfModule>\n\
         <IfModule fastcgi_module>\n    Alias /ifm @ROOT@/ifm.txt\n</IfModule>\n\
         <IfModule !mod_fastcgi.c>\n    Alias /ifnot @ROOT@/ifc.txt\n</IfModule>\n",
    );

    // apache2 -M on the generated configuration.
    let mdir = TestDir::new();
    for d in ["conf", "logs", "run", "htdocs"] {
        mdir.mkdir(d);
    }
    let conf_path = mdir.write("conf/httpd.conf", conf.render(mdir.path(), free_port()), 0o644);
    let out = Command::new(APACHE_BIN)
        .arg("-d")
        .arg(mdir.path())
        .arg("-f")
        .arg(&conf_path)
        .arg("-M")
        .env("LANG", "C")
        .output()
        .expect("run apache2 -M");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "apache2 -M failed:\n{text}");
    assert!(
        text.lines().any(|l| l.trim() == "fastcgi_module (shared)"),
        "apache2 -M does not list fastcgi_module (shared):\n{text}"
    );

    let apache = Apache::start(&conf);
    let r = apache.get("/ifc");
    assert_eq!(r.status, 200, "<IfModule mod_fastcgi.c> inactive: {}", brief(&r));
    assert_eq!(r.text(), "ifmodule mod_fastcgi.c active\n");
    let r = apache.get("/ifm");
    assert_eq!(r.status, 200, "<IfModule fastcgi_module> inactive: {}", brief(&r));
    assert_eq!(r.text(), "ifmodule fastcgi_module active\n");
    let r = apache.get("/ifnot");
    assert_eq!(r.status, 404, "<IfModule !mod_fastcgi.c> active: {}", brief(&r));
    let server = r.header("Server").unwrap_or("").to_string();
    assert!(server.contains("mod_fastcgi/"), "Server header: {server:?}");
}

// ---------------------------------------------------------------------------------------
// 2. The seed guide's external-mode configurations
// ---------------------------------------------------------------------------------------

/// conf-examples/<file> (the seed guide's configuration) with only paths and port adapted:
/// `*:80` → the test port, `/var/www/test/htdocs` → htdocs, `/tmp/fcgi.sock` → `sock`,
/// `127.0.0.1:8080` → `127.0.0.1:<app_port>`.
fn seed_conf(file: &str, sock: &Path, app_port: u16) -> String {
    let text = fs::read_to_string(manifest_dir().join("conf-examples").join(file)).expect("read seed conf");
    for needle in [
        "<VirtualHost *:80>",
        "/var/www/test/htdocs/",
        "SetHandler fastcgi-script",
    ] {
        assert!(text.contains(needle), "conf-examples/{file} lacks {needle:?}");
    }
    text.replace("<VirtualHost *:80>", "<VirtualHost *:@PORT@>")
        .replace("/var/www/test/htdocs", "@HTDOCS@")
        .replace("/tmp/fcgi.sock", &sock.display().to_string())
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{app_port}"))
}

/// Copies conf-examples/app.py into `<dir>/htdocs/app.py` and starts it as www-data with
/// `arg` (a socket path or host:port), the way the guide does.
fn start_seed_app(dir: &TestDir, arg: &str) -> AppProcess {
    let htdocs = dir.mkdir("htdocs");
    let app = htdocs.join("app.py");
    install(&manifest_dir().join("conf-examples/app.py"), &app, 0o755);
    AppProcess::start(
        dir,
        "seed-app",
        AppSpec::new("/usr/bin/python3").arg(&app).arg(arg).cwd(&htdocs),
    )
}

fn assert_seed_hello(apache: &Apache) {
    let r = apache.get("/app.py");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(apache));
    assert!(r.complete, "{}", brief(&r));
    assert!(r.text().contains("<h1>Hello world!</h1>"), "{}", brief(&r));
    assert!(r.text().contains("<title>Hello World!</title>"), "{}", brief(&r));
    assert_eq!(r.header("Content-Type"), Some("text/html"), "{}", brief(&r));
}

#[test]
fn seed_guide_external_mode_with_socket() {
    let dir = TestDir::new();
    let sock = dir.sock_dir().join("fcgi.sock");
    let app = start_seed_app(&dir, &sock.display().to_string());
    app.wait_for_socket(&sock);
    let conf = seed_conf("external-socket.conf", &sock, 0);
    assert!(conf.contains(&format!(
        "FastCgiExternalServer @HTDOCS@/app.py -socket {}",
        sock.display()
    )));
    let apache = start_in(&dir, &conf);
    assert_seed_hello(&apache);
    // The script source is never served as text.
    assert!(!apache.get("/app.py").text().contains("WSGIServer"));
}

#[test]
fn seed_guide_external_mode_with_host_port() {
    let dir = TestDir::new();
    let port = free_port();
    let app = start_seed_app(&dir, &format!("127.0.0.1:{port}"));
    app.wait_for_port(port);
    let conf = seed_conf("external-host.conf", Path::new("/nonexistent"), port);
    assert!(conf.contains(&format!("FastCgiExternalServer @HTDOCS@/app.py -host 127.0.0.1:{port}")));
    let apache = start_in(&dir, &conf);
    assert_seed_hello(&apache);
}

// ---------------------------------------------------------------------------------------
// 3. Fixups rule (RT-11) and AddHandler
// ---------------------------------------------------------------------------------------

#[test]
fn fixups_rule_without_handler_and_addhandler_extension() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    // A real file at the server path must not be served as text.
    dir.write("htdocs/app.py", "#!/usr/bin/python3\nSECRET SOURCE\n", 0o755);
    let apache = start_in(
        &dir,
        &format!(
            "{}\n{}\nAddHandler fastcgi-script .fcgi\n{}",
            ext_socket("app.py", &sock, ""),
            ext_socket("plain", &sock, ""),
            ext_socket("handled.fcgi", &sock, "")
        ),
    );
    for (path, script) in [
        ("/app.py?mode=env", "/app.py"),
        ("/plain?mode=env", "/plain"),
        ("/handled.fcgi?mode=env", "/handled.fcgi"),
    ] {
        let r = apache.get(path);
        assert_eq!(r.status, 200, "{path}: {}\n{}", brief(&r), log_tail(&apache));
        assert!(!r.text().contains("SECRET SOURCE"), "{path} served as a file");
        assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some(script), "{path}");
        assert!(r.header("X-Probe-Pid").is_some(), "{path}: {}", brief(&r));
    }
}

// ---------------------------------------------------------------------------------------
// 4. Virtual file names (RT-13, and legacy bug 15 fixed)
// ---------------------------------------------------------------------------------------

#[test]
fn virtual_filename_path_info_and_missing_parent_directory() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(
        &dir,
        &format!(
            "{}\n{}",
            ext_socket("virt.fcgi", &sock, ""),
            ext_socket("nodir/app.fcgi", &sock, "")
        ),
    );
    let htdocs = apache.htdocs();
    assert!(!htdocs.join("virt.fcgi").exists() && !htdocs.join("nodir").exists());

    let r = apache.get("/virt.fcgi");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/virt.fcgi"));
    assert_eq!(r.env_var("PATH_INFO"), None, "{}", r.text());
    assert_eq!(
        r.env_var("SCRIPT_FILENAME"),
        Some(format!("{}/virt.fcgi", htdocs.display()))
    );

    let r = apache.get("/virt.fcgi/foo/bar?x=1");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/virt.fcgi"));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/foo/bar"));
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("x=1"));
    assert_eq!(r.env_var("REQUEST_URI").as_deref(), Some("/virt.fcgi/foo/bar?x=1"));
    assert_eq!(
        r.env_var("PATH_TRANSLATED"),
        Some(format!("{}/foo/bar", htdocs.display()))
    );

    // Legacy answered 404 here (bug 15).
    let r = apache.get("/nodir/app.fcgi/x");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/nodir/app.fcgi"));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/x"));
    assert_eq!(
        r.env_var("SCRIPT_FILENAME"),
        Some(format!("{}/nodir/app.fcgi", htdocs.display()))
    );
    let r = apache.get("/nodir/app.fcgi");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/nodir/app.fcgi"));
    assert_eq!(r.env_var("PATH_INFO"), None, "{}", r.text());
    // A sibling of the server path is not the server's.
    let r = apache.get("/nodir/other");
    assert_eq!(r.status, 404, "{}", brief(&r));
}

/// Issue 10, finding 9: the directory walk continues through the missing directories of an
/// external server's path, so `<Directory>` and `<Files>` sections for that path apply as
/// they would to a real file there (before the fix, routing matched `filename + PATH_INFO`
/// and `<Directory …/missing>` never applied).
#[test]
fn directory_sections_apply_below_missing_directories() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    // carol:secret ({SHA} of "secret").
    dir.write("htpasswd", "carol:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", 0o644);
    let servers: Vec<String> = ["missing/api", "private/area/api", "deep/er/blocked.fcgi", "open/api"]
        .iter()
        .map(|p| ext_socket(p, &sock, ""))
        .collect();
    let apache = Apache::start(
        &ApacheConf::new()
            .root(dir.path())
            .with_module("authn_core")
            .with_module("authn_file")
            .with_module("authz_user")
            .with_module("auth_basic")
            .extra(&servers.join("\n"))
            .extra(
                "<Directory @HTDOCS@/missing>\n    Require all denied\n</Directory>\n\
                 <Directory @HTDOCS@/private>\n    AuthType Basic\n    AuthName \"Private\"\n    \
                 AuthBasicProvider file\n    AuthUserFile @ROOT@/htpasswd\n    Require valid-user\n</Directory>\n\
                 <Files blocked.fcgi>\n    Require all denied\n</Files>",
            ),
    );
    let htdocs = apache.htdocs();
    for d in ["missing", "private", "deep", "open"] {
        assert!(!htdocs.join(d).exists());
    }

    for path in ["/missing/api/x", "/missing/api", "/deep/er/blocked.fcgi/x"] {
        let r = apache.get(&format!("{path}?mode=env"));
        assert_eq!(
            r.status,
            403,
            "{path}: section bypassed:\n{}\n{}",
            brief(&r),
            log_tail(&apache)
        );
        assert!(!r.text().contains("GATEWAY_INTERFACE="), "{path}: served");
    }

    let r = apache.get("/private/area/api/x?mode=env");
    assert_eq!(
        r.status,
        401,
        "authentication bypassed:\n{}\n{}",
        brief(&r),
        log_tail(&apache)
    );
    assert!(!r.text().contains("GATEWAY_INTERFACE="), "served");
    let carol = [("Authorization", "Basic Y2Fyb2w6c2VjcmV0")];
    let r = apache.get_with("/private/area/api/x?mode=env", &carol);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("REMOTE_USER").as_deref(), Some("carol"));
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/private/area/api"));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/x"));

    // No section: served, split at the server's path.
    let r = apache.get("/open/api/x/y?mode=env");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/open/api"));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/x/y"));
    assert_eq!(
        r.env_var("SCRIPT_FILENAME"),
        Some(format!("{}/open/api", htdocs.display()))
    );
    // The missing directories themselves are still missing.
    let r = apache.get("/open/");
    assert_eq!(r.status, 404, "{}", brief(&r));
    let r = apache.get("/open/other");
    assert_eq!(r.status, 404, "{}", brief(&r));
}

// ---------------------------------------------------------------------------------------
// 5. Relative -socket names live in FastCgiIpcDir
// ---------------------------------------------------------------------------------------

#[test]
fn relative_socket_in_existing_ipc_dir() {
    let dir = TestDir::new();
    let ipc = dir.mkdir_www("ipc");
    fs::set_permissions(&ipc, fs::Permissions::from_mode(0o700)).unwrap();
    let sock = ipc.join("app.sock");
    let probe = AppProcess::start(&dir, "probe", AppSpec::new(probe_binary()).arg("--socket").arg(&sock));
    probe.wait_for_socket(&sock);
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiIpcDir {}\nFastCgiExternalServer @HTDOCS@/rel.fcgi -socket app.sock",
            ipc.display()
        ),
    );
    let r = apache.get("/rel.fcgi?mode=env");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.header("X-Probe-Pid"), Some(probe.pid().to_string().as_str()));
}

#[test]
fn relative_socket_in_ipc_dir_created_by_module() {
    let dir = TestDir::new();
    let ipc = dir.join("ipc-auto");
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiIpcDir {}\nFastCgiExternalServer @HTDOCS@/rel.fcgi -socket app.sock",
            ipc.display()
        ),
    );
    let meta = fs::metadata(&ipc).expect("the module creates FastCgiIpcDir");
    assert!(meta.is_dir());
    assert_eq!((meta.uid(), meta.gid()), (WWW_UID, WWW_GID), "IPC dir owner");
    assert_eq!(meta.mode() & 0o777, 0o700, "IPC dir mode {:o}", meta.mode());
    let sock = ipc.join("app.sock");
    let probe = AppProcess::start(&dir, "probe", AppSpec::new(probe_binary()).arg("--socket").arg(&sock));
    probe.wait_for_socket(&sock);
    let r = apache.get("/rel.fcgi/p?mode=env");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/p"));
}

// ---------------------------------------------------------------------------------------
// 6. IPv6 -host (improvement, legacy bug 23)
// ---------------------------------------------------------------------------------------

#[test]
fn ipv6_host() {
    let dir = TestDir::new();
    let Some((_probe6, port)) = start_probe_tcp6(&dir) else {
        return;
    };
    let apache = start_in(
        &dir,
        &format!("FastCgiExternalServer @HTDOCS@/v6.fcgi -host [::1]:{port}"),
    );
    let r = apache.get("/v6.fcgi/x?mode=env&v=6");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("mode=env&v=6"));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/x"));
    let body = pattern(200_000, 66);
    let r = apache.post("/v6.fcgi?mode=echo", &body, "application/octet-stream");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert!(r.body == body, "IPv6 echo differs ({} bytes back)", r.body.len());
}

// ---------------------------------------------------------------------------------------
// 7. The request environment (RQ-20..RQ-24)
// ---------------------------------------------------------------------------------------

#[test]
fn environment_order_and_standard_variables() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("env.fcgi", &sock, ""));
    let r = apache.get("/env.fcgi");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    let names = r.env_names();
    assert_order(
        &names,
        &[
            "HTTP_HOST",
            "SERVER_SOFTWARE",
            "SCRIPT_FILENAME",
            "GATEWAY_INTERFACE",
            "REQUEST_METHOD",
            "QUERY_STRING",
            "REQUEST_URI",
            "SCRIPT_NAME",
        ],
    );
    let port = apache.port().to_string();
    let v = |n: &str| r.env_var(n);
    assert_eq!(v("HTTP_HOST"), Some(format!("127.0.0.1:{port}")));
    assert!(
        v("SERVER_SOFTWARE").unwrap().contains("mod_fastcgi/"),
        "{:?}",
        v("SERVER_SOFTWARE")
    );
    assert_eq!(
        v("SCRIPT_FILENAME"),
        Some(format!("{}/env.fcgi", apache.htdocs().display()))
    );
    assert_eq!(v("GATEWAY_INTERFACE").as_deref(), Some("CGI/1.1"));
    assert_eq!(v("SERVER_PROTOCOL").as_deref(), Some("HTTP/1.1"));
    assert_eq!(v("REQUEST_METHOD").as_deref(), Some("GET"));
    assert_eq!(
        v("QUERY_STRING").as_deref(),
        Some(""),
        "QUERY_STRING must be present and empty"
    );
    assert_eq!(v("REQUEST_URI").as_deref(), Some("/env.fcgi"));
    assert_eq!(v("SCRIPT_NAME").as_deref(), Some("/env.fcgi"));
    assert_eq!(v("SERVER_PORT"), Some(port));
    assert_eq!(v("REMOTE_ADDR").as_deref(), Some("127.0.0.1"));
    assert_eq!(v("DOCUMENT_ROOT"), Some(apache.htdocs().display().to_string()));
    assert_eq!(v("CONTENT_LENGTH"), None);
    assert_eq!(v("CONTENT_TYPE"), None);
    assert_eq!(v("PATH_INFO"), None);
    assert_eq!(v("STDIN_BYTES").as_deref(), Some("0"));
    // Every name appears once.
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "duplicate names: {names:?}");

    // A POST carries CONTENT_LENGTH and CONTENT_TYPE.
    let r = apache.post("/env.fcgi?a=b", b"hello world", "text/x-test; charset=utf-8");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(r.env_var("REQUEST_METHOD").as_deref(), Some("POST"));
    assert_eq!(r.env_var("CONTENT_LENGTH").as_deref(), Some("11"));
    assert_eq!(r.env_var("CONTENT_TYPE").as_deref(), Some("text/x-test; charset=utf-8"));
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("a=b"));
    assert_eq!(r.env_var("REQUEST_URI").as_deref(), Some("/env.fcgi?a=b"));
    assert_eq!(r.env_var("STDIN_BYTES").as_deref(), Some("11"));
}

#[test]
fn environment_setenv_passenv_authorization_and_pass_header() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let conf = ApacheConf::new()
        .root(dir.path())
        .env("FCGI_TEST_PASSED", "from-apache-env")
        .extra(&format!(
            "SetEnv FOO bar\nPassEnv FCGI_TEST_PASSED\n{}\n{}\n{}\n\
             <Location /cpa.fcgi>\n    CGIPassAuth On\n</Location>",
            ext_socket("env.fcgi", &sock, ""),
            ext_socket("cpa.fcgi", &sock, ""),
            ext_socket(
                "ph.fcgi",
                &sock,
                "-pass-header Authorization -pass-header X-Custom-Thing"
            )
        ));
    let apache = Apache::start(&conf);
    let auth = ("Authorization", "Basic dXNlcjpwYXNz");
    let custom = ("X-Custom-Thing", "custom value");

    let r = apache.get_with("/env.fcgi", &[auth, custom]);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("FOO").as_deref(), Some("bar"), "SetEnv");
    assert_eq!(
        r.env_var("FCGI_TEST_PASSED").as_deref(),
        Some("from-apache-env"),
        "PassEnv"
    );
    assert_eq!(r.env_var("HTTP_AUTHORIZATION"), None, "Authorization passed by default");
    assert_eq!(r.env_var("HTTP_X_CUSTOM_THING").as_deref(), Some("custom value"));
    // SetEnv/PassEnv variables come before the header variables (RQ-21).
    assert_order(&r.env_names(), &["FOO", "HTTP_HOST", "GATEWAY_INTERFACE"]);

    let r = apache.get_with("/cpa.fcgi", &[auth]);
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(
        r.env_var("HTTP_AUTHORIZATION").as_deref(),
        Some("Basic dXNlcjpwYXNz"),
        "CGIPassAuth On: {}",
        r.text()
    );

    let r = apache.get_with("/ph.fcgi", &[auth, custom]);
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(
        r.env_var("HTTP_AUTHORIZATION").as_deref(),
        Some("Basic dXNlcjpwYXNz"),
        "-pass-header Authorization: {}",
        r.text()
    );
    assert_eq!(r.env_var("HTTP_X_CUSTOM_THING").as_deref(), Some("custom value"));
    let names = r.env_names();
    for n in ["HTTP_AUTHORIZATION", "HTTP_X_CUSTOM_THING"] {
        assert_eq!(names.iter().filter(|x| *x == n).count(), 1, "{n} once: {names:?}");
    }
    // pass-header variables sit between the common and the CGI variables (RQ-20).
    assert_order(&names, &["SERVER_SOFTWARE", "HTTP_AUTHORIZATION", "GATEWAY_INTERFACE"]);
    // Without the header in the request nothing is added.
    let r = apache.get("/ph.fcgi");
    assert_eq!(r.env_var("HTTP_AUTHORIZATION"), None);
    assert_eq!(r.env_var("HTTP_X_CUSTOM_THING"), None);
}

// ---------------------------------------------------------------------------------------
// 8. Bodies, byte-exact both ways
// ---------------------------------------------------------------------------------------

const SIZES: [usize; 6] = [0, 65535, 65536, 65537, 1 << 20, 20 << 20];

#[test]
fn request_bodies_echo_byte_exact() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("p.fcgi", &sock, ""));
    for (i, &len) in SIZES.iter().enumerate() {
        let body = pattern(len, 100 + i as u64);
        let r = apache.post("/p.fcgi?mode=echo", &body, "application/octet-stream");
        assert_eq!(r.status, 200, "len {len}: {}\n{}", brief(&r), log_tail(&apache));
        assert!(r.complete, "len {len}: {}", brief(&r));
        assert_eq!(r.header("X-Body-Length"), Some(len.to_string().as_str()), "len {len}");
        assert_eq!(r.header("X-Body-Sum"), Some(checksum_hex(&body).as_str()), "len {len}");
        assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
        assert_eq!(r.body.len(), len, "len {len}");
        assert!(r.body == body, "echo of {len} bytes differs");
    }
}

#[test]
fn response_bodies_byte_exact() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("p.fcgi", &sock, ""));
    for (i, &len) in SIZES.iter().enumerate() {
        let seed = 200 + i as u64;
        let want = pattern(len, seed);
        let r = apache.get(&format!("/p.fcgi?mode=big&size={len}&seed={seed}"));
        assert_eq!(r.status, 200, "size {len}: {}\n{}", brief(&r), log_tail(&apache));
        assert!(r.complete, "size {len}: {}", brief(&r));
        assert_eq!(r.header("X-Body-Length"), Some(len.to_string().as_str()));
        assert_eq!(r.header("X-Body-Sum"), Some(checksum_hex(&want).as_str()));
        assert_eq!(r.body.len(), len, "size {len}");
        assert!(r.body == want, "big response of {len} bytes differs");
    }
    // The default seed of mode=big is 1; an app Content-Length is honoured.
    let r = apache.get("/p.fcgi?mode=big&size=100000&cl=1");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert!(r.complete && r.body == pattern(100_000, 1), "{}", r.raw_head);
}

#[test]
fn chunked_request_bodies_small_and_empty() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("p.fcgi", &sock, ""));
    // Improvement over legacy (411).  30000 bytes: below the module's in-memory spool limit.
    let chunks = uneven_chunks(30_000, 301);
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let whole = chunks.concat();
    let r = apache.post_chunked("/p.fcgi?mode=env", &refs);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("CONTENT_LENGTH").as_deref(), Some("30000"), "{}", r.text());
    assert_eq!(r.env_var("STDIN_BYTES").as_deref(), Some("30000"));
    let r = apache.post_chunked("/p.fcgi?mode=echo", &refs);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.header("X-Body-Length"), Some("30000"));
    assert!(r.body == whole, "chunked echo differs ({} bytes back)", r.body.len());

    // An empty chunked body.
    let r = apache.post_chunked("/p.fcgi?mode=echo", &[]);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.header("X-Body-Length"), Some("0"));
    assert!(r.body.is_empty() && r.complete, "{}", brief(&r));
    let r = apache.post_chunked("/p.fcgi?mode=env", &[]);
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(r.env_var("STDIN_BYTES").as_deref(), Some("0"));
    let cl = r.env_var("CONTENT_LENGTH");
    assert!(cl.is_none() || cl.as_deref() == Some("0"), "CONTENT_LENGTH {cl:?}");
}

#[test]
fn chunked_request_body_1mib_uneven_chunks() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("p.fcgi", &sock, ""));
    let chunks = uneven_chunks(1 << 20, 300);
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let whole = chunks.concat();

    // The app sees CONTENT_LENGTH = the total (the module spools the body first).
    let r = apache.post_chunked("/p.fcgi?mode=env", &refs);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("CONTENT_LENGTH").as_deref(), Some("1048576"), "{}", r.text());
    assert_eq!(r.env_var("STDIN_BYTES").as_deref(), Some("1048576"));

    let r = apache.post_chunked("/p.fcgi?mode=echo", &refs);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.header("X-Body-Length"), Some("1048576"));
    assert_eq!(r.header("X-Body-Sum"), Some(checksum_hex(&whole).as_str()));
    assert!(r.body == whole, "chunked echo differs ({} bytes back)", r.body.len());
}

// ---------------------------------------------------------------------------------------
// 9. Third-party applications
// ---------------------------------------------------------------------------------------

#[test]
fn flup_echo_1mib() {
    let dir = TestDir::new();
    let (_flup, sock) = start_flup_unix(&dir, "flup");
    let apache = start_in(&dir, &ext_socket("flup", &sock, ""));
    let body = pattern(1 << 20, 9);
    let r = apache.post("/flup/echo", &body, "application/octet-stream");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.header("X-App"), Some("flup"));
    assert_eq!(r.header("X-Body-Length"), Some("1048576"));
    assert!(r.body == body, "flup echo differs ({} bytes back)", r.body.len());
    let r = apache.get("/flup/env?k=v");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/flup"));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/env"));
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("k=v"));
    let r = apache.get("/flup");
    assert!(r.text().contains("<h1>Hello world!</h1>"), "{}", brief(&r));
}

#[test]
fn perl_fcgi_app_answers() {
    let dir = TestDir::new();
    let (_perl, sock) = start_perl_unix(&dir, "perl");
    let apache = start_in(&dir, &ext_socket("perl.fcgi", &sock, ""));
    let r = apache.get("/perl.fcgi?q=1");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert!(r.text().starts_with("Hello from perl\n"), "{}", brief(&r));
    assert_eq!(r.header("X-App"), Some("perl"));
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("q=1"));
    let body = pattern(70_000, 3);
    let r = apache.post("/perl.fcgi", &body, "application/octet-stream");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(r.env_var("BODY_BYTES").as_deref(), Some("70000"), "{}", r.text());
}

#[test]
fn php_fpm_classic_action_recipe() {
    let dir = TestDir::new();
    let (_fpm, php_sock) = start_php_fpm(&dir);
    let cgi_bin = dir.mkdir("fcgi-bin");
    dir.mkdir("htdocs");
    install(&app_file("index.php"), &dir.join("htdocs/index.php"), 0o644);
    // conf-examples/php-fpm.conf with only paths adapted (the virtual php-fpm lives in a
    // directory that exists, as /usr/lib/cgi-bin does).
    let text = fs::read_to_string(manifest_dir().join("conf-examples/php-fpm.conf")).expect("read php-fpm.conf");
    assert!(
        text.contains("/usr/lib/cgi-bin/php-fpm") && text.contains("/run/php/php8.2-fpm.sock"),
        "{text}"
    );
    let extra = text
        .replace("/usr/lib/cgi-bin", &cgi_bin.display().to_string())
        .replace("/run/php/php8.2-fpm.sock", &php_sock.display().to_string());
    let conf = ApacheConf::new().root(dir.path()).with_module("actions").extra(&extra);
    let apache = Apache::start(&conf);

    let r = apache.get_with("/index.php?a=b", &[("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert!(r.text().starts_with("Hello from php\n"), "{}", brief(&r));
    assert_eq!(r.header("X-App"), Some("php"));
    assert_eq!(
        r.header("Content-Type").map(|c| c.starts_with("text/plain")),
        Some(true)
    );
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("a=b"), "{}", r.text());
    assert_eq!(
        r.env_var("HTTP_AUTHORIZATION").as_deref(),
        Some("Basic dXNlcjpwYXNz"),
        "{}",
        r.text()
    );
    assert_eq!(r.env_var("PHP_AUTH_USER").as_deref(), Some("user"), "{}", r.text());

    let body = pattern(100 * 1024, 77);
    let r = apache.post("/index.php", &body, "application/octet-stream");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("BODY_LENGTH").as_deref(), Some("102400"), "{}", r.text());
    assert_eq!(r.env_var("BODY_MD5"), Some(md5_hex(&body)), "{}", r.text());
}

// ---------------------------------------------------------------------------------------
// 10-13. Response headers, redirects, HEAD, nph
// ---------------------------------------------------------------------------------------

#[test]
fn response_headers_cookies_status_and_content_type() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("p.fcgi", &sock, ""));

    let r = apache.get("/p.fcgi?mode=cookies");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.headers_all("Set-Cookie"), vec!["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(r.text(), "two cookies\n");

    let r = apache.get("/p.fcgi?mode=status&code=404");
    assert_eq!(r.status, 404, "{}", brief(&r));
    assert_eq!(r.text(), "status 404\n", "the app's own body");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert!(r.header("X-Probe-Pid").is_some());

    let r = apache.get("/p.fcgi?mode=status&code=201&reason=Made");
    assert_eq!((r.status, r.reason.as_str()), (201, "Made"), "{}", brief(&r));
    assert_eq!(r.text(), "status 201\n");

    let r = apache.get("/p.fcgi?mode=status&code=503&reason=Try+Later");
    assert_eq!((r.status, r.reason.as_str()), (503, "Try Later"), "{}", brief(&r));
    assert_eq!(r.text(), "status 503\n");

    let r = apache.get("/p.fcgi?mode=echo");
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    let r = apache.get("/p.fcgi?mode=env");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
}

#[test]
fn redirects_internal_and_external() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    dir.write("htdocs/static.txt", "static file content\n", 0o644);
    let apache = start_in(&dir, &ext_socket("p.fcgi", &sock, ""));

    let r = apache.get("/p.fcgi?mode=redirect_internal&to=/static.txt");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.text(), "static file content\n");
    assert_eq!(r.header("Location"), None, "internal redirect leaked Location");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));

    let r = apache.get("/p.fcgi?mode=redirect_external&to=http://example.invalid/x");
    assert_eq!(r.status, 302, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.header("Location"), Some("http://example.invalid/x"));
}

#[test]
fn head_request_then_get() {
    let dir = TestDir::new();
    let (probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("p.fcgi", &sock, ""));
    let path = "/p.fcgi?mode=big&size=1048576&seed=4";
    let h = apache.head(path);
    assert_eq!(h.status, 200, "{}\n{}", brief(&h), log_tail(&apache));
    assert!(h.complete && h.body.is_empty(), "{}", brief(&h));
    assert_eq!(h.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(h.header("X-Body-Length"), Some("1048576"));

    let r = apache.get(path);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert!(r.body == pattern(1 << 20, 4), "GET after HEAD differs");
    let h = apache.head("/p.fcgi?mode=env");
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    let r = apache.get("/p.fcgi?mode=env");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert!(probe.is_alive(), "the probe died");
}

#[test]
fn nph_option_and_nph_prefix() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(
        &dir,
        &format!(
            "{}\n{}",
            ext_socket("raw.fcgi", &sock, "-nph"),
            ext_socket("nph-app.fcgi", &sock, "")
        ),
    );
    for path in ["/raw.fcgi?mode=nph", "/nph-app.fcgi?mode=nph"] {
        let r = apache.get(path);
        assert_eq!(
            r.raw_head.lines().next(),
            Some("HTTP/1.0 201 Made"),
            "{path}: {}\n{}",
            brief(&r),
            log_tail(&apache)
        );
        assert_eq!((r.status, r.reason.as_str()), (201, "Made"));
        assert_eq!(r.text(), "nph body", "{path}");
        assert_eq!(r.header("Content-Type"), Some("text/plain"));
        assert_eq!(r.header("Server"), None, "{path}: httpd added headers: {}", r.raw_head);
        assert_eq!(r.header("Date"), None, "{path}: httpd added headers: {}", r.raw_head);
        assert!(!r.chunked, "{path}");
    }
}

// ---------------------------------------------------------------------------------------
// 14. Flushing
// ---------------------------------------------------------------------------------------

fn assert_streams(apache: &Apache, path: &str) {
    let r = apache.get(path);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(apache));
    assert_eq!(r.text(), "chunk 0\nchunk 1\nchunk 2\n");
    let first = r.arrivals.first().map(|a| a.0).expect("no body arrivals");
    assert!(
        first < Duration::from_millis(1200),
        "first chunk arrived at {first:?}: {:?}",
        r.arrivals
    );
    assert!(r.elapsed >= Duration::from_secs(3), "took {:?}", r.elapsed);
    let early: usize = r
        .arrivals
        .iter()
        .filter(|a| a.0 < Duration::from_millis(1200))
        .map(|a| a.1)
        .sum();
    let late: usize = r
        .arrivals
        .iter()
        .filter(|a| a.0 >= Duration::from_millis(2900))
        .map(|a| a.1)
        .sum();
    assert!(early > 0 && late > 0, "not streamed: {:?}", r.arrivals);
}

#[test]
fn flush_option_streams_output_as_written() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("flush.fcgi", &sock, "-flush"));
    assert_streams(&apache, "/flush.fcgi?mode=slow&delay_ms=1500&chunks=3");
}

#[test]
fn without_flush_output_is_flushed_when_app_pauses() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("noflush.fcgi", &sock, ""));
    assert_streams(&apache, "/noflush.fcgi?mode=slow&delay_ms=1500&chunks=3");
}

// ---------------------------------------------------------------------------------------
// 15. Application stderr (RQ-70, legacy bug 11 fixed)
// ---------------------------------------------------------------------------------------

#[test]
fn stderr_lines_and_partial_fragment_logged() {
    let dir = TestDir::new();
    let (_probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("p.fcgi", &sock, ""));
    let server = format!("{}/p.fcgi", apache.htdocs().display());

    let mark = apache.log_mark();
    let r = apache.get("/p.fcgi?mode=stderr&lines=3");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.text(), "wrote 3 stderr lines\n");
    let last = format!("FastCGI: server \"{server}\" stderr: probe stderr line 3");
    assert!(
        apache.wait_for_log_after(mark, &last, Duration::from_secs(5)),
        "{}",
        log_tail(&apache)
    );
    let log = apache.error_log_since(mark);
    for i in 1..=3 {
        let want = format!("FastCGI: server \"{server}\" stderr: probe stderr line {i}");
        assert_eq!(
            log.lines().filter(|l| l.ends_with(&want)).count(),
            1,
            "line {i}:\n{log}"
        );
    }

    let mark = apache.log_mark();
    let r = apache.get("/p.fcgi?mode=stderr_partial");
    assert_eq!(r.status, 200, "{}", brief(&r));
    let want = format!("FastCGI: server \"{server}\" stderr: partial");
    assert!(
        apache.wait_for_log_after(mark, &want, Duration::from_secs(5)),
        "{}",
        log_tail(&apache)
    );
    thread::sleep(Duration::from_millis(300));
    let log = apache.error_log_since(mark);
    let hits: Vec<&str> = log.lines().filter(|l| l.contains("stderr: partial")).collect();
    assert_eq!(hits.len(), 1, "logged {} times:\n{log}", hits.len());
    assert!(hits[0].ends_with(&want), "stale bytes: {:?}", hits[0]);
}

// ---------------------------------------------------------------------------------------
// 16. Configuration errors (apache2 -t)
// ---------------------------------------------------------------------------------------

fn config_fails(extra: &str, needles: &[&str]) {
    let (ok, out) = Apache::config_test(&ApacheConf::new().extra(extra));
    assert!(!ok, "expected a config error for {extra:?}, got:\n{out}");
    for n in needles {
        assert!(out.contains(n), "{extra:?}: output lacks {n:?}:\n{out}");
    }
}

#[test]
fn config_errors_of_fastcgi_external_server() {
    config_fails(
        "FastCgiExternalServer /x -bogus",
        &["FastCgiExternalServer /x: invalid option: -bogus"],
    );
    config_fails(
        "FastCgiExternalServer /x -host 127.0.0.1:70000",
        &["FastCgiExternalServer /x", "-host", "bad port number \"70000\""],
    );
    config_fails(
        "FastCgiExternalServer /x -host 127.0.0.1:0",
        &["FastCgiExternalServer /x", "bad port number \"0\""],
    );
    config_fails(
        "FastCgiExternalServer /x -flush",
        &["FastCgiExternalServer /x", "-socket or -host option missing"],
    );
    config_fails(
        "FastCgiExternalServer /x -host 127.0.0.1:9000 -socket /tmp/x.sock -retry 0",
        &["FastCgiExternalServer /x", "-retry"],
    );
    config_fails(
        "FastCgiExternalServer",
        &["FastCgiExternalServer requires a path and either a -socket or -host option"],
    );
    config_fails(
        "FastCgiExternalServer /x -socket /tmp/a.sock\nFastCgiExternalServer /x -socket /tmp/b.sock",
        &["FastCgiExternalServer: redefinition of previously defined class \"/x\""],
    );
    config_fails(
        "FastCgiExternalServer /x -socket /tmp/a.sock -processes 2",
        &["FastCgiExternalServer /x: invalid option: -processes"],
    );
    config_fails(
        "ExternalAppClass /x -bogus",
        &["ExternalAppClass /x: invalid option: -bogus"],
    );
}

#[test]
fn config_accepts_aliases_and_every_external_option() {
    for extra in [
        "ExternalAppClass /x -socket /tmp/x.sock",
        "FastCgiExternalServer /x -host 127.0.0.1:9000 -appConnTimeout 3 -idle-timeout 60 \
         -pass-header Authorization -pass-header X-A -flush -nph",
        "FastCgiExternalServer /v6 -host [::1]:9000",
        "<VirtualHost *:@PORT@>\nFastCgiExternalServer /vh -socket /tmp/vh.sock\n</VirtualHost>",
        "FastCgiExternalServer /X -SOCKET /tmp/x.sock -FLUSH",
    ] {
        let (ok, out) = Apache::config_test(&ApacheConf::new().extra(extra));
        assert!(ok, "{extra:?} rejected:\n{out}");
    }
}

#[test]
fn config_every_directive_is_accepted() {
    let exe = probe_binary();
    let exe = exe.display();
    // Every directive has its runtime now: accepted.
    for extra in [
        format!("FastCgiServer {exe}"),
        format!("AppClass {exe}"),
        format!("FastCgiWrapper {exe}"),
        "FastCgiConfig -maxClassProcesses 2".to_string(),
        format!("<Directory @HTDOCS@>\n    FastCgiAuthenticator {exe}\n</Directory>"),
        format!("<Directory @HTDOCS@>\n    FastCgiAuthorizer {exe} -compat\n</Directory>"),
        format!("<Directory @HTDOCS@>\n    FastCgiAccessChecker {exe}\n</Directory>"),
        "<Location />\n    FastCgiAccessCheckerAuthoritative Off\n</Location>".to_string(),
    ] {
        let (ok, out) = Apache::config_test(&ApacheConf::new().extra(&extra));
        assert!(ok, "{extra} refused:\n{out}");
    }
    // `FastCgiWrapper On` needs httpd's suexec binary; without one it fails naming the
    // directive.
    if !Path::new("/usr/lib/apache2/suexec").exists() {
        let (ok, out) = Apache::config_test(&ApacheConf::new().extra("FastCgiWrapper On"));
        assert!(!ok, "FastCgiWrapper On accepted without a suexec binary:\n{out}");
        assert!(out.contains("FastCgiWrapper"), "{out}");
    }
}

// ---------------------------------------------------------------------------------------
// 17. Concurrency against a single-threaded application
// ---------------------------------------------------------------------------------------

#[test]
fn concurrency_50_requests_from_8_threads() {
    let dir = TestDir::new();
    let (probe, sock) = start_probe_unix(&dir, "probe");
    let apache = start_in(&dir, &ext_socket("p.fcgi", &sock, ""));
    let port = apache.port();
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let next = next.clone();
            let failures = failures.clone();
            thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= 50 {
                    break;
                }
                let (r, ok) = if i % 2 == 0 {
                    let body = pattern(1000 + 997 * i, i as u64);
                    let r = post(
                        port,
                        &format!("/p.fcgi?mode=echo&i={i}"),
                        &body,
                        "application/octet-stream",
                    );
                    let ok = r.status == 200 && r.complete && r.body == body;
                    (r, ok)
                } else {
                    let r = get(port, &format!("/p.fcgi/{i}?mode=env"));
                    let ok = r.status == 200 && r.env_var("PATH_INFO") == Some(format!("/{i}"));
                    (r, ok)
                };
                if !ok {
                    failures.lock().unwrap().push(format!("request {i}: {}", brief(&r)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        log_tail(&apache)
    );
    let r = apache.get("/p.fcgi?mode=env");
    assert_eq!(r.header("X-Probe-Served"), Some("51"), "{}", brief(&r));
    assert!(probe.is_alive());
}
