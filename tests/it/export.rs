//! Integration tests: `pm export` for systemd, compose and kubernetes.
//!
//! Every export is also checked by the engines' own validators when they are
//! installed (`systemd-analyze verify`, the Compose JSON schema,
//! `kubernetes-validate`), and read back with PyYAML, a YAML 1.1 reader.
//! A missing validator skips its check with a note, unless
//! `PM_REQUIRE_VALIDATORS` asks for it (`1` for all, or a comma-separated
//! list of `systemd`, `compose`, `kubernetes`): then it fails.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{App, Finished, SECS, run_with_deadline, try_run_with_deadline};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ci/validate-exports.py");
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/compose-spec.json");

fn required(validator: &str) -> bool {
    match std::env::var("PM_REQUIRE_VALIDATORS") {
        Ok(v) if v == "1" => true,
        Ok(v) => v.split(',').any(|s| s.trim() == validator),
        Err(_) => false,
    }
}

fn runs(program: &str, args: &[&str]) -> bool {
    try_run_with_deadline(Command::new(program).args(args), SECS(60))
        .is_ok_and(|o| o.status.success())
}

/// True when the validator for `format` can run; false (with a note) when it
/// cannot and is not required; a failure when it is required.
fn have_validator(format: &str) -> bool {
    let ok = match format {
        "systemd" => runs("systemd-analyze", &["--version"]),
        "compose" => runs("python3", &["-c", "import yaml, jsonschema"]),
        "kubernetes" => {
            runs("python3", &["-c", "import yaml"]) && runs("kubernetes-validate", &["--version"])
        }
        _ => unreachable!(),
    };
    if !ok {
        assert!(
            !required(format),
            "the {format} validator is not installed and PM_REQUIRE_VALIDATORS requires it"
        );
        eprintln!("note: {format} validator not installed, skipping its check");
    }
    ok
}

/// `systemd-analyze verify` on the target and every unit: no warning at all.
fn verify_systemd(dir: &Path, app: &str) {
    if !have_validator("systemd") {
        return;
    }
    let mut units = vec![dir.join(format!("{app}.target"))];
    units.extend(
        files(dir)
            .into_keys()
            .filter(|n| n.ends_with(".service"))
            .map(|n| dir.join(n)),
    );
    let out = run_with_deadline(
        Command::new("systemd-analyze").arg("verify").args(&units),
        SECS(120),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.is_empty(), "{text}");
}

/// The schema check, then every YAML document as PyYAML reads it:
/// `{file: [documents]}`. None when the validator is not installed.
fn validate_yaml(format: &str, dir: &Path) -> Option<Value> {
    if !have_validator(format) {
        return None;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(SCRIPT).arg(format).arg(dir);
    if format == "compose" {
        cmd.arg(SCHEMA);
    }
    let out = run_with_deadline(&mut cmd, SECS(120));
    assert!(
        out.status.success(),
        "{format} validation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn files(dir: &Path) -> BTreeMap<String, String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read_to_string(e.path()).unwrap())
        })
        .collect()
}

fn export(app: &App, args: &[&str]) -> Finished {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    app.run(&all)
}

fn root(app: &App) -> PathBuf {
    fs::canonicalize(app.path()).unwrap()
}

/// A small app with every feature the exports carry.
fn shop() -> App {
    let app = App::with_procfile(
        "release: bin/migrate\nweb: bundle exec puma -p $PORT\nworker: bin/worker --queue default\n",
    );
    app.file(
        "pm.toml",
        r#"[process.web]
restart = "always"
stop_signal = "INT"
stop_timeout = 10
proxy = 8080
[process.web.ready]
http = "/up"
interval = 2
timeout = 1.5
[process.web.live]
tcp = true
[process.worker]
depends_on = ["web"]
stop_timeout = 30
"#,
    );
    app.file(
        ".env",
        "RAILS_ENV=production\nDATABASE_URL=postgres://app:pw@db/app\nAPI_TOKEN=abc\nPORT=5000\n",
    );
    app
}

#[test]
fn systemd_units_for_a_small_app() {
    let app = shop();
    export(
        &app,
        &[
            "systemd", "out", "--app", "shop", "--user", "deploy", "web=2", "worker", "release",
        ],
    )
    .assert_ok();
    let root = root(&app);
    let dir = root.join("out");
    let r = root.display();
    let d = dir.display();
    // Units run pm by the path of the pm that wrote them.
    let pm = env!("CARGO_BIN_EXE_pm");
    let got = files(&dir);
    let expected: BTreeMap<String, String> = [
        (
            ".pm-export.json",
            r#"{
  "app": "shop",
  "format": "systemd",
  "files": [
    "shop-release.service",
    "shop-web-balancer.service",
    "shop-web@.service",
    "shop-worker@.service",
    "shop.env",
    "shop.target"
  ]
}
"#
            .to_string(),
        ),
        (
            "shop-release.service",
            format!(
                "[Unit]
Description=shop release
PartOf=shop.target

[Service]
Type=oneshot
RemainAfterExit=yes
WorkingDirectory={r}
EnvironmentFile={d}/shop.env
Environment=PORT=5000
ExecStart=/bin/sh -c 'bin/migrate'
KillSignal=SIGTERM
TimeoutStopSec=5s
User=deploy
"
            ),
        ),
        (
            "shop-web-balancer.service",
            format!(
                "[Unit]
Description=shop web balancer on 127.0.0.1:8080
PartOf=shop.target

[Service]
Type=simple
ExecStart={pm} balance 127.0.0.1:8080 127.0.0.1:5100 127.0.0.1:5101 --http /up --interval 2 --timeout 1.5
Restart=always
TimeoutStopSec=10s
User=deploy
"
            ),
        ),
        (
            "shop-web@.service",
            format!(
                "[Unit]
Description=shop web on port %i
PartOf=shop.target
Requires=shop-release.service
After=shop-release.service

[Service]
Type=simple
WorkingDirectory={r}
EnvironmentFile={d}/shop.env
Environment=PORT=%i
ExecStart=/bin/sh -c 'bundle exec puma -p $$PORT'
Restart=always
KillSignal=SIGINT
TimeoutStopSec=10s
User=deploy
"
            ),
        ),
        (
            "shop-worker@.service",
            format!(
                "[Unit]
Description=shop worker on port %i
PartOf=shop.target
Requires=shop-release.service
After=shop-release.service shop-web@5100.service shop-web@5101.service

[Service]
Type=simple
WorkingDirectory={r}
EnvironmentFile={d}/shop.env
Environment=PORT=%i
ExecStartPre={pm} probe --http /up --interval 2 --timeout 1.5 127.0.0.1:5100 127.0.0.1:5101
ExecStart=/bin/sh -c 'bin/worker --queue default'
Restart=on-failure
KillSignal=SIGTERM
TimeoutStopSec=30s
User=deploy
"
            ),
        ),
        (
            "shop.env",
            "RAILS_ENV=\"production\"\nDATABASE_URL=\"postgres://app:pw@db/app\"\nAPI_TOKEN=\"abc\"\n\
             PM_RELEASE_HOST=\"127.0.0.1\"\nPM_RELEASE_PORT=\"5000\"\n\
             PM_WEB_HOST=\"127.0.0.1\"\nPM_WEB_PORT=\"8080\"\n\
             PM_WORKER_HOST=\"127.0.0.1\"\nPM_WORKER_PORT=\"5200\"\n\
             PM_LISTEN_HOST=\"127.0.0.1\"\n"
                .to_string(),
        ),
        (
            "shop.target",
            "[Unit]
Description=shop
Wants=shop-release.service
Wants=shop-web@5100.service
Wants=shop-web@5101.service
Wants=shop-worker@5200.service
Wants=shop-web-balancer.service

[Install]
WantedBy=multi-user.target
"
            .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, expected);
    verify_systemd(&dir, "shop");
}

