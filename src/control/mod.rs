//! Live control from another shell: a Unix socket that answers JSON lines.
//!
//! `protocol` holds the request and reply types (the documented contract),
//! `server` the listener run by `pm start`, `reply` the replies built from
//! the supervisor's state and answers, `client` what `pm ps`, `pm restart`,
//! `pm stop`, `pm scale`, `pm logs` and `pm attach` use, `stream` the
//! streams of `logs` and `attach`. The server never touches the supervisor:
//! it hands each [`Request`] (or [`StreamOpen`]) to the runtime and writes
//! the reply (or what the scrollback's feed brings).
//!
//! The socket trusts no one else (docs/control.md): the server answers only
//! its own user, a client talks only to a server of its own user
//! ([`check_peer`], from `linux.rs` or `macos.rs`), and `pm start` replaces
//! a socket file only when it is its user's own and nobody answers on it.

pub mod client;
pub mod protocol;
pub mod reply;
pub mod server;
pub mod stream;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as platform;

pub use server::Request;
pub use stream::{Input, Stream, StreamOpen};

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::error::{Error, io_message};

/// The socket's file name in the root directory.
pub const SOCKET_NAME: &str = ".pm.sock";

/// The directory a client looks in when neither `-f` nor `-d` says: `start`
/// or the nearest parent of it that has a socket or a Procfile (as git finds
/// `.git`), so `pm ps` works from `app/models/`. A Procfile without a socket
/// there means no pm runs for that app. None when no parent has either.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(SOCKET_NAME).exists() || dir.join("Procfile").is_file())
        .map(Path::to_path_buf)
}

/// Where the socket is: `--socket`, else `PM_SOCKET`, else ROOT/.pm.sock.
pub fn socket_path(explicit: Option<&PathBuf>, root: &Path) -> PathBuf {
    if let Some(path) = explicit {
        return path.clone();
    }
    if let Some(path) = std::env::var_os("PM_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    root.join(SOCKET_NAME)
}

/// Checks that the process at the other end of `stream` runs as this user,
/// before anything is sent to it: in a directory others may write to,
/// another user could have put a socket of their own in pm's place.
pub fn check_peer(stream: &UnixStream, shown: &str) -> Result<(), Error> {
    let me = nix::unistd::geteuid().as_raw();
    match platform::peer_uid(stream) {
        Ok(uid) if uid == me => Ok(()),
        Ok(uid) => Err(Error::Invalid(format!(
            "{shown}: the process answering here runs as uid {uid}, not as you (uid {me}); nothing was sent to it"
        ))),
        Err(e) => Err(Error::Invalid(format!(
            "{shown}: cannot tell who answers on this socket ({}); nothing was sent to it",
            io_message(&e)
        ))),
    }
}
