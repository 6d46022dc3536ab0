//! The shared harness: a temporary app directory, the real `pm` binary, and a
//! handle on a running `pm start` that reads its output line by line.
//!
//! Nothing here sleeps a fixed time: every wait polls a condition against a
//! deadline and fails with everything seen so far.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

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
    pub fn run(&self, args: &[&str]) -> Finished {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn pm");
        let out = drain(child.stdout.take().expect("stdout"));
        let err = drain(child.stderr.take().expect("stderr"));
        let status = wait_deadline(&mut child, SECS(30));
        Finished {
            status,
            stdout: out.join().expect("stdout thread"),
            stderr: err.join().expect("stderr thread"),
        }
    }

    /// Starts `pm ARGS` in its own process group and reads its output.
    pub fn start(&self, args: &[&str]) -> Running {
        Running::spawn(self.cmd(args))
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            panic!("pm did not exit within {limit:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A finished `pm` run.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
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
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn pm");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
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
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut err = child.stderr.take().expect("stderr");
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
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

    /// Lines seen so far that contain `pattern`.
    pub fn lines_with(&self, pattern: &str) -> Vec<&String> {
        self.seen.iter().filter(|l| l.contains(pattern)).collect()
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

/// Whether the process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(state) if state != 'Z')
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
