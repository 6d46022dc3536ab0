//! Linux specifics: child subreaper, listing pm's children through /proc,
//! and the parent-death signal.

use std::fs;

use super::Group;

pub fn become_subreaper() {
    // Failure only means orphans go to init instead of pm; pm still works.
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// Children of every thread of pm, from /proc/self/task/*/children.
pub fn children() -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path().join("children");
        if let Ok(text) = fs::read_to_string(path) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// Gone, or a zombie (`Z`) or dead (`X`) in /proc/PID/stat: every file it had
/// is closed by then, and it runs no more code.
pub fn has_ended(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state follows the command name, which is in parentheses and may
    // itself hold any character.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, None | Some('Z' | 'X'))
}

/// Any child of pm but the guardian: as a subreaper pm inherits every orphan,
/// so the groups need not be looked at.
pub fn descendants_left<'a>(guardian: i32, _groups: impl IntoIterator<Item = &'a Group>) -> bool {
    children().into_iter().any(|pid| pid != guardian)
}

/// PR_SET_PDEATHSIG in the forked child, before exec: the kernel sends SIGKILL
/// to the child when the thread that forked it dies.
pub fn set_parent_death_signal() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes an integer signal number and
    // touches no memory; it is async-signal-safe, so it may run between fork
    // and exec.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// pm's own executable, even if the file was replaced since pm started.
pub fn own_exe() -> std::path::PathBuf {
    std::path::PathBuf::from("/proc/self/exe")
}
