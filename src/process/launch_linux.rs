//! Starting a child on Linux the way a shell does: a fork that pm does not
//! wait on, so the children of one start-up exec side by side.
//!
//! [`prepare`] makes what the child reads; [`Prepared::start`] forks it and
//! returns at once with a [`Pending`] child, whose [`Pending::finish`] then
//! waits until the child has exec'd, or reads why it could not (the errno
//! of the step that failed, on a close-on-exec pipe that exec closes). pm
//! prepares, then starts, every instance of a start-up (or of a scale)
//! before it finishes any, so while it forks the next, the previous ones
//! exec on the other cores. Waiting for each exec in turn (as a
//! `vfork` does, and std's `Command` with a `pre_exec`) made pm's start-up
//! a queue of execs, each behind the shells already starting.
//!
//! The fork copies pm's page tables, which are small (pm's own memory is
//! under a MiB, and its scrollback bounded), and the child's exec drops the
//! copy.
//!
//! A child with a cgroup starts inside it: `clone3` with
//! `CLONE_INTO_CGROUP` (Linux 5.7) puts it there as it is made. Moving a
//! running process instead (writing `cgroup.procs`) takes the kernel's
//! cgroup-wide write lock, and waits on RCU, for every instance. Where
//! `clone3` is refused (an older kernel, a seccomp filter that answers
//! `ENOSYS`, as container runtimes' do), the child is forked as before and
//! writes `cgroup.procs` itself.
//!
//! The child runs only async-signal-safe calls on its copy of pm's memory:
//! pm's other threads are not in it, and whatever lock one of them held is
//! held forever there.
//!
//! Signals: pm blocks all of them around the fork, so none is handled in
//! the child by pm's handlers (tokio's would write the child's signal to
//! pm's own pipe); the child resets every handled signal (and SIGPIPE,
//! which std ignores in pm) to its default before unblocking them, as std's
//! `Command` leaves them for the program.

use std::collections::BTreeMap;
use std::ffi::{CString, OsString, c_char, c_int};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use super::cgroup::open_at;
use super::spawn::{Contain, Launch, Untied, parent_gone, tie_to_parent};

/// What the child reports when [`tie_to_parent`] found pm gone.
const PARENT_GONE: i32 = -1;

/// Everything the child reads, prepared by pm before the fork.
struct Child {
    argv: [*const c_char; 4],
    envp: *const *const c_char,
    cwd: *const c_char,
    stdio: [RawFd; 3],
    terminal: bool,
    contain: Contain,
    parent: libc::pid_t,
    /// Where the child writes the errno of the step that failed (then it
    /// exits 127); exec closes it.
    report: RawFd,
}

/// A child forked by [`Prepared::start`], maybe not exec'd yet.
#[must_use = "a pending child is finished, to learn whether it runs"]
pub struct Pending {
    pid: libc::pid_t,
    report: OwnedFd,
}

/// Starts `launch`'s child and returns its pid once it has exec'd.
pub fn launch(launch: &Launch<'_>) -> io::Result<i32> {
    prepare(launch)?.start()?.finish()
}

/// A child ready to fork: everything it reads, made beforehand, so that a
/// batch of forks touches little of pm's memory (each page pm writes while
/// a forked child has not exec'd yet is copied for it).
pub struct Prepared {
    command: CString,
    cwd: CString,
    envp: Vec<*const c_char>,
    /// The strings of `envp` that are not pm's own.
    _added: Vec<CString>,
    stdio: [RawFd; 3],
    /// Copies made by [`above_stdio`], open until the fork.
    _moved: [Option<OwnedFd>; 3],
    report: OwnedFd,
    report_write: OwnedFd,
    terminal: bool,
    contain: Contain,
    parent: libc::pid_t,
}

/// Makes what `launch`'s child needs; [`Prepared::start`] forks it.
pub fn prepare(launch: &Launch<'_>) -> io::Result<Prepared> {
    let command = CString::new(launch.command)?;
    let (envp, added) = environment(launch.env)?;
    let cwd = CString::new(launch.cwd.as_os_str().as_bytes())?;
    // A source descriptor among 0..=2 could be overwritten by an earlier
    // dup2 in the child: move such a one above them first.
    let (stdin, moved_in) = above_stdio(launch.stdin)?;
    let (stdout, moved_out) = above_stdio(launch.stdout)?;
    let (stderr, moved_err) = above_stdio(launch.stderr)?;
    let (report, report_write) = cloexec_pipe()?;
    // Above the stdio too, or the child's dup2 would close it.
    let report_write = match above_stdio(report_write.as_fd())? {
        (_, Some(copy)) => copy,
        (_, None) => report_write,
    };
    Ok(Prepared {
        command,
        cwd,
        envp,
        _added: added,
        stdio: [stdin, stdout, stderr],
        _moved: [moved_in, moved_out, moved_err],
        report,
        report_write,
        terminal: launch.terminal,
        contain: launch.contain,
        parent: launch.parent,
    })
}

