//! `pm attach` on a real pseudo-terminal: the test holds the master side,
//! `pm attach` runs with the slave as its stdin, stdout and stderr, as in a
//! terminal emulator. What is typed goes in through the master; what the
//! instance answers comes out of it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{Winsize, openpty};
use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{LocalFlags, tcgetattr};
use nix::unistd::Pid;

use crate::harness::*;

/// `pm attach` in a terminal of the test's own.
struct Terminal {
    master: File,
    /// A slave descriptor kept to look at the terminal's settings.
    slave: OwnedFd,
    seen: Arc<Mutex<Vec<u8>>>,
    child: Child,
    status: Option<ExitStatus>,
}

impl Terminal {
    fn attach(app: &App, target: &str, rows: u16, cols: u16) -> Terminal {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).expect("openpty");
        let child = app
            .cmd(&["attach", target])
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()))
            .spawn()
            .expect("spawn pm attach");
        let master = File::from(pty.master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let mut reader = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            master,
            slave: pty.slave,
            seen,
            child,
            status: None,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `pattern`, after everything seen up
    /// to `from` bytes.
    #[track_caller]
    fn wait_for(&self, pattern: &str, limit: Duration) {
        let ok = eventually(limit, || self.text().contains(pattern));
        assert!(
            ok,
            "the terminal never showed {pattern:?}; it shows:\n{}",
            self.text()
        );
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
    }

    fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pm attach did not exit within {limit:?}; the terminal shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the terminal is back in its line mode (echo, canonical).
    fn is_cooked(&self) -> bool {
        let flags = tcgetattr(self.slave.as_fd()).unwrap().local_flags;
        flags.contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A debugger-like prompt that also reports SIGINT and its window size.
const DEBUGGER: &str = "\
import os, signal, sys
signal.signal(signal.SIGINT, lambda *a: print('got SIGINT', flush=True))
def size(*a):
    cols, rows = os.get_terminal_size(sys.stdout.fileno())
    print('size %dx%d' % (rows, cols), flush=True)
signal.signal(signal.SIGWINCH, size)
print('ready', flush=True)
while True:
    line = input('(Pdb) ')
    print('answer: ' + line.upper(), flush=True)
    if line == 'quit':
        sys.exit(0)
";

fn debugger_app(pty: bool) -> App {
    let app = App::with_procfile("dbg: python3 -u dbg.py\nweb: exec sleep 1000\n");
    app.file("dbg.py", DEBUGGER);
    if pty {
        app.file("pm.toml", "[process.dbg]\npty = true\n");
    }
    app
}

#[test]
fn attach_to_a_pty_type_gets_every_key_and_the_window_size() {
    let app = debugger_app(true);
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("dbg.1  | ready", SECS(10));
    // pm's own terminal is not one: the program's starts at 24x80.
    let mut term = Terminal::attach(&app, "dbg", 30, 90);
    term.wait_for(
        "pm: attached to dbg.1 (on a terminal); Ctrl-] detaches",
        SECS(10),
    );
    // Its recent lines first.
    term.wait_for("ready", SECS(10));
    // The client's window size reaches the program's terminal.
    term.wait_for("size 30x90", SECS(10));
    assert!(!term.is_cooked(), "raw mode while attached");

    // A line typed at the prompt arrives, and its answer is seen (and
    // still goes to pm's own output).
    term.type_keys(b"p 1+1\r");
    term.wait_for("answer: P 1+1", SECS(10));
    pm.wait_for_line("dbg.1  | answer: P 1+1", SECS(10));

    // Ctrl-C is the program's: its terminal makes it SIGINT.
    term.type_keys(b"\x03");
    term.wait_for("got SIGINT", SECS(10));

    // A new window size follows (SIGWINCH to the client, as a terminal
    // emulator sends it).
    let slave = nix::unistd::ttyname(term.slave.as_fd()).unwrap();
    let stty = std::process::Command::new("stty")
        .arg("-F")
        .arg(&slave)
        .args(["rows", "50", "cols", "120"])
        .status()
        .unwrap();
    assert!(stty.success());
    kill(term.pid(), Signal::SIGWINCH).unwrap();
    term.wait_for("size 50x120", SECS(10));

    // Ctrl-] detaches at once, with 0, the terminal as it was.
    term.type_keys(b"\x1d");
    assert_eq!(term.wait_for_exit(SECS(10)).code(), Some(0));
    assert!(term.is_cooked(), "the terminal was not restored");
    term.wait_for("pm: detached from dbg.1", SECS(5));
    // The instance runs on.
    let out = app.run(&["logs", "dbg", "-n", "1"]);
    assert_eq!(out.assert_ok().trim_end(), "dbg.1  | size 50x120");
    pm.stop_ok(SECS(10));
}

#[test]
fn one_attach_per_instance_and_its_exit_ends_the_attach() {
    let app = debugger_app(true);
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("dbg.1  | ready", SECS(10));
    let mut term = Terminal::attach(&app, "dbg.1", 24, 80);
    term.wait_for("pm: attached to dbg.1", SECS(10));

    let mut second = Terminal::attach(&app, "dbg", 24, 80);
    assert_eq!(second.wait_for_exit(SECS(10)).code(), Some(1));
    second.wait_for(
        "pm: dbg.1 is already attached: one pm attach per instance at a time",
        SECS(5),
    );
    assert!(second.is_cooked());
    let mut other = Terminal::attach(&app, "web", 24, 80);
    other.wait_for("pm: attached to web.1", SECS(10));
    other.type_keys(b"\x1d");
    assert_eq!(other.wait_for_exit(SECS(10)).code(), Some(0));

    // The program ends: so does the attach, with 1, saying how.
    term.type_keys(b"quit\r");
    term.wait_for("answer: QUIT", SECS(10));
    assert_eq!(term.wait_for_exit(SECS(10)).code(), Some(1));
    term.wait_for("pm: dbg.1 exited with code 0", SECS(5));
    assert!(term.is_cooked());
    pm.stop_ok(SECS(10));
}

#[test]
fn the_terminal_is_restored_when_the_client_is_killed() {
    let app = debugger_app(true);
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("dbg.1  | ready", SECS(10));
    for (sig, code) in [(Signal::SIGTERM, 143), (Signal::SIGHUP, 129)] {
        let mut term = Terminal::attach(&app, "dbg.1", 24, 80);
        term.wait_for("ready", SECS(10));
        assert!(eventually(SECS(10), || !term.is_cooked()));
        kill(term.pid(), sig).unwrap();
        assert_eq!(term.wait_for_exit(SECS(10)).code(), Some(code));
        assert!(term.is_cooked(), "not restored after {sig}");
    }
    let out = app.cmd(&["attach", "dbg"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "pm: pm attach needs a terminal: its stdin is not one\n"
    );
    pm.stop_ok(SECS(10));
}

#[test]
fn attach_to_a_pipe_type_edits_the_line_here_and_ctrl_c_interrupts_the_group() {
    let app = debugger_app(false);
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("dbg.1  | ready", SECS(10));
    let mut term = Terminal::attach(&app, "dbg", 24, 80);
    term.wait_for(
        "pm: attached to dbg.1 (on pipes); Ctrl-] detaches",
        SECS(10),
    );
    term.wait_for("ready", SECS(10));
    // The prompt shows at once, without its newline.
    term.wait_for("(Pdb) ", SECS(10));
    // Typed keys are echoed here, backspace edits, Ctrl-D is ignored, and
    // Enter sends the line whole.
    term.type_keys(b"p 2x\x7f\x04");
    term.wait_for("p 2x\x08 \x08", SECS(10));
    term.type_keys(b"\r");
    term.wait_for("answer: P 2", SECS(10));
    pm.wait_for_line("answer: P 2", SECS(10));
    // Ctrl-C is SIGINT for the instance's group, as a terminal would send.
    term.type_keys(b"\x03");
    term.wait_for("^C", SECS(10));
    term.wait_for("got SIGINT", SECS(10));
    pm.wait_for_line("got SIGINT", SECS(10));
    term.type_keys(b"\x1d");
    assert_eq!(term.wait_for_exit(SECS(10)).code(), Some(0));
    assert!(term.is_cooked());
    pm.stop_ok(SECS(10));
}
