//! Containment by cgroup (Linux, cgroup v2): every instance runs in a cgroup
//! of its own under pm's, so what an instance starts stays countable and
//! killable whatever it does to its process group or session (`setsid`,
//! `setpgid`, a double fork).
//!
//! pm's cgroup is `pm-<pid>` under the cgroup pm itself runs in, found through
//! `/proc/self/mountinfo` (on a hybrid machine the cgroup2 hierarchy is not
//! at `/sys/fs/cgroup`) and `/proc/self/cgroup`. pm can make one as root or
//! in a delegated subtree (a systemd user slice); elsewhere [`Containment::create`]
//! says no and pm falls back on process groups. Nothing here uses a
//! controller: cgroup.procs, cgroup.events, cgroup.kill and cgroup.freeze
//! are in every cgroup2 directory.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// pm's own cgroup, holding one cgroup per instance, with an exclusive
/// lock on its directory for pm's life: a `pm-*` cgroup nobody holds locked
/// is one a killed pm left behind. (A pid in the name would not tell: pm
/// may run in another pid namespace than the pm looking.)
#[derive(Debug)]
pub struct Containment {
    root: PathBuf,
    _lock: Flock<fs::File>,
}

/// One instance's cgroup, with its directory open for the spawn path: a
/// `clone3` starts the child inside it (`CLONE_INTO_CGROUP`), or, where
/// the kernel refuses that, the child writes `0` to its `cgroup.procs`
/// between fork and exec. Either way it is inside before it can fork.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    dir_fd: OwnedFd,
}

const PREFIX: &str = "pm-";

impl Containment {
    /// Makes pm's cgroup, after emptying and removing any that a killed pm
    /// left beside it. None where no cgroup2 hierarchy is mounted or pm may
    /// not create a cgroup in its own.
    pub fn create() -> Option<Containment> {
        // `PM_CGROUP=off`: process groups and the guardian alone.
        if std::env::var_os("PM_CGROUP").is_some_and(|v| v == "off") {
            return None;
        }
        let base = own_cgroup_dir()?;
        clean_stale(&base);
        let pid = std::process::id();
        let (root, lock) = (0..100).find_map(|n| {
            let name = match n {
                0 => format!("{PREFIX}{pid}"),
                n => format!("{PREFIX}{pid}-{n}"),
            };
            let root = base.join(name);
            // Taken: a live pm of that name (in another pid namespace).
            fs::create_dir(&root).ok()?;
            Some((root.clone(), lock(&root)?))
        })?;
        // A cgroup that cannot take processes (a v2 "no internal process"
        // parent with controllers, a read-only file) is no use.
        if !root.join("cgroup.procs").exists() {
            let _ = fs::remove_dir(&root);
            return None;
        }
        Some(Containment { root, _lock: lock })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cgroup of instance `name` (made if it does not exist yet).
    pub fn instance(&self, name: &str) -> io::Result<Cgroup> {
        // `cgroup.*` names are the kernel's: keep instance names apart.
        let leaf = format!("i-{name}");
        // Made and opened from pm's cgroup's descriptor (the lock's), so the
        // kernel walks one name, not the whole path, for each instance.
        let root = self._lock.as_raw_fd();
        let c_leaf = std::ffi::CString::new(leaf.as_str())?;
        // SAFETY: mkdirat on a directory descriptor we hold, with a C string.
        if unsafe { libc::mkdirat(root, c_leaf.as_ptr(), 0o755) } == -1 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::AlreadyExists {
                return Err(error);
            }
        }
        let dir_fd = open_at(root, &c_leaf, libc::O_RDONLY | libc::O_DIRECTORY)?;
        Ok(Cgroup {
            dir: self.root.join(leaf),
            dir_fd,
        })
    }
}

