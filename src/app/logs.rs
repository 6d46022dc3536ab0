//! `pm logs`: the recent lines of the running `pm start` (and, with
//! `--follow`, its new ones), printed as `pm start` printed them: same
//! prefixes, original timestamps, colors only on a terminal.

use std::collections::HashMap;
use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::app::control::socket;
use crate::cli::{LogsArgs, stdout_color};
use crate::control::client;
use crate::control::protocol::{StreamCommand, StreamEvent, StreamStart, WireLine};
use crate::error::{Error, Result};
use crate::output::{Clock, Framer, SYSTEM_NAME};

pub fn logs(args: LogsArgs) -> Result<i32> {
    let color = stdout_color(args.color, args.no_color);
    let mut opened = client::open(
        &socket(&args.app)?,
        StreamCommand::Logs {
            targets: args.targets,
            lines: args.lines,
            follow: args.follow,
        },
    )?;
    let mut printer = Printer::new(&opened.start, color);
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let mut line = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = client::next_event(&mut opened.reader, &mut line)?;
        let done = match event {
            Some(StreamEvent::Line(wire)) => {
                printer.line(&wire, &mut buf);
                false
            }
            Some(StreamEvent::Output(_)) => false,
            Some(StreamEvent::End(end)) if end.reason == "dropped" => {
                // What was read still goes out, then the reason.
                let _ = stdout.write_all(&buf).and_then(|()| stdout.flush());
                return Err(Error::Invalid(
                    "pm dropped this client: it read too slowly and fell behind".into(),
                ));
            }
            Some(StreamEvent::End(_)) | None => true,
        };
        // Written once nothing more is waiting, so a long listing goes out
        // in few writes and a followed line at once.
        if done || opened.reader.buffer().is_empty() || buf.len() >= 64 * 1024 {
            match stdout.write_all(&buf).and_then(|()| stdout.flush()) {
                Ok(()) => buf.clear(),
                // The reader left (`pm logs | head`): stop quietly.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
                Err(e) => return Err(Error::os("cannot write to stdout", e)),
            }
        }
        if done {
            return Ok(0);
        }
    }
}

/// Renders kept lines in `pm start`'s format: one framer per name.
pub struct Printer {
    width: usize,
    timestamps: bool,
    color: bool,
    clock: Clock,
    framers: HashMap<String, Framer>,
}

impl Printer {
    pub fn new(start: &StreamStart, color: bool) -> Printer {
        Printer {
            width: start.width,
            timestamps: start.timestamps,
            color,
            clock: Clock::new(),
            framers: HashMap::new(),
        }
    }

    /// Appends `line` to `out`, prefixed as pm start prefixed it.
    pub fn line(&mut self, line: &WireLine, out: &mut Vec<u8>) {
        let framer = self.framers.entry(line.name.clone()).or_insert_with(|| {
            if line.name == SYSTEM_NAME {
                Framer::system(self.width, self.color, self.timestamps)
            } else {
                Framer::new(
                    &line.name,
                    self.width,
                    line.color.filter(|_| self.color),
                    self.timestamps,
                )
            }
        });
        let second = i64::try_from(line.time_ms / 1000).unwrap_or(i64::MAX);
        framer.kept_line(self.clock.at(second), &text(line), out);
    }
}

/// A wire line's bytes.
pub fn text(line: &WireLine) -> Vec<u8> {
    match (&line.text, &line.bytes) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(bytes)) => BASE64.decode(bytes).unwrap_or_default(),
        (None, None) => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_print_as_pm_start_printed_them() {
        let start = StreamStart {
            version: 1,
            ok: true,
            stream: 1,
            width: 6,
            timestamps: false,
            name: None,
            pty: false,
        };
        let wire = |name: &str, color, text: Option<&str>, bytes: Option<&str>| WireLine {
            seq: 1,
            time_ms: 0,
            name: name.into(),
            color,
            text: text.map(str::to_string),
            bytes: bytes.map(str::to_string),
        };
        let mut out = Vec::new();
        let mut plain = Printer::new(&start, false);
        plain.line(&wire("web.1", Some(0), Some("hi"), None), &mut out);
        plain.line(&wire("system", None, Some("web.1 started"), None), &mut out);
        plain.line(&wire("web.1", Some(0), None, Some("//4=")), &mut out);
        assert_eq!(
            out,
            b"web.1  | hi\nsystem | web.1 started\nweb.1  | \xff\xfe\n"
        );
        let mut out = Vec::new();
        let mut colored = Printer::new(&start, true);
        colored.line(&wire("web.1", Some(1), Some("hi"), None), &mut out);
        colored.line(&wire("system", None, Some("x"), None), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\x1b[33mweb.1  |\x1b[0m hi\n\x1b[1msystem |\x1b[0m x\n"
        );
    }
}
