//! Load balancer benchmark: HTTP requests per second and latency through
//! pm's proxy (`[process.web] proxy = PORT`) next to the same requests sent
//! straight to the instance, measured in the same invocation against the
//! same backend process, with the ratio and the product's target.
//!
//! Run it:
//!
//! ```text
//! cargo bench --bench proxy                    # full run
//! cargo bench --bench proxy -- --quick         # smoke run: short windows, one repetition
//! cargo bench --bench proxy -- --clients 1,4   # other client thread counts
//! PM_BENCH_QUICK=1 cargo bench --bench proxy
//! ```
//!
//! Options (after `--`), each with an environment equivalent:
//!
//! - `--clients N[,N...]` / `PM_BENCH_CLIENTS`: client threads, one
//!   connection each (default 1,8); every count is a set of rows.
//! - `--seconds S` / `PM_BENCH_SECONDS`: length of one measured window
//!   (default 3, quick 0.5).
//! - `--reps N` / `PM_BENCH_REPS`: repetitions (default 7, quick 1); the best
//!   throughput against direct, the median against HAProxy, and the median
//!   of each latency percentile count.
//! - `--work-us US` / `PM_BENCH_WORK_US`: CPU the backend spins on each
//!   request, a stand-in for an application (default 0: answer at once).
//! - `--quick` / `PM_BENCH_QUICK=1`: short windows, one repetition.
//! - `--strict` / `PM_BENCH_STRICT=1`: exit 1 when a target is missed.
//! - `PM_BENCH_PM=PATH`: benchmark another pm binary than this package's.
//!
//! `cargo bench` passes `--bench`; without it (`cargo test --benches`) the
//! binary prints a note and exits 0, so test runs never start the benchmark.
//!
//! The same executable is the backend (internal mode `--backend`): a
//! keep-alive HTTP/1.1 server on 127.0.0.1:$PORT that answers every `GET`
//! with the same small 200 response, from a fixed pool of threads, one
//! connection per thread at a time. pm starts it from a generated Procfile
//! (`web: exec BENCH --backend --work-us US`) with a `tcp` readiness check
//! and the proxy on a free port; the load generator is this process's own
//! threads. It is also the reference relay (`--relay LISTEN TARGET`): a
//! blocking thread-per-direction copy, measured as information next to
//! pm's proxy, to tell the cost of any relay on the machine from pm's own.
//!
//! The peers, when installed (`haproxy`, `wrk` on `PATH` or in `/usr/sbin`;
//! skipped with a note if not, a miss with `--strict`): HAProxy in front of
//! the same backend (`mode tcp`, round robin, 2 threads), alternated with
//! the other paths in every repetition, judged on median rate (>= 1.0x) and
//! p99 (no higher); and `wrk` as a second load generator against direct,
//! pm and HAProxy in the same repetitions.
//!
//! Hygiene: the bench is a child subreaper, pm gets a parent-death signal
//! and its own process group, every wait has a deadline, pm is stopped with
//! SIGTERM and every process it started is checked dead afterwards (and
//! killed, counted as a failure, if not).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::env;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

mod common;

use common::{
    Row, become_subreaper, binaries, clock_ticks_per_second, descendants, die_with_bench, env_on,
    finish_run, is_alive, kill_all, mono_ns, quote, ratio, read_stat, reap_orphans,
    run_when_benched, signal_group, signal_pid, task_cpu_ns, tempdir, write_file,
};

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.iter().any(|a| a == "--backend") {
        let work = args
            .iter()
            .position(|a| a == "--work-us")
            .and_then(|at| args.get(at + 1)?.parse().ok())
            .unwrap_or(0);
        std::process::exit(backend(Duration::from_micros(work)));
    }
    if let [flag, listen, target] = args.as_slice()
        && flag == "--relay"
    {
        std::process::exit(relay(listen, target));
    }
    run_when_benched("proxy", &args, Config::from_args, run);
}

// ---------------------------------------------------------------------------
// The backend.

/// What the backend answers to every GET: small, with its length, so a
/// keep-alive client knows where it ends.
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n";
/// The same answer to a request asking for `Connection: close` (what `wrk`
/// sends in conn/request mode), after which the backend closes.
const RESPONSE_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nhello, world\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// Threads serving connections; more than any client count plus the
/// proxy's readiness probes.
const BACKEND_THREADS: usize = 64;
/// Requests asked for on every connection (the client checks the answer).
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

fn backend(work: Duration) -> i32 {
    let Some(port) = env::var("PORT").ok().and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("backend: PORT is not set");
        return 2;
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => Arc::new(listener),
        Err(e) => {
            eprintln!("backend: cannot listen on 127.0.0.1:{port}: {e}");
            return 1;
        }
    };
    println!("listening {port}");
    let _ = io::stdout().flush();
    let mut pool = Vec::new();
    for _ in 0..BACKEND_THREADS {
        let listener = listener.clone();
        pool.push(thread::spawn(move || {
            loop {
                if let Ok((stream, _)) = listener.accept() {
                    serve_connection(stream, work);
                }
            }
        }));
    }
    for worker in pool {
        let _ = worker.join();
    }
    0
}

