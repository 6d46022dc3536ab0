//! The file watcher: one more event source. Types with `watch` globs in
//! pm.toml restart when a matching file under the root is created, changed
//! or removed.
//!
//! It owns the OS's notification API (inotify, FSEvents, through the
//! `notify` crate; never polling; opening or reading a file is no change)
//! and its debouncer (`notify-debouncer-mini`, which sleeps until an event):
//! a burst of saves less than [`DEBOUNCE`] apart comes as one batch once
//! the files are quiet, and each batch becomes at most one [`Change`] per
//! type, sent on this source's own
//! channel. Which paths count is [`Rules`], pure and tested without files.
//! It never decides what a change means for an instance (the supervisor
//! does) and never imports the runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use globset::{GlobSet, GlobSetBuilder};
use notify_debouncer_mini::notify::{
    self, Event, EventHandler, EventKind, RecommendedWatcher, RecursiveMode, WatcherKind,
    event::ModifyKind,
};
use notify_debouncer_mini::{
    Config, DebounceEventResult, DebouncedEventKind, Debouncer, new_debouncer_opt,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::pm_toml::{WatchGlobs, glob};

/// Saves closer together than this are one change.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// What never triggers a restart, whatever the globs say: version control,
/// dependencies and build output, bytecode caches, and the temporary files
/// editors write while saving (vim's `.swp`/`.swx` and its `4913` probe,
/// backups `file~`, Emacs's lock files `.#file`).
pub const ALWAYS_IGNORED: &[&str] = &[
    "**/.git/**",
    "**/node_modules/**",
    "**/target/**",
    "**/__pycache__/**",
    "**/*.swp",
    "**/*.swx",
    "**/*~",
    "**/.#*",
    "**/4913",
];

/// What the watcher tells the runtime: a file that type `type_index`
/// watches changed (the first of its batch, relative to the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub type_index: usize,
    pub path: String,
}

/// Which changed paths restart which types.
#[derive(Debug, Clone)]
pub struct Rules {
    root: PathBuf,
    /// The root as the OS names it (symlinks resolved), for events that
    /// come with that spelling.
    real_root: Option<PathBuf>,
    always: GlobSet,
    types: Vec<(usize, GlobSet, GlobSet)>,
}

impl Rules {
    /// Rules for the types that watch (by index); the globs were checked
    /// when pm.toml was read, so an error here names the glob anyway.
    pub fn new(root: &Path, types: &[(usize, &WatchGlobs)]) -> Result<Rules, String> {
        let set = |globs: &[String]| -> Result<GlobSet, String> {
            let mut builder = GlobSetBuilder::new();
            for g in globs {
                builder.add(glob(g).map_err(|e| format!("watch glob \"{g}\": {e}"))?);
            }
            builder.build().map_err(|e| e.to_string())
        };
        let always: Vec<String> = ALWAYS_IGNORED.iter().map(|s| s.to_string()).collect();
        Ok(Rules {
            root: root.to_path_buf(),
            real_root: std::fs::canonicalize(root).ok(),
            always: set(&always)?,
            types: types
                .iter()
                .map(|(t, w)| Ok((*t, set(&w.include)?, set(&w.ignore)?)))
                .collect::<Result<_, String>>()?,
        })
    }

    /// Whether any type watches anything.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// `path` relative to the root, when it is under it.
    fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.root)
            .ok()
            .or_else(|| path.strip_prefix(self.real_root.as_ref()?).ok())
    }

    /// The types a change of `path` (as the OS reports it) restarts, and
    /// the path relative to the root.
    pub fn matches(&self, path: &Path) -> (Vec<usize>, String) {
        let Some(rel) = self.relative(path) else {
            return (Vec::new(), String::new());
        };
        if rel.as_os_str().is_empty() || self.always.is_match(rel) {
            return (Vec::new(), String::new());
        }
        let types = self
            .types
            .iter()
            .filter(|(_, include, ignore)| include.is_match(rel) && !ignore.is_match(rel))
            .map(|(t, _, _)| *t)
            .collect();
        (types, rel.display().to_string())
    }
}

/// Watches the root while it lives; dropping it stops the OS's watch.
pub struct Watcher {
    _debouncer: Debouncer<ChangesOnly>,
}

/// The OS's watcher, passing on changes only. inotify also reports that a
/// file was opened or read, and a read that updates the access time is an
/// attribute change like `touch` or `chmod` (the debouncer keeps no event
/// kinds), so a server reading its templates, or the watcher's own walk of
/// the tree, would look like a save. Access events stop here, and so does
/// an attribute change that leaves the modification time as it was
/// ([`MtimeFilter`]).
struct ChangesOnly(RecommendedWatcher);

impl notify::Watcher for ChangesOnly {
    fn new<F: EventHandler>(mut handler: F, config: notify::Config) -> notify::Result<Self> {
        let mut mtimes = MtimeFilter::new(SystemTime::now());
        let filter = move |event: notify::Result<Event>| {
            if let Ok(e) = &event {
                let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                match e.kind {
                    EventKind::Access(_) => return,
                    EventKind::Modify(ModifyKind::Metadata(_)) => {
                        if !e.paths.iter().any(|p| mtimes.changed(p, modified(p))) {
                            return;
                        }
                    }
                    _ => {
                        for p in &e.paths {
                            mtimes.seen(p, modified(p));
                        }
                    }
                }
            }
            handler.handle_event(event);
        };
        RecommendedWatcher::new(filter, config).map(ChangesOnly)
    }

    fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn kind() -> WatcherKind {
        RecommendedWatcher::kind()
    }
}

/// Tells a `touch` (a new modification time) from a read that updated the
/// access time: both come as attribute changes.
struct MtimeFilter {
    since: SystemTime,
    last: HashMap<PathBuf, SystemTime>,
}

impl MtimeFilter {
    fn new(since: SystemTime) -> MtimeFilter {
        MtimeFilter {
            since,
            last: HashMap::new(),
        }
    }

    /// A change of content (or a creation) was seen with this mtime.
    fn seen(&mut self, path: &Path, mtime: Option<SystemTime>) {
        if let Some(t) = mtime {
            self.last.insert(path.to_path_buf(), t);
        }
    }

    /// An attribute change: a change only when the modification time moved
    /// past the last one known (for a file not seen yet: the start).
    fn changed(&mut self, path: &Path, mtime: Option<SystemTime>) -> bool {
        let Some(t) = mtime else {
            return false;
        };
        let known = self.last.get(path).copied().unwrap_or(self.since);
        if t > known {
            self.last.insert(path.to_path_buf(), t);
            true
        } else {
            false
        }
    }
}

/// Starts watching the root (recursively) for `rules`; each debounced batch
/// sends at most one [`Change`] per type.
pub fn start(rules: Rules, tx: UnboundedSender<Change>) -> Result<Watcher, String> {
    let root = rules.root.clone();
    let config = Config::default().with_timeout(DEBOUNCE);
    let mut debouncer =
        new_debouncer_opt::<_, ChangesOnly>(config, move |batch: DebounceEventResult| {
            let Ok(events) = batch else {
                return;
            };
            let mut sent: Vec<usize> = Vec::new();
            // A path still changing after DEBOUNCE comes twice: as
            // `AnyContinuous`, then as `Any` once quiet. Only the last counts,
            // so a burst is one restart, after its last save.
            let mut paths: Vec<&Path> = events
                .iter()
                .filter(|e| e.kind == DebouncedEventKind::Any)
                .map(|e| e.path.as_path())
                .collect();
            paths.sort();
            for path in paths {
                let (types, rel) = rules.matches(path);
                for t in types {
                    if !sent.contains(&t) {
                        sent.push(t);
                        let _ = tx.send(Change {
                            type_index: t,
                            path: rel.clone(),
                        });
                    }
                }
            }
        })
        .map_err(|e| format!("cannot watch files: {e}"))?;
    debouncer
        .watcher()
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
    Ok(Watcher {
        _debouncer: debouncer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(include: &[&str], ignore: &[&str]) -> WatchGlobs {
        WatchGlobs {
            include: include.iter().map(|s| s.to_string()).collect(),
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn globs_pick_types() {
        let web = globs(&["app/**/*.py", "templates/**"], &["**/*.tmp"]);
        let css = globs(&["**/*.css"], &[]);
        let rules = Rules::new(Path::new("/app"), &[(0, &web), (2, &css)]).unwrap();
        let m = |p: &str| rules.matches(Path::new(p)).0;
        let table: [(&str, &[usize]); 7] = [
            ("/app/app/models/user.py", &[0]),
            ("/app/app/user.py", &[0]),
            ("/app/templates/a/b.html", &[0]),
            ("/app/templates/x.tmp", &[]),
            ("/app/static/site.css", &[2]),
            ("/app/user.py", &[]),
            ("/elsewhere/app/user.py", &[]),
        ];
        for (path, want) in table {
            assert_eq!(m(path), want, "{path}");
        }
        assert_eq!(
            rules.matches(Path::new("/app/app/models/user.py")).1,
            "app/models/user.py"
        );
    }

    #[test]
    fn version_control_dependencies_builds_and_editor_files_never_count() {
        let all = globs(&["**"], &[]);
        let rules = Rules::new(Path::new("/app"), &[(0, &all)]).unwrap();
        assert_eq!(rules.matches(Path::new("/app/a/b.txt")).0, [0]);
        for path in [
            "/app/.git/HEAD",
            "/app/sub/.git/index",
            "/app/node_modules/x/y.js",
            "/app/web/node_modules/y.js",
            "/app/target/debug/pm",
            "/app/app/__pycache__/user.cpython-312.pyc",
            "/app/app/.user.py.swp",
            "/app/app/.user.py.swx",
            "/app/app/user.py~",
            "/app/app/.#user.py",
            "/app/app/4913",
            "/app",
        ] {
            assert!(rules.matches(Path::new(path)).0.is_empty(), "{path}");
        }
    }

    #[test]
    fn an_attribute_change_counts_only_with_a_new_modification_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let s = Duration::from_secs;
        let mut f = MtimeFilter::new(t0);
        let p = Path::new("/app/a.py");
        assert!(!f.changed(p, Some(t0 - s(5))), "read of an old file");
        assert!(f.changed(p, Some(t0 + s(1))), "touch");
        assert!(!f.changed(p, Some(t0 + s(1))), "read after the touch");
        f.seen(p, Some(t0 + s(2)));
        assert!(!f.changed(p, Some(t0 + s(2))), "read after a write");
        assert!(!f.changed(p, None), "gone");
    }

    #[test]
    fn a_single_star_stays_in_one_directory() {
        let rules = Rules::new(Path::new("/r"), &[(0, &globs(&["*.rb"], &[]))]).unwrap();
        assert_eq!(rules.matches(Path::new("/r/a.rb")).0, [0]);
        assert!(rules.matches(Path::new("/r/lib/a.rb")).0.is_empty());
    }
}
