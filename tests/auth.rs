//! The authorizer roles end to end (reference section 6, issue #5): `FastCgiAuthenticator`,
//! `FastCgiAuthorizer`, `FastCgiAccessChecker` and their `...Authoritative` switches, with a
//! real apache2 under the MPM chosen by `FCGI_TEST_MPM`, the raw-protocol authorizer
//! `tests/apps/authz.py` and the libfcgi probe as the content application (`mode=env`).
//!
//!   cargo build --release --lib && cp target/release/libmod_fastcgi.so /tmp/auth-mod.so
//!   FCGI_TEST_MPM=event MOD_FASTCGI_SO=/tmp/auth-mod.so cargo test --release --test auth
//!
//! Every test starts its own Apache and applications, so the tests run in parallel.
//! "fixed" marks a legacy bug (reference section 8) whose fix is checked.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Where mod_auth_basic is loaded relative to mod_fastcgi (legacy AU-02: loaded first, it
/// used to take over `AuthType Basic`).
#[derive(Clone, Copy, Debug)]
enum BasicOrder {
    NotLoaded,
    Before,
    After,
}

struct Setup {
    dir: TestDir,
    _authz: AppProcess,
    _probe: AppProcess,
    authz_sock: PathBuf,
    probe_sock: PathBuf,
}

/// Starts authz.py and the probe on Unix sockets in a fresh test directory.
fn setup() -> Setup {
    let dir = TestDir::new();
    let authz_sock = dir.sock_dir().join("authz.sock");
    let authz = AppProcess::start(
        &dir,
        "authz",
        AppSpec::new("/usr/bin/python3")
            .arg(app_file("authz.py"))
            .arg(&authz_sock),
    );
    authz.wait_for_socket(&authz_sock);
    let (probe, probe_sock) = start_probe_unix(&dir, "probe");
    Setup {
        dir,
        _authz: authz,
        _probe: probe,
        authz_sock,
        probe_sock,
    }
}

impl Setup {
    /// The content application at /app and the authorizer as the external server
    /// `@ROOT@/authz`.
    fn servers(&self) -> String {
        format!(
            "FastCgiExternalServer @HTDOCS@/app -socket {}\nFastCgiExternalServer @ROOT@/authz -socket {}\n",
            self.probe_sock.display(),
            self.authz_sock.display()
        )
    }

    fn conf(&self, order: BasicOrder, extra: &str) -> ApacheConf {
        let mut c = ApacheConf::new()
            .root(self.dir.path())
            .with_module("authn_core")
            .with_module("authz_user");
        c = match order {
            BasicOrder::NotLoaded => c,
            BasicOrder::Before => c.with_module("auth_basic"),
            // `extra` is written after our LoadModule line.
            BasicOrder::After => c.extra(&format!("LoadModule auth_basic_module {MODULES_DIR}/mod_auth_basic.so")),
        };
        c.extra(&self.servers()).extra(extra)
    }

    fn start(&self, order: BasicOrder, extra: &str) -> Apache {
        Apache::start(&self.conf(order, extra))
    }
}

const AUTHN_LOCATION: &str = "<Location /app>\n    AuthType Basic\n    AuthName \"Test Realm\"\n    \
                              FastCgiAuthenticator @ROOT@/authz\n    Require valid-user\n</Location>";

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pw}").as_bytes()))
}

fn get_as(apache: &Apache, path: &str, user: &str, pw: &str) -> Response {
    apache.get_with(path, &[("Authorization", &basic(user, pw))])
}

fn log_tail(apache: &Apache) -> String {
    let log = apache.error_log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

fn brief(r: &Response) -> String {
    let body = String::from_utf8_lossy(&r.body[..r.body.len().min(600)]).into_owned();
    format!(
        "status {} complete={}\n{}\n--- body ---\n{}",
        r.status, r.complete, r.raw_head, body
    )
}

/// The authorizer's 30 000-byte failure body must never reach the client (legacy bug 6).
fn assert_no_authorizer_body(r: &Response) {
    assert!(
        !r.text().contains("ZZZZZZZZZZ"),
        "the authorizer's body reached the client:\n{}",
        brief(r)
    );
}

/// The content application's environment must not carry what the checks used internally
/// (legacy bug 7 / AU-24 fixed).
fn assert_no_leak(r: &Response) {
    for name in ["REMOTE_PASSWD", "FCGI_APACHE_ROLE"] {
        assert_eq!(
            r.env_var(name),
            None,
            "{name} reached the content application:\n{}",
            r.text()
        );
    }
}

fn assert_log(apache: &Apache, needle: &str) {
    assert!(
        apache.wait_for_log(needle, Duration::from_secs(5)),
        "error log lacks {needle:?}:\n{}",
        log_tail(apache)
    );
}

fn assert_challenge(r: &Response) {
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"Test Realm\""),
        "no Basic challenge:\n{}",
        brief(r)
    );
}

