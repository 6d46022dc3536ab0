//! Fuzzes `pm::config::ports::parse_port` (on the whole input as text) and
//! `port_for` (on the first 12 bytes as numbers).
//!
//! Invariants beyond "no panic", against an independent oracle:
//! - `parse_port` accepts exactly the inputs that are, once trimmed, ASCII
//!   digits with a value from 1 to 65535, and returns that value; its errors
//!   are one non-empty line.
//! - `port_for(base, step, i, k)` is `base + step*i + (k-1)` when k >= 1 and
//!   that fits in 16 bits, and an error otherwise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm::config::ports::{PortError, parse_port, port_for};
use pm_fuzz::{is_one_line, text};

fn oracle(s: &str) -> Option<u16> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = t.trim_start_matches('0');
    if digits.len() > 5 {
        return None;
    }
    let value: u32 = digits.bytes().fold(0, |v, b| v * 10 + u32::from(b - b'0'));
    (1..=65535).contains(&value).then_some(value as u16)
}

fuzz_target!(|data: &[u8]| {
    let text = text(data);
    match parse_port(&text) {
        Ok(port) => assert_eq!(Some(port), oracle(&text), "accepted {text:?}"),
        Err(message) => {
            assert_eq!(oracle(&text), None, "rejected {text:?}: {message}");
            assert!(!message.is_empty());
            assert!(is_one_line(&message), "multi-line error: {message:?}");
        }
    }

    if data.len() >= 12 {
        let base = u16::from_le_bytes([data[0], data[1]]);
        let step = u16::from_le_bytes([data[2], data[3]]);
        let index = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
        let instance = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
        let expected = u128::from(base)
            + u128::from(step) * index as u128
            + u128::from(instance.saturating_sub(1));
        match port_for(base, step, index, instance, "web.1") {
            Ok(port) => {
                assert!(instance >= 1);
                assert_eq!(u128::from(port), expected);
            }
            Err(PortError::InstanceZero { .. }) => assert_eq!(instance, 0),
            Err(e @ PortError::TooHigh { port, .. }) => {
                assert!(instance >= 1);
                assert_eq!(port, expected);
                assert!(expected > 65535);
                assert!(is_one_line(&e.to_string()));
            }
        }
    }
});
