//! What a change means, without files or clocks: which paths count for
//! which type ([`Rules`]), when a burst of changes is over ([`Bursts`]),
//! and whether an attribute change is a save ([`MtimeFilter`]). Pure and
//! table-tested; the watcher thread feeds them what the OS reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use globset::{GlobSet, GlobSetBuilder};

use super::Change;
use crate::config::pm_toml::{WatchGlobs, glob};

/// Directories never watched nor walked, and whose contents never count:
/// version control, dependencies, build output, bytecode caches.
pub const IGNORED_DIRS: &[&str] = &[".git", "node_modules", "target", "__pycache__"];

/// What never triggers a restart, whatever the globs say: the directories
/// above, and the temporary files editors write while saving (vim's
/// `.swp`/`.swx` and its `4913` probe, backups `file~`, Emacs's lock
/// files `.#file`).
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

/// One watching type: its index, what it watches, what it ignores, and how
/// long its files must be quiet before it restarts.
#[derive(Debug, Clone)]
struct TypeRule {
    type_index: usize,
    include: GlobSet,
    ignore: GlobSet,
    debounce: std::time::Duration,
}

/// Which changed paths restart which types.
#[derive(Debug, Clone)]
pub struct Rules {
    root: PathBuf,
    /// The root as the OS names it (symlinks resolved), for events that
    /// come with that spelling.
    real_root: Option<PathBuf>,
    always: GlobSet,
    types: Vec<TypeRule>,
}

impl Rules {
    /// Rules for the types that watch (by index); the globs were checked
    /// when pm.toml was read, so an error here names the glob anyway.
    pub fn new(root: &Path, types: &[(usize, &WatchGlobs)]) -> Result<Rules, String> {
        fn set<S: AsRef<str>>(globs: &[S]) -> Result<GlobSet, String> {
            let mut builder = GlobSetBuilder::new();
            for g in globs {
                let g = g.as_ref();
                builder.add(glob(g).map_err(|e| format!("watch glob \"{g}\": {e}"))?);
            }
            builder.build().map_err(|e| e.to_string())
        }
        Ok(Rules {
            root: root.to_path_buf(),
            real_root: std::fs::canonicalize(root).ok(),
            always: set(ALWAYS_IGNORED)?,
            types: types
                .iter()
                .map(|(t, w)| {
                    Ok(TypeRule {
                        type_index: *t,
                        include: set(&w.include)?,
                        ignore: set(&w.ignore)?,
                        debounce: w.debounce,
                    })
                })
                .collect::<Result<_, String>>()?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `path` relative to the root, when it is under it.
    pub fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.root)
            .ok()
            .or_else(|| path.strip_prefix(self.real_root.as_ref()?).ok())
    }

    /// Whether `path` is under the root and in no directory that is never
    /// watched: a directory made there is walked.
    pub fn walks(&self, path: &Path) -> bool {
        self.relative(path)
            .is_some_and(|rel| !rel.iter().any(Rules::skips_dir))
    }

    /// Whether a directory (by its name) is neither watched nor walked.
    pub fn skips_dir(name: &std::ffi::OsStr) -> bool {
        IGNORED_DIRS.iter().any(|d| name == *d)
    }

    /// The types a change of `path` (as the OS reports it) restarts, with
    /// how long each waits for quiet, and the path relative to the root.
    pub fn matches(&self, path: &Path) -> (Vec<(usize, std::time::Duration)>, String) {
        let Some(rel) = self.relative(path) else {
            return (Vec::new(), String::new());
        };
        if rel.as_os_str().is_empty() || self.always.is_match(rel) {
            return (Vec::new(), String::new());
        }
        let types = self
            .types
            .iter()
            .filter(|r| r.include.is_match(rel) && !r.ignore.is_match(rel))
            .map(|r| (r.type_index, r.debounce))
            .collect();
        (types, rel.display().to_string())
    }
}

/// The bursts of changes under way, one per type: a burst is over once no
/// change for that type came for its debounce window, measured from the
/// last change; it then becomes one [`Change`] naming its first file. A
/// burst whose changes are less than the window apart is therefore one
/// restart however long it lasts, and a late wake-up only makes bursts
/// longer, never splits one.
#[derive(Debug, Default)]
pub struct Bursts {
    pending: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    type_index: usize,
    first: String,
    quiet_at: Instant,
}

impl Bursts {
    /// A change of `path` for type `t`, seen at `now`.
    pub fn add(&mut self, t: usize, path: &str, window: std::time::Duration, now: Instant) {
        let quiet_at = now + window;
        match self.pending.iter_mut().find(|p| p.type_index == t) {
            Some(p) => p.quiet_at = p.quiet_at.max(quiet_at),
            None => self.pending.push(Pending {
                type_index: t,
                first: path.to_string(),
                quiet_at,
            }),
        }
    }

    /// When the next burst may be over.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.quiet_at).min()
    }