// ---------------------------------------------------------------------------------------
// Authenticator
// ---------------------------------------------------------------------------------------

/// Good, bad and missing credentials, with mod_auth_basic absent, loaded before and loaded
/// after mod_fastcgi (legacy AU-02/bug 9 fixed: the check_authn hook runs first either way).
fn authenticator_suite(order: BasicOrder) {
    let s = setup();
    let apache = s.start(order, AUTHN_LOCATION);

    let r = get_as(&apache, "/app?mode=env", "alice", "wonderland");
    assert_eq!(
        r.status,
        200,
        "{order:?}: good credentials refused:\n{}\n{}",
        brief(&r),
        log_tail(&apache)
    );
    assert_eq!(r.env_var("REMOTE_USER").as_deref(), Some("alice"));
    assert_eq!(r.env_var("AUTH_TYPE").as_deref(), Some("Basic"));
    // AU-22: headers become variables; `Variable-` stripped; others kept (X-Plain → X_Plain).
    assert_eq!(r.env_var("AUTH_VAR").as_deref(), Some("v1"), "{}", r.text());
    assert_eq!(r.env_var("X_Plain").as_deref(), Some("p1"), "{}", r.text());
    // AU-12: what the authenticator received.
    let info = r.env_var("AUTHENTICATOR_INFO").unwrap_or_default();
    for part in ["role=AUTHENTICATOR", "pw=wonderland", "sn=/app", "pt=-", "body=0"] {
        assert!(info.contains(part), "{part} missing in {info:?}");
    }
    assert_no_leak(&r);

    let r = get_as(&apache, "/app?mode=env", "alice", "wrong");
    assert_eq!(r.status, 401, "{order:?}: bad password accepted:\n{}", brief(&r));
    assert_challenge(&r);
    assert_eq!(
        r.header("X-Fail-Hdr"),
        Some("f1"),
        "AU-23: failure headers:\n{}",
        brief(&r)
    );
    assert_no_authorizer_body(&r);
    assert!(!r.text().contains("REMOTE_USER="), "content served on failure");
    assert_log(&apache, "FastCGI: authentication failed for user \"alice\": /app");

    let r = get_as(&apache, "/app?mode=env", "mallory", "x");
    assert_eq!(r.status, 401, "{order:?}: unknown user accepted:\n{}", brief(&r));

    let r = apache.get("/app?mode=env");
    assert_eq!(r.status, 401, "{order:?}: no credentials:\n{}", brief(&r));
    assert_challenge(&r);

    let r = apache.get_with("/app?mode=env", &[("Authorization", "Bearer xyz")]);
    assert_eq!(r.status, 401, "{order:?}: wrong scheme:\n{}", brief(&r));
}

#[test]
fn authenticator_without_mod_auth_basic() {
    authenticator_suite(BasicOrder::NotLoaded);
}

#[test]
fn authenticator_with_mod_auth_basic_loaded_first() {
    authenticator_suite(BasicOrder::Before);
}

#[test]
fn authenticator_with_mod_auth_basic_loaded_last() {
    authenticator_suite(BasicOrder::After);
}

/// AuthType other than Basic: the authenticator declines (AU-13); with nothing else to
/// authenticate, httpd fails the request.
#[test]
fn authenticator_declines_other_auth_types() {
    let s = setup();
    let apache = Apache::start(
        &s.conf(BasicOrder::Before, "")
            .with_module("auth_digest")
            .with_module("authn_file")
            .extra(
                "<Location /app>\n    AuthType Digest\n    AuthName \"Test Realm\"\n    \
                 AuthDigestProvider file\n    AuthUserFile @ROOT@/nonexistent\n    \
                 FastCgiAuthenticator @ROOT@/authz\n    Require valid-user\n</Location>",
            ),
    );
    let r = get_as(&apache, "/app?mode=env", "alice", "wonderland");
    assert_eq!(r.status, 401, "{}", brief(&r));
    assert!(
        r.header("WWW-Authenticate").unwrap_or("").starts_with("Digest"),
        "mod_auth_digest should have answered:\n{}",
        brief(&r)
    );
    assert!(!apache.error_log().contains("authentication failed for user"));
}