const SHOP_COMPOSE: &str = r#"name: shop
services:
  release:
    command:
    - /bin/sh
    - -c
    - bin/migrate
    deploy:
      replicas: 1
    environment:
      API_TOKEN: abc
      DATABASE_URL: postgres://app:pw@db/app
      DYNO: release.1
      PM_LISTEN_HOST: "0.0.0.0"
      PM_RELEASE_HOST: release
      PM_RELEASE_PORT: "5000"
      PM_WEB_HOST: web-balancer
      PM_WEB_PORT: "8080"
      PM_WORKER_HOST: worker
      PM_WORKER_PORT: "5200"
      PORT: "5000"
      PS: release.1
      RAILS_ENV: production
    image: shop:1
    restart: "no"
    stop_grace_period: 5s
    stop_signal: SIGTERM
  web:
    command:
    - /bin/sh
    - -c
    - bundle exec puma -p $$PORT
    depends_on:
      release:
        condition: service_completed_successfully
    deploy:
      replicas: 2
    environment:
      API_TOKEN: abc
      DATABASE_URL: postgres://app:pw@db/app
      DYNO: web
      PM_LISTEN_HOST: "0.0.0.0"
      PM_RELEASE_HOST: release
      PM_RELEASE_PORT: "5000"
      PM_WEB_HOST: web-balancer
      PM_WEB_PORT: "8080"
      PM_WORKER_HOST: worker
      PM_WORKER_PORT: "5200"
      PORT: "5100"
      PS: web
      RAILS_ENV: production
    healthcheck:
      interval: 2s
      retries: 3
      start_period: 300s
      test:
      - CMD-SHELL
      - curl -fsS -o /dev/null http://127.0.0.1:"$$PORT"'/up' || wget -q -O /dev/null http://127.0.0.1:"$$PORT"'/up' || exit 1
      timeout: 1500ms
    image: shop:1
    restart: always
    stop_grace_period: 10s
    stop_signal: SIGINT
  web-balancer:
    command:
    - pm
    - balance
    - 0.0.0.0:8080
    - web:5100
    - --http
    - /up
    - --interval
    - "2"
    - --timeout
    - "1.5"
    deploy:
      replicas: 1
    image: shop:1
    ports:
    - host_ip: "127.0.0.1"
      published: "8080"
      target: 8080
    restart: always
    stop_grace_period: 10s
  worker:
    command:
    - /bin/sh
    - -c
    - bin/worker --queue default
    depends_on:
      release:
        condition: service_completed_successfully
      web:
        condition: service_healthy
    deploy:
      replicas: 1
    environment:
      API_TOKEN: abc
      DATABASE_URL: postgres://app:pw@db/app
      DYNO: worker.1
      PM_LISTEN_HOST: "0.0.0.0"
      PM_RELEASE_HOST: release
      PM_RELEASE_PORT: "5000"
      PM_WEB_HOST: web-balancer
      PM_WEB_PORT: "8080"
      PM_WORKER_HOST: worker
      PM_WORKER_PORT: "5200"
      PORT: "5200"
      PS: worker.1
      RAILS_ENV: production
    image: shop:1
    restart: on-failure
    stop_grace_period: 30s
    stop_signal: SIGTERM
"#;

#[test]
fn compose_file_for_a_small_app() {
    let app = shop();
    export(
        &app,
        &[
            "compose", "out", "--app", "shop", "--image", "shop:1", "web=2", "worker", "release",
        ],
    )
    .assert_ok();
    let dir = app.path().join("out");
    let got = files(&dir);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        [".pm-export.json", "compose.yaml"]
    );
    assert_eq!(got["compose.yaml"], SHOP_COMPOSE);
    let manifest: Value = serde_json::from_str(&got[".pm-export.json"]).unwrap();
    assert_eq!(
        manifest,
        serde_json::json!({"app": "shop", "format": "compose", "files": ["compose.yaml"]})
    );
    if let Some(read) = validate_yaml("compose", &dir) {
        let ours: Value = serde_saphyr::from_str(SHOP_COMPOSE).unwrap();
        assert_eq!(read["compose.yaml"][0], ours);
    }
}

const SHOP_WEB_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  annotations:
    pm/process-type: web
  labels:
    app.kubernetes.io/component: web
    app.kubernetes.io/name: shop
  name: shop-web
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/component: web
      app.kubernetes.io/name: shop
  template:
    metadata:
      annotations:
        pm/process-type: web
      labels:
        app.kubernetes.io/component: web
        app.kubernetes.io/name: shop
    spec:
      containers:
      - command:
        - /bin/sh
        - -c
        - bundle exec puma -p $PORT
        env:
        - name: PORT
          value: "5100"
        - name: PS
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: DYNO
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        envFrom:
        - configMapRef:
            name: shop-env
        - secretRef:
            name: shop-secret
        image: shop:1
        livenessProbe:
          failureThreshold: 3
          periodSeconds: 1
          successThreshold: 1
          tcpSocket:
            port: 5100
          timeoutSeconds: 1
        name: web
        ports:
        - containerPort: 5100
        readinessProbe:
          failureThreshold: 3
          httpGet:
            path: /up
            port: 5100
          periodSeconds: 2
          successThreshold: 1
          timeoutSeconds: 2
      terminationGracePeriodSeconds: 10
