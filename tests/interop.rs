//! The module next to what people combine it with (issue 13): mod_ssl (HTTPS, the `SSL_*`
//! variables with `SSLOptions +StdEnvVars` exactly as mod_cgi gives them), mod_http2 over
//! TLS (`SERVER_PROTOCOL=HTTP/2.0`, a 1 MiB upload byte-exact, `-flush` output reaching the
//! h2 client while the application still writes), mod_deflate and mod_rewrite (`[E=…]`
//! variables, rewrites into a FastCGI path, also from `.htaccess`). HTTPS and h2 requests
//! are made with the curl command; the certificate is a throw-away one made with openssl.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A self-signed key and certificate in `dir` (key.pem, cert.pem).
fn certificate(dir: &TestDir) -> (PathBuf, PathBuf) {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl req");
    (key, cert)
}

/// Apache with a TLS virtual host on a second loopback port: the probe as a
/// `FastCgiServer` at `/app.fcgi` (`-flush`), a CGI script printing its environment at
/// `/cgi/env`, h2 enabled. Returns the TLS port too.
fn tls_apache(dir: &TestDir) -> (Apache, u16) {
    let (key, cert) = certificate(dir);
    probe_at(dir, "app.fcgi");
    let cgi_dir = dir.mkdir("cgi");
    let script = cgi_dir.join("env");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let tls = free_port();
    let cgi_module = if mpm() == Mpm::Prefork { "cgi" } else { "cgid" };
    let conf = ApacheConf::new()
        .root(dir.path())
        .with_module("socache_shmcb")
        .with_module("ssl")
        .with_module("http2")
        .with_module(cgi_module)
        .extra(&format!(
            "FastCgiIpcDir @ROOT@/ipc\n\
             FastCgiServer @HTDOCS@/app.fcgi -flush\n\
             ScriptAlias /cgi/ @ROOT@/cgi/\n\
             <IfModule cgid_module>\n    ScriptSock @ROOT@/cgid.sock\n</IfModule>\n\
             SSLSessionCache shmcb:@ROOT@/ssl_scache(512000)\n\
             Listen 127.0.0.1:{tls}\n\
             <VirtualHost 127.0.0.1:{tls}>\n\
                 SSLEngine on\n\
                 SSLCertificateFile {}\n\
                 SSLCertificateKeyFile {}\n\
                 Protocols h2 http/1.1\n\
                 <Location /app.fcgi>\n        SSLOptions +StdEnvVars\n    </Location>\n\
                 <Location /cgi/>\n        SSLOptions +StdEnvVars\n    </Location>\n\
             </VirtualHost>\n",
            cert.display(),
            key.display()
        ));
    (Apache::start(&conf), tls)
}

