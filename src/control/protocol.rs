//! The control protocol: one JSON object per line, one request and one reply
//! per connection. See docs/control.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The protocol version this pm speaks.
pub const VERSION: u32 = 1;

/// The longest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Fields other than these are ignored (serde cannot refuse them next to a
/// flattened, tagged command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Command {
    Ps,
    Restart { targets: Vec<String> },
    Stop { targets: Vec<String> },
    Scale { formation: BTreeMap<String, u32> },
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
}

impl Reply {
    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            version: VERSION,
            ok: false,
            error: Some(message.into()),
            message: None,
            instances: None,
        }
    }

    pub fn message(message: impl Into<String>) -> Reply {
        Reply {
            version: VERSION,
            ok: true,
            error: None,
            message: Some(message.into()),
            instances: None,
        }
    }

    pub fn instances(instances: Vec<InstanceInfo>) -> Reply {
        Reply {
            version: VERSION,
            ok: true,
            error: None,
            message: None,
            instances: Some(instances),
        }
    }
}

/// Parses one request line; the error is the reply's message.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("malformed request: {e}"))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "unsupported protocol version {v} (this pm speaks {VERSION})"
            ));
        }
        None => return Err("request has no \"version\"".into()),
    }
    serde_json::from_value(value).map_err(|e| format!("invalid request: {e}"))
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
                targets: vec!["web.2".into()]
            }
        );
        let r = parse_request(br#"{"version":1,"command":"scale","formation":{"web":3}}"#).unwrap();
        assert_eq!(
            r.command,
            Command::Scale {
                formation: [("web".to_string(), 3)].into_iter().collect()
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

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_request(&bytes);
        }
    }
}
