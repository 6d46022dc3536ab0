//! The shared harness: a temporary app directory, the real `pm` binary, and a
//! handle on a running `pm start` that reads its output line by line.
//!
//! Nothing here sleeps a fixed time or waits without a deadline: every wait
//! polls a condition against a deadline and fails with everything seen so
//! far, and every process it runs to completion leads its own process group,
//! killed at the deadline.

#![allow(dead_code)]

use std::fmt::Debug;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgid};

pub const PM: &str = env!("CARGO_BIN_EXE_pm");

/// Generous deadlines: they bound a failure, they never pace a success.
pub const SECS: fn(u64) -> Duration = Duration::from_secs;

pub struct App {
    pub dir: tempfile::TempDir,
}

impl App {
    pub fn new() -> App {
        App {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// An app with this Procfile.
    pub fn with_procfile(procfile: &str) -> App {
        let app = App::new();
        app.file("Procfile", procfile);
        app
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&path, content).expect("write file");
        path
    }

    /// `pm ARGS` in the app directory, with a clean, predictable environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(PM);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("NO_COLOR")
            .env_remove("PORT")
            .env_remove("PM_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs pm to completion (bounded by a deadline).
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Finished {
        Finished::from(run_with_deadline(&mut self.cmd(args), SECS(30)))
    }

    /// Starts `pm ARGS` in its own process group and reads its output.
    pub fn start(&self, args: &[&str]) -> Running {
        Running::spawn(self.cmd(args))
    }
}

/// `program arg...` of a command, for messages.
fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let mut words = vec![
        program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned(),
    ];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    format!("`{}`", words.join(" "))
}

/// Everything a pipe has given so far, read by a thread of its own, so a
/// deadline can report it even while the pipe is still open.
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    closed: Receiver<()>,
}

impl Capture {
    fn start<R: Read + Send + 'static>(mut pipe: R) -> Capture {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let (tx, closed) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => sink.lock().expect("lock").extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
        Capture { bytes, closed }
    }

    /// An empty capture, for a pipe the caller kept or closed.
    fn none() -> Capture {
        let (_, closed) = mpsc::channel();
        Capture {
            bytes: Arc::default(),
            closed,
        }
    }

    /// Whether the pipe closed before `deadline`.
    fn closed_by(&self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        !matches!(
            self.closed.recv_timeout(left),
            Err(RecvTimeoutError::Timeout)
        )
    }

    fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().expect("lock").clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

/// Runs `cmd` to completion as `Command::output` does (no stdin, stdout and
/// stderr captured), leading a process group of its own. At the deadline the
/// group is killed and the test fails with what the command wrote so far.
#[track_caller]
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Output {
    try_run_with_deadline(cmd, limit)
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)))
}

/// As [`run_with_deadline`], but a command that cannot be started at all
/// (not installed) is an error for the caller rather than a failure.
#[track_caller]
pub fn try_run_with_deadline(cmd: &mut Command, limit: Duration) -> io::Result<Output> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    Ok(wait_with_deadline(child, &describe(cmd), limit))
}

/// `Child::wait_with_output` with a deadline: reads what is left of the
/// child's stdout and stderr pipes (those it still has) until it exits and
/// they close. At the deadline the child (its process group, when it leads
/// one) is killed and the test fails with what it wrote so far; so it does
/// when the child exits but something it started keeps its output open.
#[track_caller]
pub fn wait_with_deadline(mut child: Child, what: &str, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    let stdout = child
        .stdout
        .take()
        .map_or_else(Capture::none, Capture::start);
    let stderr = child
        .stderr
        .take()
        .map_or_else(Capture::none, Capture::start);
    let pid = Pid::from_raw(child.id() as i32);
    let kill_it = || {
        if getpgid(Some(pid)) == Ok(pid) {
            let _ = killpg(pid, Signal::SIGKILL);
        } else {
            let _ = kill(pid, Signal::SIGKILL);
        }
    };
    let seen = || {
        format!(
            "--- stdout so far ---\n{}\n--- stderr so far ---\n{}",
            stdout.text(),
            stderr.text()
        )
    };
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            kill_it();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?} (killed)\n{}", seen());
        }
        thread::sleep(Duration::from_millis(5));
    };
    // The pipes close once the last process holding them is gone.
    let grace = Instant::now() + SECS(5);
    if !(stdout.closed_by(grace) && stderr.closed_by(grace)) {
        panic!(
            "{what} exited ({status}) but its output was still open 5 s later: \
             a process it started holds it\n{}",
            seen()
        );
    }
    Output {
        status,
        stdout: stdout.bytes(),
        stderr: stderr.bytes(),
    }
}

