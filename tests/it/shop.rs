//! The shop (examples/shop) on its real services, Redis and PostgreSQL, run
//! as its README runs it: an order from web through the queue in Redis to a
//! worker and into PostgreSQL; 50 orders, a rolling restart under load, the
//! store SIGKILLed and recovered, and a Ctrl-C that leaves nothing behind;
//! and the shop's own errors (a failed migration, a port that another
//! PostgreSQL holds), each in one line.
//!
//! They need redis-server, PostgreSQL (with psql) and the Python clients:
//! ci/services.sh installs the services, examples/shop/requirements.txt the
//! clients. Without them these tests fail, naming what is missing: they
//! never skip.

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::examples::example;
use crate::harness::*;

/// The env files every test starts the shop with: the shop's own, then
/// quicker settings (test.env).
const ENV: &str = ".env,test.env";

/// Panics, naming everything missing, unless the shop's services and
/// clients are installed.
fn require_services() {
    let mut missing = Vec::new();
    if !on_path("redis-server") {
        missing.push("redis-server (apt install redis-server)");
    }
    let debian = fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten()
                .any(|d| d.path().join("bin/postgres").is_file())
        })
        .unwrap_or(false);
    if !debian && !on_path("postgres") {
        missing.push("PostgreSQL (apt install postgresql)");
    }
    if !on_path("psql") {
        missing.push("psql (apt install postgresql-client)");
    }
    let clients = Command::new("python3")
        .args(["-c", "import redis, psycopg"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !clients {
        missing.push(
            "redis-py and psycopg for python3 (python3 -m pip install -r examples/shop/requirements.txt)",
        );
    }
    assert!(
        missing.is_empty(),
        "the shop needs {} (ci/services.sh installs the services)",
        missing.join(", ")
    );
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// A base port P for the shop (store P, db P+100, web P+300 to P+302;
/// release, worker and clock listen on nothing) and a port for the
/// balancer, all free and all below the kernel's range of ephemeral ports.
/// Thousands of connections come and go while the shop runs, and a
/// long-lived one (a worker's to PostgreSQL) that got a listening port of
/// ours as its own end would keep web from binding it. Other tests take
/// theirs from the ephemeral range (harness::free_ports).
fn shop_ports() -> (u16, u16) {
    // The bases handed out to this test run's shops, kept 400 apart.
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    assert!(low > 11000, "ephemeral ports start at {low}: no room below");
    let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut pick = std::process::id().wrapping_mul(7919) ^ nanos;
    let span = u32::from(low - 10000 - 400);
    for _ in 0..200 {
        // A multiplicative step walks the range without a random crate.
        pick = pick.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let base = 10000 + (pick >> 8) % span;
        let base = u16::try_from(base).unwrap();
        let mut taken = TAKEN.lock().unwrap();
        let apart = taken.iter().all(|&b: &u16| b.abs_diff(base) > 400);
        if apart
            && [0u16, 100, 200, 300, 301, 302, 350]
                .iter()
                .all(|d| free(base + d))
        {
            taken.push(base);
            return (base, base + 350);
        }
    }
    panic!("no free ports for the shop below {low}");
}

/// A copy of the shop in a temp dir, on its own ports.
struct Shop {
    app: App,
    base: u16,
    proxy: u16,
}

impl Shop {
    fn new() -> Shop {
        Shop::at(None)
    }

    /// A shop on base port `base` (else a free one), with its own balancer port.
    fn at(base: Option<u16>) -> Shop {
        require_services();
        let app = example("shop");
        // As root, PostgreSQL runs as the postgres user, which must reach
        // the app's var/: a temp dir is 0700.
        fs::set_permissions(app.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let (free, proxy) = shop_ports();
        let settings = fs::read_to_string(app.path().join("pm.toml")).unwrap();
        assert!(settings.contains("\nproxy = 8080\n"));
        app.file(
            "pm.toml",
            &settings.replace("\nproxy = 8080\n", &format!("\nproxy = {proxy}\n")),
        );
        app.file(
            "test.env",
            "WORK_SECONDS=0.02\nSEED_CUSTOMERS=40\nCLOCK_INTERVAL=1\n",
        );
        Shop {
            app,
            base: base.unwrap_or(free),
            proxy,
        }
    }

    fn start(&self, args: &[&str]) -> Running {
        let port = self.base.to_string();
        let mut all = vec!["start", "--no-color", "-p", &port, "-e", ENV];
        all.extend(args);
        self.app.start(&all)
    }

    /// `pm run ARGS` with the shop's env and ports.
    fn run(&self, command: &str) -> Finished {
        let port = self.base.to_string();
        self.app.run(&["run", "-p", &port, "-e", ENV, command])
    }

    /// One SQL query's result, through psql and the shop's DATABASE_URL.
    fn sql(&self, query: &str) -> String {
        let out = self.run(&format!(
            "psql -X -q -A -t -v ON_ERROR_STOP=1 \"$DATABASE_URL\" -c \"{query}\""
        ));
        out.assert_ok().trim().to_string()
    }

    /// How many of these orders a worker has settled (paid or rejected).
    fn settled(&self, ids: &[i64]) -> usize {
        if ids.is_empty() {
            return 0;
        }
        let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        self.sql(&format!(
            "SELECT count(*) FROM orders WHERE status <> 'queued' AND id IN ({})",
            list.join(",")
        ))
        .parse()
        .unwrap()
    }

    /// Waits until a worker settled every one of these orders.
    #[track_caller]
    fn wait_settled(&self, ids: &[i64], limit: Duration) {
        wait_until(
            limit,
            &format!("{} orders settled", ids.len()),
            || self.settled(ids),
            |&n| n == ids.len(),
        );
    }

    fn ps(&self) -> Vec<serde_json::Value> {
        let out = self.app.run(&["ps", "--json"]);
        serde_json::from_str(out.assert_ok()).expect("json")
    }

    fn pid_of(&self, name: &str) -> i32 {
        let list = self.ps();
        let entry = list
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list:?}"));
        entry["pid"].as_i64().unwrap() as i32
    }

    /// Processes still running in the app's directory (PostgreSQL's all
    /// run in its data directory), as "pid command".
    fn processes_inside(&self) -> Vec<String> {
        let root = fs::canonicalize(self.app.path()).unwrap();
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(pid) = name.parse::<i32>() else {
                continue;
            };
            let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd")) else {
                continue;
            };
            if cwd.starts_with(&root) && alive(pid) {
                let cmd = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                found.push(format!("{pid} {}", cmd.replace('\0', " ")));
            }
        }
        found
    }
}

