//! The client side: send one request to a running `pm start`, get its reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Command, Reply, Request, VERSION};
use crate::error::{Error, io_message};

/// Sends `command` to the pm listening on `socket`.
pub fn send(socket: &Path, command: Command) -> Result<Reply, Error> {
    let shown = socket.display().to_string();
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        Error::Invalid(format!(
            "{shown}: no pm is running here ({})",
            io_message(&e)
        ))
    })?;
    let timeout = Some(Duration::from_secs(30));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let request = Request {
        version: VERSION,
        command,
    };
    let mut line = serde_json::to_vec(&request).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| Error::os(format!("{shown}: cannot send the request"), e))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(|e| Error::os(format!("{shown}: no reply"), e))?;
    serde_json::from_str(&reply)
        .map_err(|e| Error::Invalid(format!("{shown}: unreadable reply: {e}")))
}
