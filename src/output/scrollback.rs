//! The scrollback: the last lines of every output source (each instance,
//! and `system`), kept for `pm logs` and `pm attach`, and the live feeds
//! of their clients.
//!
//! Framers record into it while they frame (see [`super::Framer::recording`]),
//! so it holds exactly the lines `pm start` printed, each with the time pm
//! received it and a sequence number that gives the order pm received them
//! in, across sources. A source is named once and keeps its lines across
//! the restarts of its instance.
//!
//! What it must never do:
//! - block the one recording: a client's feed is an unbounded channel with a
//!   byte budget ([`FEED_BUDGET`]); a client that falls that far behind is
//!   dropped (its feed says so, and a [`Notice`] asks for a `system` line);
//! - grow without bound: each source keeps at most its `lines` and
//!   [`MAX_SOURCE_BYTES`] of text, the oldest going first;
//! - cost memory for a source that wrote nothing: buffers are allocated on
//!   the first line.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};

/// The most text kept per source, in bytes, each line's `\n` included:
/// 1 MiB and a newline for each of 16 lines split at [`super::MAX_LINE`], so
/// a source always keeps at least 16 lines.
pub const MAX_SOURCE_BYTES: usize = 16 * (super::MAX_LINE + 1);

/// What a client's feed may hold before the client is dropped: the text of
/// its queued items, and [`ITEM_COST`] for each.
pub const FEED_BUDGET: usize = 4 << 20;

/// What one queued item costs besides its text: the item in the channel
/// and its text's allocation. Without it, a child printing empty lines to
/// a client that stopped reading would queue lines without bound.
const ITEM_COST: usize = 128;

/// What `item` counts against a feed's budget.
fn cost(item: &Item) -> usize {
    ITEM_COST
        + match item {
            Item::Line(line) => line.text.len(),
            Item::Output(bytes) => bytes.len(),
            Item::End(_) => 0,
        }
}

/// One line as the scrollback keeps it: its text without the `\n`
/// (a `\r` before it is kept, as pm start printed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The order pm received it in, across every source.
    pub seq: u64,
    /// When pm received it: unix time in milliseconds.
    pub millis: u64,
    pub name: Arc<str>,
    /// The source's palette index in pm start's output (none for `system`).
    pub color: Option<usize>,
    pub text: Vec<u8>,
}

/// What a client's feed carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A line, for `pm logs --follow`.
    Line(LogLine),
    /// Bytes as the instance wrote them, for `pm attach`.
    Output(Vec<u8>),
    /// The end of the feed, and why.
    End(End),
}

/// Why a feed ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// pm is exiting.
    PmExited,
    /// The attached instance's run ended; the message says how.
    Exited(String),
}

/// Which sources a `pm logs` wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every instance and `system`.
    All,
    /// These sources (instances by name, or `system`) and every instance
    /// of these types,
    /// including instances that appear later (a scale up).
    Only {
        names: Vec<String>,
        types: Vec<String>,
    },
}

/// Something the runtime should say in a `system` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A client fell [`FEED_BUDGET`] behind and was dropped; `what` names it.
    Dropped { what: String },
}

/// The scrollback of a running pm; clones share it.
#[derive(Debug, Clone)]
pub struct Scrollback {
    inner: Arc<Mutex<Inner>>,
}

/// The receiving ends the runtime keeps: notices to say, and a channel that
/// closes once every client's feed is gone.
#[derive(Debug)]
pub struct ScrollbackEvents {
    pub notices: mpsc::UnboundedReceiver<Notice>,
    pub feeds_gone: mpsc::Receiver<()>,
}

#[derive(Debug)]
struct Inner {
    /// Lines kept per source.
    lines: usize,
    seq: u64,
    sources: Vec<Source>,
    followers: Vec<Follower>,
    notices: mpsc::UnboundedSender<Notice>,
    /// Cloned into every feed; dropped at [`Scrollback::close`], so the
    /// receiver ends once the last feed is dropped.
    alive: Option<mpsc::Sender<()>>,
}

#[derive(Debug)]
struct Source {
    name: Arc<str>,
    /// The process type of an instance; `None` for `system`.
    type_name: Option<String>,
    color: Option<usize>,
    ring: Ring,
    /// The framer's pending partial line (a prompt), which an attached
    /// client is shown first: it is no line yet.
    pending: Vec<u8>,
    /// The attached client, if any.
    tap: Option<Sender>,
}