/// One HTTP/1.0 request on 127.0.0.1:PORT: (status, head, body), or why not.
fn request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String, String), String> {
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = http_exchange(port, &request)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: no answer: {response:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: bad status line: {head:?}"))?;
    Ok((status, head.to_string(), body.to_string()))
}

#[track_caller]
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String, String) {
    request(port, method, path, body).unwrap()
}

/// The id of an accepted order (202 `order ID queued by web.N: RECEIPT`).
fn order_id(answer: &str) -> Option<i64> {
    answer
        .strip_prefix("order ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Places an order through `port`: its id, once web accepted it.
#[track_caller]
fn place(port: u16, form: &str) -> i64 {
    let (status, _, body) = http(port, "POST", "/orders", form);
    assert_eq!(status, 202, "{body}");
    order_id(&body).unwrap_or_else(|| panic!("{body}"))
}

fn served_by(head: &str) -> String {
    let by = head.split("\r\nX-Served-By: ").nth(1).unwrap();
    by.split("\r\n").next().unwrap().to_string()
}

#[test]
fn shop_takes_an_order_from_web_through_redis_to_a_worker_and_postgres() {
    let shop = Shop::new();
    let (base, proxy) = (shop.base, shop.proxy);
    let (web1, web2) = (base + 300, base + 301);
    // The README's start: the services are not named, but release, web and
    // worker depend on them, so they start first (in parallel), release runs
    // once both are ready, then the rest.
    let mut pm = shop.start(&["web=2", "worker=2", "clock=1"]);
    pm.wait_for_line(&format!("balancing web on 127.0.0.1:{proxy}"), SECS(10));
    pm.wait_until_seen("system    | store.1 is ready", SECS(30));
    // No data directory yet: the first start makes one.
    pm.wait_until_seen(
        "db.1      | bin/db: first start: creating the PostgreSQL ",
        SECS(30),
    );
    pm.wait_until_seen("system    | db.1 is ready", SECS(90));
    for file in [
        "001_catalog.sql",
        "002_customers_and_orders.sql",
        "003_sales_reports.sql",
        "004_seed_log.sql",
    ] {
        pm.wait_until_seen(
            &format!("release.1 | applied db/migrations/{file}"),
            SECS(30),
        );
    }
    pm.wait_until_seen(
        "release.1 | migrations: up to date (4 applied, 4 of them now)",
        SECS(10),
    );
    pm.wait_until_seen(
        "release.1 | catalog: 36 products, 36 stock levels set, 0 kept",
        SECS(10),
    );
    let demo = pm.wait_until_seen("release.1 | demo data: 40 customers and ", SECS(20));
    let past: i64 = numbers_after(std::slice::from_ref(&demo), "customers and ")[0].into();
    assert!(
        demo.ends_with(&format!(
            "demo data: 40 customers and {past} past orders, generated"
        )),
        "{demo}"
    );
    let completed = pm.wait_until_seen(
        "release.1 completed, starting the other processes",
        SECS(20),
    );
    let web_started = pm.wait_until_seen("system    | web.1 started with pid", SECS(10));
    assert!(
        pm.index_of(&completed) < pm.index_of(&web_started),
        "web started before the release completed"
    );
    // Idempotent: a second release applies nothing, keeps the stock levels
    // and the demo data it finds.
    assert_eq!(
        shop.run("release").assert_ok(),
        format!(
            "migrations: up to date (4 applied, 0 of them now)\n\
             catalog: 36 products, 0 stock levels set, 36 kept\n\
             demo data: already loaded (40 customers, {past} past orders)\n"
        )
    );
    assert_eq!(shop.sql("SELECT count(*) FROM customers"), "40");
    assert_eq!(
        shop.sql("SELECT count(*) FROM orders WHERE placed_by = 'demo'"),
        past.to_string()
    );

    pm.wait_until_seen(
        &format!("web.1: Corner Tea Shop (dev) on http://127.0.0.1:{web1}"),
        SECS(20),
    );
    pm.wait_until_seen(
        &format!("web.2: Corner Tea Shop (dev) on http://127.0.0.1:{web2}"),
        SECS(20),
    );
    pm.wait_until_seen("web.1 is ready", SECS(20));
    pm.wait_until_seen("web.2 is ready", SECS(20));
    // Through the balancer: both instances serve.
    let mut served = BTreeSet::new();
    for _ in 0..4 {
        let (status, head, _) = http(proxy, "GET", "/", "");
        assert_eq!(status, 200, "{head}");
        served.insert(served_by(&head));
    }
    assert_eq!(
        served.into_iter().collect::<Vec<_>>(),
        ["web.1", "web.2"],
        "round robin over both web instances"
    );
    let (status, head, body) = http(web1, "GET", "/healthz", "");
    assert_eq!((status, body.as_str()), (200, "ok\n"), "{head}");
    assert_eq!(served_by(&head), "web.1");

    let genmaicha = |stock: u32| {
        format!(
            "<td>TEA-003</td><td>Genmaicha</td><td>green</td><td>7.90 EUR / 100 g</td><td>{stock}</td>"
        )
    };
    let (status, _, body) = http(web2, "GET", "/", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Served by <b>web.2</b>"), "{body}");
    assert!(body.contains(&genmaicha(60)), "{body}");

    // An order through web.1: saved in PostgreSQL, queued in Redis, settled
    // by a worker. Its id follows the demo orders'.
    let (status, _, body) = http(web1, "POST", "/orders", "sku=TEA-003&qty=2");
    assert_eq!(status, 202, "{body}");
    let first = past + 1;
    let receipt = body
        .strip_prefix(&format!("order {first} queued by web.1: "))
        .unwrap_or_else(|| panic!("{body}"))
        .trim_end()
        .to_string();
    assert!(
        receipt.starts_with(&format!("/orders/{first}?token=")),
        "{receipt}"
    );
    let done = pm.wait_until_seen(
        &format!("order {first} paid: 2 x Genmaicha, 15.80 EUR"),
        SECS(20),
    );
    let worker = done.split_whitespace().nth(1).unwrap().to_string();
    assert!(worker.starts_with("worker."), "{done}");
    assert_eq!(
        text_of(&done),
        format!("{worker}: order {first} paid: 2 x Genmaicha, 15.80 EUR")
    );
    let (status, _, body) = http(web2, "GET", &receipt, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!(
            "{{\"id\": {first}, \"status\": \"paid\", \"detail\": \"2 x Genmaicha, 15.80 EUR\", \"by\": \"{worker}\"}}\n"
        )
    );
    let (status, _, _) = http(web2, "GET", &format!("/orders/{first}?token=wrong"), "");
    assert_eq!(status, 403);
    // One cache for every instance, cleared by the worker: both show the
    // new stock at once (a cache per process would not).
    for port in [web1, web2] {
        let (_, _, body) = http(port, "GET", "/", "");
        assert!(body.contains(&genmaicha(58)), "{port}: {body}");
    }

    // Sold out: the worker refuses it, and nobody's stock goes negative.
    let (status, _, body) = http(web2, "POST", "/orders", "sku=TEA-002");
    assert_eq!(status, 202, "{body}");
    let second = first + 1;
    assert!(
        body.starts_with(&format!("order {second} queued by web.2: ")),
        "{body}"
    );
    pm.wait_until_seen(
        &format!("order {second} rejected: 1 x Gyokuro: out of stock"),
        SECS(20),
    );
    assert_eq!(
        shop.sql("SELECT stock FROM products WHERE sku = 'TEA-002'"),
        "0"
    );
    for (form, answer) in [
        (
            "sku=nope",
            "expected sku=XXX-000, qty=1..99 and optionally customer=ID\n",
        ),
        ("sku=TEA-999", "no such product\n"),
        ("sku=TEA-001&customer=999999", "no such customer\n"),
    ] {
        let (status, _, body) = http(web1, "POST", "/orders", form);
        assert_eq!((status, body.as_str()), (400, answer), "{form}");
    }

    // The clock schedules reports; a worker writes them from PostgreSQL.
    pm.wait_until_seen(
        "report: 1 order paid, 1 rejected, revenue 15.80 EUR in the last 24 hours",
        SECS(20),
    );
    // A demo customer's order.
    let third = place(proxy, "sku=TEA-001&customer=1");
    shop.wait_settled(&[third], SECS(20));
    assert_eq!(
        shop.sql(&format!(
            "SELECT customer_id, status, total_cents FROM orders WHERE id = {third}"
        )),
        "1|paid|1140"
    );
    pm.wait_until_seen(
        "report: 2 orders paid, 1 rejected, revenue 27.20 EUR in the last 24 hours",
        SECS(20),
    );

    let pids = numbers_after(&pm.seen, "started with pid ");
    assert_eq!(
        pids.len(),
        8,
        "store, db, release, web x2, worker x2, clock: {pids:?}"
    );
    pm.signal(Signal::SIGTERM);
    let status = pm.wait_for_exit(SECS(30));
    assert_eq!(status.code(), Some(0), "{:#?}", pm.seen);
    // Every process stopped cleanly: exit code 0 each, PostgreSQL included.
    let exits: Vec<&String> = pm
        .lines_with(" exited ")
        .into_iter()
        .filter(|l| l.contains(" system    | "))
        .collect();
    assert_eq!(exits.len(), 7, "{exits:#?}");
    assert!(
        exits.iter().all(|l| l.ends_with(" exited with code 0")),
        "{exits:#?}"
    );
    for name in ["web.1", "web.2", "worker.1", "worker.2", "clock.1"] {
        assert_eq!(
            pm.lines_with(&format!("| {name}: stopped")).len(),
            1,
            "{name}"
        );
    }
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived pm");
    }
    assert_eq!(shop.processes_inside(), Vec::<String>::new());
    assert!(!shop.app.path().join(".pm.sock").exists());
}

/// Clients that keep using the shop through the balancer until stopped:
/// each loads the page, then places an order.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    orders: Arc<Mutex<Vec<i64>>>,
    log: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, clients: usize) -> Load {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            ok: Arc::new(AtomicUsize::new(0)),
            failed: Arc::new(AtomicUsize::new(0)),
            orders: Arc::new(Mutex::new(Vec::new())),
            log: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
        };
        let mut threads = Vec::new();
        for _ in 0..clients {
            let (stop, ok, failed) = (load.stop.clone(), load.ok.clone(), load.failed.clone());
            let (orders, log) = (load.orders.clone(), load.log.clone());
            threads.push(thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let page = request(port, "GET", "/", "");
                    let order = request(port, "POST", "/orders", "sku=GIFT-004");
                    for (what, answer) in [("GET /", page), ("POST /orders", order)] {
                        match answer {
                            Ok((200, _, _)) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok((202, _, body)) if order_id(&body).is_some() => {
                                ok.fetch_add(1, Ordering::SeqCst);
                                orders.lock().unwrap().push(order_id(&body).unwrap());
                            }
                            Ok((status, _, body)) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                log.lock().unwrap().push(format!("{what}: {status} {body}"));
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                log.lock().unwrap().push(format!("{what}: {e}"));
                            }
                        }
                    }
                }
            }));
        }
        Load { threads, ..load }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    /// Stops the clients: (requests answered, requests failed, orders
    /// placed, what failed).
    fn finish(self) -> (usize, usize, Vec<i64>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let orders = self.orders.lock().unwrap().clone();
        let log = self.log.lock().unwrap().clone();
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            orders,
            log,
        )
    }
}

