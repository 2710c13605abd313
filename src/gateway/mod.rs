//! Talking to FastCGI applications: connecting ([`conn`]), running one
//! request/response exchange ([`exchange`]) and spooling chunked request
//! bodies ([`spool`]). Safe Rust; httpd is reached through
//! [`exchange::Frontend`].
#![forbid(unsafe_code)]

pub mod backends;
pub mod conn;
pub mod exchange;
pub mod mux;
pub mod reuse;
mod row_owner;
pub mod spool;
pub mod stats;

pub use conn::{AppConn, ConnectError};
pub use exchange::{Buffers, ExchangeError, ExchangeOpts, Failure, Frontend, HeadAction, Outcome};
