//! The bundled examples, run as a user would run them: `pm check` on each,
//! and the shop (examples/shop) live, from its store to a processed order.

use std::fs;
use std::path::Path;

use crate::harness::*;

/// A copy of `examples/NAME` in a temp dir, so a test never writes into the
/// repository (sockets, bytecode) and can add files of its own.
fn example(name: &str) -> App {
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
        if name == "__pycache__" || name == ".pm.sock" || name == "out" {
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
        "valid procfile detected (store, release, web, worker, clock)\n\
         Procfile: 5 process types\n\
         env files: .env (7 variables)\n\
         \x20 store    x1  port 5000        exec bin/store\n\
         \x20 release  x1  port 5100        exec python3 -u app/release.py\n\
         \x20 web      x2  ports 5200-5201  exec python3 -u app/web.py\n\
         \x20 worker   x2  ports 5300-5301  exec python3 -u app/worker.py\n\
         \x20 clock    x1  port 5400        exec python3 -u app/clock.py\n\
         addresses (PM_<TYPE>_HOST:PM_<TYPE>_PORT):\n\
         \x20 store    127.0.0.1:5000\n\
         \x20 release  127.0.0.1:5100\n\
         \x20 web      127.0.0.1:8080 (proxy)\n\
         \x20 worker   127.0.0.1:5300\n\
         \x20 clock    127.0.0.1:5400\n"
    );
}

#[test]
fn shop_checks_with_the_readme_formation_and_production_env() {
    let app = example("shop");
    // The README's `pm start all=1 web=2 worker=3`, with production's env.
    let out = app.run(&[
        "check",
        "-e",
        ".env.production",
        "all=1",
        "web=2",
        "worker=3",
    ]);
    let stdout = out.assert_ok();
    assert!(
        stdout.contains("env files: .env.production (7 variables)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  store    x1  port 5000 ")
            && stdout.contains("  web      x2  ports 5200-5201 ")
            && stdout.contains("  worker   x3  ports 5300-5302 ")
            && stdout.contains("  clock    x1  port 5400 "),
        "{stdout}"
    );
}