fn uid_of(pid: i32) -> u32 {
    fs::metadata(format!("/proc/{pid}")).unwrap().uid()
}

#[test]
fn shop_under_load_rolls_web_recovers_from_losing_redis_and_stops_clean() {
    let shop = Shop::new();
    let proxy = shop.proxy;
    let mut pm = shop.start(&["web=2", "worker=3"]);
    pm.wait_until_seen("web.1 is ready", SECS(120));
    pm.wait_until_seen("web.2 is ready", SECS(30));

    // pm's pids are the services themselves (bin/store and bin/db exec
    // them; setpriv execs too), so its signals reach them.
    let store = shop.pid_of("store.1");
    let db = shop.pid_of("db.1");
    let comm = |pid: i32| fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm(store), "redis-server\n");
    assert_eq!(comm(db), "postgres\n");
    let postmaster = fs::read_to_string(shop.app.path().join("var/db/postmaster.pid")).unwrap();
    assert_eq!(postmaster.lines().next(), Some(db.to_string().as_str()));
    let data_owner = fs::metadata(shop.app.path().join("var/db")).unwrap().uid();
    assert_eq!(uid_of(db), data_owner);
    if nix::unistd::getuid().is_root() {
        assert_ne!(data_owner, 0, "PostgreSQL runs as root");
    }

    // 50 orders through the balancer, settled by the three workers.
    let skus = ["TEA-003", "TEA-010", "WARE-006", "GIFT-003", "TEA-002"];
    let started = Instant::now();
    let placed: Vec<i64> = (0..50)
        .map(|i| place(proxy, &format!("sku={}", skus[i % skus.len()])))
        .collect();
    shop.wait_settled(&placed, SECS(60));
    let settle_time = started.elapsed();
    let list: Vec<String> = placed.iter().map(|i| i.to_string()).collect();
    let by = shop.sql(&format!(
        "SELECT processed_by || '=' || count(*) FROM orders WHERE id IN ({}) GROUP BY processed_by ORDER BY 1",
        list.join(",")
    ));
    assert!(
        by.lines().all(|l| l.starts_with("worker.")),
        "settled by: {by}"
    );
    assert_eq!(
        shop.sql(&format!(
            "SELECT count(*) FROM orders WHERE id IN ({}) AND status = 'rejected'",
            list.join(",")
        )),
        "10",
        "TEA-002 is sold out: every fifth order"
    );

    // A rolling restart of web under load: no request fails.
    let web_before = [shop.pid_of("web.1"), shop.pid_of("web.2")];
    let load = Load::start(proxy, 2);
    wait_until(
        SECS(20),
        "10 answers through the balancer",
        || load.ok(),
        |&n| n >= 10,
    );
    // pm restart returns once the roll is done: each instance restarts in
    // a few seconds, more on a busy machine.
    let restart = run_with_deadline(&mut shop.app.cmd(&["restart", "web"]), SECS(120));
    assert_eq!(
        Finished::from(restart).assert_ok(),
        "restarting web.1, web.2 (balanced instances one at a time, each once the one before is ready)\n"
    );
    pm.wait_for_line(
        "rolling restart of web: web.1, web.2, one at a time",
        SECS(10),
    );
    for n in 1..=2 {
        pm.wait_for_line(&format!("web.{n} exited with code 0"), SECS(30));
        pm.wait_for_line(&format!("web.{n} is ready"), SECS(30));
    }
    let during = load.ok();
    wait_until(
        SECS(20),
        "10 more answers after the roll",
        || load.ok(),
        |&n| n >= during + 10,
    );
    let (answered, failed, rolled_orders, log) = load.finish();
    assert_eq!(
        failed, 0,
        "failed requests during the rolling restart: {log:#?}"
    );
    let web_after = [shop.pid_of("web.1"), shop.pid_of("web.2")];
    assert!(
        web_before.iter().all(|p| !web_after.contains(p)),
        "{web_before:?} {web_after:?}"
    );
    shop.wait_settled(&rolled_orders, SECS(60));

    // SIGKILL the store: pm restarts it, and orders placed after it come
    // through (web saves them in PostgreSQL; the workers queue again what
    // the store lost).
    kill(Pid::from_raw(store), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    let mut after = Vec::new();
    let mut refused = 0;
    let mut recovery = None;
    let deadline = killed + SECS(60);
    while after.len() < 10 {
        assert!(
            Instant::now() < deadline,
            "{} orders accepted within 60 s of the store's SIGKILL ({refused} refused)",
            after.len()
        );
        match request(proxy, "POST", "/orders", "sku=GIFT-003") {
            Ok((202, _, body)) => after.push(order_id(&body).unwrap()),
            _ => {
                refused += 1;
                // The balancer has no ready instance yet: try again soon.
                thread::sleep(Duration::from_millis(20));
            }
        }
        if recovery.is_none() && !after.is_empty() && shop.settled(&after[..1]) == 1 {
            recovery = Some(killed.elapsed());
        }
    }
    shop.wait_settled(&after[..1], SECS(60));
    let recovery = recovery.unwrap_or_else(|| killed.elapsed());
    shop.wait_settled(&after, SECS(60));
    pm.wait_until_seen("store.1 killed by SIGKILL, restarting in", SECS(10));
    let list = shop.ps();
    let store_now = list.iter().find(|i| i["name"] == "store.1").unwrap();
    assert_ne!(store_now["pid"].as_i64(), Some(i64::from(store)));
    assert_eq!(store_now["restarts"], 1, "{list:?}");

    // Ctrl-C: everything stops, PostgreSQL with its fast shutdown.
    let pids = numbers_after(&pm.seen, "started with pid ");
    pm.signal(Signal::SIGINT);
    let status = pm.wait_for_exit(SECS(60));
    assert_eq!(status.code(), Some(0), "{:#?}", pm.seen);
    assert_eq!(pm.lines_with("db.1 exited with code 0").len(), 1);
    assert_eq!(pm.lines_with("store.1 exited with code 0").len(), 1);
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} outlived pm");
    }
    assert_eq!(shop.processes_inside(), Vec::<String>::new());
    assert!(!shop.app.path().join("var/db/postmaster.pid").exists());

    println!(
        "shop under load: 50 orders placed and settled in {:.1}s ({}); \
         rolling restart: {answered} requests answered, {failed} failed, {} orders placed and settled; \
         store SIGKILLed: first order placed after it settled {:.2}s later, {} orders came through ({refused} refused meanwhile)",
        settle_time.as_secs_f64(),
        by.replace('\n', " "),
        rolled_orders.len(),
        recovery.as_secs_f64(),
        after.len(),
    );
}

