//! The control protocol: one JSON object per line, one request and one reply
//! per connection, or, for `logs` and `attach`, one request and a stream.
//! See docs/control.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The protocol version this pm speaks.
pub const VERSION: u32 = 1;

/// The longest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Fields other than these are ignored (serde cannot refuse them next to a
/// flattened, tagged command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: Command,
}

/// `wait`, where a command has it, is how many seconds pm may take to do
/// what was asked before it answers; without it pm answers at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Command {
    Ps,
    Restart {
        targets: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait: Option<f64>,
    },
    Stop {
        targets: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait: Option<f64>,
    },
    Scale {
        formation: BTreeMap<String, u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait: Option<f64>,
    },
    /// Answered once every target (every instance when none) is ready at
    /// the same moment, or with an error when one cannot be or at `timeout`.
    Wait {
        #[serde(default)]
        targets: Vec<String>,
        timeout: f64,
    },
    /// Shut down as on SIGTERM. The reply comes at once; the connection
    /// stays open until pm's process has exited.
    Down,
}

/// The longest wait a request may ask for, in seconds (a day).
pub const MAX_WAIT: f64 = 86_400.0;

impl Command {
    /// The seconds pm may take before it answers, when it waits at all.
    pub fn wait(&self) -> Option<f64> {
        match self {
            Command::Restart { wait, .. }
            | Command::Stop { wait, .. }
            | Command::Scale { wait, .. } => *wait,
            Command::Wait { timeout, .. } => Some(*timeout),
            Command::Ps | Command::Down => None,
        }
    }
}

/// One instance as `pm ps --json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub index: u32,
    pub pid: Option<i32>,
    pub state: String,
    pub restarts: u32,
    pub uptime_s: Option<f64>,
    pub port: u16,
    pub health: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<InstanceInfo>>,
    /// `down`: the pid of the pm that is stopping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `down`: the longest stop grace of its process types, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_s: Option<f64>,
}

impl Reply {
    fn empty(ok: bool) -> Reply {
        Reply {
            version: VERSION,
            ok,
            error: None,
            message: None,
            instances: None,
            pid: None,
            grace_s: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            error: Some(message.into()),
            ..Reply::empty(false)
        }
    }

    pub fn message(message: impl Into<String>) -> Reply {
        Reply {
            message: Some(message.into()),
            ..Reply::empty(true)
        }
    }

    pub fn instances(instances: Vec<InstanceInfo>) -> Reply {
        Reply {
            instances: Some(instances),
            ..Reply::empty(true)
        }
    }

    /// The answer to `down`.
    pub fn down(pid: u32, grace: std::time::Duration) -> Reply {
        Reply {
            message: Some(format!("stopping pm (pid {pid})")),
            pid: Some(pid),
            grace_s: Some(grace.as_secs_f64()),
            ..Reply::empty(true)
        }
    }
}

/// The version of the stream format that follows a [`StreamStart`].
pub const STREAM_VERSION: u32 = 1;

/// `pm logs` shows this many lines when not told.
pub const DEFAULT_LOG_LINES: usize = 100;

/// `pm attach` shows this many recent lines when not told.
pub const DEFAULT_ATTACH_LINES: usize = 20;

fn default_log_lines() -> usize {
    DEFAULT_LOG_LINES
}

fn default_attach_lines() -> usize {
    DEFAULT_ATTACH_LINES
}

/// Requests answered with a stream: a [`StreamStart`] line (or an error
/// [`Reply`]), then [`StreamEvent`] lines until an `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum StreamCommand {
    /// The last `lines` lines of the targets (none: every instance and
    /// `system`); with `follow`, every later line too.
    Logs {
        #[serde(default)]
        targets: Vec<String>,
        #[serde(default = "default_log_lines")]
        lines: usize,
        #[serde(default)]
        follow: bool,
    },
    /// The instance's recent lines, then its output as it writes it; the
    /// client sends [`AttachInput`] lines.
    Attach {
        target: String,
        #[serde(default = "default_attach_lines")]
        lines: usize,
    },
}

/// A streaming request, as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRequest {
    pub version: u32,
    #[serde(flatten)]
    pub command: StreamCommand,
}

