//! The parsers every setting's value goes through (durations, sizes, counts, booleans,
//! addresses), shared by the core and the capability crates so that the same kind of value is
//! written the same way, and refused with the same message naming the expected form, in every
//! variable.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A duration: `250ms`, `30s`, `5m`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = split_unit(s);
    let n: u64 = num
        .parse()
        .ok()
        .with_context(|| format!("expected a duration such as 30s, 250ms or 5m, got {s:?}"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(
            n.checked_mul(60)
                .with_context(|| format!("duration {s:?} is too long"))?,
        ),
        _ => bail!("expected a duration such as 30s, 250ms or 5m, got {s:?}"),
    })
}

/// A duration above zero (see [`parse_duration`]).
pub fn parse_positive_duration(s: &str) -> Result<Duration> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        bail!("expected a duration above zero, such as 30s or 250ms, got {s:?}");
    }
    Ok(d)
}

/// A size in bytes: `128MiB`, `64M`, `512KiB`, `1GiB`, or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<usize> {
    let (num, unit) = split_unit(s);
    let n: usize = num
        .parse()
        .ok()
        .with_context(|| format!("expected a size such as 128MiB, 64M or 1048576, got {s:?}"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => bail!("expected a size such as 128MiB, 64M or 1048576, got {s:?}"),
    };
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .with_context(|| format!("size {s:?} is too large"))
}

/// A whole number.
pub fn parse_count(s: &str) -> Result<usize> {
    usize::from_str(s).with_context(|| format!("expected a whole number, got {s:?}"))
}

/// A whole number above zero.
pub fn parse_positive_count(s: &str) -> Result<usize> {
    let n = parse_count(s)?;
    if n == 0 {
        bail!("expected a number above zero, got {s:?}");
    }
    Ok(n)
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`).
pub fn parse_bool(s: &str) -> Result<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => bail!("expected true or false, got {s:?}"),
    }
}

/// A socket address such as `127.0.0.1:8080` or `[::1]:8080`.
pub fn parse_addr(s: &str) -> Result<SocketAddr> {
    SocketAddr::from_str(s).with_context(|| {
        format!("expected an address such as 127.0.0.1:8080 or [::1]:8080, got {s:?}")
    })
}

fn split_unit(s: &str) -> (&str, &str) {
    let at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    (&s[..at], s[at..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_mins(2));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(
            parse_duration("999999999999999999m").is_err(),
            "overflow is an error"
        );
        assert!(parse_positive_duration("0s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
