//! The `HH:MM:SS` local-time text of the prefix, computed at most once per
//! second: converting to local time costs far more than framing a line, and
//! a busy child writes many thousand lines per second.

use std::time::{SystemTime, UNIX_EPOCH};

/// A cache of the current local time as `HH:MM:SS`, keyed by the unix second.
///
/// Each relay and the runtime keep one; any thread may create one, since the
/// conversion ([`crate::process::local_time`]) reads only an environment
/// that pm never changes.
#[derive(Debug, Clone)]
pub struct Clock {
    second: i64,
    text: [u8; 8],
    /// The unix time of the last [`Clock::now`], in milliseconds: the time
    /// the scrollback keeps with each line.
    millis: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock already holding the current time.
    pub fn new() -> Self {
        let mut clock = Clock {
            second: i64::MIN,
            text: *b"00:00:00",
            millis: 0,
        };
        clock.now();
        clock
    }

    /// The current local time as `HH:MM:SS`.
    pub fn now(&mut self) -> [u8; 8] {
        self.millis = unix_millis();
        self.at(i64::try_from(self.millis / 1000).unwrap_or(i64::MAX))
    }

    /// The unix time of the last [`Clock::now`], in milliseconds.
    pub fn millis(&self) -> u64 {
        self.millis
    }

    /// `second` (unix time) as local `HH:MM:SS`: how a line kept in the
    /// scrollback shows the time it was received.
    pub fn at(&mut self, second: i64) -> [u8; 8] {
        if second != self.second {
            self.second = second;
            self.text = local_hms(second);
        }
        self.text
    }
}

/// The current unix time in milliseconds; a clock set before 1970 reads as
/// 1970 rather than failing, since only the printed time suffers.
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
fn unix_second() -> i64 {
    i64::try_from(unix_millis() / 1000).unwrap_or(i64::MAX)
}

/// `second` as local `HH:MM:SS`, or as UTC when the C library cannot convert
/// it (an out-of-range time): a wrong zone is better than no line.
fn local_hms(second: i64) -> [u8; 8] {
    if let Some((hour, minute, sec)) = crate::process::local_time(second) {
        return hms(hour, minute, sec);
    }
    let of_day = second.rem_euclid(86_400);
    // The values are below 86 400, so the conversions cannot fail.
    let part = |v: i64| i32::try_from(v).unwrap_or(0);
    hms(
        part(of_day / 3600),
        part(of_day / 60 % 60),
        part(of_day % 60),
    )
}

fn hms(hour: i32, minute: i32, second: i32) -> [u8; 8] {
    let digits = |v: i32| {
        // Clamped so a bogus value still prints two digits.
        let v = u8::try_from(v.clamp(0, 99)).unwrap_or(0);
        [b'0' + v / 10, b'0' + v % 10]
    };
    let [h1, h2] = digits(hour);
    let [m1, m2] = digits(minute);
    let [s1, s2] = digits(second);
    [h1, h2, b':', m1, m2, b':', s1, s2]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn field(text: &[u8; 8], at: usize) -> u32 {
        let s = std::str::from_utf8(&text[at..at + 2]).unwrap();
        s.parse().unwrap()
    }

    #[test]
    fn formats_two_digit_fields() {
        assert_eq!(&hms(0, 0, 0), b"00:00:00");
        assert_eq!(&hms(9, 5, 7), b"09:05:07");
        assert_eq!(&hms(23, 59, 60), b"23:59:60");
    }

    #[test]
    fn now_has_the_hh_mm_ss_shape() {
        let mut clock = Clock::default();
        let second = unix_second();
        let text = clock.now();
        assert_eq!(text[2], b':');
        assert_eq!(text[5], b':');
        for at in [0, 1, 3, 4, 6, 7] {
            assert!(
                text[at].is_ascii_digit(),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
        assert!(field(&text, 0) < 24);
        assert!(field(&text, 3) < 60);
        assert!(field(&text, 6) < 61);
        // Every zone in use today is offset by whole minutes, so the seconds
        // are the unix seconds' (allow for the second ticking in between).
        let seconds = u32::try_from(second % 60).unwrap();
        let printed = field(&text, 6);
        assert!(printed == seconds || printed == (seconds + 1) % 60);
    }

    #[test]
    fn conversion_is_cached_per_second() {
        let mut clock = Clock::new();
        let before = unix_second();
        clock.second = before;
        clock.text = *b"cached!!";
        let text = clock.now();
        if unix_second() == before {
            assert_eq!(&text, b"cached!!");
        }
        // A different second is converted again.
        clock.second = before - 1000;
        clock.text = *b"stale!!!";
        assert_ne!(&clock.now(), b"stale!!!");
    }

    #[test]
    fn local_time_of_a_fixed_second_is_well_formed() {
        let text = local_hms(1_700_000_000);
        assert_eq!(text[2], b':');
        // 1 700 000 000 is 22:13:20 UTC; whole-minute zones keep the seconds.
        assert_eq!(&text[6..], b"20");
    }
}
