//! Configuration: environment variables, and `omnia run` flags for the main ones.
//!
//! Every setting is described once, as a [`Setting`]: its variable, its flag (if it has one),
//! its default and what it means. `omnia run --help` lists every one from these descriptions,
//! grouped by capability ([`SettingGroup`]); the README's table lists the same ones (a test of
//! `omnia-cli` keeps the two equal). Every value is read through [`var`], so a flag and its
//! variable can never disagree: a flag given on the command line overrides the variable (see
//! [`set_overrides`]).
//!
//! All settings are read and checked before the component is loaded, and a bad value fails
//! start-up with an error that names the variable (or flag), the value and the expected form.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub use crate::secrets::{Secrets, redact_url};

/// Builds options from environment variables (and the flags that override them).
pub trait FromEnv: Sized {
    /// Reads the options; fails naming the variable when a value is malformed.
    fn from_env() -> Result<Self>;

    /// The settings [`FromEnv::from_env`] reads, for `--help` and the documentation.
    fn settings() -> Vec<Setting> {
        Vec::new()
    }
}

impl FromEnv for () {
    fn from_env() -> Result<Self> {
        Ok(())
    }
}

/// One setting: an environment variable, and for the main ones a flag of `omnia run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable, e.g. `OMNIA_HTTP_ADDR`.
    pub env: &'static str,
    /// The long flag of `omnia run` that overrides it, e.g. `listen` for `--listen`; `None` for
    /// settings that are environment-only (secrets, which would show in `ps`, and rare ones).
    pub flag: Option<&'static str>,
    /// The placeholder of the value in help text, e.g. `ADDR`.
    pub value: &'static str,
    /// The default, as shown to users.
    pub default: &'static str,
    /// What it does, one line.
    pub help: &'static str,
}

impl Setting {
    /// A setting with no flag (secrets, which would show in `ps`, and rare ones).
    pub const fn env_only(
        env: &'static str,
        value: &'static str,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        Self {
            env,
            flag: None,
            value,
            default,
            help,
        }
    }
}

/// The settings of one capability (or of the runtime itself), under one heading of
/// `omnia run --help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingGroup {
    /// The heading, e.g. `Key-value`.
    pub title: &'static str,
    /// Its settings, in the order they are shown.
    pub settings: Vec<Setting>,
}

impl SettingGroup {
    /// The group `title` of `settings`.
    pub fn new(title: &'static str, settings: Vec<Setting>) -> Self {
        Self { title, settings }
    }

    /// `groups` with each setting listed once, under the first group that has it (`NATS_URL`
    /// is both key-value's and messaging's), and without empty groups.
    pub fn each_once(mut groups: Vec<Self>) -> Vec<Self> {
        let mut seen = std::collections::HashSet::new();
        for group in &mut groups {
            group.settings.retain(|s| seen.insert(s.env));
        }
        groups.retain(|g| !g.settings.is_empty());
        groups
    }
}

/// Values given as flags, which take precedence over the environment: (setting, value).
static OVERRIDES: OnceLock<Vec<(Setting, String)>> = OnceLock::new();

/// Installs the values given as flags on the command line; [`var`] prefers them to the
/// environment. Called once, by the command line parser, before any setting is read.
pub fn set_overrides(values: Vec<(Setting, String)>) {
    let _ = OVERRIDES.set(values);
}

