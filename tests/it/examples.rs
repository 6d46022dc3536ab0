//! The bundled examples as a user first meets them: `pm check` on each, and
//! `pm audit` on the shop. The shop running on its services is tests/it/shop.rs.

use std::fs;
use std::path::Path;

use crate::harness::*;

/// A copy of `examples/NAME` in a temp dir, so a test never writes into the
/// repository (sockets, bytecode, databases) and can add files of its own.
pub fn example(name: &str) -> App {
    let app = App::new();
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    copy_dir(&from, app.path());
    app
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" || name == ".pm.sock" || name == "out" || name == "var" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            // fs::copy keeps the permission bits: bin/store stays executable.
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn hello_checks() {
    let app = example("hello");
    let out = app.run(&["check"]);
    assert_eq!(
        out.assert_ok(),
        "valid procfile detected (web, worker)\n\
         Procfile: 2 process types\n\
         env files: .env (1 variable)\n\
         \x20 web     x2  ports 5000-5001  exec python3 -u -m http.server \"$PORT\" --bind 127.0.0.1\n\
         \x20 worker  x2  ports 5100-5101  i=0; while true; do i=$((i+1)); echo \"$GREETING from $PS: job $i done\"; sleep 2; done\n\
         addresses (PM_<TYPE>_HOST:PM_<TYPE>_PORT):\n\
         \x20 web     127.0.0.1:5000\n\
         \x20 worker  127.0.0.1:5100\n"
    );
}

#[test]
fn shop_checks_with_its_default_formation() {
    let app = example("shop");
    let out = app.run(&["check"]);
    assert_eq!(
        out.assert_ok(),
        "valid procfile detected (store, db, release, web, worker, clock)\n\
         Procfile: 6 process types\n\
         env files: .env (15 variables)\n\
         \x20 store    x1  port 5000        exec bin/store\n\
         \x20 db       x1  port 5100        exec bin/db\n\
         \x20 release  x1  port 5200        exec python3 -u app/release.py\n\
         \x20 web      x2  ports 5300-5301  exec python3 -u app/web.py\n\
         \x20 worker   x2  ports 5400-5401  exec python3 -u app/worker.py\n\
         \x20 clock    x1  port 5500        exec python3 -u app/clock.py\n\
         addresses (PM_<TYPE>_HOST:PM_<TYPE>_PORT):\n\
         \x20 store    127.0.0.1:5000\n\
         \x20 db       127.0.0.1:5100\n\
         \x20 release  127.0.0.1:5200\n\
         \x20 web      127.0.0.1:8080 (proxy)\n\
         \x20 worker   127.0.0.1:5400\n\
         \x20 clock    127.0.0.1:5500\n"
    );
    assert_eq!(out.stderr, "", "no warning: every reference is defined");
}

#[test]
fn shop_checks_with_the_readme_formation_and_production_env() {
    let app = example("shop");
    // The README's `pm start web=2 worker=3`, with production's env: the
    // services it depends on are part of what runs.
    let out = app.run(&["check", "-e", ".env.production", "web=2", "worker=3"]);
    let stdout = out.assert_ok();
    assert!(
        stdout.contains("env files: .env.production (15 variables)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  store    x1  port 5000 ")
            && stdout.contains("  db       x1  port 5100 ")
            && stdout.contains("  web      x2  ports 5300-5301 ")
            && stdout.contains("  worker   x3  ports 5400-5402 ")
            && stdout.contains("  clock    x0  not started "),
        "{stdout}"
    );
    assert_eq!(out.stderr, "");
}

/// The shop's env files' (name, value) lines, comments left out.
fn env_lines(app: &App, file: &str) -> Vec<(String, String)> {
    fs::read_to_string(app.path().join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap();
            (name.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

#[test]
fn shop_env_files_differ_in_values_only() {
    let app = example("shop");
    let dev = env_lines(&app, ".env");
    let prod = env_lines(&app, ".env.production");
    let names = |lines: &[(String, String)]| -> Vec<String> {
        let mut names: Vec<String> = lines.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&dev), names(&prod));
    for (name, value) in dev.iter().chain(&prod) {
        // Every service is reached where pm says it runs, never at an
        // address written by hand, and there is no in-process stand-in.
        if value.contains("://") {
            assert!(
                value.contains("@${PM_") && !value.contains("127.0.0.1"),
                "{name}={value}"
            );
        }
        assert!(!value.contains("memory://"), "{name}={value}");
    }
    // The URLs are the same lines on both sides: only the secrets and
    // sizes they are made of differ.
    for name in ["REDIS_URL", "CACHE_URL", "DATABASE_URL"] {
        let line =
            |lines: &[(String, String)]| lines.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(line(&dev), line(&prod), "{name}");
    }
}

/// pm's own exports of the shop read back in parity: systemd carries the
/// readiness checks through `pm probe` and the balancer, Kubernetes through
/// its probes and init containers; only web's liveness check has no place
/// in systemd or compose.
#[test]
fn shop_exports_are_in_parity_with_the_shop() {
    let app = example("shop");
    for (format, extra) in [
        ("systemd", vec![]),
        ("compose", vec!["--image", "shop:1"]),
        ("kubernetes", vec!["--image", "shop:1"]),
    ] {
        let mut args = vec!["export", format, "out", "--app", "shop"];
        args.extend(&extra);
        app.run(&args).assert_ok();
        let out = app.run(&["audit", "--against", "out"]);
        let expected = match format {
            "kubernetes" => "in parity: no drift found\n".to_string(),
            _ => format!(
                "\
health checks
  NAME           LOCAL  PRODUCTION   FILES
  web (warning)  tcp    not carried  pm.toml vs out/{}

in parity, with 1 warning (not drift; --strict makes them fail)
",
                if format == "systemd" {
                    "shop-web@.service"
                } else {
                    "compose.yaml"
                }
            ),
        };
        assert_eq!(out.assert_ok(), expected, "{format}");
        assert_eq!(out.stderr, "", "{format}");
        fs::remove_dir_all(app.path().join("out")).unwrap();
    }
}

#[test]
fn shop_is_in_parity_with_production() {
    let app = example("shop");
    let out = app.run(&["audit", "--against", ".env.production"]);
    assert_eq!(out.assert_ok(), "in parity: no drift found\n");
    assert_eq!(out.stderr, "");
    // The default production side is the same file.
    assert_eq!(
        app.run(&["audit"]).assert_ok(),
        "in parity: no drift found\n"
    );
}
