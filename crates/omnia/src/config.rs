//! Configuration from environment variables.
//!
//! Every setting has a documented variable and a default; a bad value fails start-up with an
//! error that names the variable, the value and the expected form.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Builds options from environment variables.
pub trait FromEnv: Sized {
    /// Reads the options; fails naming the variable when a value is malformed.
    fn from_env() -> Result<Self>;
}

impl FromEnv for () {
    fn from_env() -> Result<Self> {
        Ok(())
    }
}

/// The runtime-wide limits and addresses (the `OMNIA_*` variables of the core).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `OMNIA_REQUEST_TIMEOUT`: how long one guest call may run (default 30 s).
    pub request_timeout: Duration,
    /// `OMNIA_MAX_MEMORY`: linear memory limit per instance (default 128 MiB).
    pub max_memory: usize,
    /// `OMNIA_MAX_CONCURRENCY`: requests or messages in flight at once (default 256); more are
    /// refused (HTTP 503) instead of queued without bound.
    pub max_concurrency: usize,
    /// `OMNIA_SHUTDOWN_GRACE`: how long in-flight work may take to finish after SIGTERM (default 30 s).
    pub shutdown_grace: Duration,
    /// `OMNIA_ADMIN_ADDR`: where `/livez` and `/readyz` are served (default: not served).
    pub admin_addr: Option<SocketAddr>,
    /// `OMNIA_COMPILE_CACHE`: directory where code compiled from `.wasm` is cached between
    /// runs (default `$XDG_CACHE_HOME/omnia` or `~/.cache/omnia`; `off` disables it).
    pub compile_cache: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_memory: 128 << 20,
            max_concurrency: 256,
            shutdown_grace: Duration::from_secs(30),
            admin_addr: None,
            compile_cache: default_cache_dir(),
        }
    }
}

impl FromEnv for RuntimeConfig {
    fn from_env() -> Result<Self> {
        let d = Self::default();
        let max_concurrency =
            var("OMNIA_MAX_CONCURRENCY", parse_count)?.unwrap_or(d.max_concurrency);
        if !(1..=MAX_CONCURRENCY).contains(&max_concurrency) {
            bail!(
                "OMNIA_MAX_CONCURRENCY={max_concurrency} is not valid: expected a whole number \
                 from 1 to {MAX_CONCURRENCY}"
            );
        }
        Ok(Self {
            request_timeout: var("OMNIA_REQUEST_TIMEOUT", parse_duration)?
                .unwrap_or(d.request_timeout),
            max_memory: var("OMNIA_MAX_MEMORY", parse_size)?.unwrap_or(d.max_memory),
            max_concurrency,
            shutdown_grace: var("OMNIA_SHUTDOWN_GRACE", parse_duration)?
                .unwrap_or(d.shutdown_grace),
            admin_addr: var("OMNIA_ADMIN_ADDR", parse_addr)?.or(d.admin_addr),
            compile_cache: match var("OMNIA_COMPILE_CACHE", |s| Ok(s.to_string()))? {
                None => d.compile_cache,
                Some(off) if off == "off" => None,
                Some(dir) => Some(PathBuf::from(dir)),
            },
        })
    }
}

/// `$XDG_CACHE_HOME/omnia`, else `$HOME/.cache/omnia`, else none.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("omnia"))
}

/// The largest accepted `OMNIA_MAX_CONCURRENCY`.
pub const MAX_CONCURRENCY: usize = 1_000_000;

/// Reads `name` and parses it with `parse`; `Ok(None)` when unset or empty. The error names the
/// variable, the value and what `parse` expected.
pub fn var<T>(name: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => parse(v.trim())
            .map(Some)
            .with_context(|| format!("{name}={v:?} is not valid")),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

/// Like [`var`], for a URL that may hold credentials: the error shows the value with its
/// password hidden (see [`redact_url`]).
pub fn url_var<T>(name: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => parse(v.trim())
            .map(Some)
            .with_context(|| format!("{name}={:?} is not valid", redact_url(v.trim()))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

/// `url` with the password (or token) of its user-info replaced by `***`, so it can go into
/// logs and error messages: `redis://app:secret@host` becomes `redis://app:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return url.to_owned();
    };
    let user_info = &url[scheme_end..at];
    let hidden = match user_info.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{}{hidden}{}", &url[..scheme_end], &url[at..])
}

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

/// A positive whole number.
pub fn parse_count(s: &str) -> Result<usize> {
    usize::from_str(s).with_context(|| format!("expected a whole number, got {s:?}"))
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
    }

    #[test]
    fn redacted_urls() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://app:p@ss@h"), "redis://app:***@h");
        assert_eq!(redact_url("nats://token@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("nats://h/x@y"), "nats://h/x@y");
        assert_eq!(redact_url("not a url"), "not a url");
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
