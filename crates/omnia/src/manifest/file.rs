//! Reading `omnia.toml`: upstream omnia's deployment file, extended with grants and limits.
//!
//! The format is upstream omnia's (`[[guest]]` entries, `[[mount]]`, `[transport]`), so a
//! deployment file written for upstream runs unchanged; what Omnia adds lives in keys upstream
//! does not have (`grants`, `limits`, `routes.host`). Everything is checked here, before
//! anything loads or listens: an unknown key, a missing file, a repeated id or topic, a bad
//! digest or a setting that does not parse is an error naming the manifest, the line, the guest
//! and the key, and saying how to fix it.
//!
//! ```toml
//! [[guest]]
//! id = "api"                      # or `name` (upstream 0.37)
//! source.path = "api.wasm"        # a .wasm or .bin, relative to this file
//! digest = "sha256:…"             # optional: refuse a file with another digest
//! routes.http = ["/api"]          # path prefixes (see `manifest::routes`)
//! routes.host = "api.example.com" # optional: only requests for this host
//! routes.messaging = ["orders.>"] # topics the guest's message handler gets
//!
//! [guest.grants]                  # nothing is granted unless listed
//! env = ["REGION=eu", "HOME"]     # as --env
//! dirs = ["./data::/data"]        # as --dir (read-write); dirs_ro as --dir-ro
//! network = false                 # as --inherit-network
//! keyvalue = { buckets = ["orders"] }   # a capability's own grants, by its name
//!
//! [guest.limits]                  # each defaults to the runtime's setting
//! memory = "64MiB"                # OMNIA_MAX_MEMORY, per instance
//! request_timeout = "10s"         # OMNIA_REQUEST_TIMEOUT
//! concurrency = 32                # at most this many of its requests at once (no default cap)
//! instance_concurrency = 4        # WASI 0.3: OMNIA_HTTP_INSTANCE_CONCURRENCY for this guest
//! instance_reuse = 1000           # WASI 0.3: OMNIA_HTTP_INSTANCE_REUSE for this guest
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use toml::Spanned;

use super::routes::{HttpRoute, HttpRoutes, RouteError};
use super::{Guest, GuestGrants, GuestLimits, MAX_ID_LEN, Manifest, Mount, Routes};
use crate::config::{parse_memory_limit, parse_positive_duration};