#[test]
fn shop_env_files_define_the_same_variables() {
    // The drift the README's audit walkthrough shows is in the values
    // (CACHE_URL's kind), never a variable missing on one side.
    let app = example("shop");
    let names = |file: &str| -> Vec<String> {
        let text = fs::read_to_string(app.path().join(file)).unwrap();
        let mut names: Vec<String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
            .map(|l| l.split('=').next().unwrap().trim().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(".env"), names(".env.production"));
    let dev = fs::read_to_string(app.path().join(".env")).unwrap();
    let prod = fs::read_to_string(app.path().join(".env.production")).unwrap();
    assert!(dev.contains("\nCACHE_URL=memory://\n"), "{dev}");
    assert!(
        prod.contains("\nCACHE_URL=redis://:s3cr3t@redis.internal:6379/1\n"),
        "{prod}"
    );
}

/// One HTTP/1.0 request on 127.0.0.1:PORT: (status, head, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = http_exchange(port, &request).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

#[test]
fn shop_runs_an_order_from_web_through_the_store_to_a_worker() {
    let app = example("shop");
    // The store (P) and web.1 and web.2 (P+200, P+201) can listen; the
    // balancer moves to the other free port.
    let (base, proxy) = free_ports(&[0, 200, 201]);
    let (web1, web2) = (base + 200, base + 201);
    // The store moves with the base port, so REDIS_URL must too; STORE
    // forces the stand-in, so the test does not depend on redis-server.
    app.file(
        "test.env",
        &format!(
            "REDIS_URL=redis://127.0.0.1:{base}/0\nSTORE=standin\nCLOCK_INTERVAL=1\nWORK_SECONDS=0\n"
        ),
    );
    let settings = fs::read_to_string(app.path().join("pm.toml")).unwrap();
    assert!(settings.contains("\nproxy = 8080\n"));
    app.file(
        "pm.toml",
        &settings.replace("\nproxy = 8080\n", &format!("\nproxy = {proxy}\n")),
    );
    let port = base.to_string();
    let files = ".env,test.env";
    // As the README says: the store is not named, but web and worker depend
    // on it, so it starts first; release runs once it is ready; then the rest.
    let mut pm = app.start(&[
        "start",
        "--no-color",
        "-p",
        &port,
        "-e",
        files,
        "web=2",
        "worker=2",
        "clock=1",
    ]);
    pm.wait_for_line("store.1   | using the stand-in app/standin.py on", SECS(10));
    pm.wait_for_line("system    | store.1 is ready", SECS(10));
    pm.wait_for_line("system    | release.1 started with pid", SECS(10));
    pm.wait_for_line(
        &format!(
            "release.1 | loaded 36 products into redis://127.0.0.1:{base}/0: \
             catalog version 1, 36 stock levels set, 0 kept"
        ),
        SECS(10),
    );
    pm.wait_for_line(
        "release.1 completed, starting the other processes",
        SECS(10),
    );
    assert!(
        pm.lines_with("web.1 started").is_empty(),
        "web started before the release completed"
    );
    // Idempotent: a second release keeps the stock levels it finds.
    let again = app.run(&["run", "-p", &port, "-e", files, "release"]);
    assert_eq!(
        again.assert_ok(),
        format!(
            "loaded 36 products into redis://127.0.0.1:{base}/0: \
             catalog version 2, 0 stock levels set, 36 kept\n"
        )
    );

    pm.wait_until_seen(
        &format!("web.1: Corner Tea Shop (dev) on http://127.0.0.1:{web1}"),
        SECS(10),
    );
    pm.wait_until_seen(
        &format!("web.2: Corner Tea Shop (dev) on http://127.0.0.1:{web2}"),
        SECS(10),
    );
    pm.wait_until_seen("web.1 is ready", SECS(10));
    pm.wait_until_seen("web.2 is ready", SECS(10));
    // Through the balancer: both instances serve.
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (status, head, _) = http(proxy, "GET", "/", "");
        assert_eq!(status, 200, "{head}");
        let by = head.split("\r\nX-Served-By: ").nth(1).unwrap();
        served.insert(by.split("\r\n").next().unwrap().to_string());
    }
    assert_eq!(
        served.into_iter().collect::<Vec<_>>(),
        ["web.1", "web.2"],
        "round robin over both web instances"
    );
    let (status, head, body) = http(web1, "GET", "/healthz", "");
    assert_eq!((status, body.as_str()), (200, "ok\n"), "{head}");
    assert!(head.contains("\r\nX-Served-By: web.1"), "{head}");

    let (status, _, body) = http(web2, "GET", "/", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Served by <b>web.2</b>"), "{body}");
    assert!(
        body.contains(
            "<td>TEA-003</td><td>Genmaicha</td><td>green</td><td>7.90 EUR / 100 g</td><td>60</td>"
        ),
        "{body}"
    );

    // An order through web.1: queued in the store, processed by a worker.
    let (status, _, body) = http(web1, "POST", "/orders", "sku=TEA-003&qty=2");
    assert_eq!(status, 202, "{body}");
    let receipt = body
        .strip_prefix("order 1 queued by web.1: ")
        .unwrap_or_else(|| panic!("{body}"))
        .trim_end()
        .to_string();
    assert!(receipt.starts_with("/orders/1?token="), "{receipt}");
    let done = pm.wait_until_seen("order 1 paid: 2 x Genmaicha, 15.80 EUR", SECS(10));
    let worker = done.split_whitespace().nth(1).unwrap().to_string();
    assert!(worker.starts_with("worker."), "{done}");
    assert_eq!(
        text_of(&done),
        format!("{worker}: order 1 paid: 2 x Genmaicha, 15.80 EUR")
    );
    let (status, _, body) = http(web2, "GET", &receipt, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!(
            "{{\"id\": 1, \"status\": \"paid\", \"detail\": \"2 x Genmaicha, 15.80 EUR\", \"by\": \"{worker}\"}}\n"
        )
    );
    let (status, _, _) = http(web2, "GET", "/orders/1?token=wrong", "");
    assert_eq!(status, 403);

    // Sold out: the worker refuses it, and nobody's stock goes negative.
    let (status, _, body) = http(web2, "POST", "/orders", "sku=TEA-002");
    assert_eq!(status, 202, "{body}");
    assert!(body.starts_with("order 2 queued by web.2: "), "{body}");
    pm.wait_until_seen("order 2 rejected: 1 x Gyokuro: out of stock", SECS(10));
    let (status, _, body) = http(web1, "POST", "/orders", "sku=nope");
    assert_eq!(
        (status, body.as_str()),
        (400, "expected sku=XXX-000 and qty=1..99\n")
    );

    // The clock schedules reports; a worker runs them over the same store.
    pm.wait_until_seen(
        "report: 1 order paid, 1 rejected, revenue 15.80 EUR",
        SECS(10),
    );

    let pids = numbers_after(&pm.seen, "started with pid ");
    assert_eq!(
        pids.len(),
        7,
        "store, release, web x2, worker x2, clock: {pids:?}"
    );
    pm.stop_ok(SECS(15));
    // Every process stopped cleanly on SIGTERM: exit code 0 each.
    let exits = pm.lines_with(" exited ");
    assert_eq!(exits.len(), 6, "{exits:#?}");
    assert!(
        exits.iter().all(|l| l.ends_with(" exited with code 0")),
        "{exits:#?}"
    );
    for name in ["web.1", "web.2", "clock.1"] {
        assert_eq!(
            pm.lines_with(&format!("| {name}: stopped")).len(),
            1,
            "{name}"
        );
    }
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived pm");
    }
    assert!(!app.path().join(".pm.sock").exists());
}
