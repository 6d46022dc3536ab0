//! Cutting one source's bytes into prefixed lines.
//!
//! This is pm's hot path: a chatty child's every line passes here. So newlines
//! are found with `memchr`, the prefix is built once and copied once per
//! line, the timestamp is patched into it once per chunk, all the lines of a
//! chunk go into the caller's one buffer, and nothing is allocated per line.

use std::cell::RefCell;

use memchr::memchr;

use super::clock::Clock;
use super::scrollback::{Recorder, Recording};

/// The longest line text (without its `\n`) emitted whole. A longer line is
/// split into pieces of at most this many bytes, each its own prefixed line,
/// so a child that never writes a newline cannot make pm buffer without bound.
pub const MAX_LINE: usize = 64 * 1024;

thread_local! {
    /// Where each line of the run being recorded ends: one list for every
    /// framer of the thread, as a framer fills it only while it frames.
    static RUN_ENDS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// The most entries [`RUN_ENDS`] keeps allocated between chunks: the lines
/// of a 64 KiB chunk of 32-byte lines. A chunk of shorter lines lets go of
/// what it needed more.
const RUN_ENDS_KEPT: usize = 2048;

/// The name of pm's own output source.
pub const SYSTEM_NAME: &str = "system";

/// The foreman palette, in foreman's order: cyan, yellow, green, magenta, red,
/// blue, then their bright variants. (foreman's "bright" codes are the same
/// as the plain ones; pm uses the real bright codes so 12 sources stay apart.)
const PALETTE: [&[u8]; 12] = [
    b"\x1b[36m",
    b"\x1b[33m",
    b"\x1b[32m",
    b"\x1b[35m",
    b"\x1b[31m",
    b"\x1b[34m",
    b"\x1b[96m",
    b"\x1b[93m",
    b"\x1b[92m",
    b"\x1b[95m",
    b"\x1b[91m",
    b"\x1b[94m",
];

/// `system` lines are bold in the terminal's own color: distinct from every
/// palette entry and readable on dark and light backgrounds alike (foreman's
/// white is not).
const SYSTEM_STYLE: &[u8] = b"\x1b[1m";

const RESET: &[u8] = b"\x1b[0m";

/// How a prefix is colored.
#[derive(Clone, Copy)]
enum Style<'a> {
    Plain,
    Escape(&'a [u8]),
}

/// Frames the output of one source (an instance, or `system`).
///
/// It holds the prefix, built once, and the pending partial line: bytes after
/// the last newline, kept until the rest of the line arrives or the caller
/// flushes them. Without a partial line it holds no buffer beyond the prefix.
#[derive(Debug)]
pub struct Framer {
    /// `[color]HH:MM:SS name   |[reset] `; the time is patched in place.
    prefix: Box<[u8]>,
    /// Where the 8 time bytes sit in `prefix`, when timestamps are on.
    time_at: Option<usize>,
    /// The pending partial line; never longer than `max_line`, and
    /// deallocated (not just cleared) once emitted.
    partial: Vec<u8>,
    /// Always [`MAX_LINE`], except in tests that exercise splitting on small
    /// inputs.
    max_line: usize,
    /// Where every line is kept as well, for `pm logs` and `pm attach`.
    recorder: Option<Recorder>,
}

impl Framer {
    /// A framer for the source `name`, padded to `width` characters.
    ///
    /// `color` is the source's palette index (it wraps around the 12 colors),
    /// or `None` for no color at all: pass `None` for every source when color
    /// is off. For pm's own lines, either pass `None` (plain `system` lines) or
    /// use [`Framer::system`] (bold when color is on).
    pub fn new(name: &str, width: usize, color: Option<usize>, timestamps: bool) -> Framer {
        let style = match color {
            Some(index) => Style::Escape(PALETTE[index % PALETTE.len()]),
            None => Style::Plain,
        };
        Framer::with_style(name, width, style, timestamps)
    }

    /// The framer for pm's own `system` lines: bold when `color` is on.
    pub fn system(width: usize, color: bool, timestamps: bool) -> Framer {
        let style = if color {
            Style::Escape(SYSTEM_STYLE)
        } else {
            Style::Plain
        };
        Framer::with_style(SYSTEM_NAME, width, style, timestamps)
    }

    fn with_style(name: &str, width: usize, style: Style<'_>, timestamps: bool) -> Framer {
        let mut prefix = Vec::with_capacity(name.len() + width + 24);
        if let Style::Escape(code) = style {
            prefix.extend_from_slice(code);
        }
        let time_at = timestamps.then(|| {
            let at = prefix.len();
            prefix.extend_from_slice(b"00:00:00 ");
            at
        });
        prefix.extend_from_slice(name.as_bytes());
        let pad = width.saturating_sub(name.chars().count());
        prefix.resize(prefix.len() + pad, b' ');
        prefix.extend_from_slice(b" |");
        if let Style::Escape(_) = style {
            prefix.extend_from_slice(RESET);
        }
        // foreman keeps the space after `|` even on an empty line.
        prefix.push(b' ');
        Framer {
            prefix: prefix.into_boxed_slice(),
            time_at,
            partial: Vec::new(),
            max_line: MAX_LINE,
            recorder: None,
        }
    }

    /// Records every line this framer emits (and every chunk it is given,
    /// for an attached client) in the scrollback as well.
    pub fn recording(mut self, recorder: Recorder) -> Framer {
        self.recorder = Some(recorder);
        self
    }

    /// Appends to `out` every line that `data` completes, prefixed, and keeps
    /// what follows the last newline pending.
    ///
    /// A line is emitted as soon as its `\n` is here, never held back for
    /// more data. A line whose text exceeds [`MAX_LINE`] bytes is emitted in
    /// pieces of at most that size (cut before a UTF-8 character that would
    /// straddle the limit), each ending with an added `\n`.
    pub fn push(&mut self, data: &[u8], clock: &mut Clock, out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.stamp(clock);
        let recorder = self.recorder.take();
        let mut rec = recorder.as_ref().map(|r| r.start(clock.millis()));
        if let Some(rec) = &mut rec {
            rec.raw(data);
        }
        let rest = if self.partial.is_empty() {
            data
        } else {
            self.complete_partial(data, out, &mut rec)
        };
        if !rest.is_empty() {
            self.frame(rest, out, &mut rec);
        }
        if let Some(rec) = &mut rec {
            rec.partial(&self.partial);
        }
        drop(rec);
        self.recorder = recorder;
    }

    /// Emits the pending partial line, if any, with a `\n` appended (a prompt
    /// that waited, or the last line of a process that ended without one).
    pub fn flush_partial(&mut self, clock: &mut Clock, out: &mut Vec<u8>) {
        if self.partial.is_empty() {
            return;
        }
        self.stamp(clock);
        if let Some(recorder) = &self.recorder {
            let mut rec = recorder.start(clock.millis());
            rec.line(&[&self.partial]);
            rec.partial(&[]);
        }
        out.reserve(self.prefix.len() + self.partial.len() + 1);
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(&self.partial);
        out.push(b'\n');
        // Deallocate: an idle source should cost no buffer.
        self.partial = Vec::new();
    }

    /// Whether a partial line is pending.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Emits `text` as one prefixed line (pm's own `system` lines).
    ///
    /// `text` should hold no newline; if it does, each newline-separated part
    /// becomes its own prefixed line, so a multi-line message can never leave
    /// an unprefixed line. The pending partial line is left alone.
    pub fn line(&mut self, text: &str, clock: &mut Clock, out: &mut Vec<u8>) {
        self.stamp(clock);
        let mut rec = self.recorder.as_ref().map(|r| r.start(clock.millis()));
        for part in text.as_bytes().split(|&b| b == b'\n') {
            let tail = emit_pieces(&self.prefix, self.max_line, part, out, &mut rec);
            line_to(&self.prefix, &[tail], out, &mut rec);
        }
    }

    /// Emits a line kept in the scrollback as pm start printed it: this
    /// framer's prefix with the line's own time, its text, a `\n`.
    pub fn kept_line(&mut self, time: [u8; 8], text: &[u8], out: &mut Vec<u8>) {
        if let Some(at) = self.time_at
            && let Some(slot) = self.prefix.get_mut(at..at + 8)
        {
            slot.copy_from_slice(&time);
        }
        out.reserve(self.prefix.len() + text.len() + 1);
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(text);
        out.push(b'\n');
    }

    /// Patches the current time into the prefix.
    fn stamp(&mut self, clock: &mut Clock) {
        if let Some(at) = self.time_at
            && let Some(slot) = self.prefix.get_mut(at..at + 8)
        {
            slot.copy_from_slice(&clock.now());
        }
    }

    /// Feeds `data` to the pending partial line until that line is complete
    /// (or cut), and returns the data left after it. Returns an empty slice
    /// when everything was absorbed into the partial line.
    fn complete_partial<'d>(
        &mut self,
        mut data: &'d [u8],
        out: &mut Vec<u8>,
        rec: &mut Option<Recording<'_>>,
    ) -> &'d [u8] {
        loop {
            // Invariant: 0 < partial.len() <= max_line.
            let room = self.max_line - self.partial.len();
            // A newline within `room` bytes completes the line within the
            // limit; only that far needs searching.
            let window = &data[..data.len().min(room + 1)];
            if let Some(end) = memchr(b'\n', window) {
                if let Some(rec) = rec {
                    rec.line(&[&self.partial, &data[..end]]);
                }
                out.reserve(self.prefix.len() + self.partial.len() + end + 1);
                out.extend_from_slice(&self.prefix);
                out.extend_from_slice(&self.partial);
                out.extend_from_slice(&data[..=end]);
                self.partial = Vec::new();
                return &data[end + 1..];
            }
            if data.len() <= room {
                self.partial.extend_from_slice(data);
                return &[];
            }
            // The line goes on past the limit: fill the partial line to the
            // limit and emit a piece of it.
            let (head, tail) = data.split_at(room);
            self.partial.extend_from_slice(head);
            data = tail;
            let cut = cut_point(&self.partial);
            line_to(&self.prefix, &[&self.partial[..cut]], out, rec);
            if cut == self.partial.len() {
                self.partial = Vec::new();
                return data;
            }
            // Keep the start of the character the cut did not split.
            self.partial.drain(..cut);
        }
    }

    /// Frames `data` when no partial line is pending.
    fn frame(&mut self, data: &[u8], out: &mut Vec<u8>, rec: &mut Option<Recording<'_>>) {
        let prefix = &self.prefix[..];
        // One reservation for the whole chunk, sized for lines of 32 bytes or
        // more: every line costs its bytes plus one prefix. Shorter lines
        // grow the buffer by doubling. (Counting the newlines first would be
        // exact, but costs a third of the framing time.)
        out.reserve(data.len() + (data.len() / 32 + 2) * prefix.len());
        let mut start = 0;
        // The lines since the last one cut into pieces, as the child wrote
        // them, and where each ends in that run: recorded at once.
        let mut run_start = 0;
        RUN_ENDS.with_borrow_mut(|ends| {
            ends.clear();
            for end in memchr::memchr_iter(b'\n', data) {
                let mut text = &data[start..end];
                if text.len() > self.max_line {
                    if let Some(rec) = rec {
                        rec.run(&data[run_start..start], ends);
                    }
                    ends.clear();
                    text = emit_pieces(prefix, self.max_line, text, out, rec);
                    // What is left of the long line starts the next run.
                    run_start = end - text.len();
                }
                if rec.is_some() {
                    ends.push(end - run_start);
                }
                out.extend_from_slice(prefix);
                // The text and its own newline (and `\r`, if any) in one copy.
                out.extend_from_slice(&data[end - text.len()..=end]);
                start = end + 1;
            }
            if let Some(rec) = rec {
                rec.run(&data[run_start..start], ends);
            }
            if ends.capacity() > RUN_ENDS_KEPT {
                *ends = Vec::new();
            }
        });
        let rest = emit_pieces(prefix, self.max_line, &data[start..], out, rec);
        if !rest.is_empty() {
            // Sized to what is pending, not to a read buffer.
            self.partial.extend_from_slice(rest);
        }
    }
}

