//! Profiles (`profiles/<name>.toml`), read exactly as `nix/lib/profiles.nix` reads them: the
//! same checks with the same messages, the same cargo features, services and image
//! configuration. `cargo xtask profiles` prints this reading as JSON, and a test compares it
//! with the Nix one.
//!
//! The capabilities, their backends and the cargo features behind each come from one table,
//! `crates/omnia-cli/capabilities.toml`, which the Nix library reads too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use toml::{Table, Value};

/// The numeric non-root user every image runs as.
pub const IMAGE_USER: &str = "10001:10001";
/// The creation date of every image (fixed, so that images are reproducible).
pub const IMAGE_CREATED: &str = "1970-01-01T00:00:01Z";

const TOP_KEYS: &[&str] = &["description", "jit", "capabilities", "oci"];
const OCI_KEYS: &[&str] = &["ports", "env", "labels"];

/// One backend of a capability: the cargo features that compile it in and the services a test
/// of it needs.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Backend {
    /// Cargo features of `omnia-cli`.
    pub features: Vec<String>,
    /// Services (`redis`, `nats`) a test must start.
    pub services: Vec<String>,
}

/// One capability of the catalog.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Capability {
    /// The backend `true` selects.
    pub default: String,
    /// Backends by name.
    pub backends: BTreeMap<String, Backend>,
}

/// `crates/omnia-cli/capabilities.toml`: every capability by name.
pub type Catalog = BTreeMap<String, Capability>;

/// Reads the catalog of the workspace at `root`.
pub fn catalog(root: &Path) -> Result<Catalog> {
    let path = root.join("crates/omnia-cli/capabilities.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid catalog", path.display()))
}

/// The OCI image configuration of a profile (field names as in the OCI image spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `["/bin/omnia", "run"]`.
    pub entrypoint: Vec<String>,
    /// `["/app.wasm"]`, or `["/app.bin"]` for AOT-only profiles.
    pub cmd: Vec<String>,
    /// `KEY=VALUE`, sorted by key.
    pub env: Vec<String>,
    /// `"8080/tcp": {}` for each port.
    pub exposed_ports: BTreeMap<String, BTreeMap<String, String>>,
    /// [`IMAGE_USER`].
    pub user: String,
    /// `/`.
    pub working_dir: String,
    /// The standard labels, then the profile's own.
    pub labels: BTreeMap<String, String>,
}

/// A profile, read and checked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// The file's stem, e.g. `http-kv`.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Whether the binary has the compiler (runs `.wasm`), or only loads `.bin`.
    pub jit: bool,
    /// Cargo features of `omnia-cli`, sorted.
    pub features: Vec<String>,
    /// Services its tests need, sorted.
    pub services: Vec<String>,
    /// The backends of each enabled capability, sorted.
    pub backends: BTreeMap<String, Vec<String>>,
    /// `--locked -p omnia-cli --no-default-features --features ...`.
    pub cargo_extra_args: String,
    /// The image configuration.
    pub image: ImageConfig,
}

impl Profile {
    /// The `cargo build` arguments of this profile's binary.
    pub fn cargo_args(&self) -> Vec<String> {
        self.cargo_extra_args
            .split(' ')
            .map(str::to_owned)
            .collect()
    }

    /// The path inside the image the app goes to (`/app.wasm` or `/app.bin`).
    pub fn app_path(&self) -> &str {
        &self.image.cmd[0]
    }
}

/// Every profile of `dir` (`*.toml`), by name.
pub fn load_all(dir: &Path, catalog: &Catalog) -> Result<BTreeMap<String, Profile>> {
    let mut profiles = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for file in files {
        let profile = load(&file, catalog)?;
        profiles.insert(profile.name.clone(), profile);
    }
    Ok(profiles)
}

/// Reads and checks `profiles/<name>.toml`.
pub fn load(path: &Path, catalog: &Catalog) -> Result<Profile> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{} has no usable name", path.display()))?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let raw: Table =
        toml::from_str(&text).with_context(|| format!("profiles/{name}.toml is not valid TOML"))?;
    from_table(name, &raw, catalog)
}

