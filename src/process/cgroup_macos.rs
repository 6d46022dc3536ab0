//! macOS has no cgroups: pm contains what it starts with process groups,
//! the guardian and the group records made before exec (see docs/start.md,
//! "Nothing outlives pm", for what can still escape).

use std::io;
use std::os::fd::RawFd;
use std::path::Path;

use nix::sys::signal::Signal;

#[derive(Debug)]
pub struct Containment {
    never: std::convert::Infallible,
}

#[derive(Debug)]
pub struct Cgroup {
    never: std::convert::Infallible,
}

impl Containment {
    pub fn create() -> Option<Containment> {
        None
    }

    pub fn root(&self) -> &Path {
        match self.never {}
    }

    pub fn instance(&self, _name: &str) -> io::Result<Cgroup> {
        match self.never {}
    }
}

impl Cgroup {
    pub(super) fn dir_fd(&self) -> RawFd {
        match self.never {}
    }

    pub fn pids(&self) -> Vec<i32> {
        match self.never {}
    }

    pub fn is_populated(&self) -> bool {
        match self.never {}
    }

    pub fn signal(&self, _sig: Signal, _skip: impl Fn(i32) -> bool) {
        match self.never {}
    }
}

pub fn kill_tree(_dir: &Path) {}