/// Reads `name` (a flag's value if one was given, else the environment) and parses it with
/// `parse`; `Ok(None)` when unset or empty. The error names the variable (and the flag), the
/// value and what `parse` expected.
pub fn var<T>(name: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Option<T>> {
    let Some((raw, flag)) = raw_var(name)? else {
        return Ok(None);
    };
    parse(raw.trim())
        .map(Some)
        .with_context(|| format!("{} is not valid", describe(name, flag, &raw)))
}

/// Like [`var`], for a URL that may hold credentials: neither the error nor anything `parse`
/// said shows a password or token (see [`redact_url`] and [`Secrets`]).
pub fn url_var<T>(name: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Option<T>> {
    let Some((raw, flag)) = raw_var(name)? else {
        return Ok(None);
    };
    let secrets = Secrets::of_url(&raw);
    parse(raw.trim()).map(Some).map_err(|err| {
        let shown = redact_url(raw.trim());
        secrets
            .scrub_error(&err)
            .context(format!("{} is not valid", describe(name, flag, &shown)))
    })
}

/// `VAR="value"`, or `--flag "value" (VAR)` for a value given as a flag.
fn describe(name: &str, flag: Option<&str>, value: &str) -> String {
    match flag {
        Some(flag) => format!("--{flag} {value:?} ({name})"),
        None => format!("{name}={value:?}"),
    }
}

/// The raw value of `name` and the flag it was given with, if any: the flag's value, else the
/// environment; `None` when unset or blank.
fn raw_var(name: &str) -> Result<Option<(String, Option<&'static str>)>> {
    let given = OVERRIDES
        .get()
        .and_then(|o| o.iter().find(|(setting, _)| setting.env == name));
    if let Some((setting, value)) = given {
        return Ok(Some((value.clone(), setting.flag)).filter(|(v, _)| !v.trim().is_empty()));
    }
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some((v, None))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

/// The runtime-wide limits and addresses (the `OMNIA_*` variables of the core).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `OMNIA_REQUEST_TIMEOUT`: how long one guest call may run (default 30 s).
    pub request_timeout: Duration,
    /// `OMNIA_MAX_MEMORY`: linear memory limit per instance (default 128 MiB, at most 4 GiB).
    pub max_memory: usize,
    /// `OMNIA_MEMORY_BUDGET`: linear memory of all instances together (default: three quarters
    /// of the memory available to the process). Work that would exceed it is refused with 503.
    pub memory_budget: usize,
    /// `OMNIA_MAX_CONCURRENCY`: requests or messages in flight at once, all triggers together
    /// (default 256); more are refused (HTTP 503) or wait (messages), never queued without bound.
    pub max_concurrency: usize,
    /// `OMNIA_SHUTDOWN_GRACE`: how long in-flight work may take to finish after SIGTERM (default 30 s).
    pub shutdown_grace: Duration,
    /// `OMNIA_ADMIN_ADDR`: where `/livez`, `/readyz` and `/metrics` are served (default: not served).
    pub admin_addr: Option<SocketAddr>,
    /// `OMNIA_COMPILE_CACHE`: directory where code compiled from `.wasm` is cached between
    /// runs (default `$XDG_CACHE_HOME/omnia` or `~/.cache/omnia`; `off` disables it).
    pub compile_cache: Option<PathBuf>,
    /// `OMNIA_MAX_COMPONENT_SIZE`: the largest component file `omnia run` reads (default 256 MiB).
    pub max_component_size: usize,
    /// `OMNIA_HTTP_HEADER_TIMEOUT`: how long a client may take to send a request's headers once
    /// it started (default 10 s). Applies to every HTTP listener, the admin one included.
    pub header_timeout: Duration,
    /// `OMNIA_HTTP_IDLE_TIMEOUT`: how long a connection may stay open with no request (default
    /// 60 s).
    pub idle_timeout: Duration,
    /// `OMNIA_GUEST_OUTPUT_RATE`: lines a second that served guests may write to stdout and
    /// stderr, all instances together (default 100, with a burst of ten seconds' worth; 0 drops
    /// everything). See [`crate::guest_output`].
    pub guest_output_rate: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_memory: 128 << 20,
            memory_budget: default_memory_budget(),
            max_concurrency: 256,
            shutdown_grace: Duration::from_secs(30),
            admin_addr: None,
            compile_cache: default_cache_dir(),
            max_component_size: 256 << 20,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_mins(1),
            guest_output_rate: 100,
        }
    }
}