/// Checks a parsed profile and derives what it builds. Every error names the file and the key,
/// in the same words as the Nix library.
pub fn from_table(name: &str, raw: &Table, catalog: &Catalog) -> Result<Profile> {
    let file = format!("profiles/{name}.toml");
    let fail = |key: &str, msg: &str| anyhow::anyhow!("{file}: {key}: {msg}");
    if !is_kebab(name) {
        bail!(
            "{file}: the profile name \"{name}\" must be kebab-case (a-z, 0-9 and single dashes)"
        );
    }
    if let Some(key) = raw.keys().find(|k| !TOP_KEYS.contains(&k.as_str())) {
        return Err(fail(
            key,
            &format!("unknown key (expected one of {})", TOP_KEYS.join(", ")),
        ));
    }
    let description = match raw.get("description") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(fail("description", "expected a string")),
        None => {
            return Err(fail(
                "description",
                "missing: one line saying what the profile is for",
            ));
        }
    };
    let jit = match raw.get("jit") {
        Some(Value::Boolean(b)) => *b,
        Some(_) => return Err(fail("jit", "expected true or false")),
        None => {
            return Err(fail(
                "jit",
                "missing: true (runs .wasm) or false (AOT-only, runs .bin)",
            ));
        }
    };
    let caps = match raw.get("capabilities") {
        Some(Value::Table(t)) => t,
        Some(_) => return Err(fail("capabilities", "expected a table")),
        None => {
            return Err(fail(
                "capabilities",
                "missing: a profile must enable at least one capability",
            ));
        }
    };
    let backends = enabled_backends(&file, caps, catalog)?;
    let Oci { ports, env, labels } = oci_section(&file, raw)?;

    let mut features: Vec<String> = if jit { vec!["jit".into()] } else { Vec::new() };
    let mut services = Vec::new();
    for (cap, selected) in &backends {
        for backend in selected {
            let b = &catalog[cap].backends[backend];
            features.extend(b.features.iter().cloned());
            services.extend(b.services.iter().cloned());
        }
    }
    let features = sorted_unique(features);
    let services = sorted_unique(services);
    let image = image_config(name, &description, jit, &ports, &env, labels);
    Ok(Profile {
        name: name.to_owned(),
        description,
        jit,
        cargo_extra_args: format!(
            "--locked -p omnia-cli --no-default-features --features {}",
            features.join(",")
        ),
        features,
        services,
        backends,
        image,
    })
}

/// The backends of every enabled capability (at least one).
fn enabled_backends(
    file: &str,
    caps: &Table,
    catalog: &Catalog,
) -> Result<BTreeMap<String, Vec<String>>> {
    let known: Vec<&str> = catalog.keys().map(String::as_str).collect();
    let mut backends = BTreeMap::new();
    for (cap, value) in caps {
        let Some(entry) = catalog.get(cap) else {
            bail!(
                "{file}: capabilities.{cap}: unknown capability (expected one of {})",
                known.join(", ")
            );
        };
        let selected = selected_backends(value, entry)
            .map_err(|msg| anyhow::anyhow!("{file}: capabilities.{cap}: {msg}"))?;
        if !selected.is_empty() {
            backends.insert(cap.clone(), sorted_unique(selected));
        }
    }
    if backends.is_empty() {
        bail!("{file}: capabilities: the profile enables no capability");
    }
    Ok(backends)
}

/// The `[oci]` table of a profile.
struct Oci {
    ports: Vec<i64>,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

fn oci_section(file: &str, raw: &Table) -> Result<Oci> {
    let fail = |key: &str, msg: &str| anyhow::anyhow!("{file}: {key}: {msg}");
    let oci = match raw.get("oci") {
        Some(Value::Table(t)) => t.clone(),
        Some(_) => return Err(fail("oci", "expected a table")),
        None => Table::new(),
    };
    if let Some(key) = oci.keys().find(|k| !OCI_KEYS.contains(&k.as_str())) {
        return Err(fail(
            &format!("oci.{key}"),
            &format!("unknown key (expected one of {})", OCI_KEYS.join(", ")),
        ));
    }
    let ports = match oci.get("ports") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Integer(p) if (1..=65535).contains(p) => Ok(*p),
                other => Err(fail(
                    "oci.ports",
                    &format!("expected port numbers from 1 to 65535, got {other}"),
                )),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(fail("oci.ports", "expected a list of port numbers")),
    };
    Ok(Oci {
        ports,
        env: strings(&oci, "env").map_err(|key| fail(&key, "expected a string"))?,
        labels: strings(&oci, "labels").map_err(|key| fail(&key, "expected a string"))?,
    })
}

