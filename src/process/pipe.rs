//! A child's output as the runtime reads it: the read end of its pipe (or
//! pty), registered with tokio's reactor, read without blocking.
//!
//! Registering a descriptor is `unsafe` in tokio because the registration
//! must keep naming the same open file; [`OutputPipe`] owns the descriptor
//! and never hands out a way to replace or close it, so that holds.
//!
//! On Linux a pipe that a read finds full (the child is waiting for pm) is
//! made [`WIDE_PIPE`] bytes instead of the kernel's 64 KiB: a child writing
//! in blocks then runs a few blocks ahead of pm instead of waiting for each
//! of pm's reads, and both sleep and wake less often. Two such pipes at
//! most are open at once ([`MOST_WIDE`]); the others keep the default, and
//! so does a child that never fills its pipe. The pages are the kernel's,
//! taken only while output waits in the pipe. They count against the
//! user's pipe allowance (`/proc/sys/fs/pipe-user-pages-soft`), past which
//! the kernel gives every new pipe of that user a single page: pm's wide
//! pipes also stay within a quarter of it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// The size a full output pipe is given on Linux: four times the default.
/// Larger measured no faster with pm's 64 KiB reads.
#[cfg(target_os = "linux")]
pub const WIDE_PIPE: usize = 256 * 1024;

/// The most wide pipes open at once. The room lets a child run ahead while
/// pm's one reading thread is busy; when more children write at once, pm
/// is what they wait for, and more room only spreads their output beyond
/// the caches (8 children writing 4 KiB blocks into wide pipes cost pm
/// about a tenth more CPU per line; with two wide, within the runs' spread).
#[cfg(target_os = "linux")]
const MOST_WIDE: usize = 2;

/// Wide pipes open, against a limit.
#[derive(Debug)]
struct Places {
    open: AtomicUsize,
    limit: fn() -> usize,
}

/// pm's wide pipes.
static PLACES: Places = Places {
    open: AtomicUsize::new(0),
    limit: wide_limit,
};

/// A wide pipe's place among [`Places`], given back when the pipe is
/// closed (or when it was not made wide after all).
#[derive(Debug)]
struct Place(&'static Places);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Places {
    /// A place, if one is free.
    fn take(&'static self) -> Option<Place> {
        let place = Place(self);
        (self.open.fetch_add(1, Ordering::Relaxed) < (self.limit)()).then_some(place)
    }
}

/// How many wide pipes may be open at once: [`MOST_WIDE`], within a
/// quarter of the user's soft pipe allowance (none where it cannot be
/// read).
#[cfg(target_os = "linux")]
fn wide_limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let pages = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok());
        limit_for(pages)
    })
}

/// [`wide_limit`] for a soft allowance of `pages` pages of 4 KiB; 0 pages
/// is no limit.
#[cfg(target_os = "linux")]
fn limit_for(pages: Option<usize>) -> usize {
    let allowed = match pages {
        Some(0) => usize::MAX,
        Some(pages) => pages.saturating_mul(4096) / 4 / WIDE_PIPE,
        None => 0,
    };
    allowed.min(MOST_WIDE)
}

/// Makes the pipe `fd` wide, holding `place`: the place if it did, None if
/// the pipe stays as it is (it already holds as much, or the kernel
/// refused, as for a size over `pipe-max-size`).
#[cfg(target_os = "linux")]
fn widen(fd: BorrowedFd<'_>, place: Place) -> Option<Place> {
    use nix::fcntl::{FcntlArg, fcntl};
    let size = fcntl(fd, FcntlArg::F_GETPIPE_SZ).ok()?;
    let wide = libc::c_int::try_from(WIDE_PIPE).unwrap_or(libc::c_int::MAX);
    if size >= wide {
        return None;
    }
    fcntl(fd, FcntlArg::F_SETPIPE_SZ(wide)).ok().map(|_| place)
}

#[cfg(not(target_os = "linux"))]
fn widen(_fd: BorrowedFd<'_>, _place: Place) -> Option<Place> {
    None
}

/// No pipe is made wide elsewhere.
#[cfg(not(target_os = "linux"))]
fn wide_limit() -> usize {
    0
}

/// The read end of a child's output, owned and registered for readability.
#[derive(Debug)]
pub struct OutputPipe {
    fd: AsyncFd<OwnedFd>,
    /// A pipe, not a pty: a read takes everything it holds, up to what was
    /// asked for.
    fifo: bool,
    /// What became of the pipe once a read found it full and a place was
    /// free: made wide (its place, held for as long as the pipe is open),
    /// or left as it is for good (None). Unset until then: a full read
    /// while no place is free tries again at the next.
    wide: OnceLock<Option<Place>>,
}

impl OutputPipe {
    /// Registers `fd` (non-blocking) with the current tokio runtime.
    pub fn register(fd: OwnedFd) -> io::Result<OutputPipe> {
        let file = File::from(fd);
        let fifo = file.metadata().is_ok_and(|m| m.file_type().is_fifo());
        let fd = OwnedFd::from(file);
        // SAFETY: the AsyncFd owns the OwnedFd, and this type exposes it only
        // by shared reference, so the descriptor stays open and names the
        // same pipe (or pty) for as long as it is registered.
        let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
        Ok(OutputPipe {
            fd: registered?,
            fifo,
            wide: OnceLock::new(),
        })
    }