"#;

#[test]
fn kubernetes_objects_for_a_small_app() {
    let app = shop();
    export(
        &app,
        &[
            "kubernetes",
            "out",
            "--app",
            "shop",
            "--image",
            "shop:1",
            "web=2",
            "worker",
            "release",
        ],
    )
    .assert_ok();
    let dir = app.path().join("out");
    let got = files(&dir);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        [
            ".pm-export.json",
            "00-shop-env-configmap.yaml",
            "00-shop-secret-secret.yaml",
            "00-shop-web-service.yaml",
            "10-shop-release-7b8f824c5c-job.yaml",
            "20-shop-web-deployment.yaml",
            "20-shop-worker-deployment.yaml",
        ]
    );
    assert_eq!(got["20-shop-web-deployment.yaml"], SHOP_WEB_DEPLOYMENT);
    assert_eq!(
        got["00-shop-env-configmap.yaml"],
        "apiVersion: v1
data:
  PM_LISTEN_HOST: \"0.0.0.0\"
  PM_RELEASE_HOST: shop-release
  PM_RELEASE_PORT: \"5000\"
  PM_WEB_HOST: shop-web
  PM_WEB_PORT: \"8080\"
  PM_WORKER_HOST: shop-worker
  PM_WORKER_PORT: \"5200\"
  RAILS_ENV: production
kind: ConfigMap
metadata:
  labels:
    app.kubernetes.io/name: shop
  name: shop-env
"
    );
    assert_eq!(
        got["00-shop-secret-secret.yaml"],
        "apiVersion: v1
kind: Secret
metadata:
  labels:
    app.kubernetes.io/name: shop
  name: shop-secret
stringData:
  API_TOKEN: abc
  DATABASE_URL: postgres://app:pw@db/app
type: Opaque
"
    );
    assert_eq!(
        got["00-shop-web-service.yaml"],
        "apiVersion: v1
kind: Service
metadata:
  annotations:
    pm/process-type: web
  labels:
    app.kubernetes.io/component: web
    app.kubernetes.io/name: shop
  name: shop-web
spec:
  ports:
  - port: 8080
    protocol: TCP
    targetPort: 5100
  selector:
    app.kubernetes.io/component: web
    app.kubernetes.io/name: shop
"
    );
    let job: Value = serde_saphyr::from_str(&got["10-shop-release-7b8f824c5c-job.yaml"]).unwrap();
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["name"], "shop-release-7b8f824c5c");
    assert_eq!(job["spec"]["suspend"], false);
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    let worker: Value = serde_saphyr::from_str(&got["20-shop-worker-deployment.yaml"]).unwrap();
    assert_eq!(
        worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        30
    );
    // The worker waits for web the way web's readiness check probes it.
    assert_eq!(
        worker["spec"]["template"]["spec"]["initContainers"],
        serde_json::json!([{
            "name": "wait-web",
            "image": "shop:1",
            "command": ["pm", "probe", "--http", "/up", "--interval", "2", "--timeout", "1.5", "shop-web:8080"],
        }])
    );
    validate_yaml("kubernetes", &dir);
}

// --- Nasty inputs: every value must come back byte for byte. ---

