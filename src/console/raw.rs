//! The client's terminal in raw mode for the length of an attach, and back
//! as it was afterwards, however the attach ends (the guard restores it
//! when dropped; the session drops it before exiting on a signal too).

use std::os::fd::BorrowedFd;

use nix::sys::termios::{self, OutputFlags, SetArg, Termios};

/// Restores the terminal's settings when dropped.
pub struct Raw<'fd> {
    fd: BorrowedFd<'fd>,
    saved: Termios,
}

impl<'fd> Raw<'fd> {
    /// Puts the terminal on `fd` in raw mode: every key is read as it is
    /// typed, nothing is echoed, no key makes a signal. With `keep_newlines`
    /// (a pipe type, whose output is plain lines) a `\n` written still moves
    /// to the start of the next line.
    pub fn enter(fd: BorrowedFd<'fd>, keep_newlines: bool) -> nix::Result<Raw<'fd>> {
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if keep_newlines {
            raw.output_flags |= OutputFlags::OPOST | OutputFlags::ONLCR;
        }
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(Raw { fd, saved })
    }
}

impl Drop for Raw<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}