/// The first line of a stream: how to show what follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStart {
    pub version: u32,
    pub ok: bool,
    /// [`STREAM_VERSION`].
    pub stream: u32,
    /// The width pm start pads names to.
    pub width: usize,
    /// Whether pm start prints timestamps.
    pub timestamps: bool,
    /// `attach`: the instance attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `attach`: whether it runs on a pseudo-terminal (keys go to it
    /// untouched) or on pipes (the client edits a line and sends it whole).
    #[serde(default)]
    pub pty: bool,
}

/// One line of a stream after its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamEvent {
    /// A line as the scrollback keeps it.
    Line(WireLine),
    /// `attach`: bytes as the instance wrote them, base64.
    Output(String),
    /// The stream ends here.
    End(StreamEnd),
}

/// A line of output on the wire. Its text is `text` when it is UTF-8, else
/// `bytes` (base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLine {
    /// The order pm received it in, across every instance.
    pub seq: u64,
    /// When pm received it: unix time in milliseconds.
    pub time_ms: u64,
    pub name: String,
    /// Its color in pm start's palette (null for `system`).
    pub color: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// Why a stream ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEnd {
    /// `done` (every line asked for was sent), `pm-exited`, `exited` (the
    /// attached instance's run ended) or `dropped` (the client fell behind).
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What an attached client sends, one per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachInput {
    /// Bytes for the instance's stdin (its terminal, on a pty), base64.
    Input(String),
    /// The client's window size, for a pty.
    Resize { rows: u16, cols: u16 },
    /// A signal for the instance's process group: `"INT"` (Ctrl-C on a
    /// pipe type).
    Signal(String),
}

/// A request line, once read: answered once, or with a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Once(Request),
    Stream(StreamRequest),
}

/// Parses one request line, either kind; the error is the reply's message.
pub fn parse_any(line: &[u8]) -> Result<Parsed, String> {
    let value = versioned(line)?;
    let streaming = matches!(
        value.get("command").and_then(serde_json::Value::as_str),
        Some("logs" | "attach")
    );
    if streaming {
        serde_json::from_value(value)
            .map(Parsed::Stream)
            .map_err(|e| format!("invalid request: {e}"))
    } else {
        once(value).map(Parsed::Once)
    }
}

/// Parses one request line; the error is the reply's message.
#[cfg(test)]
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    once(versioned(line)?)
}

/// A one-shot request, its values checked.
fn once(value: serde_json::Value) -> Result<Request, String> {
    let request: Request =
        serde_json::from_value(value).map_err(|e| format!("invalid request: {e}"))?;
    match request.command.wait() {
        Some(s) if !(s.is_finite() && (0.0..=MAX_WAIT).contains(&s)) => Err(format!(
            "invalid request: a wait must be between 0 and {MAX_WAIT} seconds, found {s}"
        )),
        _ => Ok(request),
    }
}

