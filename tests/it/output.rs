//! What pm prints: prefixes, every line intact and in order, partial lines,
//! long lines, ports and per-instance variables.

use std::collections::HashMap;

use crate::harness::*;

/// `HH:MM:SS name | text` with the name padded.
fn is_prefixed(line: &str, name: &str, width: usize) -> bool {
    let b = line.as_bytes();
    b.len() >= 9
        && b[2] == b':'
        && b[5] == b':'
        && b[8] == b' '
        && line[9..].starts_with(&format!("{name:<width$} | "))
}

#[test]
fn prefix_format_padding_and_no_color_on_pipes() {
    let app = App::with_procfile("web: echo hello\n");
    let mut pm = app.start(&["start"]);
    let line = pm.wait_for_line("hello", SECS(10));
    assert!(is_prefixed(&line, "web.1", 6), "{line:?}");
    assert!(line.ends_with("| hello"), "{line:?}");
    assert!(!line.contains('\x1b'), "colored on a pipe: {line:?}");
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0));
    let system = pm.lines_with("system |");
    assert!(!system.is_empty());
    assert!(
        system.iter().all(|l| is_prefixed(l, "system", 6)),
        "{system:?}"
    );
}

#[test]
fn no_timestamp_and_color_always() {
    let app = App::with_procfile("web: echo hello\n");
    let mut pm = app.start(&["start", "--no-timestamp", "--color", "always"]);
    let line = pm.wait_for_line("hello", SECS(10));
    assert!(line.starts_with('\x1b'), "{line:?}");
    assert!(line.contains("web.1  |\x1b[0m hello"), "{line:?}");
    pm.wait_for_exit(SECS(10));

    let mut pm = app.start(&["start", "--no-timestamp", "--color", "always", "--no-color"]);
    let line = pm.wait_for_line("hello", SECS(10));
    assert_eq!(line, "web.1  | hello");
    pm.wait_for_exit(SECS(10));
}

#[test]
fn no_color_env_beats_terminal_test_but_not_flag() {
    let app = App::with_procfile("web: echo hello\n");
    let mut cmd = app.cmd(&["start", "--no-timestamp"]);
    cmd.env("NO_COLOR", "1");
    let mut pm = Running::spawn(cmd);
    assert_eq!(pm.wait_for_line("hello", SECS(10)), "web.1  | hello");
    pm.wait_for_exit(SECS(10));

    let mut cmd = app.cmd(&["start", "--no-timestamp", "--color", "always"]);
    cmd.env("NO_COLOR", "1");
    let mut pm = Running::spawn(cmd);
    assert!(pm.wait_for_line("hello", SECS(10)).starts_with('\x1b'));
    pm.wait_for_exit(SECS(10));
}

#[test]
fn eight_instances_every_line_intact_and_in_order() {
    const N: usize = 100_000;
    let app = App::with_procfile(&format!("count: seq 1 {N}\n"));
    let mut pm = app.start(&["start", "--no-timestamp", "count=8"]);
    assert_eq!(
        pm.wait_for_exit(SECS(120)).code(),
        Some(0),
        "{}",
        pm.stderr()
    );
    let mut next: HashMap<String, usize> = HashMap::new();
    for line in &pm.seen {
        let (name, text) = line.split_once(" | ").expect("prefixed line");
        let name = name.trim_end().to_string();
        if name == "system" {
            continue;
        }
        let n: usize = text
            .parse()
            .unwrap_or_else(|_| panic!("corrupt line {line:?}"));
        let expected = next.entry(name.clone()).or_insert(1);
        assert_eq!(n, *expected, "{name}: out of order or lost");
        *expected += 1;
    }
    assert_eq!(next.len(), 8, "instances seen: {:?}", next.keys());
    for (name, after_last) in next {
        assert_eq!(after_last, N + 1, "{name} lost lines");
    }
}

