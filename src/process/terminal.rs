//! An instance's input as the runtime writes it (the master of its pty, or
//! the write end of its stdin pipe), and terminal window sizes: the ioctls
//! that have no safe wrapper.
//!
//! Registering a descriptor is `unsafe` in tokio because the registration
//! must keep naming the same open file; [`InputPipe`] owns the descriptor
//! and never hands it out, so that holds.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Where an instance's input is written, registered for writability.
#[derive(Debug)]
pub struct InputPipe(AsyncFd<OwnedFd>);

impl InputPipe {
    /// Makes `fd` non-blocking and registers it with the current tokio
    /// runtime.
    pub fn register(fd: OwnedFd) -> io::Result<InputPipe> {
        let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        // SAFETY: the AsyncFd owns the OwnedFd, and this type never hands
        // it out, so the descriptor stays open and names the same file for
        // as long as it is registered.
        let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::WRITABLE) };
        Ok(InputPipe(registered?))
    }

    /// Writes all of `bytes`, waiting (without blocking the thread) while
    /// the pipe or terminal is full.
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut guard = self.0.writable().await?;
            let written =
                guard.try_io(|fd| nix::unistd::write(fd.get_ref(), bytes).map_err(io::Error::from));
            match written {
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                // Full after all: wait for room again.
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Sets the window size of the terminal this is the master of; the
    /// kernel sends SIGWINCH to its foreground process group.
    pub fn set_window_size(&self, rows: u16, cols: u16) -> io::Result<()> {
        set_window_size(self.0.get_ref().as_fd(), rows, cols)
    }
}

/// The window size of the terminal `fd` is on, as (rows, columns); None
/// when it is not a terminal or has no size.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the pointer, which points
    // to a live, properly sized value; `fd` is open for the call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut libc::winsize,
        )
    };
    (rc == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Sets the window size of the terminal `fd` is on (or is the master of).
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which points
    // to a live, properly sized value; `fd` is open for the call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_window_size_set_on_the_master_is_seen_on_the_slave() {
        let pty = nix::pty::openpty(None, None).unwrap();
        set_window_size(pty.master.as_fd(), 33, 101).unwrap();
        assert_eq!(window_size(pty.slave.as_fd()), Some((33, 101)));
        let (reader, _writer) = std::io::pipe().unwrap();
        assert_eq!(window_size(reader.as_fd()), None);
    }

    #[tokio::test]
    async fn writes_wait_for_room_in_a_full_pipe() {
        use std::io::Read;
        let (mut reader, writer) = std::io::pipe().unwrap();
        let pipe = InputPipe::register(OwnedFd::from(writer)).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let reading = std::thread::spawn(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        });
        tokio::time::timeout(std::time::Duration::from_secs(10), pipe.write_all(&data))
            .await
            .unwrap()
            .unwrap();
        drop(pipe);
        assert_eq!(reading.join().unwrap(), expected);
    }
}
