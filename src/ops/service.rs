//! Telling the service manager (systemd, `Type=notify`) what the process is
//! doing: `READY=1` once every worker accepts and the cache is recovered,
//! `RELOADING=1` and `READY=1` around a SIGHUP reload, `STOPPING=1` when the
//! drain starts, and a `STATUS=` line for `systemctl status` with each.
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (tests, a shell, any
//! other supervisor). A socket that cannot be written is logged and changes
//! nothing else: readiness is the manager's business, serving is ours.

use sd_notify::NotifyState;

/// Started: every worker accepts and the cache is open; `status` says on what.
pub fn ready(status: &str) {
    send("ready", &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload begins. `MONOTONIC_USEC` lets systemd 253+ tell this reload from
/// an earlier one; older versions ignore it. [`ready`] ends the reload,
/// whether it was applied or refused.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading, NotifyState::Status("reloading")];
    match NotifyState::monotonic_usec_now() {
        Ok(now) => states.push(now),
        Err(e) => tracing::warn!(error = %e, "service manager: no monotonic clock for RELOADING=1"),
    }
    send("reloading", &states);
}

/// The drain begins: no new connections, in-flight responses finish.
pub fn stopping(status: &str) {
    send(
        "stopping",
        &[NotifyState::Stopping, NotifyState::Status(status)],
    );
}

fn send(what: &str, states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        let socket = std::env::var_os("NOTIFY_SOCKET").unwrap_or_default();
        tracing::warn!(
            socket = %socket.to_string_lossy(),
            error = %e,
            "service manager: could not send {what}"
        );
    }
}