/// A finished `pm` run.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Finished {
    fn from(out: Output) -> Finished {
        Finished {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts failure with `code` and a stderr that starts with `prefix`.
    #[track_caller]
    pub fn assert_error_starts(&self, code: i32, prefix: &str) {
        assert!(
            self.code() == Some(code) && self.stderr.starts_with(prefix),
            "wanted exit {code} and stderr starting with {prefix:?}, got {:?}\nstderr: {}\nstdout: {}",
            self.code(),
            self.stderr,
            self.stdout
        );
    }

    /// Asserts failure with `code` and a stderr that contains `part`.
    #[track_caller]
    pub fn assert_error_contains(&self, code: i32, part: &str) {
        assert!(
            self.code() == Some(code) && self.stderr.contains(part),
            "wanted exit {code} and stderr containing {part:?}, got {:?}\nstderr: {}\nstdout: {}",
            self.code(),
            self.stderr,
            self.stdout
        );
    }

    /// Asserts failure with exactly these stderr lines.
    #[track_caller]
    pub fn assert_error(&self, code: i32, stderr: &str) {
        assert_eq!(
            (self.code(), self.stderr.as_str()),
            (Some(code), stderr),
            "stdout was: {}",
            self.stdout
        );
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &str {
        assert_eq!(
            self.code(),
            Some(0),
            "stderr: {}\nstdout: {}",
            self.stderr,
            self.stdout
        );
        &self.stdout
    }
}

/// A running `pm start`.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
    stderr: Capture,
    /// Held until pm's stdout may be read (see [`Running::spawn_unread`]).
    unread: Option<mpsc::Sender<()>>,
    status: Option<ExitStatus>,
}

impl Running {
    pub fn spawn(cmd: Command) -> Running {
        let mut pm = Running::spawn_unread(cmd);
        pm.read_stdout();
        pm
    }

    /// Starts `cmd` as [`Running::spawn`] does, but nobody reads its stdout
    /// until [`Running::read_stdout`]: pm meets a stalled reader.
    pub fn spawn_unread(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn pm");
        let stdout = child.stdout.take().expect("stdout");
        let (go, unread) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            if unread.recv().is_err() {
                return;
            }
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if tx.send(text).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Capture::start(child.stderr.take().expect("stderr"));
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
            unread: Some(go),
            status: None,
        }
    }

    /// Starts reading pm's stdout (after [`Running::spawn_unread`]).
    pub fn read_stdout(&mut self) {
        if let Some(go) = self.unread.take() {
            let _ = go.send(());
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    fn context(&self) -> String {
        format!(
            "--- stdout so far ---\n{}\n--- stderr ---\n{}",
            self.seen.join("\n"),
            self.stderr()
        )
    }

    /// Waits for the next line containing `pattern`; returns it.
    #[track_caller]
    pub fn wait_for_line(&mut self, pattern: &str, limit: Duration) -> String {
        self.wait_for(|l| l.contains(pattern), limit)
            .unwrap_or_else(|| {
                panic!(
                    "no line containing {pattern:?} within {limit:?}\n{}",
                    self.context()
                )
            })
    }

    /// Waits until some line, already seen or still to come, contains `pattern`.
    #[track_caller]
    pub fn wait_until_seen(&mut self, pattern: &str, limit: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(pattern)) {
            return line.clone();
        }
        self.wait_for_line(pattern, limit)
    }

    /// Waits for the next line that satisfies `pred`; None on timeout or end.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None;
                }
            }
        }
    }

    /// Reads every remaining line until pm's stdout closes.
    pub fn read_to_end(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("pm's stdout still open after {limit:?}\n{}", self.context())
                }
            }
        }
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).expect("signal pm");
    }

    /// Waits for pm to exit, reading all its output; returns the status.
    #[track_caller]
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.status = Some(status);
                self.read_to_end(SECS(5));
                return status;
            }
            if Instant::now() > deadline {
                panic!("pm did not exit within {limit:?}\n{}", self.context());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM to pm; asserts that it exits 0 within `limit`.
    #[track_caller]
    pub fn stop_ok(&mut self, limit: Duration) {
        self.signal(Signal::SIGTERM);
        let status = self.wait_for_exit(limit);
        assert_eq!(
            status.code(),
            Some(0),
            "pm did not exit 0 on SIGTERM\n{}",
            self.context()
        );
    }

    /// Lines seen so far that contain `pattern`.
    pub fn lines_with(&self, pattern: &str) -> Vec<&String> {
        self.seen.iter().filter(|l| l.contains(pattern)).collect()
    }

    /// Asserts that some line seen so far contains `pattern`.
    #[track_caller]
    pub fn assert_saw(&self, pattern: &str) {
        assert!(
            self.seen.iter().any(|l| l.contains(pattern)),
            "no line containing {pattern:?}\n{}",
            self.context()
        );
    }

    /// The index in `seen` of the first line containing `pattern`.
    #[track_caller]
    pub fn index_of(&self, pattern: &str) -> usize {
        self.index_where(&format!("containing {pattern:?}"), |l| l.contains(pattern))
    }

    /// The index in `seen` of the first line that satisfies `pred`;
    /// `what` describes it when there is none.
    #[track_caller]
    pub fn index_where(&self, what: &str, pred: impl Fn(&str) -> bool) -> usize {
        self.seen
            .iter()
            .position(|l| pred(l))
            .unwrap_or_else(|| panic!("no line {what}\n{}", self.context()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// The text after `| ` in a pm output line.
pub fn text_of(line: &str) -> &str {
    line.split_once("| ").map(|(_, t)| t).unwrap_or("")
}

/// The process state letter from /proc (R, S, Z...), None when it is gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// The process's name, as `ps`, `killall` and `pkill` match it
/// (/proc/PID/comm); empty once it is gone.
pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// Whether the process exists and has not exited: not a zombie, or a zombie
/// thread-group leader whose other threads still run (and hold its files, a
/// listening socket among them); /proc/PID/status counts them in `Threads:`.
pub fn alive(pid: i32) -> bool {
    match proc_state(pid) {
        None => false,
        Some('Z' | 'X') => fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .and_then(|n| n.trim().parse::<u32>().ok())
            })
            .is_some_and(|threads| threads > 1),
        Some(_) => true,
    }
}

/// Polls until `cond` holds; false if it never did within `limit`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `probe` until `done` holds for what it returns, and returns that;
/// fails with `what` and the last value seen when it never did within `limit`.
#[track_caller]
pub fn wait_until<T: Debug>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let value = probe();
        if done(&value) {
            return value;
        }
        if Instant::now() > deadline {
            panic!("{what}: not within {limit:?}; last seen: {value:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A base port P such that P + each of `offsets` is free on 127.0.0.1, and
/// one more free port, distinct from those (for a proxy). Another program
/// may still take one before pm binds it: the test then fails, never hangs.
pub fn free_ports(offsets: &[u16]) -> (u16, u16) {
    let top = offsets.iter().copied().max().unwrap_or(0);
    for _ in 0..100 {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let base = probe.local_addr().expect("local address").port();
        drop(probe);
        if u32::from(base) + u32::from(top) > 65_000 {
            continue;
        }
        let held: Vec<_> = offsets
            .iter()
            .map(|d| TcpListener::bind(("127.0.0.1", base + d)))
            .collect();
        if held.iter().all(|l| l.is_ok()) {
            let extra = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            return (base, extra.local_addr().expect("local address").port());
        }
    }
    panic!("no base port with {offsets:?} free after it in 100 tries");
}

/// One HTTP exchange with 127.0.0.1:PORT: sends `request`, reads the answer
/// until the server closes; every step is bounded. Err says what failed.
pub fn http_exchange(port: u16, request: &str) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, SECS(10))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(SECS(20)))
        .and_then(|()| stream.set_write_timeout(Some(SECS(20))))
        .map_err(|e| format!("timeouts on {addr}: {e}"))?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("read from {addr} (after {answer:?}): {e}"))?;
    Ok(answer)
}

/// Every number that follows `key` in the lines (e.g. `pid=123`).
pub fn numbers_after(lines: &[String], key: &str) -> Vec<i32> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find(key)? + key.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

/// Children of `pid` in zombie state.
pub fn zombie_children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1).and_then(|p| p.parse().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out
}