#[test]
fn shop_release_that_fails_a_migration_starts_nothing_else() {
    let shop = Shop::new();
    shop.app.file(
        "db/migrations/005_product_weight.sql",
        "ALTER TABLE products ADD COLUMN weight_g integer;\n\
         CREATE INDEX ON products (no_such_column);\n",
    );
    let mut pm = shop.start(&["web=2", "worker=3"]);
    let status = pm.wait_for_exit(SECS(120));
    assert_eq!(status.code(), Some(1), "{:#?}", pm.seen);
    pm.wait_until_seen(
        "release.1 | applied db/migrations/004_seed_log.sql",
        SECS(1),
    );
    let failed = pm.lines_with("release.1 | release failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(
        text_of(failed[0]),
        "release failed: db/migrations/005_product_weight.sql: column \"no_such_column\" does not exist (rolled back)"
    );
    assert_eq!(
        pm.lines_with("release.1 exited with code 1, release failed: starting nothing else")
            .len(),
        1
    );
    for name in ["web.1", "worker.1"] {
        assert!(
            pm.lines_with(&format!("{name} started")).is_empty(),
            "{name} started"
        );
    }
    for pid in numbers_after(&pm.seen, "started with pid ") {
        assert!(!alive(pid), "pid {pid} outlived pm");
    }
    assert_eq!(shop.processes_inside(), Vec::<String>::new());
}

