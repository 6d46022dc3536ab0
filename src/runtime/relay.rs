//! One relay task per process output: reads the pipe (or pty), frames lines
//! and hands formatted buffers to the output writer.
//!
//! The relay is where a run's lines are framed, so it also feeds them to the
//! run's `log` readiness check ([`LogWatch`], which reports its verdict as
//! any check does). A relay never decides anything about its process. It answers a drain
//! request (the process was reaped: read what is left, flush the partial line)
//! and says when its output has ended, each as a [`RelayEvent`] on a channel
//! of its own, so `system` lines about the process come after the process's
//! own last line.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use crate::health::LogWatch;
use crate::output::{Clock, Framer, OutputTx};
use crate::process::OutputPipe;

/// A partial line (a prompt, a progress bar) is printed after this long.
pub const PARTIAL_WAIT: Duration = Duration::from_millis(500);

/// What a relay tells the runtime, keyed by the pid whose output it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEvent {
    /// Everything the process wrote before it was reaped has been sent.
    Drained(i32),
    /// The output reached its end (every writer closed it).
    Closed(i32),
}

thread_local! {
    /// One read buffer for every relay: the runtime has one thread and a relay
    /// holds the buffer only between two awaits, so 50 idle children cost no
    /// 64 KiB each.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 64 * 1024]);
}

enum Read {
    /// Bytes came; `newline` says whether they ended a line (so a partial
    /// line left pending now is a new one), `emptied` whether they were all
    /// the pipe held.
    Data {
        newline: bool,
        emptied: bool,
    },
    WouldBlock,
    End,
}

/// The framing side of a relay: the framer, its clock, and the `log`
/// readiness watch of the run (until it matched), fed the same bytes.
struct Lines {
    framer: Framer,
    clock: Clock,
    log: Option<LogWatch>,
}

impl Lines {
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.framer.push(data, &mut self.clock, out);
        if let Some(log) = &mut self.log
            && log.feed(data)
        {
            self.log = None;
        }
    }

    fn flush_partial(&mut self, out: &mut Vec<u8>) {
        if self.framer.has_partial()
            && let Some(log) = &mut self.log
            && log.flush()
        {
            self.log = None;
        }
        self.framer.flush_partial(&mut self.clock, out);
    }
}

/// Reads once into the shared buffer and frames what came into `out`.
fn read_once(pipe: &OutputPipe, lines: &mut Lines, out: &mut Vec<u8>) -> Read {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        match pipe.read(&mut buf) {
            Ok(0) => Read::End,
            Ok(n) => {
                pipe.read_some(n, buf.len());
                let data = &buf[..n];
                lines.push(data, out);
                Read::Data {
                    newline: memchr::memchr(b'\n', data).is_some(),
                    emptied: pipe.emptied_by(n, buf.len()),
                }
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock => Read::WouldBlock,
                io::ErrorKind::Interrupted => Read::Data {
                    newline: false,
                    emptied: false,
                },
                // EIO is how a pty says that its last writer is gone.
                _ => Read::End,
            },
        }
    })
}