    /// Waits until the reactor reports the pipe readable. The guard's
    /// `clear_ready` says a read found it empty after all.
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, OwnedFd>> {
        self.fd.readable().await
    }

    /// One `read` into `buf`: `Ok(0)` at the end of the output, `WouldBlock`
    /// when nothing is there yet.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(self.fd.get_ref(), buf).map_err(io::Error::from)
    }

    /// Whether a read that got `got` of the `asked` bytes left nothing
    /// behind, so the next one would only say `WouldBlock`: true of a pipe
    /// given less than it asked for. (A pty hands out a chunk at a time, so
    /// a short read says nothing there.) The reactor hears of every write
    /// that comes after, so its readiness may be cleared at once: one
    /// `read` per chunk instead of two.
    pub fn emptied_by(&self, got: usize, asked: usize) -> bool {
        self.fifo && got < asked
    }

    /// Told after each read that got `got` of the `asked` bytes. A read
    /// that took all it asked for found the pipe full, its child waiting
    /// for pm: the first such read that finds a place free makes the pipe
    /// wide.
    pub fn read_some(&self, got: usize, asked: usize) {
        self.read_some_in(got, asked, &PLACES);
    }

    fn read_some_in(&self, got: usize, asked: usize, places: &'static Places) {
        if self.fifo
            && got == asked
            && self.wide.get().is_none()
            && let Some(place) = places.take()
        {
            let _ = self.wide.set(widen(self.fd.get_ref().as_fd(), place));
        }
    }

    /// Whether the pipe was made wide.
    #[cfg(all(test, target_os = "linux"))]
    fn is_wide(&self) -> bool {
        self.wide.get().is_some_and(Option::is_some)
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn size(fd: BorrowedFd<'_>) -> usize {
        let got = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETPIPE_SZ).unwrap();
        usize::try_from(got).unwrap()
    }

    #[test]
    fn the_limit_is_two_within_a_quarter_of_the_soft_allowance() {
        // The kernel's default allowance: 16384 pages, 64 MiB.
        assert_eq!(limit_for(Some(16384)), 2);
        assert_eq!(limit_for(Some(0)), 2);
        assert_eq!(limit_for(Some(128)), 0);
        assert_eq!(limit_for(Some(64)), 0);
        assert_eq!(limit_for(Some(256)), 1);
        assert_eq!(limit_for(None), 0);
    }

    /// Places of their own, so that children other tests start do not
    /// take them.
    fn places(limit: fn() -> usize) -> &'static Places {
        Box::leak(Box::new(Places {
            open: AtomicUsize::new(0),
            limit,
        }))
    }

    fn registered() -> (OutputPipe, io::PipeWriter) {
        let (read, write) = io::pipe().unwrap();
        (OutputPipe::register(OwnedFd::from(read)).unwrap(), write)
    }

    /// Only a read that took a whole buffer (the pipe was full, its child
    /// waiting) makes a pipe wide, and only while a place is free; a pipe
    /// closed gives its place back, so a child restarted again and again
    /// does not use up the limit.
    #[tokio::test]
    async fn a_full_pipe_is_made_wide_while_a_place_is_free() {
        let places = places(|| 2);
        for round in 0..10 {
            let (pipe, _write) = registered();
            pipe.read_some_in(100, 65536, places);
            assert!(!pipe.is_wide(), "round {round}: a short read widened it");
            pipe.read_some_in(65536, 65536, places);
            assert!(pipe.is_wide(), "round {round}");
            assert_eq!(size(pipe.fd.get_ref().as_fd()), WIDE_PIPE);
        }
        assert_eq!(places.open.load(Ordering::Relaxed), 0);

        let open: Vec<_> = (0..3).map(|_| registered()).collect();
        for (pipe, _) in &open {
            pipe.read_some_in(65536, 65536, places);
        }
        let wide: Vec<bool> = open.iter().map(|(pipe, _)| pipe.is_wide()).collect();
        assert_eq!(wide, [true, true, false]);
        assert!(size(open[2].0.fd.get_ref().as_fd()) < WIDE_PIPE);
        // A place freed goes to the next full read of the pipe left out.
        let mut open = open;
        drop(open.remove(0));
        open[1].0.read_some_in(65536, 65536, places);
        assert!(open[1].0.is_wide());
        drop(open);
        assert_eq!(places.open.load(Ordering::Relaxed), 0);
    }

    /// A pipe that already holds as much is left as it is, for good, and
    /// gives its place back at once.
    #[tokio::test]
    async fn a_pipe_as_large_already_is_left_alone() {
        let places = places(|| 2);
        let (pipe, _write) = registered();
        let large = libc::c_int::try_from(2 * WIDE_PIPE).unwrap();
        nix::fcntl::fcntl(pipe.fd.get_ref(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(large)).unwrap();
        pipe.read_some_in(65536, 65536, places);
        assert!(!pipe.is_wide());
        assert!(pipe.wide.get().is_some(), "not settled");
        assert_eq!(size(pipe.fd.get_ref().as_fd()), 2 * WIDE_PIPE);
        assert_eq!(places.open.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_pty_takes_no_place() {
        let places = places(|| 2);
        let pty = nix::pty::openpty(None, None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _entered = rt.enter();
        let pipe = OutputPipe::register(pty.master).unwrap();
        pipe.read_some_in(65536, 65536, places);
        assert!(!pipe.is_wide());
        assert_eq!(places.open.load(Ordering::Relaxed), 0);
    }
}
