//! Spawning one instance: `/bin/sh -c COMMAND` in its own process group (or,
//! on a pseudo-terminal, its own session), stdout and stderr on one pipe so
//! their relative order survives, and stdin a pipe whose write end pm holds
//! for the instance's life (a program reading stdin waits instead of seeing
//! end-of-file; `/dev/null` only for a one-shot that must not wait on a
//! prompt). On a pty, all three are the pty.
//!
//! This file wires the descriptors and says what the child must do before
//! exec ([`Launch`]); the platform's launcher (`launch_linux.rs`,
//! `launch_macos.rs`) makes the process. Either way the child is in its
//! group, its cgroup and the guardian's list, with the parent-death signal
//! set, before its command runs, and a failure up to exec is the spawn's
//! error, not an exit.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use super::{Cgroup, Group, Guardian, launch, platform};

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

/// One child for a platform's launcher to start: `/bin/sh -c command` in
/// `cwd`, with pm's environment plus `env` (sorted by name, as std's
/// `Command` passes it), the three descriptors as its stdio, and the steps
/// it takes before exec, in this order: stdio, `cwd`, its own process group
/// (or, with `terminal`, its own session with stdin as its controlling
/// terminal), [`Contain::enter`], [`tie_to_parent`].
pub(super) struct Launch<'a> {
    pub command: &'a str,
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    pub terminal: bool,
    pub contain: Contain,
    /// pm's pid, for [`tie_to_parent`]'s check.
    pub parent: libc::pid_t,
}

/// A child [`Prepared::start`]ed and maybe not exec'd yet, with pm's ends of its
/// descriptors.
#[must_use = "a starting child is finished, to learn whether it runs"]
pub struct Starting {
    pending: launch::Pending,
    output: OwnedFd,
    stdin: Option<OwnedFd>,
}

impl Starting {
    /// Waits for the child's exec: the [`Spawned`] child, or the error of
    /// the step before exec that failed.
    pub fn finish(self) -> io::Result<Spawned> {
        let pid = self.pending.finish()?;
        set_nonblocking_cloexec(&self.output)?;
        Ok(Spawned {
            pid,
            // A new session (pty) is a new group too, led by the same process.
            group: Group::led_by(pid),
            output: self.output,
            stdin: self.stdin,
        })
    }
}

/// A child ready to [`Prepared::start`]: its descriptors and what it reads
/// made.
pub struct Prepared {
    launch: launch::Prepared,
    output: OwnedFd,
    stdin: Option<OwnedFd>,
    /// The child's own ends, closed in pm once it is forked.
    child_ends: (OwnedFd, Option<OwnedFd>),
}

impl Prepared {
    /// Forks the child without waiting for its exec: several can be started
    /// before the first is [`Starting::finish`]ed, and they exec side by
    /// side.
    ///
    /// Must be called from the thread that stays alive for pm's whole life
    /// (the runtime's main thread): PR_SET_PDEATHSIG fires when the forking
    /// *thread* exits.
    pub fn start(self) -> io::Result<Starting> {
        let pending = self.launch.start()?;
        // Closing pm's copies of the child's ends (the child has its own)
        // lets the reader see end-of-file once the child and everything it
        // started closed theirs.
        drop(self.child_ends);
        Ok(Starting {
            pending,
            output: self.output,
            stdin: self.stdin,
        })
    }
}

/// Prepares `spec.command`'s start through `/bin/sh -c` ([`Prepared::start`]
/// forks it).
pub fn prepare(spec: &SpawnSpec<'_>) -> io::Result<Prepared> {
    let contain = Contain {
        cgroup: None,
        cgroup_dir: spec.cgroup.map(Cgroup::dir_fd),
        guardian: spec.guardian.and_then(Guardian::record_fd),
    };
    // The child's ends, closed in pm once it runs; pm keeps `output` and,
    // for a pipe, the write end of stdin. std's pipes are close-on-exec on
    // every platform, so no other child inherits either end.
    let (output, child_out, child_in, stdin, terminal) = if spec.pty {
        let pty = nix::pty::openpty(Some(&window_size()), None).map_err(io::Error::from)?;
        // openpty's descriptors are inheritable: no other child may hold
        // this terminal open.
        set_cloexec(&pty.slave)?;
        let child_in = match spec.stdin {
            Stdin::Pipe => None,
            Stdin::Null => Some(dev_null()?),
        };
        (pty.master, pty.slave, child_in, None, true)
    } else {
        let (child_in, stdin) = match spec.stdin {
            Stdin::Pipe => {
                let (read, write) = io::pipe()?;
                (Some(OwnedFd::from(read)), Some(OwnedFd::from(write)))
            }
            Stdin::Null => (Some(dev_null()?), None),
        };
        let (read, write) = io::pipe()?;
        (
            OwnedFd::from(read),
            OwnedFd::from(write),
            child_in,
            stdin,
            false,
        )
    };
    let launch = launch::prepare(&Launch {
        command: spec.command,
        cwd: spec.cwd,
        env: spec.env,
        // On a pty without a stdin of its own, the terminal is stdin too.
        stdin: child_in.as_ref().map_or(child_out.as_fd(), AsFd::as_fd),
        stdout: child_out.as_fd(),
        stderr: child_out.as_fd(),
        terminal,
        contain,
        parent: std::process::id() as libc::pid_t,
    })?;
    Ok(Prepared {
        launch,
        output,
        stdin,
        child_ends: (child_out, child_in),
    })
}