#[test]
fn shop_db_says_in_one_line_that_another_postgresql_holds_its_port() {
    let first = Shop::new();
    let mut running = first.start(&["--no-release", "db"]);
    running.wait_until_seen("system | db.1 is ready", SECS(120));

    // A second copy of the shop on the same ports.
    let second = Shop::at(Some(first.base));
    let mut pm = second.start(&["--no-release", "db"]);
    let status = pm.wait_for_exit(SECS(60));
    assert_eq!(status.code(), Some(1), "{:#?}", pm.seen);
    let said: Vec<&str> = pm
        .lines_with("db.1   | ")
        .iter()
        .map(|l| text_of(l))
        .collect();
    let line = format!(
        "bin/db: another PostgreSQL already answers on 127.0.0.1:{}: \
         stop it, or give pm another base port (pm start -p 6000)",
        first.base + 100
    );
    // One line per try: the first and pm.toml's two restarts.
    assert_eq!(said, [line.as_str(); 3], "{:#?}", pm.seen);
    assert_eq!(
        pm.lines_with("db.1 exited with code 1, gave up after 2 restarts")
            .len(),
        1,
        "{:#?}",
        pm.seen
    );
    // The other PostgreSQL never passed for this one.
    assert!(pm.lines_with("db.1 is ready").is_empty(), "{:#?}", pm.seen);
    assert!(!second.app.path().join("var/db").exists());

    running.signal(Signal::SIGINT);
    assert_eq!(running.wait_for_exit(SECS(30)).code(), Some(0));
    assert_eq!(first.processes_inside(), Vec::<String>::new());
}
