//! `pm balance LISTEN TARGET...` and `pm probe TARGET...`: pm's balancer and
//! its readiness probes on their own, for the engines the exports run on.
//!
//! `pm balance` serves [`crate::proxy`], the code `pm start`'s proxy runs,
//! over a rotation it keeps itself: every address each TARGET resolves to
//! (a compose service with replicas is one name for all of them), resolved
//! again every [`RESOLVE_EVERY`] so replicas that come and go join and leave,
//! and probed like pm.toml's readiness check (tcp unless `--http`), so only
//! ready addresses take connections. `pm probe` waits until every address
//! of every TARGET passes such a check (or an `--exec` command), then exits
//! 0: systemd units and Kubernetes init containers order start-up with it.
//!
//! Neither reads the application's files; only `pm probe --exec` runs a
//! process, and waits for it itself (there is no supervisor here).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::lookup_host;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::cli::{BalanceArgs, ProbeArgs, ReadyArgs};
use crate::error::{Error, Result};
use crate::health;
use crate::model::Number;
use crate::proxy;

/// How often `pm balance` resolves its targets again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(2);

/// A target as given: `host:port`, `[v6]:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn parse_target(text: &str) -> Result<Target> {
    let bad = || {
        Error::Invalid(format!(
            "\"{text}\" is not HOST:PORT (e.g. 127.0.0.1:5000, web:5000)"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(Target {
        host: host.to_string(),
        port,
    })
}

/// The check a target passes, from the command line.
#[derive(Debug, Clone)]
enum Kind {
    Tcp,
    Http(String),
    Exec(String),
}

#[derive(Debug, Clone)]
struct Probe {
    kind: Kind,
    interval: Duration,
    timeout: Duration,
    successes: u32,
    failures: u32,
}

/// A probe's interval or timeout: below a hundredth of a second a probe
/// would spin, not check.
fn seconds(what: &str, value: f64) -> Result<Duration> {
    if value.is_finite() && (0.01..=86_400.0).contains(&value) {
        return Ok(Duration::from_secs_f64(value));
    }
    Err(Error::Invalid(format!(
        "{what} {}: expected a number of seconds between 0.01 and 86400",
        Number(value)
    )))
}

fn probe_of(ready: &ReadyArgs, exec: Option<&String>) -> Result<Probe> {
    let kind = match (&ready.http, exec) {
        (_, Some(command)) => Kind::Exec(command.clone()),
        (Some(path), None) if path.starts_with('/') => Kind::Http(path.clone()),
        (Some(path), None) => {
            return Err(Error::Invalid(format!(
                "--http {path}: the path must start with /"
            )));
        }
        (None, None) => Kind::Tcp,
    };
    Ok(Probe {
        kind,
        interval: seconds("--interval", ready.interval)?,
        timeout: seconds("--timeout", ready.timeout)?,
        successes: ready.successes.max(1),
        failures: ready.failures.max(1),
    })
}

/// One probe of one address; Err says why it failed.
async fn probe_once(
    probe: &Probe,
    address: SocketAddr,
    shown: &str,
) -> std::result::Result<(), String> {
    let host = address.ip().to_string();
    let attempt = async {
        match &probe.kind {
            Kind::Tcp => health::tcp_at(&host, address.port()).await,
            Kind::Http(path) => health::http_at(&host, address.port(), path).await,
            Kind::Exec(command) => exec(command, &host, address.port(), probe.timeout),
        }
    };
    match tokio::time::timeout(probe.timeout, attempt).await {
        Ok(result) => result.map_err(|e| e.replace(&address.to_string(), shown)),
        Err(_) => Err(format!("{shown}: no answer within {:?}", probe.timeout)),
    }
}

/// Runs an `--exec` check with the target's host and port, killing it at
/// the timeout.
fn exec(
    command: &str,
    host: &str,
    port: u16,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("PORT", port.to_string())
        .env("PM_PROBE_HOST", host)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("exec: cannot run /bin/sh: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exec: {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("exec: no answer within the timeout".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("exec: {e}")),
        }
    }
}

async fn resolve(target: &Target) -> std::result::Result<Vec<SocketAddr>, String> {
    let mut found: Vec<SocketAddr> = lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("{target}: {e}"))?
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::os("the async runtime", e))
}

// ------------------------------------------------------------------ balance

/// What `pm balance` knows of one address.
#[derive(Debug, Default)]
struct Seen {
    ready: bool,
    passes: u32,
    fails: u32,
}

pub fn balance(args: BalanceArgs) -> Result<i32> {
    let listen = parse_target(&args.listen)?;
    let targets = args
        .targets
        .iter()
        .map(|t| parse_target(t))
        .collect::<Result<Vec<_>>>()?;
    let probe = probe_of(&args.ready, None)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = proxy::bind(&listen.host, listen.port).map_err(|e| {
            Error::Invalid(format!("cannot listen on {listen} for the balancer: {e}"))
        })?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| Error::os("SIGTERM", e))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::os("SIGINT", e))?;
        let (tx, rx) = watch::channel(Vec::<SocketAddr>::new());
        eprintln!(
            "pm: balancing {listen} over {}",
            targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let server = tokio::spawn(proxy::serve(listener, rx));
        let keeper = tokio::spawn(keep_rotation(targets, probe, tx));
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        // Open connections are the clients'; pm's engine gives the grace.
        server.abort();
        keeper.abort();
        Ok(0)
    })
}

