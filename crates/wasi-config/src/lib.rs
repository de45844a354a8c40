//! # wasi:config for Omnia
//!
//! Guests read configuration through `wasi:config/store@0.2.0-rc.1` (`get` and `get-all`; the
//! version `wasmtime-wasi-config` 48 serves, so guests written for `wasmtime run -S config`
//! run unchanged). The host functions are `wasmtime-wasi-config`'s, over values this crate
//! gathers once, at start-up, from what the operator *grants*:
//!
//! * `OMNIA_CONFIG_FILE`: a TOML file of `key = value` pairs (strings, numbers and booleans,
//!   given to the guest as text);
//! * `OMNIA_CONFIG_ENV`: environment variables by name (`FEATURE_FLAGS,REGION`), each visible
//!   under its own name;
//! * `OMNIA_CONFIG_ENV_PREFIX`: every environment variable starting with a prefix (`APP_`),
//!   visible under the rest of its name (`APP_GREETING` as `GREETING`).
//!
//! Nothing else is visible: not the environment as a whole, and never the runtime's own
//! settings, which may hold credentials (see [`RESERVED_PREFIXES`]). A granted variable wins
//! over the file's key of the same name. A bad file or setting stops start-up with the file
//! and line, or the variable, named; values never appear in logs or errors.
//!
//! ```ignore
//! omnia::runtime!({ "http": WasiHttpCtx, "config": ConfigDefault });
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use omnia::config::{Setting, var};
use omnia::{Backend, FromEnv, Host, HostView};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

/// Variables a guest can never be granted, by name or prefix: the runtime's own settings
/// (`REDIS_URL`, `NATS_URL` and `OTEL_EXPORTER_OTLP_HEADERS` may hold credentials).
pub const RESERVED_PREFIXES: &[&str] = &["OMNIA_", "OTEL_", "REDIS_", "NATS_", "RUST_"];

/// The `"config"` entry of a runtime: `wasi:config/store` over the granted values.
#[derive(Clone)]
pub struct ConfigDefault {
    values: Arc<WasiConfigVariables>,
    /// Every value the runtime is configured with, for guests granted keys of it.
    configured: Arc<BTreeMap<String, String>>,
}

impl ConfigDefault {
    /// An entry whose guests see exactly `values`.
    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Self {
        let configured: BTreeMap<String, String> = values.into_iter().collect();
        Self {
            values: Arc::new(configured.clone().into_iter().collect()),
            configured: Arc::new(configured),
        }
    }
}

/// A guest's grants of config (`[guest.grants] config = { keys = ["REGION"], values = {
/// greeting = "hello" } }`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigGrants {
    /// Keys of the runtime's configuration (`OMNIA_CONFIG_*`) it may read.
    #[serde(default)]
    keys: Vec<String>,
    /// Values of its own, which win over a granted key of the same name.
    #[serde(default)]
    values: BTreeMap<String, toml::Value>,
}

/// What a guest is granted: every key and its value, read at start-up.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigOptions {
    /// The values, by key.
    pub values: BTreeMap<String, String>,
    /// Variables `OMNIA_CONFIG_ENV` grants that are not set (reported once started).
    pub unset: Vec<String>,
}

impl std::fmt::Debug for ConfigOptions {
    /// Keys only: values may be secrets the operator chose to grant.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigOptions")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("unset", &self.unset)
            .finish()
    }
}

impl FromEnv for ConfigOptions {
    fn from_env() -> Result<Self> {
        let mut values = match var("OMNIA_CONFIG_FILE", |s| Ok(PathBuf::from(s)))? {
            Some(path) => load_file(&path)?,
            None => BTreeMap::new(),
        };
        let names = var("OMNIA_CONFIG_ENV", parse_names)?.unwrap_or_default();
        let prefix = var("OMNIA_CONFIG_ENV_PREFIX", parse_prefix)?;
        let granted = from_environment(&names, prefix.as_deref(), std::env::vars_os())?;
        // A variable granted by name that is set is in `granted` under its name.
        let unset = names
            .into_iter()
            .filter(|name| !granted.contains_key(name))
            .collect();
        values.extend(granted);
        Ok(Self { values, unset })
    }