/// The largest `OMNIA_MAX_MEMORY`: a 32-bit WebAssembly memory cannot grow past 4 GiB.
pub const MAX_MEMORY_LIMIT: usize = 4 << 30;
/// The smallest `OMNIA_MAX_MEMORY`: one WebAssembly page.
pub const MIN_MEMORY_LIMIT: usize = 64 << 10;
/// The largest accepted `OMNIA_MAX_CONCURRENCY`.
pub const MAX_CONCURRENCY: usize = 1_000_000;
/// The largest accepted `OMNIA_GUEST_OUTPUT_RATE`.
pub const MAX_GUEST_OUTPUT_RATE: usize = 1_000_000;

impl FromEnv for RuntimeConfig {
    fn from_env() -> Result<Self> {
        let d = Self::default();
        let max_concurrency = var("OMNIA_MAX_CONCURRENCY", |s| {
            in_range(parse_count(s)?, 1, MAX_CONCURRENCY, s)
        })?
        .unwrap_or(d.max_concurrency);
        let max_memory = var("OMNIA_MAX_MEMORY", |s| {
            let size = parse_size(s)?;
            if !(MIN_MEMORY_LIMIT..=MAX_MEMORY_LIMIT).contains(&size) {
                bail!("expected a size from 64KiB to 4GiB (the most a 32-bit WebAssembly memory can hold), got {s:?}");
            }
            Ok(size)
        })?
        .unwrap_or(d.max_memory);
        let memory_budget = var("OMNIA_MEMORY_BUDGET", |s| {
            let size = parse_size(s)?;
            if size < MIN_MEMORY_LIMIT {
                bail!("expected at least 64KiB, got {s:?}");
            }
            Ok(size)
        })?
        .unwrap_or(d.memory_budget);
        Ok(Self {
            request_timeout: var("OMNIA_REQUEST_TIMEOUT", parse_positive_duration)?
                .unwrap_or(d.request_timeout),
            max_memory,
            memory_budget,
            max_concurrency,
            shutdown_grace: var("OMNIA_SHUTDOWN_GRACE", parse_duration)?
                .unwrap_or(d.shutdown_grace),
            admin_addr: var("OMNIA_ADMIN_ADDR", parse_addr)?.or(d.admin_addr),
            compile_cache: match var("OMNIA_COMPILE_CACHE", |s| Ok(s.to_string()))? {
                None => d.compile_cache,
                Some(off) if off == "off" => None,
                Some(dir) => Some(PathBuf::from(dir)),
            },
            max_component_size: var("OMNIA_MAX_COMPONENT_SIZE", parse_size)?
                .unwrap_or(d.max_component_size),
            header_timeout: var("OMNIA_HTTP_HEADER_TIMEOUT", parse_positive_duration)?
                .unwrap_or(d.header_timeout),
            idle_timeout: var("OMNIA_HTTP_IDLE_TIMEOUT", parse_positive_duration)?
                .unwrap_or(d.idle_timeout),
            guest_output_rate: var("OMNIA_GUEST_OUTPUT_RATE", |s| {
                let rate = in_range(parse_count(s)?, 0, MAX_GUEST_OUTPUT_RATE, s)?;
                Ok(u32::try_from(rate)?)
            })?
            .unwrap_or(d.guest_output_rate),
        })
    }