/// Relays the output of the run `pid`; `log` is its `log` readiness watch.
pub async fn relay(
    pid: i32,
    fd: OwnedFd,
    framer: Framer,
    log: Option<LogWatch>,
    out: OutputTx,
    mut drain: UnboundedReceiver<()>,
    events: UnboundedSender<RelayEvent>,
) {
    let mut lines = Lines {
        framer,
        clock: Clock::default(),
        log,
    };
    let pipe = match OutputPipe::register(fd) {
        Ok(pipe) => pipe,
        Err(_) => {
            let _ = events.send(RelayEvent::Closed(pid));
            return;
        }
    };
    let mut drain_open = true;
    let mut partial_since: Option<Instant> = None;
    loop {
        // Taken once there is something to read, not held while waiting:
        // 50 quiet instances would otherwise each keep a written buffer.
        let mut buf = Vec::new();
        let mut ended = false;
        let mut drained = false;
        let mut new_line = false;
        tokio::select! {
            biased;
            request = drain.recv(), if drain_open => {
                match request {
                    Some(()) => {
                        buf = out.buffer();
                        // The process is gone: what it wrote is already in the
                        // pipe, so read until the pipe is empty, then flush.
                        loop {
                            match read_once(&pipe, &mut lines, &mut buf) {
                                Read::Data { .. } => continue,
                                Read::WouldBlock => break,
                                Read::End => { ended = true; break }
                            }
                        }
                        lines.flush_partial(&mut buf);
                        drained = true;
                    }
                    None => drain_open = false,
                }
            }
            ready = pipe.readable() => {
                match ready {
                    Ok(mut guard) => {
                        buf = out.buffer();
                        match read_once(&pipe, &mut lines, &mut buf) {
                            Read::Data { newline, emptied } => {
                                new_line = newline;
                                if emptied {
                                    guard.clear_ready();
                                }
                            }
                            Read::WouldBlock => guard.clear_ready(),
                            Read::End => ended = true,
                        }
                    }
                    Err(_) => ended = true,
                }
            }
            _ = tokio::time::sleep_until(partial_since.unwrap_or_else(Instant::now) + PARTIAL_WAIT),
                if partial_since.is_some() => {
                // The wait may have been spent blocked on a slow stdout while
                // the rest of the line sat in the pipe, unseen by the reactor:
                // look before declaring the line partial.
                buf = out.buffer();
                match read_once(&pipe, &mut lines, &mut buf) {
                    Read::Data { newline, .. } => new_line = newline,
                    Read::WouldBlock => lines.flush_partial(&mut buf),
                    Read::End => ended = true,
                }
            }
        }
        if ended {
            lines.flush_partial(&mut buf);
        }
        // The wait counts from when the pending partial line began: a line
        // completed by this read leaves a new partial with a new wait.
        partial_since = match (lines.framer.has_partial(), partial_since) {
            (false, _) => None,
            (true, None) => Some(Instant::now()),
            (true, Some(_)) if new_line => Some(Instant::now()),
            (true, since) => since,
        };
        if !buf.is_empty() {
            let sending = Instant::now();
            out.send(buf).await;
            // While the send waited for a slow stdout, the child was held
            // up by its full pipe, not late with its line: its wait starts
            // again once pm can read it.
            if partial_since.is_some() && sending.elapsed() >= PARTIAL_WAIT / 10 {
                partial_since = Some(Instant::now());
            }
        } else {
            out.give_back(buf);
        }
        if drained {
            let _ = events.send(RelayEvent::Drained(pid));
        }
        if ended {
            let _ = events.send(RelayEvent::Closed(pid));
            return;
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    use super::*;

    /// A relay waiting for its process's next line holds no buffer: the
    /// one its last line was written from (directly, to a pipe with room)
    /// is back in the pool, where the writer releases it once idle, instead
    /// of kept by the relay for as long as the process stays quiet.
    #[tokio::test]
    async fn a_waiting_relay_holds_no_buffer() {
        let (mut stdout_read, stdout_write) = std::io::pipe().unwrap();
        let direct_fd = stdout_write.as_raw_fd();
        let (out, writer) = crate::output::spawn_writer(stdout_write, Box::new(|_| {})).unwrap();
        out.write_directly_to(direct_fd);

        let (child_read, mut child_write) = std::io::pipe().unwrap();
        let child_read = OwnedFd::from(child_read);
        nix::fcntl::fcntl(
            &child_read,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        let (_drain_tx, drain_rx) = tokio::sync::mpsc::unbounded_channel();
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        let relaying = tokio::spawn(relay(
            1,
            child_read,
            Framer::new("w.1", 3, None, false),
            None,
            out.clone(),
            drain_rx,
            events_tx,
        ));

        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 256];
                while let Ok(n @ 1..) = stdout_read.read(&mut chunk) {
                    seen.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            })
        };
        for line in ["one", "two", "three"] {
            writeln!(child_write, "{line}").unwrap();
            // Printed, and the relay back to waiting: the buffer is pooled.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !seen.lock().unwrap().contains(line) || out.pooled() != 1 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "after {line:?}: {} buffers pooled, output {:?}",
                    out.pooled(),
                    seen.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }

        drop(child_write);
        relaying.await.unwrap();
        assert!(matches!(
            events_rx.recv().await,
            Some(RelayEvent::Closed(1))
        ));
        drop(out);
        writer.finish();
        reader.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), "w.1 | one\nw.1 | two\nw.1 | three\n");
    }
}
