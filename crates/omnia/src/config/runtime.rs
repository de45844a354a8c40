//! The core's own settings (the `OMNIA_*` variables): the limits, addresses and caches every
//! Omnia runtime has whatever capabilities it links, with their defaults and their `--help`
//! descriptions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use super::{
    FromEnv, Setting, parse_addr, parse_count, parse_duration, parse_positive_duration, parse_size,
    var,
};

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

/// A memory limit per instance (`OMNIA_MAX_MEMORY`, a guest's `limits.memory`): a size from
/// [`MIN_MEMORY_LIMIT`] to [`MAX_MEMORY_LIMIT`].
///
/// # Errors
///
/// `s` is not a size, or out of that range.
pub fn parse_memory_limit(s: &str) -> Result<usize> {
    let size = parse_size(s)?;
    if !(MIN_MEMORY_LIMIT..=MAX_MEMORY_LIMIT).contains(&size) {
        bail!(
            "expected a size from 64KiB to 4GiB (the most a 32-bit WebAssembly memory can hold), \
             got {s:?}"
        );
    }
    Ok(size)
}

impl FromEnv for RuntimeConfig {
    fn from_env() -> Result<Self> {
        let d = Self::default();
        let max_concurrency = var("OMNIA_MAX_CONCURRENCY", |s| {
            in_range(parse_count(s)?, 1, MAX_CONCURRENCY, s)
        })?
        .unwrap_or(d.max_concurrency);
        let max_memory = var("OMNIA_MAX_MEMORY", parse_memory_limit)?.unwrap_or(d.max_memory);
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
                env: "OMNIA_MANIFEST",
                flag: Some("manifest"),
                value: "PATH",
                default: "./omnia.toml",
                help: "the application's manifest (an omnia.toml, or a directory holding one), when no component is given",
            },
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

/// `n` if it is from `min` to `max`, else an error quoting `s`.
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

#[cfg(test)]
mod tests {
    use super::*;

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