/// Commands a Procfile can hold (one line each) that break naive quoting.
const NASTY_COMMANDS: &[(&str, &str)] = &[
    ("quotes", r#"echo 'single' "double" `date` it\'s"#),
    ("dollars", "echo $PORT ${HOME} $$ $(whoami) $ $(X"),
    ("percent", "printf '100%% %s %i %n\\n' done"),
    ("backslash", r#"echo \\ \n \t \x41 \' \""#),
    ("unicode", "echo héllo wörld ✓ 日本 🚀"),
    ("yes", "yes"),
    ("tilde", "~"),
    ("colon", ": x"),
    ("hash", "#hash not comment"),
    ("null", "null"),
    ("one", "1.0"),
    ("hex", "0x10"),
    ("semi", "a; b && c || d | e > /dev/null"),
];

/// Env values with line breaks, quotes and YAML-1.1 look-alikes.
const NASTY_ENV: &str = r#"MULTI="line one
line two"
QUOTED='it''s "x" \ $HOME'
BOOL=yes
OFF=off
TILDE="~"
NUM="0x10"
COLON=":"
UNI="é ✓ 🚀"
DB_PASSWORD='p$ss%word'
DATE=2001-12-14
SEXA=1:20
Y=y
NOPE=NO
INF=.inf
MERGE="<<"
EMPTY=
SPACED=" x "
"#;

fn nasty() -> App {
    let mut procfile = String::new();
    for (name, command) in NASTY_COMMANDS {
        procfile.push_str(&format!("{name}: {command}\n"));
    }
    let app = App::with_procfile(&procfile);
    app.file(".env", NASTY_ENV);
    app
}

/// The env pm itself reads from the nasty .env (via `pm run`), so the
/// expectations do not depend on this test's reading of dotenv.
fn nasty_env(app: &App) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for name in [
        "MULTI",
        "QUOTED",
        "BOOL",
        "OFF",
        "TILDE",
        "NUM",
        "COLON",
        "UNI",
        "DB_PASSWORD",
        "DATE",
        "SEXA",
        "Y",
        "NOPE",
        "INF",
        "MERGE",
        "EMPTY",
        "SPACED",
    ] {
        let out = app.run(&["run", "printenv", name]).assert_ok().to_string();
        let value = out.strip_suffix('\n').unwrap().to_string();
        env.insert(name.to_string(), value);
    }
    assert_eq!(env["MULTI"], "line one\nline two");
    env
}

/// systemd's reading of an ExecStart= value, as `pm audit` reads exports
/// back, once nothing is left for systemd to expand (`%` specifiers, `$`
/// variables).
fn systemd_exec(line: &str) -> Vec<String> {
    let bare = line.replace("%%", "").replace("$$", "");
    assert!(!bare.contains('%'), "unescaped specifier in {line}");
    assert!(!bare.contains('$'), "variable reference in {line}");
    pm::syntax::systemd::exec_words(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// systemd's reading of an EnvironmentFile, as `pm audit` reads it back.
fn systemd_env_file(text: &str) -> BTreeMap<String, String> {
    pm::syntax::systemd::env_file(text, "nasty.env")
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn nasty_commands_round_trip_through_systemd() {
    let app = nasty();
    let env = nasty_env(&app);
    export(&app, &["systemd", "out", "--app", "nasty"]).assert_ok();
    let dir = app.path().join("out");
    let got = files(&dir);
    for (name, command) in NASTY_COMMANDS {
        let unit = &got[&format!("nasty-{name}@.service")];
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        assert_eq!(systemd_exec(exec), ["/bin/sh", "-c", command], "{exec}");
    }
    let mut written = systemd_env_file(&got["nasty.env"]);
    // The addresses of this machine come with the env.
    assert_eq!(written.remove("PM_QUOTES_PORT").as_deref(), Some("5000"));
    assert_eq!(
        written.remove("PM_LISTEN_HOST").as_deref(),
        Some("127.0.0.1")
    );
    written.retain(|k, _| !k.starts_with("PM_"));
    assert_eq!(written, env);
    verify_systemd(&dir, "nasty");
}

#[test]
fn nasty_commands_round_trip_through_compose() {
    let app = nasty();
    let env = nasty_env(&app);
    export(
        &app,
        &["compose", "out", "--app", "nasty", "--image", "img:1"],
    )
    .assert_ok();
    let dir = app.path().join("out");
    let text = fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let ours: Value = serde_saphyr::from_str(&text).unwrap();
    // Compose reads `$$` as `$`.
    let unescape = |v: &Value| v.as_str().unwrap().replace("$$", "$");
    let check = |doc: &Value| {
        for (position, (name, command)) in NASTY_COMMANDS.iter().enumerate() {
            let service = &doc["services"][*name];
            assert_eq!(service["command"][0], "/bin/sh");
            assert_eq!(unescape(&service["command"][2]), *command, "{name}");
            for (k, v) in &env {
                assert_eq!(unescape(&service["environment"][k]), *v, "{name} {k}");
            }
            let port = 5000 + 100 * position;
            assert_eq!(service["environment"]["PORT"], port.to_string());
        }
    };
    check(&ours);
    if let Some(read) = validate_yaml("compose", &dir) {
        check(&read["compose.yaml"][0]);
    }
}

/// Kubernetes' expansion of `$(VAR)` and `$$` in a container command.
fn kubernetes_expand(input: &str) -> String {
    let mut out = String::new();
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' || chars.peek().is_none() {
            out.push(c);
            continue;
        }
        match chars.next().unwrap() {
            '$' => out.push('$'),
            '(' => {
                let rest: String = chars.clone().collect();
                // Every reference is expanded (to a marker that fails the test).
                match rest.find(')') {
                    Some(_) => {
                        for c in chars.by_ref() {
                            if c == ')' {
                                break;
                            }
                        }
                        out.push_str("<EXPANDED>");
                    }
                    None => out.push_str("$("),
                }
            }
            other => {
                out.push('$');
                out.push(other);
            }
        }
    }
    out
}

#[test]
fn nasty_commands_round_trip_through_kubernetes() {
    let app = nasty();
    let env = nasty_env(&app);
    export(
        &app,
        &[
            "kubernetes",
            "out",
            "--app",
            "Nasty_App",
            "--image",
            "img:1",
        ],
    )
    .assert_ok();
    let dir = app.path().join("out");
    let got = files(&dir);
    let read_ours = |name: &str| -> Value { serde_saphyr::from_str(&got[name]).unwrap() };
    let check = |read: &dyn Fn(&str) -> Value| {
        for (name, command) in NASTY_COMMANDS {
            let doc = read(&format!("20-nasty-app-{name}-deployment.yaml"));
            assert_eq!(doc["metadata"]["annotations"]["pm/process-type"], *name);
            let container = &doc["spec"]["template"]["spec"]["containers"][0];
            let sent = container["command"][2].as_str().unwrap();
            assert_eq!(kubernetes_expand(sent), *command, "{name}");
        }
        let config = read("00-nasty-app-env-configmap.yaml");
        let secret = read("00-nasty-app-secret-secret.yaml");
        for (k, v) in &env {
            let (map, other) = if k == "DB_PASSWORD" {
                (&secret["stringData"], &config["data"])
            } else {
                (&config["data"], &secret["stringData"])
            };
            assert_eq!(map[k], *v, "{k}");
            assert!(other.get(k).is_none(), "{k}");
        }
    };
    check(&read_ours);
    if let Some(read) = validate_yaml("kubernetes", &dir) {
        check(&|name: &str| read[name][0].clone());
    }
}

/// What `pm export` writes, `pm audit` reads back as the app it came from:
/// the nasty commands and env are in parity in every format.
#[test]
fn nasty_exports_are_in_parity_with_the_app() {
    let app = nasty();
    for format in ["systemd", "compose", "kubernetes"] {
        let mut args = vec![format, format, "--app", "nasty"];
        if format != "systemd" {
            args.extend(["--image", "img:1"]);
        }
        export(&app, &args).assert_ok();
        let out = app.run(&["audit", "--against", format]);
        assert_eq!(out.assert_ok(), "in parity: no drift found\n", "{format}");
    }
}

// --- Determinism, --force, formation, names, errors. ---

#[test]
fn exports_are_deterministic() {
    let app = shop();
    for (format, extra) in [
        ("systemd", vec![]),
        ("compose", vec!["--image", "x:1"]),
        ("kubernetes", vec!["--image", "x:1"]),
    ] {
        let mut args = vec![format, "out"];
        args.extend(&extra);
        export(&app, &args).assert_ok();
        let first = files(&app.path().join("out"));
        args.push("--force");
        export(&app, &args).assert_ok();
        assert_eq!(files(&app.path().join("out")), first, "{format}");
        fs::remove_dir_all(app.path().join("out")).unwrap();
    }
}

#[test]
fn existing_files_are_kept_without_force() {
    let app = shop();
    export(&app, &["compose", "out", "--image", "x:1"]).assert_ok();
    let before = files(&app.path().join("out"));
    export(&app, &["compose", "out", "--image", "y:2"]).assert_error(
        1,
        "pm: out/compose.yaml: already exists (use --force to overwrite)\n",
    );
    assert_eq!(files(&app.path().join("out")), before);
    // Nothing at all is written when one file is in the way.
    app.file("sd/app.target", "mine\n");
    let r = export(&app, &["systemd", "sd", "--app", "app"]);
    r.assert_error(
        1,
        "pm: sd/app.target: already exists (use --force to overwrite)\n",
    );
    assert_eq!(
        files(&app.path().join("sd"))
            .into_keys()
            .collect::<Vec<_>>(),
        ["app.target"]
    );
}

#[test]
fn force_overwrites_and_removes_stale_files() {
    let app = shop();
    export(
        &app,
        &["kubernetes", "out", "--app", "shop", "--image", "x:1"],
    )
    .assert_ok();
    app.file("out/notes.txt", "not pm's\n");
    // The worker type disappears: its Deployment is stale.
    app.file(
        "Procfile",
        "release: bin/migrate\nweb: bundle exec puma -p $PORT\n",
    );
    app.file("pm.toml", "");
    export(
        &app,
        &["kubernetes", "out", "--app", "shop", "--image", "x:2"],
    )
    .assert_error(
        1,
        "pm: out/00-shop-env-configmap.yaml: already exists (use --force to overwrite)\n",
    );
    export(
        &app,
        &[
            "kubernetes",
            "out",
            "--app",
            "shop",
            "--image",
            "x:2",
            "--force",
        ],
    )
    .assert_ok();
    let got = files(&app.path().join("out"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        [
            ".pm-export.json",
            "00-shop-env-configmap.yaml",
            "00-shop-secret-secret.yaml",
            "00-shop-web-service.yaml",
            "10-shop-release-bce9cb04e4-job.yaml",
            "20-shop-web-deployment.yaml",
            "notes.txt",
        ]
    );
    assert!(got["20-shop-web-deployment.yaml"].contains("image: x:2\n"));
    // Another app's export in the same directory: its files are not ours to remove.
    export(
        &app,
        &[
            "kubernetes",
            "out",
            "--app",
            "other",
            "--image",
            "x:2",
            "--force",
        ],
    )
    .assert_ok();
    let got = files(&app.path().join("out"));
    assert!(got.contains_key("20-shop-web-deployment.yaml"));
    assert!(got.contains_key("20-other-web-deployment.yaml"));
    assert!(got[".pm-export.json"].contains("\"app\": \"other\""));
}

#[test]
fn force_replaces_a_symlink_instead_of_writing_through_it() {
    let app = shop();
    let elsewhere = app.file("elsewhere.txt", "keep me\n");
    fs::create_dir(app.path().join("out")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, app.path().join("out/compose.yaml")).unwrap();
    export(&app, &["compose", "out", "--image", "x:1", "--force"]).assert_ok();
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "keep me\n");
    let meta = fs::symlink_metadata(app.path().join("out/compose.yaml")).unwrap();
    assert!(meta.is_file());
    assert_eq!(
        files(&app.path().join("out"))
            .into_keys()
            .collect::<Vec<_>>(),
        [".pm-export.json", "compose.yaml"]
    );
}

#[test]
fn a_type_left_out_of_the_formation_is_exported_stopped() {
    let app = shop();
    let args = ["-m", "web=1,worker=0,release=0"];
    let mut a = vec!["systemd", "sd", "--app", "shop"];
    a.extend(args);
    export(&app, &a).assert_ok();
    let sd = files(&app.path().join("sd"));
    assert!(sd.contains_key("shop-worker@.service"));
    assert!(sd.contains_key("shop-release.service"));
    assert_eq!(
        sd["shop.target"],
        "[Unit]\nDescription=shop\nWants=shop-web@5100.service\nWants=shop-web-balancer.service\n\n[Install]\nWantedBy=multi-user.target\n"
    );
    assert!(!sd["shop-web@.service"].contains("shop-release.service"));
    verify_systemd(&app.path().join("sd"), "shop");

    let mut a = vec!["compose", "c", "--app", "shop", "--image", "x:1"];
    a.extend(args);
    export(&app, &a).assert_ok();
    let c: Value =
        serde_saphyr::from_str(&fs::read_to_string(app.path().join("c/compose.yaml")).unwrap())
            .unwrap();
    assert_eq!(c["services"]["worker"]["deploy"]["replicas"], 0);
    assert_eq!(c["services"]["release"]["deploy"]["replicas"], 0);
    assert!(c["services"]["web"].get("depends_on").is_none());
    validate_yaml("compose", &app.path().join("c"));

    let mut a = vec!["kubernetes", "k", "--app", "shop", "--image", "x:1"];
    a.extend(args);
    export(&app, &a).assert_ok();
    let k = files(&app.path().join("k"));
    let worker: Value = serde_saphyr::from_str(&k["20-shop-worker-deployment.yaml"]).unwrap();
    assert_eq!(worker["spec"]["replicas"], 0);
    // A release that does not run is not a step of the deploy.
    let job = k
        .iter()
        .find(|(n, _)| n.starts_with("00-shop-release-") && n.ends_with("-job.yaml"))
        .map(|(_, text)| text)
        .unwrap();
    let job: Value = serde_saphyr::from_str(job).unwrap();
    assert_eq!(job["spec"]["suspend"], true);
    validate_yaml("kubernetes", &app.path().join("k"));
}

#[test]
fn what_the_release_depends_on_does_not_wait_for_it() {
    // pm start runs db, then release, then web: the exports must not make
    // db wait for a release that waits for db.
    let app = App::with_procfile("db: serve-db\nrelease: migrate\nweb: serve\n");
    app.file(
        "pm.toml",
        "[process.release]\ndepends_on = [\"db\"]\n[process.db.ready]\ntcp = true\n",
    );
    export(&app, &["systemd", "sd", "--app", "a"]).assert_ok();
    let db = fs::read_to_string(app.path().join("sd/a-db@.service")).unwrap();
    assert!(!db.contains("a-release.service"), "{db}");
    let release = fs::read_to_string(app.path().join("sd/a-release.service")).unwrap();
    assert!(release.contains("After=a-db@5000.service"), "{release}");
    let web = fs::read_to_string(app.path().join("sd/a-web@.service")).unwrap();
    assert!(web.contains("After=a-release.service"), "{web}");
    verify_systemd(&app.path().join("sd"), "a");
    export(&app, &["compose", "c", "--app", "a", "--image", "i"]).assert_ok();
    let c: Value =
        serde_saphyr::from_str(&fs::read_to_string(app.path().join("c/compose.yaml")).unwrap())
            .unwrap();
    assert!(c["services"]["db"].get("depends_on").is_none(), "{c:#}");
    assert_eq!(
        c["services"]["release"]["depends_on"],
        serde_json::json!({"db": {"condition": "service_healthy"}})
    );
    assert_eq!(
        c["services"]["web"]["depends_on"],
        serde_json::json!({"release": {"condition": "service_completed_successfully"}})
    );
    validate_yaml("compose", &app.path().join("c"));
}

#[test]
fn an_explicit_dependency_on_release() {
    let app = App::with_procfile("release: migrate\nweb: serve\n");
    app.file("pm.toml", "[process.web]\ndepends_on = [\"release\"]\n");
    export(&app, &["systemd", "sd", "--app", "a"]).assert_ok();
    let unit = fs::read_to_string(app.path().join("sd/a-web@.service")).unwrap();
    assert!(
        unit.contains("\nRequires=a-release.service\nAfter=a-release.service\n"),
        "{unit}"
    );
    verify_systemd(&app.path().join("sd"), "a");
    export(&app, &["compose", "c", "--app", "a", "--image", "i"]).assert_ok();
    let c: Value =
        serde_saphyr::from_str(&fs::read_to_string(app.path().join("c/compose.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        c["services"]["web"]["depends_on"],
        serde_json::json!({"release": {"condition": "service_completed_successfully"}})
    );
    validate_yaml("compose", &app.path().join("c"));
}

#[test]
fn formation_comes_from_pm_toml_by_default() {
    let app = App::with_procfile("web: serve\nworker: work\n");
    app.file(
        "pm.toml",
        "[defaults]\nformation = \"web=3,worker=0\"\nport = 6000\n",
    );
    export(&app, &["systemd", "out", "--app", "a"]).assert_ok();
    let target = fs::read_to_string(app.path().join("out/a.target")).unwrap();
    assert_eq!(
        target,
        "[Unit]\nDescription=a\nWants=a-web@6000.service\nWants=a-web@6001.service\nWants=a-web@6002.service\n\n[Install]\nWantedBy=multi-user.target\n"
    );
}

#[test]
fn the_app_name_defaults_to_the_root_directory() {
    let app = App::new();
    app.file("My Shop!/Procfile", "web: serve\n");
    export(&app, &["systemd", "sd", "-f", "My Shop!/Procfile"]).assert_ok();
    assert!(app.path().join("sd/My-Shop.target").exists());
    export(
        &app,
        &["kubernetes", "k", "-f", "My Shop!/Procfile", "--image", "i"],
    )
    .assert_ok();
    assert!(app.path().join("k/20-my-shop-web-deployment.yaml").exists());
    export(
        &app,
        &["compose", "c", "-f", "My Shop!/Procfile", "--image", "i"],
    )
    .assert_ok();
    let c = fs::read_to_string(app.path().join("c/compose.yaml")).unwrap();
    assert!(c.starts_with("name: my-shop\n"), "{c}");
}

#[test]
fn errors_are_one_line() {
    let app = shop();
    export(&app, &["compose", "out"]).assert_error(
        1,
        "pm: pm export compose: --image IMAGE is required (the container image every service runs)\n",
    );
    export(&app, &["kubernetes", "out"]).assert_error(
        1,
        "pm: pm export kubernetes: --image IMAGE is required (the container image every service runs)\n",
    );
    app.file("afile", "x\n");
    export(&app, &["systemd", "afile"]).assert_error(1, "pm: afile: not a directory\n");
    export(&app, &["systemd", "out", "--app", "@@@"]).assert_error(
        1,
        "pm: --app \"@@@\": no character valid in a systemd unit name remains\n",
    );
    export(&app, &["systemd", "out", "nope=1"]).assert_error(
        1,
        "pm: unknown process type \"nope\" in formation (known: release, web, worker)\n",
    );
    export(&app, &["systemd", "out", "--user", "a\nb"]).assert_error(
        1,
        "pm: --user \"a\\nb\" cannot be written in a systemd unit (line break, control character or blank at either end)\n",
    );
    let clash = App::with_procfile("web_1: a\nweb-1: b\n");
    export(&clash, &["kubernetes", "out", "--app", "x", "--image", "i"]).assert_error(
        1,
        "pm: Procfile: process types \"web_1\" and \"web-1\" both give the address variables PM_WEB_1_HOST and PM_WEB_1_PORT (rename one)\n",
    );
    assert!(!app.path().join("out").exists());
}

// --- Addresses per engine, balancers, ordering (SPEC §6 "Exports run"). ---

/// A store, a web reaching it, a worker depending on both.
fn reaching() -> App {
    let app = App::with_procfile(
        "store: redis-server --port $PORT\nweb: serve\nworker: work\nrelease: migrate\n",
    );
    app.file(
        "pm.toml",
        r#"[process.store.ready]
exec = "redis-cli -p $PORT ping"
[process.web]
proxy = 8080
depends_on = ["store"]
[process.web.ready]
http = "/up"
[process.worker]
depends_on = ["store", "web"]
[process.release]
depends_on = ["store"]
"#,
    );
    app.file(
        ".env",
        "REDIS_URL=redis://${PM_STORE_HOST}:${PM_STORE_PORT}/0\nSITE=http://$PM_WEB_HOST:$PM_WEB_PORT/\nOLD_URL=redis://127.0.0.1:5000/1\nBROWSER=http://localhost:8080\n",
    );
    app
}

#[test]
fn each_engine_writes_its_own_addresses() {
    let app = reaching();
    let out = export(&app, &["systemd", "sd", "--app", "a", "web=2"]);
    // On this machine a loopback address is the right one: no warning.
    assert_eq!(out.assert_ok(), "");
    assert_eq!(out.stderr, "");
    let env = systemd_env_file(&fs::read_to_string(app.path().join("sd/a.env")).unwrap());
    assert_eq!(env["REDIS_URL"], "redis://127.0.0.1:5000/0");
    assert_eq!(env["SITE"], "http://127.0.0.1:8080/");
    assert_eq!(env["PM_LISTEN_HOST"], "127.0.0.1");
    verify_systemd(&app.path().join("sd"), "a");

    let warnings = "pm: warning: OLD_URL reaches process type \"store\" at a loopback address written by hand, which is not rewritten and reaches nothing in ENGINE; use ${PM_STORE_HOST}:${PM_STORE_PORT} instead\n\
                    pm: warning: BROWSER reaches process type \"web\" at a loopback address written by hand, which is not rewritten and reaches nothing in ENGINE; use ${PM_WEB_HOST}:${PM_WEB_PORT} instead\n";
    let out = export(
        &app,
        &["compose", "c", "--app", "a", "--image", "i", "web=2"],
    );
    out.assert_ok();
    assert_eq!(out.stderr, warnings.replace("ENGINE", "compose"));
    let c: Value =
        serde_saphyr::from_str(&fs::read_to_string(app.path().join("c/compose.yaml")).unwrap())
            .unwrap();
    let web = &c["services"]["web"];
    assert_eq!(web["environment"]["REDIS_URL"], "redis://store:5000/0");
    assert_eq!(web["environment"]["SITE"], "http://web-balancer:8080/");
    // Never rewritten: it may be meant for a browser.
    assert_eq!(web["environment"]["OLD_URL"], "redis://127.0.0.1:5000/1");
    assert_eq!(web["environment"]["PM_LISTEN_HOST"], "0.0.0.0");
    // Two replicas, no fixed host port: the balancer publishes the proxy port.
    assert!(web.get("ports").is_none(), "{web:#}");
    assert_eq!(
        c["services"]["web-balancer"]["command"],
        serde_json::json!([
            "pm",
            "balance",
            "0.0.0.0:8080",
            "web:5100",
            "--http",
            "/up",
            "--interval",
            "1",
            "--timeout",
            "1"
        ])
    );
    assert_eq!(
        c["services"]["web-balancer"]["ports"],
        serde_json::json!([{"host_ip": "127.0.0.1", "published": "8080", "target": 8080}])
    );
    validate_yaml("compose", &app.path().join("c"));

    let out = export(
        &app,
        &["kubernetes", "k", "--app", "a", "--image", "i", "web=2"],
    );
    out.assert_ok();
    assert_eq!(out.stderr, warnings.replace("ENGINE", "kubernetes"));
    let k = files(&app.path().join("k"));
    let config: Value = serde_saphyr::from_str(&k["00-a-env-configmap.yaml"]).unwrap();
    assert_eq!(config["data"]["REDIS_URL"], "redis://a-store:5000/0");
    assert_eq!(config["data"]["SITE"], "http://a-web:8080/");
    assert_eq!(config["data"]["PM_LISTEN_HOST"], "0.0.0.0");
    // The release needs the store: the store's Deployment comes before it.
    assert!(k.contains_key("00-a-store-deployment.yaml"));
    assert!(k.keys().any(|n| n.starts_with("10-a-release-")));
    validate_yaml("kubernetes", &app.path().join("k"));
    kubernetes_addresses_are_services(
        &app.path().join("k"),
        "a",
        &[
            ("web", &["a-store:5000"]),
            ("release", &["a-store:5000"]),
            ("worker", &["a-store:5000", "a-web:8080"]),
        ],
    );
}

/// Every address an env value of a Kubernetes export uses (in its
/// ConfigMap or its Secret) is a Service of the export with that port, and
/// every workload has an init container per dependency, `expected`'s
/// (process type, the Services it waits for), probing that Service over the
/// network: a tcp connect, or an http GET for a type checked so; never an
/// exec check, which runs in the dependency's own pod only.
fn kubernetes_addresses_are_services(dir: &Path, app: &str, expected: &[(&str, &[&str])]) {
    let docs: Vec<Value> = files(dir)
        .iter()
        .filter(|(n, _)| n.ends_with(".yaml"))
        .map(|(_, text)| serde_saphyr::from_str(text).unwrap())
        .collect();
    let services: Vec<(String, u64)> = docs
        .iter()
        .filter(|d| d["kind"] == "Service")
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["spec"]["ports"][0]["port"].as_u64().unwrap(),
            )
        })
        .collect();
    let config = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    let values = config["data"]
        .as_object()
        .unwrap()
        .iter()
        .chain(secret["stringData"].as_object().unwrap());
    let mut used = 0;
    for (name, value) in values {
        let text = value.as_str().unwrap();
        for (service, port) in &services {
            if text.contains(&format!("{service}:{port}")) {
                used += 1;
            }
        }
        // A host:port of the app's own that is not a Service is an error.
        if let Some(rest) = text.split("://").nth(1) {
            let authority = rest.split('/').next().unwrap();
            let host_port = authority.rsplit('@').next().unwrap();
            let (host, port) = host_port.split_once(':').unwrap_or((host_port, ""));
            if host.starts_with(&format!("{app}-")) {
                assert!(
                    services
                        .iter()
                        .any(|(s, p)| s == host && p.to_string() == port),
                    "{name}={text} names no Service of the export: {services:?}"
                );
            }
        }
    }
    assert!(used >= 2, "{services:?}");
    let mut seen = Vec::new();
    for doc in docs
        .iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "Job")
    {
        let pod = &doc["spec"]["template"]["spec"];
        let ty = doc["metadata"]["annotations"]["pm/process-type"]
            .as_str()
            .unwrap();
        seen.push(ty.to_string());
        let containers = pod["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let init: Vec<String> = containers
            .iter()
            .map(|c| {
                let words: Vec<&str> = c["command"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w.as_str().unwrap())
                    .collect();
                assert_eq!(words[..2], ["pm", "probe"], "{ty}: {words:?}");
                assert!(!words.contains(&"--exec"), "{ty}: {words:?}");
                assert!(c.get("envFrom").is_none(), "{ty}: {c}");
                assert_eq!(c["image"], pod["containers"][0]["image"], "{ty}");
                words.last().unwrap().to_string()
            })
            .collect();
        let want = expected
            .iter()
            .find(|(t, _)| *t == ty)
            .map_or(&[][..], |(_, w)| w);
        assert_eq!(init, want, "{ty}");
        for target in &init {
            let (host, port) = target.split_once(':').unwrap();
            assert!(
                services
                    .iter()
                    .any(|(s, p)| s == host && p.to_string() == port),
                "{ty} waits for {target}, which is not a Service: {services:?}"
            );
        }
    }
    for (ty, _) in expected {
        assert!(
            seen.iter().any(|s| s == ty),
            "no workload for {ty}: {seen:?}"
        );
    }
}

/// A dependency checked with `exec` is waited for at its Service with a tcp
/// connect (the Service routes only to pods whose own exec readinessProbe
/// passes); an http check is asked over the Service too; the dependency's
/// pod keeps its exec probe.
#[test]
fn kubernetes_waits_for_an_exec_checked_dependency_at_its_service() {
    let app = reaching();
    export(
        &app,
        &["kubernetes", "k", "--app", "a", "--image", "i", "web=2"],
    )
    .assert_ok();
    let k = files(&app.path().join("k"));
    let read = |name: &str| -> Value { serde_saphyr::from_str(&k[name]).unwrap() };
    let web = read("20-a-web-deployment.yaml");
    assert_eq!(
        web["spec"]["template"]["spec"]["initContainers"],
        serde_json::json!([{
            "name": "wait-store",
            "image": "i",
            "command": ["pm", "probe", "--interval", "1", "--timeout", "1", "a-store:5000"],
        }])
    );
    let worker = read("20-a-worker-deployment.yaml");
    assert_eq!(
        worker["spec"]["template"]["spec"]["initContainers"][1]["command"],
        serde_json::json!([
            "pm",
            "probe",
            "--http",
            "/up",
            "--interval",
            "1",
            "--timeout",
            "1",
            "a-web:8080"
        ])
    );
    let store = read("00-a-store-deployment.yaml");
    assert_eq!(
        store["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"],
        serde_json::json!({"command": ["/bin/sh", "-c", "redis-cli -p $PORT ping"]})
    );
    validate_yaml("kubernetes", &app.path().join("k"));
}

/// An exec check is written the way the kubelet reads it: an argv list run
/// by `/bin/sh -c`, with Kubernetes' own `$(VAR)` expansion escaped, so the
/// shell gets `$VAR`, `$(cmd)` and the quotes exactly as pm.toml says.
#[test]
fn kubernetes_exec_checks_are_escaped_for_the_kubelet() {
    let check = r#"test "$(cat /tmp/ready)" = 'yes' && [ -n "$PORT" ] && echo $$ "$(HOME)" \\"#;
    let app = App::with_procfile("db: serve\nweb: serve\n");
    app.file(
        "pm.toml",
        &format!(
            "[process.db.ready]\nexec = '''{check}'''\n[process.db.live]\nexec = '''{check}'''\n[process.web]\ndepends_on = [\"db\"]\n"
        ),
    );
    export(&app, &["kubernetes", "k", "--app", "a", "--image", "i"]).assert_ok();
    let dir = app.path().join("k");
    let k = files(&dir);
    let ours: Value = serde_saphyr::from_str(&k["20-a-db-deployment.yaml"]).unwrap();
    let probes = |doc: &Value| {
        let c = &doc["spec"]["template"]["spec"]["containers"][0];
        for key in ["readinessProbe", "livenessProbe"] {
            let argv = c[key]["exec"]["command"].as_array().unwrap();
            assert_eq!(argv[..2], ["/bin/sh", "-c"], "{key}");
            let sent = argv[2].as_str().unwrap();
            assert!(sent.contains("$$(cat /tmp/ready)"), "{key}: {sent}");
            assert_eq!(kubernetes_expand(sent), check, "{key}");
        }
    };
    probes(&ours);
    if let Some(read) = validate_yaml("kubernetes", &dir) {
        probes(&read["20-a-db-deployment.yaml"][0]);
    }
    // pm audit reads the check back as it was written in pm.toml.
    let out = app.run(&["audit", "--against", "k"]);
    assert_eq!(out.assert_ok(), "in parity: no drift found\n");
}

/// The shop (examples/shop), exported to Kubernetes: valid, every address
/// in its env a Service of the export, and every dependency, PostgreSQL's
/// exec-checked db among them, an init container waiting at its Service.
#[test]
fn the_shop_exports_to_kubernetes_with_services_for_its_addresses() {
    let app = crate::examples::example("shop");
    export(
        &app,
        &["kubernetes", "k", "--app", "shop", "--image", "shop:1"],
    )
    .assert_ok();
    let dir = app.path().join("k");
    validate_yaml("kubernetes", &dir);
    let both: &[&str] = &["shop-store:5000", "shop-db:5100"];
    kubernetes_addresses_are_services(
        &dir,
        "shop",
        &[
            ("release", both),
            ("web", both),
            ("worker", both),
            ("clock", &["shop-store:5000"]),
        ],
    );
    let k = files(&dir);
    let db: Value = serde_saphyr::from_str(&k["00-shop-db-deployment.yaml"]).unwrap();
    assert_eq!(
        db["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"],
        serde_json::json!([
            "/bin/sh",
            "-c",
            r#"pg_isready -q -h "$PWD/var/run" -p "$PORT""#
        ])
    );
    let web: Value = serde_saphyr::from_str(&k["20-shop-web-deployment.yaml"]).unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["initContainers"][1]["command"],
        serde_json::json!([
            "pm",
            "probe",
            "--interval",
            "0.5",
            "--timeout",
            "2",
            "shop-db:5100"
        ])
    );
}

