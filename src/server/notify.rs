//! systemd's readiness protocol (`sd_notify`), without libsystemd: one datagram to the
//! socket named by `$NOTIFY_SOCKET`. Under `Type=notify` the unit is started once the
//! listeners accept; after a graceful upgrade (`serve -u`, started by `ExecReload`) the
//! new process names itself the service's main process with `MAINPID=`, so systemd
//! follows it when the old one exits.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Sends `state` (newline-separated `KEY=VALUE` lines) to systemd. `Ok(false)` when not
/// run by systemd (no `$NOTIFY_SOCKET`).
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    match bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's usual choice in user and container managers).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(state.as_bytes(), &path)?;
        }
    }
    Ok(true)
}

/// Tells systemd this process is serving and is the service's main process.
pub fn ready(status: &str) {
    let msg = format!("READY=1\nMAINPID={}\nSTATUS={status}\n", std::process::id());
    match notify(&msg) {
        Ok(true) => log::debug!("told systemd: ready"),
        Ok(false) => {}
        Err(e) => log::warn!("cannot notify systemd of readiness: {e}"),
    }
}