/// `openat(dir, name, flags | O_CLOEXEC)`.
pub(super) fn open_at(dir: RawFd, name: &std::ffi::CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: openat on a descriptor the caller holds, with a C string.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

impl Cgroup {
    /// The descriptor of the cgroup's directory, for `CLONE_INTO_CGROUP`.
    pub(super) fn dir_fd(&self) -> RawFd {
        self.dir_fd.as_raw_fd()
    }

    /// The pids in the cgroup now.
    pub fn pids(&self) -> Vec<i32> {
        pids_in(&self.dir)
    }

    /// Whether any process is still in the cgroup.
    pub fn is_populated(&self) -> bool {
        populated(&self.dir)
    }

    /// Sends `sig` to every process in the cgroup but those for which
    /// `skip` holds (the members of the instance's group, which get the
    /// signal with their group). SIGKILL goes to the whole cgroup at once.
    pub fn signal(&self, sig: Signal, skip: impl Fn(i32) -> bool) {
        if sig == Signal::SIGKILL {
            kill_all(&self.dir);
            return;
        }
        for pid in self.pids() {
            if !skip(pid) {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
    }
}

/// Kills every process in the cgroup `dir` and below it, waits (briefly)
/// until it is empty, and removes its directories. What the guardian does
/// when pm is gone, and what a new pm does with a cgroup a killed one left.
pub fn kill_tree(dir: &Path) {
    kill_all(dir);
    let deadline = Instant::now() + Duration::from_secs(2);
    while populated(dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        // A process forked between the listing and the kill (no cgroup.kill)
        // is caught on the next round.
        kill_all(dir);
    }
    remove_tree(dir);
}

/// SIGKILL for everything in `dir`'s subtree: cgroup.kill where the kernel
/// has it (5.14+), else freeze, kill every pid, thaw.
fn kill_all(dir: &Path) {
    if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    let frozen = fs::write(dir.join("cgroup.freeze"), "1").is_ok();
    for sub in subtree(dir) {
        for pid in pids_in(&sub) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    if frozen {
        // A frozen process cannot die: thaw after the kill.
        let _ = fs::write(dir.join("cgroup.freeze"), "0");
    }
}

/// `dir` and every cgroup below it, deepest last.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = fs::read_dir(&out[i]) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(entry.path());
                }
            }
        }
        i += 1;
    }
    out
}

fn remove_tree(dir: &Path) {
    for sub in subtree(dir).iter().rev() {
        let _ = fs::remove_dir(sub);
    }
}

fn pids_in(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|text| text.lines().any(|l| l.trim() == "populated 1"))
        .unwrap_or(false)
}

/// An exclusive lock on the cgroup directory `dir`, if nobody holds one.
fn lock(dir: &Path) -> Option<Flock<fs::File>> {
    let file = fs::File::open(dir).ok()?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

/// Empties and removes the `pm-*` cgroups beside pm's that no pm holds.
fn clean_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let is_pm = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(PREFIX));
        if is_pm && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let path = entry.path();
            if let Some(held) = lock(&path) {
                kill_tree(&path);
                drop(held);
            }
        }
    }
}

/// The directory of the cgroup pm runs in, on the cgroup2 hierarchy.
fn own_cgroup_dir() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let (mount, root) = cgroup2_mount(&mountinfo)?;
    // The path in /proc/self/cgroup is from the hierarchy's root; the mount
    // shows the hierarchy from `root` down (a cgroup namespace, a bind).
    let relative = own.strip_prefix(root.trim_end_matches('/'))?;
    let dir = Path::new(&mount).join(relative.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// The mount point and the root of the first cgroup2 mount in mountinfo.
fn cgroup2_mount(mountinfo: &str) -> Option<(String, String)> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fstype = after.split_whitespace().next()?;
        if fstype != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = before.split_whitespace().collect();
        let root = unescape(fields.get(3)?);
        let mount = unescape(fields.get(4)?);
        Some((mount, root))
    })
}

/// mountinfo writes blanks, tabs, newlines and backslashes as octal escapes.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code as char);
            i += 4;
            continue;
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_on_a_hybrid_machine() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs ro,size=4096k
37 31 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(("/sys/fs/cgroup/unified".into(), "/".into()))
        );
        let pure = "25 1 0:22 /user.slice /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(pure),
            Some(("/sys/fs/cgroup x".into(), "/user.slice".into()))
        );
        assert_eq!(cgroup2_mount("1 2 0:1 / /x rw - cgroup cgroup rw\n"), None);
    }
}
