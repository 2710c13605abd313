//! Connecting a request (handler or authorizer role) to its application,
//! making sure the socket reached is the intended one (security review,
//! finding 1: a local user who binds a static application's socket path or
//! port before the process manager does would otherwise receive its
//! requests, cookies and bodies included).
//!
//! - Applications our process manager runs (static and dynamic): every Unix
//!   socket connection must reach a listener created by the process
//!   manager's uid (`SO_PEERCRED`; one `getsockopt` per fresh connection —
//!   kept connections were checked when they were opened).
//! - Static applications are only connected to while the process manager
//!   holds their address (the bind status it publishes in the shared table,
//!   [`crate::gateway::reuse::Shared::bind_status`]: two atomic loads). This
//!   is what protects `-port`: TCP peers have no credentials to check.
//! - External applications: `-peer-user` (Unix sockets only), off by default.

use crate::config::{AppAddr, ConnOptions};
use crate::gateway::conn::{pm_uid, PeerCheck};
use crate::gateway::reuse::BindStatus;
use crate::gateway::{AppConn, ConnectError};
use crate::httpd::{Level, Request};
use std::time::{Duration, Instant};

/// Who runs the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    External,
    /// `FastCgiServer`: started by our process manager on a socket it binds
    /// once per class.
    Static,
    /// `FastCgiConfig`: started on demand by our process manager.
    Dynamic,
}

/// The check a connection to this application must pass.
pub fn peer_check(opts: &ConnOptions, runner: Runner) -> PeerCheck {
    match runner {
        Runner::External => opts.peer_uid.map_or(PeerCheck::Any, PeerCheck::Uid),
        Runner::Static | Runner::Dynamic => PeerCheck::Uid(pm_uid()),
    }
}

/// Opens a fresh connection, waiting at most `timeout` (and at most 10 s
/// without `-appConnTimeout`) for a process manager that is (re)creating
/// the socket of a static or dynamic application.
/// `slot`: the address's slot in the shared table when the caller has
/// looked it up already (`None`: looked up here).
pub fn open(
    addr: &AppAddr,
    opts: &ConnOptions,
    runner: Runner,
    timeout: Duration,
    slot: Option<usize>,
) -> Result<AppConn, ConnectError> {
    let patient = if opts.app_conn_timeout == 0 {
        timeout.min(Duration::from_secs(10))
    } else {
        timeout
    };
    let peer = peer_check(opts, runner);
    match runner {
        Runner::External => AppConn::connect(addr, timeout, peer),
        Runner::Static => {
            let start = Instant::now();
            wait_until_bound(addr, patient, slot)?;
            AppConn::connect_patiently(addr, patient.saturating_sub(start.elapsed()), peer)
        }
        Runner::Dynamic => AppConn::connect_patiently(addr, patient, peer),
    }
}

/// For a static application: `Ok` when our process manager holds `addr`
/// (or nothing is known: no shared table, or more applications than it
/// has slots — then the `SO_PEERCRED` check alone protects Unix sockets).
/// While the status is unknown (the process manager is starting), a Unix
/// socket is connected to at once (the peer check protects it) and a TCP
/// address is waited for.
fn wait_until_bound(addr: &AppAddr, timeout: Duration, slot: Option<usize>) -> Result<(), ConnectError> {
    let Some(table) = super::supervisor::reuse().map(|r| r.shared()) else {
        return Ok(());
    };
    let Some(slot) = slot.or_else(|| table.find(addr)) else {
        return Ok(());
    };
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match table.bind_status(slot) {
            BindStatus::Bound => return Ok(()),
            BindStatus::Failed { owner } => return Err(ConnectError::NotBound { failed: true, owner }),
            BindStatus::Unknown if matches!(addr, AppAddr::Unix(_)) => return Ok(()),
            BindStatus::Unknown if start.elapsed() + pause >= timeout => {
                return Err(ConnectError::NotBound {
                    failed: false,
                    owner: None,
                })
            }
            BindStatus::Unknown => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
    }
}

fn shown(addr: &AppAddr) -> String {
    match addr {
        AppAddr::Unix(p) => format!("socket \"{}\"", p.display()),
        AppAddr::Tcp(a) => format!("address {a}"),
    }
}

/// Logs one line for a failed connection and returns the status (legacy:
/// 500 for a refused or timed-out connect; 503 for a socket that is not
/// the application's).
pub fn failed(r: &Request, app: &str, addr: &AppAddr, err: ConnectError, timeout: Duration) -> i32 {
    match err {
        ConnectError::Failed(errno) => {
            r.log(
                Level::Error,
                errno as i32,
                &format!(
                    "FastCGI: failed to connect to server \"{app}\": connect() failed ({})",
                    shown(addr)
                ),
            );
            500
        }
        ConnectError::TimedOut => {
            r.log(
                Level::Error,
                0,
                &format!(
                    "FastCGI: failed to connect to server \"{app}\": connect() timed out (appConnTimeout={}sec) ({})",
                    timeout.as_secs(),
                    shown(addr)
                ),
            );
            500
        }
        ConnectError::WrongPeer { uid, expected } => {
            let who = uid.map_or_else(|| "an unknown user".to_string(), |u| format!("uid {u}"));
            r.log(
                Level::Error,
                0,
                &format!(
                    "FastCGI: refusing to talk to server \"{app}\": its {} is held by {who}, not by uid {expected} \
                     (another user bound it)",
                    shown(addr)
                ),
            );
            503
        }
        ConnectError::NotBound { failed, owner } => {
            let why = match (failed, addr, owner) {
                (true, AppAddr::Unix(_), Some(uid)) => format!("could not be bound: the file belongs to uid {uid}"),
                (true, AppAddr::Unix(_), None) => "could not be bound".to_string(),
                (true, AppAddr::Tcp(_), _) => "could not be bound: the port is held by another process".to_string(),
                (false, ..) => "is not held by the process manager (yet)".to_string(),
            };
            r.log(
                Level::Error,
                0,
                &format!("FastCGI: server \"{app}\" is not available: its {} {why}", shown(addr)),
            );
            503
        }
    }
}