// The file as written. `deny_unknown_fields` everywhere: a misspelt key is an error, never a
// setting silently ignored.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    #[serde(default)]
    guest: Vec<Spanned<GuestEntry>>,
    #[serde(default)]
    mount: Vec<Spanned<MountEntry>>,
    #[serde(default)]
    dispatch: Vec<Spanned<String>>,
    transport: Option<Spanned<TransportEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestEntry {
    id: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    source: Option<Spanned<SourceEntry>>,
    digest: Option<Spanned<String>>,
    #[serde(default)]
    routes: RoutesEntry,
    #[serde(default)]
    command: bool,
    #[serde(default)]
    grants: Option<Spanned<toml::Table>>,
    #[serde(default)]
    limits: LimitsEntry,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceEntry {
    path: Option<String>,
    package: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RoutesEntry {
    #[serde(default)]
    http: Vec<Spanned<String>>,
    host: Option<Spanned<String>>,
    #[serde(default)]
    messaging: Vec<Spanned<String>>,
    #[serde(default)]
    websocket: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsEntry {
    memory: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    instance_concurrency: Option<Spanned<i64>>,
    instance_reuse: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MountEntry {
    name: String,
    path: String,
    #[serde(default)]
    writable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransportEntry {
    default: Option<String>,
}

/// Where a manifest's errors point: the file, and lines in it.
struct ManifestText<'a> {
    path: &'a Path,
    text: &'a str,
}

impl ManifestText<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// An error at `offset`: `FILE:LINE: message`.
    fn at(&self, offset: usize, message: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}:{}: {message}", self.path.display(), self.line(offset))
    }
}

impl Manifest {
    /// Reads and checks the manifest at `path` (see the module documentation). `capabilities`
    /// are the names of the capabilities this build has, which a guest's grants may name.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not valid, or names what does not exist; the error names
    /// the file and line.
    pub fn load(path: &Path, capabilities: &[&str]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the manifest {}", path.display()))?;
        Self::parse(path, &text, capabilities)
    }

    /// Checks the manifest `text`, read from `path` (relative paths in it are resolved against
    /// `path`'s directory; files are looked for).
    ///
    /// # Errors
    ///
    /// As [`Manifest::load`].
    pub fn parse(path: &Path, text: &str, capabilities: &[&str]) -> Result<Self> {
        let cx = ManifestText { path, text };
        let file: FileEntry = toml::from_str(text).map_err(|err| {
            let offset = err.span().map_or(0, |span| span.start);
            cx.at(offset, err.message().trim_end())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(first) = file.dispatch.first() {
            return Err(cx.at(
                first.span().start,
                "`dispatch` (calls between guests through the host) is not supported yet: \
                 remove it",
            ));
        }
        if let Some(transport) = &file.transport
            && transport
                .get_ref()
                .default
                .as_deref()
                .is_some_and(|t| t != "in-process")
        {
            return Err(cx.at(
                transport.span().start,
                "[transport] default: only \"in-process\" is supported",
            ));
        }
        if file.guest.is_empty() {
            bail!(
                "{}: no [[guest]]: an application needs at least one, e.g.\n\n[[guest]]\nid = \
                 \"app\"\nsource.path = \"app.wasm\"\nroutes.http = [\"/\"]",
                path.display()
            );
        }
        let mut guests: Vec<Guest> = Vec::new();
        for entry in file.guest {
            let guest = guest(&cx, base, entry, capabilities)?;
            if let Some(other) = guests.iter().find(|g| g.id == guest.id) {
                return Err(anyhow!(
                    "{}:{}: guest {:?} again (first at line {}): ids must be unique",
                    path.display(),
                    guest.line,
                    guest.id,
                    other.line
                ));
            }
            guests.push(guest);
        }
        check_shared(path, &guests)?;
        let mounts = file
            .mount
            .into_iter()
            .map(|entry| mount(&cx, base, entry))
            .collect::<Result<_>>()?;
        let http_routes = HttpRoutes::new(guests.iter().flat_map(|guest| {
            guest
                .routes
                .http
                .iter()
                .map(|route| (route.clone(), guest.id.clone()))
        }))
        // Two guests with one route (each route is checked where it is written): the table
        // names the route and both guests.
        .map_err(|e| {
            let line = match &e {
                RouteError::Duplicate { second, .. } => guests
                    .iter()
                    .find(|g| g.id == *second)
                    .map_or(0, |g| g.line),
                _ => 0,
            };
            anyhow!("{}:{line}: routes.http: {e}", path.display())
        })?;
        Ok(Self {
            path: path.to_owned(),
            guests,
            mounts,
            http_routes,
        })
    }
}

/// One `[[guest]]` entry, checked.
fn guest(
    cx: &ManifestText<'_>,
    base: &Path,
    entry: Spanned<GuestEntry>,
    capabilities: &[&str],
) -> Result<Guest> {
    let at = entry.span().start;
    let line = cx.line(at);
    let entry = entry.into_inner();
    let id = match (entry.id, entry.name) {
        (Some(id), None) | (None, Some(id)) => id,
        (Some(_), Some(name)) => {
            return Err(cx.at(
                name.span().start,
                "a guest has `id` (upstream 0.35) or `name` (0.37), not both",
            ));
        }
        (None, None) => return Err(cx.at(at, "this [[guest]] has no `id`: add id = \"...\"")),
    };
    let id_at = id.span().start;
    let id = id.into_inner();
    check_id(&id).map_err(|problem| cx.at(id_at, format!("guest id {id:?}: {problem}")))?;
    let named = |offset: usize, key: &str, problem: &dyn std::fmt::Display| {
        cx.at(offset, format!("guest {id:?}: {key}: {problem}"))
    };

    let Some(source) = entry.source else {
        return Err(cx.at(
            at,
            format!("guest {id:?} has no source: add source.path = \"{id}.wasm\""),
        ));
    };
    let (source, digest) = guest_source(&named, base, source, entry.digest)?;

    let routes = entry.routes;
    if let Some(websocket) = routes.websocket.first() {
        return Err(named(
            websocket.span().start,
            "routes.websocket",
            &"WebSocket routes are not supported yet: remove them",
        ));
    }
    let host = routes
        .host
        .as_ref()
        .map(|host| (host.span().start, host.get_ref().as_str()));
    let mut http = Vec::new();
    for prefix in &routes.http {
        let route = HttpRoute::new(host.map(|(_, host)| host), prefix.get_ref()).map_err(|e| {
            let (key, at) = match (&e, host) {
                (
                    RouteError::EmptyHost
                    | RouteError::HostWithPort { .. }
                    | RouteError::HostWithPath { .. }
                    | RouteError::WildcardHost { .. }
                    | RouteError::InvalidHost { .. },
                    Some((at, _)),
                ) => ("routes.host", at),
                _ => ("routes.http", prefix.span().start),
            };
            named(at, key, &e)
        })?;
        http.push(route);
    }
    let mut topics: Vec<String> = Vec::new();
    for topic in &routes.messaging {
        if topics.contains(topic.get_ref()) {
            return Err(named(
                topic.span().start,
                "routes.messaging",
                &format!("{:?} is listed twice", topic.get_ref()),
            ));
        }
        topics.push(topic.get_ref().clone());
    }
    let limits = guest_limits(&named, entry.limits)?;
    let grants = match entry.grants {
        Some(grants) => {
            let grants_at = grants.span().start;
            guest_grants(grants.into_inner(), capabilities)
                .map_err(|problem| named(grants_at, "grants", &problem))?
        }
        None => GuestGrants::default(),
    };
    Ok(Guest {
        id,
        line,
        source,
        digest,
        routes: Routes {
            http,
            messaging: topics,
        },
        command: entry.command,
        grants,
        limits,
    })
}

/// Makes an error about a guest's key: `(offset, key, problem)`.
type Named<'a> = dyn Fn(usize, &str, &dyn std::fmt::Display) -> anyhow::Error + 'a;

/// A guest's component file, which must exist, and the digest it must have, if pinned.
fn guest_source(
    named: &Named<'_>,
    base: &Path,
    source: Spanned<SourceEntry>,
    digest: Option<Spanned<String>>,
) -> Result<(PathBuf, Option<String>)> {
    let source_at = source.span().start;
    let source = match source.into_inner() {
        SourceEntry {
            path: Some(file),
            package: None,
        } => base.join(file),
        SourceEntry {
            package: Some(package),
            ..
        } => {
            return Err(named(
                source_at,
                "source.package",
                &format!(
                    "{package:?}: components from a registry are not supported; download it \
                     and give its file as source.path"
                ),
            ));
        }
        SourceEntry { path: None, .. } => {
            return Err(named(
                source_at,
                "source",
                &"add source.path = \"FILE.wasm\"",
            ));
        }
    };
    if !source.is_file() {
        return Err(named(
            source_at,
            "source.path",
            &format!("{} is not a file", source.display()),
        ));
    }
    let Some(digest) = digest else {
        return Ok((source, None));
    };
    let digest_at = digest.span().start;
    let expected =
        parse_digest(digest.get_ref()).map_err(|problem| named(digest_at, "digest", &problem))?;
    verify_digest(&source, &expected).map_err(|problem| named(digest_at, "digest", &problem))?;
    Ok((source, Some(expected)))
}

/// A guest's `[guest.limits]`, each checked as its runtime setting is.
fn guest_limits(named: &Named<'_>, limits: LimitsEntry) -> Result<GuestLimits> {
    // A count of requests: 1 or more.
    let count = |n: Option<Spanned<i64>>, key: &str| {
        n.map(|n| {
            usize::try_from(*n.get_ref())
                .ok()
                .filter(|&count| count >= 1)
                .ok_or_else(|| {
                    named(
                        n.span().start,
                        key,
                        &format!("{} is not a count of requests: give 1 or more", n.get_ref()),
                    )
                })
        })
        .transpose()
    };
    Ok(GuestLimits {
        memory: limits
            .memory
            .map(|s| {
                parse_memory_limit(s.get_ref())
                    .map_err(|e| named(s.span().start, "limits.memory", &e))
            })
            .transpose()?,
        request_timeout: limits
            .request_timeout
            .map(|s| {
                parse_positive_duration(s.get_ref())
                    .map_err(|e| named(s.span().start, "limits.request_timeout", &e))
            })
            .transpose()?,
        concurrency: count(limits.concurrency, "limits.concurrency")?,
        instance_concurrency: count(limits.instance_concurrency, "limits.instance_concurrency")?,
        instance_reuse: count(limits.instance_reuse, "limits.instance_reuse")?,
    })
}

/// A guest id: a DNS label's characters (letters, digits, `-`), plus `_` as upstream allows.
fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("must have 1 to {MAX_ID_LEN} characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("may hold only letters, digits, `-` and `_`".into());
    }
    Ok(())
}

/// `sha256:` and 64 hex digits, as lowercase hex.
fn parse_digest(digest: &str) -> std::result::Result<String, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| format!("{digest:?} is not a digest: expected sha256: and 64 hex digits"))?;
    Ok(hex.to_ascii_lowercase())
}

/// Checks that the file at `path` has the sha256 `expected` (lowercase hex).
///
/// # Errors
///
/// The file cannot be read, or its digest differs: the message gives both digests.
pub fn verify_digest(path: &Path, expected: &str) -> std::result::Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut actual = String::with_capacity(64);
    for byte in Sha256::digest(&bytes) {
        let _ = write!(actual, "{byte:02x}");
    }
    if actual != expected {
        return Err(format!(
            "{} has sha256:{actual}, not sha256:{expected}: the file is not the one pinned \
             (rebuild it, or update the digest if the change is intended)",
            path.display()
        ));
    }
    Ok(())
}

