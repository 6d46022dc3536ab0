//! A process group pm started: the unit pm signals, watches and kills.
//!
//! Every instance and every `exec` probe runs in a group of its own, whose id
//! is the pid of the `/bin/sh` pm spawned (its leader). Only [`super::spawn`]
//! makes one, so a `Group` always names a group pm created; the id is never
//! handled as a bare or negated pid outside this file.

use std::fmt;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A process group pm started. Its members may all be gone: the group is then
/// empty, and its id may be reused once pm stops watching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Group(Pid);

impl Group {
    /// The group led by `leader`, a child spawned into a new group (or
    /// session) of its own.
    pub(super) fn led_by(leader: i32) -> Group {
        Group(Pid::from_raw(leader))
    }

    /// The group id as the guardian's pipe records it.
    pub(super) fn id(self) -> i32 {
        self.0.as_raw()
    }

    /// Sends `sig` to every member. Returns false when the group is empty.
    pub fn signal(self, sig: Signal) -> bool {
        !matches!(killpg(self.0, sig), Err(Errno::ESRCH))
    }

    /// Whether any process is still in the group.
    pub fn is_alive(self) -> bool {
        !matches!(killpg(self.0, None), Err(Errno::ESRCH))
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process group {}", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn a_group_is_alive_until_its_last_member_is_gone() {
        let spawn = |pgid: u32| {
            Command::new("sleep")
                .arg("30")
                .process_group(pgid as i32)
                .spawn()
                .unwrap()
        };
        let mut leader = spawn(0);
        let group = Group::led_by(leader.id() as i32);
        let mut member = spawn(leader.id());
        assert!(group.is_alive());
        // The leader gone (and reaped), the member still keeps the group.
        leader.kill().unwrap();
        leader.wait().unwrap();
        assert!(group.is_alive(), "{group} has a member left");
        assert!(group.signal(Signal::SIGKILL));
        member.wait().unwrap();
        assert!(!group.is_alive(), "{group} is empty");
        assert!(!group.signal(Signal::SIGTERM), "an empty group is gone");
    }
}
