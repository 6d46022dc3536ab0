//! Mechanism: every system call that creates, signals or reaps a process.
//!
//! This module owns all the `unsafe` of pm. It decides nothing: the supervisor
//! tells it what to do. [`reap`] is the only caller of `waitpid` in pm, so that
//! pm, as a child subreaper, reaps adopted orphans without stealing the exit
//! status of its own children. Children are spawned with std's `Command`, never
//! with `tokio::process`, which would reap them behind the reaper's back.

mod guardian;
mod spawn;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as platform;

pub use guardian::Guardian;
pub use spawn::{SpawnSpec, Spawned, spawn, spawn_quiet};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(Signal),
}

impl ExitStatus {
    /// The code a shell would report: the exit code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal(sig) => 128 + sig as i32,
        }
    }

    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

/// Reaps every child that has ended, without blocking.
///
/// This is the only `waitpid` call in pm. It returns every (pid, status) pair,
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

/// Sends `sig` to the process group `pgid`. Returns false when the group is gone.
pub fn signal_group(pgid: i32, sig: Signal) -> bool {
    !matches!(killpg(Pid::from_raw(pgid), sig), Err(Errno::ESRCH))
}

/// Sends `sig` to one process. Returns false when it is gone.
pub fn signal_pid(pid: i32, sig: Signal) -> bool {
    !matches!(kill(Pid::from_raw(pid), sig), Err(Errno::ESRCH))
}

/// Whether any process is still in the group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
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

/// Parses a signal name as users write it: `TERM`, `SIGTERM`, `term`, or `15`.
pub fn parse_signal(name: &str) -> Option<Signal> {
    let trimmed = name.trim();
    if let Ok(n) = trimmed.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = trimmed.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_codes() {
        assert_eq!(ExitStatus::Code(3).shell_code(), 3);
        assert_eq!(ExitStatus::Signal(Signal::SIGTERM).shell_code(), 143);
        assert_eq!(ExitStatus::Signal(Signal::SIGKILL).shell_code(), 137);
        assert!(ExitStatus::Code(0).success());
        assert!(!ExitStatus::Code(1).success());
    }

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGINT"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("quit"), Some(Signal::SIGQUIT));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal(""), None);
    }
}
