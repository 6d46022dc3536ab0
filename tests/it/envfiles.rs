//! Env files as users write them for foreman and Compose, and the address
//! variables every process sees.

use crate::harness::*;

const WARN_TAIL: &str = "in its place (write \\$ or use single quotes for a literal $)";

#[test]
fn env_files_read_as_users_wrote_them() {
    let app = App::with_procfile("web: x\n");
    app.file(
        ".env",
        concat!(
            "SHOP_NAME=Corner Tea Shop\n",
            "J={\"a\": 1}\n",
            "DB_HOST=db.internal\n",
            "DATABASE_URL=pg://$DB_HOST/x\n",
            "PASS=abc$def\n",
            "TAIL=kept # a comment\n",
        ),
    );
    let out = app.run(&[
        "run",
        "printf '%s|' \"$SHOP_NAME\" \"$J\" \"$DATABASE_URL\" \"$PASS\" \"$TAIL\"",
    ]);
    assert_eq!(
        out.stdout,
        "Corner Tea Shop|{\"a\": 1}|pg://db.internal/x|abc|kept|"
    );
    assert_eq!(
        out.stderr,
        format!("pm: warning: .env:5: $def is not set; PASS gets \"\" {WARN_TAIL}\n")
    );
    assert_eq!(out.code(), Some(0));
}

#[test]
fn check_lists_unset_references_and_still_passes() {
    let app = App::with_procfile("web: x\n");
    app.file(".env", "A=1\n");
    app.file(".env.local", "B=${A}-${NOPE_PM_TEST}\n");
    let out = app.run(&["check", "-e", ".env,.env.local"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "pm: warning: .env.local:1: ${{NOPE_PM_TEST}} is not set; B gets \"\" {WARN_TAIL}\n"
        )
    );
}

#[test]
fn a_malformed_line_never_shows_its_value() {
    let app = App::with_procfile("web: x\n");
    app.file(".env", "A=1\nSTRIPE_SECRET_KEY: sk_live_51Habc\n");
    let out = app.run(&["check"]);
    out.assert_error(
        1,
        "pm: .env:2: invalid line \"STRIPE_SECRET_KEY:\"... (expected KEY=VALUE: write STRIPE_SECRET_KEY=...)\n",
    );
    app.file(".env", "sk_live_51Habc\n");
    let out = app.run(&["check"]);
    assert!(!out.stderr.contains("sk_live"), "{out:?}");
    assert_eq!(out.code(), Some(1));
}

#[test]
fn address_variables_name_every_type() {
    let app = App::with_procfile("store: x\nweb-api: y\nweb: z\n");
    app.file("pm.toml", "[process.web]\nproxy = 8080\n");
    app.file(
        ".env",
        "REDIS_URL=redis://${PM_STORE_HOST}:${PM_STORE_PORT}/0\nPM_STORE_PORT=1\n",
    );
    let out = app.run(&[
        "run",
        "printf '%s|' \"$REDIS_URL\" \"$PM_STORE_PORT\" \"$PM_WEB_API_HOST:$PM_WEB_API_PORT\" \"$PM_WEB_PORT\" \"$PM_LISTEN_HOST\"",
    ]);
    // The address wins over PM_STORE_PORT from the env file; a proxied
    // type is reached at its proxy.
    assert_eq!(
        out.stdout,
        "redis://127.0.0.1:5000/0|5000|127.0.0.1:5100|8080|127.0.0.1|"
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn instances_see_the_address_variables() {
    let app = App::with_procfile(
        "store: echo \"store at $PM_STORE_HOST:$PM_STORE_PORT\"; sleep 0.1\nweb: echo \"$URL binds $PM_LISTEN_HOST:$PORT\"\n",
    );
    app.file(".env", "URL=redis://${PM_STORE_HOST}:${PM_STORE_PORT}\n");
    let mut pm = app.start(&["start", "-p", "7000"]);
    pm.wait_until_seen("store at 127.0.0.1:7000", SECS(10));
    pm.wait_until_seen("redis://127.0.0.1:7000 binds 127.0.0.1:7100", SECS(10));
    pm.signal(nix::sys::signal::Signal::SIGTERM);
    pm.wait_for_exit(SECS(10));
}

#[test]
fn address_variables_that_collide_or_decide_the_port_are_errors() {
    let app = App::with_procfile("web_1: a\nweb-1: b\n");
    app.run(&["check"]).assert_error(
        1,
        "pm: Procfile: process types \"web_1\" and \"web-1\" both give the address variables PM_WEB_1_HOST and PM_WEB_1_PORT (rename one)\n",
    );
    let app = App::with_procfile("web: a\n");
    app.file(".env", "PORT=${PM_WEB_PORT}\n");
    app.run(&["check"]).assert_error(
        1,
        "pm: PORT in the env files uses an address variable (${PM_...}); the base port must be a number\n",
    );
}