/// Resolves and probes the targets for ever, publishing the ready addresses.
async fn keep_rotation(targets: Vec<Target>, probe: Probe, tx: watch::Sender<Vec<SocketAddr>>) {
    let mut seen: BTreeMap<SocketAddr, Seen> = BTreeMap::new();
    let mut resolved_at: Option<Instant> = None;
    let mut unresolved: BTreeMap<String, String> = BTreeMap::new();
    loop {
        if resolved_at.is_none_or(|at| at.elapsed() >= RESOLVE_EVERY) {
            resolved_at = Some(Instant::now());
            let mut now: Vec<SocketAddr> = Vec::new();
            for target in &targets {
                match resolve(target).await {
                    Ok(found) => {
                        unresolved.remove(&target.to_string());
                        now.extend(found);
                    }
                    Err(reason) => {
                        // Said once per change: a replica set at 0 is normal.
                        if unresolved.insert(target.to_string(), reason.clone())
                            != Some(reason.clone())
                        {
                            eprintln!("pm: balance: cannot resolve {reason}");
                        }
                    }
                }
            }
            seen.retain(|address, _| {
                let kept = now.contains(address);
                if !kept {
                    eprintln!("pm: balance: {address} left");
                }
                kept
            });
            for address in now {
                seen.entry(address).or_default();
            }
        }
        for (address, state) in seen.iter_mut() {
            let shown = address.to_string();
            match probe_once(&probe, *address, &shown).await {
                Ok(()) => {
                    state.fails = 0;
                    state.passes = state.passes.saturating_add(1);
                    if !state.ready && state.passes >= probe.successes {
                        state.ready = true;
                        eprintln!("pm: balance: {address} is ready");
                    }
                }
                Err(reason) => {
                    state.passes = 0;
                    state.fails = state.fails.saturating_add(1);
                    if state.ready && state.fails >= probe.failures {
                        state.ready = false;
                        eprintln!("pm: balance: {address} is not ready: {reason}");
                    }
                }
            }
        }
        let ready: Vec<SocketAddr> = seen
            .iter()
            .filter(|(_, s)| s.ready)
            .map(|(a, _)| *a)
            .collect();
        tx.send_if_modified(|current| {
            let changed = *current != ready;
            if changed {
                *current = ready;
            }
            changed
        });
        tokio::time::sleep(probe.interval).await;
    }
}

// -------------------------------------------------------------------- probe

pub fn probe(args: ProbeArgs) -> Result<i32> {
    let targets = args
        .targets
        .iter()
        .map(|t| parse_target(t))
        .collect::<Result<Vec<_>>>()?;
    let probe = probe_of(&args.ready, args.exec.as_ref())?;
    let within = match args.within {
        Some(s) => Some(seconds("--within", s)?),
        None => None,
    };
    let deadline = within.map(|w| Instant::now() + w);
    let rt = runtime()?;
    rt.block_on(async move {
        for target in &targets {
            wait_for(target, &probe, deadline).await?;
            eprintln!("pm: {target} is ready");
        }
        Ok(0)
    })
}

/// Waits until every address of `target` passes `successes` probes in a row.
async fn wait_for(target: &Target, probe: &Probe, deadline: Option<Instant>) -> Result<()> {
    let mut passes: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    let mut last_reason = String::new();
    loop {
        let outcome = match resolve(target).await {
            Ok(addresses) if addresses.is_empty() => Err(format!("{target}: no address")),
            Ok(addresses) => {
                passes.retain(|a, _| addresses.contains(a));
                let mut failed = None;
                for address in addresses {
                    let shown = if address.ip().to_string() == target.host {
                        address.to_string()
                    } else {
                        format!("{target} ({address})")
                    };
                    let count = passes.entry(address).or_insert(0);
                    match probe_once(probe, address, &shown).await {
                        Ok(()) => *count = count.saturating_add(1),
                        Err(reason) => {
                            *count = 0;
                            failed.get_or_insert(reason);
                        }
                    }
                }
                failed.map_or(Ok(()), Err)
            }
            Err(reason) => Err(reason),
        };
        match outcome {
            Ok(()) if passes.values().all(|&n| n >= probe.successes) => return Ok(()),
            Ok(()) => {}
            Err(reason) => {
                if reason != last_reason {
                    eprintln!("pm: waiting for {target}: {reason}");
                    last_reason = reason;
                }
            }
        }
        if let Some(deadline) = deadline
            && Instant::now() + probe.interval > deadline
        {
            return Err(Error::Invalid(format!(
                "{target} was not ready in time{}",
                if last_reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({last_reason})")
                }
            )));
        }
        tokio::time::sleep(probe.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("web:5000").unwrap(),
            Target {
                host: "web".into(),
                port: 5000
            }
        );
        assert_eq!(parse_target("[::1]:80").unwrap().to_string(), "[::1]:80");
        for bad in ["web", ":80", "web:0", "web:x", "web:70000"] {
            assert_eq!(
                parse_target(bad).unwrap_err().to_string(),
                format!("\"{bad}\" is not HOST:PORT (e.g. 127.0.0.1:5000, web:5000)")
            );
        }
    }
}
