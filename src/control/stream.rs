//! The server side of the streaming requests, `logs` and `attach`: the
//! connection asks the runtime to open the stream ([`StreamOpen`], this
//! source's second event type), then writes what the scrollback's feed
//! brings and, for an attach, hands what the client types to the runtime
//! ([`Input`]).
//!
//! What it must never do: hold pm up. Everything it writes comes from a
//! feed the scrollback never waits on; a client that stops reading only
//! stalls this connection, until the scrollback drops it for falling
//! behind, and then the write is abandoned at once (a client cut where a
//! line ended is left a `dropped` end to read, so it knows).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::oneshot;

use super::protocol::{
    AttachInput, MAX_REQUEST, Reply, StreamCommand, StreamEnd, StreamEvent, StreamStart, WireLine,
};
use crate::output::{End, Feed, Item, LogLine};

/// A streaming request for the runtime, with where its answer goes.
#[derive(Debug)]
pub struct StreamOpen {
    pub command: StreamCommand,
    pub reply: oneshot::Sender<Result<Stream, String>>,
}

/// The runtime's answer to a [`StreamOpen`].
#[derive(Debug)]
pub enum Stream {
    Logs {
        start: StreamStart,
        lines: Vec<LogLine>,
        /// With `--follow`.
        feed: Option<Feed>,
    },
    Attach {
        start: StreamStart,
        lines: Vec<LogLine>,
        feed: Feed,
        /// What the client sends, for the runtime to carry out.
        input: mpsc::Sender<Input>,
    },
}

/// What an attached client asks for, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes for the instance's stdin (or its terminal).
    Bytes(Vec<u8>),
    /// The client's window size (a pty type).
    Resize { rows: u16, cols: u16 },
    /// SIGINT for the instance's process group (Ctrl-C on a pipe type).
    Interrupt,
}

/// Writes are gathered up to this size before they go out.
const BATCH: usize = 64 * 1024;

/// Serves one streaming request on `stream`.
pub(super) async fn serve(
    stream: UnixStream,
    command: StreamCommand,
    runtime: &UnboundedSender<StreamOpen>,
) {
    let (reply, answered) = oneshot::channel();
    let opened = if runtime.send(StreamOpen { command, reply }).is_err() {
        Err("pm is shutting down".to_string())
    } else {
        answered
            .await
            .unwrap_or_else(|_| Err("pm is shutting down".into()))
    };
    let (reader, mut writer) = stream.into_split();
    match opened {
        Err(message) => {
            let _ = writer.write_all(&json_line(&Reply::error(message))).await;
        }
        Ok(Stream::Logs { start, lines, feed }) => {
            let mut buf = json_line(&start);
            for line in &lines {
                push_event(&mut buf, &StreamEvent::Line(wire(line)));
                if buf.len() >= BATCH && writer.write_all(&std::mem::take(&mut buf)).await.is_err()
                {
                    return;
                }
            }
            drop(lines);
            match feed {
                None => {
                    push_event(&mut buf, &end("done", String::new()));
                    let _ = writer.write_all(&buf).await;
                }
                Some(feed) => follow(reader, writer, buf, feed).await,
            }
        }
        Ok(Stream::Attach {
            start,
            lines,
            feed,
            input,
        }) => {
            let mut buf = json_line(&start);
            for line in &lines {
                push_event(&mut buf, &StreamEvent::Line(wire(line)));
            }
            drop(lines);
            attach(reader, writer, buf, feed, input).await;
        }
    }
    // The write half shuts down when dropped.
}

/// `pm logs --follow`: the feed's lines until it ends, the client leaves,
/// or it is dropped for falling behind.
async fn follow(
    mut reader: tokio::net::unix::OwnedReadHalf,
    mut writer: OwnedWriteHalf,
    mut buf: Vec<u8>,
    mut feed: Feed,
) {
    let mut scratch = [0u8; 256];
    loop {
        if !buf.is_empty() && !write(&mut writer, &buf, &feed).await {
            return;
        }
        buf.clear();
        let item = tokio::select! {
            item = feed.next() => item,
            // The client sends nothing more: end-of-file means it left.
            read = reader.read(&mut scratch) => match read {
                Ok(n) if n > 0 => continue,
                _ => return,
            },
        };
        if take(&mut writer, &mut buf, &mut feed, item).await {
            return;
        }
        if feed.was_dropped() {
            // Dropped between two writes: every line sent was whole.
            tell_dropped(&mut writer).await;
            return;
        }
    }
}

