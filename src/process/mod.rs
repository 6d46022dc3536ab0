//! Mechanism: every system call that creates, signals or reaps a process,
//! and the few other calls that need `unsafe`.
//!
//! This module owns all the `unsafe` of pm, each behind a small safe function
//! or type: spawning (process groups, the parent-death signal), the guardian,
//! registering a child's output with tokio ([`OutputPipe`]) and its input
//! ([`InputPipe`]), terminal window sizes, and the C library's local time
//! ([`local_time`]). It decides nothing: the runtime tells
//! it what to do. Process groups are [`Group`]s, never negated pids.
//!
//! [`reap`] is the only `waitpid(-1)`, so that pm, as a child subreaper, reaps
//! adopted orphans without stealing the exit status of its own children; the
//! other `waitpid`s are for one pid each: [`Guardian::release`] waits for
//! the guardian's own pid after the last reap, and a spawn whose child
//! failed before exec reaps that child at once (as std's `Command` does).
//! Children are started by the platform's launcher (`launch_linux.rs`: a
//! `posix_spawn`-style clone; `launch_macos.rs`: std's `Command`), never with
//! `tokio::process`, which would reap them behind the reaper's back.
//!
//! What differs between platforms lives in `linux.rs` and `macos.rs`, which
//! export the same functions.

mod detach;
mod group;
mod guardian;
mod localtime;
mod pipe;
mod spawn;
mod terminal;

#[cfg(target_os = "linux")]
mod cgroup_linux;
#[cfg(target_os = "linux")]
use cgroup_linux as cgroup;
#[cfg(target_os = "macos")]
mod cgroup_macos;
#[cfg(target_os = "macos")]
use cgroup_macos as cgroup;
#[cfg(target_os = "linux")]
mod launch_linux;
#[cfg(target_os = "linux")]
use launch_linux as launch;
#[cfg(target_os = "macos")]
mod launch_macos;
#[cfg(target_os = "macos")]
use launch_macos as launch;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as platform;

pub use cgroup::{Cgroup, Containment};
pub use detach::{Announcer, Detached, detach};
pub use group::Group;
pub use guardian::{Guardian, guardian_main};
pub use localtime::local_time;
pub use pipe::OutputPipe;
pub use spawn::{Prepared, SpawnSpec, Spawned, Starting, Stdin, prepare, spawn_quiet};
pub use terminal::{InputPipe, window_size};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::model::ExitStatus;

/// Reaps every child that has ended, without blocking.
///
/// This is pm's only `waitpid(-1)`. It returns every (pid, status) pair,
/// including orphans that pm adopted as a subreaper; the caller sorts them out.
pub fn reap() -> Vec<(i32, ExitStatus)> {
    let mut out = Vec::new();
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid.as_raw(), ExitStatus::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                out.push((pid.as_raw(), ExitStatus::Signal(sig)))
            }
            // Stopped/continued children are not exits; keep looking.
            Ok(WaitStatus::StillAlive) => break,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            // ECHILD: no children left at all.
            Err(_) => break,
        }
    }
    out
}

/// Sends `sig` to one process. Returns false when it is gone.
pub fn signal_pid(pid: i32, sig: Signal) -> bool {
    !matches!(kill(Pid::from_raw(pid), sig), Err(Errno::ESRCH))
}

/// Whether process `pid` has ended: it is gone, or (where the platform tells)
/// a zombie waiting for its parent to reap it.
pub fn has_ended(pid: i32) -> bool {
    platform::has_ended(pid)
}

/// The process group `pid` is in, if it still exists.
pub fn group_of(pid: i32) -> Option<Group> {
    nix::unistd::getpgid(Some(Pid::from_raw(pid)))
        .ok()
        .map(|pgid| Group::led_by(pgid.as_raw()))
}

/// Grows pm's table of descriptors to room for `count` of them (within the
/// soft `RLIMIT_NOFILE`), to be called while pm has a single thread.
///
/// Linux grows the table as descriptors are opened (at 64, 128, 256...),
/// and in a process with threads each growth waits for an RCU grace period
/// (`expand_fdtable`'s `synchronize_rcu`): 4 to 15 ms each on a small VM,
/// and 50 instances (3 or 4 descriptors each) need 2 or 3 growths. In a
/// single-threaded process a growth does not wait, and a table never
/// shrinks. Where this fails, the table grows later, as before.
pub fn size_descriptor_table(count: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return;
    }
    let soft = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
    let highest = count.min(soft).saturating_sub(1);
    let Ok(null) = std::fs::File::open("/dev/null") else {
        return;
    };
    // SAFETY: F_DUPFD_CLOEXEC on a live descriptor returns a new one (the
    // lowest free at or above `highest`), closed right away.
    unsafe {
        let fd = libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&null),
            libc::F_DUPFD_CLOEXEC,
            highest as libc::c_int,
        );
        if fd != -1 {
            libc::close(fd);
        }
    }
}

/// Makes pm a child subreaper where the platform has one (Linux), so orphaned
/// grandchildren are reparented to pm and reaped by [`reap`].
pub fn become_subreaper() {
    platform::become_subreaper();
}

/// The pids of pm's own live children (including adopted orphans), where the
/// platform can list them; an empty list elsewhere.
pub fn children() -> Vec<i32> {
    platform::children()
}

/// Whether anything pm started is still alive, apart from the guardian.
///
/// Where pm is a subreaper (Linux), every descendant that outlived its parent
/// became pm's child, so pm's children tell; elsewhere, the members of the
/// `groups` pm started do (a process that left its group is not seen).
pub fn descendants_left<'a>(
    guardian: &Guardian,
    groups: impl IntoIterator<Item = &'a Group>,
) -> bool {
    platform::descendants_left(guardian.pid(), groups)
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    /// The size of this process's descriptor table (`FDSize`).
    fn table_size() -> usize {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("FDSize in /proc/self/status")
    }

    #[test]
    fn the_descriptor_table_is_grown_to_the_room_asked_for_within_the_limit() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let soft = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
        let wanted = 2000.min(soft);
        super::size_descriptor_table(2000);
        assert!(table_size() >= wanted, "FDSize {} < {wanted}", table_size());
        // Nothing is left open at the top.
        // SAFETY: F_GETFD on a number only reads the descriptor table.
        assert_eq!(unsafe { libc::fcntl(wanted as i32 - 1, libc::F_GETFD) }, -1);
    }
}
