//! What a user sees before and around running pm: `--version`, the examples
//! every help ends with.

use crate::harness::*;

/// The subcommands `pm --help` lists (without `help`).
fn subcommands(app: &App) -> Vec<String> {
    let help = app.run(&["--help"]).assert_ok().to_string();
    let commands = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section");
    commands
        .lines()
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn version_names_the_commit() {
    let app = App::new();
    let out = app.run(&["--version"]);
    let line = out.assert_ok().trim_end().to_string();
    let rest = line
        .strip_prefix(&format!("pm {} (", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line:?}"));
    let commit = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line:?}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{line:?}"
    );
}

#[test]
fn every_help_ends_with_examples() {
    let app = App::new();
    let mut names = subcommands(&app);
    assert!(names.iter().any(|n| n == "start"), "{names:?}");
    names.insert(0, String::new());
    for name in names {
        let args: Vec<&str> = [name.as_str(), "--help"]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let help = app.run(&args).assert_ok().to_string();
        let examples = help
            .rsplit("\nExamples:\n")
            .next()
            .filter(|_| help.contains("\nExamples:\n"))
            .unwrap_or_else(|| panic!("pm {name} --help has no examples:\n{help}"));
        let lines: Vec<&str> = examples.lines().filter(|l| !l.is_empty()).collect();
        assert!(
            (2..=3).contains(&lines.len()) && lines.iter().all(|l| l.starts_with("  pm ")),
            "pm {name} --help: {lines:?}"
        );
    }
}

/// What bash's programmable completion offers for `line` (completing its
/// last word, or a new one when it ends in a space), with the script
/// `pm completions bash` prints loaded, run in `app`'s directory.
fn bash_completes(app: &App, line: &str) -> Vec<String> {
    let script = app.file("pm.bash", app.run(&["completions", "bash"]).assert_ok());
    let bin = std::path::Path::new(PM).parent().expect("pm's directory");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Exactly what bash sets before it calls a completion function.
    let driver = r#"
source "$1"
read -ra COMP_WORDS <<< "$2"
[[ "$2" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$2"
COMP_POINT=${#COMP_LINE}
COMP_TYPE=9
cur=${COMP_WORDS[COMP_CWORD]}
prev=${COMP_WORDS[COMP_CWORD-1]}
_clap_complete_pm pm "$cur" "$prev"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["--norc", "--noprofile", "-c", driver, "bash"])
        .arg(&script)
        .arg(line)
        .current_dir(app.path())
        .env("PATH", path)
        .env_remove("PM_SOCKET")
        .stdin(std::process::Stdio::null());
    let out = run_with_deadline(&mut cmd, SECS(30));
    assert!(out.status.success(), "{out:?}");
    let mut words: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    words.sort();
    words
}

#[test]
fn bash_completes_subcommands_and_flags() {
    let app = App::with_procfile("web: sleep 60\nworker: sleep 60\n");
    assert_eq!(bash_completes(&app, "pm st"), ["start", "stop"]);
    assert_eq!(bash_completes(&app, "pm start --no-t"), ["--no-timestamp"]);
    assert_eq!(bash_completes(&app, "pm completions f"), ["fish"]);
}

#[test]
fn bash_completes_the_procfiles_names() {
    let app = App::with_procfile("web: sleep 60\nworker: sleep 60\nclock: sleep 60\n");
    // No pm runs here: each type and its first instance.
    assert_eq!(
        bash_completes(&app, "pm restart w"),
        ["web", "web.1", "worker", "worker.1"]
    );
    assert_eq!(bash_completes(&app, "pm start c"), ["clock"]);
    assert_eq!(bash_completes(&app, "pm scale wo"), ["worker="]);
    assert_eq!(bash_completes(&app, "pm wait cl"), ["clock", "clock.1"]);
}

#[test]
fn bash_completes_the_running_instances() {
    let app = App::with_procfile("web: sleep 60\nworker: sleep 60\n");
    let mut pm = app.start(&["start", "web=3", "worker=0"]);
    let mut got = Vec::new();
    let seen = eventually(SECS(20), || {
        got = bash_completes(&app, "pm stop web");
        got.iter().any(|w| w == "web.3")
    });
    assert!(seen, "{got:?}");
    assert_eq!(got, ["web", "web.1", "web.2", "web.3"]);
    pm.stop_ok(SECS(20));
}

#[test]
fn man_pages_render_with_their_options() {
    let app = App::new();
    app.run(&["man", "man/pages"]).assert_ok();
    let dir = app.path().join("man/pages");
    for page in ["pm.1", "pm-start.1", "pm-restart.1", "pm-completions.1"] {
        assert!(dir.join(page).is_file(), "{page} missing");
    }
    assert!(!dir.join("pm-__guardian.1").exists());
    let mut groff = std::process::Command::new("groff");
    groff
        .args(["-man", "-Tutf8", "-P", "-c"])
        .arg(dir.join("pm-start.1"))
        .env("GROFF_NO_SGR", "1");
    let out = try_run_with_deadline(&mut groff, SECS(30))
        .expect("groff renders man pages (install groff)");
    assert!(out.status.success(), "{out:?}");
    // groff marks bold and underline with backspaces even with -c; drop them.
    let page = String::from_utf8_lossy(&out.stdout).to_string();
    let mut text = String::new();
    for c in page.chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    for part in [
        "pm-start",
        "--formation",
        "--max-restarts",
        "--detach",
        "--no-timestamp",
        "pm start web=2 worker=3",
    ] {
        assert!(text.contains(part), "no {part:?} in pm-start.1:\n{text}");
    }
}
