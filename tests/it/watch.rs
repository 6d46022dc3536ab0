//! `watch`: a save restarts the type, once per burst, naming the file;
//! what is always ignored never does; a directory made later is watched;
//! without `watch` nothing watches.

use std::time::{Duration, Instant};

use crate::harness::*;

/// The debounce window of these tests: far longer than a burst of writes
/// takes, even on a loaded machine, so a burst is provably one restart.
const WINDOW: Duration = Duration::from_secs(1);

fn watched() -> App {
    // `other` reads the watched files all along: reading is no change.
    let app = App::with_procfile(
        "web: echo \"run $$\"; exec sleep 100\nother: while :; do cat app/models/*.py templates/* >/dev/null 2>&1; sleep 0.02; done\n",
    );
    app.file(
        "pm.toml",
        &format!(
            "[process.web]\nwatch = [\"app/**/*.py\", \"templates/**\"]\nwatch_ignore = [\"**/*.tmp\"]\nwatch_debounce = {}\n",
            WINDOW.as_secs_f64()
        ),
    );
    app.file("app/models/user.py", "x = 1\n");
    app.file("templates/index.html", "<p></p>\n");
    app
}

/// Writes `files` `rounds` times over, as fast as it can, and checks that
/// the writes were a burst: all of them within half the window.
#[track_caller]
fn burst(app: &App, files: &[&str], rounds: usize) {
    let t = Instant::now();
    for i in 0..rounds {
        for f in files {
            app.file(f, &format!("{i}\n"));
        }
    }
    let took = t.elapsed();
    assert!(
        took < WINDOW / 2,
        "the writes took {took:?}: no burst within the {WINDOW:?} window"
    );
}

/// Waits a window and a half more than a restart needs, and says whether
/// a restart came meanwhile.
fn restart_within(pm: &mut Running, extra: Duration) -> Option<String> {
    pm.wait_for(
        |l| l.contains("changed, restarting"),
        WINDOW * 3 / 2 + extra,
    )
}

#[test]
fn a_burst_of_saves_is_one_restart_that_names_the_file() {
    let app = watched();
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("| run ", SECS(10));
    pm.wait_until_seen("other.1 started", SECS(10));
    // Five saves of two files at once: one burst, named by its first file.
    burst(&app, &["app/models/user.py", "templates/index.html"], 5);
    let line = pm.wait_for_line("changed, restarting", SECS(10));
    assert!(
        line.ends_with("app/models/user.py changed, restarting web"),
        "{line}"
    );
    pm.wait_for_line("web.1 started with pid", SECS(10));
    // Once quiet, no second restart comes for the same burst.
    assert_eq!(restart_within(&mut pm, SECS(1)), None, "{:?}", pm.seen);
    // A later save is a second restart.
    burst(&app, &["templates/index.html"], 1);
    let line = pm.wait_for_line("changed, restarting", SECS(10));
    assert!(
        line.ends_with("templates/index.html changed, restarting web"),
        "{line}"
    );
    pm.wait_for_line("web.1 started with pid", SECS(10));
    assert_eq!(restart_within(&mut pm, SECS(1)), None, "{:?}", pm.seen);
    assert_eq!(pm.lines_with("changed, restarting").len(), 2);
    assert!(pm.lines_with("other.1 killed").is_empty(), "{:?}", pm.seen);
    assert!(pm.lines_with("other.1 exited").is_empty(), "{:?}", pm.seen);
    pm.stop_ok(SECS(10));
}

#[test]
fn version_control_dependencies_caches_and_editor_files_never_restart() {
    let app = watched();
    // They exist before the start, so their directories are there too.
    for dir in ["app/.git", "app/node_modules/pkg", "app/target"] {
        app.file(&format!("{dir}/old.py"), "x\n");
    }
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("| run ", SECS(10));
    for path in [
        "app/.git/x.py",
        "app/node_modules/pkg/x.py",
        "app/target/x.py",
        "app/__pycache__/user.py",
        "app/models/.user.py.swp",
        "app/models/.user.py.swx",
        "app/models/user.py~",
        "app/models/.#user.py",
        "templates/4913",
        "templates/page.tmp",
        "app/models/notes.txt",
    ] {
        app.file(path, "x\n");
    }
    // A save that counts, after all of those: the first restart is its.
    app.file("app/sentinel.py", "x\n");
    let line = pm.wait_for_line("changed, restarting web", SECS(10));
    assert!(
        line.contains("app/sentinel.py changed"),
        "{line}\n{:?}",
        pm.seen
    );
    pm.wait_for_line("web.1 started with pid", SECS(10));
    // Nor do changes to them once nothing else changed.
    app.file("app/models/.user.py.swp", "y\n");
    app.file("app/node_modules/pkg/x.py", "y\n");
    assert_eq!(restart_within(&mut pm, SECS(0)), None, "{:?}", pm.seen);
    pm.stop_ok(SECS(10));
}

