//! Local time of day from the C library, the one clock call without a safe
//! wrapper in nix.

/// `second` (unix time) as local (hour, minute, second), or None when the C
/// library cannot convert it (an out-of-range time).
///
/// The first conversion reads `TZ` from the environment. That is safe from
/// any thread because pm never changes its own environment: it calls no
/// `set_var`, and env files are parsed, never loaded into it.
pub fn local_time(second: i64) -> Option<(i32, i32, i32)> {
    // `time_t` is 32 bits on some targets, where the conversion can fail;
    // on 64-bit targets it is the identity.
    #[allow(clippy::useless_conversion)]
    let time: libc::time_t = second.try_into().ok()?;
    // SAFETY: an all-zero `tm` is a valid value (integers and a null
    // `tm_zone` pointer); `localtime_r` only writes into it and is
    // thread-safe, unlike `localtime`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let converted = unsafe { libc::localtime_r(&time, &mut tm) };
    (!converted.is_null()).then_some((tm.tm_hour, tm.tm_min, tm.tm_sec))
}