/// Starts `command` through `/bin/sh -c` with no input or output, in its own
/// process group (a health check's `exec` probe). Same rules as
/// [`Prepared::start`].
/// Returns its pid and its group.
pub fn spawn_quiet(
    command: &str,
    cwd: &Path,
    env: &[(String, String)],
) -> io::Result<(i32, Group)> {
    let null = dev_null()?;
    let pid = launch::launch(&Launch {
        command,
        cwd,
        env,
        stdin: null.as_fd(),
        stdout: null.as_fd(),
        stderr: null.as_fd(),
        terminal: false,
        contain: Contain::default(),
        parent: std::process::id() as libc::pid_t,
    })?;
    Ok((pid, Group::led_by(pid)))
}

/// What a child does between fork and exec to be contained from its first
/// instruction on: enter its cgroup, and record its group with the guardian.
#[derive(Clone, Copy, Default)]
pub(super) struct Contain {
    /// The instance's cgroup directory. The launcher starts the child
    /// inside it where the kernel can (Linux's `clone3` with
    /// `CLONE_INTO_CGROUP`); elsewhere it opens the cgroup's `cgroup.procs`
    /// as `cgroup`, for the child to write. (macOS has no cgroups.)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub cgroup_dir: Option<RawFd>,
    /// A `cgroup.procs` that [`Contain::enter`] writes `0` to.
    pub cgroup: Option<RawFd>,
    pub guardian: Option<RawFd>,
}

impl Contain {
    /// Runs in the child after fork (after it made its own group or
    /// session): only `write` and `getpid`, which are async-signal-safe, on
    /// stack buffers. A failure leaves the child uncontained by that one
    /// means; its group still is.
    pub(super) fn enter(self) {
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

/// Why [`tie_to_parent`] failed, as plain data: the child that reports it
/// may share pm's memory, so it must not allocate an error.
pub(super) enum Untied {
    /// The errno of the failed call.
    Os(i32),
    /// pm exited before the child was tied to it.
    ParentGone,
}

/// Runs in the child before exec: ties its life to pm's. Only
/// async-signal-safe calls (prctl, getppid), and no allocation.
pub(super) fn tie_to_parent(parent: libc::pid_t) -> Result<(), Untied> {
    platform::set_parent_death_signal()
        .map_err(|e| Untied::Os(e.raw_os_error().unwrap_or(libc::EIO)))?;
    // pm may have died between fork and prctl; then the death signal would
    // never come, so stop here instead.
    if nix::unistd::getppid().as_raw() != parent {
        return Err(Untied::ParentGone);
    }
    Ok(())
}

/// [`tie_to_parent`] for a forked child, which has memory of its own and
/// may allocate the error std's `Command` reports.
#[cfg(target_os = "macos")]
pub(super) fn child_setup(parent: libc::pid_t) -> io::Result<()> {
    tie_to_parent(parent).map_err(|untied| match untied {
        Untied::Os(errno) => io::Error::from_raw_os_error(errno),
        Untied::ParentGone => parent_gone(),
    })
}

/// The error of a child whose pm exited while it was being started.
pub(super) fn parent_gone() -> io::Error {
    io::Error::other("pm exited while starting the process")
}

/// `/dev/null`, close-on-exec, for a child's stdio.
fn dev_null() -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(
        File::options().read(true).write(true).open("/dev/null")?,
    ))
}

fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    Ok(())
}

fn set_nonblocking_cloexec(fd: &OwnedFd) -> io::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    // A pty master comes without close-on-exec; later children must not
    // inherit it, or its reader would never see the end.
    set_cloexec(fd)
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
