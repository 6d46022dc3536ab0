//! A raw file-descriptor writer for stdout.
//!
//! std's `Stdout` is line-buffered behind a lock; pm's writer thread already
//! batches whole lines, so it wants straight `write`/`writev` calls on fd 1,
//! and must never close fd 1.

use std::io::{self, IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};

/// The most buffers one `writev` accepts (`IOV_MAX` is 1024 on Linux and
/// macOS); more make it fail with `EINVAL`.
pub(super) const IOV_MAX: usize = 1024;

/// Writes straight to a file descriptor it does not own (and so never
/// closes), with no buffering of its own.
///
/// If the descriptor is non-blocking (a terminal shared with a program that
/// set `O_NONBLOCK`), a full descriptor is waited for with `poll` instead of
/// failing: the writer runs on its own thread, where waiting is fine.
#[derive(Debug, Clone, Copy)]
pub struct FdSink<'fd> {
    fd: BorrowedFd<'fd>,
}

/// A sink on pm's own stdout (fd 1).
pub fn stdout_sink() -> FdSink<'static> {
    // SAFETY: fd 1 is never closed by pm; when pm was started with it closed,
    // writes fail with EBADF, which the writer treats like a broken pipe.
    FdSink::new(unsafe { BorrowedFd::borrow_raw(libc::STDOUT_FILENO) })
}

impl<'fd> FdSink<'fd> {
    /// A sink writing to `fd`.
    pub fn new(fd: BorrowedFd<'fd>) -> Self {
        FdSink { fd }
    }

    /// Runs one write call, retrying on EINTR and waiting out EAGAIN.
    fn retry(&self, mut call: impl FnMut() -> isize) -> io::Result<usize> {
        loop {
            let written = call();
            if let Ok(written) = usize::try_from(written) {
                return Ok(written);
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => self.wait_writable()?,
                _ => return Err(error),
            }
        }
    }

    fn wait_writable(&self) -> io::Result<()> {
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd, count 1; no timeout.
            let ready = unsafe { libc::poll(&mut pollfd, 1, -1) };
            if ready >= 0 {
                // Errors and hang-ups show in the next write's result.
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

impl Write for FdSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        // Writes above isize::MAX are undefined for write(2); a short write
        // is allowed anyway.
        let len = buf.len().min(isize::MAX as usize);
        // SAFETY: `buf` is valid for reads of `len` bytes during the call.
        self.retry(|| unsafe { libc::write(fd, buf.as_ptr().cast(), len) })
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        let count = bufs.len().min(IOV_MAX);
        // `count` is at most 1024, so it fits a c_int.
        let count = libc::c_int::try_from(count).unwrap_or(0);
        // SAFETY: IoSlice is guaranteed ABI-compatible with `struct iovec` on
        // Unix, and the first `count` slices are valid for the call.
        self.retry(|| unsafe { libc::writev(fd, bufs.as_ptr().cast(), count) })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    #[test]
    fn writes_vectored_to_a_pipe() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let mut sink = FdSink::new(writer.as_fd());
        let parts: [&[u8]; 3] = [b"one ", b"two ", b"three\n"];
        let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let written = sink.write_vectored(&slices).unwrap();
        assert_eq!(written, 14);
        sink.write_all(b"four\n").unwrap();
        drop(writer);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "one two three\nfour\n");
    }

    #[test]
    fn waits_out_a_full_non_blocking_pipe() {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let (mut reader, writer) = std::io::pipe().unwrap();
        fcntl(&writer, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let thread = std::thread::spawn(move || {
            let mut sink = FdSink::new(writer.as_fd());
            sink.write_all(&data).unwrap();
        });
        // Let the writer fill the pipe and hit EAGAIN before reading.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        thread.join().unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_closed_reader_is_a_broken_pipe() {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut sink = FdSink::new(writer.as_fd());
        // Rust's runtime ignores SIGPIPE, so the write fails instead.
        let error = sink.write_all(b"x\n").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
