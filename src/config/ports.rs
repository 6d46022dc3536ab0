//! Port numbers: parsing a base port and the port of each instance.
//!
//! It owns foreman's and honcho's port arithmetic (SPEC §1, Ports): the type
//! at Procfile position i (0-based) gets the block `base + step*i`, and its
//! instance k (1-based) gets `base + step*i + (k-1)`. It is pure arithmetic
//! and parsing: it must never bind, probe or look up a port.

use thiserror::Error;

/// A port that cannot be computed for an instance.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortError {
    /// The computed port does not fit in 16 bits. `port` is the value it
    /// would have had, so the user sees how far off the base or step is.
    #[error("port {port} for \"{name}\" is above 65535")]
    TooHigh { port: u128, name: String },
    /// Instance numbers start at 1; 0 would collide with the previous type's
    /// block, so it is refused rather than wrapped.
    #[error("instance number 0 for \"{name}\" (instances are numbered from 1)")]
    InstanceZero { name: String },
}

/// The message every port parse error ends with.
const PORT_RANGE: &str = "expected a number from 1 to 65535";

/// The port of instance `instance` (1-based) of the type at Procfile position
/// `type_index` (0-based). `name` is the instance as the user sees it
/// (`web.2`), used only in the error message.
pub fn port_for(
    base: u16,
    step: u16,
    type_index: usize,
    instance: u32,
    name: &str,
) -> Result<u16, PortError> {
    if instance == 0 {
        return Err(PortError::InstanceZero {
            name: name.to_string(),
        });
    }
    // u128 cannot overflow: the product is below 2^80 and the sum of three
    // such terms is far below 2^128.
    let port = u128::from(base) + u128::from(step) * type_index as u128 + u128::from(instance - 1);
    u16::try_from(port).map_err(|_| PortError::TooHigh {
        port,
        name: name.to_string(),
    })
}

