//! Mechanism for health checks: the `tcp`, `http` and `exec` probes, the
//! task that runs one check against one run of an instance, and the `log`
//! readiness check ([`LogWatch`]) that the relay of a run feeds its output.
//!
//! A task only probes and counts (with the pure rules of `threshold`); it
//! sends what it has to say as a [`Report`] (this source's own event type)
//! and never touches supervisor state. `exec` probes are started by the
//! runtime itself, because only the runtime's reaper may wait for children:
//! the task asks with [`Report::Exec`].

mod log;
mod threshold;

pub use log::LogWatch;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc::UnboundedSender, oneshot};

use crate::config::pm_toml::{Check, Probe};
use crate::model::{ExitStatus, How, Secs};
use crate::process::Group;
use threshold::{Threshold, Transition};

/// Which of an instance's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ready,
    Live,
}

/// What a check concluded about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    Unready(String),
    LiveFailed(String),
}

/// What a check task tells the runtime.
#[derive(Debug)]
pub enum Report {
    /// A check of the run `pid` reached a verdict.
    Verdict { pid: i32, verdict: Verdict },
    /// An `exec` probe of the run `instance_pid` asks for its command to be
    /// started; the reply carries the probe's process group and, later, its
    /// status.
    Exec {
        instance_pid: i32,
        command: String,
        reply: oneshot::Sender<ExecStarted>,
    },
}

/// The answer to [`Report::Exec`].
pub type ExecStarted = std::io::Result<(Group, oneshot::Receiver<ExitStatus>)>;

/// One check of one run: the instance's pid identifies the run.
#[derive(Debug, Clone)]
pub struct Watch {
    pub pid: i32,
    pub port: u16,
    pub kind: Kind,
    pub check: Check,
}

/// Probes until aborted (the runtime aborts the task when the run ends).
pub async fn watch(w: Watch, tx: UnboundedSender<Report>) {
    let mut threshold = Threshold::new(w.check.failures, w.check.successes);
    let mut wait = None;
    loop {
        let next = match w.kind {
            Kind::Ready => Threshold::next_wait(wait, w.check.interval),
            Kind::Live => w.check.interval,
        };
        wait = Some(next);
        tokio::time::sleep(next).await;
        let result = probe(&w, &tx).await;
        let verdict = match w.kind {
            Kind::Ready => match threshold.readiness(result.is_ok()) {
                Some(Transition::Ready) => Some(Verdict::Ready),
                Some(Transition::Unready) => Some(Verdict::Unready(reason(result))),
                None => None,
            },
            Kind::Live => threshold
                .liveness(result.is_ok())
                .then(|| Verdict::LiveFailed(reason(result))),
        };
        if let Some(verdict) = verdict
            && tx
                .send(Report::Verdict {
                    pid: w.pid,
                    verdict,
                })
                .is_err()
        {
            return;
        }
    }
}

fn reason(result: Result<(), String>) -> String {
    result.err().unwrap_or_default()
}

/// One probe, bounded by the check's timeout. Err says why it failed.
async fn probe(w: &Watch, tx: &UnboundedSender<Report>) -> Result<(), String> {
    let timeout = w.check.timeout;
    let attempt = async {
        match &w.check.probe {
            Probe::Tcp => tcp(w.port).await,
            Probe::Http(path) => http(w.port, path).await,
            Probe::Exec(command) => exec(w.pid, command, tx).await,
            // Matched on the output by the relay (LogWatch), never probed.
            Probe::Log(_) => std::future::pending().await,
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}", Secs(timeout))),
    }
}

/// Connects to 127.0.0.1:PORT.
pub async fn tcp(port: u16) -> Result<(), String> {
    tcp_at("127.0.0.1", port).await
}

/// Connects to HOST:PORT (`pm probe`, `pm balance`).
pub async fn tcp_at(host: &str, port: u16) -> Result<(), String> {
    TcpStream::connect((host, port))
        .await
        .map(drop)
        .map_err(|e| format!("tcp {host}:{port}: {}", io_reason(&e)))
}

/// GETs `path` on 127.0.0.1:PORT over HTTP/1.1; 2xx and 3xx pass.
pub async fn http(port: u16, path: &str) -> Result<(), String> {
    http_at("127.0.0.1", port, path).await
}

/// GETs `path` on HOST:PORT over HTTP/1.1 (`pm probe`, `pm balance`).
pub async fn http_at(host: &str, port: u16, path: &str) -> Result<(), String> {
    let what = format!("GET http://{host}:{port}{path}");
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("{what}: {}", io_reason(&e)))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: pm-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{what}: {}", io_reason(&e)))?;
    // Only the status line decides.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 4096];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("{what}: {}", io_reason(&e)))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    // Then the rest of the answer is read (up to 64 KiB, for a moment) so
    // the server does not write into a closed connection; a server that
    // keeps the connection open despite `Connection: close` is fine too.
    let drain = async {
        let mut total = 0;
        while total < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_WAIT, drain).await;
    match status_code(&head) {
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(code) => Err(format!("{what}: HTTP {code}")),
        None if head.is_empty() => Err(format!("{what}: connection closed without an answer")),
        None => Err(format!("{what}: not an HTTP answer")),
    }
}

/// How long an HTTP probe keeps reading after the status line.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The status code of an HTTP/1.x status line.
pub fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/") || code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Runs the command (through the runtime, which spawns and reaps it).
async fn exec(pid: i32, command: &str, tx: &UnboundedSender<Report>) -> Result<(), String> {
    let (reply, started) = oneshot::channel();
    tx.send(Report::Exec {
        instance_pid: pid,
        command: command.to_string(),
        reply,
    })
    .map_err(|_| "pm is stopping".to_string())?;
    let (group, status) = started
        .await
        .map_err(|_| "pm is stopping".to_string())?
        .map_err(|e| format!("`{command}` could not start: {e}"))?;
    // The guard kills the probe's group when this future ends: after the
    // probe exited (whatever it left in the background goes too), or when
    // the timeout drops it.
    let _guard = KillOnDrop(group);
    let status = status.await.map_err(|_| "pm is stopping".to_string())?;
    match status {
        ExitStatus::Code(0) => Ok(()),
        other => Err(format!("`{command}` {}", How(other))),
    }
}

struct KillOnDrop(Group);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.signal(nix::sys::signal::Signal::SIGKILL);
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 302 Found\r\nLocation: /"), Some(302));
        assert_eq!(
            status_code(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_code(b"HTTP/1.1 204\r\n"), Some(204));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_probe_against_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for answer in ["HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 503 Busy\r\n\r\n"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                assert!(buf[..n].starts_with(b"GET /healthz HTTP/1.1\r\n"));
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(http(port, "/healthz").await, Ok(()));
        assert_eq!(
            http(port, "/healthz").await,
            Err(format!("GET http://127.0.0.1:{port}/healthz: HTTP 503"))
        );
        server.await.unwrap();
        let refused = tcp(port).await.unwrap_err();
        assert!(refused.contains("connection refused"), "{refused}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_probe_passes_when_the_server_keeps_the_connection_open() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            // Keep-alive regardless of `Connection: close`.
            let _ = rx.await;
        });
        let probe = tokio::time::timeout(std::time::Duration::from_secs(1), http(port, "/"));
        assert_eq!(probe.await, Ok(Ok(())));
        drop(tx);
    }
}