impl Prepared {
    /// Forks the child and returns without waiting for its exec.
    pub fn start(self) -> io::Result<Pending> {
        let clone3 = CLONE3.load(Ordering::Relaxed);
        self.start_with(clone3)
    }

    /// [`Prepared::start`], trying `clone3` into the cgroup or not.
    fn start_with(self, clone3: bool) -> io::Result<Pending> {
        let mut child = Child {
            argv: [
                c"/bin/sh".as_ptr(),
                c"-c".as_ptr(),
                self.command.as_ptr(),
                ptr::null(),
            ],
            envp: self.envp.as_ptr(),
            cwd: self.cwd.as_ptr(),
            stdio: self.stdio,
            terminal: self.terminal,
            contain: self.contain,
            parent: self.parent,
            report: self.report_write.as_raw_fd(),
        };
        let pid = fork_child(&mut child, self.contain.cgroup_dir, clone3)?;
        Ok(Pending {
            pid,
            report: self.report,
        })
    }
}

impl Pending {
    /// Waits until the child has exec'd (its pid then) or has failed before
    /// its command ran (the error then; the child is reaped here, as std's
    /// `Command` does, so the reaper never sees a pid that was never an
    /// instance).
    pub fn finish(self) -> io::Result<i32> {
        let mut errno = [0u8; 4];
        let mut got = 0;
        while got < errno.len() {
            // SAFETY: reads into the unread rest of a live stack buffer.
            let n = unsafe {
                libc::read(
                    self.report.as_raw_fd(),
                    errno[got..].as_mut_ptr().cast(),
                    errno.len() - got,
                )
            };
            match n {
                // End of file: exec closed the child's end.
                0 if got == 0 => return Ok(self.pid),
                0 => break,
                n if n > 0 => got += n as usize,
                _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                _ => return Err(io::Error::last_os_error()),
            }
        }
        let mut status = 0;
        // SAFETY: waits for our own child's pid only; `status` is a live int.
        while unsafe { libc::waitpid(self.pid, &mut status, 0) } == -1
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        Err(match i32::from_ne_bytes(errno) {
            PARENT_GONE => parent_gone(),
            errno => io::Error::from_raw_os_error(errno),
        })
    }
}

/// A pipe whose ends are both close-on-exec: (read, write).
fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just returned by pipe2 and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Whether `clone3` may be tried; cleared for good once the kernel (or a
/// seccomp filter) refuses it.
static CLONE3: AtomicBool = AtomicBool::new(true);

/// Forks the child, which runs `child` up to its exec, and returns its pid.
/// With `cgroup_dir`, the child starts in that cgroup where the kernel
/// allows it (with `clone3`), and otherwise writes that cgroup's
/// `cgroup.procs` itself.
fn fork_child(
    child: &mut Child,
    cgroup_dir: Option<RawFd>,
    clone3: bool,
) -> io::Result<libc::pid_t> {
    let _blocked = BlockedSignals::new();
    if let Some(dir) = cgroup_dir
        && clone3
    {
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: dir as u64,
            ..CloneArgs::default()
        };
        // SAFETY: a fork (no CLONE_VM, no new stack): the child goes on
        // with a copy of this stack, into `child_main`, which never
        // returns. Every signal is blocked, so no handler of pm runs there.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if pid == 0 {
            child_main(child);
        }
        if pid > 0 {
            return Ok(pid as libc::pid_t);
        }
        // Refused: the kernel has no clone3 (ENOSYS, also a seccomp
        // filter's answer) or forbids it (EPERM). Any other refusal (a
        // cgroup that takes no processes, a lack of memory) is left to the
        // fork below, which either works or says what is wrong.
        if matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOSYS | libc::EPERM)
        ) {
            CLONE3.store(false, Ordering::Relaxed);
        }
    }
    // Without clone3, the child moves itself in before exec. (Failing to
    // open it leaves the child to its process group and the guardian, as a
    // failed write would.)
    let _procs = cgroup_dir.and_then(|dir| {
        let procs = open_at(dir, c"cgroup.procs", libc::O_WRONLY).ok()?;
        child.contain.cgroup = Some(procs.as_raw_fd());
        Some(procs)
    });
    // SAFETY: the child goes on with a copy of pm's memory into
    // `child_main`, which never returns. Every signal is blocked.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => child_main(child),
        pid => Ok(pid),
    }
}