#[derive(Debug)]
struct Follower {
    sender: Sender,
    filter: Filter,
    what: String,
}

impl Filter {
    fn matches(&self, source: &Source) -> bool {
        match self {
            Filter::All => true,
            Filter::Only { names, types } => {
                names.iter().any(|n| **n == *source.name)
                    || source
                        .type_name
                        .as_ref()
                        .is_some_and(|type_name| types.contains(type_name))
            }
        }
    }
}

/// The kept lines of one source: their texts back to back, each followed by
/// its `\n` (so a run of lines as the child wrote them is kept in one
/// copy), and one head per line.
#[derive(Debug, Default)]
struct Ring {
    text: VecDeque<u8>,
    heads: VecDeque<Head>,
}

#[derive(Debug, Clone, Copy)]
struct Head {
    seq: u64,
    millis: u64,
    /// The text's length, without its `\n`.
    len: u32,
}

impl Head {
    /// The bytes the line takes in the ring's text.
    fn kept(&self) -> usize {
        self.len as usize + 1
    }
}

impl Ring {
    fn push(&mut self, seq: u64, millis: u64, parts: &[&[u8]], max_lines: usize) {
        if max_lines == 0 {
            return;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.make_room(1, len + 1, max_lines);
        for part in parts {
            self.text.extend(part.iter());
        }
        self.text.push_back(b'\n');
        self.heads.push_back(Head {
            seq,
            millis,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        });
    }

    /// Keeps whole lines at once: `run` is their texts, each with its `\n`
    /// (at the offsets `ends`), none longer than a line may be. The first
    /// has the sequence number `first`. Lines the run itself pushes out are
    /// never copied.
    fn push_run(&mut self, first: u64, millis: u64, run: &[u8], ends: &[usize], max_lines: usize) {
        if max_lines == 0 || ends.is_empty() {
            return;
        }
        let start_of = |line: usize| if line == 0 { 0 } else { ends[line - 1] + 1 };
        // The run's last lines that fit: at most max_lines, and at most the
        // byte limit (a run of short lines rarely needs the second).
        let mut skip = ends.len().saturating_sub(max_lines);
        while run.len() - start_of(skip) > MAX_SOURCE_BYTES {
            skip += 1;
        }
        let from = start_of(skip);
        self.make_room(ends.len() - skip, run.len() - from, max_lines);
        self.text.extend(run[from..].iter());
        for (seq, line) in (first + skip as u64..).zip(skip..ends.len()) {
            self.heads.push_back(Head {
                seq,
                millis,
                len: u32::try_from(ends[line] - start_of(line)).unwrap_or(u32::MAX),
            });
        }
    }

    /// Lets go of the oldest lines until `lines` more lines of `bytes` in
    /// all fit, and makes room for the bytes.
    fn make_room(&mut self, lines: usize, bytes: usize, max_lines: usize) {
        let mut gone = 0;
        while let Some(head) = self.heads.front()
            && (self.heads.len() + lines > max_lines
                || self.text.len() - gone + bytes > MAX_SOURCE_BYTES)
        {
            gone += head.kept();
            self.heads.pop_front();
        }
        self.text.drain(..gone);
        let free = self.text.capacity() - self.text.len();
        if free < bytes {
            // Double, as VecDeque would, but never past the byte limit.
            let want = (self.text.capacity() * 2)
                .max(self.text.len() + bytes)
                .min(MAX_SOURCE_BYTES.max(self.text.len() + bytes));
            self.text.reserve_exact(want - self.text.len());
        }
    }

    /// The last `n` lines as (head, start offset in `text`), oldest first.
    fn last(&self, n: usize) -> Vec<(Head, usize)> {
        let mut end = self.text.len();
        let mut out: Vec<(Head, usize)> = self
            .heads
            .iter()
            .rev()
            .take(n)
            .map(|head| {
                end -= head.kept();
                (*head, end)
            })
            .collect();
        out.reverse();
        out
    }

    fn text(&self, start: usize, len: usize) -> Vec<u8> {
        self.text.range(start..start + len).copied().collect()
    }
}

/// The sending end of one client's feed.
#[derive(Debug)]
struct Sender {
    tx: mpsc::UnboundedSender<Item>,
    control: Arc<FeedControl>,
}

#[derive(Debug, Default)]
struct FeedControl {
    /// What is queued and not yet taken by the client (see [`cost`]).
    queued: AtomicUsize,
    dropped: AtomicBool,
    wake: Notify,
}

/// Why a send failed.
enum Gone {
    /// The client went away.
    Left,
    /// The client fell too far behind and is dropped.
    Behind,
}

impl Sender {
    fn send(&self, item: Item) -> Result<(), Gone> {
        let size = cost(&item);
        let queued = self.control.queued.fetch_add(size, Ordering::Relaxed) + size;
        if queued > FEED_BUDGET {
            self.control.dropped.store(true, Ordering::Relaxed);
            self.control.wake.notify_one();
            return Err(Gone::Behind);
        }
        self.tx.send(item).map_err(|_| Gone::Left)
    }