/// Emits pieces of `text` while more than `max_line` bytes remain, and returns
/// the remainder (at most `max_line` bytes).
fn emit_pieces<'t>(
    prefix: &[u8],
    max_line: usize,
    mut text: &'t [u8],
    out: &mut Vec<u8>,
    rec: &mut Option<Recording<'_>>,
) -> &'t [u8] {
    while text.len() > max_line {
        let cut = cut_point(&text[..max_line]);
        line_to(prefix, &[&text[..cut]], out, rec);
        text = &text[cut..];
    }
    text
}

/// Emits one prefixed line made of `parts`, with an added `\n`, and records
/// it.
fn line_to(prefix: &[u8], parts: &[&[u8]], out: &mut Vec<u8>, rec: &mut Option<Recording<'_>>) {
    if let Some(rec) = rec {
        rec.line(parts);
    }
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(prefix.len() + len + 1);
    out.extend_from_slice(prefix);
    for part in parts {
        out.extend_from_slice(part);
    }
    out.push(b'\n');
}

/// Where to cut a full piece (`piece.len()` is the limit, more bytes follow):
/// at its end, or before a UTF-8 character that would straddle the limit, so
/// a split line stays valid UTF-8 where it was. Bytes that are not UTF-8 may
/// move the cut back by up to 3 bytes; they are never lost.
fn cut_point(piece: &[u8]) -> usize {
    let len = piece.len();
    for back in 1..=3.min(len.saturating_sub(1)) {
        let byte = piece[len - back];
        if byte & 0xC0 == 0x80 {
            // A continuation byte: look further back for its lead byte.
            continue;
        }
        if byte >= 0xC0 {
            let width = if byte >= 0xF0 {
                4
            } else if byte >= 0xE0 {
                3
            } else {
                2
            };
            if width > back {
                return len - back;
            }
        }
        return len;
    }
    len
}

