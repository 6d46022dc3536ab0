//! Live control from another shell: a Unix socket that answers JSON lines.
//!
//! `protocol` holds the request and reply types (the documented contract),
//! `server` the listener run by `pm start`, `reply` the replies built from
//! the supervisor's state and answers, `client` what `pm ps`, `pm restart`,
//! `pm stop` and `pm scale` use. The server never touches the supervisor: it
//! hands each [`Request`] to the runtime and writes the reply.

pub mod client;
pub mod protocol;
pub mod reply;
pub mod server;

pub use server::Request;

use std::path::{Path, PathBuf};

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