/// `FastCgiAuthenticatorAuthoritative Off`: a denial falls through to mod_authn_file; the
/// denial's variables and headers do not survive (fixed: REMOTE_PASSWD never leaks).
#[test]
fn authenticator_not_authoritative_falls_through_to_auth_user_file() {
    let s = setup();
    let htpasswd = s.dir.join("htpasswd");
    let out = std::process::Command::new("htpasswd")
        .args(["-b", "-c"])
        .arg(&htpasswd)
        .args(["carol", "secret"])
        .output()
        .expect("run htpasswd (apache2-utils)");
    assert!(
        out.status.success(),
        "htpasswd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::set_permissions(&htpasswd, fs::Permissions::from_mode(0o644)).unwrap();
    let apache = Apache::start(&s.conf(BasicOrder::Before, "").with_module("authn_file").extra(
        "<Location /app>\n    AuthType Basic\n    AuthName \"Test Realm\"\n    AuthBasicProvider file\n    \
             AuthUserFile @ROOT@/htpasswd\n    FastCgiAuthenticator @ROOT@/authz\n    \
             FastCgiAuthenticatorAuthoritative Off\n    Require valid-user\n</Location>",
    ));
    // Known to the FastCGI authenticator.
    let r = get_as(&apache, "/app?mode=env", "alice", "wonderland");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("AUTH_VAR").as_deref(), Some("v1"));
    assert_no_leak(&r);
    // Refused by it, known to the AuthUserFile.
    let r = get_as(&apache, "/app?mode=env", "carol", "secret");
    assert_eq!(
        r.status,
        200,
        "fall-through failed:\n{}\n{}",
        brief(&r),
        log_tail(&apache)
    );
    assert_eq!(r.env_var("REMOTE_USER").as_deref(), Some("carol"));
    assert_eq!(r.env_var("AUTH_VAR"), None, "a denial's variables were exported");
    assert_eq!(
        r.header("X-Fail-Hdr"),
        None,
        "a denial's headers reached a granted response"
    );
    assert_no_leak(&r);
    // Refused by both.
    let r = get_as(&apache, "/app?mode=env", "carol", "wrong");
    assert_eq!(r.status, 401, "{}", brief(&r));
    assert_challenge(&r);
    assert_no_authorizer_body(&r);
}

/// AU-26 fixed: a nested section that sets only the Authoritative flag keeps the parent's
/// authenticator (legacy fell through to mod_auth_basic and answered 500).
#[test]
fn nested_location_inherits_the_authenticator() {
    let s = setup();
    let apache = s.start(
        BasicOrder::Before,
        &format!("{AUTHN_LOCATION}\n<Location /app/sub>\n    FastCgiAuthenticatorAuthoritative On\n</Location>"),
    );
    let r = get_as(&apache, "/app/sub?mode=env", "alice", "wonderland");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("AUTH_VAR").as_deref(), Some("v1"));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/sub"));
    let info = r.env_var("AUTHENTICATOR_INFO").unwrap_or_default();
    assert!(info.contains("pi=/sub"), "{info}");
    let r = get_as(&apache, "/app/sub?mode=env", "alice", "nope");
    assert_eq!(r.status, 401, "{}", brief(&r));
    assert_challenge(&r);
    assert!(!apache.error_log().contains("AuthUserFile not specified"));
}