    fn settings() -> Vec<Setting> {
        vec![
            Setting {
                env: "OMNIA_CONFIG_FILE",
                flag: None,
                value: "PATH",
                default: "none",
                help: "a TOML file of key = value pairs the guest reads with wasi:config",
            },
            Setting {
                env: "OMNIA_CONFIG_ENV",
                flag: None,
                value: "VAR,...",
                default: "none",
                help: "environment variables the guest may read with wasi:config, by name",
            },
            Setting {
                env: "OMNIA_CONFIG_ENV_PREFIX",
                flag: None,
                value: "PREFIX",
                default: "none",
                help: "environment variables starting with PREFIX, visible to the guest without it",
            },
        ]
    }
}

/// Reads a config file: a TOML table of keys with string, number or boolean values.
pub fn load_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("OMNIA_CONFIG_FILE: cannot read {shown}"))?;
    parse_file(&text).with_context(|| format!("OMNIA_CONFIG_FILE: {shown}"))
}

/// A TOML value as the text a guest reads: strings as they are, numbers, booleans and dates
/// written out; `key` names it in the error for anything else.
fn value_text(key: &str, value: toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        other => bail!(
            "{key:?} is {} {}; wasi:config values are text: use a string, number or boolean",
            if other.is_table() { "a" } else { "an" },
            other.type_str()
        ),
    })
}

fn parse_file(text: &str) -> Result<BTreeMap<String, String>> {
    let table: BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(text).map_err(|err| anyhow::anyhow!("not valid TOML: {err}"))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let line = text[..value.span().start].matches('\n').count() + 1;
            let text = value_text(&key, value.into_inner())
                .map_err(|err| anyhow::anyhow!("line {line}: {err}"))?;
            Ok((key, text))
        })
        .collect()
}

/// `OMNIA_CONFIG_ENV`: comma-separated variable names, none of them reserved.
fn parse_names(s: &str) -> Result<Vec<String>> {
    s.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                bail!("{name:?} is not an environment variable name (letters, digits and _)");
            }
            if let Some(reserved) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
                bail!(
                    "{name} is one of the runtime's own settings ({reserved}*), which may hold \
                     credentials, and cannot be granted to a guest: put the value the guest \
                     needs in another variable or in OMNIA_CONFIG_FILE"
                );
            }
            Ok(name.to_owned())
        })
        .collect()
}

/// `OMNIA_CONFIG_ENV_PREFIX`: a prefix that cannot match a reserved variable.
fn parse_prefix(s: &str) -> Result<String> {
    if let Some(reserved) = RESERVED_PREFIXES
        .iter()
        .find(|p| p.starts_with(s) || s.starts_with(*p))
    {
        bail!(
            "the prefix {s:?} would grant the runtime's own settings ({reserved}*), which may \
             hold credentials: choose a prefix of your own, such as APP_"
        );
    }
    Ok(s.to_owned())
}