#[test]
fn a_directory_made_after_the_start_is_watched() {
    let app = watched();
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("| run ", SECS(10));
    // Made and written at once: the file is there before pm can watch the
    // directory, and still counts.
    app.file("app/fresh/deeper/view.py", "x\n");
    let line = pm.wait_for_line("changed, restarting web", SECS(10));
    assert!(
        line.ends_with("app/fresh/deeper/view.py changed, restarting web"),
        "{line}"
    );
    pm.wait_for_line("web.1 started with pid", SECS(10));
    // And the new directory is watched from then on.
    app.file("app/fresh/deeper/view.py", "y\n");
    let line = pm.wait_for_line("changed, restarting web", SECS(10));
    assert!(
        line.ends_with("app/fresh/deeper/view.py changed, restarting web"),
        "{line}"
    );
    // Removed and made again: watched again.
    std::fs::remove_dir_all(app.path().join("app/fresh")).unwrap();
    pm.wait_for_line("app/fresh/deeper/view.py changed, restarting web", SECS(10));
    pm.wait_for_line("web.1 started with pid", SECS(10));
    std::fs::create_dir_all(app.path().join("app/fresh")).unwrap();
    assert_eq!(restart_within(&mut pm, SECS(0)), None, "{:?}", pm.seen);
    app.file("app/fresh/again.py", "x\n");
    pm.wait_for_line("app/fresh/again.py changed, restarting web", SECS(10));
    pm.stop_ok(SECS(10));
}

#[test]
fn watching_follows_a_scale() {
    let app = watched();
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("| run ", SECS(10));
    app.run(&["scale", "web=2"]).assert_ok();
    pm.wait_until_seen("web.2 started with pid", SECS(10));
    app.file("app/models/user.py", "x = 2\n");
    pm.wait_for_line("app/models/user.py changed, restarting web", SECS(10));
    let mut started = Vec::new();
    for _ in 0..2 {
        let line = pm.wait_for_line(" started with pid", SECS(10));
        started.push(
            text_of(&line)
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string(),
        );
    }
    started.sort();
    assert_eq!(started, ["web.1", "web.2"], "{:?}", pm.seen);
    pm.stop_ok(SECS(10));
}

#[test]
fn globs_are_relative_to_the_procfiles_directory() {
    let app = App::new();
    app.file("svc/Procfile", "web: echo \"run $$\"; exec sleep 100\n");
    app.file("svc/pm.toml", "[process.web]\nwatch = [\"app/*.py\"]\n");
    app.file("svc/app/a.py", "x\n");
    app.file("app/a.py", "x\n");
    let mut pm = app.start(&["start", "--no-timestamp", "-f", "svc/Procfile"]);
    pm.wait_for_line("| run ", SECS(10));
    // Outside the root: the same relative path next to the caller is not it.
    app.file("app/a.py", "y\n");
    let early = pm.wait_for(|l| l.contains("changed, restarting"), SECS(1));
    assert_eq!(early, None, "{:?}", pm.seen);
    app.file("svc/app/a.py", "y\n");
    let line = pm.wait_for_line("changed, restarting web", SECS(10));
    assert!(
        line.ends_with("| app/a.py changed, restarting web"),
        "{line}"
    );
    pm.wait_for_line("web.1 started with pid", SECS(10));
    pm.stop_ok(SECS(10));
}

/// The threads of `pid` by name, and whether it holds an inotify instance.
fn watch_machinery(pid: i32) -> (Vec<String>, bool) {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let comm = task.unwrap().path().join("comm");
        threads.push(
            std::fs::read_to_string(comm)
                .unwrap_or_default()
                .trim()
                .to_string(),
        );
    }
    let inotify = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().contains("inotify"))
        });
    (threads, inotify)
}

#[test]
fn without_watch_nothing_watches() {
    let app = App::with_procfile("web: echo \"run $$\"; exec sleep 100\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("| run ", SECS(10));
    let (threads, inotify) = watch_machinery(pm.pid());
    assert!(!inotify, "an inotify instance without watch");
    assert!(
        !threads
            .iter()
            .any(|t| t.contains("watch") || t.contains("notify")),
        "{threads:?}"
    );
    pm.stop_ok(SECS(10));
    // The same app with a watch has both.
    let app = watched();
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("| run ", SECS(10));
    let (threads, inotify) = watch_machinery(pm.pid());
    assert!(inotify, "no inotify instance with watch");
    assert!(threads.iter().any(|t| t == "pm-watch"), "{threads:?}");
    pm.stop_ok(SECS(10));
}

#[test]
fn a_bad_glob_is_an_error_with_its_line() {
    let app = App::with_procfile("web: exec sleep 100\n");
    app.file(
        "pm.toml",
        "[process.web]\nwatch = [\n  \"app/**\",\n  \"app/{x\",\n]\n",
    );
    app.run(&["check"]).assert_error_starts(
        1,
        "pm: pm.toml:4: watch glob \"app/{x\" is not valid: unclosed alternate group",
    );
    // pm start refuses it the same way, before running anything.
    app.run(&["start"]).assert_error_starts(
        1,
        "pm: pm.toml:4: watch glob \"app/{x\" is not valid: unclosed alternate group",
    );
}