    fn end(self, end: End) {
        let _ = self.tx.send(Item::End(end));
    }
}

/// The client's end of a feed: items in order, until an [`Item::End`], or
/// until the scrollback dropped it for falling behind.
#[derive(Debug)]
pub struct Feed {
    rx: mpsc::UnboundedReceiver<Item>,
    control: Arc<FeedControl>,
    _alive: Option<mpsc::Sender<()>>,
}

impl Feed {
    /// The next item; `None` once the feed ended (the scrollback is gone)
    /// or was dropped (then [`Feed::was_dropped`] says so).
    pub async fn next(&mut self) -> Option<Item> {
        if self.was_dropped() {
            return None;
        }
        let item = self.rx.recv().await?;
        Some(self.taken(item))
    }

    /// The next item if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<Item> {
        if self.was_dropped() {
            return None;
        }
        let item = self.rx.try_recv().ok()?;
        Some(self.taken(item))
    }

    fn taken(&self, item: Item) -> Item {
        if !matches!(item, Item::End(_)) {
            self.control
                .queued
                .fetch_sub(cost(&item), Ordering::Relaxed);
        }
        item
    }

    /// Whether the scrollback dropped this client for falling behind.
    pub fn was_dropped(&self) -> bool {
        self.control.dropped.load(Ordering::Relaxed)
    }

    /// Resolves once this client is dropped for falling behind: a write to
    /// a client that stopped reading is abandoned then.
    pub async fn dropped(&self) {
        while !self.was_dropped() {
            self.control.wake.notified().await;
        }
    }
}