    fn settings() -> Vec<Setting> {
        vec![
            // Read by the log subscriber (`telemetry::init`), not through `var`.
            Setting::env_only(
                "RUST_LOG",
                "FILTER",
                crate::telemetry::DEFAULT_FILTER,
                "log filter (tracing's EnvFilter); logs go to stderr",
            ),
            Setting {
                env: "OMNIA_REQUEST_TIMEOUT",
                flag: Some("request-timeout"),
                value: "DURATION",
                default: "30s",
                help: "deadline of one guest call; past it the guest is stopped (HTTP 504)",
            },
            Setting {
                env: "OMNIA_MAX_MEMORY",
                flag: Some("max-memory"),
                value: "SIZE",
                default: "128MiB",
                help: "linear memory limit of one instance (64KiB to 4GiB); exceeding it fails the request (500)",
            },
            Setting {
                env: "OMNIA_MEMORY_BUDGET",
                flag: Some("memory-budget"),
                value: "SIZE",
                default: "3/4 of RAM",
                help: "linear memory of all instances together; work past it is refused (HTTP 503), never the OOM killer",
            },
            Setting {
                env: "OMNIA_MAX_CONCURRENCY",
                flag: Some("max-concurrency"),
                value: "N",
                default: "256",
                help: "requests and messages in flight at once, all triggers together (1 to 1000000); more get 503",
            },
            Setting {
                env: "OMNIA_SHUTDOWN_GRACE",
                flag: Some("shutdown-grace"),
                value: "DURATION",
                default: "30s",
                help: "how long in-flight work may take after SIGTERM; a second signal exits at once",
            },
            Setting {
                env: "OMNIA_ADMIN_ADDR",
                flag: Some("admin"),
                value: "ADDR",
                default: "off",
                help: "serve /livez, /readyz and /metrics on this address",
            },
            Setting {
                env: "OMNIA_HTTP_HEADER_TIMEOUT",
                flag: None,
                value: "DURATION",
                default: "10s",
                help: "how long a client may take to send a request's headers once it started (every HTTP listener)",
            },
            Setting {
                env: "OMNIA_HTTP_IDLE_TIMEOUT",
                flag: None,
                value: "DURATION",
                default: "60s",
                help: "how long a connection may stay open without a request (every HTTP listener)",
            },
            Setting {
                env: "OMNIA_MAX_COMPONENT_SIZE",
                flag: None,
                value: "SIZE",
                default: "256MiB",
                help: "largest component file `omnia run` reads",
            },
            Setting {
                env: "OMNIA_GUEST_OUTPUT_RATE",
                flag: Some("guest-output-rate"),
                value: "N",
                default: "100",
                help: "lines a second served guests may write to stdout and stderr together (burst: 10 s worth); more are dropped and counted; 0 drops all",
            },
            Setting {
                env: "OMNIA_COMPILE_CACHE",
                flag: Some("compile-cache"),
                value: "DIR|off",
                default: "~/.cache/omnia",
                help: "where code compiled from .wasm is cached between runs ($XDG_CACHE_HOME/omnia if set); off disables it",
            },
        ]
    }
}

fn in_range(n: usize, min: usize, max: usize, s: &str) -> Result<usize> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        bail!("expected a whole number from {min} to {max}, got {s:?}")
    }
}

/// `$XDG_CACHE_HOME/omnia`, else `$HOME/.cache/omnia`, else none.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("omnia"))
}

/// Three quarters of the memory this process may use: the cgroup's limit when there is one
/// (containers), else the machine's RAM; 8 GiB when neither can be read.
fn default_memory_budget() -> usize {
    let ram = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        });
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| {
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<usize>()
            .ok()
    });
    let available = match (ram, cgroup) {
        (Some(ram), Some(limit)) => ram.min(limit),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => 32 << 30,
    };
    available / 4 * 3
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

    #[test]
    fn settings_are_unique_and_documented() {
        let settings = RuntimeConfig::settings();
        for s in &settings {
            assert!(
                s.env.starts_with("OMNIA_") || s.env == "RUST_LOG",
                "{}",
                s.env
            );
            assert!(!s.help.is_empty() && !s.default.is_empty(), "{}", s.env);
            let same = settings
                .iter()
                .filter(|o| o.env == s.env || (o.flag.is_some() && o.flag == s.flag));
            assert_eq!(same.count(), 1, "{} is listed once", s.env);
        }
    }

    #[test]
    fn budget_default_is_positive() {
        assert!(default_memory_budget() >= MIN_MEMORY_LIMIT);
    }
}
