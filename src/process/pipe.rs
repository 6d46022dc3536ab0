//! A child's output as the runtime reads it: the read end of its pipe (or
//! pty), registered with tokio's reactor, read without blocking.
//!
//! Registering a descriptor is `unsafe` in tokio because the registration
//! must keep naming the same open file; [`OutputPipe`] owns the descriptor
//! and never hands out a way to replace or close it, so that holds.
//!
//! On Linux a child's output pipe is made [`WIDE_PIPE`] bytes instead of
//! the kernel's 64 KiB ([`ChildOutput::pipe`]): a child writing in blocks
//! then runs a few blocks ahead of pm instead of waiting for each of pm's
//! reads, and both sleep and wake less often. Two such pipes at most are
//! open at once ([`MOST_WIDE`]); the other children keep the default. The
//! pages are the kernel's, taken only while output waits in the pipe. They
//! count against the user's pipe allowance
//! (`/proc/sys/fs/pipe-user-pages-soft`), past which the kernel gives every
//! new pipe of that user a single page: pm's wide pipes also stay within a
//! quarter of it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
#[cfg(target_os = "linux")]
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// The size of a child's output pipe on Linux: four times the default.
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
    #[cfg(target_os = "linux")]
    limit: fn() -> usize,
}

/// pm's wide pipes.
static PLACES: Places = Places {
    open: AtomicUsize::new(0),
    #[cfg(target_os = "linux")]
    limit: wide_limit,
};

/// A wide pipe's place among [`Places`], given back when the pipe is
/// closed.
#[derive(Debug)]
struct Place(&'static Places);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(target_os = "linux")]
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

/// Makes the pipe `fd` wide if one of `places` is free; its place, if it
/// did. A refusal (a size over `pipe-max-size`) leaves the pipe as it was.
#[cfg(target_os = "linux")]
fn widen(fd: BorrowedFd<'_>, places: &'static Places) -> Option<Place> {
    let place = places.take()?;
    let size = libc::c_int::try_from(WIDE_PIPE).unwrap_or(libc::c_int::MAX);
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size))
        .ok()
        .map(|_| place)
}

#[cfg(not(target_os = "linux"))]
fn widen(_fd: BorrowedFd<'_>, _places: &'static Places) -> Option<Place> {
    None
}

/// pm's end of a child's output before the runtime reads it: the read end
/// of its pipe, or the master of its pty, with the pipe's place if it is
/// wide.
#[derive(Debug)]
pub struct ChildOutput {
    fd: OwnedFd,
    place: Option<Place>,
}

impl ChildOutput {
    /// The read end `fd` of a new pipe, made wide if a place is free.
    pub fn pipe(fd: OwnedFd) -> ChildOutput {
        ChildOutput::pipe_in(fd, &PLACES)
    }

    fn pipe_in(fd: OwnedFd, places: &'static Places) -> ChildOutput {
        let place = widen(fd.as_fd(), places);
        ChildOutput { fd, place }
    }

    /// Whether the pipe was made wide.
    #[cfg(all(test, target_os = "linux"))]
    fn is_wide(&self) -> bool {
        self.place.is_some()
    }
}

/// A pty's master, or a pipe left as it is.
impl From<OwnedFd> for ChildOutput {
    fn from(fd: OwnedFd) -> ChildOutput {
        ChildOutput { fd, place: None }
    }
}

impl AsFd for ChildOutput {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The read end of a child's output, owned and registered for readability.
#[derive(Debug)]
pub struct OutputPipe {
    fd: AsyncFd<OwnedFd>,
    /// A pipe, not a pty: a read takes everything it holds, up to what was
    /// asked for.
    fifo: bool,
    /// Held for as long as the pipe is open.
    _place: Option<Place>,
}

impl OutputPipe {
    /// Registers `output` (non-blocking) with the current tokio runtime.
    pub fn register(output: ChildOutput) -> io::Result<OutputPipe> {
        let ChildOutput { fd, place } = output;
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
            _place: place,
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

    /// Every pipe closed gives its place back, registered or not: a child
    /// restarted again and again, or failing to start, does not use up the
    /// limit. Past the limit, pipes keep the kernel's size.
    #[tokio::test]
    async fn a_wide_pipe_gives_its_place_back_when_closed() {
        let places = places(|| 2);
        for round in 0..10 {
            let (read, _write) = io::pipe().unwrap();
            let output = ChildOutput::pipe_in(OwnedFd::from(read), places);
            assert!(output.is_wide(), "round {round}");
            assert_eq!(size(output.as_fd()), WIDE_PIPE);
            if round % 2 == 0 {
                let pipe = OutputPipe::register(output).unwrap();
                assert_eq!(size(pipe.fd.get_ref().as_fd()), WIDE_PIPE);
            }
        }
        let open: Vec<ChildOutput> = (0..3)
            .map(|_| ChildOutput::pipe_in(OwnedFd::from(io::pipe().unwrap().0), places))
            .collect();
        let wide: Vec<bool> = open.iter().map(ChildOutput::is_wide).collect();
        assert_eq!(wide, [true, true, false]);
        assert!(size(open[2].as_fd()) < WIDE_PIPE);
        drop(open);
        assert_eq!(places.open.load(Ordering::Relaxed), 0);
    }
    #[test]
    fn a_pty_master_or_plain_pipe_takes_no_place() {
        let (read, _write) = io::pipe().unwrap();
        let output = ChildOutput::from(OwnedFd::from(read));
        assert!(!output.is_wide());
        assert!(size(output.as_fd()) < WIDE_PIPE);
    }
}
