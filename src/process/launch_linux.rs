//! Starting a child on Linux the way `posix_spawn` does: `clone` with
//! `CLONE_VM | CLONE_VFORK`, so the child runs on pm's memory, on a stack of
//! its own, until its `execve`, while pm's forking thread waits.
//!
//! A `fork` (what std's `Command` does as soon as there is a `pre_exec`)
//! copies pm's page tables, and the child's exec then tears the copy down,
//! while pm takes copy-on-write faults on what it touches meanwhile; std then
//! waits for the exec on a pipe. Sharing the memory does none of that, and
//! the exec is the moment pm resumes. The child writes nothing of pm's but
//! [`Child::error`] (and the calling thread's `errno`): pm is suspended
//! until the child has exec'd or exited, and every pointer it reads stays
//! alive on pm's stack for that long.
//!
//! Signals: pm blocks all of them around the clone, so none is handled on
//! the child's stack by pm's handlers (tokio's would take the child's
//! signal for pm's own); the child resets every handled signal (and
//! SIGPIPE, which std ignores in pm) to its default before unblocking them,
//! as std's `Command` leaves them for the program.

use std::collections::BTreeMap;
use std::ffi::{CString, OsString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};

use super::spawn::{Contain, Launch, Untied, parent_gone, tie_to_parent};

/// The child's stack, until its exec: it runs only the few calls of
/// [`Child::run`].
const STACK: usize = 64 * 1024;

/// [`Child::error`] when [`tie_to_parent`] found pm gone.
const PARENT_GONE: i32 = -1;

/// Everything the child reads, prepared by pm before the clone.
struct Child {
    argv: [*const c_char; 4],
    envp: *const *const c_char,
    cwd: *const c_char,
    stdio: [RawFd; 3],
    terminal: bool,
    contain: Contain,
    parent: libc::pid_t,
    /// 0, or the errno of the step that failed (the child then exits 127).
    error: AtomicI32,
}

/// Starts `launch`'s child and returns its pid once it has exec'd.
pub fn launch(launch: &Launch<'_>) -> io::Result<i32> {
    let shell = c"/bin/sh";
    let command = CString::new(launch.command)?;
    let env = environment(launch.env)?;
    let envp: Vec<*const c_char> = env
        .iter()
        .map(|var| var.as_ptr())
        .chain([ptr::null()])
        .collect();
    let cwd = CString::new(launch.cwd.as_os_str().as_bytes())?;
    // A source descriptor among 0..=2 could be overwritten by an earlier
    // dup2 in the child: move such a one above them first.
    let (stdin, _in) = above_stdio(launch.stdin)?;
    let (stdout, _out) = above_stdio(launch.stdout)?;
    let (stderr, _err) = above_stdio(launch.stderr)?;
    let child = Child {
        argv: [
            shell.as_ptr(),
            c"-c".as_ptr(),
            command.as_ptr(),
            ptr::null(),
        ],
        envp: envp.as_ptr(),
        cwd: cwd.as_ptr(),
        stdio: [stdin, stdout, stderr],
        terminal: launch.terminal,
        contain: launch.contain,
        parent: launch.parent,
        error: AtomicI32::new(0),
    };
    let mut stack = vec![0u8; STACK];
    // The stack grows down from its 16-byte aligned top.
    let top = (stack.as_mut_ptr() as usize + STACK) & !15;
    let pid = {
        let _blocked = BlockedSignals::new();
        // SAFETY: `child_main` runs on `stack`, which, like `child` and
        // everything its pointers reach, lives until this call returns;
        // CLONE_VFORK suspends this thread until the child has exec'd or
        // exited, so nothing the child reads changes or is freed meanwhile.
        // Every signal is blocked, so no handler of pm runs in the child.
        unsafe {
            libc::clone(
                child_main,
                top as *mut c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                &child as *const Child as *mut c_void,
            )
        }
    };
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    match child.error.load(Ordering::Acquire) {
        0 => Ok(pid),
        error => {
            // The child exited with 127 before its command ran: reap it
            // here (as std's `Command` does), so the reaper never sees a
            // pid that was never an instance.
            let mut status = 0;
            // SAFETY: waits for our own child's pid only; `status` is a
            // live int.
            while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
            Err(match error {
                PARENT_GONE => parent_gone(),
                errno => io::Error::from_raw_os_error(errno),
            })
        }
    }
}

/// pm's environment with `env` on top, as `NAME=value` strings sorted by
/// name (what std's `Command` passes when variables are added).
fn environment(env: &[(String, String)]) -> io::Result<Vec<CString>> {
    let mut vars: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for (key, value) in env {
        vars.insert(key.into(), value.into());
    }
    vars.into_iter()
        .map(|(key, value)| {
            let mut var = key.into_vec();
            var.push(b'=');
            var.extend(value.into_vec());
            Ok(CString::new(var)?)
        })
        .collect()
}

