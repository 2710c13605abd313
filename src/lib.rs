//! mod_fastcgi: a drop-in successor to Apache's legacy mod_fastcgi.
//!
//! Layers (see README "Design"):
//! - [`ffi`]: raw bindgen output, no logic;
//! - [`httpd`]: small safe wrappers around httpd/APR objects (the only place
//!   with `unsafe` besides `ffi` and the `entry` trampolines);
//! - pure Rust with `#![forbid(unsafe_code)]`: [`proto`] (FastCGI codec),
//!   [`cgi`] (response headers), [`config`] (directive parsing).
pub mod cgi;
pub mod config;
pub mod entry;
pub mod ffi;
pub mod gateway;
pub mod httpd;
pub mod module;
pub mod pm;
pub mod proto;
pub mod sys;

/// Appended to the Server header / SERVER_SOFTWARE (legacy RT-03 appended
/// `mod_fastcgi/mod_fastcgi-SNAP-0910052141`).
pub const VERSION_COMPONENT: &std::ffi::CStr = c"mod_fastcgi/2.4.7-rs";