/// A guest's `[guest.grants]`: the runtime's own keys, and a table per capability.
fn guest_grants(
    table: toml::Table,
    capabilities: &[&str],
) -> std::result::Result<GuestGrants, String> {
    let strings = |key: &str, value: toml::Value| -> std::result::Result<Vec<String>, String> {
        match value {
            toml::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s),
                    other => Err(format!("{key}: {other} is not a string")),
                })
                .collect(),
            other => Err(format!("{key}: expected a list of strings, not {other}")),
        }
    };
    let mut grants = GuestGrants::default();
    for (key, value) in table {
        match key.as_str() {
            "env" => grants.env = strings(&key, value)?,
            "dirs" => grants.dirs = strings(&key, value)?,
            "dirs_ro" => grants.dirs_ro = strings(&key, value)?,
            "network" => {
                grants.network = value
                    .as_bool()
                    .ok_or_else(|| format!("network: expected true or false, not {value}"))?;
            }
            name if capabilities.contains(&name) => match value {
                toml::Value::Table(table) => {
                    grants.capabilities.insert(key, table);
                }
                other => return Err(format!("{key}: expected a table, not {other}")),
            },
            _ => {
                return Err(format!(
                    "unknown key {key:?}: expected env, dirs, dirs_ro, network, or the name of a \
                     capability of this build ({})",
                    capabilities.join(", ")
                ));
            }
        }
    }
    Ok(grants)
}

