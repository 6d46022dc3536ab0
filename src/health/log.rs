//! The `log` readiness check: a run is ready once a line of its output
//! matches the pattern. The relay that frames the run's output feeds it the
//! bytes it reads ([`LogWatch::feed`]); the watch splits them into lines as
//! the framer does (at a newline, or at `MAX_LINE` bytes), and says `Ready`
//! once, as a [`Report`] like any check's verdict. One watch per run: only
//! lines of this run count.

use tokio::sync::mpsc::UnboundedSender;

use super::{Report, Verdict};
use crate::config::pm_toml::LogPattern;
use crate::output::MAX_LINE;

#[derive(Debug)]
pub struct LogWatch {
    pid: i32,
    pattern: LogPattern,
    /// The current line so far.
    line: Vec<u8>,
    tx: UnboundedSender<Report>,
}

impl LogWatch {
    /// Watches the output of the run `pid` for `pattern`.
    pub fn new(pid: i32, pattern: LogPattern, tx: UnboundedSender<Report>) -> LogWatch {
        LogWatch {
            pid,
            pattern,
            line: Vec::new(),
            tx,
        }
    }

    /// Takes what the run wrote; true once a line matched (the verdict is
    /// sent, and the watch has nothing more to do).
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let room = MAX_LINE.saturating_sub(self.line.len()).max(1);
            let (part, end) = match memchr::memchr(b'\n', &data[..data.len().min(room)]) {
                Some(i) => (&data[..i], i + 1),
                None => (&data[..data.len().min(room)], data.len().min(room)),
            };
            self.line.extend_from_slice(part);
            let complete = end > part.len() || self.line.len() >= MAX_LINE;
            data = &data[end..];
            if complete && self.line_matches() {
                return true;
            }
        }
        false
    }

    /// The output ended, or a partial line was printed as it is (a prompt):
    /// what is pending counts as a line.
    pub fn flush(&mut self) -> bool {
        !self.line.is_empty() && self.line_matches()
    }

    fn line_matches(&mut self) -> bool {
        let line = std::mem::take(&mut self.line);
        let text = line.strip_suffix(b"\r").unwrap_or(&line);
        if self.pattern.is_match(text) {
            let _ = self.tx.send(Report::Verdict {
                pid: self.pid,
                verdict: Verdict::Ready,
            });
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(pattern: &str) -> (LogWatch, tokio::sync::mpsc::UnboundedReceiver<Report>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (LogWatch::new(7, LogPattern::new(pattern).unwrap(), tx), rx)
    }

    #[test]
    fn a_line_matches_once_whole_however_it_was_read() {
        let (mut w, mut rx) = watch("^ready to accept connections$");
        assert!(!w.feed(b"starting\nready to acc"));
        assert!(rx.try_recv().is_err(), "half a line is no line");
        assert!(w.feed(b"ept connections\r\nmore\n"));
        assert!(matches!(
            rx.try_recv(),
            Ok(Report::Verdict {
                pid: 7,
                verdict: Verdict::Ready
            })
        ));
    }

    #[test]
    fn a_partial_line_counts_when_flushed_and_long_lines_are_split() {
        let (mut w, _rx) = watch("^> $");
        assert!(!w.feed(b"> "));
        assert!(w.flush());
        let (mut w, _rx) = watch("^x+$");
        let long = vec![b'x'; MAX_LINE + 10];
        assert!(w.feed(&long), "the first MAX_LINE bytes are a line");
        let (mut w, _rx) = watch("needle");
        assert!(!w.feed(&vec![b'y'; MAX_LINE]));
        assert!(w.feed(b"needle\n"), "a split line starts a new one");
    }
}