    /// The bursts over at `now`, removed, in type order.
    pub fn take_over(&mut self, now: Instant) -> Vec<Change> {
        let mut over: Vec<Change> = Vec::new();
        self.pending.retain(|p| {
            if p.quiet_at <= now {
                over.push(Change {
                    type_index: p.type_index,
                    path: p.first.clone(),
                });
                false
            } else {
                true
            }
        });
        over.sort_by_key(|c| c.type_index);
        over
    }
}

/// Tells a `touch` (a new modification time) from an attribute change that
/// is no save (a `chmod` back and forth, a read updating the access time):
/// both come as attribute changes.
#[derive(Debug)]
pub struct MtimeFilter {
    since: SystemTime,
    last: HashMap<PathBuf, SystemTime>,
}

impl MtimeFilter {
    pub fn new(since: SystemTime) -> MtimeFilter {
        MtimeFilter {
            since,
            last: HashMap::new(),
        }
    }

    /// A change of content (or a creation) was seen with this mtime.
    pub fn seen(&mut self, path: &Path, mtime: Option<SystemTime>) {
        if let Some(t) = mtime {
            self.last.insert(path.to_path_buf(), t);
        }
    }

    /// An attribute change: a change only when the modification time moved
    /// past the last one known (for a file not seen yet: the start).
    pub fn changed(&mut self, path: &Path, mtime: Option<SystemTime>) -> bool {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const W: Duration = Duration::from_millis(200);

    fn globs(include: &[&str], ignore: &[&str]) -> WatchGlobs {
        WatchGlobs {
            include: include.iter().map(|s| s.to_string()).collect(),
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
            debounce: W,
        }
    }

    fn types(rules: &Rules, path: &str) -> Vec<usize> {
        rules
            .matches(Path::new(path))
            .0
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn globs_pick_types() {
        let web = globs(&["app/**/*.py", "templates/**"], &["**/*.tmp"]);
        let css = globs(&["**/*.css"], &[]);
        let rules = Rules::new(Path::new("/app"), &[(0, &web), (2, &css)]).unwrap();
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
            assert_eq!(types(&rules, path), want, "{path}");
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
        assert_eq!(types(&rules, "/app/a/b.txt"), [0]);
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
            assert!(types(&rules, path).is_empty(), "{path}");
        }
        for dir in IGNORED_DIRS {
            assert!(Rules::skips_dir(std::ffi::OsStr::new(dir)), "{dir}");
        }
        assert!(!Rules::skips_dir(std::ffi::OsStr::new("app")));
        assert!(rules.walks(Path::new("/app/app/new")));
        assert!(!rules.walks(Path::new("/app/web/node_modules/pkg")));
        assert!(!rules.walks(Path::new("/elsewhere/new")));
    }

    #[test]
    fn a_single_star_stays_in_one_directory() {
        let rules = Rules::new(Path::new("/r"), &[(0, &globs(&["*.rb"], &[]))]).unwrap();
        assert_eq!(types(&rules, "/r/a.rb"), [0]);
        assert!(types(&rules, "/r/lib/a.rb").is_empty());
    }

    #[test]
    fn a_burst_ends_once_quiet_for_its_window_and_names_its_first_file() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut b = Bursts::default();
        assert_eq!(b.next_deadline(), None);
        // Saves 150 ms apart for a second: one burst, however long.
        for n in (0..=1000).step_by(150) {
            b.add(0, if n == 0 { "a.py" } else { "b.py" }, W, ms(n));
            assert!(b.take_over(ms(n)).is_empty(), "{n}");
        }
        assert_eq!(b.next_deadline(), Some(ms(900 + 200)));
        assert!(b.take_over(ms(1099)).is_empty());
        assert_eq!(
            b.take_over(ms(1100)),
            [Change {
                type_index: 0,
                path: "a.py".into()
            }]
        );
        assert_eq!(b.next_deadline(), None);
        // Each type has its own burst and window; a late look ends both.
        b.add(3, "x.css", Duration::from_secs(1), ms(2000));
        b.add(1, "y.py", W, ms(2100));
        assert_eq!(b.next_deadline(), Some(ms(2300)));
        assert_eq!(b.take_over(ms(2300)).len(), 1);
        b.add(3, "z.css", Duration::from_secs(1), ms(2500));
        assert_eq!(b.next_deadline(), Some(ms(3500)));
        let over = b.take_over(ms(9000));
        assert_eq!(
            over,
            [Change {
                type_index: 3,
                path: "x.css".into()
            }]
        );
    }

    #[test]
    fn an_attribute_change_counts_only_with_a_new_modification_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let s = Duration::from_secs;
        let mut f = MtimeFilter::new(t0);
        let p = Path::new("/app/a.py");
        assert!(!f.changed(p, Some(t0 - s(5))), "chmod of an old file");
        assert!(f.changed(p, Some(t0 + s(1))), "touch");
        assert!(!f.changed(p, Some(t0 + s(1))), "chmod after the touch");
        f.seen(p, Some(t0 + s(2)));
        assert!(!f.changed(p, Some(t0 + s(2))), "chmod after a write");
        assert!(!f.changed(p, None), "gone");
    }
}
