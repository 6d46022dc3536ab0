//! A raw file-descriptor writer for stdout, and a tee that copies it.
//!
//! std's `Stdout` is line-buffered behind a lock; pm's writer thread already
//! batches whole lines, so it wants straight `write`/`writev` calls on fd 1,
//! and must never close fd 1.

use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// The most buffers one `writev` accepts (`IOV_MAX` is 1024 on Linux and
/// macOS); more make it fail with `EINVAL`.
pub(super) const IOV_MAX: usize = 1024;

/// One `pwritev2(fd, bufs, -1, RWF_NOWAIT)`: what fits without waiting
/// (`EAGAIN` when nothing does; `EOPNOTSUPP` where the descriptor cannot
/// write without waiting, as a file or a terminal).
#[cfg(target_os = "linux")]
pub(super) fn write_nowait(fd: std::os::fd::RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    loop {
        // SAFETY: IoSlice is ABI-compatible with iovec; the kernel only
        // reads the `bufs.len()` buffers, which live for the call.
        let written = unsafe {
            libc::pwritev2(
                fd,
                bufs.as_ptr().cast(),
                bufs.len().min(IOV_MAX) as libc::c_int,
                -1,
                libc::RWF_NOWAIT,
            )
        };
        if written >= 0 {
            return Ok(written as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// No write that never waits here: senders leave every write to the thread.
#[cfg(not(target_os = "linux"))]
pub(super) fn write_nowait(_fd: std::os::fd::RawFd, _bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// Writes straight to the file descriptor of `F`, with no buffering of its
/// own. `F` is what lends the descriptor (a `BorrowedFd`, std's `Stdout`),
/// so the sink closes nothing that `F` would not.
///
/// If the descriptor is non-blocking (a terminal shared with a program that
/// set `O_NONBLOCK`), a full descriptor is waited for with `poll` instead of
/// failing: the writer runs on its own thread, where waiting is fine.
#[derive(Debug, Clone, Copy)]
pub struct FdSink<F> {
    fd: F,
}

/// A sink on pm's own stdout (fd 1).
///
/// std's handle only lends its descriptor: nothing is written through it,
/// so its line buffer stays empty.
pub fn stdout_sink() -> FdSink<io::Stdout> {
    FdSink::new(io::stdout())
}

impl<F: AsFd> FdSink<F> {
    /// A sink writing to `fd`'s descriptor.
    pub fn new(fd: F) -> Self {
        FdSink { fd }
    }

    /// Runs one write call, retrying on EINTR and waiting out EAGAIN.
    fn retry(
        &self,
        mut call: impl FnMut(BorrowedFd<'_>) -> nix::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            match call(self.fd.as_fd()) {
                Ok(written) => return Ok(written),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => self.wait_writable()?,
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn wait_writable(&self) -> io::Result<()> {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
        loop {
            match poll(&mut fds, PollTimeout::NONE) {
                // Errors and hang-ups show in the next write's result.
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
}

impl<F: AsFd> Write for FdSink<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.retry(|fd| nix::unistd::write(fd, buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let bufs = &bufs[..bufs.len().min(IOV_MAX)];
        self.retry(|fd| nix::sys::uio::writev(fd, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes to `main`, and a copy of what `main` took to `copy` for as long
/// as `copy` takes it (its first error drops it, and never fails a write):
/// a background `pm start --detach` shows the foreground pm its output
/// until it is up, after which the foreground pm has gone.
#[derive(Debug)]
pub struct Tee<A, B> {
    main: A,
    copy: Option<B>,
}

impl<A: Write, B: Write> Tee<A, B> {
    pub fn new(main: A, copy: Option<B>) -> Self {
        Tee { main, copy }
    }

    fn copy(&mut self, bufs: &[IoSlice<'_>], mut written: usize) {
        let Some(copy) = self.copy.as_mut() else {
            return;
        };
        for buf in bufs {
            if written == 0 {
                break;
            }
            let part = &buf[..buf.len().min(written)];
            written -= part.len();
            if copy.write_all(part).is_err() {
                self.copy = None;
                return;
            }
        }
    }
}

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.main.write(buf)?;
        self.copy(&[IoSlice::new(buf)], n);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.main.write_vectored(bufs)?;
        self.copy(bufs, n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.main.flush()
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
        use std::sync::mpsc::{RecvTimeoutError, channel};
        use std::time::Duration;

        let (mut reader, writer) = std::io::pipe().unwrap();
        fcntl(&writer, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        // Fill the pipe until a write would block: large writes first, then
        // single bytes, so no room is left at all.
        let mut expected = Vec::new();
        for chunk in [&[b'f'; 4096][..], &[b'F'][..]] {
            loop {
                match nix::unistd::write(&writer, chunk) {
                    Ok(n) => expected.extend_from_slice(&chunk[..n]),
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("filling the pipe: {e}"),
                }
            }
        }
        assert!(!expected.is_empty());
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        expected.extend_from_slice(&data);

        let (started_tx, started) = channel();
        let (done_tx, done) = channel();
        let thread = std::thread::spawn(move || {
            let mut sink = FdSink::new(writer.as_fd());
            started_tx.send(()).unwrap();
            let result = sink.write_all(&data).map_err(|e| e.kind());
            // Closing the write end ends the reader's read_to_end.
            drop(writer);
            done_tx.send(result).unwrap();
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        // Nobody reads, so the write can neither complete nor give up with
        // EAGAIN: it must still be waiting when this window closes. (Without
        // the poll, the first write's EAGAIN would arrive at once.)
        assert_eq!(
            done.recv_timeout(Duration::from_millis(200)),
            Err(RecvTimeoutError::Timeout),
            "the write ended while the pipe was full"
        );

        let (got_tx, got) = channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let result = reader.read_to_end(&mut bytes).map(|_| bytes);
            got_tx.send(result.map_err(|e| e.kind())).unwrap();
        });
        let deadline = Duration::from_secs(10);
        assert_eq!(done.recv_timeout(deadline).unwrap(), Ok(()));
        let bytes = got.recv_timeout(deadline).unwrap().unwrap();
        assert_eq!(bytes.len(), expected.len());
        assert!(bytes == expected, "the bytes arrived changed");
        thread.join().unwrap();
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

    #[test]
    fn a_tee_copies_what_the_main_sink_took_until_the_copy_fails() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut tee = Tee::new(Vec::new(), Some(Vec::new()));
        let n = tee
            .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"c\n")])
            .unwrap();
        assert_eq!(n, 4);
        assert_eq!(tee.main, b"abc\n");
        assert_eq!(tee.copy.as_deref(), Some(&b"abc\n"[..]));
        let mut tee = Tee::new(Vec::new(), Some(Full));
        tee.write_all(b"x\n").unwrap();
        assert!(tee.copy.is_none(), "a failing copy is dropped");
        tee.write_all(b"y\n").unwrap();
        assert_eq!(tee.main, b"x\ny\n");
    }
}
