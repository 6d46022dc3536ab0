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

/// Gone, or a zombie (`Z`) or dead (`X`) in /proc/PID/stat with no thread
/// left: only then is every file it had closed and no more of its code runs.
/// A thread-group leader that exits before its threads shows `Z` while they
/// still run (and hold its sockets); the group counts in `Threads:` of
/// /proc/PID/status until its last thread has closed the files, so a zombie
/// leader with more than one is not ended yet.
pub fn has_ended(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state follows the command name, which is in parentheses and may
    // itself hold any character.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if !matches!(state, None | Some('Z' | 'X')) {
        return false;
    }
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .is_none_or(|threads| threads <= 1)
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

/// The name `ps`, `top`, `killall` and `pkill` match for this process
/// (`/proc/PID/comm`, 15 bytes at most).
pub fn set_process_name(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a C string we pass.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// pm's own executable, even if the file was replaced since pm started.
pub fn own_exe() -> std::path::PathBuf {
    std::path::PathBuf::from("/proc/self/exe")
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    fn state(pid: i32) -> Option<char> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        cond()
    }

    /// A process whose main thread has exited while another thread holds a
    /// listening socket: its leader is a zombie, the process is not ended
    /// (the port is still taken) until that thread is gone too.
    #[test]
    fn a_zombie_leader_with_a_running_thread_has_not_ended() {
        let script = "import ctypes, socket, sys, threading\n\
                      s = socket.socket()\n\
                      s.bind(('127.0.0.1', 0))\n\
                      s.listen()\n\
                      threading.Thread(target=sys.stdin.read).start()\n\
                      print(s.getsockname()[1], flush=True)\n\
                      ctypes.CDLL(None).pthread_exit(None)\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let pid = i32::try_from(child.id()).expect("pid");
        let mut port = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut port)
            .expect("the port");
        let port: u16 = port.trim().parse().expect("a port number");

        assert!(
            eventually(|| state(pid) == Some('Z')),
            "the leader never became a zombie"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "the thread still holds the listening socket"
        );
        assert!(
            !has_ended(pid),
            "a zombie leader whose thread runs has ended"
        );

        // The thread's read ends at end-of-file: the last thread exits.
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"")
            .expect("write");
        assert!(
            eventually(|| has_ended(pid)),
            "never ended after its thread"
        );
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        let _ = child.wait();
        assert!(has_ended(pid));
    }
}