impl Scrollback {
    /// A scrollback keeping `lines` lines per source.
    pub fn new(lines: usize) -> (Scrollback, ScrollbackEvents) {
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let (alive, feeds_gone) = mpsc::channel(1);
        let inner = Inner {
            lines,
            seq: 0,
            sources: Vec::new(),
            followers: Vec::new(),
            notices: notices_tx,
            alive: Some(alive),
        };
        (
            Scrollback {
                inner: Arc::new(Mutex::new(inner)),
            },
            ScrollbackEvents {
                notices,
                feeds_gone,
            },
        )
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while recording leaves nothing half-done that matters:
        // the worst is one line missing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The recorder for the source `name` (an instance of `type_name`, or
    /// `system` with `None`). The same name gets the same source, so an
    /// instance's lines survive its restarts.
    pub fn recorder(&self, name: &str, type_name: Option<&str>, color: Option<usize>) -> Recorder {
        let mut inner = self.lock();
        let source = match inner.sources.iter().position(|s| &*s.name == name) {
            Some(source) => source,
            None => {
                inner.sources.push(Source {
                    name: name.into(),
                    type_name: type_name.map(str::to_string),
                    color,
                    ring: Ring::default(),
                    pending: Vec::new(),
                    tap: None,
                });
                inner.sources.len() - 1
            }
        };
        Recorder {
            log: self.clone(),
            source,
        }
    }

    fn feed(inner: &Inner) -> (Sender, Feed) {
        let (tx, rx) = mpsc::unbounded_channel();
        let control = Arc::new(FeedControl::default());
        (
            Sender {
                tx,
                control: Arc::clone(&control),
            },
            Feed {
                rx,
                control,
                _alive: inner.alive.clone(),
            },
        )
    }

    /// The last `last` lines of the sources `filter` names, in the order
    /// pm received them, and, with `follow`, a feed of every line after
    /// them (none lost, none repeated). `what` names the client in a
    /// `system` line should it be dropped.
    pub fn logs(
        &self,
        filter: Filter,
        last: usize,
        follow: bool,
        what: &str,
    ) -> (Vec<LogLine>, Option<Feed>) {
        let mut inner = self.lock();
        let mut picked: Vec<(Head, usize, usize)> = Vec::new();
        for (index, source) in inner.sources.iter().enumerate() {
            if filter.matches(source) {
                picked.extend(
                    source
                        .ring
                        .last(last)
                        .into_iter()
                        .map(|(head, start)| (head, start, index)),
                );
            }
        }
        picked.sort_unstable_by_key(|(head, _, _)| head.seq);
        let skip = picked.len().saturating_sub(last);
        let lines = picked[skip..]
            .iter()
            .map(|&(head, start, index)| {
                let source = &inner.sources[index];
                LogLine {
                    seq: head.seq,
                    millis: head.millis,
                    name: Arc::clone(&source.name),
                    color: source.color,
                    text: source.ring.text(start, head.len as usize),
                }
            })
            .collect();
        let feed = follow.then(|| {
            let (sender, feed) = Scrollback::feed(&inner);
            inner.followers.push(Follower {
                sender,
                filter,
                what: what.to_string(),
            });
            feed
        });
        (lines, feed)
    }

    /// Attaches a client to the source `name`: its last `last` lines, and a
    /// feed of what it writes from now on, as it wrote it. A client already
    /// attached is replaced (the caller allows one at a time). None when no
    /// source has that name yet.
    pub fn attach(&self, name: &str, last: usize) -> (Vec<LogLine>, Feed) {
        let filter = Filter::Only {
            names: vec![name.to_string()],
            types: Vec::new(),
        };
        let (lines, _) = self.logs(filter, last, false, "");
        let mut inner = self.lock();
        let (sender, feed) = Scrollback::feed(&inner);
        if let Some(source) = inner.sources.iter_mut().find(|s| &*s.name == name) {
            if !source.pending.is_empty() {
                let _ = sender.send(Item::Output(source.pending.clone()));
            }
            source.tap = Some(sender);
        }
        (lines, feed)
    }

    /// Ends the attached client's feed of `name` with `message`, after
    /// everything recorded so far.
    pub fn detach(&self, name: &str, message: &str) {
        let mut inner = self.lock();
        if let Some(tap) = inner
            .sources
            .iter_mut()
            .find(|s| &*s.name == name)
            .and_then(|s| s.tap.take())
        {
            tap.end(End::Exited(message.to_string()));
        }
    }

    /// Ends every feed (pm is exiting). The receiver
    /// [`ScrollbackEvents::feeds_gone`] ends once their clients let go.
    pub fn close(&self) {
        let mut inner = self.lock();
        for follower in inner.followers.drain(..) {
            follower.sender.end(End::PmExited);
        }
        for source in &mut inner.sources {
            if let Some(tap) = source.tap.take() {
                tap.end(End::PmExited);
            }
        }
        inner.alive = None;
    }
}

/// Where one source's framer records its lines.
#[derive(Debug)]
pub struct Recorder {
    log: Scrollback,
    source: usize,
}

impl Recorder {
    /// Starts recording what one chunk brings, received at `millis`; the
    /// scrollback stays locked until the recording is dropped.
    pub(super) fn start(&self, millis: u64) -> Recording<'_> {
        Recording {
            inner: self.log.lock(),
            source: self.source,
            millis,
        }
    }
}

/// One chunk's recording (see [`Recorder::start`]).
pub(super) struct Recording<'a> {
    inner: MutexGuard<'a, Inner>,
    source: usize,
    millis: u64,
}

