//! The file watcher: one more event source. Types with `watch` globs in
//! pm.toml restart when a matching file under the root is created, changed
//! or removed.
//!
//! It owns the OS's notification API (inotify, FSEvents, through the
//! `notify` crate; never polling) and one thread of its own that sleeps
//! until the OS reports something. That thread debounces: a type's burst
//! of changes is over once none came for its window (`watch_debounce`,
//! 200 ms by default), and becomes one [`Change`] naming the burst's first
//! file, sent on this source's own unbounded channel (a send never blocks).
//! Which paths count and when a burst ends is [`rules`], pure and tested
//! without files. It never decides what a change means for an instance
//! (the supervisor does) and never imports the runtime.
//!
//! On Linux it watches each directory under the root except `.git`,
//! `node_modules`, `target` and `__pycache__` (a watch per directory is
//! what inotify offers, and those trees can be huge and busy); a directory
//! created later is watched first and read second, so a file written into
//! it at once is never missed. FSEvents watches the root as a whole.

mod rules;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Instant, SystemTime};

use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;

pub use rules::Rules;
use rules::{Bursts, MtimeFilter};

/// Where each directory needs a watch of its own (inotify); elsewhere the
/// root's watch covers its whole tree (FSEvents).
const PER_DIRECTORY: bool = cfg!(target_os = "linux");

/// The most waiting messages read before looking at the bursts' deadlines.
const MAX_READ_AHEAD: usize = 10_000;

/// What the watcher tells the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A burst of changes to files a type watches is over: restart it.
    Changed(Change),
    /// Something can no longer be watched (a new directory over inotify's
    /// limit, say): one line for the user.
    Trouble(String),
}

/// A file that type `type_index` watches changed (the first of its burst,
/// relative to the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub type_index: usize,
    pub path: String,
}

/// What the watcher thread receives: the OS's events, and the end.
enum Msg {
    Os(notify::Result<Event>),
    Stop,
}

/// Watches the root while it lives; dropping it stops the thread and the
/// OS's watch.
pub struct Watcher {
    stop: Sender<Msg>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.stop.send(Msg::Stop);
    }
}

/// Starts watching the root for `rules`. The tree is watched when this
/// returns (a failure is the error), so a save right after is seen.
pub fn start(rules: Rules, tx: UnboundedSender<Notice>) -> Result<Watcher, String> {
    let (msg_tx, msg_rx) = mpsc::channel();
    let os_tx = msg_tx.clone();
    let os = RecommendedWatcher::new(
        move |event: notify::Result<Event>| {
            // Opening or reading a file is no change; stop those here, the
            // most frequent events of all.
            if !matches!(&event, Ok(e) if matches!(e.kind, EventKind::Access(_))) {
                let _ = os_tx.send(Msg::Os(event));
            }
        },
        notify::Config::default(),
    )
    .map_err(|e| format!("cannot watch files: {e}"))?;
    let mut thread = Thread {
        rules,
        os,
        watched: HashSet::new(),
        mtimes: MtimeFilter::new(SystemTime::now()),
        bursts: Bursts::default(),
        tx,
    };
    let root = thread.rules.root().to_path_buf();
    if PER_DIRECTORY {
        thread.add_tree(&root, None)?;
    } else {
        thread
            .os
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
    }
    std::thread::Builder::new()
        .name("pm-watch".into())
        .spawn(move || thread.run(msg_rx))
        .map_err(|e| format!("cannot watch files: {e}"))?;
    Ok(Watcher { stop: msg_tx })
}

struct Thread {
    rules: Rules,
    os: RecommendedWatcher,
    /// Directories with a watch of their own (Linux).
    watched: HashSet<PathBuf>,
    mtimes: MtimeFilter,
    bursts: Bursts,
    tx: UnboundedSender<Notice>,
}

impl Thread {
    /// Sleeps until an event, or until the next burst is over. Every
    /// message already waiting is read before a burst is declared over, so
    /// a late wake-up lengthens a burst rather than splitting it.
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let first = match self.bursts.next_deadline() {
                None => match rx.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => return,
                },
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(msg) => Some(msg),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            // Bounded, so that a flood of events cannot hold back a burst
            // that is over for good.
            let waiting = std::iter::from_fn(|| rx.try_recv().ok()).take(MAX_READ_AHEAD);
            for msg in first.into_iter().chain(waiting) {
                match msg {
                    Msg::Stop => return,
                    Msg::Os(Ok(event)) => self.on_event(event),
                    Msg::Os(Err(e)) => self.trouble(format!("watching files: {e}")),
                }
            }
            for change in self.bursts.take_over(Instant::now()) {
                if self.tx.send(Notice::Changed(change)).is_err() {
                    return;
                }
            }
        }
    }

    fn trouble(&mut self, line: String) {
        let _ = self.tx.send(Notice::Trouble(line));
    }

    fn on_event(&mut self, event: Event) {
        let now = Instant::now();
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        for path in &event.paths {
            let (types, rel) = self.rules.matches(path);
            let mut counts = !types.is_empty();
            match event.kind {
                // An attribute change is a save only when it moved the
                // modification time (`touch`), not a `chmod`.
                EventKind::Modify(ModifyKind::Metadata(_)) => {
                    counts = counts && self.mtimes.changed(path, modified(path));
                }
                // A directory made (or moved in) after the start: what it
                // holds is new too.
                EventKind::Create(_)
                | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Any))
                    if self.rules.walks(path) && is_dir(path) =>
                {
                    if let Err(e) = self.add_tree(path, Some(now)) {
                        self.trouble(format!("{e}; files under it are not watched"));
                    }
                }
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                    self.forget_tree(path);
                }
                _ => {}
            }
            if !counts {
                continue;
            }
            if !matches!(event.kind, EventKind::Modify(ModifyKind::Metadata(_))) {
                self.mtimes.seen(path, modified(path));
            }
            for (t, window) in types {
                self.bursts.add(t, &rel, window, now);
            }
        }
    }

    /// Watches `dir` and what is under it (on Linux, each directory; it is
    /// watched before it is read, so nothing created meanwhile is missed).
    /// With `changed_at`, its files are new: each counts as a change.
    fn add_tree(&mut self, dir: &Path, changed_at: Option<Instant>) -> Result<(), String> {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if PER_DIRECTORY && !self.watched.contains(&dir) {
                match self.os.watch(&dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched.insert(dir.clone());
                    }
                    // Gone already: nothing to watch there.
                    Err(_) if !is_dir(&dir) => continue,
                    Err(e) => return Err(format!("cannot watch {}: {e}", dir.display())),
                }
            }
            // A directory gone since, or unreadable, has nothing to add.
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                // The entry's own type: a symlink to a directory is not
                // followed, so a link loop cannot run forever.
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                if kind.is_dir() {
                    if !Rules::skips_dir(&entry.file_name()) {
                        stack.push(path);
                    }
                } else if let Some(now) = changed_at {
                    let (types, rel) = self.rules.matches(&path);
                    for (t, window) in types {
                        self.bursts.add(t, &rel, window, now);
                    }
                }
            }
        }
        Ok(())
    }

    /// A path removed or renamed away: the watches under it go (the kernel
    /// drops a deleted directory's own), so a directory made again with
    /// that name is watched again.
    fn forget_tree(&mut self, path: &Path) {
        if !self.watched.contains(path) {
            return;
        }
        let gone: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|d| d.starts_with(path))
            .cloned()
            .collect();
        for dir in gone {
            let _ = self.os.unwatch(&dir);
            self.watched.remove(&dir);
        }
    }
}

/// Whether `path` is a directory itself (a symlink to one is not).
fn is_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}
