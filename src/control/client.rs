//! The client side: send one request to a running `pm start`, get its reply
//! (and, for `down`, wait for the end of the connection: pm's exit); or
//! open a stream (`logs`, `attach`) and read it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::protocol::{
    Command, Reply, Request, StreamCommand, StreamEvent, StreamRequest, StreamStart, VERSION,
};
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
    let request = Request {
        version: VERSION,
        command,
    };
    let stream = connect(socket, &shown, patience, ANSWER_TIMEOUT, &request)?;
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    reader
        .read_line(&mut reply)
        .map_err(|e| Error::os(format!("{shown}: no reply"), e))?;
    let reply = serde_json::from_str(&reply)
        .map_err(|e| Error::Invalid(format!("{shown}: unreadable reply: {e}")))?;
    Ok((reply, reader))
}

/// Connects to the pm on `socket` (shown as `shown`), makes sure it runs as
/// this user, and sends `request` as one JSON line; reads then wait up to
/// `read`, writes up to `write`.
fn connect(
    socket: &Path,
    shown: &str,
    read: Duration,
    write: Duration,
    request: &impl serde::Serialize,
) -> Result<UnixStream, Error> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        Error::Invalid(format!(
            "{shown}: no pm is running here ({})",
            io_message(&e)
        ))
    })?;
    super::check_peer(&stream, shown)?;
    let _ = stream.set_read_timeout(Some(read));
    let _ = stream.set_write_timeout(Some(write));
    let mut line = serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| Error::os(format!("{shown}: cannot send the request"), e))?;
    Ok(stream)
}

/// An open stream: its start line, and the connection to read the rest
/// from (and, for an attach, to write to).
#[derive(Debug)]
pub struct Opened {
    pub start: StreamStart,
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
}

/// Sends a streaming request to the pm listening on `socket` and reads the
/// stream's start (or its error).
pub fn open(socket: &Path, command: StreamCommand) -> Result<Opened, Error> {
    let shown = socket.display().to_string();
    let request = StreamRequest {
        version: VERSION,
        command,
    };
    let stream = connect(socket, &shown, ANSWER_TIMEOUT, ANSWER_TIMEOUT, &request)?;
    let writer = stream
        .try_clone()
        .map_err(|e| Error::os(format!("{shown}: cannot use the connection"), e))?;
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader
        .read_line(&mut first)
        .map_err(|e| Error::os(format!("{shown}: no reply"), e))?;
    let value: serde_json::Value = serde_json::from_str(&first)
        .map_err(|e| Error::Invalid(format!("{shown}: unreadable reply: {e}")))?;
    if value.get("ok") != Some(&serde_json::Value::Bool(true)) {
        let reply: Reply = serde_json::from_value(value)
            .map_err(|e| Error::Invalid(format!("{shown}: unreadable reply: {e}")))?;
        return Err(Error::Invalid(
            reply.error.unwrap_or_else(|| "request refused".into()),
        ));
    }
    let start: StreamStart = serde_json::from_value(value).map_err(|e| {
        Error::Invalid(format!(
            "{shown}: unreadable reply (does this pm know streams?): {e}"
        ))
    })?;
    // A stream waits as long as pm runs.
    let _ = reader.get_ref().set_read_timeout(None);
    Ok(Opened {
        start,
        reader,
        writer,
    })
}

/// Reads the next event of a stream; `None` at its end of file (pm exited
/// without saying so).
pub fn next_event(
    reader: &mut BufReader<UnixStream>,
    line: &mut Vec<u8>,
) -> Result<Option<StreamEvent>, Error> {
    line.clear();
    let n = reader
        .read_until(b'\n', line)
        .map_err(|e| Error::os("the control socket", e))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        // Cut off: pm dropped this client mid-line for falling behind.
        return Err(Error::Invalid(
            "pm dropped this client: it read too slowly and fell behind".into(),
        ));
    }
    serde_json::from_slice(line.trim_ascii())
        .map(Some)
        .map_err(|e| Error::Invalid(format!("unreadable stream line: {e}")))
}
