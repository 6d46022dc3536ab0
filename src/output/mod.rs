//! pm's stdout: line framing, prefixes, colors, the clock, and the one thread
//! that writes.
//!
//! This module owns everything that reaches pm's stdout. Children's bytes are
//! cut into lines by a [`Framer`] (one per output source), prefixed with
//! `HH:MM:SS name | ` and handed as formatted buffers to the single writer
//! thread started by [`spawn_writer`]. pm's own events go through the same
//! path under the name `system`, so they are ordered with the children's
//! lines. Every framed line is also kept in the [`Scrollback`] (per source,
//! bounded), which `pm logs` and `pm attach` read.
//!
//! What it must never do:
//! - let anything else write to stdout (two writers would interleave lines);
//! - block pm's async runtime on a slow or stalled stdout: the writing happens
//!   on a dedicated OS thread, and a full queue makes senders *await*;
//! - buffer without bound: a line longer than [`MAX_LINE`] is split, the
//!   writer's queue is bounded in bytes, and a source with no pending partial
//!   line holds no read buffer;
//! - alter the children's bytes: non-UTF-8 and `\r\n` pass through unchanged,
//!   nothing is stripped, only the prefix and (for a flushed partial line or a
//!   split piece) a `\n` are added;
//! - panic or print anything of its own when a write fails: the error is
//!   reported once through a callback and the rest is discarded;
//! - hold pm up at its end on a stdout that takes nothing: the writer is
//!   given up on (what it could not write counted), never joined blindly.

mod clock;
mod framer;
pub mod scrollback;
mod sink;
mod writer;

pub use clock::Clock;
pub use framer::{Framer, MAX_LINE, SYSTEM_NAME};
pub use scrollback::{End, Feed, Filter, Item, LogLine, Notice, Scrollback};
pub use sink::{Tee, stdout_sink};
pub use writer::{OutputTx, spawn_writer};

/// The width names are padded to: the longest name, and at least the width of
/// [`SYSTEM_NAME`] because pm's own lines share the column.
///
/// Counted in characters, like the padding itself.
pub fn name_width<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names
        .into_iter()
        .map(|name| name.chars().count())
        .fold(SYSTEM_NAME.len(), usize::max)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn width_counts_system() {
        assert_eq!(name_width([]), 6);
        assert_eq!(name_width(["web.1", "db.1"]), 6);
        assert_eq!(name_width(["web.1", "worker.10"]), 9);
    }
}