/// The authenticator's application is down: fail closed (500, nothing served, one line);
/// not authoritative: other modules decide, and nothing of the attempt leaks.
#[test]
fn authenticator_down_fails_closed() {
    let s = setup();
    let missing = s.dir.join("sock/missing.sock");
    let extra = format!(
        "FastCgiExternalServer @ROOT@/down -socket {}\n\
         <Location /app>\n    AuthType Basic\n    AuthName \"Test Realm\"\n    \
         FastCgiAuthenticator @ROOT@/down\n    Require valid-user\n</Location>",
        missing.display()
    );
    let apache = s.start(BasicOrder::Before, &extra);
    let r = get_as(&apache, "/app?mode=env", "alice", "wonderland");
    assert_eq!(r.status, 500, "{}", brief(&r));
    assert!(!r.text().contains("REMOTE_USER="), "content served:\n{}", brief(&r));
    assert_log(&apache, "failed to connect to server");

    // Not authoritative, with an AuthUserFile to fall back to.
    // {SHA} of "secret": base64(sha1("secret")).
    s.dir
        .write("htpasswd", "carol:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", 0o644);
    let extra = format!(
        "FastCgiExternalServer @ROOT@/down -socket {}\n\
         <Location /app>\n    AuthType Basic\n    AuthName \"Test Realm\"\n    AuthBasicProvider file\n    \
         AuthUserFile @ROOT@/htpasswd\n    FastCgiAuthenticator @ROOT@/down\n    \
         FastCgiAuthenticatorAuthoritative Off\n    Require valid-user\n</Location>",
        missing.display()
    );
    drop(apache);
    let apache = Apache::start(&s.conf(BasicOrder::Before, &extra).with_module("authn_file"));
    let r = get_as(&apache, "/app?mode=env", "carol", "secret");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_no_leak(&r);
    let r = get_as(&apache, "/app?mode=env", "alice", "wonderland");
    assert_eq!(r.status, 401, "{}", brief(&r));
}

// ---------------------------------------------------------------------------------------
// Authorizer
// ---------------------------------------------------------------------------------------

#[test]
fn authorizer_allows_and_denies_by_user() {
    let s = setup();
    let apache = s.start(
        BasicOrder::After,
        "<Location /app>\n    AuthType Basic\n    AuthName \"Test Realm\"\n    \
         FastCgiAuthenticator @ROOT@/authz\n    FastCgiAuthorizer @ROOT@/authz\n    \
         Require valid-user\n</Location>",
    );
    let r = get_as(&apache, "/app?mode=env", "alice", "wonderland");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    let info = r.env_var("AUTHORIZER_INFO").unwrap_or_default();
    // AU-12: the authorizer sees the user and the authenticator's variables, no password.
    for part in ["role=AUTHORIZER", "pw=-", "prev=v1"] {
        assert!(info.contains(part), "{part} missing in {info:?}");
    }
    assert_no_leak(&r);

    // bob authenticates but is not authorized.
    let r = get_as(&apache, "/app?mode=env", "bob", "builder");
    assert_eq!(r.status, 401, "{}", brief(&r));
    assert_challenge(&r);
    assert_eq!(r.header("X-Fail-Hdr"), Some("f1"));
    assert_no_authorizer_body(&r);
    assert_log(&apache, "FastCGI: authorization failed for user \"bob\": /app");
}

// ---------------------------------------------------------------------------------------
// Access checker
// ---------------------------------------------------------------------------------------

const ACCESS_LOCATION: &str = "<Location /app>\n    FastCgiAccessChecker @ROOT@/authz\n</Location>";

#[test]
fn access_checker_by_request_header() {
    let s = setup();
    let apache = s.start(BasicOrder::NotLoaded, ACCESS_LOCATION);
    let r = apache.get_with("/app?mode=env", &[("X-Allow", "yes")]);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("AUTH_VAR").as_deref(), Some("v1"));
    assert_eq!(r.env_var("X_Plain").as_deref(), Some("p1"));
    assert_no_leak(&r);

    let r = apache.get("/app?mode=env");
    assert_eq!(r.status, 403, "{}", brief(&r));
    assert_eq!(r.header("X-Fail-Hdr"), Some("f1"));
    assert_eq!(r.header("WWW-Authenticate"), None);
    assert_no_authorizer_body(&r);
    assert!(!r.text().contains("GATEWAY_INTERFACE="), "content served on denial");
    assert_log(&apache, "FastCGI: access denied: /app");

    // A HEAD and a POST are checked the same way; no body is ever sent (AU-10).
    let r = apache.post("/app?mode=env", b"a=1&b=2", "application/x-www-form-urlencoded");
    assert_eq!(r.status, 403, "{}", brief(&r));
    assert_no_authorizer_body(&r);
}

