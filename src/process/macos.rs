//! macOS specifics: no subreaper, no parent-death signal; the guardian covers
//! the case where pm dies without cleaning up.

use super::Group;

pub fn become_subreaper() {}

/// Any member of a group pm started: without a subreaper, orphans that left
/// their group cannot be found.
pub fn descendants_left<'a>(_guardian: i32, groups: impl IntoIterator<Item = &'a Group>) -> bool {
    groups.into_iter().any(|group| group.is_alive())
}

/// Gone (a zombie is not told apart here; launchd reaps orphans at once).
pub fn has_ended(pid: i32) -> bool {
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

pub fn children() -> Vec<i32> {
    Vec::new()
}

pub fn set_parent_death_signal() -> std::io::Result<()> {
    Ok(())
}

/// The process name others match (macOS keeps the executable's).
pub fn set_process_name(_name: &std::ffi::CStr) {}

/// pm's own executable.
pub fn own_exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| std::path::PathBuf::from("pm"))
}
