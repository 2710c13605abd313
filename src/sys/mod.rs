//! Small safe wrappers around the OS calls the process manager ([`crate::pm`]) needs that
//! Rust cannot express without `unsafe`: child set-up between fork and exec, signal
//! dispositions, close-on-exec sweeps and `waitpid` with the raw status — and the
//! shared memory and futex calls connection reuse needs.
//!
//! Every `unsafe` block here carries a `// SAFETY:` comment; nothing here knows about
//! httpd.

pub mod account;
pub mod caps;
pub mod child;
pub mod fd;
#[cfg(test)]
pub mod fork;
pub mod pidfd;
pub mod scm;
pub mod shm;
pub mod signals;
pub mod sockq;
pub mod wait;
