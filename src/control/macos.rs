//! macOS: who is at the other end of a Unix socket, from getpeereid.

use std::io;
use std::os::unix::net::UnixStream;

/// The uid of the process at the other end of `stream` (for a server: the
/// one that called `listen`).
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let (uid, _gid) = nix::unistd::getpeereid(stream)?;
    Ok(uid.as_raw())
}