/// Statuses other than 200: an error status is used as is; anything else is the role's
/// default; no Status header at all means 200; a malformed header block fails closed.
#[test]
fn access_checker_statuses() {
    let s = setup();
    let apache = s.start(BasicOrder::NotLoaded, ACCESS_LOCATION);
    let allow = [("X-Allow", "yes")];

    let r = apache.get_with("/app?mode=env&az=weird", &allow);
    assert_eq!(r.status, 403, "302 from an authorizer is a denial:\n{}", brief(&r));
    assert_no_authorizer_body(&r);

    let r = apache.get_with("/app?mode=env&az=busy", &allow);
    assert_eq!(r.status, 429, "{}", brief(&r));
    assert_eq!(r.header("X-Fail-Hdr"), Some("f1"));
    assert_no_authorizer_body(&r);

    let r = apache.get_with("/app?mode=env&az=nostatus", &[]);
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(r.env_var("NOSTATUS").as_deref(), Some("1"));

    let r = apache.get_with("/app?mode=env&az=bad", &allow);
    assert_eq!(r.status, 500, "{}", brief(&r));
    assert!(!r.text().contains("GATEWAY_INTERFACE="), "content served");
    assert_log(&apache, "error parsing headers");
}

/// `-compat` (AU-12/AU-22): no SCRIPT_NAME/PATH_INFO/CONTENT_LENGTH sent, only `Variable-*`
/// headers exported. Without it: all of them (PATH_TRANSLATED never).
#[test]
fn access_checker_compat_and_environment() {
    let s = setup();
    let apache = s.start(
        BasicOrder::NotLoaded,
        "<Location /app>\n    FastCgiAccessChecker @ROOT@/authz\n</Location>\n\
         FastCgiExternalServer @HTDOCS@/capp -socket @ROOT@/sock/probe.sock\n\
         <Location /capp>\n    FastCgiAccessChecker @ROOT@/authz -compat\n</Location>",
    );
    let post = |path: &str| {
        apache.request(&build_request(
            "POST",
            path,
            apache.port(),
            &[("X-Allow", "yes"), ("Content-Type", "text/plain")],
            Some(b"hello"),
        ))
    };

    let r = post("/app/x/y?mode=env");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    let info = r.env_var("ACCESS_CHECKER_INFO").unwrap_or_default();
    for part in [
        "role=ACCESS_CHECKER",
        "sn=/app",
        "pi=/x/y",
        "pt=-",
        "cl=5",
        "pw=-",
        "body=0",
    ] {
        assert!(info.contains(part), "{part} missing in {info:?}");
    }
    assert_eq!(r.env_var("X_Plain").as_deref(), Some("p1"));
    // The content application still gets the body.
    assert_eq!(r.env_var("CONTENT_LENGTH").as_deref(), Some("5"));

    let r = post("/capp/x/y?mode=env");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    let info = r.env_var("ACCESS_CHECKER_INFO").unwrap_or_default();
    for part in ["role=ACCESS_CHECKER", "sn=-", "pi=-", "pt=-", "cl=-", "body=0"] {
        assert!(info.contains(part), "{part} missing in {info:?}");
    }
    assert_eq!(r.env_var("AUTH_VAR").as_deref(), Some("v1"));
    assert_eq!(r.env_var("X_Plain"), None, "-compat exports only Variable-* headers");
    assert_eq!(r.env_var("CONTENT_LENGTH").as_deref(), Some("5"));
    assert_no_leak(&r);
}

/// In .htaccess (AllowOverride AuthConfig): a defined server works; anything else is
/// refused (an .htaccess author may not start programs), failing the request with 500.
#[test]
fn access_checker_in_htaccess() {
    let s = setup();
    let root = s.dir.path().display().to_string();
    s.dir.write("htdocs/sec/index.html", "secret page\n", 0o644);
    s.dir.write(
        "htdocs/sec/.htaccess",
        format!("FastCgiAccessChecker {root}/authz\n"),
        0o644,
    );
    s.dir.write("htdocs/bad/index.html", "bad page\n", 0o644);
    s.dir.write(
        "htdocs/bad/.htaccess",
        format!("FastCgiAccessChecker {root}/nothere\n"),
        0o644,
    );
    let apache = s.start(BasicOrder::NotLoaded, "");
    let r = apache.get_with("/sec/index.html", &[("X-Allow", "yes")]);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.text(), "secret page\n");
    let r = apache.get("/sec/index.html");
    assert_eq!(r.status, 403, "{}", brief(&r));
    assert_no_authorizer_body(&r);
    let r = apache.get_with("/bad/index.html", &[("X-Allow", "yes")]);
    assert_eq!(r.status, 500, "{}", brief(&r));
    assert_log(&apache, "in .htaccess files the application must be defined");
}