/// Checks across guests: at most one command; no topic taken by two guests.
fn check_shared(path: &Path, guests: &[Guest]) -> Result<()> {
    let commands: Vec<&Guest> = guests.iter().filter(|g| g.command).collect();
    if let [first, second, ..] = commands[..] {
        bail!(
            "{}:{}: guest {:?} is marked command = true, as is {:?} (line {}): at most one guest \
             is the application's command",
            path.display(),
            second.line,
            second.id,
            first.id,
            first.line
        );
    }
    for (i, guest) in guests.iter().enumerate() {
        for topic in &guest.routes.messaging {
            if let Some(other) = guests[..i]
                .iter()
                .find(|g| g.routes.messaging.contains(topic))
            {
                bail!(
                    "{}:{}: guest {:?}: routes.messaging: {topic:?} is also routed to guest {:?} \
                     (line {}): a topic goes to one guest",
                    path.display(),
                    guest.line,
                    guest.id,
                    other.id,
                    other.line
                );
            }
        }
    }
    Ok(())
}

/// One `[[mount]]`, checked: its directory exists.
fn mount(cx: &ManifestText<'_>, base: &Path, entry: Spanned<MountEntry>) -> Result<Mount> {
    let at = entry.span().start;
    let entry = entry.into_inner();
    let path = base.join(&entry.path);
    if !path.is_dir() {
        return Err(cx.at(
            at,
            format!(
                "[[mount]] {:?}: {} is not a directory",
                entry.name,
                path.display()
            ),
        ));
    }
    Ok(Mount {
        name: entry.name,
        path,
        writable: entry.writable,
    })
}

#[cfg(test)]
mod tests;
