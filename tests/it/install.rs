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
