//! Reading the files pm takes as input — the Procfile, env files, pm.toml,
//! `pm audit`'s `--against` files and export directories — with bounds.
//!
//! [`read`] is the one function that reads them. A regular file is read up
//! to [`MAX_INPUT`] bytes (a larger one is an error, before reading it); a
//! FIFO or pipe (`-e <(sops -d .env.enc)`) up to the same size and within
//! [`PIPE_TIMEOUT`]; a device (`/dev/zero`, a terminal) or a directory is an
//! error. So no input can make pm hang or grow without bound.
//!
//! It must never parse: the text goes to the pure parsers in `config/`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::error::io_message;

/// The largest input file pm reads: far above any real Procfile or env file.
pub const MAX_INPUT: u64 = 4 * 1024 * 1024;

/// How long a FIFO or pipe has to give all of its text (a writer that
/// decrypts or fetches it, or none at all).
pub const PIPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an input file could not be read; its `Display` is the message to put
/// after the file's name.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Device,
    Directory,
    /// Larger than [`MAX_INPUT`]: the size when known (a regular file).
    TooLarge(Option<u64>),
    /// A pipe that did not reach its end within [`PIPE_TIMEOUT`].
    TimedOut,
    NotUtf8,
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = MAX_INPUT / (1024 * 1024);
        match self {
            ReadError::Io(e) => write!(f, "{}", io_message(e)),
            ReadError::Device => write!(f, "is a device, not a file"),
            ReadError::Directory => write!(f, "is a directory, not a file"),
            ReadError::TooLarge(Some(size)) => {
                write!(f, "is {size} bytes; input files may be at most {limit} MiB")
            }
            ReadError::TooLarge(None) => write!(
                f,
                "gives more than {limit} MiB; input files may be at most {limit} MiB"
            ),
            ReadError::TimedOut => write!(
                f,
                "a pipe that did not end within {} s (its writer must finish sooner)",
                PIPE_TIMEOUT.as_secs()
            ),
            ReadError::NotUtf8 => write!(f, "not valid UTF-8 text"),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads the input file at `path` as text, within the bounds above.
pub fn read(path: &Path) -> Result<String, ReadError> {
    read_within(path, MAX_INPUT, PIPE_TIMEOUT)
}

fn read_within(path: &Path, limit: u64, timeout: Duration) -> Result<String, ReadError> {
    // Non-blocking: opening a FIFO nobody writes to returns at once instead
    // of waiting for a writer. A regular file ignores the flag.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    let bytes = if kind.is_file() {
        let size = file.metadata()?.len();
        if size > limit {
            return Err(ReadError::TooLarge(Some(size)));
        }
        let mut bytes = Vec::new();
        // A file growing while it is read (or /proc's, which say 0) still
        // stops at the limit.
        file.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(ReadError::TooLarge(None));
        }
        bytes
    } else if kind.is_fifo() || kind.is_socket() {
        read_pipe(file, limit, Instant::now() + timeout)?
    } else if kind.is_dir() {
        return Err(ReadError::Directory);
    } else {
        return Err(ReadError::Device);
    };
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
}

/// Reads a pipe to its end, waiting for data with `poll` until `deadline`.
fn read_pipe(mut file: File, limit: u64, deadline: Instant) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::TimedOut);
        }
        // Rounded up, so a wait never ends a little early and spins.
        let millis = left.as_millis().saturating_add(1);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return Err(ReadError::TimedOut),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(ReadError::Io(e.into())),
        }
        match file.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => {
                bytes.extend_from_slice(&chunk[..n]);
                if bytes.len() as u64 > limit {
                    return Err(ReadError::TooLarge(None));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn regular_files_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Procfile");
        std::fs::write(&path, "web: run\n").unwrap();
        assert_eq!(read(&path).unwrap(), "web: run\n");
        // Sparse: no 4 MiB written for it.
        File::create(&path).unwrap().set_len(MAX_INPUT + 1).unwrap();
        assert_eq!(
            read(&path).unwrap_err().to_string(),
            "is 4194305 bytes; input files may be at most 4 MiB"
        );
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert_eq!(read(&path).unwrap_err().to_string(), "not valid UTF-8 text");
        assert!(
            read(&dir.path().join("missing"))
                .unwrap_err()
                .is_not_found()
        );
        assert_eq!(
            read(dir.path()).unwrap_err().to_string(),
            "is a directory, not a file"
        );
    }

    #[test]
    fn devices_are_refused() {
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.to_string(), "is a device, not a file");
        assert!(matches!(
            read(Path::new("/dev/null")),
            Err(ReadError::Device)
        ));
    }

    #[test]
    fn a_fifo_is_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut fifo = OpenOptions::new().write(true).open(writer_path).unwrap();
            for i in 0..1000 {
                writeln!(fifo, "V{i}=x").unwrap();
            }
        });
        let text = read(&path).unwrap();
        writer.join().unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert!(text.ends_with("V999=x\n"));
    }

    #[test]
    fn a_fifo_nobody_writes_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let started = Instant::now();
        let e = read_within(&path, MAX_INPUT, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, ReadError::TimedOut), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_endless_pipe_stops_at_the_limit() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let feeding = std::thread::spawn(move || while writer.write_all(&[b'x'; 4096]).is_ok() {});
        let e = read_pipe(File::from(std::os::fd::OwnedFd::from(reader)), 100_000, {
            Instant::now() + Duration::from_secs(10)
        })
        .unwrap_err();
        assert!(matches!(e, ReadError::TooLarge(None)), "{e}");
        feeding.join().unwrap();
    }
}