/// The request line as JSON, once its version is known to be ours.
fn versioned(line: &[u8]) -> Result<serde_json::Value, String> {
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("malformed request: {e}"))?;
    match value.get("version") {
        None => return Err("request has no \"version\"".into()),
        Some(v) => match v.as_u64() {
            Some(v) if v == u64::from(VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "unsupported protocol version {v} (this pm speaks {VERSION})"
                ));
            }
            None => {
                let found = match v {
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::String(_) => "a string".into(),
                    serde_json::Value::Null => "null".into(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Array(_) => "an array".into(),
                    serde_json::Value::Object(_) => "an object".into(),
                };
                return Err(format!(
                    "\"version\" must be an integer ({VERSION}), found {found}"
                ));
            }
        },
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_errors() {
        let r = parse_request(br#"{"version":1,"command":"ps"}"#).unwrap();
        assert_eq!(r.command, Command::Ps);
        let r = parse_request(br#"{"version":1,"command":"restart","targets":["web.2"]}"#).unwrap();
        assert_eq!(
            r.command,
            Command::Restart {
                targets: vec!["web.2".into()],
                wait: None,
            }
        );
        let r = parse_request(br#"{"version":1,"command":"stop","targets":["web"],"wait":60}"#)
            .unwrap();
        assert_eq!(r.command.wait(), Some(60.0));
        let r = parse_request(br#"{"version":1,"command":"wait","timeout":5}"#).unwrap();
        assert_eq!(
            r.command,
            Command::Wait {
                targets: Vec::new(),
                timeout: 5.0
            }
        );
        let r = parse_request(br#"{"version":1,"command":"down"}"#).unwrap();
        assert_eq!(r.command, Command::Down);
        assert!(
            parse_request(br#"{"version":1,"command":"wait","timeout":-1}"#)
                .unwrap_err()
                .contains("between 0 and")
        );
        let r = parse_request(br#"{"version":1,"command":"scale","formation":{"web":3}}"#).unwrap();
        assert_eq!(
            r.command,
            Command::Scale {
                formation: [("web".to_string(), 3)].into_iter().collect(),
                wait: None,
            }
        );
        assert!(
            parse_request(b"garbage")
                .unwrap_err()
                .starts_with("malformed request")
        );
        assert!(
            parse_request(br#"{"command":"ps"}"#)
                .unwrap_err()
                .contains("version")
        );
        assert_eq!(
            parse_request(br#"{"version":1.0,"command":"ps"}"#).unwrap_err(),
            "\"version\" must be an integer (1), found 1.0"
        );
        assert_eq!(
            parse_request(br#"{"version":"1","command":"ps"}"#).unwrap_err(),
            "\"version\" must be an integer (1), found a string"
        );
        assert!(
            parse_request(br#"{"version":9,"command":"ps"}"#)
                .unwrap_err()
                .contains("version 9")
        );
        assert!(
            parse_request(br#"{"version":1,"command":"explode"}"#)
                .unwrap_err()
                .starts_with("invalid request")
        );
        assert!(parse_request(&[0xff, 0xfe]).is_err());
        let text = serde_json::to_string(&Reply::error("nope")).unwrap();
        assert_eq!(text, r#"{"version":1,"ok":false,"error":"nope"}"#);
    }

    #[test]
    fn stream_requests_and_events() {
        let parsed =
            parse_any(br#"{"version":1,"command":"logs","targets":["web"],"follow":true}"#);
        assert_eq!(
            parsed.unwrap(),
            Parsed::Stream(StreamRequest {
                version: 1,
                command: StreamCommand::Logs {
                    targets: vec!["web".into()],
                    lines: 100,
                    follow: true
                }
            })
        );
        let parsed = parse_any(br#"{"version":1,"command":"logs"}"#).unwrap();
        assert!(matches!(
            parsed,
            Parsed::Stream(StreamRequest {
                command: StreamCommand::Logs {
                    lines: 100,
                    follow: false,
                    ..
                },
                ..
            })
        ));
        let parsed = parse_any(br#"{"version":1,"command":"attach","target":"web.1"}"#).unwrap();
        assert!(matches!(
            parsed,
            Parsed::Stream(StreamRequest {
                command: StreamCommand::Attach { lines: 20, .. },
                ..
            })
        ));
        assert!(matches!(
            parse_any(br#"{"version":1,"command":"ps"}"#).unwrap(),
            Parsed::Once(_)
        ));
        assert!(
            parse_any(br#"{"version":1,"command":"attach"}"#)
                .unwrap_err()
                .starts_with("invalid request")
        );
        assert!(parse_any(br#"{"version":3,"command":"logs"}"#).is_err());
        let event = StreamEvent::End(StreamEnd {
            reason: "done".into(),
            message: String::new(),
        });
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"end":{"reason":"done"}}"#
        );
        let input: AttachInput =
            serde_json::from_str(r#"{"resize":{"rows":40,"cols":100}}"#).unwrap();
        assert_eq!(
            input,
            AttachInput::Resize {
                rows: 40,
                cols: 100
            }
        );
        let input: AttachInput = serde_json::from_str(r#"{"signal":"INT"}"#).unwrap();
        assert_eq!(input, AttachInput::Signal("INT".into()));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_request(&bytes);
            let _ = parse_any(&bytes);
        }
    }
}