/// `CLONE_INTO_CGROUP`, Linux 5.7's `clone3` flag.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` (include/uapi/linux/sched.h), up to
/// `cgroup` (its size then tells the kernel which fields there are).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// pm's environment with `env` on top, as `NAME=value` strings sorted by
/// name (what std's `Command` passes when variables are added): pointers
/// into [`own_environment`] for what `env` leaves alone, into the returned
/// strings for what it sets.
fn environment(env: &[(String, String)]) -> io::Result<(Vec<*const c_char>, Vec<CString>)> {
    // Later settings of a name win, as with std's `Command::env`.
    let mut set: BTreeMap<&[u8], &str> = BTreeMap::new();
    for (key, value) in env {
        set.insert(key.as_bytes(), value);
    }
    let mut added = Vec::with_capacity(set.len());
    for (key, value) in &set {
        let mut var = Vec::with_capacity(key.len() + 1 + value.len() + 1);
        var.extend_from_slice(key);
        var.push(b'=');
        var.extend_from_slice(value.as_bytes());
        added.push(CString::new(var)?);
    }
    // A merge of two lists sorted by name; the added ones win a tie.
    let own = own_environment();
    let mut envp = Vec::with_capacity(own.len() + added.len() + 1);
    let (mut i, mut j) = (0, 0);
    let keys: Vec<&[u8]> = set.keys().copied().collect();
    while i < own.len() || j < added.len() {
        let take_own = match (own.get(i), keys.get(j)) {
            (Some((name, _)), Some(key)) => name.as_slice() < *key,
            (Some(_), None) => true,
            _ => false,
        };
        if take_own {
            envp.push(own[i].1.as_ptr());
            i += 1;
        } else {
            if own
                .get(i)
                .is_some_and(|(name, _)| name.as_slice() == keys[j])
            {
                i += 1;
            }
            envp.push(added[j].as_ptr());
            j += 1;
        }
    }
    envp.push(ptr::null());
    Ok((envp, added))
}

/// pm's own environment as (name, `NAME=value`), sorted by name; read once,
/// since nothing in pm changes it (env files are parsed into each
/// instance's variables, never loaded into pm's).
fn own_environment() -> &'static [(Vec<u8>, CString)] {
    static OWN: OnceLock<Vec<(Vec<u8>, CString)>> = OnceLock::new();
    OWN.get_or_init(|| {
        let vars: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        vars.into_iter()
            .filter_map(|(key, value)| {
                let key = key.into_vec();
                let mut var = key.clone();
                var.push(b'=');
                var.extend(value.into_vec());
                // A NUL cannot be in an environment that exec received.
                Some((key, CString::new(var).ok()?))
            })
            .collect()
    })
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

