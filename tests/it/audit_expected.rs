//! `pm audit`: the expected differences of pm.toml's `[audit] ignore`, the
//! addresses of other types written by hand, and readiness checks read back
//! from pm's own systemd export. The real binary on real files.

use crate::audit::{json, summary, triples};
use crate::harness::*;

const PASSWORD: &str = "hunter2-very-secret";

fn audit(app: &App, args: &[&str]) -> Finished {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    app.run(&all)
}

// ------------------------------------------------------------ [audit] ignore

/// A dev-only type in Procfile.dev, a variable on each side only, and a
/// database of another kind: drift until pm.toml lists them.
fn app_with_expected_differences() -> App {
    let app = App::with_procfile("web: puma\n");
    app.file("Procfile.dev", "web: puma\ncss: tailwind --watch\n");
    app.file(".env", "DATABASE_URL=sqlite:///db/dev.sqlite3\nDEBUG=1\n");
    app.file(
        ".env.production",
        &format!(
            "DATABASE_URL=postgres://app:{PASSWORD}@db/app\nSENTRY_DSN=https://k@sentry.io/1\n"
        ),
    );
    app
}

#[test]
fn ignored_findings_are_shown_and_never_drift() {
    let app = app_with_expected_differences();
    // Without the list: four findings of drift.
    let out = audit(&app, &[]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stdout.ends_with("\ndrift: 4 findings\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("ignored"), "{}", out.stdout);

    // The same findings listed: shown as ignored, and in parity.
    app.file(
        "pm.toml",
        "[audit]\nignore = [\"css\", \"SENTRY_DSN\", \"DEBUG\", \"DATABASE_URL\"]\n",
    );
    let out = audit(&app, &[]);
    assert_eq!(
        out.assert_ok(),
        "\
variables present on one side only
  NAME                    LOCAL               PRODUCTION                FILES
  DEBUG (ignored)         1                   (absent)                  .env vs .env.production
  SENTRY_DSN (ignored)    (absent)            https://sentry.io         .env vs .env.production

backing services of a different kind
  NAME                    LOCAL               PRODUCTION                FILES
  DATABASE_URL (ignored)  sqlite:// [sqlite]  postgres://db [postgres]  .env vs .env.production

process types
  NAME                    LOCAL               PRODUCTION                FILES
  css (ignored)           tailwind --watch    (absent)                  Procfile.dev vs Procfile

in parity, with 4 ignored (listed in pm.toml's [audit] ignore)
"
    );
    assert_eq!(out.stderr, "");
    assert!(!out.stdout.contains(PASSWORD));
    // --strict fails on warnings, never on what the list expects.
    let out = audit(&app, &["--strict", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stdout);
    assert_eq!(json(&out)["drift"], false);
    assert_eq!(
        summary(&json(&out)),
        triples(&[
            ("variable", "ignored", "DEBUG"),
            ("variable", "ignored", "SENTRY_DSN"),
            ("service", "ignored", "DATABASE_URL"),
            ("process", "ignored", "css"),
        ])
    );

    // What the list leaves out is drift still.
    app.file(
        "pm.toml",
        "[audit]\nignore = [\"css\", \"SENTRY_DSN\", \"DEBUG\"]\n",
    );
    let out = audit(&app, &["--json"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(json(&out)["drift"], true);
    assert_eq!(
        summary(&json(&out)),
        triples(&[
            ("variable", "ignored", "DEBUG"),
            ("variable", "ignored", "SENTRY_DSN"),
            ("service", "drift", "DATABASE_URL"),
            ("process", "ignored", "css"),
        ])
    );
    let out = audit(&app, &[]);
    assert!(
        out.stdout.ends_with("\ndrift: 1 finding, 3 ignored\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_ignored_name_found_nowhere_is_a_warning() {
    let app = app_with_expected_differences();
    app.file(
        "pm.toml",
        "[process.web]\npty = false\n\n[audit]\nignore = [\n  \"css\",\n  \"webpak\",\n  \"SENTRY_DSN\",\n  \"DEBUG\",\n  \"DATABASE_URL\",\n]\n",
    );
    let out = audit(&app, &[]);
    assert_eq!(out.code(), Some(0), "{}", out.stdout);
    assert_eq!(
        out.stderr,
        "pm: warning: pm.toml:7: [audit] ignore lists \"webpak\", which is no process type or variable on either side\n"
    );
    // A name of the development Procfile only is known: no warning for css.
    assert!(!out.stderr.contains("css"));
}

#[test]
fn a_bad_audit_key_is_a_located_error() {
    let app = app_with_expected_differences();
    app.file("pm.toml", "[audit]\nignores = [\"css\"]\n");
    audit(&app, &[]).assert_error(
        1,
        "pm: pm.toml:2: unknown field `ignores`, expected `ignore`\n",
    );
    app.file("pm.toml", "[audit]\nignore = [\"web\", \"a b\"]\n");
    audit(&app, &[]).assert_error(
        1,
        "pm: pm.toml:2: [audit] ignore: \"a b\" is neither a process type nor a variable name\n",
    );
    // pm check validates the same key.
    app.file("pm.toml", "[audit]\nignore = \"css\"\n");
    let out = app.run(&["check"]);
    out.assert_error_starts(1, "pm: pm.toml:2: ");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

// ------------------------------------------------------------ addresses by hand

fn app_with_addresses_by_hand() -> App {
    let app = App::with_procfile("store: redis-server --port $PORT\nweb: serve\n");
    app.file(
        ".env",
        &format!(
            "# development\n\
             REDIS_URL=redis://:{PASSWORD}@127.0.0.1:5000/0\n\
             ASSETS=http://localhost:5100/packs\n\
             V6=http://[::1]:5000/\n\
             CACHE_URL=redis://${{PM_STORE_HOST}}:${{PM_STORE_PORT}}/1\n\
             OTHER=http://127.0.0.1:9999/\n"
        ),
    );
    app.file(
        ".env.production",
        "REDIS_URL=redis://:prod-pass@${PM_STORE_HOST}:${PM_STORE_PORT}/0\n\
         ASSETS=https://cdn.example.com/packs\n\
         V6=http://${PM_STORE_HOST}:${PM_STORE_PORT}/\n\
         CACHE_URL=redis://${PM_STORE_HOST}:${PM_STORE_PORT}/1\n\
         OTHER=http://x/\n",
    );
    app
}

#[test]
fn an_address_of_another_type_written_by_hand_is_a_warning() {
    let app = app_with_addresses_by_hand();
    let out = audit(&app, &[]);
    assert_eq!(
        out.assert_ok(),
        "\
addresses written by hand
  NAME                 REACHES  USE                                FILES
  REDIS_URL (warning)  store    ${PM_STORE_HOST}:${PM_STORE_PORT}  .env:2
  ASSETS (warning)     web      ${PM_WEB_HOST}:${PM_WEB_PORT}      .env:3
  V6 (warning)         store    ${PM_STORE_HOST}:${PM_STORE_PORT}  .env:4

in parity, with 3 warnings (not drift; --strict makes them fail)
"
    );
    assert_eq!(out.stderr, "");
    let out = audit(&app, &["--json"]);
    assert_eq!(out.code(), Some(0));
    let report = json(&out);
    assert_eq!(
        report["findings"][0],
        serde_json::json!({
            "rule": "address",
            "severity": "warning",
            "name": "REDIS_URL",
            "local": {"reaches": "store", "use": "${PM_STORE_HOST}:${PM_STORE_PORT}"},
            "production": null,
            "files": [".env:2"],
            "message": "REDIS_URL reaches process type \"store\" at a loopback address written by hand, which no container export can rewrite; use ${PM_STORE_HOST}:${PM_STORE_PORT} instead",
        })
    );
    // Neither the value nor any part of it is printed: not the password,
    // not the host and port, not the path.
    for args in [&[][..], &["--json"], &["--strict"]] {
        let out = audit(&app, args);
        for part in [
            PASSWORD,
            "127.0.0.1",
            "localhost",
            "5000/0",
            "/packs",
            "[::1]",
        ] {
            assert!(
                !out.stdout.contains(part) && !out.stderr.contains(part),
                "{part} leaked:\n{}\n{}",
                out.stdout,
                out.stderr
            );
        }
    }
    let out = audit(&app, &["--strict"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stdout
            .ends_with("\ndrift: 3 warnings (warnings count as drift: --strict)\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_address_by_hand_to_an_ignored_type_or_variable_is_ignored() {
    let app = app_with_addresses_by_hand();
    app.file("pm.toml", "[audit]\nignore = [\"web\", \"V6\"]\n");
    let out = audit(&app, &["--strict"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stdout,
        "\
addresses written by hand
  NAME                 REACHES  USE                                FILES
  REDIS_URL (warning)  store    ${PM_STORE_HOST}:${PM_STORE_PORT}  .env:2
  ASSETS (ignored)     web      ${PM_WEB_HOST}:${PM_WEB_PORT}      .env:3
  V6 (ignored)         store    ${PM_STORE_HOST}:${PM_STORE_PORT}  .env:4

drift: 1 warning, 2 ignored (warnings count as drift: --strict)
"
    );
    let out = audit(&app, &[]);
    assert!(
        out.assert_ok().ends_with(
            "\nin parity, with 1 warning, 2 ignored (not drift; --strict makes the warnings fail)\n"
        ),
        "{}",
        out.stdout
    );
}

/// The line is the last definition's, in the last file that defines it.
#[test]
fn an_address_by_hand_names_its_last_definition() {
    let app = app_with_addresses_by_hand();
    app.file(
        ".env.local",
        "A=1\nREDIS_URL=redis://127.0.0.1:6000/0\nM=\"two\nREDIS_URL=lines\"\nREDIS_URL=redis://127.0.0.1:5000/2\n",
    );
    let out = audit(&app, &["-e", ".env,.env.local", "--json"]);
    let report = json(&out);
    let by_hand: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "address" && f["name"] == "REDIS_URL")
        .collect();
    assert_eq!(by_hand.len(), 1, "{}", out.stdout);
    assert_eq!(by_hand[0]["files"], serde_json::json!([".env.local:5"]));
}

// ------------------------------------------------------------ pm's own exports

/// Types that wait for others, a proxied one, and a `log` readiness check,
/// which no engine can carry.
fn waiting_app() -> App {
    let app = App::with_procfile("store: redis\ndb: postgres\nweb: serve\nworker: work\n");
    app.file(
        "pm.toml",
        "[process.store.ready]\ntcp = true\n\
         [process.db.ready]\nlog = \"ready to accept connections\"\n\
         [process.web]\ndepends_on = [\"store\", \"db\"]\nproxy = 8080\n\
         [process.web.ready]\nhttp = \"/healthz\"\n\
         [process.worker]\ndepends_on = [\"web\"]\n",
    );
    app.file(".env", "A=1\n");
    app
}

#[test]
fn systemd_readiness_is_read_from_the_units_that_wait() {
    let app = waiting_app();
    let out = app.run(&["export", "systemd", "sd", "--app", "a"]);
    out.assert_ok();
    let out = audit(&app, &["--against", "sd"]);
    // store and web are probed before the units that wait for them (and
    // web by its balancer); db's log check is not carried by any engine.
    assert_eq!(
        out.assert_ok(),
        "\
health checks
  NAME          LOCAL                            PRODUCTION   FILES
  db (warning)  log ready to accept connections  not carried  pm.toml vs sd/a-db@.service

in parity, with 1 warning (not drift; --strict makes them fail)
"
    );
    for format in ["compose", "kubernetes"] {
        let out = app.run(&["export", format, format, "--app", "a", "--image", "i:1"]);
        out.assert_ok();
        let out = audit(&app, &["--against", format]);
        assert!(
            out.assert_ok()
                .ends_with("\nin parity, with 1 warning (not drift; --strict makes them fail)\n"),
            "{format}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains("db (warning)"),
            "{format}: {}",
            out.stdout
        );
    }

    // A unit that waits for store without probing it: store's check is
    // missing from the export, which is drift.
    for unit in ["sd/a-web@.service", "sd/a-worker@.service"] {
        let path = app.path().join(unit);
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("ExecStartPre="))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, kept).unwrap();
    }
    let out = audit(&app, &["--against", "sd", "--json"]);
    assert_eq!(out.code(), Some(1), "{}", out.stdout);
    assert_eq!(
        summary(&json(&out)),
        triples(&[("health", "drift", "store"), ("health", "warning", "db")])
    );
}
