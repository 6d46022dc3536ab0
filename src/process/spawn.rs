//! Spawning one instance: `/bin/sh -c COMMAND` in its own process group (or,
//! on a pseudo-terminal, its own session), stdout and stderr on one pipe so
//! their relative order survives, and stdin a pipe whose write end pm holds
//! for the instance's life (a program reading stdin waits instead of seeing
//! end-of-file; `/dev/null` only for a one-shot that must not wait on a
//! prompt). On a pty, all three are the pty.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use super::{Cgroup, Group, Guardian, platform};

/// A freshly started child: its pid, the process group it leads, the read
/// end of its output, and the write end of its stdin pipe (None on a pty,
/// whose master is `output`, and with [`Stdin::Null`]). Dropping `stdin`
/// gives the child end-of-file.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub group: Group,
    pub output: OwnedFd,
    pub stdin: Option<OwnedFd>,
}

/// What an instance reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// A pipe pm keeps open (the pty itself on a pty).
    Pipe,
    /// `/dev/null`: a one-shot such as `release` must not wait on a prompt.
    Null,
}

/// What to run and how.
pub struct SpawnSpec<'a> {
    pub command: &'a str,
    pub cwd: &'a Path,
    /// Variables set on top of pm's own environment, applied in order.
    pub env: &'a [(String, String)],
    /// Run on a pseudo-terminal instead of a pipe.
    pub pty: bool,
    pub stdin: Stdin,
    /// The instance's cgroup, which the child enters before exec.
    pub cgroup: Option<&'a Cgroup>,
    /// The guardian, to which the child records its group before exec, so
    /// a SIGKILL of pm at any moment after the fork finds it recorded.
    pub guardian: Option<&'a Guardian>,
}

/// Starts `spec.command` through `/bin/sh -c`.
///
/// Must be called from the thread that stays alive for pm's whole life (the
/// runtime's main thread): PR_SET_PDEATHSIG fires when the forking *thread* exits.
pub fn spawn(spec: &SpawnSpec<'_>) -> io::Result<Spawned> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(spec.command).current_dir(spec.cwd);
    for (key, value) in spec.env {
        cmd.env(key, value);
    }
    let mut stdin = None;

    let parent = std::process::id() as libc::pid_t;
    let contain = Contain {
        cgroup: spec.cgroup.map(Cgroup::procs_fd),
        guardian: spec.guardian.and_then(Guardian::record_fd),
    };
    let output = if spec.pty {
        let pty = nix::pty::openpty(Some(&window_size()), None).map_err(io::Error::from)?;
        cmd.stdout(Stdio::from(pty.slave.try_clone()?));
        cmd.stderr(Stdio::from(pty.slave.try_clone()?));
        match spec.stdin {
            Stdin::Pipe => cmd.stdin(Stdio::from(pty.slave)),
            Stdin::Null => cmd.stdin(Stdio::null()),
        };
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (setsid, ioctl, prctl, getppid); it
        // allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                // Make the pty the controlling terminal so the child sees a
                // real terminal (job control, colors, line buffering).
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                contain.enter();
                child_setup(parent)
            });
        }
        pty.master
    } else {
        // std's pipe is close-on-exec on every platform, so no other child
        // inherits either end.
        match spec.stdin {
            Stdin::Pipe => {
                let (read, write) = io::pipe()?;
                cmd.stdin(Stdio::from(read));
                stdin = Some(OwnedFd::from(write));
            }
            Stdin::Null => {
                cmd.stdin(Stdio::null());
            }
        }
        let (read, write) = io::pipe()?;
        cmd.stdout(Stdio::from(write.try_clone()?));
        cmd.stderr(Stdio::from(write));
        cmd.process_group(0);
        // SAFETY: as above, only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                contain.enter();
                child_setup(parent)
            });
        }
        OwnedFd::from(read)
    };

    let child = cmd.spawn()?;
    // Dropping `cmd` closes pm's copies of the write ends, so the reader sees
    // end-of-file once the child and everything it started have closed theirs.
    drop(cmd);
    set_nonblocking_cloexec(&output)?;
    let pid = child.id() as i32;
    Ok(Spawned {
        pid,
        // A new session (pty) is a new group too, led by the same process.
        group: Group::led_by(pid),
        output,
        stdin,
    })
}

/// Starts `command` through `/bin/sh -c` with no input or output, in its own
/// process group (a health check's `exec` probe). Same rules as [`spawn`].
/// Returns its pid and its group.
pub fn spawn_quiet(
    command: &str,
    cwd: &Path,
    env: &[(String, String)],
) -> io::Result<(i32, Group)> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command).current_dir(cwd);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || child_setup(parent));
    }
    let pid = cmd.spawn()?.id() as i32;
    Ok((pid, Group::led_by(pid)))
}

/// What a child does between fork and exec to be contained from its first
/// instruction on: enter its cgroup, and record its group with the guardian.
#[derive(Clone, Copy)]
struct Contain {
    cgroup: Option<std::os::fd::RawFd>,
    guardian: Option<std::os::fd::RawFd>,
}

impl Contain {
    /// Runs in the child after fork (after it made its own group or
    /// session): only `write` and `getpid`, which are async-signal-safe, on
    /// stack buffers. A failure leaves the child uncontained by that one
    /// means; its group still is.
    fn enter(self) {
        if let Some(fd) = self.cgroup {
            // "0" moves the writing process itself.
            // SAFETY: writes one byte from a static buffer to a descriptor
            // the parent opened and keeps open across the fork.
            let _ = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
        }
        if let Some(fd) = self.guardian {
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() };
            let record = super::guardian::record(b'+', pid);
            // SAFETY: writes 5 bytes from a stack buffer to the guardian's
            // pipe, still open in the child until exec (it is close-on-exec).
            // Under PIPE_BUF, so the record never mixes with pm's own.
            let _ = unsafe { libc::write(fd, record.as_ptr().cast(), record.len()) };
        }
    }
}

/// Runs in the child after fork: ties its life to pm's.
fn child_setup(parent: libc::pid_t) -> io::Result<()> {
    platform::set_parent_death_signal()?;
    // pm may have died between fork and prctl; then the death signal would
    // never come, so stop here instead.
    if nix::unistd::getppid().as_raw() != parent {
        return Err(io::Error::other("pm exited while starting the process"));
    }
    Ok(())
}

fn set_nonblocking_cloexec(fd: &OwnedFd) -> io::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    // A pty master comes without close-on-exec; later children must not
    // inherit it, or its reader would never see the end.
    fcntl(fd, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    Ok(())
}

/// pm's own terminal size when stdout is a terminal, else 80x24.
fn window_size() -> nix::pty::Winsize {
    let mut ws = nix::pty::Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let mut own = ws;
    // SAFETY: TIOCGWINSZ writes a `winsize` struct into the pointer we pass,
    // which points to a live, properly sized value.
    let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut own as *mut nix::pty::Winsize) };
    if rc == 0 && own.ws_row > 0 && own.ws_col > 0 {
        ws = own;
    }
    ws
}