/// The image configuration of a profile.
fn image_config(
    name: &str,
    description: &str,
    jit: bool,
    ports: &[i64],
    env: &BTreeMap<String, String>,
    extra_labels: BTreeMap<String, String>,
) -> ImageConfig {
    let mut labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_owned(),
            format!("omnia-{name}"),
        ),
        (
            "org.opencontainers.image.description".to_owned(),
            description.to_owned(),
        ),
        (
            "org.opencontainers.image.licenses".to_owned(),
            "Apache-2.0".to_owned(),
        ),
    ]);
    labels.extend(extra_labels);
    ImageConfig {
        entrypoint: vec!["/bin/omnia".into(), "run".into()],
        cmd: vec![if jit { "/app.wasm" } else { "/app.bin" }.into()],
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        exposed_ports: ports
            .iter()
            .map(|p| (format!("{p}/tcp"), BTreeMap::new()))
            .collect(),
        user: IMAGE_USER.into(),
        working_dir: "/".into(),
        labels,
    }
}

/// The backends a capability's value selects: `true` (the default), `false` (none), a name, or
/// a list of names.
fn selected_backends(value: &Value, cap: &Capability) -> std::result::Result<Vec<String>, String> {
    let known: Vec<&str> = cap.backends.keys().map(String::as_str).collect();
    let check = |v: &Value| match v {
        Value::String(b) if cap.backends.contains_key(b) => Ok(b.clone()),
        Value::String(b) => Err(format!(
            "unknown backend \"{b}\" (expected one of {})",
            known.join(", ")
        )),
        other => Err(format!(
            "expected a backend name, got a {}",
            other.type_str()
        )),
    };
    match value {
        Value::Boolean(true) => Ok(vec![cap.default.clone()]),
        Value::Boolean(false) => Ok(Vec::new()),
        Value::String(_) => Ok(vec![check(value)?]),
        Value::Array(items) if items.is_empty() => {
            Err("an empty list enables nothing: use false".into())
        }
        Value::Array(items) => items.iter().map(check).collect(),
        other => Err(format!(
            "expected true, false, a backend name or a list of them, got a {}",
            other.type_str()
        )),
    }
}

/// The string table `oci.<key>`; on error, the key that is not a string.
fn strings(oci: &Table, key: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    match oci.get(key) {
        None => Ok(BTreeMap::new()),
        Some(Value::Table(t)) => t
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(format!("oci.{key}.{k}")),
            })
            .collect(),
        Some(_) => Err(format!("oci.{key}")),
    }
}

fn sorted_unique(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn is_kebab(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn parse(name: &str, text: &str) -> Result<Profile> {
        let catalog = catalog(&root()).unwrap();
        from_table(name, &toml::from_str(text).unwrap(), &catalog)
    }

    const BASE: &str = "description = \"d\"\njit = true\n";

    #[test]
    fn the_shipped_profiles() {
        let catalog = catalog(&root()).unwrap();
        let all = load_all(&root().join("profiles"), &catalog).unwrap();
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            [
                "full",
                "http",
                "http-kv",
                "http-otel",
                "kv-nats",
                "messaging"
            ]
        );
        assert_eq!(all["http-kv"].features, ["http", "keyvalue-redis"]);
        assert_eq!(all["http-kv"].image.cmd, ["/app.bin"]);
        assert_eq!(all["full"].services, ["nats", "redis"]);
        assert!(all["http"].services.is_empty());
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        for (name, text, message) in [
            (
                "t",
                "description = \"d\"\njit = true\ncolour = 1\n[capabilities]\nhttp = true\n",
                "profiles/t.toml: colour: unknown key",
            ),
            (
                "t",
                &format!("{BASE}[capabilities]\nhttp = true\nkeyvalue = \"etcd\"\n"),
                "profiles/t.toml: capabilities.keyvalue: unknown backend \"etcd\"",
            ),
            (
                "t",
                &format!("{BASE}[capabilities]\ndatabase = true\n"),
                "profiles/t.toml: capabilities.database: unknown capability",
            ),
            (
                "t",
                &format!("{BASE}[capabilities]\nhttp = false\n"),
                "profiles/t.toml: capabilities: the profile enables no capability",
            ),
            (
                "Bad_Name",
                &format!("{BASE}[capabilities]\nhttp = true\n"),
                "must be kebab-case",
            ),
            (
                "t",
                &format!("{BASE}[capabilities]\nhttp = true\n[oci]\nports = [70000]\n"),
                "profiles/t.toml: oci.ports: expected port numbers",
            ),
            (
                "t",
                &format!("{BASE}[capabilities]\nhttp = true\n[oci]\nvolumes = []\n"),
                "profiles/t.toml: oci.volumes: unknown key",
            ),
            (
                "t",
                "description = \"d\"\n[capabilities]\nhttp = true\n",
                "profiles/t.toml: jit: missing",
            ),
        ] {
            let err = parse(name, text).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
    }
}