/// A dynamic authorizer (AU-11): started on demand by the process manager; a missing file
/// is 404 and a non-executable one 403 at request time.
#[test]
fn dynamic_access_checker() {
    let s = setup();
    let dyn_dir = s.dir.mkdir("dynauth");
    let script = dyn_dir.join("authz.py");
    fs::copy(app_file("authz.py"), &script).expect("copy authz.py");
    // (its record helpers, imported from the script's directory)
    fs::copy(app_file("fcgi_raw.py"), dyn_dir.join("fcgi_raw.py")).expect("copy fcgi_raw.py");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let apache = s.start(
        BasicOrder::NotLoaded,
        "<Location /app>\n    FastCgiAccessChecker @ROOT@/dynauth/authz.py\n</Location>\n\
         FastCgiExternalServer @HTDOCS@/gone -socket @ROOT@/sock/probe.sock\n\
         <Location /gone>\n    FastCgiAccessChecker @ROOT@/dynauth/nothere.py\n</Location>",
    );
    let r = apache.get_with("/app?mode=env", &[("X-Allow", "yes")]);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("AUTH_VAR").as_deref(), Some("v1"));
    let r = apache.get("/app?mode=env");
    assert_eq!(r.status, 403, "{}", brief(&r));
    assert_no_authorizer_body(&r);

    let r = apache.get_with("/gone?mode=env", &[("X-Allow", "yes")]);
    assert_eq!(r.status, 404, "{}", brief(&r));

    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let r = apache.get_with("/app?mode=env", &[("X-Allow", "yes")]);
    assert_eq!(r.status, 403, "{}", brief(&r));
    assert_log(&apache, "invalid (dynamic) server");
}

/// Configuration errors name the directive (CFG-45); the directives are refused at server
/// level.
#[test]
fn config_errors() {
    let exe = probe_binary();
    let exe = exe.display();
    for (extra, needle) in [
        (
            format!("<Directory @HTDOCS@>\n    FastCgiAuthenticator {exe} -bogus\n</Directory>"),
            "FastCgiAuthenticator: unknown option: \"-bogus\"".to_string(),
        ),
        (
            format!("FastCgiAuthorizer {exe}"),
            "FastCgiAuthorizer not allowed here".to_string(),
        ),
        (
            "<Location />\n    FastCgiAccessCheckerAuthoritative Maybe\n</Location>".to_string(),
            "FastCgiAccessCheckerAuthoritative must be On or Off".to_string(),
        ),
    ] {
        let (ok, out) = Apache::config_test(&ApacheConf::new().extra(&extra));
        assert!(!ok, "accepted: {extra}\n{out}");
        assert!(out.contains(&needle), "{extra}: lacks {needle:?}:\n{out}");
    }
    for extra in [
        format!("<Directory @HTDOCS@>\n    FastCgiAuthenticator {exe}\n    FastCgiAuthenticatorAuthoritative Off\n</Directory>"),
        format!("<Location /x>\n    FastCgiAuthorizer {exe} -compat\n    FastCgiAccessChecker {exe} -COMPAT\n</Location>"),
    ] {
        let (ok, out) = Apache::config_test(&ApacheConf::new().extra(&extra));
        assert!(ok, "refused: {extra}\n{out}");
    }
}

// ---------------------------------------------------------------------------------------
// .htaccess may add a check, never weaken one configured above it (issue 10, finding 3)
// ---------------------------------------------------------------------------------------

