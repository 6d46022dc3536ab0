//! macOS: no subreaper, no parent-death signal, no pidfd. The benches read
//! /proc, so they measure on Linux only; these stand-ins keep them compiling
//! everywhere pm builds.

use std::os::fd::OwnedFd;
use std::process::Command;

pub fn become_subreaper() {}

pub fn die_with_bench(_cmd: &mut Command, _signal: i32) {}

pub fn pidfd_open(_pid: i32) -> Option<OwnedFd> {
    None
}
