//! `pm start --detach`: the fork that puts pm in the background, and the
//! pipes through which the background pm tells the foreground one that it
//! is up.
//!
//! It forks before anything else does (before the guardian, the output
//! thread and the tokio runtime), while pm has a single thread: the
//! background pm then starts its guardian and runtime as `pm start` always
//! does, so the guardian watches the pm that supervises, and every child's
//! PR_SET_PDEATHSIG follows the thread that supervises.
//!
//! The background pm gets a session of its own (no controlling terminal),
//! /dev/null as stdin, and the log (`--log FILE`, else /dev/null) as
//! stdout. Until it is up, its stderr and a copy of its output go through a
//! pipe to the foreground pm, which keeps them: when the background pm ends
//! before being up (a failed release, an error), the foreground one prints
//! them on its stderr and exits with its code. Being up is one byte on a
//! second pipe ([`Announcer::up`]); nothing polls the socket.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// Which side of the fork this is.
#[derive(Debug)]
pub enum Detached {
    /// The foreground pm: wait for the background one's word.
    Foreground(Starter),
    /// The background pm: supervise, and say when it is up.
    Background(Announcer),
}

/// The foreground pm's side.
#[derive(Debug)]
pub struct Starter {
    child: Pid,
    status: File,
    output: File,
}

/// The background pm's side.
#[derive(Debug)]
pub struct Announcer {
    status: File,
    /// Where stderr goes once pm is up: the log, or /dev/null.
    log: File,
    /// The foreground pm's copy of the output, until it is up.
    output: Option<File>,
}

/// The byte that says "up".
const UP: u8 = b'U';

/// Forks the background pm. Must be called while pm has a single thread.
/// `log` is the file (opened for appending) that its output goes to.
pub fn detach(log: Option<File>) -> io::Result<Detached> {
    let log = match log {
        Some(file) => file,
        None => File::options().write(true).open("/dev/null")?,
    };
    let null = File::open("/dev/null")?;
    let (status_read, status_write) = pipe()?;
    let (output_read, output_write) = pipe()?;
    // SAFETY: pm is single-threaded here (no runtime, no output thread, no
    // guardian yet), so the child may run arbitrary code after fork.
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { child } => Ok(Detached::Foreground(Starter {
            child,
            status: File::from(status_read),
            output: File::from(output_read),
        })),
        ForkResult::Child => {
            drop((status_read, output_read));
            // A session of its own: no controlling terminal, and no signal
            // meant for the caller's process group (a Ctrl-C) reaches it.
            nix::unistd::setsid().map_err(io::Error::from)?;
            nix::unistd::dup2_stdin(null.as_fd()).map_err(io::Error::from)?;
            nix::unistd::dup2_stdout(log.as_fd()).map_err(io::Error::from)?;
            nix::unistd::dup2_stderr(output_write.as_fd()).map_err(io::Error::from)?;
            Ok(Detached::Background(Announcer {
                status: File::from(status_write),
                log,
                output: Some(File::from(output_write)),
            }))
        }
    }
}

/// A close-on-exec pipe on every platform (pipe2 is Linux-only).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = io::pipe()?;
    Ok((OwnedFd::from(read), OwnedFd::from(write)))
}

impl Announcer {
    /// The pipe that carries a copy of the output to the foreground pm
    /// until it is up; the output writer tees into it.
    pub fn take_output_copy(&mut self) -> Option<File> {
        self.output.take()
    }

    /// pm is up (its socket listens, its release phase is over): stderr
    /// goes to the log from now on, and the foreground pm may return 0.
    pub fn up(mut self) {
        let _ = nix::unistd::dup2_stderr(self.log.as_fd());
        // The foreground pm may be gone already (killed): nothing to tell.
        let _ = self.status.write_all(&[UP]);
    }
}

impl Starter {
    /// Waits for the background pm: 0 once it is up, or, when it ended
    /// before that, its exit code after printing what it wrote on stderr.
    pub fn wait(mut self) -> io::Result<i32> {
        let mut kept = Vec::new();
        let mut output_open = true;
        let mut buf = [0u8; 8192];
        loop {
            let mut fds = vec![PollFd::new(self.status.as_fd(), PollFlags::POLLIN)];
            if output_open {
                fds.push(PollFd::new(self.output.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            let output_ready = output_open && fds.get(1).is_some_and(ready);
            let status_ready = fds.first().is_some_and(ready);
            drop(fds);
            if output_ready {
                match self.output.read(&mut buf) {
                    Ok(0) => output_open = false,
                    Ok(n) => kept.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => output_open = false,
                }
                // Read all the output there is before looking at the status.
                continue;
            }
            if status_ready {
                let mut byte = [0u8; 1];
                match self.status.read(&mut byte) {
                    Ok(1) if byte[0] == UP => return Ok(0),
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        // Ended before being up: what it said, and its code.
        while output_open {
            match self.output.read(&mut buf) {
                Ok(0) => output_open = false,
                Ok(n) => kept.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => output_open = false,
            }
        }
        let code = loop {
            match waitpid(self.child, None) {
                Ok(WaitStatus::Exited(_, code)) => break code,
                Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut stderr = io::stderr().lock();
        let _ = stderr.write_all(&kept);
        let _ = stderr.flush();
        Ok(code)
    }
}
