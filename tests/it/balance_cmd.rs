//! `pm balance` and `pm probe` on their own (SPEC §6, "Exports run"): the
//! balancer the systemd and compose exports run, over real listeners.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use nix::sys::signal::Signal;

use crate::harness::*;

/// A backend answering every connection with its name, until dropped.
struct Backend {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Backend {
    fn new(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(name.as_bytes());
                    }
                    Err(_) => thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Backend { port, stop }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn ask(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(SECS(20))).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text)
}

fn pm(args: &[&str]) -> Command {
    let mut cmd = Command::new(PM);
    cmd.args(args);
    cmd
}

#[test]
fn balance_spreads_over_ready_targets_and_skips_dead_ones() {
    let a = Backend::new("a");
    let b = Backend::new("b");
    let (dead, listen) = free_ports(&[0]);
    let listen_at = format!("127.0.0.1:{listen}");
    let targets = [a.port, b.port, dead].map(|p| format!("localhost:{p}"));
    let mut args = vec!["balance", listen_at.as_str()];
    args.extend(targets.iter().map(String::as_str));
    args.extend(["--interval", "0.1"]);
    let mut balancer = Running::spawn(pm(&args));
    // Both live targets join the rotation; the dead one never does.
    assert!(
        eventually(SECS(20), || {
            let e = balancer.stderr();
            e.contains(&format!(":{}", a.port)) && e.contains(&format!(":{} is ready", b.port))
        }),
        "{}",
        balancer.stderr()
    );
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(ask(listen).unwrap());
    }
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 5, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b").count(), 5, "{seen:?}");
    assert!(!balancer.stderr().contains(&format!(":{dead} is ready")));
    // A target that goes away leaves the rotation; nobody notices.
    drop(a);
    for _ in 0..10 {
        assert_eq!(ask(listen).unwrap(), "b");
    }
    balancer.signal(Signal::SIGTERM);
    let status = balancer.wait_for_exit(SECS(10));
    assert_eq!(status.code(), Some(0), "{}", balancer.stderr());
}

#[test]
fn balance_refuses_a_port_in_use_and_bad_targets() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let out = run_with_deadline(&mut pm(&["balance", &listen, "127.0.0.1:1"]), SECS(30));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("pm: cannot listen on {listen} for the balancer: ")),
        "{err}"
    );
    let out = run_with_deadline(&mut pm(&["balance", "127.0.0.1:9", "web"]), SECS(30));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "pm: \"web\" is not HOST:PORT (e.g. 127.0.0.1:5000, web:5000)\n"
    );
}

#[test]
fn probe_waits_for_every_target_and_gives_up_when_told() {
    let (port, _) = free_ports(&[0]);
    let target = format!("127.0.0.1:{port}");
    // Nobody listens: within a second it gives up, saying why.
    let out = run_with_deadline(
        &mut pm(&["probe", &target, "--interval", "0.1", "--within", "1"]),
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.ends_with(&format!(
            "pm: {target} was not ready in time (tcp {target}: connection refused)\n"
        )),
        "{err}"
    );
    // It passes once the target listens (an HTTP check: 2xx passes).
    let mut waiting = Running::spawn(pm(&[
        "probe",
        "--http",
        "/up",
        &target,
        "--interval",
        "0.1",
    ]));
    thread::sleep(std::time::Duration::from_millis(300));
    assert!(waiting.child.try_wait().unwrap().is_none(), "it waits");
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            let mut s = s.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 204 No Content\r\n\r\n");
        }
    });
    let status = waiting.wait_for_exit(SECS(20));
    assert_eq!(status.code(), Some(0), "{}", waiting.stderr());
    assert!(
        waiting
            .stderr()
            .contains(&format!("pm: {target} is ready\n"))
    );
    // An exec check sees the target's port.
    let out = run_with_deadline(
        &mut pm(&["probe", "--exec", "test \"$PORT\" = 7", "127.0.0.1:7"]),
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