#[test]
fn systemd_waits_for_readiness_and_balances_the_proxy() {
    let app = reaching();
    export(
        &app,
        &[
            "systemd",
            "sd",
            "--app",
            "a",
            "web=2",
            "--pm-path",
            "/usr/local/bin/pm",
        ],
    )
    .assert_ok();
    let sd = files(&app.path().join("sd"));
    let worker = &sd["a-worker@.service"];
    assert!(
        worker.contains(
            "\nExecStartPre=/usr/local/bin/pm probe --exec 'redis-cli -p $$PORT ping' --interval 1 --timeout 1 127.0.0.1:5000\n\
             ExecStartPre=/usr/local/bin/pm probe --http /up --interval 1 --timeout 1 127.0.0.1:5100 127.0.0.1:5101\n\
             ExecStart="
        ),
        "{worker}"
    );
    let release = &sd["a-release.service"];
    assert!(
        release.contains("\nExecStartPre=/usr/local/bin/pm probe --exec"),
        "{release}"
    );
    assert!(
        sd["a-web-balancer.service"].contains(
            "\nExecStart=/usr/local/bin/pm balance 127.0.0.1:8080 127.0.0.1:5100 127.0.0.1:5101 --http /up --interval 1 --timeout 1\n"
        ),
        "{}",
        sd["a-web-balancer.service"]
    );
    export(&app, &["systemd", "x", "--pm-path", "pm"]).assert_error(
        1,
        "pm: --pm-path pm: not an absolute path (systemd runs it from any directory)\n",
    );
    export(&app, &["compose", "x", "--image", "i", "--pm-path", "/pm"]).assert_error(
        1,
        "pm: pm export compose: --pm-path is for systemd (containers find pm on the image's PATH)\n",
    );
}

#[test]
fn audit_reads_balancers_and_init_containers_back_in_parity() {
    let app = reaching();
    for format in ["systemd", "compose", "kubernetes"] {
        let mut args = vec![format, format, "--app", "a"];
        if format != "systemd" {
            args.extend(["--image", "img:1"]);
        }
        export(&app, &args).assert_ok();
        let out = app.run(&["audit", "--against", format]);
        let text = out.assert_ok();
        // Every engine carries the readiness checks (systemd: `pm probe`
        // before the units that wait, and the balancer's check); only the
        // addresses written by hand in .env are reported, as warnings.
        assert_eq!(
            text,
            "\
addresses written by hand
  NAME               REACHES  USE                                FILES
  OLD_URL (warning)  store    ${PM_STORE_HOST}:${PM_STORE_PORT}  .env:3
  BROWSER (warning)  web      ${PM_WEB_HOST}:${PM_WEB_PORT}      .env:4

in parity, with 2 warnings (not drift; --strict makes them fail)
",
            "{format}"
        );
        // The balancer is no process type of its own.
        assert!(!text.contains("balance"), "{format}: {text}");
    }
}