/// Answers the requests of one connection until the client closes it,
/// spending `work` of CPU on each (a stand-in for an application's work).
fn serve_connection(mut stream: TcpStream, work: Duration) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    let mut out = Vec::with_capacity(4096);
    loop {
        if len == buf.len() {
            // A header larger than the buffer: not a request of the bench.
            let _ = stream.write_all(BAD_REQUEST);
            return;
        }
        let n = match stream.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        len += n;
        let mut start = 0;
        out.clear();
        while let Some(end) = find(&buf[start..len], b"\r\n\r\n") {
            if !buf[start..].starts_with(b"GET ") {
                let _ = stream.write_all(&out);
                let _ = stream.write_all(BAD_REQUEST);
                return;
            }
            if !work.is_zero() {
                let until = Instant::now() + work;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            if find(&buf[start..start + end], b"\r\nConnection: close").is_some() {
                out.extend_from_slice(RESPONSE_CLOSE);
                let _ = stream.write_all(&out);
                return;
            }
            out.extend_from_slice(RESPONSE);
            start += end + 4;
        }
        if !out.is_empty() && stream.write_all(&out).is_err() {
            return;
        }
        buf.copy_within(start..len, 0);
        len -= start;
    }
}

// ---------------------------------------------------------------------------
// The reference relay.

/// The simplest relay there is, for comparison only: a thread per
/// direction of each connection, blocking reads and writes, a half-close
/// passed on. Same machine, same backend: what is left of the direct
/// throughput once any second process sits in the path.
fn relay(listen: &str, target: &str) -> i32 {
    let (Ok(listen), Ok(target)) = (listen.parse::<u16>(), target.parse::<u16>()) else {
        eprintln!("relay: ports expected");
        return 2;
    };
    let listener = match TcpListener::bind(("127.0.0.1", listen)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("relay: cannot listen on 127.0.0.1:{listen}: {e}");
            return 1;
        }
    };
    println!("listening {listen}");
    let _ = io::stdout().flush();
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        thread::spawn(move || {
            let Ok(backend) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = backend.set_nodelay(true);
            let (Ok(client2), Ok(backend2)) = (client.try_clone(), backend.try_clone()) else {
                return;
            };
            let up = thread::spawn(move || pipe(client, backend));
            pipe(backend2, client2);
            let _ = up.join();
        });
    }
    0
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The reference relay in front of `target`, in its own process group.
struct Relay {
    child: Child,
    port: u16,
}