/// `AllowOverride AuthConfig FileInfo` below the administrator's access checker
/// (`guarded`), below a `<Location>` that names one (`tenant/later`) and where nothing is
/// configured (`tenant`); an authenticator the same way (`members`).
const HTACCESS_SECTIONS: &str = "<Directory @HTDOCS@/guarded>\n    AllowOverride AuthConfig FileInfo\n    \
     FastCgiAccessChecker @ROOT@/authz\n</Directory>\n\
     <Directory @HTDOCS@/tenant>\n    AllowOverride AuthConfig FileInfo\n</Directory>\n\
     <Location /tenant/later>\n    FastCgiAccessChecker @ROOT@/authz\n</Location>\n\
     <Directory @HTDOCS@/members>\n    AllowOverride AuthConfig FileInfo\n    AuthType Basic\n    \
     AuthName \"Test Realm\"\n    FastCgiAuthenticator @ROOT@/authz\n    Require valid-user\n</Directory>";

/// Each way an .htaccess author could switch off or replace the administrator's check fails
/// to grant access (the setting is ignored with one log line); an .htaccess that adds a
/// check where none was configured, or makes one authoritative, still works.
#[test]
fn htaccess_cannot_weaken_checks_configured_above_it() {
    let s = setup();
    let root = s.dir.path().display().to_string();
    // The content probe, a defined server that answers 200 to anything.
    let yes_man = format!("{root}/htdocs/app");
    let page = |dir: &str, htaccess: String| {
        s.dir.write(format!("htdocs/{dir}/page.txt"), "protected page\n", 0o644);
        s.dir.write(format!("htdocs/{dir}/.htaccess"), htaccess, 0o644);
    };
    // The bypasses.
    page("guarded/off", "FastCgiAccessCheckerAuthoritative Off\n".into());
    page("guarded/swap", format!("FastCgiAccessChecker {yes_man}\n"));
    page(
        "guarded/both",
        format!("FastCgiAccessCheckerAuthoritative Off\nFastCgiAccessChecker {yes_man}\n"),
    );
    page("tenant/later", "FastCgiAccessCheckerAuthoritative Off\n".into());
    page(
        "members/swap",
        format!("FastCgiAuthenticator {yes_man}\nFastCgiAuthenticatorAuthoritative Off\n"),
    );
    // Legitimate uses.
    page("guarded/strict", "FastCgiAccessCheckerAuthoritative On\n".into());
    page("tenant/own", format!("FastCgiAccessChecker {root}/authz\n"));
    page(
        "tenant/soft",
        format!("FastCgiAccessChecker {root}/authz\nFastCgiAccessCheckerAuthoritative Off\n"),
    );
    let apache = s.start(BasicOrder::NotLoaded, HTACCESS_SECTIONS);
    let allow = [("X-Allow", "yes")];

    for dir in [
        "guarded/off",
        "guarded/swap",
        "guarded/both",
        "tenant/later",
        "guarded/strict",
        "tenant/own",
    ] {
        let path = format!("/{dir}/page.txt");
        let r = apache.get(&path);
        assert_eq!(
            r.status,
            403,
            "{path}: access checker bypassed:\n{}\n{}",
            brief(&r),
            log_tail(&apache)
        );
        assert!(!r.text().contains("protected page"), "{path}: served");
        let r = apache.get_with(&path, &allow);
        assert_eq!(r.status, 200, "{path}:\n{}\n{}", brief(&r), log_tail(&apache));
        assert_eq!(r.text(), "protected page\n");
    }
    // The tenant's own non-authoritative checker: a denial lets the other modules decide.
    let r = apache.get("/tenant/soft/page.txt");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));

    // The administrator's authenticator stays in charge.
    let r = get_as(&apache, "/members/swap/page.txt", "alice", "wrong");
    assert_eq!(
        r.status,
        401,
        "authenticator replaced:\n{}\n{}",
        brief(&r),
        log_tail(&apache)
    );
    assert!(!r.text().contains("protected page"));
    let r = get_as(&apache, "/members/swap/page.txt", "alice", "wonderland");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));

    // One warning line per ignored setting.
    for (dir, directive) in [
        ("guarded/off", "FastCgiAccessCheckerAuthoritative Off"),
        ("guarded/swap", "FastCgiAccessChecker"),
        ("guarded/both", "FastCgiAccessCheckerAuthoritative Off"),
        ("guarded/both", "FastCgiAccessChecker"),
        ("members/swap", "FastCgiAuthenticator"),
    ] {
        assert_log(
            &apache,
            &format!("FastCGI: {directive} in {root}/htdocs/{dir}/.htaccess ignored"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Checks run again for internal redirects and subrequests (issue 10, finding 12)
// ---------------------------------------------------------------------------------------

/// An access checker and an authorizer that grant `/zone/...` but refuse any URI
/// containing `secret` (tests/apps/authz.py) are asked again when a request reaches a
/// secret by an internal redirect (per-directory mod_rewrite, a FastCGI application's local
/// `Location:`, ErrorDocument) or a subrequest (DirectoryIndex). With per-configuration
/// checks httpd reused the first decision, since the per-directory configuration is the same.
#[test]
fn checks_run_again_for_internal_redirects_and_subrequests() {
    let s = setup();
    for zone in ["zone", "uzone"] {
        s.dir
            .write(format!("htdocs/{zone}/secret.html"), "SECRET CONTENT\n", 0o644);
        s.dir.write(format!("htdocs/{zone}/plain.html"), "plain page\n", 0o644);
        s.dir
            .write(format!("htdocs/{zone}/docs/secret.html"), "SECRET INDEX\n", 0o644);
    }
    let per_zone = |zone: &str| {
        format!(
            "    RewriteEngine On\n    RewriteRule ^open\\.html$ /{zone}/secret.html\n    \
             DirectoryIndex secret.html\n    ErrorDocument 404 /{zone}/secret.html\n"
        )
    };
    let extra = format!(
        "FastCgiExternalServer @HTDOCS@/zone/app -socket {}\n\
         <Directory @HTDOCS@/zone>\n    FastCgiAccessChecker @ROOT@/authz\n{}</Directory>\n\
         <Directory @HTDOCS@/uzone>\n    AuthType Basic\n    AuthName \"Test Realm\"\n    \
         FastCgiAuthenticator @ROOT@/authz\n    FastCgiAuthorizer @ROOT@/authz\n    Require valid-user\n{}</Directory>",
        s.probe_sock.display(),
        per_zone("zone"),
        per_zone("uzone"),
    );
    let apache = Apache::start(&s.conf(BasicOrder::NotLoaded, &extra).with_module("rewrite"));
    let allow = [("X-Allow", "yes")];
    let no_secret = |what: &str, r: &Response| {
        assert!(
            !r.text().contains("SECRET"),
            "{what}: the refused URI was served:\n{}\n{}",
            brief(r),
            log_tail(&apache)
        );
    };

    // The checker's own decisions.
    let r = apache.get_with("/zone/plain.html", &allow);
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    let r = apache.get_with("/zone/secret.html", &allow);
    assert_eq!(r.status, 403, "{}", brief(&r));

    // mod_rewrite in <Directory>: an internal redirect.
    let r = apache.get_with("/zone/open.html", &allow);
    no_secret("RewriteRule", &r);
    assert_eq!(r.status, 403, "{}", brief(&r));
    assert_log(&apache, "FastCGI: access denied: /zone/secret.html");

    // A FastCGI application's local redirect.
    let r = apache.get_with("/zone/app?mode=redirect_internal&to=/zone/secret.html", &allow);
    no_secret("Location: from the application", &r);
    assert_eq!(r.status, 403, "{}", brief(&r));
    let r = apache.get_with("/zone/app?mode=redirect_internal&to=/zone/plain.html", &allow);
    assert_eq!(r.text(), "plain page\n", "{}", brief(&r));

    // ErrorDocument: the 404 stays a 404, without the refused page as its body.
    let r = apache.get_with("/zone/nothing.html", &allow);
    no_secret("ErrorDocument", &r);
    assert_eq!(r.status, 404, "{}", brief(&r));

    // DirectoryIndex: the index file is looked up in a subrequest.
    let r = apache.get_with("/zone/docs/", &allow);
    no_secret("DirectoryIndex", &r);
    assert_eq!(r.status, 403, "{}", brief(&r));

    // The same for the authorizer role (alice is authorized, but not for secrets).
    let r = get_as(&apache, "/uzone/plain.html", "alice", "wonderland");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    let r = get_as(&apache, "/uzone/open.html", "alice", "wonderland");
    no_secret("RewriteRule (authorizer)", &r);
    assert_eq!(r.status, 401, "{}", brief(&r));
    let r = get_as(&apache, "/uzone/docs/", "alice", "wonderland");
    no_secret("DirectoryIndex (authorizer)", &r);
    assert_log(
        &apache,
        "FastCGI: authorization failed for user \"alice\": /uzone/docs/secret.html",
    );
}
