//! The control socket of a running `pm start`: binding (with stale-socket
//! detection that never replaces what is not its own), the accept loop, and
//! one short-lived task per connection.
//!
//! A connection's task reads and checks one request, hands it to the runtime
//! as a [`Request`] (this source's own event type) and writes the reply it
//! gets back. It never sees the supervisor.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::stat::{Mode, umask};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use super::protocol::{Command, MAX_REQUEST, Parsed, Reply, StreamCommand, parse_any};
use super::stream::StreamOpen;
use crate::error::{Error, io_message};

/// A request from a control connection, with where its reply goes.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Reply>,
}

/// A client has this long to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Removes the socket file when dropped, on every way out of `pm start`,
/// while the name is still the socket pm bound (the same inode): never a
/// file someone else put there since.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    inode: (u64, u64),
}

impl SocketGuard {
    /// Leaves the socket file in place: another process (the background pm
    /// of `pm start --detach`) serves it and removes it.
    pub fn leave(self) {
        std::mem::forget(self);
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the socket at `path`, mode 0600. A socket file of this user's that
/// nobody answers on (left by a killed pm) is replaced; one that answers
/// means another pm runs here, and anything else there (another user's
/// socket, one pm may not connect to, a symbolic link, a file) is left alone
/// and is an error. No symbolic link is ever followed: the name is looked at
/// with `lstat`, `bind` never follows one, and the mode comes from the umask
/// in effect during `bind`, not from a `chmod` after it.
pub fn bind(path: &Path) -> Result<(std::os::unix::net::UnixListener, SocketGuard), Error> {
    let shown = path.display().to_string();
    make_room(path, &shown)?;
    // Only the owner may connect: create it 0600 from the start. pm creates
    // no other file while the mask is narrowed.
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    umask(old);
    let listener =
        bound.map_err(|e| Error::os(format!("{shown}: cannot create the control socket"), e))?;
    let me = nix::unistd::geteuid().as_raw();
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Error::os(format!("{shown}: cannot check the control socket"), e))?;
    if !meta.file_type().is_socket() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(Error::Invalid(format!(
            "{shown}: the control socket is not the private socket pm just created (mode {:o}, uid {}); refusing to use it",
            meta.mode() & 0o7777,
            meta.uid()
        )));
    }
    let guard = SocketGuard {
        path: path.to_path_buf(),
        inode: (meta.dev(), meta.ino()),
    };
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::os(format!("{shown}: cannot use the control socket"), e))?;
    Ok((listener, guard))
}

/// Clears the way for the socket: nothing there, or a stale socket of this
/// user's (removed). Anything else is an error naming what is there.
fn make_room(path: &Path, shown: &str) -> Result<(), Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::os(
                format!("{shown}: cannot look at the control socket"),
                e,
            ));
        }
    };
    let refuse = |what: String| {
        Err(Error::Invalid(format!(
            "{shown}: {what}; pm leaves it alone (remove it or use --socket)"
        )))
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link, which pm never follows for its socket".into());
    }
    if !meta.file_type().is_socket() {
        return refuse("exists and is not a socket".into());
    }
    if meta.uid() != me {
        return refuse(format!(
            "is a socket of uid {}, not yours (uid {me}): another user's pm may run here",
            meta.uid()
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(stream) => {
            super::check_peer(&stream, shown)?;
            Err(Error::Invalid(format!(
                "{shown}: pm is already running here (its control socket answers); stop it first or use --socket"
            )))
        }
        // Stale: whoever made it is gone.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| Error::os(format!("{shown}: cannot remove the stale socket"), e)),
        // Gone since it was looked at.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => refuse(format!(
            "is a socket pm cannot connect to ({}): it may be another user's pm",
            io_message(&e)
        )),
    }
}

/// Accepts connections until the runtime ends. One-shot requests go to the
/// runtime as [`Request`]s, streaming ones as [`StreamOpen`]s.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    runtime: UnboundedSender<Request>,
    streams: UnboundedSender<StreamOpen>,
) {
    let Ok(listener) = UnixListener::from_std(listener) else {
        return;
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, runtime.clone(), streams.clone()));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Out of descriptors and the like: wait a little, never spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn handle(
    mut stream: UnixStream,
    runtime: UnboundedSender<Request>,
    streams: UnboundedSender<StreamOpen>,
) {
    let mut down = false;
    let reply = match answer(&mut stream, runtime, &mut down).await {
        Answer::Reply(reply) => reply,
        Answer::Stream(command) => {
            super::stream::serve(stream, command, &streams).await;
            return;
        }
    };
    if let Ok(mut line) = serde_json::to_vec(&reply) {
        line.push(b'\n');
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(&line)).await;
    }
    if down && reply.ok {
        hold_until_exit(stream);
        return;
    }
    let _ = stream.shutdown().await;
}

/// `pm down`'s connection stays open for as long as pm's process lives:
/// its descriptor is let go of, never closed, so the kernel closes it when
/// pm exits and the client learns of the exit from the end of the stream,
/// without polling. (Its descriptor is close-on-exec: no child inherits it.)
fn hold_until_exit(stream: UnixStream) {
    if let Ok(stream) = stream.into_std() {
        let _ = std::os::fd::IntoRawFd::into_raw_fd(stream);
    }
}

/// What a connection gets: one reply, or a stream to serve.
enum Answer {
    Reply(Reply),
    Stream(StreamCommand),
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::Reply(reply)
    }
}

async fn answer(
    stream: &mut UnixStream,
    runtime: UnboundedSender<Request>,
    down: &mut bool,
) -> Answer {
    let me = nix::unistd::geteuid();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == me.as_raw() => {}
        _ => {
            return Reply::error("permission denied: only the user running pm may control it")
                .into();
        }
    }
    let mut line = Vec::new();
    let limit = (MAX_REQUEST + 1) as u64;
    let read = {
        let mut reader = BufReader::new(&mut *stream).take(limit);
        tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await
    };
    match read {
        Err(_) => return Reply::error("no request received in time").into(),
        Ok(Err(e)) => return Reply::error(format!("cannot read the request: {e}")).into(),
        Ok(Ok(_)) => {}
    }
    if line.len() > MAX_REQUEST {
        return Reply::error(format!("request longer than {MAX_REQUEST} bytes")).into();
    }
    let request = match parse_any(line.trim_ascii()) {
        Ok(Parsed::Once(request)) => request,
        Ok(Parsed::Stream(request)) => return Answer::Stream(request.command),
        Err(message) => return Reply::error(message).into(),
    };
    *down = request.command == Command::Down;
    let (reply, answered) = oneshot::channel();
    let request = Request {
        command: request.command,
        reply,
    };
    if runtime.send(request).is_err() {
        return Reply::error("pm is shutting down").into();
    }
    answered
        .await
        .unwrap_or_else(|_| Reply::error("pm is shutting down"))
        .into()
}