/// Takes what the feed gave (`None`: it ended) into `buf`. True when the
/// stream is over: its last event, or the feed's end, has been written.
async fn take(
    writer: &mut OwnedWriteHalf,
    buf: &mut Vec<u8>,
    feed: &mut Feed,
    item: Option<Item>,
) -> bool {
    let Some(item) = item else {
        feed_gone(writer, buf, feed).await;
        return true;
    };
    if batch(buf, feed, item) {
        let _ = write(writer, buf, feed).await;
        return true;
    }
    false
}

/// Encodes `first`, then what else the feed has ready, into `buf`, up to a
/// batch. True when the stream ended: its last event is in `buf`.
fn batch(buf: &mut Vec<u8>, feed: &mut Feed, first: Item) -> bool {
    let mut next = Some(first);
    while let Some(item) = next {
        if let Some(last) = encode(buf, item) {
            push_event(buf, &last);
            return true;
        }
        if buf.len() >= BATCH {
            break;
        }
        next = feed.try_next();
    }
    false
}

/// The feed ended without an end event: the client was dropped for falling
/// behind, or the scrollback is gone with pm.
async fn feed_gone(writer: &mut OwnedWriteHalf, buf: &mut Vec<u8>, feed: &Feed) {
    if feed.was_dropped() {
        tell_dropped(writer).await;
    } else {
        push_event(buf, &end("pm-exited", String::new()));
        let _ = write(writer, buf, feed).await;
    }
}

/// `pm attach`: output to the client, input from it, until the instance's
/// run ends or the client detaches (closes its side).
async fn attach(
    mut reader: tokio::net::unix::OwnedReadHalf,
    mut writer: OwnedWriteHalf,
    mut buf: Vec<u8>,
    mut feed: Feed,
    input: mpsc::Sender<Input>,
) {
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if !buf.is_empty() && !write(&mut writer, &buf, &feed).await {
            return;
        }
        buf.clear();
        tokio::select! {
            item = feed.next() => {
                if take(&mut writer, &mut buf, &mut feed, item).await {
                    return;
                }
            }
            read = reader.read_buf(&mut pending) => {
                match read {
                    Ok(n) if n > 0 => {}
                    // Detached: the client closed its side.
                    _ => return,
                }
                while let Some(at) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=at).collect();
                    match decode(line.trim_ascii()) {
                        Ok(Some(request)) => {
                            // The runtime's side is gone once the run ended;
                            // the feed's end says so.
                            let _ = input.send(request).await;
                        }
                        Ok(None) => {}
                        Err(message) => {
                            let _ = writer.write_all(&json_line(&Reply::error(message))).await;
                            return;
                        }
                    }
                }
                if pending.len() > MAX_REQUEST {
                    let message = format!("attach input line longer than {MAX_REQUEST} bytes");
                    let _ = writer.write_all(&json_line(&Reply::error(message))).await;
                    return;
                }
            }
        }
    }
}

/// One line from an attached client, decoded; `None` for a blank line.
fn decode(line: &[u8]) -> Result<Option<Input>, String> {
    if line.is_empty() {
        return Ok(None);
    }
    let parsed: AttachInput =
        serde_json::from_slice(line).map_err(|e| format!("invalid attach input: {e}"))?;
    Ok(Some(match parsed {
        AttachInput::Input(text) => Input::Bytes(
            BASE64
                .decode(text)
                .map_err(|e| format!("invalid attach input: {e}"))?,
        ),
        AttachInput::Resize { rows, cols } => Input::Resize { rows, cols },
        AttachInput::Signal(name) if name == "INT" || name == "SIGINT" => Input::Interrupt,
        AttachInput::Signal(name) => {
            return Err(format!(
                "invalid attach input: signal {:?} (only \"INT\" is sent)",
                crate::config::one_line(&name)
            ));
        }
    }))
}

