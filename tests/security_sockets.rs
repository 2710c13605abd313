//! Security review (issue 10), findings 1 and 2: a local user (`nobody`)
//! must never receive the requests of an application the module talks to
//! — not by binding a static application's socket or port first, not by
//! swapping the IPC directory, not by putting a socket where an external
//! server with `-peer-user` is expected — and the configurations that
//! invite it are refused (or warned about) by `apache2 -t`.
//!
//!   FCGI_TEST_MPM=event MOD_FASTCGI_SO=$PWD/mod_fastcgi.so \
//!       cargo test --release --test security_sockets -- --test-threads=2

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

/// Records everything anyone sends to a socket it holds, as `nobody`.
const SQUATTER: &str = r#"
import os, socket, sys
kind, where, out = sys.argv[1:4]
if kind == "unix":
    s = socket.socket(socket.AF_UNIX)
    s.bind(where)
    os.chmod(where, 0o777)
else:
    host, port = where.rsplit(":", 1)
    s = socket.socket()
    s.bind((host, int(port)))
s.listen(16)
open(out + ".ready", "w").close()
while True:
    c, _ = s.accept()
    with open(out, "ab") as f:
        f.write(b"<connection>")
    c.settimeout(2)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            with open(out, "ab") as f:
                f.write(d)
    except Exception:
        pass
    c.close()
"#;

/// A `nobody` process listening on a Unix socket path or a TCP address,
/// writing whatever it receives to `<evidence>`; killed on drop.
struct Squatter {
    child: Child,
    evidence: PathBuf,
}

impl Squatter {
    fn start(dir: &TestDir, name: &str, kind: &str, at: &str) -> Squatter {
        let ev_dir = dir.mkdir("evidence");
        fs::set_permissions(&ev_dir, fs::Permissions::from_mode(0o777)).unwrap();
        let script = dir.write(format!("{name}.py"), SQUATTER, 0o644);
        let evidence = ev_dir.join(name);
        let child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(kind)
            .arg(at)
            .arg(&evidence)
            .uid(NOBODY)
            .gid(NOGROUP)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the squatter");
        let ready = evidence.with_extension("ready");
        assert!(
            wait_until(Duration::from_secs(10), || ready.exists()),
            "the squatter did not start"
        );
        Squatter { child, evidence }
    }

