//! The guardian: a tiny process that outlives a SIGKILLed pm just long enough
//! to kill what pm started.
//!
//! PR_SET_PDEATHSIG reaches pm's direct children only; the shell's background
//! jobs and other grandchildren would survive a `kill -9` of pm. So before it
//! creates any thread, pm forks the guardian, which holds the read end of a
//! pipe. Each instance writes `+pgid` there itself, between fork and exec (so
//! it is recorded before its first process can fork); pm writes `+pgid` for
//! the groups of orphans it adopts and `-pgid` once a group is empty. When
//! the pipe reaches end-of-file — pm exited, however it exited — the guardian
//! SIGKILLs every group still listed, kills everything left in pm's cgroup
//! (where pm has one) and removes it, and exits. On a clean exit pm has
//! already emptied every group, so the guardian has nothing left to do.
//!
//! A guardian that dies is replaced by `pm __guardian` (pm run again: by then
//! pm has threads, and a bare fork could not safely run this code).

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::signal::{SigHandler, Signal, killpg, signal};
use nix::unistd::{ForkResult, Pid, fork};

use super::Group;

/// The guardian's process name, apart from pm's.
const GUARDIAN_NAME: &std::ffi::CStr = c"pm-guardian";

/// pm's side of the guardian.
#[derive(Debug)]
pub struct Guardian {
    pid: i32,
    pipe: Option<io::PipeWriter>,
}

impl Guardian {
    /// Forks the guardian. Must be called while pm has a single thread.
    /// With `cgroup` (pm's own, see [`super::Containment`]), the guardian
    /// also kills everything in that cgroup and removes it once pm is gone.
    pub fn start(cgroup: Option<&Path>) -> io::Result<Guardian> {
        let cgroup = cgroup.map(Path::to_path_buf);
        // Close-on-exec on every platform: no child pm spawns holds it open.
        let (read, write) = io::pipe()?;
        // SAFETY: pm is single-threaded here (no runtime, no writer thread
        // yet), so the child may run arbitrary code after fork.
        match unsafe { fork() }.map_err(io::Error::from)? {
            ForkResult::Child => {
                drop(write);
                guard(OwnedFd::from(read), cgroup.as_deref())
            }
            ForkResult::Parent { child } => {
                drop(read);
                Ok(Guardian {
                    pid: child.as_raw(),
                    pipe: Some(write),
                })
            }
        }
    }

    /// Starts a new guardian in place of one that died, and records with it
    /// every group pm still has. pm has threads by now, so the new guardian
    /// is pm itself run again (`pm __guardian`, the pipe on its stdin)
    /// rather than a bare fork.
    pub fn replace(
        &mut self,
        groups: impl IntoIterator<Item = Group>,
        cgroup: Option<&Path>,
    ) -> io::Result<()> {
        let (read, write) = io::pipe()?;
        let mut cmd = std::process::Command::new(super::platform::own_exe());
        cmd.arg("__guardian")
            .stdin(read)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(dir) = cgroup {
            cmd.arg("--cgroup").arg(dir);
        }
        let child = cmd.spawn()?;
        self.pid = child.id() as i32;
        self.pipe = Some(write);
        for group in groups {
            self.watch(group);
        }
        Ok(())
    }

    /// The guardian's pid, so the reaper can recognise it.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Records a process group pm started.
    pub fn watch(&mut self, group: Group) {
        self.send(b'+', group);
    }

    /// Records that a process group is empty, so its id may be reused safely.
    pub fn forget(&mut self, group: Group) {
        self.send(b'-', group);
    }

    /// The pipe's descriptor, for a child to record its own group before
    /// exec (see [`record`]).
    pub(super) fn record_fd(&self) -> Option<std::os::fd::RawFd> {
        self.pipe.as_ref().map(|p| p.as_raw_fd())
    }

    fn send(&mut self, op: u8, group: Group) {
        let record = record(op, group.id());
        if let Some(pipe) = self.pipe.as_mut() {
            // A failed write means the guardian is gone; pm keeps working
            // and loses only the SIGKILL safety net, so it is dropped.
            if pipe.write_all(&record).is_err() {
                self.pipe = None;
            }
        }
    }

    /// Closes the pipe and waits for the guardian to exit (after killing what
    /// is still listed), so that not even the guardian outlives pm.
    ///
    /// This is the one `waitpid` outside [`super::reap`]: it runs after the
    /// runtime's last reap, for the guardian's pid only.
    pub fn release(mut self) {
        self.pipe = None;
        // Retry on EINTR; any other answer means it is reaped (now, or
        // earlier by the runtime: ECHILD).
        let pid = Pid::from_raw(self.pid);
        while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
    }
}

/// One record on the guardian's pipe: `+` or `-`, then the group id.
pub(super) fn record(op: u8, pgid: i32) -> [u8; 5] {
    let mut record = [0u8; 5];
    record[0] = op;
    record[1..].copy_from_slice(&pgid.to_le_bytes());
    record
}

/// `pm __guardian`: a replacement guardian's life, with pm's pipe on stdin.
pub fn guardian_main(cgroup: Option<&Path>) -> ! {
    match nix::unistd::dup(std::io::stdin()) {
        Ok(read) => guard(read, cgroup),
        // SAFETY: _exit ends the process at once; nothing of pm runs here.
        Err(_) => unsafe { libc::_exit(1) },
    }
}

/// The guardian's whole life. Never returns.
fn guard(read: OwnedFd, cgroup: Option<&Path>) -> ! {
    // The guardian must survive whatever is sent to pm's process group (a
    // terminal's Ctrl-C or hang-up, a `kill -TERM -PGID`) until pm is gone.
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGPIPE,
    ] {
        // SAFETY: setting a signal to SIG_IGN installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    // Leave pm's process group, so a SIGKILL sent to that group spares it.
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    // And a name of its own, so `killall -9 pm` (which matches the name)
    // spares it too, and it can clean up after the pm it killed.
    super::platform::set_process_name(GUARDIAN_NAME);
    detach_stdio();
    close_other_fds(read.as_raw_fd());

    let mut groups = BTreeSet::new();
    let mut buf = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match nix::unistd::read(&read, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        let whole = pending.len() / 5 * 5;
        for record in pending[..whole].chunks_exact(5) {
            let pgid = i32::from_le_bytes([record[1], record[2], record[3], record[4]]);
            if record[0] == b'+' {
                groups.insert(pgid);
            } else {
                groups.remove(&pgid);
            }
        }
        pending.drain(..whole);
    }
    for pgid in groups {
        if pgid > 1 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
    // Whatever left its group (setsid, setpgid, a double fork) is still in
    // pm's cgroup.
    if let Some(dir) = cgroup {
        super::cgroup::kill_tree(dir);
    }
    // SAFETY: _exit ends the process without running pm's atexit handlers or
    // flushing buffers that belong to pm.
    unsafe { libc::_exit(0) }
}

/// Closes every inherited descriptor but stdio and the pipe, so the guardian
/// keeps nothing of pm's open (a socket, the write end of someone's pipe).
fn close_other_fds(keep: i32) {
    for fd in 3..1024 {
        if fd != keep {
            // SAFETY: closing a descriptor number this process no longer uses;
            // nothing else runs in the guardian.
            unsafe { libc::close(fd) };
        }
    }
}

/// Points stdin, stdout and stderr at /dev/null, so that a reader of pm's
/// output (`pm start | cat`) is not kept waiting by the guardian.
fn detach_stdio() {
    // SAFETY: open/dup2/close on plain integers; failure leaves the fds as
    // they were, which is harmless.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
}