/// Writes `buf`, unless the feed is dropped first (the client stopped
/// reading). False when the stream is over; a client dropped is told so
/// (see [`tell_dropped`]).
async fn write(writer: &mut OwnedWriteHalf, buf: &[u8], feed: &Feed) -> bool {
    let mut done = 0;
    while done < buf.len() {
        tokio::select! {
            biased;
            () = feed.dropped() => {
                // Cut inside a line, the client sees the cut and says so.
                if done == 0 || buf[done - 1] == b'\n' {
                    tell_dropped(writer).await;
                }
                return false;
            }
            written = writer.write(&buf[done..]) => match written {
                Ok(n) if n > 0 => done += n,
                _ => return false,
            },
        }
    }
    true
}

/// Ends the stream of a client dropped for falling behind where its last
/// line ended: a `dropped` end, which the client reads once it reads
/// again, so it never takes the cut for a stream that was complete. Only
/// this connection waits for that (the feed and its lines are gone).
async fn tell_dropped(writer: &mut OwnedWriteHalf) {
    let mut buf = Vec::new();
    push_event(
        &mut buf,
        &end("dropped", "it read too slowly and fell behind".into()),
    );
    let _ = writer.write_all(&buf).await;
}

/// Appends `item`; returns the stream's last event when it is an end.
fn encode(buf: &mut Vec<u8>, item: Item) -> Option<StreamEvent> {
    match item {
        Item::Line(line) => push_event(buf, &StreamEvent::Line(wire(&line))),
        Item::Output(bytes) => push_event(buf, &StreamEvent::Output(BASE64.encode(bytes))),
        Item::End(End::PmExited) => return Some(end("pm-exited", String::new())),
        Item::End(End::Exited(message)) => return Some(end("exited", message)),
    }
    None
}

fn end(reason: &str, message: String) -> StreamEvent {
    StreamEvent::End(StreamEnd {
        reason: reason.to_string(),
        message,
    })
}

/// A kept line as the protocol carries it.
pub fn wire(line: &LogLine) -> WireLine {
    let (text, bytes) = match std::str::from_utf8(&line.text) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (None, Some(BASE64.encode(&line.text))),
    };
    WireLine {
        seq: line.seq,
        time_ms: line.millis,
        name: line.name.to_string(),
        color: line.color,
        text,
        bytes,
    }
}

fn push_event(buf: &mut Vec<u8>, event: &StreamEvent) {
    // Serializing these plain structs cannot fail.
    if serde_json::to_writer(&mut *buf, event).is_ok() {
        buf.push(b'\n');
    }
}

fn json_line<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lines_are_text_when_utf8_else_base64() {
        let line = |text: &[u8]| LogLine {
            seq: 7,
            millis: 1_700_000_000_123,
            name: Arc::from("web.1"),
            color: Some(0),
            text: text.to_vec(),
        };
        let w = wire(&line(b"hello"));
        assert_eq!(w.text.as_deref(), Some("hello"));
        assert_eq!(w.bytes, None);
        let w = wire(&line(b"\xff\xfe"));
        assert_eq!(w.text, None);
        assert_eq!(w.bytes.as_deref(), Some("//4="));
        assert_eq!(
            serde_json::to_string(&StreamEvent::Line(wire(&line(b"hi")))).unwrap(),
            r#"{"line":{"seq":7,"time_ms":1700000000123,"name":"web.1","color":0,"text":"hi"}}"#
        );
    }

    #[test]
    fn attach_input_decodes() {
        assert_eq!(
            decode(br#"{"input":"aGkK"}"#).unwrap(),
            Some(Input::Bytes(b"hi\n".to_vec()))
        );
        assert_eq!(
            decode(br#"{"resize":{"rows":2,"cols":3}}"#).unwrap(),
            Some(Input::Resize { rows: 2, cols: 3 })
        );
        assert_eq!(
            decode(br#"{"signal":"INT"}"#).unwrap(),
            Some(Input::Interrupt)
        );
        assert_eq!(decode(b"").unwrap(), None);
        assert!(decode(br#"{"signal":"KILL"}"#).is_err());
        assert!(decode(br#"{"input":"***"}"#).is_err());
        assert!(decode(b"nonsense").is_err());
    }
}