/// Parses a base port as given to `-p/--port`, in pm.toml or in `PORT`:
/// decimal digits, surrounding whitespace ignored, 1 to 65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(format!("empty port ({PORT_RANGE})"));
    }
    // Only plain digits: `u16::from_str` would also take `+80`.
    if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid port {} ({PORT_RANGE})",
            super::procfile::echo(trimmed)
        ));
    }
    let digits = trimmed.trim_start_matches('0');
    match digits.parse::<u16>() {
        Ok(port) if port >= 1 => Ok(port),
        _ if digits.is_empty() => Err(format!("port 0 is not allowed ({PORT_RANGE})")),
        // All digits and not zero, so the parse failed by being too large.
        _ => Err(format!(
            "port {} is above 65535",
            super::procfile::echo(trimmed)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn foreman_layout() {
        assert_eq!(port_for(5000, 100, 0, 1, "web.1"), Ok(5000));
        assert_eq!(port_for(5000, 100, 0, 2, "web.2"), Ok(5001));
        assert_eq!(port_for(5000, 100, 1, 1, "worker.1"), Ok(5100));
        assert_eq!(port_for(5000, 100, 2, 3, "clock.3"), Ok(5202));
        assert_eq!(port_for(3000, 10, 1, 1, "worker.1"), Ok(3010));
    }

    #[test]
    fn highest_port_is_accepted() {
        assert_eq!(port_for(65535, 100, 0, 1, "web.1"), Ok(65535));
        assert_eq!(port_for(65435, 100, 1, 1, "worker.1"), Ok(65535));
    }

    #[test]
    fn too_high() {
        assert_eq!(
            port_for(65500, 100, 1, 1, "worker.1").map_err(|e| e.to_string()),
            Err(r#"port 65600 for "worker.1" is above 65535"#.to_string())
        );
        assert_eq!(
            port_for(65535, 100, 0, 2, "web.2").map_err(|e| e.to_string()),
            Err(r#"port 65536 for "web.2" is above 65535"#.to_string())
        );
        assert_eq!(
            port_for(65535, 65535, usize::MAX, u32::MAX, "x.1"),
            Err(PortError::TooHigh {
                port: 65535 + 65535 * usize::MAX as u128 + (u32::MAX as u128 - 1),
                name: "x.1".to_string()
            })
        );
    }

    #[test]
    fn instance_zero_is_refused() {
        assert_eq!(
            port_for(5000, 100, 1, 0, "web.0").map_err(|e| e.to_string()),
            Err(r#"instance number 0 for "web.0" (instances are numbered from 1)"#.to_string())
        );
    }

    #[test]
    fn parse_port_accepts() {
        assert_eq!(parse_port("5000"), Ok(5000));
        assert_eq!(parse_port(" 8080\n"), Ok(8080));
        assert_eq!(parse_port("1"), Ok(1));
        assert_eq!(parse_port("65535"), Ok(65535));
        assert_eq!(parse_port("0080"), Ok(80));
    }

    #[test]
    fn parse_port_errors() {
        assert_eq!(
            parse_port(""),
            Err("empty port (expected a number from 1 to 65535)".into())
        );
        assert_eq!(
            parse_port("  "),
            Err("empty port (expected a number from 1 to 65535)".into())
        );
        assert_eq!(
            parse_port("abc"),
            Err(r#"invalid port "abc" (expected a number from 1 to 65535)"#.into())
        );
        assert_eq!(
            parse_port("-1"),
            Err(r#"invalid port "-1" (expected a number from 1 to 65535)"#.into())
        );
        assert_eq!(
            parse_port("+80"),
            Err(r#"invalid port "+80" (expected a number from 1 to 65535)"#.into())
        );
        assert_eq!(
            parse_port("80 81"),
            Err(r#"invalid port "80 81" (expected a number from 1 to 65535)"#.into())
        );
        assert_eq!(
            parse_port("0"),
            Err("port 0 is not allowed (expected a number from 1 to 65535)".into())
        );
        assert_eq!(
            parse_port("000"),
            Err("port 0 is not allowed (expected a number from 1 to 65535)".into())
        );
        assert_eq!(
            parse_port("65536"),
            Err(r#"port "65536" is above 65535"#.into())
        );
        assert_eq!(
            parse_port("99999999999999999999999"),
            Err(r#"port "99999999999999999999999" is above 65535"#.into())
        );
    }

    proptest! {
        #[test]
        fn parse_port_never_panics(s in any::<String>()) {
            if let Ok(p) = parse_port(&s) {
                prop_assert!(p >= 1);
            }
        }

        #[test]
        fn parse_port_round_trips(p in 1u16..=65535) {
            prop_assert_eq!(parse_port(&p.to_string()), Ok(p));
        }

        #[test]
        fn port_for_never_panics(
            base in any::<u16>(), step in any::<u16>(), i in any::<usize>(), k in any::<u32>(),
        ) {
            let _ = port_for(base, step, i, k, "x.1");
        }

        /// With at most `step` instances per type, no two distinct
        /// instances share a port.
        #[test]
        fn ports_never_collide(
            base in 1u16..=65535,
            step in 1u16..=300,
            counts in prop::collection::vec(0u32..300, 1..8),
        ) {
            let mut seen: HashMap<u16, (usize, u32)> = HashMap::new();
            for (i, &count) in counts.iter().enumerate() {
                // At most `step` instances per type, the documented condition.
                let count = count % (u32::from(step) + 1);
                for k in 1..=count {
                    if let Ok(port) = port_for(base, step, i, k, "x") {
                        prop_assert_eq!(port as u64, base as u64 + step as u64 * i as u64 + (k - 1) as u64);
                        if let Some(other) = seen.insert(port, (i, k)) {
                            prop_assert!(false, "{:?} and {:?} share port {}", other, (i, k), port);
                        }
                    }
                }
            }
        }
    }
}
