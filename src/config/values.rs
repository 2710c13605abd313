//! Option value parsers (CFG-02..CFG-05, 2.2 `-port`, 2.3 `-host`).
//!
//! Each returns the *reason* part of
//! `<Directive> <path>: invalid value for <option>: <reason>`; the caller adds
//! the rest. The legacy texts are kept; the legacy wrap-arounds are not (see
//! "Deliberate differences from legacy" in the module docs).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::tokenize::is_conf_space;

/// Reason given for a missing or empty value (CFG-02): the two characters `""`.
pub(crate) const EMPTY: &str = "\"\"";

/// `strtol(txt, &end, 10)` with the "whole word must be consumed" rule: leading
/// whitespace, an optional sign, at least one digit, nothing after. The value
/// saturates instead of overflowing (callers reject anything that large).
fn decimal(txt: &str) -> Option<i128> {
    let t = txt.trim_start_matches(|c: char| c.is_ascii() && is_conf_space(c as u8));
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i128, |acc, b| {
        acc.saturating_mul(10).saturating_add(i128::from(b - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

/// Legacy `get_u_int` ("u_int" options). Negative input is rejected instead of
/// wrapping to ~4 billion; so is anything above `u32::MAX`.
/// A size in bytes, at least 1: decimal digits with an optional `K`, `M` or
/// `G` suffix (binary multiples, any case).
pub(crate) fn bytes(txt: &str) -> Result<u64, String> {
    let t = txt.trim();
    if t.is_empty() {
        return Err(EMPTY.into());
    }
    let bad = || format!("\"{txt}\" must be a number of bytes >= 1 (optionally followed by K, M or G)");
    let (digits, mult) = match t.as_bytes()[t.len() - 1].to_ascii_uppercase() {
        b'K' => (&t[..t.len() - 1], 1u64 << 10),
        b'M' => (&t[..t.len() - 1], 1 << 20),
        b'G' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let v: u64 = digits.parse().map_err(|_| bad())?;
    match v.checked_mul(mult) {
        Some(n) if n >= 1 => Ok(n),
        _ => Err(bad()),
    }
}

pub(crate) fn unsigned(txt: &str, min: u32) -> Result<u32, String> {
    if txt.is_empty() {
        return Err(EMPTY.into());
    }
    let Some(v) = decimal(txt) else {
        return Err(format!("\"{txt}\" must be a positive integer"));
    };
    if v < 0 {
        return Err(if min >= 1 {
            format!("\"{txt}\" must be a positive integer")
        } else {
            format!("\"{txt}\" must be >= 0")
        });
    }
    let Ok(v) = u32::try_from(v) else {
        return Err(format!("\"{txt}\" must be <= {}", u32::MAX));
    };
    if v < min {
        return Err(format!("\"{v}\" must be >= {min}"));
    }
    Ok(v)
}

/// Legacy `get_int` ("int" options; every such option has a minimum >= 0, so
/// the result is returned unsigned). Values above `i32::MAX` are rejected
/// instead of being truncated.
pub(crate) fn signed(txt: &str, min: u32) -> Result<u32, String> {
    if txt.is_empty() {
        return Err(EMPTY.into());
    }
    let Some(v) = decimal(txt) else {
        return Err(format!("can't parse \"{txt}\""));
    };
    if v < i128::from(min) {
        // Legacy prints the parsed number (`%d`), e.g. "-01" -> "-1".
        let shown = if v >= i128::from(i32::MIN) {
            v.to_string()
        } else {
            txt.to_string()
        };
        return Err(format!("\"{shown}\" must be >= {min}"));
    }
    if v > i128::from(i32::MAX) {
        return Err(format!("\"{txt}\" must be <= {}", i32::MAX));
    }
    u32::try_from(v).map_err(|_| format!("can't parse \"{txt}\""))
}

/// Legacy `get_float` (`-gainValue`): `strtod`, fully consumed, within
/// `[min, max]`. NaN is rejected (legacy accepted it because every comparison
/// with NaN is false).
pub(crate) fn float(txt: &str, min: f32, max: f32) -> Result<f32, String> {
    if txt.is_empty() {
        return Err(EMPTY.into());
    }
    let t = txt.trim_start_matches(|c: char| c.is_ascii() && is_conf_space(c as u8));
    let parsed: Option<f64> = t.parse().ok().filter(|v: &f64| !v.is_nan());
    let Some(v) = parsed else {
        return Err(format!("\"{txt}\" is not a floating point number"));
    };
    // Legacy stores into a C float before the range check.
    let v = v as f32;
    if v < min || v > max {
        return Err(format!("\"{v:.6}\" is not between {min:.6} and {max:.6}"));
    }
    Ok(v)
}

/// A TCP port for `-port` (legacy `get_u_short`, minimum 1). The error shows
/// the value given and the true range (legacy printed the previous value and
/// claimed `< 65535`).
pub(crate) fn port(txt: &str) -> Result<u16, String> {
    if txt.is_empty() {
        return Err(EMPTY.into());
    }
    let Some(v) = decimal(txt) else {
        return Err(format!("\"{txt}\" must be a positive integer"));
    };
    match u16::try_from(v) {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(format!("\"{txt}\" must be >= 1 and <= 65535")),
    }
}

/// How a `host:port` word failed to split.
enum SplitError {
    MissingPort,
    UnbracketedIpv6,
    UnclosedBracket,
}

/// Splits `host:port`, `[v6addr]:port`. The host part of an unbracketed word
/// ends at the first colon, as in legacy `get_host_n_port`.
fn split_host_port(txt: &str) -> Result<(&str, &str), SplitError> {
    if let Some(rest) = txt.strip_prefix('[') {
        let close = rest.find(']').ok_or(SplitError::UnclosedBracket)?;
        let port = rest[close + 1..].strip_prefix(':').ok_or(SplitError::MissingPort)?;
        return Ok((&rest[..close], port));
    }
    if txt.parse::<Ipv6Addr>().is_ok() {
        return Err(SplitError::UnbracketedIpv6);
    }
    txt.split_once(':').ok_or(SplitError::MissingPort)
}

fn split_reason(txt: &str, e: SplitError) -> String {
    match e {
        SplitError::MissingPort => "missing port specification".into(),
        SplitError::UnbracketedIpv6 => {
            format!("missing port specification (an IPv6 address with a port is written [{txt}]:port)")
        }
        SplitError::UnclosedBracket => format!("missing \"]\" in \"{txt}\""),
    }
}

/// `-host host:port` (2.3). Returns the host text (IP literal or name, without
/// brackets) and the port. Ports outside 1..=65535 are rejected (legacy
/// truncated them to 16 bits first, so 70000 became 4464).
pub(crate) fn host_and_port(txt: &str) -> Result<(String, u16), String> {
    if txt.is_empty() {
        return Err(EMPTY.into());
    }
    let (host, port_txt) = split_host_port(txt).map_err(|e| split_reason(txt, e))?;
    match decimal(port_txt).map(u16::try_from) {
        Some(Ok(p)) if p >= 1 => Ok((host.to_string(), p)),
        _ => Err(format!("bad port number \"{port_txt}\"")),
    }
}

/// `-port n` (legacy: all interfaces) or, new, `-port addr:n` / `-port [v6]:n`
/// to bind one address only.
pub(crate) fn bind_address(txt: &str) -> Result<SocketAddr, String> {
    if !txt.contains(':') {
        return port(txt).map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p));
    }
    let (host, port_txt) = split_host_port(txt).map_err(|e| split_reason(txt, e))?;
    if port_txt.is_empty() {
        return Err(split_reason(txt, SplitError::MissingPort));
    }
    let Ok(ip) = host.parse::<IpAddr>() else {
        return Err(format!("\"{host}\" is not an IP address to bind to"));
    };
    Ok(SocketAddr::new(ip, port(port_txt)?))
}