impl Relay {
    fn start(config: &Config, target: u16) -> Result<Relay> {
        let (port, _) = free_ports(1)?;
        let mut cmd = Command::new(&config.exe);
        cmd.arg("--relay")
            .arg(port.to_string())
            .arg(target.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0);
        die_with_bench(&mut cmd, libc::SIGKILL);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run the relay: {e}"))?;
        let mut relay_stdout = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
        let relay = Relay { child, port };
        // Its only line, written once it is bound.
        let mut line = String::new();
        if relay_stdout.read_line(&mut line).is_err() || !line.starts_with("listening") {
            return Err("the reference relay did not start".into());
        }
        Ok(relay)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        signal_group(self.pid(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The peers: HAProxy as a balancer, wrk as a load generator.

/// An executable on `PATH` or in the system directories Debian installs
/// them to (`/usr/sbin` is not on every user's `PATH`).
fn installed(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// HAProxy in front of `target`, configured as pm's balancer is meant to
/// compete with it: `mode tcp`, round robin, 2 threads.
struct Haproxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(binary: &PathBuf, target: u16) -> Result<Haproxy> {
        let (port, _) = free_ports(1)?;
        let dir = tempdir("pm-bench-haproxy-")?;
        let cfg = dir.path().join("haproxy.cfg");
        write_file(
            &cfg,
            &format!(
                "global\n  nbthread 2\n  maxconn 8000\n\n\
                 defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\n\
                 frontend bench\n  bind 127.0.0.1:{port}\n  default_backend web\n\n\
                 backend web\n  balance roundrobin\n  server web1 127.0.0.1:{target}\n"
            ),
        )?;
        let mut cmd = Command::new(binary);
        cmd.arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        die_with_bench(&mut cmd, libc::SIGKILL);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut haproxy = Haproxy {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = connect(port)
                && exchange(&mut stream, &mut [0u8; 512]).is_ok()
            {
                return Ok(haproxy);
            }
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                return Err(format!("haproxy exited at start ({status})"));
            }
            if Instant::now() > deadline {
                return Err("haproxy did not answer within 10 s".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        signal_group(self.pid(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// One window of `wrk` against a port: its own figures, parsed.
struct WrkSample {
    rate: f64,
    requests: u64,
    /// Socket errors and non-2xx answers.
    failures: u64,
    p50: f64,
    p99: f64,
}

/// `wrk` with `clients` connections (at most 2 threads: the machine's
/// cores are shared with what it measures) for `window`. Conn/request
/// asks for `Connection: close`, which the backend honours: wrk then
/// reconnects for every request (its latency does not include the connect).
fn wrk(
    binary: &PathBuf,
    port: u16,
    clients: usize,
    mode: Mode,
    window: Duration,
) -> Result<WrkSample> {
    let mut cmd = Command::new(binary);
    cmd.arg("-t")
        .arg(clients.min(2).to_string())
        .arg("-c")
        .arg(clients.to_string())
        .arg("-d")
        // wrk takes whole seconds.
        .arg(format!("{}s", window.as_secs_f64().round().max(1.0)))
        .arg("--latency");
    if mode == Mode::PerRequest {
        cmd.arg("-H").arg("Connection: close");
    }
    cmd.arg(format!("http://127.0.0.1:{port}/"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    die_with_bench(&mut cmd, libc::SIGKILL);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).ok_or_else(|| {
        let tail: String = text.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        format!("unreadable wrk output ({}): {tail}", out.status)
    })
}

/// Requests/sec, the request count, errors and the 50 % / 99 % latencies
/// (in ns) of wrk's `--latency` report.
fn parse_wrk(text: &str) -> Option<WrkSample> {
    let duration_ns = |word: &str| -> Option<f64> {
        let split = word.find(|c: char| c.is_ascii_alphabetic())?;
        let value: f64 = word[..split].parse().ok()?;
        let scale = match &word[split..] {
            "us" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            _ => return None,
        };
        Some(value * scale)
    };
    let (mut rate, mut requests, mut failures, mut p50, mut p99) = (None, None, 0, None, None);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => rate = value.parse().ok(),
            [count, "requests", "in", ..] => requests = count.parse().ok(),
            ["50%", value] => p50 = duration_ns(value),
            ["99%", value] => p99 = duration_ns(value),
            ["Socket", "errors:", rest @ ..] => {
                failures += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                failures += count.parse::<u64>().ok()?;
            }
            _ => {}
        }
    }
    Some(WrkSample {
        rate: rate?,
        requests: requests?,
        failures,
        p50: p50?,
        p99: p99?,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

// ---------------------------------------------------------------------------
// The load generator.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One connection per client for the whole window.
    KeepAlive,
    /// A new connection for every request (what the proxy balances).
    PerRequest,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::PerRequest => "conn/request",
        }
    }
}

/// One measured window.
struct Sample {
    requests: u64,
    failures: u64,
    first_failure: Option<String>,
    elapsed: Duration,
    /// Every successful request's latency in nanoseconds, sorted.
    latencies: Vec<u64>,
    /// CPU used during the window, in % of one core: pm, the backends, the
    /// load generator (this process), the reference relay.
    cpu: [f64; 4],
}

impl Sample {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * self.latencies.len() as f64).ceil() as usize).max(1);
        self.latencies[rank.min(self.latencies.len()) - 1] as f64
    }
}

/// Per client thread.
#[derive(Default)]
struct Tally {
    requests: u64,
    failures: u64,
    first_failure: Option<String>,
    latencies: Vec<u64>,
}

/// `clients` threads sending requests to `port` back to back for `window`.
fn load(port: u16, clients: usize, mode: Mode, window: Duration, watch: &Watch) -> Sample {
    // Every thread connects first (keep-alive), then all start together.
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut threads = Vec::new();
    for _ in 0..clients {
        let barrier = barrier.clone();
        threads.push(thread::spawn(move || client(port, mode, window, &barrier)));
    }
    barrier.wait();
    let cpu_before = watch.cpu();
    let started = Instant::now();
    let tallies: Vec<Tally> = threads
        .into_iter()
        .map(|t| {
            t.join().unwrap_or_else(|_| Tally {
                failures: 1,
                first_failure: Some("a client thread panicked".into()),
                ..Tally::default()
            })
        })
        .collect();
    let elapsed = started.elapsed();
    let cpu_after = watch.cpu();
    let mut cpu = [0.0; 4];
    for (i, slot) in cpu.iter_mut().enumerate() {
        *slot =
            cpu_after[i].saturating_sub(cpu_before[i]) as f64 / elapsed.as_nanos() as f64 * 100.0;
    }
    let mut sample = Sample {
        requests: 0,
        failures: 0,
        first_failure: None,
        elapsed,
        latencies: Vec::new(),
        cpu,
    };
    for tally in tallies {
        sample.requests += tally.requests;
        sample.failures += tally.failures;
        if sample.first_failure.is_none() {
            sample.first_failure = tally.first_failure;
        }
        sample.latencies.extend(tally.latencies);
    }
    sample.latencies.sort_unstable();
    sample
}

fn client(port: u16, mode: Mode, window: Duration, barrier: &Barrier) -> Tally {
    let mut tally = Tally {
        latencies: Vec::with_capacity(1 << 16),
        ..Tally::default()
    };
    let fail = |tally: &mut Tally, what: String| {
        tally.failures += 1;
        tally.first_failure.get_or_insert(what);
    };
    let mut conn = None;
    if mode == Mode::KeepAlive {
        match connect(port) {
            Ok(stream) => conn = Some(stream),
            Err(e) => fail(&mut tally, format!("connect: {e}")),
        }
    }
    let mut buf = vec![0u8; 4096];
    barrier.wait();
    let end = Instant::now() + window;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let stream = match conn.as_mut() {
            Some(stream) => stream,
            None => match connect(port) {
                Ok(stream) => conn.insert(stream),
                Err(e) => {
                    fail(&mut tally, format!("connect: {e}"));
                    continue;
                }
            },
        };
        match exchange(stream, &mut buf) {
            Ok(()) => {
                tally.latencies.push(t0.elapsed().as_nanos() as u64);
                tally.requests += 1;
                if mode == Mode::PerRequest
                    && let Some(stream) = conn.take()
                {
                    // Closed with a reset, so the load generator leaves no
                    // socket in TIME_WAIT: tens of thousands of them would
                    // use up the ephemeral ports and slow every later
                    // connect, direct or not. (pm's own side of a proxied
                    // connection still closes normally.)
                    abort(stream);
                }
            }
            Err(e) => {
                fail(&mut tally, e);
                conn = None;
            }
        }
    }
    if let Some(stream) = conn {
        let _ = stream.shutdown(Shutdown::Both);
    }
    tally
}

/// Closes with RST instead of FIN (SO_LINGER with a zero timeout).
fn abort(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: sets an option from a local struct of the size given.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&stream),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(stream);
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// One request and its whole response, checked.
fn exchange(stream: &mut TcpStream, buf: &mut [u8]) -> Result<()> {
    stream
        .write_all(REQUEST)
        .map_err(|e| format!("write: {e}"))?;
    let mut len = 0;
    loop {
        let n = stream
            .read(&mut buf[len..])
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed after {len} bytes of the response"
            ));
        }
        len += n;
        if len >= RESPONSE.len() {
            break;
        }
        if !RESPONSE.starts_with(&buf[..len]) {
            break;
        }
    }
    if buf[..len] != *RESPONSE {
        let shown = String::from_utf8_lossy(&buf[..len.min(80)]).into_owned();
        return Err(format!("unexpected response {shown:?}"));
    }
    Ok(())
}

/// The processes whose CPU time a window reports.
struct Watch {
    pm: i32,
    backends: Vec<i32>,
    /// The reference relay, when one runs (0: none).
    relay: i32,
}

impl Watch {
    /// Nanoseconds on CPU so far: pm, the backends, this process, the
    /// reference relay.
    fn cpu(&self) -> [u64; 4] {
        [
            task_cpu_ns(self.pm),
            self.backends.iter().map(|&p| task_cpu_ns(p)).sum(),
            self_cpu_ns(),
            // Its threads come and go with the connections: the process
            // total, which keeps what exited threads used.
            if self.relay > 0 {
                process_cpu_ns(self.relay)
            } else {
                0
            },
        ]
    }
}

// ---------------------------------------------------------------------------
// Configuration.

struct Config {
    pm: PathBuf,
    exe: PathBuf,
    quick: bool,
    strict: bool,
    clients: Vec<usize>,
    window: Duration,
    reps: u32,
    /// CPU the backend spends on each request.
    work_us: u64,
    /// The peers, when installed.
    haproxy: Option<PathBuf>,
    wrk: Option<PathBuf>,
}

impl Config {
    fn from_args(args: &[String]) -> Result<Config> {
        let env_text = |name: &str| env::var(name).ok().filter(|v| !v.is_empty());
        let mut quick = env_on("PM_BENCH_QUICK");
        let mut strict = env_on("PM_BENCH_STRICT");
        let mut reps = env_text("PM_BENCH_REPS");
        let mut clients = env_text("PM_BENCH_CLIENTS");
        let mut seconds = env_text("PM_BENCH_SECONDS");
        let mut work_us = env_text("PM_BENCH_WORK_US");
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let mut value = |flag: &str| -> Result<String> {
                iter.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match arg.as_str() {
                "--quick" => quick = true,
                "--strict" => strict = true,
                "--reps" => reps = Some(value("--reps")?),
                "--clients" => clients = Some(value("--clients")?),
                "--seconds" => seconds = Some(value("--seconds")?),
                "--work-us" => work_us = Some(value("--work-us")?),
                // `--bench` from cargo, and any harness flag cargo may add.
                other if other.starts_with('-') => {}
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        let reps = match reps {
            Some(text) => text
                .parse::<u32>()
                .map_err(|_| format!("reps: {text:?} is not a number"))?,
            None if quick => 1,
            None => 7,
        }
        .max(1);
        let clients = match clients {
            Some(text) => text
                .split(',')
                .map(|c| c.trim().parse::<usize>().ok().filter(|&c| c > 0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("clients: {text:?} is not a list of counts"))?,
            None => vec![1, 8],
        };
        let work_us = match work_us {
            Some(text) => text
                .parse::<u64>()
                .map_err(|_| format!("work-us: {text:?} is not a number"))?,
            None => 0,
        };
        let window = match seconds {
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && *s < 3600.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("seconds: {text:?} is not a positive number"))?,
            None if quick => Duration::from_millis(500),
            None => Duration::from_secs(3),
        };
        let (pm, exe) = binaries()?;
        Ok(Config {
            pm,
            exe,
            quick,
            strict,
            clients,
            window,
            reps,
            work_us,
            haproxy: installed("haproxy"),
            wrk: installed("wrk"),
        })
    }
}

// ---------------------------------------------------------------------------
// The run and its table.

/// Minimum proxy throughput, as a share of the direct one.
const MIN_RATIO: f64 = 0.80;
/// Maximum p99 the proxy may add, in nanoseconds.
const MAX_ADDED_P99_NS: f64 = 1_000_000.0;

/// The repetitions of one configuration, summarised.
struct Summary {
    best_rate: f64,
    median_rate: f64,
    /// `min..max` of the windows' rates.
    spread: String,
    p50: f64,
    p99: f64,
    p999: f64,
    requests: u64,
    failures: u64,
    first_failure: Option<String>,
}

impl Summary {
    fn of(samples: &[Sample]) -> Summary {
        let median = |p: f64| {
            let mut values: Vec<f64> = samples.iter().map(|s| s.percentile(p)).collect();
            values.sort_by(f64::total_cmp);
            values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let rates: Vec<f64> = samples.iter().map(Sample::rate).collect();
        Summary {
            best_rate: rates.iter().copied().fold(0.0, f64::max),
            median_rate: median_of(rates.clone()),
            spread: spread(&rates),
            p50: median(0.50),
            p99: median(0.99),
            p999: median(0.999),
            requests: samples.iter().map(|s| s.requests).sum(),
            failures: samples.iter().map(|s| s.failures).sum(),
            first_failure: samples.iter().find_map(|s| s.first_failure.clone()),
        }
    }
}

fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `min..max` of request rates.
fn spread(rates: &[f64]) -> String {
    if rates.is_empty() {
        return "?".into();
    }
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    format!("{min:.0}..{max:.0}")
}

/// pm's proxy against HAProxy: median rate at least HAProxy's, p99 no
/// higher.
const MIN_HAPROXY_RATIO: f64 = 1.0;

fn run(config: &Config) -> i32 {
    become_subreaper();
    println!(
        "pm proxy bench ({} mode, {} s windows, {} rep(s), backend work {} us/request, {} cores): pm = {}",
        if config.quick { "quick" } else { "full" },
        config.window.as_secs_f64(),
        config.reps,
        config.work_us,
        thread::available_parallelism().map_or(0, |n| n.get()),
        config.pm.display()
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    for (peer, found) in [("haproxy", &config.haproxy), ("wrk", &config.wrk)] {
        match found {
            Some(path) => println!("{peer}: {}", path.display()),
            None if config.strict => rows.push(Row::failed(peer, "not installed (--strict)")),
            None => println!("{peer}: not installed; its rows are skipped"),
        }
    }
    // Direct keep-alive throughput per client count, the baseline of web=2.
    let mut direct_rates = Vec::new();
    // Connection per request last: its sockets in TIME_WAIT (pm's side of
    // each proxied connection) hold ephemeral ports for a minute.
    match single(config, Mode::KeepAlive, &mut direct_rates) {
        Ok(mut more) => rows.append(&mut more),
        Err(e) => rows.push(Row::failed("web=1 keep-alive", &e)),
    }
    match double(config, &direct_rates) {
        Ok(mut more) => rows.append(&mut more),
        Err(e) => rows.push(Row::failed("web=2", &e)),
    }
    match single(config, Mode::PerRequest, &mut direct_rates) {
        Ok(mut more) => rows.append(&mut more),
        Err(e) => rows.push(Row::failed("web=1 conn/request", &e)),
    }
    finish_run(&rows, ["proxy", "direct"], started, config.strict)
}

/// web=1: direct and through the proxy, alternating, for each client count.
fn single(config: &Config, mode: Mode, direct_rates: &mut Vec<(usize, f64)>) -> Result<Vec<Row>> {
    let mut pm = Pm::start(config, 1)?;
    let direct_port = pm.ports[0];
    let relay = Relay::start(config, direct_port)?;
    pm.watch.relay = relay.pid();
    let mut rows = Vec::new();
    let haproxy = match config
        .haproxy
        .as_ref()
        .map(|h| Haproxy::start(h, direct_port))
    {
        Some(Ok(haproxy)) => Some(haproxy),
        Some(Err(e)) => {
            rows.push(Row::failed(&format!("{} haproxy", mode.name()), &e));
            None
        }
        None => None,
    };
    for &clients in &config.clients {
        let name = format!("{} c={clients}", mode.name());
        let mut direct = Vec::new();
        let mut proxied = Vec::new();
        let mut relayed = Vec::new();
        let mut balanced = Vec::new();
        // wrk's windows: direct, pm, HAProxy.
        let mut by_wrk: [Vec<WrkSample>; 3] = Default::default();
        let mut wrk_error = None;
        for rep in 1..=config.reps {
            let mut paths = vec![
                ("direct ", direct_port, &mut direct),
                ("proxy  ", pm.proxy, &mut proxied),
                ("relay  ", relay.port, &mut relayed),
            ];
            if let Some(haproxy) = &haproxy {
                paths.push(("haproxy", haproxy.port, &mut balanced));
            }
            for (via, port, into) in paths {
                let sample = load(port, clients, mode, config.window, &pm.watch);
                report(mode, clients, &format!("web=1 {via}"), rep, &sample);
                into.push(sample);
            }
            let Some(wrk_binary) = &config.wrk else {
                continue;
            };
            let mut wrk_paths = vec![("direct ", direct_port), ("proxy  ", pm.proxy)];
            if let Some(haproxy) = &haproxy {
                wrk_paths.push(("haproxy", haproxy.port));
            }
            for (at, (via, port)) in wrk_paths.into_iter().enumerate() {
                match wrk(wrk_binary, port, clients, mode, config.window) {
                    Ok(sample) => {
                        println!(
                            "{name} wrk {via} #{rep}: {} requests = {}, p50 {} p99 {}, {} failed",
                            sample.requests,
                            rate(sample.rate),
                            us(sample.p50),
                            us(sample.p99),
                            sample.failures
                        );
                        by_wrk[at].push(sample);
                    }
                    Err(e) => {
                        println!("{name} wrk {via} #{rep}: error: {e}");
                        wrk_error.get_or_insert(e);
                    }
                }
            }
        }
        let direct = Summary::of(&direct);
        let proxied = Summary::of(&proxied);
        let relayed = Summary::of(&relayed);
        if haproxy.is_some() {
            let balanced = Summary::of(&balanced);
            rows.extend(against_haproxy(&name, &proxied, &balanced));
        }
        if let Some(e) = wrk_error {
            rows.push(Row::failed(&format!("{name} wrk"), &e));
        } else if config.wrk.is_some() {
            rows.extend(wrk_rows(&name, &by_wrk));
        }
        if mode == Mode::KeepAlive {
            direct_rates.push((clients, direct.best_rate));
        }
        rows.extend(compare(&name, &proxied, &direct));
        rows.push(Row::info(
            format!("{name} std relay req/s"),
            rate(relayed.best_rate),
            rate(direct.best_rate),
            ratio(relayed.best_rate, direct.best_rate),
        ));
        rows.push(Row::info(
            format!("{name} std relay p50/p99"),
            format!("{} / {}", us(relayed.p50), us(relayed.p99)),
            format!("{} / {}", us(direct.p50), us(direct.p99)),
            format!("{:+.0} us p99", (relayed.p99 - direct.p99) / 1000.0),
        ));
        rows.push(failure_row(&format!("{name} std relay"), &relayed, None));
    }
    drop(haproxy);
    drop(relay);
    pm.stop()?;
    Ok(rows)
}

/// pm's proxy and HAProxy under the bench's own load generator: median
/// rates over the alternated windows, their spread, the median p99s.
fn against_haproxy(name: &str, proxy: &Summary, haproxy: &Summary) -> Vec<Row> {
    vec![
        Row::checked(
            format!("{name} vs haproxy req/s (median)"),
            rate(proxy.median_rate),
            format!("{} (haproxy)", rate(haproxy.median_rate)),
            ratio(proxy.median_rate, haproxy.median_rate),
            ">= 1.0x haproxy",
            proxy.median_rate >= MIN_HAPROXY_RATIO * haproxy.median_rate,
        ),
        Row::info(
            format!("{name} vs haproxy spread req/s"),
            proxy.spread.clone(),
            haproxy.spread.clone(),
            String::new(),
        ),
        Row::checked(
            format!("{name} vs haproxy p99"),
            us(proxy.p99),
            us(haproxy.p99),
            format!("{:+.0} us", (proxy.p99 - haproxy.p99) / 1000.0),
            "<= haproxy",
            proxy.p99 <= haproxy.p99,
        ),
        failure_row(&format!("{name} haproxy"), haproxy, None),
    ]
}

/// The same comparison with wrk as the load: direct, pm, HAProxy.
fn wrk_rows(name: &str, samples: &[Vec<WrkSample>; 3]) -> Vec<Row> {
    let summary = |of: &[WrkSample]| {
        let rates: Vec<f64> = of.iter().map(|s| s.rate).collect();
        (
            median_of(rates.clone()),
            spread(&rates),
            median_of(of.iter().map(|s| s.p99).collect()),
            of.iter().map(|s| s.failures).sum::<u64>(),
            of.iter().map(|s| s.requests).sum::<u64>(),
        )
    };
    let [direct, proxy, haproxy] = samples;
    let (d_rate, d_spread, d_p99, d_failed, d_requests) = summary(direct);
    let (p_rate, p_spread, p_p99, p_failed, p_requests) = summary(proxy);
    let mut rows = vec![
        Row::info(
            format!("{name} wrk proxy vs direct req/s"),
            rate(p_rate),
            format!("{} (direct)", rate(d_rate)),
            ratio(p_rate, d_rate),
        ),
        Row::info(
            format!("{name} wrk proxy vs direct p99"),
            us(p_p99),
            us(d_p99),
            format!("{:+.0} us", (p_p99 - d_p99) / 1000.0),
        ),
        Row::info(
            format!("{name} wrk spread req/s"),
            p_spread.clone(),
            d_spread,
            String::new(),
        ),
    ];
    let mut failed = p_failed + d_failed;
    let mut requests = format!("{p_failed}/{p_requests}");
    let mut baseline = format!("{d_failed}/{d_requests}");
    if !haproxy.is_empty() {
        let (h_rate, h_spread, h_p99, h_failed, h_requests) = summary(haproxy);
        rows.push(Row::checked(
            format!("{name} wrk vs haproxy req/s (median)"),
            rate(p_rate),
            format!("{} (haproxy)", rate(h_rate)),
            ratio(p_rate, h_rate),
            ">= 1.0x haproxy",
            p_rate >= MIN_HAPROXY_RATIO * h_rate,
        ));
        rows.push(Row::info(
            format!("{name} wrk haproxy spread req/s"),
            p_spread,
            h_spread,
            String::new(),
        ));
        rows.push(Row::checked(
            format!("{name} wrk vs haproxy p99"),
            us(p_p99),
            us(h_p99),
            format!("{:+.0} us", (p_p99 - h_p99) / 1000.0),
            "<= haproxy",
            p_p99 <= h_p99,
        ));
        failed += h_failed;
        baseline = format!("{baseline} direct, {h_failed}/{h_requests} haproxy");
        requests = format!("{requests} pm");
    }
    rows.push(Row::checked(
        format!("{name} wrk failed/requests"),
        requests,
        baseline,
        String::new(),
        "0 failed",
        failed == 0 && p_requests > 0,
    ));
    rows
}

/// web=2 through the proxy, keep-alive: information only, next to the
/// direct rate to one instance.
fn double(config: &Config, direct_rates: &[(usize, f64)]) -> Result<Vec<Row>> {
    let pm = Pm::start(config, 2)?;
    let mut rows = Vec::new();
    for &clients in &config.clients {
        let mut samples = Vec::new();
        for rep in 1..=config.reps {
            let sample = load(pm.proxy, clients, Mode::KeepAlive, config.window, &pm.watch);
            report(Mode::KeepAlive, clients, "web=2 proxy ", rep, &sample);
            samples.push(sample);
        }
        let summary = Summary::of(&samples);
        let direct = direct_rates
            .iter()
            .find(|(c, _)| *c == clients)
            .map_or(f64::NAN, |(_, r)| *r);
        let name = format!("web=2 keep-alive c={clients}");
        rows.push(Row::info(
            format!("{name} req/s"),
            rate(summary.best_rate),
            format!("{} (web=1)", rate(direct)),
            ratio(summary.best_rate, direct),
        ));
        rows.push(Row::info(
            format!("{name} p50/p99"),
            format!("{} / {}", us(summary.p50), us(summary.p99)),
            String::new(),
            String::new(),
        ));
        rows.push(failure_row(&name, &summary, None));
    }
    pm.stop()?;
    Ok(rows)
}

fn report(mode: Mode, clients: usize, what: &str, rep: u32, s: &Sample) {
    println!(
        "{} c={clients} {what} #{rep}: {} in {:.2} s = {}, p50 {} p99 {} p99.9 {}, {} failed; cpu % pm {:.0} backend {:.0} clients {:.0} relay {:.0}",
        mode.name(),
        s.requests,
        s.elapsed.as_secs_f64(),
        rate(s.rate()),
        us(s.percentile(0.5)),
        us(s.percentile(0.99)),
        us(s.percentile(0.999)),
        s.failures,
        s.cpu[0],
        s.cpu[1],
        s.cpu[2],
        s.cpu[3],
    );
    if let Some(failure) = &s.first_failure {
        println!("  first failure: {failure}");
    }
}

fn compare(name: &str, proxy: &Summary, direct: &Summary) -> Vec<Row> {
    let added = proxy.p99 - direct.p99;
    vec![
        Row::info(
            format!("{name} req/s"),
            rate(proxy.best_rate),
            rate(direct.best_rate),
            ratio(proxy.best_rate, direct.best_rate),
        )
        .check(
            ">= 0.80x direct",
            proxy.best_rate >= MIN_RATIO * direct.best_rate,
        ),
        Row::info(
            format!("{name} p50"),
            us(proxy.p50),
            us(direct.p50),
            format!("{:+.0} us", (proxy.p50 - direct.p50) / 1000.0),
        ),
        Row::info(
            format!("{name} p99"),
            us(proxy.p99),
            us(direct.p99),
            format!("{:+.0} us", added / 1000.0),
        )
        .check("< +1 ms", added < MAX_ADDED_P99_NS),
        Row::info(
            format!("{name} p99.9"),
            us(proxy.p999),
            us(direct.p999),
            format!("{:+.0} us", (proxy.p999 - direct.p999) / 1000.0),
        ),
        failure_row(name, proxy, Some(direct)),
    ]
}

fn failure_row(name: &str, proxy: &Summary, direct: Option<&Summary>) -> Row {
    let failures = proxy.failures + direct.map_or(0, |d| d.failures);
    if let Some(failure) = proxy
        .first_failure
        .as_ref()
        .or(direct.and_then(|d| d.first_failure.as_ref()))
    {
        println!("{name}: first failure: {failure}");
    }
    Row::info(
        format!("{name} failed/requests"),
        format!("{}/{}", proxy.failures, proxy.requests),
        direct.map_or(String::new(), |d| format!("{}/{}", d.failures, d.requests)),
        String::new(),
    )
    .check("0 failed", failures == 0 && proxy.requests > 0)
}

fn rate(per_s: f64) -> String {
    if per_s.is_finite() {
        format!("{per_s:.0} req/s")
    } else {
        "?".into()
    }
}

fn us(ns: f64) -> String {
    if ns.is_finite() {
        format!("{:.0} us", ns / 1000.0)
    } else {
        "?".into()
    }
}

// ---------------------------------------------------------------------------
// pm.

/// A running `pm start` with web=N behind the proxy.
struct Pm {
    child: Child,
    pid: i32,
    /// web.1, web.2, ... ports, from the backends' `listening` lines.
    ports: Vec<u16>,
    proxy: u16,
    watch: Watch,
    /// Every process below pm once the backends were up.
    tree: Vec<i32>,
    lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
    stopped: bool,
}

impl Pm {
    fn start(config: &Config, web: u16) -> Result<Pm> {
        let dir = tempdir("pm-bench-proxy-")?;
        let (base, proxy) = free_ports(web)?;
        write_file(
            &dir.path().join("Procfile"),
            &format!(
                "web: exec {} --backend --work-us {}\n",
                quote(&config.exe),
                config.work_us
            ),
        )?;
        write_file(
            &dir.path().join("pm.toml"),
            &format!(
                "[process.web]\nproxy = {proxy}\n[process.web.ready]\ntcp = true\ninterval = 0.2\n"
            ),
        )?;
        let mut cmd = Command::new(&config.pm);
        cmd.arg("start")
            .arg("--color")
            .arg("never")
            .arg("-p")
            .arg(base.to_string())
            .arg(format!("web={web}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        die_with_bench(&mut cmd, libc::SIGTERM);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", config.pm.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        // Reads pm's output for as long as pm runs, so pm never blocks on it.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Nobody listens any more: keep draining.
                    continue;
                }
            }
        });
        let pid = child.id() as i32;
        let mut pm = Pm {
            child,
            pid,
            ports: vec![0; web as usize],
            proxy,
            watch: Watch {
                pm: pid,
                backends: Vec::new(),
                relay: 0,
            },
            tree: Vec::new(),
            lines,
            _dir: dir,
            stopped: false,
        };
        pm.wait_ready(web)?;
        pm.tree = descendants(pid);
        pm.watch.backends = pm
            .tree
            .iter()
            .copied()
            .filter(|&p| {
                fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == b"--backend"))
            })
            .collect();
        if pm.watch.backends.len() != web as usize {
            return Err(format!(
                "found {} backend process(es) under pm, expected {web}",
                pm.watch.backends.len()
            ));
        }
        // The rotation is published after the ready line: wait until the
        // proxy answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 4096];
        loop {
            match connect(proxy)
                .map_err(|e| e.to_string())
                .and_then(|mut s| exchange(&mut s, &mut buf))
            {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("the proxy on port {proxy} does not answer: {e}"));
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
        println!(
            "pm web={web}: ready in {:.0} ms, pid {pid}, instances on {:?}, proxy on {proxy}, backends {:?}",
            started.elapsed().as_secs_f64() * 1000.0,
            pm.ports,
            pm.watch.backends
        );
        Ok(pm)
    }

    /// Until every instance said its port and pm said it is ready.
    fn wait_ready(&mut self, web: u16) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut ready = vec![false; web as usize];
        while ready.iter().any(|r| !r) || self.ports.contains(&0) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => return Err("pm did not report every web instance ready in 20 s".into()),
            };
            let Some((head, text)) = line.split_once(" | ") else {
                continue;
            };
            let name = head.split_whitespace().last().unwrap_or("");
            if let Some(n) = name
                .strip_prefix("web.")
                .and_then(|n| n.parse::<usize>().ok())
                && let Some(port) = text.strip_prefix("listening ")
                && let (Some(slot), Ok(port)) =
                    (self.ports.get_mut(n.wrapping_sub(1)), port.trim().parse())
            {
                *slot = port;
            }
            if name == "system"
                && let Some(n) = text
                    .strip_prefix("web.")
                    .and_then(|t| t.strip_suffix(" is ready"))
                    .and_then(|n| n.parse::<usize>().ok())
                && let Some(slot) = ready.get_mut(n.wrapping_sub(1))
            {
                *slot = true;
            }
        }
        Ok(())
    }

