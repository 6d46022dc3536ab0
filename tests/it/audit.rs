//! `pm audit`: the real binary on env-file pairs, Procfile.dev, and export
//! directories written by hand after the layout `pm export` writes.

use crate::harness::*;

const PASSWORD: &str = "hunter2-very-secret";

fn audit(app: &App, args: &[&str]) -> Finished {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    app.run(&all)
}

/// No secret from either side reaches stdout or stderr.
#[track_caller]
fn assert_no_secret(out: &Finished) {
    for secret in [PASSWORD, "devpass", "s3cr3t-base", "tok-123"] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{secret} leaked:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
}

pub(crate) fn json(out: &Finished) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// (rule, severity, name) of every finding in a JSON report.
pub(crate) fn summary(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub(crate) fn triples(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

// ------------------------------------------------------------ env files

#[test]
fn tricky_env_pairs_in_parity() {
    let app = App::with_procfile("web: puma\n");
    app.file(
        ".env",
        "DATABASE_URL=postgres://dev:devpass@localhost/app_dev\n\
         REDIS_URL=redis://localhost:6379/0\n\
         MQ=amqp://localhost\n\
         DB_IMAGE=postgres:16\n\
         PIN=redis:7\n\
         REDIS_HOST=redis:6379\n\
         DB_HOST=localhost\n\
         PORT=3000\n\
         RAILS_ENV=development\n",
    );
    app.file(
        ".env.production",
        &format!(
            "DATABASE_URL=postgresql://app:{PASSWORD}@db.internal:6432/app?sslmode=require\n\
             REDIS_URL=rediss://:{PASSWORD}@cache.internal:6380/1\n\
             MQ=amqps://mq.internal/vhost\n\
             DB_IMAGE=docker.io/library/postgres:16\n\
             PIN=redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef\n\
             REDIS_HOST=redis:6380\n\
             DB_HOST=pg.internal\n\
             PORT=80\n\
             RAILS_ENV=production\n"
        ),
    );
    let out = audit(&app, &["--against", ".env.production"]);
    assert_eq!(out.assert_ok(), "in parity: no drift found\n");
    assert_eq!(out.stderr, "");

    let out = audit(&app, &["--against", ".env.production", "--json"]);
    assert_eq!(out.code(), Some(0));
    assert_eq!(
        json(&out),
        serde_json::json!({"drift": false, "findings": []})
    );
}

fn drifting_app() -> App {
    let app = App::with_procfile("web: puma\n");
    app.file(
        ".env",
        "DATABASE_URL=sqlite:///db/development.sqlite3\n\
         CACHE_STORE=memory\n\
         STORAGE=local\n\
         DB_IMAGE=postgres:16\n\
         DEBUG=1\n\
         SECRET_KEY_BASE=s3cr3t-base\n",
    );
    app.file(
        ".env.production",
        &format!(
            "DATABASE_URL=postgres://app:{PASSWORD}@db.internal:5432/app\n\
             CACHE_STORE=redis://:{PASSWORD}@cache.internal:6379/0\n\
             STORAGE=s3://uploads-bucket/prefix\n\
             DB_IMAGE=postgres:13\n\
             SECRET_KEY_BASE=tok-123\n\
             API_TOKEN=tok-123\n"
        ),
    );
    app
}

#[test]
fn drift_between_env_files_table() {
    let app = drifting_app();
    let out = audit(&app, &["--against", ".env.production"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr, "");
    assert_eq!(
        out.stdout,
        "\
variables present on one side only
  NAME          LOCAL               PRODUCTION                         FILES
  DEBUG         1                   (absent)                           .env vs .env.production
  API_TOKEN     (absent)            (secret)                           .env vs .env.production

backing services of a different kind
  NAME          LOCAL               PRODUCTION                         FILES
  DATABASE_URL  sqlite:// [sqlite]  postgres://db.internal [postgres]  .env vs .env.production
  CACHE_STORE   memory [memory]     redis://cache.internal [redis]     .env vs .env.production
  STORAGE       local [local disk]  s3://uploads-bucket [s3]           .env vs .env.production

different image tags
  NAME          LOCAL               PRODUCTION                         FILES
  DB_IMAGE      postgres:16         postgres:13                        .env vs .env.production

drift: 6 findings
"
    );
    assert_no_secret(&out);
}

#[test]
fn a_cache_per_process_against_a_shared_redis_is_drift() {
    // The drift the shop example used to show: a dict per web process here,
    // one Redis cache there. The same kind on another host is not drift.
    let app = App::with_procfile("store: redis-server --port $PORT\nweb: python3 app.py\n");
    app.file(
        ".env",
        "REDIS_URL=redis://${PM_STORE_HOST}:${PM_STORE_PORT}/0\nCACHE_URL=memory://\n",
    );
    app.file(
        ".env.production",
        &format!(
            "REDIS_URL=redis://:{PASSWORD}@redis.internal:6379/0\n\
             CACHE_URL=redis://:{PASSWORD}@redis.internal:6379/1\n"
        ),
    );
    let out = audit(&app, &[]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "\
backing services of a different kind
  NAME       LOCAL               PRODUCTION                      FILES
  CACHE_URL  memory:// [memory]  redis://redis.internal [redis]  .env vs .env.production

drift: 1 finding
"
    );
    assert_no_secret(&out);
    // The fix: the Redis the Procfile starts, at the address pm gives it.
    app.file(
        ".env",
        "REDIS_URL=redis://${PM_STORE_HOST}:${PM_STORE_PORT}/0\n\
         CACHE_URL=redis://${PM_STORE_HOST}:${PM_STORE_PORT}/1\n",
    );
    assert_eq!(audit(&app, &[]).assert_ok(), "in parity: no drift found\n");
}

#[test]
fn drift_between_env_files_json() {
    let app = drifting_app();
    let out = audit(&app, &["--against", ".env.production", "--json"]);
    assert_eq!(out.code(), Some(1));
    assert_no_secret(&out);
    let report = json(&out);
    assert_eq!(report["drift"], true);
    assert_eq!(
        summary(&report),
        triples(&[
            ("variable", "drift", "DEBUG"),
            ("variable", "drift", "API_TOKEN"),
            ("service", "drift", "DATABASE_URL"),
            ("service", "drift", "CACHE_STORE"),
            ("service", "drift", "STORAGE"),
            ("image", "drift", "DB_IMAGE"),
        ])
    );
    let db = &report["findings"][2];
    assert_eq!(
        *db,
        serde_json::json!({
            "rule": "service",
            "severity": "drift",
            "name": "DATABASE_URL",
            "local": {"value": "sqlite://", "kind": "sqlite"},
            "production": {"value": "postgres://db.internal", "secret": true, "kind": "postgres"},
            "files": [".env", ".env.production"],
            "message": "DATABASE_URL: sqlite locally, postgres in production",
        })
    );
    assert_eq!(
        report["findings"][1]["production"],
        serde_json::json!({"secret": true})
    );
}

#[test]
fn the_password_of_a_url_never_shows() {
    // The variable drifts in every way the audit reports values.
    let app = App::with_procfile("web: puma\n");
    app.file(".env", "ONLY_HERE=mysql://root:devpass@localhost/x\n");
    app.file(
        "prod.env",
        &format!(
            "DATABASE_URL=postgres://user:{PASSWORD}@db/{PASSWORD}?password={PASSWORD}\n\
             ONLY_HERE=\n"
        ),
    );
    app.file(".env.local", "DATABASE_URL=sqlite:///devpass.db\n");
    for json in [false, true] {
        let mut args = vec!["-e", ".env,.env.local", "--against", "prod.env"];
        if json {
            args.push("--json");
        }
        let out = audit(&app, &args);
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert!(out.stdout.contains("postgres://db"), "{}", out.stdout);
        assert_no_secret(&out);
    }
}

#[test]
fn several_env_files_on_each_side_later_wins() {
    let app = App::with_procfile("web: puma\n");
    app.file(".env", "CACHE_STORE=memory\n");
    app.file(".env.local", "CACHE_STORE=redis://localhost/0\n");
    app.file("prod/base.env", "CACHE_STORE=file:///tmp\n");
    app.file("prod/override.env", "CACHE_STORE=rediss://cache/0\n");
    let out = audit(
        &app,
        &[
            "-e",
            ".env,.env.local",
            "--against",
            "prod/base.env",
            "prod/override.env",
        ],
    );
    assert_eq!(out.assert_ok(), "in parity: no drift found\n");
}

#[test]
fn empty_value_against_a_service() {
    let app = App::with_procfile("web: puma\n");
    app.file(".env", "REDIS_URL=\nSENTRY_DSN=\n");
    app.file(
        ".env.production",
        "REDIS_URL=redis://cache/0\nSENTRY_DSN=https://k@sentry.io/1\n",
    );
    let out = audit(&app, &["--json"]);
    assert_eq!(out.code(), Some(1));
    let report = json(&out);
    assert_eq!(
        summary(&report),
        triples(&[("service", "drift", "REDIS_URL")])
    );
    assert_eq!(
        report["findings"][0]["message"],
        "REDIS_URL: none locally, redis in production"
    );
}

// ------------------------------------------------------------ arguments and errors

#[test]
fn against_defaults_to_env_production_next_to_the_procfile() {
    let app = App::new();
    app.file("app/Procfile", "web: puma\n");
    app.file("app/.env", "A=1\n");
    let out = audit(&app, &["-f", "app/Procfile"]);
    out.assert_error(
        1,
        "pm: nothing to compare with: app/.env.production does not exist; pass --against \
         FILE_OR_DIR (an env file such as .env.production, or a directory written by pm export)\n",
    );
    app.file("app/.env.production", "A=2\nB=3\n");
    let out = audit(&app, &["-f", "app/Procfile"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stdout,
        "\
variables present on one side only
  NAME  LOCAL     PRODUCTION  FILES
  B     (absent)  3           app/.env vs app/.env.production

drift: 1 finding
"
    );
}

#[test]
fn errors_are_one_line_and_distinct_from_drift() {
    let app = App::with_procfile("web: puma\n");
    app.file(".env", "A=1\n");
    audit(&app, &["--against", "nope.env"]).assert_error(1, "pm: nope.env: not found\n");
    app.file("bad.env", "A=1\nnot a line\n");
    audit(&app, &["--against", "bad.env"]).assert_error(
        1,
        "pm: bad.env:2: invalid line (expected KEY=VALUE; the line is not shown, it may hold a secret)\n",
    );
    app.file("prod/compose.yaml", "services: [\n");
    let out = audit(&app, &["--against", "prod", "--json"]);
    assert_eq!((out.code(), out.stdout.as_str()), (Some(1), ""));
    assert!(
        out.stderr
            .starts_with("pm: prod/compose.yaml: invalid YAML: ")
            && out.stderr.lines().count() == 1,
        "{}",
        out.stderr
    );
    app.file("empty/readme.txt", "hi\n");
    let out = audit(&app, &["--against", "empty"]);
    out.assert_error(
        1,
        "pm: empty: not a pm export directory (no .pm-export.json, compose.yaml, systemd units \
         or Kubernetes YAML found)\n",
    );
    // The local side is checked as `pm start` would.
    app.file("Procfile", "web: puma\nweb: again\n");
    let out = audit(&app, &["--against", ".env"]);
    out.assert_error(
        1,
        "pm: Procfile:2: duplicate process type \"web\" (first defined on line 1)\n",
    );
}

// ------------------------------------------------------------ Procfile.dev

#[test]
fn procfile_dev_is_compared_with_the_procfile() {
    let app = App::with_procfile(
        "web: bundle exec puma -C config/puma.rb\nworker: bundle exec sidekiq\n",
    );
    app.file(".env", "A=1\n");
    app.file(".env.production", "A=1\n");
    app.file(
        "Procfile.dev",
        "web: bin/rails server -p $PORT\ncss: bin/rails tailwindcss:watch\nworker:   bundle exec sidekiq\n",
    );
    let out = audit(&app, &[]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stdout,
        "\
process types
  NAME  LOCAL                        PRODUCTION                          FILES
  web   bin/rails server -p $PORT    bundle exec puma -C config/puma.rb  Procfile.dev vs Procfile
  css   bin/rails tailwindcss:watch  (absent)                            Procfile.dev vs Procfile

drift: 2 findings
"
    );

    // The same types and commands: in parity.
    app.file(
        "Procfile.dev",
        "worker: bundle exec sidekiq\nweb: bundle exec puma -C config/puma.rb\n",
    );
    assert_eq!(audit(&app, &[]).assert_ok(), "in parity: no drift found\n");

    // --dev-procfile names another one; a type it lacks is drift too.
    app.file(
        "Procfile.local",
        "web: bundle exec puma -C config/puma.rb\n",
    );
    let out = audit(&app, &["--dev-procfile", "Procfile.local", "--json"]);
    assert_eq!(
        summary(&json(&out)),
        triples(&[("process", "drift", "worker")])
    );
    audit(&app, &["--dev-procfile", "missing.dev"]).assert_error(1, "pm: missing.dev: not found\n");
}

#[test]
fn procfile_dev_itself_as_the_procfile_is_not_compared_with_itself() {
    let app = App::new();
    app.file("Procfile.dev", "web: rails s\n");
    app.file(".env.production", "");
    let out = audit(&app, &["-f", "Procfile.dev"]);
    assert_eq!(out.assert_ok(), "in parity: no drift found\n");
}

// ------------------------------------------------------------ export directories

/// The app every export fixture below is an export of.
fn exported_app() -> App {
    let app = App::with_procfile(
        "web: bundle exec puma -p $PORT -e 'production'\n\
         worker: bundle exec sidekiq -q \"default\" 100%\n\
         release: bin/rails db:migrate\n",
    );
    app.file(
        ".env",
        &format!(
            "DATABASE_URL=postgres://app:{PASSWORD}@db.internal/app\n\
             RAILS_ENV=production\n\
             PRICE='$5'\n\
             SECRET_KEY_BASE=s3cr3t-base\n"
        ),
    );
    app.file(
        "pm.toml",
        "[defaults]\nformation = \"web=2,worker=1\"\n\n\
         [process.web.ready]\nhttp = \"/healthz\"\n\n\
         [process.worker]\nrestart = \"always\"\n",
    );
    app
}

/// The non-secret and secret variables, as the export would split them.
type Vars = Vec<(&'static str, String)>;

fn env_vars() -> (Vars, Vars) {
    (
        vec![("RAILS_ENV", "production".into()), ("PRICE", "$5".into())],
        vec![
            (
                "DATABASE_URL",
                format!("postgres://app:{PASSWORD}@db.internal/app"),
            ),
            ("SECRET_KEY_BASE", "s3cr3t-base".into()),
        ],
    )
}

const WEB: &str = "bundle exec puma -p $PORT -e 'production'";
const WORKER: &str = "bundle exec sidekiq -q \"default\" 100%";
const RELEASE: &str = "bin/rails db:migrate";

fn manifest(app: &App, dir: &str, format: &str) {
    let files: Vec<String> = std::fs::read_dir(app.path().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut files = files;
    files.sort();
    app.file(
        &format!("{dir}/.pm-export.json"),
        &serde_json::json!({"app": "shop", "format": format, "files": files}).to_string(),
    );
}

/// `ExecStart=` quoting: single quotes with C escapes; `%` and `$` doubled.
fn systemd_quote(command: &str) -> String {
    let escaped = command
        .replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("'{escaped}'")
}

fn systemd_export(app: &App, dir: &str, web: &str, web_instances: u32) {
    let (plain, secret) = env_vars();
    let env: String = plain
        .iter()
        .chain(&secret)
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
                .replace('`', "\\`");
            format!("{k}=\"{v}\"\n")
        })
        .collect();
    app.file(&format!("{dir}/shop.env"), &env);
    let wants: Vec<String> = (0..web_instances)
        .map(|i| format!("shop-web@{}.service", 5000 + i))
        .chain([
            "shop-worker@5100.service".to_string(),
            "shop-release.service".to_string(),
        ])
        .collect();
    app.file(
        &format!("{dir}/shop.target"),
        &format!(
            "[Unit]\nDescription=shop\nWants={}\n\n[Install]\nWantedBy=multi-user.target\n",
            wants.join(" ")
        ),
    );
    let root = app.path().display().to_string();
    let unit = |command: &str, restart: &str| {
        format!(
            "[Unit]\nPartOf=shop.target\nAfter=shop-release.service\nRequires=shop-release.service\n\n\
             [Service]\nEnvironment=PORT=%i\nEnvironmentFile={root}/{dir}/shop.env\n\
             WorkingDirectory={root}\nExecStart=/bin/sh -c {}\nRestart={restart}\n\
             KillSignal=SIGTERM\nTimeoutStopSec=5\n",
            systemd_quote(command)
        )
    };
    app.file(
        &format!("{dir}/shop-web@.service"),
        &unit(web, "on-failure"),
    );
    app.file(
        &format!("{dir}/shop-worker@.service"),
        &unit(WORKER, "always"),
    );
    app.file(
        &format!("{dir}/shop-release.service"),
        &format!(
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nEnvironmentFile={root}/{dir}/shop.env\n\
             WorkingDirectory={root}\nExecStart=/bin/sh -c {}\n",
            systemd_quote(RELEASE)
        ),
    );
    manifest(app, dir, "systemd");
}

#[test]
fn systemd_export_round_trip() {
    let app = exported_app();
    systemd_export(&app, "prod", WEB, 2);
    let out = audit(&app, &["--against", "prod"]);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        "\
health checks
  NAME           LOCAL          PRODUCTION   FILES
  web (warning)  http /healthz  not carried  pm.toml vs prod/shop-web@.service

in parity, with 1 warning (not drift; --strict makes them fail)
"
    );
    assert_no_secret(&out);
    let out = audit(&app, &["--against", "prod", "--strict"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stdout
            .ends_with("\ndrift: 1 warning (warnings count as drift: --strict)\n"),
        "{}",
        out.stdout
    );
    let out = audit(&app, &["--against", "prod", "--strict", "--json"]);
    assert_eq!(out.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["drift"], true);
    assert_eq!(summary(&report), triples(&[("health", "warning", "web")]));
}

#[test]
fn systemd_export_drift() {
    let app = exported_app();
    systemd_export(&app, "prod", "bundle exec puma -p $PORT", 3);
    std::fs::remove_file(app.path().join("prod/shop-worker@.service")).unwrap();
    let out = audit(&app, &["--against", "prod", "--json"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        summary(&json(&out)),
        triples(&[
            ("process", "drift", "web"),
            ("process", "drift", "worker"),
            ("formation", "drift", "web"),
            ("health", "warning", "web"),
        ])
    );
    // A type the export lacks names the export directory.
    assert_eq!(
        json(&out)["findings"][1]["files"],
        serde_json::json!(["Procfile", "prod"])
    );
}

fn compose_export(app: &App, dir: &str, web_replicas: u32, healthcheck: bool) {
    let (plain, secret) = env_vars();
    let env = |port: u32| -> String {
        let mut text = String::new();
        for (k, v) in plain.iter().chain(&secret) {
            text.push_str(&format!(
                "      {k}: {}\n",
                serde_json::to_string(&v.replace('$', "$$")).unwrap()
            ));
        }
        text.push_str(&format!("      PORT: \"{port}\"\n"));
        text
    };
    let command =
        |c: &str| serde_json::to_string(&["/bin/sh", "-c", &c.replace('$', "$$")]).unwrap();
    let health = if healthcheck {
        "    healthcheck:\n      test: [\"CMD-SHELL\", \"curl -fsS http://127.0.0.1:5000/healthz\"]\n      interval: 1s\n"
    } else {
        ""
    };
    let text = format!(
        "name: shop\nservices:\n\
         \x20 web:\n    image: shop:latest\n    command: {}\n    environment:\n{}    deploy:\n      replicas: {web_replicas}\n{health}    restart: on-failure\n    depends_on:\n      release:\n        condition: service_completed_successfully\n\
         \x20 worker:\n    image: shop:latest\n    command: {}\n    environment:\n{}    deploy:\n      replicas: 1\n    restart: always\n\
         \x20 release:\n    image: shop:latest\n    command: {}\n    environment:\n{}    deploy:\n      replicas: 1\n    restart: \"no\"\n",
        command(WEB),
        env(5000),
        command(WORKER),
        env(5100),
        command(RELEASE),
        env(5200),
    );
    app.file(&format!("{dir}/compose.yaml"), &text);
    manifest(app, dir, "compose");
}

#[test]
fn compose_export_round_trip() {
    let app = exported_app();
    compose_export(&app, "prod", 2, true);
    let out = audit(&app, &["--against", "prod"]);
    assert_eq!(out.assert_ok(), "in parity: no drift found\n");
    // Without its manifest the directory is still recognised.
    std::fs::remove_file(app.path().join("prod/.pm-export.json")).unwrap();
    let out = audit(&app, &["--against", "prod"]);
    assert_eq!(out.assert_ok(), "in parity: no drift found\n");
}

#[test]
fn compose_export_drift() {
    let app = exported_app();
    compose_export(&app, "prod", 4, false);
    let out = audit(&app, &["--against", "prod"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stdout,
        "\
formation
  NAME  LOCAL          PRODUCTION  FILES
  web   x2             x4          pm.toml vs prod/compose.yaml

health checks
  NAME  LOCAL          PRODUCTION  FILES
  web   http /healthz  none        pm.toml vs prod/compose.yaml

drift: 2 findings
"
    );
}

fn kubernetes_export(app: &App, dir: &str, base64_secret: bool, web_probe: bool) {
    let (plain, secret) = env_vars();
    let map = |vars: &[(&str, String)]| -> String {
        vars.iter()
            .map(|(k, v)| format!("  {k}: {}\n", serde_json::to_string(v).unwrap()))
            .collect()
    };
    app.file(
        &format!("{dir}/shop-env.yaml"),
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-env\ndata:\n{}",
            map(&plain)
        ),
    );
    let secret_text = if base64_secret {
        let encoded: Vec<(&str, String)> = secret
            .iter()
            .map(|(k, v)| (*k, base64(v.as_bytes())))
            .collect();
        format!("data:\n{}", map(&encoded))
    } else {
        format!("stringData:\n{}", map(&secret))
    };
    app.file(
        &format!("{dir}/shop-secret.yaml"),
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: shop-secret\ntype: Opaque\n{secret_text}"),
    );
    let workload = |kind: &str, ty: &str, command: &str, replicas: Option<u32>, probe: &str| {
        let api = if kind == "Job" { "batch/v1" } else { "apps/v1" };
        let replicas = replicas
            .map(|r| format!("  replicas: {r}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: shop-{ty}\n  annotations:\n    pm/process-type: {ty}\n  labels:\n    app.kubernetes.io/name: shop\n    app.kubernetes.io/component: {ty}\n\
             spec:\n{replicas}  template:\n    spec:\n      containers:\n        - name: {ty}\n          image: shop:latest\n          command: {}\n          env:\n            - name: PORT\n              value: \"5000\"\n          envFrom:\n            - configMapRef:\n                name: shop-env\n            - secretRef:\n                name: shop-secret\n{probe}",
            serde_json::to_string(&["/bin/sh", "-c", command]).unwrap()
        )
    };
    let probe = if web_probe {
        "          readinessProbe:\n            httpGet:\n              path: /healthz\n              port: 5000\n"
    } else {
        ""
    };
    // Two objects in one file, as a reader must accept.
    app.file(
        &format!("{dir}/shop-web-deployment.yaml"),
        &format!(
            "{}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: shop-web\nspec:\n  ports:\n    - port: 5000\n",
            workload("Deployment", "web", WEB, Some(2), probe)
        ),
    );
    app.file(
        &format!("{dir}/shop-worker-deployment.yaml"),
        &workload("Deployment", "worker", WORKER, Some(1), ""),
    );
    app.file(
        &format!("{dir}/shop-release-job.yaml"),
        &workload("Job", "release", RELEASE, None, ""),
    );
    manifest(app, dir, "kubernetes");
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn kubernetes_export_round_trip() {
    for base64_secret in [false, true] {
        let app = exported_app();
        kubernetes_export(&app, "k8s", base64_secret, true);
        let out = audit(&app, &["--against", "k8s"]);
        assert_eq!(
            out.assert_ok(),
            "in parity: no drift found\n",
            "base64: {base64_secret}"
        );
    }
}

#[test]
fn kubernetes_export_drift_and_env_files_together() {
    let app = exported_app();
    kubernetes_export(&app, "k8s", true, false);
    app.file("extra.env", "FEATURE_X=on\nRAILS_ENV=staging\n");
    let out = audit(&app, &["--against", "k8s", "extra.env", "--json"]);
    assert_eq!(out.code(), Some(1));
    assert_no_secret(&out);
    let report = json(&out);
    assert_eq!(
        summary(&report),
        triples(&[
            ("variable", "drift", "FEATURE_X"),
            ("health", "drift", "web"),
        ])
    );
    assert_eq!(
        report["findings"][1]["files"],
        serde_json::json!(["pm.toml", "k8s/shop-web-deployment.yaml"])
    );
}

#[test]
fn broken_pipe_is_quiet() {
    let app = drifting_app();
    let mut child = app
        .cmd(&["audit", "--against", ".env.production"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = wait_with_deadline(child, "pm audit", SECS(30));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn fixing_the_drift_brings_parity() {
    let app = App::with_procfile("web: puma\nworker: sidekiq\n");
    app.file(
        ".env",
        "DATABASE_URL=sqlite:///db/development.sqlite3\nQUEUE_ADAPTER=inline\n",
    );
    app.file(
        ".env.production",
        &format!(
            "DATABASE_URL=postgres://app:{PASSWORD}@db/app\nQUEUE_ADAPTER=sidekiq\nREDIS_URL=redis://cache/0\n"
        ),
    );
    let out = audit(&app, &["--json"]);
    assert_eq!(out.code(), Some(1));
    assert_no_secret(&out);
    let report = json(&out);
    assert_eq!(
        summary(&report),
        triples(&[
            ("variable", "drift", "REDIS_URL"),
            ("service", "drift", "DATABASE_URL"),
            ("service", "drift", "QUEUE_ADAPTER"),
        ])
    );
    assert_eq!(
        report["findings"][0]["production"],
        serde_json::json!({"value": "redis://cache", "kind": "redis"})
    );
    // The fix: the same kinds of services locally, on local hosts.
    app.file(
        ".env",
        "DATABASE_URL=postgres://localhost/app_dev\nQUEUE_ADAPTER=sidekiq\nREDIS_URL=redis://localhost:6379/0\n",
    );
    assert_eq!(audit(&app, &[]).assert_ok(), "in parity: no drift found\n");
}
