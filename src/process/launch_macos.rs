//! Starting a child on macOS: std's `Command`, with a `pre_exec` for what
//! the child does before exec (see [`super::spawn::Launch`]).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::spawn::{Launch, child_setup};

/// A started child: std's `Command` has waited for its exec already.
pub struct Pending {
    pid: i32,
}

impl Pending {
    /// The child's pid.
    pub fn finish(self) -> io::Result<i32> {
        Ok(self.pid)
    }
}

/// A child std's `Command` has started already.
pub struct Prepared {
    pid: i32,
}

impl Prepared {
    /// The child, which runs.
    pub fn start(self) -> io::Result<Pending> {
        Ok(Pending { pid: self.pid })
    }
}

/// Starts `launch`'s child; std waits for its exec, so there is nothing to
/// fork later and nothing left pending.
pub fn prepare(launch: &Launch<'_>) -> io::Result<Prepared> {
    Ok(Prepared {
        pid: self::launch(launch)?,
    })
}

/// Starts `launch`'s child and returns its pid once it has exec'd.
pub fn launch(launch: &Launch<'_>) -> io::Result<i32> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(launch.command).current_dir(launch.cwd);
    for (key, value) in launch.env {
        cmd.env(key, value);
    }
    cmd.stdin(stdio(launch.stdin)?)
        .stdout(stdio(launch.stdout)?)
        .stderr(stdio(launch.stderr)?);
    let (contain, parent, terminal) = (launch.contain, launch.parent, launch.terminal);
    if !terminal {
        cmd.process_group(0);
    }
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (setsid, ioctl, write, getpid, getppid);
    // it allocates nothing but the error of a pm that is gone.
    unsafe {
        cmd.pre_exec(move || {
            if terminal {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                // Make the pty (stdout) the controlling terminal so the
                // child sees a real terminal (job control, colors, line
                // buffering).
                if libc::ioctl(1, libc::TIOCSCTTY as _, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            contain.enter();
            child_setup(parent)
        });
    }
    let child = cmd.spawn()?;
    Ok(child.id() as i32)
}

/// A close-on-exec copy of `fd` for std to place on the child's stdio.
fn stdio(fd: BorrowedFd<'_>) -> io::Result<Stdio> {
    let owned: OwnedFd = fd.try_clone_to_owned()?;
    Ok(Stdio::from(owned))
}
