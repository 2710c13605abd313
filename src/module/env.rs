//! The request environment sent as FCGI_PARAMS (reference 5.4): httpd's
//! own CGI variables (`ap_add_common_vars`, then `-pass-header`, then
//! `ap_add_cgi_vars`, RQ-20/RQ-24), so SetEnv, PassEnv, CGIPassAuth and
//! httpd's header filtering behave exactly as for mod_cgi.

use crate::httpd::Request;
use crate::proto::{self, ProtoError};

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
/// PARAMS stream for `r` to `out`.
pub fn encode(
    r: &Request,
    out: &mut Vec<u8>,
    request_id: u16,
    role: proto::Role,
    keep: bool,
) -> Result<(), ProtoError> {
    proto::encode_begin_request(out, request_id, role, keep);
    let pairs = r.cgi_env();
    proto::encode_params(out, request_id, pairs.iter().map(|(k, v)| (*k, *v)))
}

#[cfg(test)]
mod tests {
    use super::pass_header_var;

    #[test]
    fn pass_header_names() {
        assert_eq!(pass_header_var("Authorization"), b"HTTP_AUTHORIZATION");
        assert_eq!(pass_header_var("X-Forwarded-For"), b"HTTP_X_FORWARDED_FOR");
        assert_eq!(pass_header_var("x.y z"), b"HTTP_X_Y_Z");
    }
}
