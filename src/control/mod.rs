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