    /// Everything it received (empty: nothing, not even a connection).
    fn received(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.evidence).unwrap_or_default()).into_owned()
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sticky, world-writable directory (like /tmp) under the test dir.
fn sticky_dir(dir: &TestDir) -> PathBuf {
    let d = dir.mkdir("shared");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

/// A request carrying a secret in a cookie and in the body.
fn secret_post(apache: &Apache, path: &str) -> Response {
    let body = b"password=SECRET-BODY";
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nCookie: session=SECRET-COOKIE\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut req = raw.into_bytes();
    req.extend_from_slice(body);
    apache.request(&req)
}

fn assert_nothing_leaked(sq: &Squatter) {
    let got = sq.received();
    assert!(
        !got.contains("SECRET") && !got.contains("<connection>"),
        "the squatter received: {got:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 1: static applications
// ---------------------------------------------------------------------------------------

/// `nobody` binds the static application's `-socket` in a sticky shared
/// directory before Apache starts: the process manager cannot bind it,
/// and requests get 503 with a log line naming the path and the uid —
/// the squatter sees no connection, no cookie, no body.
/// A directory anyone may write in (not sticky): the administrator's mistake
/// the attacks below exploit.
fn open_dir(dir: &TestDir) -> std::path::PathBuf {
    let open = dir.mkdir("open");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    open
}

#[test]
fn squatted_static_socket_receives_nothing() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "fcgi/app.fcgi");
    let shared = sticky_dir(&dir);
    let sock = shared.join("fcgi.sock");
    let sq = Squatter::start(&dir, "static-sock", "unix", &sock.display().to_string());
    let conf = conf_in(
        &dir,
        &format!(
            "FastCgiServer {} -processes 1 -init-start-delay 0 -socket {}",
            app.display(),
            sock.display()
        ),
    );
    let apache = Apache::start(&conf);
    // Whether the PM has already failed to bind it or not, nothing goes through.
    for _ in 0..3 {
        let r = secret_post(&apache, "/fcgi/app.fcgi");
        assert_eq!(r.status, 503, "{}", evidence(&apache));
    }
    let log = apache.error_log();
    let path = sock.display().to_string();
    assert!(
        log.lines().any(|l| l.contains(&path)
            && (l.contains("the file belongs to uid 65534") || l.contains("is held by uid 65534"))),
        "{}",
        evidence(&apache)
    );
    // One log line per refused request (plus the PM's bind failures).
    let per_request = log
        .lines()
        .filter(|l| l.contains("is not available") || l.contains("refusing to talk"))
        .count();
    assert_eq!(per_request, 3, "{log}");
    assert_nothing_leaked(&sq);
    // A sticky directory is accepted (the seed guide's `-socket
    // /tmp/fcgi.sock`), with a warning.
    let (ok, out) = Apache::config_test(&conf);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("-socket \"{}\" is in the shared directory", sock.display())),
        "{out}"
    );
    // The squatter leaves: the PM binds the socket and requests are served.
    drop(sq);
    let _ = fs::remove_file(&sock);
    assert!(
        wait_until(Duration::from_secs(30), || apache.get("/fcgi/app.fcgi").status == 200),
        "{}",
        evidence(&apache)
    );
}

/// `nobody` holds the port of a `-port` application: the PM says so, and
/// requests get 503 instead of reaching the squatter.
#[test]
fn taken_port_is_never_served_through() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "fcgi/app.fcgi");
    let port = free_port();
    let sq = Squatter::start(&dir, "static-port", "tcp", &format!("127.0.0.1:{port}"));
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiServer {} -processes 1 -init-start-delay 0 -port 127.0.0.1:{port}",
            app.display()
        ),
    );
    assert!(
        apache.wait_for_log(&format!("bind() failed [127.0.0.1:{port}]"), Duration::from_secs(10)),
        "{}",
        evidence(&apache)
    );
    let r = secret_post(&apache, "/fcgi/app.fcgi");
    assert_eq!(r.status, 503, "{}", evidence(&apache));
    assert!(
        apache.error_log().contains(&format!(
            "its address 127.0.0.1:{port} could not be bound: the port is held by another process"
        )),
        "{}",
        evidence(&apache)
    );
    assert_nothing_leaked(&sq);
}

/// Background for the expected uid: the credentials a client reads with
/// SO_PEERCRED are those of the process that called listen(), not of the
/// one that accepts — so for applications the PM starts (it listens as
/// User and hands fd 0 to the application, even through a setuid wrapper)
/// the expected uid is the PM's.
#[test]
fn peer_credentials_are_those_of_the_listener() {
    let dir = TestDir::new();
    let sock = dir.join("root-listens.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).unwrap();
    // The accepting process runs as nobody, holding root's listener on fd 0.
    let mut acceptor = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import socket,time; s=socket.socket(fileno=0); c,_=s.accept(); time.sleep(5)",
        ])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)))
        .uid(NOBODY)
        .gid(NOGROUP)
        .spawn()
        .unwrap();
    let client = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let cred = nix::sys::socket::getsockopt(&client, nix::sys::socket::sockopt::PeerCredentials).unwrap();
    assert_eq!(cred.uid(), 0, "the listener's uid, not the acceptor's (65534)");
    let _ = acceptor.kill();
    let _ = acceptor.wait();
}

// ---------------------------------------------------------------------------------------
// Finding 1: configuration checks
// ---------------------------------------------------------------------------------------