    /// SIGTERM, pm's exit within 10 s, and no process of its tree left.
    fn stop(mut self) -> Result<()> {
        self.stopped = true;
        let asked = Instant::now();
        signal_pid(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                _ => {
                    self.kill();
                    return Err("pm did not exit within 10 s of SIGTERM".into());
                }
            }
        };
        let left: Vec<i32> = self.tree.iter().copied().filter(|&p| is_alive(p)).collect();
        if !left.is_empty() {
            self.kill();
            return Err(format!("pm exited ({status}) leaving {left:?} running"));
        }
        if !status.success() {
            return Err(format!("pm exited with {status} after SIGTERM"));
        }
        println!(
            "pm stopped in {:.0} ms after SIGTERM, nothing left running",
            asked.elapsed().as_secs_f64() * 1000.0
        );
        Ok(())
    }

    fn kill(&mut self) {
        let mut tree = descendants(self.pid);
        tree.extend(self.tree.iter().copied());
        signal_pid(self.pid, libc::SIGKILL);
        kill_all(&tree);
        let _ = self.child.wait();
        reap_orphans(Duration::from_secs(5));
    }
}

impl Drop for Pm {
    fn drop(&mut self) {
        if !self.stopped {
            self.kill();
        }
    }
}

// ---------------------------------------------------------------------------
// Processes, ports, files.

