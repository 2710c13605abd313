#![forbid(unsafe_code)]
//! CGI semantics of the application's output, independent of httpd and of FastCGI framing.
//!
//! - [`HeaderScanner`]: the CGI response header block at the start of FCGI_STDOUT
//!   (reference 5.6, RQ-40..RQ-45), with a size bound the legacy module lacked
//!   (SG-4, legacy bug 20).
//! - [`redirect_kind`]: which `Location` responses become internal or external redirects
//!   (5.7, RQ-46/RQ-47).
//! - [`StderrLines`]: splitting FCGI_STDERR into log lines (5.11, RQ-70/RQ-71; the stale
//!   trailing bytes of legacy bug 11 are fixed).
//!
//! Names and values are kept as raw bytes (`Vec<u8>`): applications may send non-UTF-8
//! header values (e.g. Latin-1 filenames in `Content-Disposition`) and they must reach the
//! client unchanged, so no lossy conversion happens here.

mod headers;
mod stderr;
mod stderr_cap;

pub use headers::{
    nph_status_line, redirect_kind, HeaderError, HeaderScanner, Redirect, ResponseHead, Scan, NPH_PREFIX,
};
pub use stderr::{StderrEvent, StderrLines, STDERR_LINE_MAX};
pub use stderr_cap::{StderrCap, StderrVerdict, STDERR_LOG_CAP};
