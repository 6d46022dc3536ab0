//! The client side of `pm attach`: the terminal it runs in becomes one
//! instance's console. Its recent lines and then its live output are shown,
//! and the keys typed go to its input, with the terminal in raw mode
//! (`raw`) and the keys read through the key table (`keys`).
//!
//! It owns the client's terminal for the length of an attach and must
//! always give it back as it was: on a detach, on the instance's exit, on
//! an error, and on SIGTERM, SIGHUP or SIGINT sent to the client.

mod keys;
mod raw;

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::logs::text;
use crate::control::client;
use crate::control::protocol::{
    AttachInput, DEFAULT_ATTACH_LINES, Reply, StreamCommand, StreamEvent, StreamStart,
};
use crate::error::{Error, Result};
use keys::{Action, Keys};

/// How an attach ended.
enum Ending {
    /// Ctrl-]: exit 0.
    Detached,
    /// The instance's run ended, or pm did: exit 1, with pm's word for it.
    Over(String),
    /// A signal to the client: exit 128 + its number.
    Signalled(i32),
}

/// Attaches this terminal to `target` on the pm listening on `socket`.
pub fn attach(socket: &Path, target: &str) -> Result<i32> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::Invalid(
            "pm attach needs a terminal: its stdin is not one".into(),
        ));
    }
    let opened = client::open(
        socket,
        StreamCommand::Attach {
            target: target.to_string(),
            lines: DEFAULT_ATTACH_LINES,
        },
    )?;
    let start = opened.start.clone();
    let name = start.name.clone().unwrap_or_else(|| target.to_string());
    // What the reader already holds past the start line: the first events.
    let early = opened.reader.buffer().to_vec();
    let stream = opened.reader.into_inner();
    drop(opened.writer);
    stream
        .set_nonblocking(true)
        .map_err(|e| Error::os("the control socket", e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::os("cannot start the runtime", e))?;
    let fd = stdin.as_fd();
    let how = if start.pty { "a terminal" } else { "pipes" };
    eprint!("pm: attached to {name} (on {how}); Ctrl-] detaches\r\n");
    let raw = raw::Raw::enter(fd, !start.pty)
        .map_err(|e| Error::os("cannot put the terminal in raw mode", e.into()))?;
    let ending = runtime.block_on(session(stream, early, &start));
    drop(raw);
    // The thread reading stdin may still be blocked in a read: it goes with
    // the process, so do not wait for the runtime's threads.
    runtime.shutdown_background();
    match ending? {
        Ending::Detached => {
            eprintln!("pm: detached from {name}");
            Ok(0)
        }
        Ending::Over(message) => {
            eprintln!("pm: {message}");
            Ok(1)
        }
        Ending::Signalled(number) => Ok(128 + number),
    }
}

/// Relays between the terminal and the stream until the attach ends.
async fn session(
    stream: std::os::unix::net::UnixStream,
    early: Vec<u8>,
    start: &StreamStart,
) -> Result<Ending> {
    let stream =
        tokio::net::UnixStream::from_std(stream).map_err(|e| Error::os("the control socket", e))?;
    let (mut reader, mut writer) = stream.into_split();
    let signal_error = |e| Error::os("cannot install signal handlers", e);
    let mut winch = signal(SignalKind::window_change()).map_err(signal_error)?;
    let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut hup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let keyboard = read_keys();
    let mut keyboard = keyboard;
    let mut keys = Keys::new(start.pty);
    let mut screen = Screen::new(start.pty);
    if start.pty {
        send(&mut writer, &resize()).await?;
    }
    let mut pending = early;
    let mut chunk = Vec::with_capacity(64 * 1024);
    loop {
        // Every complete line the stream has brought, in order.
        while let Some(at) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            if let Ok(event) = serde_json::from_slice::<StreamEvent>(line) {
                match event {
                    StreamEvent::Line(wire) => screen.line(&text(&wire), keys.pending()),
                    StreamEvent::Output(data) => {
                        screen.output(&BASE64.decode(data).unwrap_or_default(), keys.pending())
                    }
                    StreamEvent::End(end) => {
                        let message = if end.message.is_empty() {
                            match end.reason.as_str() {
                                "dropped" => "pm dropped this attach: it fell behind".to_string(),
                                _ => "pm exited".to_string(),
                            }
                        } else {
                            end.message
                        };
                        screen.finish();
                        return Ok(Ending::Over(message));
                    }
                }
            } else if let Ok(reply) = serde_json::from_slice::<Reply>(line) {
                screen.finish();
                return Ok(Ending::Over(reply.error.unwrap_or_default()));
            }
        }
        tokio::select! {
            read = reader.read_buf(&mut chunk) => {
                match read {
                    Ok(n) if n > 0 => {
                        pending.extend_from_slice(&chunk);
                        chunk.clear();
                    }
                    _ => {
                        screen.finish();
                        return Ok(Ending::Over("pm exited".into()));
                    }
                }
            }
            typed = keyboard.recv() => {
                let Some(typed) = typed else {
                    // The terminal is gone.
                    return Ok(Ending::Detached);
                };
                for action in keys.feed(&typed) {
                    match action {
                        Action::Send(bytes) => {
                            send(&mut writer, &AttachInput::Input(BASE64.encode(bytes))).await?;
                        }
                        Action::Echo(bytes) => screen.echo(&bytes, keys.pending()),
                        Action::Interrupt => {
                            send(&mut writer, &AttachInput::Signal("INT".into())).await?;
                        }
                        Action::Detach => return Ok(Ending::Detached),
                    }
                }
            }
            _ = winch.recv() => {
                if start.pty {
                    send(&mut writer, &resize()).await?;
                }
            }
            _ = term.recv() => return Ok(Ending::Signalled(libc::SIGTERM)),
            _ = hup.recv() => return Ok(Ending::Signalled(libc::SIGHUP)),
            _ = int.recv() => return Ok(Ending::Signalled(libc::SIGINT)),
        }
    }
}

