//! The request environment sent as FCGI_PARAMS (reference 5.4): httpd's
//! own CGI variables (`ap_add_common_vars`, then `-pass-header`, then
//! `ap_add_cgi_vars`, RQ-20/RQ-24), so SetEnv, PassEnv, CGIPassAuth and
//! httpd's header filtering behave exactly as for mod_cgi.

use crate::httpd::{Level, Request};
use crate::proto::{self, ProtoError};

/// Whether `name` is one of php-fpm's per-request ini overrides
/// (`PHP_VALUE`, `PHP_ADMIN_VALUE`; any letter case, although php-fpm
/// itself only reads the exact upper-case names). Forwarded, these let
/// whoever can set a request variable — an `.htaccess` `SetEnv`, an
/// authorizer's `Variable-*`, a `RewriteRule [E=]` — replace the pool's
/// `open_basedir`, `disable_functions` and the like, so they are dropped
/// unless the server has `-pass-php-values`.
pub fn is_php_ini_param(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"PHP_VALUE") || name.eq_ignore_ascii_case(b"PHP_ADMIN_VALUE")
}

/// `-pass-header Name` → `HTTP_NAME` (upper case, every character that is
/// not a letter or digit becomes `_`).
pub fn pass_header_var(name: &str) -> Vec<u8> {
    let mut v = b"HTTP_".to_vec();
    v.extend(name.bytes().map(|b| {
        if b.is_ascii_alphanumeric() {
            b.to_ascii_uppercase()
        } else {
            b'_'
        }
    }));
    v
}

/// Fills `r->subprocess_env` the legacy way. `content_length` overrides
/// CONTENT_LENGTH (spooled chunked bodies).
pub fn prepare(r: &mut Request, pass_headers: &[String], content_length: Option<u64>) {
    r.add_common_vars();
    let (headers, env) = (r.headers_in(), r.subprocess_env());
    for h in pass_headers {
        if let Some(v) = headers.get(h.as_bytes()) {
            env.set(&pass_header_var(h), v);
        }
    }
    r.add_cgi_vars();
    if let Some(n) = content_length {
        env.set(b"CONTENT_LENGTH", n.to_string().as_bytes());
    }
}

/// Appends BEGIN_REQUEST (with `FCGI_KEEP_CONN` when `keep`) and the whole
/// PARAMS stream for `r` to `out`. PHP_VALUE / PHP_ADMIN_VALUE are left
/// out (with one info line) unless `pass_php_values` (see
/// [`is_php_ini_param`]); the names are checked after httpd's sanitising,
/// so `PHP-VALUE` (sent as `PHP_VALUE`) is caught too.
pub fn encode(
    r: &Request,
    out: &mut Vec<u8>,
    request_id: u16,
    role: proto::Role,
    keep: bool,
    pass_php_values: bool,
) -> Result<(), ProtoError> {
    proto::encode_begin_request(out, request_id, role, keep);
    let mut pairs = r.cgi_env();
    if !pass_php_values {
        let before = pairs.len();
        pairs.retain(|(k, _)| !is_php_ini_param(k));
        if pairs.len() != before {
            r.log(
                Level::Info,
                0,
                "FastCGI: PHP_VALUE/PHP_ADMIN_VALUE not passed to the application (the server has no -pass-php-values)",
            );
        }
    }
    proto::encode_params(out, request_id, pairs.iter().map(|(k, v)| (*k, *v)))
}

#[cfg(test)]
mod tests {
    use super::{is_php_ini_param, pass_header_var};

    #[test]
    fn php_ini_params() {
        for n in ["PHP_VALUE", "PHP_ADMIN_VALUE", "php_value", "Php_Admin_Value"] {
            assert!(is_php_ini_param(n.as_bytes()), "{n}");
        }
        for n in [
            "PHP_VALUES",
            "HTTP_PHP_VALUE",
            "PHP_ADMIN",
            "PHP_SELF",
            "",
            "PHP_VALUE ",
        ] {
            assert!(!is_php_ini_param(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn pass_header_names() {
        assert_eq!(pass_header_var("Authorization"), b"HTTP_AUTHORIZATION");
        assert_eq!(pass_header_var("X-Forwarded-For"), b"HTTP_X_FORWARDED_FOR");
        assert_eq!(pass_header_var("x.y z"), b"HTTP_X_Y_Z");
    }
}