/// curl's output (body), or panics with its stderr.
fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn env_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn https_variables_are_those_mod_cgi_gives() {
    let dir = TestDir::new();
    let (apache, tls) = tls_apache(&dir);
    let base = format!("https://127.0.0.1:{tls}");
    let fcgi = env_map(&String::from_utf8_lossy(&curl(&[
        "--http1.1",
        &format!("{base}/app.fcgi?mode=env"),
    ])));
    let cgi = env_map(&String::from_utf8_lossy(&curl(&[
        "--http1.1",
        &format!("{base}/cgi/env"),
    ])));
    assert_eq!(fcgi.get("HTTPS").map(String::as_str), Some("on"), "{fcgi:?}");
    assert_eq!(fcgi.get("REQUEST_SCHEME").map(String::as_str), Some("https"));
    assert_eq!(fcgi.get("SERVER_PORT"), Some(&tls.to_string()));
    let ssl = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            // (Per connection: each curl run is a new TLS session.)
            .filter(|(k, _)| (k.starts_with("SSL_") || *k == "HTTPS") && !k.starts_with("SSL_SESSION"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let (f, c) = (ssl(&fcgi), ssl(&cgi));
    assert!(f.contains_key("SSL_PROTOCOL") && f.contains_key("SSL_CIPHER"), "{f:?}");
    assert!(f.contains_key("SSL_SERVER_S_DN"), "{f:?}");
    assert_eq!(f, c, "the FastCGI application sees the SSL variables mod_cgi gives");
    drop(apache);
}

#[test]
fn without_std_env_vars_only_https_is_set() {
    let dir = TestDir::new();
    let (key, cert) = certificate(&dir);
    probe_at(&dir, "app.fcgi");
    let tls = free_port();
    let apache = Apache::start(
        &ApacheConf::new()
            .root(dir.path())
            .with_module("socache_shmcb")
            .with_module("ssl")
            .extra(&format!(
                "FastCgiIpcDir @ROOT@/ipc\nFastCgiServer @HTDOCS@/app.fcgi\nListen 127.0.0.1:{tls}\n\
                 <VirtualHost 127.0.0.1:{tls}>\n    SSLEngine on\n    SSLCertificateFile {}\n    \
                 SSLCertificateKeyFile {}\n</VirtualHost>\n",
                cert.display(),
                key.display()
            )),
    );
    let env = env_map(&String::from_utf8_lossy(&curl(&[&format!(
        "https://127.0.0.1:{tls}/app.fcgi?mode=env"
    )])));
    assert_eq!(env.get("HTTPS").map(String::as_str), Some("on"));
    assert!(!env.keys().any(|k| k.starts_with("SSL_")), "{env:?}");
    drop(apache);
}

/// mod_http2 refuses prefork (it stays inactive there and clients fall back to HTTP/1.1).
fn h2_available() -> bool {
    if mpm() == Mpm::Prefork {
        eprintln!("NOTE: mod_http2 does not support the prefork MPM (h2 stays inactive); the h2 checks are skipped under prefork");
        return false;
    }
    true
}

#[test]
fn http2_protocol_upload_and_flushed_streaming() {
    let dir = TestDir::new();
    let (_apache, tls) = tls_apache(&dir);
    if !h2_available() {
        return;
    }
    let base = format!("https://127.0.0.1:{tls}");
    let env = env_map(&String::from_utf8_lossy(&curl(&[
        "--http2",
        &format!("{base}/app.fcgi?mode=env"),
    ])));
    assert_eq!(
        env.get("SERVER_PROTOCOL").map(String::as_str),
        Some("HTTP/2.0"),
        "{env:?}"
    );
    // 1 MiB upload, byte-exact (the probe reports the checksum of what it received).
    let body = pattern(1 << 20, 4242);
    let file = dir.join("upload.bin");
    std::fs::write(&file, &body).unwrap();
    let headers = String::from_utf8_lossy(&curl(&[
        "--http2",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{base}/app.fcgi?mode=echo&size=10"),
    ]))
    .to_lowercase();
    assert!(headers.starts_with("http/2 200"), "{headers}");
    assert!(headers.contains("x-body-length: 1048576"), "{headers}");
    assert!(
        headers.contains(&format!("x-body-sum: {}", checksum_hex(&body))),
        "{headers}"
    );
    // -flush: the first chunk reaches the h2 client while the application still sleeps.
    let start = Instant::now();
    let mut child = Command::new("curl")
        .args(["-sS", "-k", "--http2", "-N", "--max-time", "30"])
        .arg(format!("{base}/app.fcgi?mode=slow&chunks=3&delay_ms=1500"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 8];
    out.read_exact(&mut first).unwrap();
    let first_at = start.elapsed();
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    let all_at = start.elapsed();
    child.wait().unwrap();
    assert_eq!(&first, b"chunk 0\n");
    assert_eq!(rest, b"chunk 1\nchunk 2\n");
    assert!(
        all_at >= Duration::from_millis(3000) && first_at + Duration::from_millis(2000) < all_at,
        "the first chunk came at {first_at:?}, the end at {all_at:?}"
    );
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "gzip -dc");
    out.stdout
}

#[test]
fn deflate_compresses_responses_and_streams() {
    let dir = TestDir::new();
    probe_at(&dir, "app.fcgi");
    let apache = Apache::start(&ApacheConf::new().root(dir.path()).with_module("deflate").extra(
        "FastCgiIpcDir @ROOT@/ipc\nFastCgiServer @HTDOCS@/app.fcgi -flush\n\
                 <Location /app.fcgi>\n    SetOutputFilter DEFLATE\n</Location>\n",
    ));
    let plain = apache.get("/app.fcgi?mode=big&size=300000");
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("Content-Encoding"),
        None,
        "no Accept-Encoding: not compressed"
    );
    let r = apache.get_with("/app.fcgi?mode=big&size=300000", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    // (The probe's bytes are pseudo-random: no smaller, but gzip-framed and exact.)
    assert!(
        gunzip(&r.body) == plain.body,
        "decompresses to what the application wrote"
    );
    // A flushed stream compresses too, whole.
    let r = apache.get_with(
        "/app.fcgi?mode=slow&chunks=3&delay_ms=100",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), b"chunk 0\nchunk 1\nchunk 2\n");
    // HEAD is not broken by the filter.
    let r = apache.head("/app.fcgi?mode=big&size=1000");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[test]
fn rewrite_into_fastcgi_paths_with_env_flags() {
    let dir = TestDir::new();
    probe_at(&dir, "app.fcgi");
    let (_ext, sock) = start_probe_unix(&dir, "ext");
    let htaccess_dir = dir.join("htdocs/ht");
    std::fs::create_dir_all(&htaccess_dir).unwrap();
    std::fs::write(
        htaccess_dir.join(".htaccess"),
        "RewriteEngine On\nRewriteRule ^nice/(.*)$ /app.fcgi?via=htaccess&x=$1 [E=FROM_HT:yes,L]\n",
    )
    .unwrap();
    www_accessible(&htaccess_dir);
    let apache = Apache::start(
        &ApacheConf::new()
            .root(dir.path())
            .with_module("rewrite")
            .extra(&format!(
                "FastCgiIpcDir @ROOT@/ipc\nFastCgiServer @HTDOCS@/app.fcgi\n\
             FastCgiExternalServer @HTDOCS@/ext -socket {}\n\
             RewriteEngine On\n\
             RewriteRule ^/pretty/(.*)$ /app.fcgi/info?x=$1 [E=FOO:bar,PT]\n\
             RewriteRule ^/api/(.*)$ /ext/$1 [E=API:1,PT]\n\
             <Directory @HTDOCS@/ht>\n    AllowOverride FileInfo\n</Directory>\n",
                sock.display()
            )),
    );
    let r = apache.get("/pretty/hello");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("FOO").as_deref(), Some("bar"));
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("x=hello"));
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/app.fcgi"));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/info"));
    assert_eq!(r.env_var("REQUEST_URI").as_deref(), Some("/pretty/hello"));
    let r = apache.get("/api/users/7?mode=env");
    assert_eq!(r.status, 200, "{}", brief(&r));
    assert_eq!(r.env_var("API").as_deref(), Some("1"));
    assert_eq!(r.env_var("SCRIPT_NAME").as_deref(), Some("/ext"));
    assert_eq!(r.env_var("PATH_INFO").as_deref(), Some("/users/7"));
    // From .htaccess: a per-directory rewrite is an internal redirect (REDIRECT_ prefix).
    let r = apache.get("/ht/nice/abc");
    assert_eq!(r.status, 200, "{}\n{}", brief(&r), log_tail(&apache));
    assert_eq!(r.env_var("QUERY_STRING").as_deref(), Some("via=htaccess&x=abc"));
    assert_eq!(r.env_var("REDIRECT_FROM_HT").as_deref(), Some("yes"), "{}", r.text());
}
