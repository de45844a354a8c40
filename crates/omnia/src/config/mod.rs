//! Configuration: environment variables, and `omnia run` flags for the main ones.
//!
//! Every setting is described once, as a [`Setting`]: its variable, its flag (if it has one),
//! its default and what it means. `omnia run --help` lists every one from these descriptions,
//! grouped by capability ([`SettingGroup`]); the README's table lists the same ones (a test of
//! `omnia-cli` keeps the two equal). Every value is read through [`var`], so a flag and its
//! variable can never disagree: a flag given on the command line overrides the variable (see
//! [`set_overrides`]).
//!
//! The parsers of values live in `parse`, the core's own settings ([`RuntimeConfig`]) in
//! `runtime`; this module holds what every setting shares: its description and how it is read.
//!
//! All settings are read and checked before the component is loaded, and a bad value fails
//! start-up with an error that names the variable (or flag), the value and the expected form.

use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

mod parse;
mod runtime;

pub use parse::{
    parse_addr, parse_bool, parse_count, parse_duration, parse_positive_count,
    parse_positive_duration, parse_size,
};
pub use runtime::{
    MAX_CONCURRENCY, MAX_GUEST_OUTPUT_RATE, MAX_MEMORY_LIMIT, MIN_MEMORY_LIMIT, RuntimeConfig,
    parse_memory_limit,
};

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
