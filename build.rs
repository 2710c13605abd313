//! Build script: finds httpd/APR headers through `apxs -q` and
//! `apr-1-config --includes` (overridable with the `APXS` / `APR_CONFIG`
//! environment variables), generates raw bindings with bindgen into
//! `OUT_DIR`, compiles the C shim, and makes sure the `fastcgi_module`
//! symbol is exported from the cdylib (see ../shared build notes: a cdylib
//! hides symbols defined in C objects, so a version script re-exports it).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn query(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{cmd}`: {e} (install apache2-dev, or set APXS / APR_CONFIG)"));
    if !out.status.success() {
        panic!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() {
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".into());
    let apr_config = env::var("APR_CONFIG").unwrap_or_else(|_| "apr-1-config".into());
    println!("cargo:rerun-if-env-changed=APXS");
    println!("cargo:rerun-if-env-changed=APR_CONFIG");
    println!("cargo:rerun-if-changed=c_shim");

    let mut includes: Vec<String> = Vec::new();
    includes.push(query(&apxs, &["-q", "INCLUDEDIR"]));
    for flag in query(&apr_config, &["--includes"]).split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-I") {
            includes.push(dir.to_string());
        }
    }
    let extra_cflags = query(&apxs, &["-q", "EXTRA_CPPFLAGS"]);
    let defines: Vec<&str> = extra_cflags
        .split_whitespace()
        .filter(|f| f.starts_with("-D"))
        .collect();

    // httpd's compiled-in suexec path (`FastCgiWrapper On`), from
    // `<sbindir>/<progname> -V`.
    let sbindir = query(&apxs, &["-q", "SBINDIR"]);
    let progname = query(&apxs, &["-q", "PROGNAME"]);
    let suexec = Command::new(PathBuf::from(&sbindir).join(&progname))
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                l.trim()
                    .strip_prefix("-D SUEXEC_BIN=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "/usr/lib/apache2/suexec".into());
    println!("cargo:rustc-env=FCGI_SUEXEC_BIN={suexec}");

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));

    // Raw bindings: declarations only, no logic.
    let mut builder = bindgen::Builder::default()
        .header("c_shim/wrapper.h")
        .clang_arg("-Ic_shim")
        .allowlist_function("ap_.*|apr_.*|fcgi_shim_.*")
        .allowlist_type("request_rec|server_rec|conn_rec|cmd_parms|process_rec|apr_.*|ap_.*|unixd_config_rec|module_struct")
        .allowlist_var("ap_server_conf|ap_unixd_config|APR_.*|HTTP_.*|APLOG_.*|OK|DECLINED|DONE|M_.*|REQUEST_.*|AP_.*|OR_.*|ACCESS_CONF|RSRC_CONF|OPT_.*|NOT_IN_.*|GLOBAL_ONLY|ap_server_root|ap_scoreboard_image|MODULE_MAGIC_.*")
        .derive_default(false)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for inc in &includes {
        builder = builder.clang_arg(format!("-I{inc}"));
    }
    for d in &defines {
        builder = builder.clang_arg(d.to_string());
    }
    builder
        .generate()
        .expect("bindgen failed on c_shim/wrapper.h")
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("writing bindings.rs");

    // `cargo fuzz` builds the crate into stand-alone executables that only
    // exercise the pure modules: without httpd to resolve its symbols the
    // shim cannot be linked there, so it is left out (no effect on the
    // module or the tests).
    println!("cargo:rerun-if-env-changed=CARGO_CFG_FUZZING");
    if env::var_os("CARGO_CFG_FUZZING").is_some() {
        return;
    }

    // The shim: module struct, directive table, hook registration, macro
    // wrappers. Linked whole-archive so nothing drops the unreferenced
    // module structure.
    let mut cc = cc::Build::new();
    cc.file("c_shim/mod_fastcgi.c")
        .include("c_shim")
        .warnings(true)
        .extra_warnings(true);
    cc.flag_if_supported("-Wno-missing-field-initializers");
    cc.flag_if_supported("-Wno-unused-parameter");
    for inc in &includes {
        cc.include(inc);
    }
    for d in &defines {
        let d = d.trim_start_matches("-D");
        match d.split_once('=') {
            Some((k, v)) => cc.define(k, v),
            None => cc.define(d, None),
        };
    }
    cc.link_lib_modifier("+whole-archive");
    cc.compile("fastcgi_shim");

    // Export `fastcgi_module` from the cdylib.
    let script = out_dir.join("export.map");
    std::fs::write(&script, "{ global: fastcgi_module; };\n").expect("writing export.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
}