impl Recording<'_> {
    /// The bytes as they came, for the attached client.
    pub(super) fn raw(&mut self, data: &[u8]) {
        let inner = &mut *self.inner;
        let source = &mut inner.sources[self.source];
        let Some(tap) = &source.tap else {
            return;
        };
        match tap.send(Item::Output(data.to_vec())) {
            Ok(()) => {}
            Err(gone) => {
                source.tap = None;
                if let Gone::Behind = gone {
                    let what = format!("the pm attach to {}", source.name);
                    let _ = inner.notices.send(Notice::Dropped { what });
                }
            }
        }
    }

    /// What the framer holds after this chunk: the start of a line whose
    /// end has not come yet.
    pub(super) fn partial(&mut self, partial: &[u8]) {
        let source = &mut self.inner.sources[self.source];
        if partial.is_empty() {
            if !source.pending.is_empty() {
                source.pending = Vec::new();
            }
        } else if source.pending != partial {
            source.pending.clear();
            source.pending.extend_from_slice(partial);
        }
    }

    /// One line, given in parts (a pending partial line and its end).
    pub(super) fn line(&mut self, parts: &[&[u8]]) {
        let inner = &mut *self.inner;
        inner.seq += 1;
        let seq = inner.seq;
        inner.sources[self.source]
            .ring
            .push(seq, self.millis, parts, inner.lines);
        if !inner.followers.is_empty() {
            self.follow(seq, &parts.concat());
        }
    }

    /// Whole lines at once: `run` holds their texts, each with its `\n`,
    /// none longer than [`super::MAX_LINE`], and `ends` where each `\n` is.
    /// A chunk of lines costs one copy, not one per line.
    pub(super) fn run(&mut self, run: &[u8], ends: &[usize]) {
        if ends.is_empty() {
            return;
        }
        let inner = &mut *self.inner;
        let first = inner.seq + 1;
        inner.seq += ends.len() as u64;
        inner.sources[self.source]
            .ring
            .push_run(first, self.millis, run, ends, inner.lines);
        if !inner.followers.is_empty() {
            let mut start = 0;
            for (seq, &end) in (first..).zip(ends) {
                self.follow(seq, &run[start..end]);
                start = end + 1;
            }
        }
    }

    /// Sends the line `seq` to every follower that wants its source.
    fn follow(&mut self, seq: u64, text: &[u8]) {
        let inner = &mut *self.inner;
        let source = &inner.sources[self.source];
        let mut gone = Vec::new();
        for (index, follower) in inner.followers.iter().enumerate() {
            if !follower.filter.matches(source) {
                continue;
            }
            let line = LogLine {
                seq,
                millis: self.millis,
                name: Arc::clone(&source.name),
                color: source.color,
                text: text.to_vec(),
            };
            if let Err(why) = follower.sender.send(Item::Line(line)) {
                gone.push((index, why));
            }
        }
        for (index, why) in gone.into_iter().rev() {
            let follower = inner.followers.swap_remove(index);
            if let Gone::Behind = why {
                let _ = inner.notices.send(Notice::Dropped {
                    what: follower.what,
                });
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn record(rec: &Recorder, millis: u64, lines: &[&str]) {
        let mut r = rec.start(millis);
        for line in lines {
            r.line(&[line.as_bytes()]);
        }
    }

    fn texts(lines: &[LogLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("{}:{}", l.name, String::from_utf8_lossy(&l.text)))
            .collect()
    }

    fn only(names: &[&str], types: &[&str]) -> Filter {
        Filter::Only {
            names: names.iter().map(|s| s.to_string()).collect(),
            types: types.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn lines_come_back_in_the_order_received_filtered() {
        let (log, _events) = Scrollback::new(1000);
        let web1 = log.recorder("web.1", Some("web"), Some(0));
        let web2 = log.recorder("web.2", Some("web"), Some(1));
        let worker = log.recorder("worker.1", Some("worker"), Some(2));
        let system = log.recorder("system", None, None);
        record(&web1, 1, &["a"]);
        record(&system, 2, &["started"]);
        record(&worker, 3, &["w1", "w2"]);
        record(&web2, 4, &["b"]);
        record(&web1, 5, &["c"]);
        let (all, feed) = log.logs(Filter::All, 100, false, "");
        assert!(feed.is_none());
        assert_eq!(
            texts(&all),
            [
                "web.1:a",
                "system:started",
                "worker.1:w1",
                "worker.1:w2",
                "web.2:b",
                "web.1:c"
            ]
        );
        assert_eq!(all[1].millis, 2);
        assert_eq!(&*all[1].name, "system");
        assert_eq!(all[4].color, Some(1));
        let (last, _) = log.logs(Filter::All, 2, false, "");
        assert_eq!(texts(&last), ["web.2:b", "web.1:c"]);
        let (web, _) = log.logs(only(&[], &["web"]), 100, false, "");
        assert_eq!(texts(&web), ["web.1:a", "web.2:b", "web.1:c"]);
        let (some, _) = log.logs(only(&["web.2", "worker.1"], &[]), 2, false, "");
        assert_eq!(texts(&some), ["worker.1:w2", "web.2:b"]);
        // The same name is the same source: lines survive a restart.
        let again = log.recorder("web.1", Some("web"), Some(0));
        record(&again, 6, &["d"]);
        let (web1, _) = log.logs(only(&["web.1"], &[]), 100, false, "");
        assert_eq!(texts(&web1), ["web.1:a", "web.1:c", "web.1:d"]);
    }

    #[test]
    fn each_source_keeps_its_last_lines_and_at_most_a_mebibyte() {
        let (log, _events) = Scrollback::new(3);
        let a = log.recorder("a.1", Some("a"), None);
        let b = log.recorder("b.1", Some("b"), None);
        record(&a, 0, &["1", "2", "3", "4", "5"]);
        record(&b, 0, &["x"]);
        let (all, _) = log.logs(Filter::All, 100, false, "");
        assert_eq!(texts(&all), ["a.1:3", "a.1:4", "a.1:5", "b.1:x"]);

        let (log, _events) = Scrollback::new(1000);
        let big = log.recorder("big.1", Some("big"), None);
        let line = vec![b'z'; 64 * 1024];
        {
            let mut r = big.start(0);
            for _ in 0..40 {
                r.line(&[&line]);
            }
        }
        let (kept, _) = log.logs(Filter::All, 1000, false, "");
        assert_eq!(kept.len(), 16, "1 MiB of 64 KiB lines");
        {
            let inner = log.lock();
            assert!(inner.sources[0].ring.text.capacity() <= MAX_SOURCE_BYTES);
        }

        // The same limits for a run of lines recorded at once: 40 long
        // lines, then 5 short ones in one run past a scrollback of 3.
        let mut run = Vec::new();
        for n in 0..40u8 {
            run.extend(std::iter::repeat_n(b'a' + n % 26, 64 * 1024));
            run.push(b'\n');
        }
        let ends: Vec<usize> = (0..40).map(|n| (n + 1) * (64 * 1024 + 1) - 1).collect();
        big.start(1).run(&run, &ends);
        let (kept, _) = log.logs(Filter::All, 1000, false, "");
        assert_eq!(kept.len(), 16, "1 MiB of 64 KiB lines, in one run");
        assert!(kept.iter().all(|l| l.text.len() == 64 * 1024));
        assert_eq!(kept[15].text[0], b'a' + 39 % 26);
        assert_eq!(kept[15].seq, 80);
        {
            let inner = log.lock();
            assert!(inner.sources[0].ring.text.capacity() <= MAX_SOURCE_BYTES);
        }
        let (log, _events) = Scrollback::new(3);
        let a = log.recorder("a.1", Some("a"), None);
        record(&a, 0, &["old"]);
        a.start(1).run(b"1\n2\r\n3\n4\n5\n", &[1, 4, 6, 8, 10]);
        let (all, _) = log.logs(Filter::All, 100, false, "");
        assert_eq!(texts(&all), ["a.1:3", "a.1:4", "a.1:5"]);
        assert_eq!(all.iter().map(|l| l.seq).collect::<Vec<_>>(), [4, 5, 6]);
        a.start(2).run(b"6\n", &[1]);
        let (all, _) = log.logs(Filter::All, 100, false, "");
        assert_eq!(texts(&all), ["a.1:4", "a.1:5", "a.1:6"]);
    }

    #[test]
    fn no_lines_kept_with_a_scrollback_of_zero_and_nothing_allocated_when_idle() {
        let (log, _events) = Scrollback::new(0);
        let a = log.recorder("a.1", Some("a"), None);
        record(&a, 0, &["1"]);
        assert!(log.logs(Filter::All, 10, false, "").0.is_empty());
        let (log, _events) = Scrollback::new(1000);
        for i in 0..50 {
            log.recorder(&format!("idle.{i}"), Some("idle"), None);
        }
        let inner = log.lock();
        assert!(
            inner
                .sources
                .iter()
                .all(|s| s.ring.text.capacity() == 0 && s.ring.heads.capacity() == 0)
        );
    }

    #[tokio::test]
    async fn a_follower_gets_every_later_line_once_then_the_end() {
        let (log, mut events) = Scrollback::new(1000);
        let web = log.recorder("web.1", Some("web"), Some(0));
        let db = log.recorder("db.1", Some("db"), Some(1));
        record(&web, 0, &["before"]);
        let (lines, feed) = log.logs(only(&[], &["web"]), 10, true, "a pm logs");
        let mut feed = feed.unwrap();
        assert_eq!(texts(&lines), ["web.1:before"]);
        record(&web, 0, &["after"]);
        record(&db, 0, &["not mine"]);
        // A type's instance that appears later is followed too.
        let web2 = log.recorder("web.2", Some("web"), Some(2));
        record(&web2, 0, &["new"]);
        log.close();
        let mut got = Vec::new();
        while let Some(item) = feed.next().await {
            got.push(item);
        }
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Item::Line(l) if l.text == b"after"));
        assert!(matches!(&got[1], Item::Line(l) if &*l.name == "web.2"));
        assert_eq!(got[2], Item::End(End::PmExited));
        drop(feed);
        assert_eq!(events.feeds_gone.recv().await, None);
    }

    #[tokio::test]
    async fn a_follower_that_falls_behind_is_dropped_with_a_notice() {
        let (log, mut events) = Scrollback::new(10);
        let web = log.recorder("web.1", Some("web"), None);
        let (_, stalled) = log.logs(Filter::All, 0, true, "a pm logs -F client");
        let (_, reading) = log.logs(Filter::All, 0, true, "another");
        let stalled = stalled.unwrap();
        let mut reading = reading.unwrap();
        let line = vec![b'x'; 1000];
        for _ in 0..(FEED_BUDGET / 1000 + 10) {
            web.start(0).line(&[&line]);
            // The other client keeps up and is never dropped.
            assert!(matches!(reading.next().await, Some(Item::Line(_))));
        }
        assert!(stalled.was_dropped());
        tokio::time::timeout(std::time::Duration::from_secs(5), stalled.dropped())
            .await
            .unwrap();
        assert!(!reading.was_dropped());
        assert_eq!(
            events.notices.try_recv().unwrap(),
            Notice::Dropped {
                what: "a pm logs -F client".into()
            }
        );
        assert_eq!(log.lock().followers.len(), 1);
    }

    #[tokio::test]
    async fn a_stalled_follower_of_empty_lines_is_dropped_too() {
        let (log, mut events) = Scrollback::new(10);
        let web = log.recorder("web.1", Some("web"), None);
        let (_, stalled) = log.logs(Filter::All, 0, true, "a pm logs -F client");
        let stalled = stalled.unwrap();
        for _ in 0..(FEED_BUDGET / ITEM_COST + 10) {
            web.start(0).line(&[b""]);
        }
        assert!(stalled.was_dropped(), "empty lines queued without bound");
        assert_eq!(
            events.notices.try_recv().unwrap(),
            Notice::Dropped {
                what: "a pm logs -F client".into()
            }
        );
    }

    #[tokio::test]
    async fn an_attached_client_gets_raw_output_then_its_end() {
        let (log, _events) = Scrollback::new(10);
        let web = log.recorder("web.1", Some("web"), None);
        record(&web, 0, &["old"]);
        web.start(0).partial(b"(Pdb) ");
        let (recent, mut feed) = log.attach("web.1", 5);
        assert_eq!(texts(&recent), ["web.1:old"]);
        // The prompt pending when it attached comes first.
        assert_eq!(feed.next().await, Some(Item::Output(b"(Pdb) ".to_vec())));
        {
            let mut r = web.start(0);
            r.raw(b"(Pdb) ");
        }
        log.detach("web.1", "web.1 exited");
        assert_eq!(feed.next().await, Some(Item::Output(b"(Pdb) ".to_vec())));
        assert_eq!(
            feed.next().await,
            Some(Item::End(End::Exited("web.1 exited".into())))
        );
    }
}
