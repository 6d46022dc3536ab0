//! The client side: send one request to a running `pm start`, get its reply
//! (and, for `down`, wait for the end of the connection: pm's exit).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::protocol::{Command, Reply, Request, VERSION};
use crate::error::{Error, io_message};

/// How long a request that does not wait may take to be answered.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `command` to the pm listening on `socket`.
pub fn send(socket: &Path, command: Command) -> Result<Reply, Error> {
    let patience = ANSWER_TIMEOUT
        + command
            .wait()
            .map_or(Duration::ZERO, Duration::from_secs_f64);
    let (reply, _) = request(socket, command, patience)?;
    Ok(reply)
}

/// `pm down`: sends `down`, then waits until pm has exited (its end of the
/// connection closes when its process ends), for up to what `timeout` says
/// given the reply (which carries pm's longest grace). Returns the reply and
/// whether pm exited in time.
pub fn down(
    socket: &Path,
    timeout: impl FnOnce(&Reply) -> Duration,
) -> Result<(Reply, bool), Error> {
    let (reply, mut reader) = request(socket, Command::Down, ANSWER_TIMEOUT)?;
    if !reply.ok {
        return Ok((reply, false));
    }
    let deadline = Instant::now() + timeout(&reply);
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok((reply, false));
        }
        let _ = reader.get_ref().set_read_timeout(Some(left));
        match reader.read(&mut buf) {
            Ok(0) => return Ok((reply, true)),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok((reply, false));
            }
            // A reset is an end too: the process holding it is gone.
            Err(_) => return Ok((reply, true)),
        }
    }
}

fn request(
    socket: &Path,
    command: Command,
    patience: Duration,
) -> Result<(Reply, BufReader<UnixStream>), Error> {
    let shown = socket.display().to_string();
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        Error::Invalid(format!(
            "{shown}: no pm is running here ({})",
            io_message(&e)
        ))
    })?;
    super::check_peer(&stream, &shown)?;
    let _ = stream.set_read_timeout(Some(patience));
    let _ = stream.set_write_timeout(Some(ANSWER_TIMEOUT));
    let request = Request {
        version: VERSION,
        command,
    };
    let mut line = serde_json::to_vec(&request).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| Error::os(format!("{shown}: cannot send the request"), e))?;
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    reader
        .read_line(&mut reply)
        .map_err(|e| Error::os(format!("{shown}: no reply"), e))?;
    let reply = serde_json::from_str(&reply)
        .map_err(|e| Error::Invalid(format!("{shown}: unreadable reply: {e}")))?;
    Ok((reply, reader))
}