#[cfg(test)]
impl Framer {
    /// A framer that splits at `max_line` bytes, to exercise splitting on
    /// small inputs.
    fn with_max_line(mut self, max_line: usize) -> Framer {
        assert!(max_line >= 4, "the UTF-8 cut needs room for one character");
        self.max_line = max_line;
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain(name: &str, width: usize) -> Framer {
        Framer::new(name, width, None, false)
    }

    fn push_all(framer: &mut Framer, chunks: &[&[u8]]) -> Vec<u8> {
        let mut clock = Clock::new();
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk, &mut clock, &mut out);
        }
        out
    }

    /// Splits framed output into line texts, checking that each line has the
    /// prefix exactly once at its start.
    fn texts<'a>(out: &'a [u8], prefix: &[u8]) -> Vec<&'a [u8]> {
        assert!(
            out.is_empty() || out.ends_with(b"\n"),
            "output ends mid-line"
        );
        let mut lines = Vec::new();
        let mut rest = out;
        while !rest.is_empty() {
            let end = memchr(b'\n', rest).unwrap();
            let line = &rest[..end];
            let text = line
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("no prefix: {:?}", String::from_utf8_lossy(line)));
            lines.push(text);
            rest = &rest[end + 1..];
        }
        lines
    }

    #[test]
    fn plain_prefix_is_padded_name_and_bar() {
        let mut framer = plain("web.1", 6);
        assert_eq!(push_all(&mut framer, &[b"hello\n"]), b"web.1  | hello\n");
    }

    #[test]
    fn name_longer_than_width_is_not_cut() {
        let mut framer = plain("worker.1", 6);
        assert_eq!(push_all(&mut framer, &[b"x\n"]), b"worker.1 | x\n");
    }

    #[test]
    fn timestamp_precedes_the_name() {
        let mut framer = Framer::new("web.1", 6, None, true);
        let out = push_all(&mut framer, &[b"hello\n"]);
        assert_eq!(out.len(), "12:00:01 web.1  | hello\n".len());
        assert_eq!(out[2], b':');
        assert_eq!(out[5], b':');
        assert_eq!(&out[8..], b" web.1  | hello\n");
    }

    #[test]
    fn color_wraps_the_prefix_only() {
        let mut framer = Framer::new("web.1", 6, Some(0), false);
        assert_eq!(
            push_all(&mut framer, &[b"hi\n"]),
            b"\x1b[36mweb.1  |\x1b[0m hi\n"
        );
        let mut framer = Framer::new("web.1", 6, Some(0), true);
        let out = push_all(&mut framer, &[b"hi\n"]);
        assert!(out.starts_with(b"\x1b[36m"));
        assert_eq!(&out[5 + 8..], b" web.1  |\x1b[0m hi\n");
    }

    #[test]
    fn palette_follows_foreman_and_cycles() {
        let code = |index| {
            let mut framer = Framer::new("a", 1, Some(index), false);
            let out = push_all(&mut framer, &[b"\n"]);
            let end = out.iter().position(|&b| b == b'm').unwrap();
            String::from_utf8(out[..=end].to_vec()).unwrap()
        };
        let expected = [36, 33, 32, 35, 31, 34, 96, 93, 92, 95, 91, 94];
        for (index, number) in expected.iter().enumerate() {
            assert_eq!(code(index), format!("\x1b[{number}m"));
            assert_eq!(code(index + 12), format!("\x1b[{number}m"));
        }
    }

    #[test]
    fn system_framer() {
        let mut clock = Clock::new();
        let mut out = Vec::new();
        Framer::system(6, false, false).line("started", &mut clock, &mut out);
        assert_eq!(out, b"system | started\n");
        out.clear();
        Framer::system(8, true, false).line("started", &mut clock, &mut out);
        assert_eq!(out, b"\x1b[1msystem   |\x1b[0m started\n");
    }

    #[test]
    fn line_prefixes_every_part() {
        let mut clock = Clock::new();
        let mut out = Vec::new();
        let mut framer = plain("system", 6);
        framer.line("", &mut clock, &mut out);
        framer.line("a\nb", &mut clock, &mut out);
        assert_eq!(out, b"system | \nsystem | a\nsystem | b\n");
    }

    #[test]
    fn line_leaves_the_partial_pending() {
        let mut clock = Clock::new();
        let mut out = Vec::new();
        let mut framer = plain("a", 1);
        framer.push(b"par", &mut clock, &mut out);
        framer.line("note", &mut clock, &mut out);
        framer.push(b"tial\n", &mut clock, &mut out);
        assert_eq!(out, b"a | note\na | partial\n");
    }

    #[test]
    fn empty_lines_keep_the_space_after_the_bar() {
        let mut framer = plain("web.1", 5);
        assert_eq!(
            push_all(&mut framer, &[b"\n\nx\n\n"]),
            b"web.1 | \nweb.1 | \nweb.1 | x\nweb.1 | \n"
        );
    }

    #[test]
    fn several_lines_in_one_chunk() {
        let mut framer = plain("a", 1);
        assert_eq!(
            push_all(&mut framer, &[b"one\ntwo\nthree\n"]),
            b"a | one\na | two\na | three\n"
        );
    }

    #[test]
    fn partial_line_completes_across_pushes() {
        let mut framer = plain("a", 1);
        let mut clock = Clock::new();
        let mut out = Vec::new();
        framer.push(b"he", &mut clock, &mut out);
        assert!(out.is_empty());
        assert!(framer.has_partial());
        framer.push(b"ll", &mut clock, &mut out);
        assert!(out.is_empty());
        framer.push(b"o\nwor", &mut clock, &mut out);
        assert_eq!(out, b"a | hello\n");
        framer.push(b"ld\n", &mut clock, &mut out);
        assert_eq!(out, b"a | hello\na | world\n");
        assert!(!framer.has_partial());
        assert_eq!(
            framer.partial.capacity(),
            0,
            "an idle framer holds no buffer"
        );
    }

    #[test]
    fn newline_alone_completes_the_partial() {
        let mut framer = plain("a", 1);
        assert_eq!(
            push_all(&mut framer, &[b"x", b"\n", b"\n"]),
            b"a | x\na | \n"
        );
    }

    #[test]
    fn flush_partial_appends_a_newline() {
        let mut framer = plain("a", 1);
        let mut clock = Clock::new();
        let mut out = Vec::new();
        framer.flush_partial(&mut clock, &mut out);
        assert!(out.is_empty(), "nothing pending, nothing flushed");
        framer.push(b"done\nPassword: ", &mut clock, &mut out);
        framer.flush_partial(&mut clock, &mut out);
        assert_eq!(out, b"a | done\na | Password: \n");
        assert!(!framer.has_partial());
        assert_eq!(framer.partial.capacity(), 0);
        framer.flush_partial(&mut clock, &mut out);
        assert_eq!(out, b"a | done\na | Password: \n", "flushed once only");
    }

    #[test]
    fn crlf_is_kept() {
        let mut framer = plain("a", 1);
        assert_eq!(
            push_all(&mut framer, &[b"one\r\ntw", b"o\r", b"\n"]),
            b"a | one\r\na | two\r\n"
        );
    }

    #[test]
    fn invalid_utf8_passes_through() {
        let mut framer = plain("a", 1);
        let bytes: &[u8] = b"\xff\xfe ok \xc3\n\x80\xe2\x82";
        let mut clock = Clock::new();
        let mut out = Vec::new();
        framer.push(bytes, &mut clock, &mut out);
        framer.flush_partial(&mut clock, &mut out);
        assert_eq!(out, b"a | \xff\xfe ok \xc3\na | \x80\xe2\x82\n");
    }

    #[test]
    fn a_200_kib_line_is_split_into_64_kib_pieces() {
        let line: Vec<u8> = (0..200 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        let mut input = line.clone();
        input.push(b'\n');
        // Whole, and in uneven chunks that straddle the limit.
        for chunk_size in [input.len(), 1000, 65_535, 65_537, 7] {
            let mut framer = plain("a", 1);
            let chunks: Vec<&[u8]> = input.chunks(chunk_size).collect();
            let out = push_all(&mut framer, &chunks);
            let texts = texts(&out, b"a | ");
            let sizes: Vec<usize> = texts.iter().map(|t| t.len()).collect();
            assert_eq!(
                sizes,
                [65_536, 65_536, 65_536, 8 * 1024],
                "chunks of {chunk_size}"
            );
            assert_eq!(texts.concat(), line);
            assert!(!framer.has_partial());
        }
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_whole() {
        let mut input = vec![b'x'; MAX_LINE];
        input.push(b'\n');
        for chunk_size in [input.len(), MAX_LINE, 100] {
            let mut framer = plain("a", 1);
            let chunks: Vec<&[u8]> = input.chunks(chunk_size).collect();
            let out = push_all(&mut framer, &chunks);
            assert_eq!(texts(&out, b"a | "), [&input[..MAX_LINE]]);
        }
    }

    #[test]
    fn an_endless_line_keeps_memory_bounded() {
        let mut framer = plain("a", 1);
        let mut clock = Clock::new();
        let mut out = Vec::new();
        let chunk = vec![b'y'; 10_000];
        for _ in 0..100 {
            framer.push(&chunk, &mut clock, &mut out);
            assert!(framer.partial.len() <= MAX_LINE);
            assert!(framer.partial.capacity() <= 2 * MAX_LINE);
        }
        framer.flush_partial(&mut clock, &mut out);
        let texts = texts(&out, b"a | ");
        assert_eq!(texts.iter().map(|t| t.len()).sum::<usize>(), 1_000_000);
        assert!(texts.iter().all(|t| t.len() <= MAX_LINE));
    }

    #[test]
    fn a_split_never_cuts_a_utf8_character() {
        // 'é' is 2 bytes, '€' 3, '𝄞' 4: with a limit of 8 bytes the cut must
        // move back whenever a character would straddle it.
        let text = "aaaaaaa€bbbbbbé𝄞cccccc€€€€€".repeat(3);
        for chunk_size in [1, 2, 3, 5, 8, 9, text.len()] {
            let mut framer = plain("a", 1).with_max_line(8);
            let mut input = text.as_bytes().to_vec();
            input.push(b'\n');
            let chunks: Vec<&[u8]> = input.chunks(chunk_size).collect();
            let out = push_all(&mut framer, &chunks);
            let texts = texts(&out, b"a | ");
            for piece in &texts {
                assert!(piece.len() <= 8);
                assert!(std::str::from_utf8(piece).is_ok(), "{piece:?}");
            }
            assert_eq!(texts.concat(), text.as_bytes());
        }
    }

    #[test]
    fn cut_point_backs_up_only_for_straddling_characters() {
        assert_eq!(cut_point(b"abcdefgh"), 8);
        assert_eq!(cut_point(b"abcdefg\xc3"), 7);
        assert_eq!(cut_point(b"abcdef\xc3\xa9"), 8);
        assert_eq!(cut_point(b"abcdef\xe2\x82"), 6);
        assert_eq!(cut_point(b"abcde\xe2\x82\xac"), 8);
        assert_eq!(cut_point(b"abcde\xf0\x9d\x84"), 5);
        assert_eq!(cut_point(b"abcd\xf0\x9d\x84\x9e"), 8);
        assert_eq!(cut_point(b"abcd\x80\x80\x80\x80"), 8);
    }

    /// The reference: the whole input at once, by the simplest rules.
    fn model(input: &[u8], max_line: usize, prefix: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let last = lines.pop().unwrap_or_default();
        let mut emit = |mut text: &[u8], end: &[u8]| {
            while text.len() > max_line {
                let cut = cut_point(&text[..max_line]);
                out.extend_from_slice(prefix);
                out.extend_from_slice(&text[..cut]);
                out.push(b'\n');
                text = &text[cut..];
            }
            out.extend_from_slice(prefix);
            out.extend_from_slice(text);
            out.extend_from_slice(end);
        };
        for line in lines {
            emit(line, b"\n");
        }
        if !last.is_empty() {
            emit(last, b"\n");
        }
        out
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => Just(b'a'),
            1 => Just(b'b'),
            3 => Just(b'\n'),
            1 => Just(b'\r'),
            1 => Just(0xff),
            1 => Just(0xc3),
            1 => Just(0xa9),
            1 => Just(0xe2),
            1 => Just(0x82),
            1 => Just(0xac),
        ];
        proptest::collection::vec(byte, 0..400)
    }

    #[test]
    fn recorded_lines_are_the_printed_lines_with_their_time() {
        let (log, _events) = crate::output::Scrollback::new(100);
        let mut framer = plain("web.1", 5).with_max_line(8).recording(log.recorder(
            "web.1",
            Some("web"),
            Some(0),
        ));
        let mut clock = Clock::new();
        let mut out = Vec::new();
        for chunk in [&b"one\ntw"[..], b"o\r\n", b"a very long line\npar", b"tial"] {
            framer.push(chunk, &mut clock, &mut out);
        }
        framer.flush_partial(&mut clock, &mut out);
        let mut system =
            Framer::system(5, false, false).recording(log.recorder("system", None, None));
        system.line("note", &mut clock, &mut out);
        let (kept, _) = log.logs(crate::output::Filter::All, 100, false, "");
        let texts: Vec<&[u8]> = kept.iter().map(|l| &l.text[..]).collect();
        assert_eq!(
            texts,
            [
                &b"one"[..],
                b"two\r",
                b"a very l",
                b"ong line",
                b"partial",
                b"note"
            ]
        );
        assert!(
            kept.iter()
                .all(|l| l.millis.abs_diff(clock.millis()) < 60_000)
        );
        // Rendered again, a kept line is the line pm printed.
        let mut again = Vec::new();
        let mut fresh = plain("web.1", 5);
        for line in &kept[..5] {
            fresh.kept_line(*b"00:00:00", &line.text, &mut again);
        }
        let printed: Vec<u8> = out
            .split_inclusive(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"web.1"))
            .flatten()
            .copied()
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&printed)
        );
    }

    proptest! {
        #[test]
        fn chunks_split_anywhere_lose_nothing(
            input in bytes(),
            cuts in proptest::collection::vec(0usize..400, 0..20),
            max_line in prop_oneof![Just(4usize), Just(7), Just(16), Just(MAX_LINE)],
        ) {
            let prefix = b"web.1 | ";
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= input.len()).collect();
            cuts.push(0);
            cuts.push(input.len());
            cuts.sort_unstable();
            let mut framer = plain("web.1", 5).with_max_line(max_line);
            let mut clock = Clock::new();
            let mut out = Vec::new();
            for pair in cuts.windows(2) {
                framer.push(&input[pair[0]..pair[1]], &mut clock, &mut out);
                prop_assert!(framer.partial.len() <= max_line);
                prop_assert!(out.is_empty() || out.ends_with(b"\n"));
            }
            framer.flush_partial(&mut clock, &mut out);
            prop_assert!(!framer.has_partial());

            // The same lines as the whole input framed by the simplest rules.
            prop_assert_eq!(&out, &model(&input, max_line, prefix));

            // Each line: exactly one prefix, text within the limit, and the
            // texts give back the input once newlines are accounted for.
            let texts = texts(&out, prefix);
            for text in &texts {
                prop_assert!(text.len() <= max_line);
                prop_assert!(!text.windows(prefix.len()).any(|w| w == prefix));
            }
            let without_newlines: Vec<u8> = input.iter().copied().filter(|&b| b != b'\n').collect();
            prop_assert_eq!(texts.concat(), without_newlines);
            let newlines = input.iter().filter(|&&b| b == b'\n').count();
            prop_assert!(texts.len() >= newlines);
        }

        #[test]
        fn the_scrollback_keeps_the_last_printed_lines_and_a_follower_gets_all(
            input in bytes(),
            cuts in proptest::collection::vec(0usize..400, 0..20),
            max_line in prop_oneof![Just(4usize), Just(7), Just(MAX_LINE)],
            kept in 1usize..12,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= input.len()).collect();
            cuts.push(0);
            cuts.push(input.len());
            cuts.sort_unstable();
            let (log, _events) = crate::output::Scrollback::new(kept);
            let (_, feed) = log.logs(crate::output::Filter::All, 0, true, "");
            let mut feed = feed.unwrap();
            let mut framer = plain("web.1", 5)
                .with_max_line(max_line)
                .recording(log.recorder("web.1", Some("web"), None));
            let mut clock = Clock::new();
            let mut out = Vec::new();
            for pair in cuts.windows(2) {
                framer.push(&input[pair[0]..pair[1]], &mut clock, &mut out);
            }
            framer.flush_partial(&mut clock, &mut out);
            let printed = texts(&out, b"web.1 | ");

            let (lines, _) = log.logs(crate::output::Filter::All, 100, false, "");
            let from = printed.len().saturating_sub(kept);
            let kept_texts: Vec<&[u8]> = lines.iter().map(|l| &l.text[..]).collect();
            prop_assert_eq!(&kept_texts[..], &printed[from..]);
            let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
            let expected: Vec<u64> = (from as u64 + 1..=printed.len() as u64).collect();
            prop_assert_eq!(seqs, expected);

            let mut followed = Vec::new();
            while let Some(item) = feed.try_next() {
                if let crate::output::scrollback::Item::Line(line) = item {
                    prop_assert_eq!(line.seq, followed.len() as u64 + 1);
                    followed.push(line.text);
                }
            }
            let followed: Vec<&[u8]> = followed.iter().map(|t| &t[..]).collect();
            prop_assert_eq!(followed, printed);
        }
    }
}