/// Nanoseconds on CPU of this process, exited threads included.
fn self_cpu_ns() -> u64 {
    // SAFETY: rusage is plain data, zeroes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (micros(usage.ru_utime) + micros(usage.ru_stime)) * 1000
}

/// Nanoseconds on CPU of a process, exited threads included (utime and
/// stime, in clock ticks).
fn process_cpu_ns(pid: i32) -> u64 {
    read_stat(pid).map_or(0, |s| {
        (s.utime + s.stime) * 1_000_000_000 / clock_ticks_per_second()
    })
}

/// A base port with `count` free ports from it, and another free port for
/// the proxy. They are taken below the kernel's ephemeral range (from
/// 32768), where no outgoing connection and none of the thousands of
/// sockets in TIME_WAIT a run leaves behind can hold them.
fn free_ports(count: u16) -> Result<(u16, u16)> {
    const LOW: u64 = 20_000;
    const SPAN: u64 = 12_000;
    let mut seed = mono_ns() ^ u64::from(std::process::id()) << 20;
    let mut pick = || {
        // xorshift: any spread will do.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (LOW + seed % (SPAN - u64::from(count))) as u16
    };
    for _ in 0..1000 {
        let base = pick();
        let proxy = pick();
        if (base..base + count).contains(&proxy) {
            continue;
        }
        let held: Vec<_> = (base..base + count)
            .chain([proxy])
            .map(|p| TcpListener::bind(("127.0.0.1", p)))
            .collect();
        if held.iter().all(|l| l.is_ok()) {
            return Ok((base, proxy));
        }
    }
    Err(format!("found no {count} free port(s) in a row"))
}