/// The granted variables of `environment`: those in `names` under their names, and those
/// starting with `prefix` under the rest of their names.
fn from_environment(
    names: &[String],
    prefix: Option<&str>,
    environment: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<BTreeMap<String, String>> {
    let mut granted = BTreeMap::new();
    for (name, value) in environment {
        let Some(name) = name.to_str() else { continue };
        let by_prefix = prefix
            .and_then(|p| name.strip_prefix(p))
            .filter(|rest| !rest.is_empty());
        let by_name = names.iter().any(|n| n == name);
        if by_prefix.is_none() && !by_name {
            continue;
        }
        let granted_by = if by_name {
            "OMNIA_CONFIG_ENV"
        } else {
            "OMNIA_CONFIG_ENV_PREFIX"
        };
        let value = value
            .into_string()
            .map_err(|_| anyhow::anyhow!("{name} (granted by {granted_by}) is not valid UTF-8"))?;
        if let Some(key) = by_prefix {
            granted.insert(key.to_owned(), value.clone());
        }
        if by_name {
            granted.insert(name.to_owned(), value);
        }
    }
    Ok(granted)
}

impl Backend for ConfigDefault {
    type Options = ConfigOptions;

    async fn connect_with(options: ConfigOptions) -> Result<Self> {
        if !options.unset.is_empty() {
            tracing::warn!(
                "config: OMNIA_CONFIG_ENV grants {}, not set: the guest sees no such key",
                options.unset.join(", ")
            );
        }
        tracing::info!(
            "config: {} key(s) configured (a guest on its own without grants sees them all, any other \
             guest those its grants name)",
            options.values.len()
        );
        Ok(Self::new(options.values))
    }

    /// A guest restricted to its grants sees the keys of the runtime's configuration it is
    /// granted and values of its own, nothing else.
    fn for_guest(&self, guest: &omnia::GuestScope<'_>) -> Result<Self> {
        if !guest.restricted() {
            return Ok(self.clone());
        }
        let grants: ConfigGrants = guest.grants()?;
        let mut visible = BTreeMap::new();
        for key in grants.keys {
            let Some(value) = self.configured.get(&key) else {
                bail!(
                    "keys: {key:?} is not in the runtime's configuration (OMNIA_CONFIG_FILE, \
                     OMNIA_CONFIG_ENV, OMNIA_CONFIG_ENV_PREFIX); configure it, or give the \
                     guest its value in values"
                );
            };
            visible.insert(key, value.clone());
        }
        for (key, value) in grants.values {
            let text = value_text(&key, value).context("values")?;
            visible.insert(key, text);
        }
        Ok(Self {
            values: Arc::new(visible.into_iter().collect()),
            configured: Arc::clone(&self.configured),
        })
    }
}

impl<T: HostView<ConfigDefault>> Host<T> for ConfigDefault {
    fn used_by(engine: &Engine, component: &Component) -> bool {
        omnia::component::imports_interface(engine, component, "wasi:config/")
    }

    fn add_to_linker(linker: &mut Linker<T>, _component: &Component) -> Result<()> {
        wasmtime_wasi_config::add_to_linker(linker, |store: &mut T| {
            WasiConfig::new(&store.host().0.values)
        })
        .map_err(anyhow::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(
        vars: &[(&str, &str)],
    ) -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
        vars.iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn files_give_text_values() {
        let values =
            parse_file("greeting = \"hi\"\nretries = 3\nratio = 0.5\nbeta = true\n").unwrap();
        assert_eq!(values["greeting"], "hi");
        assert_eq!(values["retries"], "3");
        assert_eq!(values["ratio"], "0.5");
        assert_eq!(values["beta"], "true");
    }

    #[test]
    fn file_errors_name_the_line() {
        let err = parse_file("a = \"x\"\nnested = { b = 1 }\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("line 2: \"nested\" is a table"),
            "{err:#}"
        );
        let err = parse_file("a = \"x\"\nb = \n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }

    #[test]
    fn only_granted_variables_are_visible() {
        let names = parse_names("REGION, FLAGS").unwrap();
        let granted = from_environment(
            &names,
            Some("APP_"),
            env(&[
                ("REGION", "eu"),
                ("APP_GREETING", "hello"),
                ("APP_", "nothing after the prefix"),
                ("SECRET_TOKEN", "s3cret"),
                ("NATS_URL", "nats://u:p@h"),
            ]),
        )
        .unwrap();
        let keys: Vec<_> = granted.keys().map(String::as_str).collect();
        assert_eq!(keys, ["GREETING", "REGION"]);
    }

    #[test]
    fn reserved_variables_cannot_be_granted() {
        for name in [
            "NATS_URL",
            "REDIS_URL",
            "OMNIA_HTTP_ADDR",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ] {
            let err = parse_names(name).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        for prefix in ["NATS", "N", "OMNIA_CONFIG_", "REDIS_"] {
            assert!(parse_prefix(prefix).is_err(), "{prefix}");
        }
        assert!(parse_prefix("APP_").is_ok());
        assert!(parse_names("1BAD").is_err());
    }
}
