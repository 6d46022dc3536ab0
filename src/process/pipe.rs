//! A child's output as the runtime reads it: the read end of its pipe (or
//! pty), registered with tokio's reactor, read without blocking.
//!
//! Registering a descriptor is `unsafe` in tokio because the registration
//! must keep naming the same open file; [`OutputPipe`] owns the descriptor
//! and never hands out a way to replace or close it, so that holds.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;

use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// The read end of a child's output, owned and registered for readability.
#[derive(Debug)]
pub struct OutputPipe {
    fd: AsyncFd<OwnedFd>,
    /// A pipe, not a pty: a read takes everything it holds, up to what was
    /// asked for.
    fifo: bool,
}

impl OutputPipe {
    /// Registers `fd` (non-blocking) with the current tokio runtime.
    pub fn register(fd: OwnedFd) -> io::Result<OutputPipe> {
        let file = File::from(fd);
        let fifo = file.metadata().is_ok_and(|m| m.file_type().is_fifo());
        let fd = OwnedFd::from(file);
        // SAFETY: the AsyncFd owns the OwnedFd, and this type exposes it only
        // by shared reference, so the descriptor stays open and names the
        // same pipe (or pty) for as long as it is registered.
        let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
        Ok(OutputPipe {
            fd: registered?,
            fifo,
        })
    }

    /// Waits until the reactor reports the pipe readable. The guard's
    /// `clear_ready` says a read found it empty after all.
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, OwnedFd>> {
        self.fd.readable().await
    }

    /// One `read` into `buf`: `Ok(0)` at the end of the output, `WouldBlock`
    /// when nothing is there yet.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(self.fd.get_ref(), buf).map_err(io::Error::from)
    }

    /// Whether a read that got `got` of the `asked` bytes left nothing
    /// behind, so the next one would only say `WouldBlock`: true of a pipe
    /// given less than it asked for. (A pty hands out a chunk at a time, so
    /// a short read says nothing there.) The reactor hears of every write
    /// that comes after, so its readiness may be cleared at once: one
    /// `read` per chunk instead of two.
    pub fn emptied_by(&self, got: usize, asked: usize) -> bool {
        self.fifo && got < asked
    }
}