/// The child's whole life before exec: the steps, then (when one failed)
/// its errno to pm and exit 127.
fn child_main(child: &Child) -> ! {
    // SAFETY: this is the forked child, which is what `run` is written for.
    let error = unsafe { child.run() };
    let bytes = error.to_ne_bytes();
    // SAFETY: write from a stack buffer to the report pipe's write end, and
    // _exit, which ends the child at once, running nothing of pm's. Under
    // PIPE_BUF, the 4 bytes arrive whole.
    unsafe {
        libc::write(child.report, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

impl Child {
    /// The steps before exec; returns the errno of the one that failed
    /// (exec returns only on failure).
    ///
    /// # Safety
    ///
    /// Only in the forked child, with every signal blocked: it calls only
    /// async-signal-safe functions and allocates nothing.
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

    /// The `NAME=value` strings `environment` passes for `env`.
    fn passed(env: &[(&str, &str)]) -> Vec<String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (envp, _added) = environment(&env).unwrap();
        assert!(envp.last().unwrap().is_null());
        envp[..envp.len() - 1]
            .iter()
            // SAFETY: every pointer but the last is a live C string.
            .map(|&p| {
                unsafe { std::ffi::CStr::from_ptr(p) }
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn the_environment_is_pms_with_the_instances_on_top_sorted_once_each() {
        let own = own_environment().len();
        let home_is_set = std::env::var_os("HOME").is_some();
        let vars = passed(&[
            ("HOME", "/elsewhere"),
            ("PM_LAUNCH_LAST", "first"),
            ("PM_LAUNCH_LAST", "second"),
            ("AAA_PM_LAUNCH", "a"),
        ]);
        let names: Vec<&str> = vars.iter().map(|v| v.split('=').next().unwrap()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted, "sorted by name, each once");
        assert!(vars.contains(&"HOME=/elsewhere".to_string()), "{vars:?}");
        assert!(
            vars.contains(&"PM_LAUNCH_LAST=second".to_string()),
            "{vars:?}"
        );
        assert!(vars.contains(&"AAA_PM_LAUNCH=a".to_string()), "{vars:?}");
        assert_eq!(vars.len(), own + 2 + usize::from(!home_is_set));
        assert_eq!(passed(&[]).len(), own);
    }

    #[test]
    fn children_started_together_each_get_their_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let null = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let missing = dir.path().join("missing");
        let cwds = [dir.path(), missing.as_path(), dir.path()];
        let prepared: Vec<Prepared> = cwds
            .iter()
            .map(|cwd| {
                prepare(&Launch {
                    command: "exit 3",
                    cwd,
                    env: &[],
                    stdin: null.as_fd(),
                    stdout: null.as_fd(),
                    stderr: null.as_fd(),
                    terminal: false,
                    contain: Contain::default(),
                    parent: std::process::id() as libc::pid_t,
                })
                .unwrap()
            })
            .collect();
        // All forked before any is finished.
        let pending: Vec<Pending> = prepared.into_iter().map(|p| p.start().unwrap()).collect();
        let results: Vec<io::Result<i32>> = pending.into_iter().map(Pending::finish).collect();
        for (i, result) in results.iter().enumerate() {
            match (i, result) {
                (1, Err(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}"),
                (_, Ok(pid)) => {
                    let mut status = 0;
                    // SAFETY: waits for a child this test started.
                    assert_eq!(unsafe { libc::waitpid(*pid, &mut status, 0) }, *pid);
                    assert_eq!(libc::WEXITSTATUS(status), 3, "its command ran");
                }
                (i, other) => panic!("child {i}: {other:?}"),
            }
        }
    }

    /// Whether this process may make cgroups (root on cgroup2); CI must.
    fn cgroups_here() -> bool {
        let here = nix::unistd::geteuid().is_root()
            && std::fs::read_to_string("/proc/self/mountinfo")
                .is_ok_and(|m| m.lines().any(|l| l.contains(" - cgroup2 ")));
        if !here {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run as root on a machine with cgroup2"
            );
        }
        here
    }

    #[test]
    fn a_child_starts_in_its_cgroup_with_clone3_and_without() {
        if !cgroups_here() {
            return;
        }
        let containment = super::super::Containment::create().expect("a cgroup of pm's own");
        let dir = tempfile::tempdir().unwrap();
        for (clone3, name) in [(true, "clone3"), (false, "written")] {
            let cgroup = containment.instance(name).unwrap();
            let (mut read, write) = io::pipe().unwrap();
            let write = OwnedFd::from(write);
            let null = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
            let pending = prepare(&Launch {
                command: "cat /proc/self/cgroup",
                cwd: dir.path(),
                env: &[],
                stdin: null.as_fd(),
                stdout: write.as_fd(),
                stderr: write.as_fd(),
                terminal: false,
                contain: Contain {
                    cgroup_dir: Some(cgroup.dir_fd()),
                    ..Contain::default()
                },
                parent: std::process::id() as libc::pid_t,
            })
            .unwrap()
            .start_with(clone3)
            .unwrap();
            let pid = pending.finish().unwrap();
            drop(write);
            let mut text = String::new();
            read.read_to_string(&mut text).unwrap();
            let mut status = 0;
            // SAFETY: waits for the child this test started.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            let own = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("");
            assert!(own.ends_with(&format!("/i-{name}")), "{clone3}: {text}");
        }
        super::super::cgroup::kill_tree(containment.root());
    }

    #[test]
    fn a_failure_before_exec_is_the_spawns_error() {
        let error = run("true", Path::new("/nonexistent/pm-launch")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    }
}