/// `fd`'s number if it is above 2, else that of a close-on-exec copy above
/// 2 (kept open by the second value).
fn above_stdio(fd: BorrowedFd<'_>) -> io::Result<(RawFd, Option<OwnedFd>)> {
    if fd.as_raw_fd() > 2 {
        return Ok((fd.as_raw_fd(), None));
    }
    // SAFETY: F_DUPFD_CLOEXEC on a live descriptor returns a new one we own.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if copy == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` was just returned by fcntl and nothing else owns it.
    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) };
    Ok((copy, Some(owned)))
}

/// Every signal blocked on this thread while it lives; the previous mask
/// back when dropped.
struct BlockedSignals {
    previous: libc::sigset_t,
}

impl BlockedSignals {
    fn new() -> BlockedSignals {
        // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask
        // write only into the sets we pass.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
            BlockedSignals { previous }
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new` on the same thread.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, ptr::null_mut());
        }
    }
}

/// The child's whole life before exec.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Child` that `launch` keeps alive (and does not
    // touch) until this process has exec'd or exited.
    let child = unsafe { &*(arg as *const Child) };
    // SAFETY: this is the child of a CLONE_VM | CLONE_VFORK clone, which is
    // what `run` is written for.
    let error = unsafe { child.run() };
    child.error.store(error, Ordering::Release);
    // SAFETY: _exit ends the child at once, running nothing of pm's.
    unsafe { libc::_exit(127) }
}

impl Child {
    /// The steps before exec; returns the errno of the one that failed
    /// (exec returns only on failure).
    ///
    /// # Safety
    ///
    /// Only in the child of a CLONE_VM | CLONE_VFORK clone, with every
    /// signal blocked: it calls only async-signal-safe functions,
    /// allocates nothing, and writes no memory of pm's but `errno`.
    unsafe fn run(&self) -> i32 {
        let errno = || {
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        };
        // SAFETY (whole body): plain system calls on integers, on the
        // prepared C strings and arrays, and on zeroed sigaction/sigset
        // structs on this stack.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            for sig in 1..65 {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, ptr::null(), &mut old) == 0
                    && (sig == libc::SIGPIPE
                        || (old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN))
                {
                    libc::sigaction(sig, &default, ptr::null_mut());
                }
            }
            for (target, &fd) in self.stdio.iter().enumerate() {
                if libc::dup2(fd, target as c_int) == -1 {
                    return errno();
                }
            }
            if libc::chdir(self.cwd) == -1 {
                return errno();
            }
            if self.terminal {
                if libc::setsid() == -1 {
                    return errno();
                }
                // Make the pty (stdout) the controlling terminal so the
                // child sees a real terminal (job control, colors, line
                // buffering).
                if libc::ioctl(1, libc::TIOCSCTTY as _, 0) == -1 {
                    return errno();
                }
            } else if libc::setpgid(0, 0) == -1 {
                return errno();
            }
            self.contain.enter();
            match tie_to_parent(self.parent) {
                Ok(()) => {}
                Err(Untied::Os(errno)) => return errno,
                Err(Untied::ParentGone) => return PARENT_GONE,
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, ptr::null_mut());
            libc::execve(self.argv[0], self.argv.as_ptr(), self.envp);
            errno()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::path::Path;

    use super::*;

    fn run(command: &str, cwd: &Path) -> io::Result<(i32, String)> {
        let (mut read, write) = io::pipe()?;
        let write = OwnedFd::from(write);
        let null = OwnedFd::from(std::fs::File::open("/dev/null")?);
        let env = [("PM_LAUNCH_TEST".to_string(), "b".to_string())];
        let pid = launch(&Launch {
            command,
            cwd,
            env: &env,
            stdin: null.as_fd(),
            stdout: write.as_fd(),
            stderr: write.as_fd(),
            terminal: false,
            contain: Contain::default(),
            parent: std::process::id() as libc::pid_t,
        })?;
        drop(write);
        let mut text = String::new();
        read.read_to_string(&mut text)?;
        let mut status = 0;
        // SAFETY: waits for the child this test started.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        Ok((pid, text))
    }

    #[test]
    fn the_child_leads_its_group_in_its_directory_with_the_added_variables() {
        let dir = tempfile::tempdir().unwrap();
        let (pid, text) = run(
            "echo $$ $(ps -o pgid= -p $$) $PM_LAUNCH_TEST; pwd",
            dir.path(),
        )
        .unwrap();
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words[0], pid.to_string(), "{text}");
        assert_eq!(words[1], pid.to_string(), "{text}");
        assert_eq!(words[2], "b", "{text}");
        assert_eq!(
            Path::new(words[3]).canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );
    }

    #[test]
    fn a_failure_before_exec_is_the_spawns_error() {
        let error = run("true", Path::new("/nonexistent/pm-launch")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    }
}
