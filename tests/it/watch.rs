//! `watch`: a save restarts the type, once per burst, naming the file;
//! what is always ignored never does.

use crate::harness::*;

fn watched() -> App {
    // `other` reads the watched files all along: reading is no change.
    let app = App::with_procfile(
        "web: echo \"run $$\"; exec sleep 100\nother: while :; do cat app/models/*.py templates/* >/dev/null 2>&1; sleep 0.02; done\n",
    );
    app.file(
        "pm.toml",
        "[process.web]\nwatch = [\"app/**/*.py\", \"templates/**\"]\nwatch_ignore = [\"**/*.tmp\"]\n",
    );
    app.file("app/models/user.py", "x = 1\n");
    app
}

#[test]
fn a_burst_of_saves_is_one_restart_that_names_the_file() {
    let app = watched();
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("| run ", SECS(10));
    pm.wait_until_seen("other.1 started", SECS(10));
    // Five saves of two files at once.
    for i in 0..5 {
        app.file("app/models/user.py", &format!("x = {i}\n"));
        app.file("templates/index.html", &format!("<p>{i}</p>\n"));
    }
    pm.wait_for_line("app/models/user.py changed, restarting web", SECS(10));
    pm.wait_for_line("web.1 started with pid", SECS(10));
    // Only web restarts; a later save is a second restart, and nothing in
    // between restarted it again.
    app.file("templates/index.html", "<p>again</p>\n");
    pm.wait_for_line("templates/index.html changed, restarting web", SECS(10));
    pm.wait_for_line("web.1 started with pid", SECS(10));
    assert_eq!(
        pm.lines_with("changed, restarting").len(),
        2,
        "{:?}",
        pm.seen
    );
    assert!(pm.lines_with("other.1 killed").is_empty(), "{:?}", pm.seen);
    pm.stop_ok(SECS(10));
}

#[test]
fn version_control_dependencies_caches_and_editor_files_never_restart() {
    let app = watched();
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("| run ", SECS(10));
    for path in [
        "app/.git/x.py",
        "app/node_modules/pkg/x.py",
        "app/target/x.py",
        "app/__pycache__/user.py",
        "app/models/.user.py.swp",
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
}