#[test]
fn last_line_without_newline_is_printed() {
    let app = App::with_procfile("web: printf 'first\\nno newline at the end'\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_exit(SECS(10));
    assert!(
        pm.seen.iter().any(|l| l == "web.1  | first"),
        "{:?}",
        pm.seen
    );
    assert!(
        pm.seen
            .iter()
            .any(|l| l == "web.1  | no newline at the end"),
        "{:?}",
        pm.seen
    );
    let exit = pm.index_of("web.1 exited");
    let last = pm.index_where("ending the unterminated line", |l| {
        l.ends_with("no newline at the end")
    });
    assert!(
        last < exit,
        "the exit was reported before the output: {:?}",
        pm.seen
    );
}

#[test]
fn partial_line_is_printed_while_the_process_waits() {
    let app = App::with_procfile("web: printf 'Password: '; exec sleep 30\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("web.1  | Password: ", SECS(5));
    pm.signal(nix::sys::signal::Signal::SIGTERM);
    pm.wait_for_exit(SECS(10));
}

#[test]
fn a_200_kib_line_arrives_whole() {
    let app = App::with_procfile("web: head -c 204800 /dev/zero | tr '\\0' x; echo; echo after\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_exit(SECS(20));
    let text: String = pm
        .seen
        .iter()
        .filter(|l| l.starts_with("web.1  | x"))
        .map(|l| text_of(l))
        .collect();
    assert_eq!(text.len(), 204_800);
    assert!(text.bytes().all(|b| b == b'x'));
    assert!(pm.seen.iter().any(|l| l == "web.1  | after"));
}

#[test]
fn bytes_that_are_not_utf8_pass_through() {
    let app = App::with_procfile("web: printf 'caf\\351 ok\\n'\n");
    let out = app.run(&["start", "--no-timestamp"]);
    assert!(
        out.stdout.contains("web.1  | caf\u{fffd} ok"),
        "{}",
        out.stdout
    );
    let mut cmd = app.cmd(&["start", "--no-timestamp"]);
    let raw = run_with_deadline(&mut cmd, SECS(30));
    let needle = b"web.1  | caf\xe9 ok\n";
    assert!(raw.stdout.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn stdout_and_stderr_both_arrive() {
    let app = App::with_procfile("web: echo out; echo err >&2\n");
    let out = app.run(&["start", "--no-timestamp"]);
    assert!(out.stdout.contains("web.1  | out\n"), "{}", out.stdout);
    assert!(out.stdout.contains("web.1  | err\n"), "{}", out.stdout);
}

#[test]
fn ports_and_instance_variables() {
    let app = App::with_procfile(
        "web: echo \"port=$PORT ps=$PS dyno=$DYNO\"\nworker: echo \"port=$PORT ps=$PS dyno=$DYNO\"\nclock: echo \"port=$PORT\"\n",
    );
    let out = app.run(&["start", "--no-timestamp", "web=2", "worker=3", "clock=0"]);
    out.assert_ok();
    for (name, port) in [
        ("web.1", 5000),
        ("web.2", 5001),
        ("worker.1", 5100),
        ("worker.2", 5101),
        ("worker.3", 5102),
    ] {
        let want = format!("{name:<8} | port={port} ps={name} dyno={name}\n");
        assert!(
            out.stdout.contains(&want),
            "missing {want:?} in\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("clock"), "{}", out.stdout);
}

#[test]
fn base_port_order_flag_then_env_file_then_environment() {
    let app = App::with_procfile("web: echo \"port=$PORT\"\n");
    let mut cmd = app.cmd(&["start", "--no-timestamp"]);
    cmd.env("PORT", "7000");
    assert!(
        String::from_utf8_lossy(&run_with_deadline(&mut cmd, SECS(30)).stdout)
            .contains("port=7000")
    );

    app.file(".env", "PORT=6000\n");
    let mut cmd = app.cmd(&["start", "--no-timestamp"]);
    cmd.env("PORT", "7000");
    assert!(
        String::from_utf8_lossy(&run_with_deadline(&mut cmd, SECS(30)).stdout)
            .contains("port=6000")
    );

    let mut cmd = app.cmd(&["start", "--no-timestamp", "-p", "9000"]);
    cmd.env("PORT", "7000");
    assert!(
        String::from_utf8_lossy(&run_with_deadline(&mut cmd, SECS(30)).stdout)
            .contains("port=9000")
    );

    let out = app.run(&[
        "start",
        "--no-timestamp",
        "--port-step",
        "10",
        "-p",
        "3000",
        "web=2",
    ]);
    assert!(out.stdout.contains("port=3001"), "{}", out.stdout);
}

#[test]
fn env_files_precedence() {
    let app = App::with_procfile("web: echo \"a=$A b=$B c=$C home=$FROM_PM\"\n");
    app.file("one.env", "A=one\nB=one\n");
    app.file("two.env", "B=two\nC=two\nFROM_PM=file\n");
    let mut cmd = app.cmd(&["start", "--no-timestamp", "-e", "one.env,two.env"]);
    cmd.env("FROM_PM", "inherited").env("A", "inherited");
    let out = run_with_deadline(&mut cmd, SECS(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("web.1  | a=one b=two c=two home=file"),
        "{stdout}"
    );
}

#[test]
fn formation_with_all_and_m() {
    let app = App::with_procfile("a: echo $PS\nb: echo $PS\nc: echo $PS\n");
    let out = app.run(&["start", "--no-timestamp", "-m", "all=2,b=1"]);
    out.assert_ok();
    for name in ["a.1", "a.2", "b.1", "c.1", "c.2"] {
        assert!(
            out.stdout.contains(&format!("| {name}\n")),
            "{name}: {}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("b.2"));
}

#[test]
fn concurrency_is_an_alias_of_formation() {
    let app = App::with_procfile("a: echo $PS\nb: echo $PS\n");
    let out = app.run(&["start", "--no-timestamp", "-c", "a=2"]);
    assert!(out.stdout.contains("| a.2\n"), "{}", out.stdout);
    assert!(!out.stdout.contains("b.1"), "{}", out.stdout);
    let out = app.run(&["start", "--no-timestamp", "--concurrency", "b=1"]);
    assert!(out.stdout.contains("| b.1\n"), "{}", out.stdout);
}

#[test]
fn commands_run_in_the_root_directory() {
    let app = App::with_procfile("web: pwd\n");
    std::fs::create_dir(app.path().join("sub")).expect("mkdir");
    let mut cmd = app.cmd(&["start", "--no-timestamp", "-f", "../Procfile"]);
    cmd.current_dir(app.path().join("sub"));
    let out = run_with_deadline(&mut cmd, SECS(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let root = app.path().canonicalize().expect("canonical");
    assert!(
        stdout.contains(&format!("web.1  | {}\n", root.display())),
        "{stdout}"
    );
}

#[test]
fn expansion_sees_earlier_lines_then_earlier_files_then_the_environment() {
    let app = App::with_procfile("web: echo \"url=$URL own=$OWN env=$FROM_ENV\"\n");
    app.file("base.env", "HOST=db.local\nOWN=base\n");
    app.file(
        "app.env",
        "OWN=mine\nURL=postgres://${HOST}:5432/${OWN}\nFROM_ENV=${SHELL_ONLY}\n",
    );
    let mut cmd = app.cmd(&["start", "--no-timestamp", "-e", "base.env", "-e", "app.env"]);
    cmd.env("OWN", "from-shell").env("SHELL_ONLY", "shell");
    let out = run_with_deadline(&mut cmd, SECS(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("web.1  | url=postgres://db.local:5432/mine own=mine env=shell"),
        "{stdout}"
    );
}

/// On Linux a child that fills its output pipe (it writes faster than pm
/// reads) gets a pipe of 256 KiB, so it runs ahead of pm: two such pipes
/// at most (within a quarter of the user's pipe allowance). A child that
/// never fills its pipe, and the third to fill one, keep the kernel's size.
#[cfg(target_os = "linux")]
#[test]
fn the_first_two_children_to_fill_their_pipes_get_wide_ones() {
    let pages: usize = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
        .expect("pipe allowance")
        .trim()
        .parse()
        .expect("a number of pages");
    let allowed = if pages == 0 {
        usize::MAX
    } else {
        pages * 4096 / 4 / (256 * 1024)
    };
    let size =
        "import fcntl, sys; print(sys.argv[1], fcntl.fcntl(1, 1032), flush=True); sys.stdin.read()";
    let app = App::with_procfile(&format!(
        "quiet: exec python3 -c '{size}' quiet\n\
         busy: exec python3 -c 'import sys; sys.stdout.write((\"x\" * 99 + \"\\n\") * 3000); {size}' busy\n"
    ));
    let mut pm = app.start(&["start", "--no-timestamp", "quiet=2,busy=3"]);
    let mut sizes: HashMap<&str, Vec<usize>> = HashMap::new();
    for _ in 0..5 {
        let line = pm.wait_for(
            |l| l.contains("| quiet ") || l.contains("| busy "),
            SECS(60),
        );
        let line = line.unwrap_or_else(|| panic!("5 sizes not printed: {sizes:?}"));
        let (_, said) = line.split_once(" | ").expect("a prefixed line");
        let (kind, size) = said.split_once(' ').expect("a kind and a size");
        let kind = if kind == "quiet" { "quiet" } else { "busy" };
        sizes
            .entry(kind)
            .or_default()
            .push(size.parse().expect("a number"));
    }
    let mut busy = sizes.remove("busy").unwrap_or_default();
    busy.sort_unstable();
    let wide = allowed.min(2);
    let expected: Vec<usize> = (0..3)
        .map(|i| if i < 3 - wide { 64 * 1024 } else { 256 * 1024 })
        .collect();
    assert_eq!(busy, expected);
    assert_eq!(sizes.remove("quiet"), Some(vec![64 * 1024, 64 * 1024]));
    assert_eq!(
        pm.seen
            .iter()
            .filter(|l| l.ends_with(&"x".repeat(99)))
            .count(),
        3 * 3000,
        "lost lines"
    );
    pm.stop_ok(SECS(20));
}