#[test]
fn config_test_refuses_socket_in_open_directory() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "fcgi/app.fcgi");
    let open = open_dir(&dir);
    let (ok, out) = Apache::config_test(&conf_in(
        &dir,
        &format!("FastCgiServer {} -socket {}/a.sock", app.display(), open.display()),
    ));
    assert!(!ok, "{out}");
    assert!(
        out.contains("FastCgiServer") && out.contains("-socket") && out.contains("not sticky (mode 0777)"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 1: external applications, -peer-user
// ---------------------------------------------------------------------------------------

#[test]
fn external_peer_user_match_and_mismatch() {
    let dir = TestDir::new();
    let (_app, sock) = start_probe_unix(&dir, "ext");
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/right -socket {0} -peer-user www-data\n\
             FastCgiExternalServer @HTDOCS@/wrong -socket {0} -peer-user nobody\n\
             FastCgiExternalServer @HTDOCS@/unchecked -socket {0}",
            sock.display()
        ),
    );
    assert_eq!(apache.get("/right").status, 200, "{}", evidence(&apache));
    assert_eq!(apache.get("/unchecked").status, 200, "{}", evidence(&apache));
    let mark = apache.log_mark();
    assert_eq!(apache.get("/wrong").status, 503, "{}", evidence(&apache));
    let log = apache.error_log_since(mark);
    // (The background FCGI_GET_VALUES probe of connection reuse may log its
    // finding at info level meanwhile.)
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("FastCGI:") && !l.contains("FCGI_MAX_CONNS") && !l.contains("FCGI_GET_VALUES"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains(&format!(
            "socket \"{}\" is held by uid 33, not by uid 65534",
            sock.display()
        )),
        "{log}"
    );
    // -peer-user with -host is a configuration error naming the option.
    let (ok, out) = Apache::config_test(&conf_in(
        &dir,
        "FastCgiExternalServer @HTDOCS@/tcp -host 127.0.0.1:9 -peer-user www-data",
    ));
    assert!(
        !ok && out.contains("FastCgiExternalServer") && out.contains("-peer-user"),
        "{out}"
    );
}

/// A squatter in a shared directory in place of an external application
/// that is down: with -peer-user it gets nothing.
#[test]
fn external_peer_user_refuses_a_squatter() {
    let dir = TestDir::new();
    let shared = sticky_dir(&dir);
    let sock = shared.join("php.sock");
    let sq = Squatter::start(&dir, "ext-sock", "unix", &sock.display().to_string());
    let conf = conf_in(
        &dir,
        &format!(
            "FastCgiExternalServer @HTDOCS@/app -socket {} -peer-user www-data",
            sock.display()
        ),
    );
    let (ok, out) = Apache::config_test(&conf);
    assert!(ok, "{out}");
    assert!(out.contains("in a directory other users can write"), "{out}");
    let apache = Apache::start(&conf);
    let r = secret_post(&apache, "/app");
    assert_eq!(r.status, 503, "{}", evidence(&apache));
    assert!(apache.error_log().contains("is held by uid 65534, not by uid 33"));
    // The connection itself cannot be avoided (the check needs it), but
    // nothing is sent on it.
    let got = sq.received();
    assert!(!got.contains("SECRET"), "{got:?}");
}

// ---------------------------------------------------------------------------------------
// Finding 2: FastCgiIpcDir
// ---------------------------------------------------------------------------------------

#[test]
fn ipc_dir_symlink_is_refused_at_config_time() {
    let dir = TestDir::new();
    let real = dir.mkdir_www("real-ipc");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.join("ipc-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (ok, out) = Apache::config_test(&conf_in(&dir, &format!("FastCgiIpcDir {}", link.display())));
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("FastCgiIpcDir {}: is a symbolic link", link.display())),
        "{out}"
    );
}

/// Runs a shell command as `nobody` (the local attacker); it must succeed.
fn as_nobody(script: &str) {
    let st = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .uid(NOBODY)
        .gid(NOGROUP)
        .status()
        .unwrap();
    assert!(st.success(), "as nobody: {script}");
}

