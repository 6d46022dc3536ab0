//! Port arithmetic, exactly as foreman and honcho compute it: the type at
//! Procfile position i gets `base + step*i`, its instance k gets `+ (k-1)`.

/// The port of instance `instance` (1-based) of the type at `type_index`
/// (0-based). `name` (`web.2`) only serves the error message.
pub fn port_for(
    base: u16,
    step: u16,
    type_index: usize,
    instance: u32,
    name: &str,
) -> Result<u16, String> {
    let port = u64::from(base)
        + u64::from(step) * type_index as u64
        + u64::from(instance.saturating_sub(1));
    u16::try_from(port).map_err(|_| format!("port {port} for \"{name}\" is above 65535"))
}

/// Parses a port given by the user (`-p`, `PORT`): 1 to 65535.
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is not between 1 and 65535")),
        Err(_) => Err(format!(
            "invalid port \"{}\" (expected a number from 1 to 65535)",
            text.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn foreman_ports() {
        assert_eq!(port_for(5000, 100, 0, 1, "web.1"), Ok(5000));
        assert_eq!(port_for(5000, 100, 0, 3, "web.3"), Ok(5002));
        assert_eq!(port_for(5000, 100, 2, 2, "clock.2"), Ok(5201));
        assert_eq!(port_for(3000, 10, 1, 1, "w.1"), Ok(3010));
        assert_eq!(
            port_for(65500, 100, 1, 1, "worker.1"),
            Err("port 65600 for \"worker.1\" is above 65535".into())
        );
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_port("5000"), Ok(5000));
        assert_eq!(parse_port(" 80 "), Ok(80));
        assert_eq!(
            parse_port("0"),
            Err("port 0 is not between 1 and 65535".into())
        );
        assert_eq!(
            parse_port("70000"),
            Err("port 70000 is not between 1 and 65535".into())
        );
        assert_eq!(
            parse_port("http"),
            Err("invalid port \"http\" (expected a number from 1 to 65535)".into())
        );
    }

    proptest! {
        #[test]
        fn ports_never_collide(types in 1usize..20, counts in proptest::collection::vec(1u32..100, 20)) {
            let mut seen = std::collections::HashSet::new();
            for (t, &count) in counts.iter().enumerate().take(types) {
                for k in 1..=count {
                    let p = port_for(1000, 100, t, k, "x").unwrap();
                    prop_assert!(seen.insert(p), "collision at {}", p);
                }
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = parse_port(&s);
        }
    }
}
