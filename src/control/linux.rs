//! Linux: who is at the other end of a Unix socket, from SO_PEERCRED.

use std::io;
use std::os::unix::net::UnixStream;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// The uid of the process at the other end of `stream` (for a server: the
/// one that called `listen`).
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let credentials = getsockopt(stream, PeerCredentials)?;
    Ok(credentials.uid())
}