/// The client's window size as a resize request.
fn resize() -> AttachInput {
    let (rows, cols) = crate::process::window_size(std::io::stdin().as_fd()).unwrap_or((24, 80));
    AttachInput::Resize { rows, cols }
}

async fn send(writer: &mut tokio::net::unix::OwnedWriteHalf, input: &AttachInput) -> Result<()> {
    let mut line = serde_json::to_vec(input).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    // pm gone: the read side will say so.
    let _ = writer.write_all(&line).await;
    Ok(())
}

/// Reads the keyboard on a thread of its own (a blocking read of the
/// terminal, which stays as it is for the shell afterwards: no
/// non-blocking flag is set on it).
fn read_keys() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    let spawned = std::thread::Builder::new()
        .name("pm-keys".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    if spawned.is_err() {
        // No keyboard: the receiver ends at once and the attach with it.
        let (_, rx) = mpsc::channel(1);
        return rx;
    }
    rx
}

/// The client's terminal: what the instance writes, and on a pipe type the
/// line being typed, drawn again after output came in between.
struct Screen {
    pty: bool,
    out: std::io::Stdout,
    /// How many characters of the typed line are on the screen after the
    /// last output.
    echoed: usize,
}

impl Screen {
    fn new(pty: bool) -> Screen {
        Screen {
            pty,
            out: std::io::stdout(),
            echoed: 0,
        }
    }

    /// A recent line from the scrollback.
    fn line(&mut self, text: &[u8], typed: &[u8]) {
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let mut bytes = text.to_vec();
        bytes.extend_from_slice(if self.pty { b"\r\n" } else { b"\n" });
        self.output(&bytes, typed);
    }

    /// Output of the instance, as it wrote it.
    fn output(&mut self, bytes: &[u8], typed: &[u8]) {
        let mut out = Vec::with_capacity(bytes.len() + 16);
        if !self.pty && self.echoed > 0 {
            // Take the typed line off, write the output, then put it back.
            out.extend_from_slice(format!("\x1b[{}D\x1b[K", self.echoed).as_bytes());
        }
        out.extend_from_slice(bytes);
        if !self.pty && !typed.is_empty() {
            out.extend_from_slice(typed);
        }
        self.echoed = if self.pty { 0 } else { chars(typed) };
        self.write(&out);
    }

    /// The local echo of a pipe type's line; `typed` is the line after it.
    fn echo(&mut self, bytes: &[u8], typed: &[u8]) {
        self.write(bytes);
        self.echoed = chars(typed);
    }

    /// Leaves the cursor at the start of a fresh line for pm's last words.
    fn finish(&mut self) {
        self.write(b"\r\n");
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut out = self.out.lock();
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    }
}

/// Characters (not bytes) in `bytes`, counting a tab as one.
fn chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}