/// The IPC directory's parent is writable by others (the administrator's
/// mistake): after start, `nobody` moves the IPC directory away and puts
/// its own in place, holding a socket with the static application's
/// (predictable) name. Requests are refused, and nothing reaches it.
#[test]
fn swapped_ipc_dir_delivers_nothing() {
    let dir = TestDir::new();
    let app = probe_at(&dir, "fcgi/app.fcgi");
    let open = open_dir(&dir);
    let ipc = open.join("ipc");
    let apache = start_in(
        &dir,
        &format!(
            // -keep-conn 0: every request connects afresh through the path
            // (a kept connection to the real application would be fine).
            "FastCgiIpcDir {}\nFastCgiServer {} -processes 1 -init-start-delay 0 -keep-conn 0",
            ipc.display(),
            app.display()
        ),
    );
    assert_eq!(apache.get("/fcgi/app.fcgi").status, 200, "{}", evidence(&apache));
    // The socket's name, as the attacker would compute it (MD5 of the path).
    let name = fs::read_dir(&ipc)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().into_string().unwrap())
        .find(|n| n != "dynamic")
        .expect("the static socket");
    // As nobody: move the directory away, make a new one.
    as_nobody(&format!("mv {0} {0}.old && mkdir -m 0755 {0}", ipc.display()));
    assert_eq!(fs::metadata(&ipc).unwrap().uid(), NOBODY);
    let sock = ipc.join(&name);
    let sq = Squatter::start(&dir, "ipc-swap", "unix", &sock.display().to_string());
    let r = secret_post(&apache, "/fcgi/app.fcgi");
    assert_eq!(r.status, 503, "{}", evidence(&apache));
    assert!(
        apache
            .error_log()
            .contains(&format!("socket \"{}\" is held by uid 65534", sock.display())),
        "{}",
        evidence(&apache)
    );
    let got = sq.received();
    assert!(!got.contains("SECRET"), "{got:?}");
}

/// The process manager re-checks the IPC directories before each bind: after
/// `nobody` swapped the IPC directory (its parent writable by others) for
/// one of theirs, open to everyone, the first request of a dynamic
/// application makes the PM refuse to bind there (one crit line), instead
/// of creating the application's socket in the attacker's directory.
#[test]
fn pm_binds_nothing_in_a_swapped_ipc_dir() {
    let dir = TestDir::new();
    let _app = probe_at(&dir, "dyn/probe.fcgi");
    let open = open_dir(&dir);
    let ipc = open.join("ipc");
    let apache = start_in(
        &dir,
        &format!(
            "FastCgiIpcDir {}\nFastCgiConfig -appConnTimeout 2\n\
             <Directory @HTDOCS@/dyn>\n    Options +ExecCGI\n    SetHandler fastcgi-script\n</Directory>",
            ipc.display()
        ),
    );
    assert!(
        wait_until(Duration::from_secs(10), || ipc.join("dynamic").is_dir()),
        "{}",
        evidence(&apache)
    );
    as_nobody(&format!(
        "mv {0} {0}.old && mkdir -m 0777 {0} {0}/dynamic && chmod 0777 {0}/dynamic",
        ipc.display()
    ));
    let r = secret_post(&apache, "/dyn/probe.fcgi");
    assert_ne!(r.status, 200, "{}", evidence(&apache));
    let dynamic = ipc.join("dynamic");
    assert!(
        apache.wait_for_log(
            &format!(
                "its directory \"{}\" is owned by uid 65534, not by uid 33",
                dynamic.display()
            ),
            Duration::from_secs(10)
        ),
        "{}",
        evidence(&apache)
    );
    let planted: Vec<_> = fs::read_dir(&dynamic)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    assert!(
        planted.is_empty(),
        "the PM created {planted:?} in the attacker's directory"
    );
}
