//! What `omnia run` runs: a component on its own, or the guests of a manifest, each as if its
//! file, grants and limits had been given on the command line, through the same checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::routes::HttpRoutes;
use super::{GuestLimits, Manifest};
use crate::cli::{NO_COMPONENT, RunArgs};
use crate::config::{RuntimeConfig, var};

/// The name of the manifest `omnia run DIR` looks for in `DIR`.
pub const MANIFEST_NAME: &str = "omnia.toml";

/// The manifest `omnia run` runs, if any: the one `--manifest` (`OMNIA_MANIFEST`) names, else
/// `COMPONENT` if it is one (a `.toml` file, or a directory, which must then hold an
/// `omnia.toml`); without a component, `./omnia.toml`.
///
/// # Errors
///
/// Both a component and `--manifest` are given; nothing is given and there is no
/// `./omnia.toml`; a directory without an `omnia.toml`.
pub fn manifest_path(args: &RunArgs) -> Result<Option<PathBuf>> {
    let given = args.component != Path::new(NO_COMPONENT);
    if let Some(manifest) = var("OMNIA_MANIFEST", |s| Ok(PathBuf::from(s)))? {
        if given {
            bail!(
                "--manifest (OMNIA_MANIFEST) names {} and the command line {}: give one of them",
                manifest.display(),
                args.component.display()
            );
        }
        return in_directory(&manifest).map(Some);
    }
    if !given && !Path::new(MANIFEST_NAME).is_file() {
        bail!(
            "nothing to run: give a component (omnia run app.wasm) or an application's manifest \
             (omnia run omnia.toml, --manifest, OMNIA_MANIFEST), or run omnia in a directory \
             holding an {MANIFEST_NAME}"
        );
    }
    let path = &args.component;
    if path.is_dir() {
        return in_directory(path).map(Some);
    }
    Ok(path
        .extension()
        .is_some_and(|ext| ext == "toml")
        .then(|| path.to_owned()))
}

/// `path`, or the `omnia.toml` in it if it is a directory (which must have one).
fn in_directory(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_owned());
    }
    let manifest = path.join(MANIFEST_NAME);
    if !manifest.is_file() {
        bail!(
            "{} is a directory without an {MANIFEST_NAME}: give the component's file, or the \
             manifest",
            path.display()
        );
    }
    Ok(manifest)
}

/// What `omnia run` runs: its guests and their HTTP routes.
pub struct RunPlan {
    /// The guests, in the manifest's order (one for a component run on its own).
    pub guests: Vec<PlannedGuest>,
    /// The HTTP routes, by index into `guests`; `None` (no guest has `routes.http`): every
    /// request goes to the one guest that serves HTTP.
    pub http_routes: Option<HttpRoutes<usize>>,
}

/// One guest of a [`RunPlan`].
pub struct PlannedGuest {
    /// Its id: the manifest's, or the file's stem.
    pub id: String,
    /// Where it is declared, to begin error messages with: `FILE:LINE: guest "id"` for a
    /// manifest's guest; `None` for a component run on its own (its errors name its file).
    pub origin: Option<String>,
    /// Its file, grants and mounts, as `run`'s arguments.
    pub args: RunArgs,
    /// Its limits.
    pub limits: GuestLimits,
    /// The message topics it is routed (`routes.messaging`); `None` takes the messaging
    /// trigger's configuration, as a component given on the command line does.
    pub topics: Option<Vec<String>>,
    /// Whether it has `routes.http` (so the HTTP trigger must be one it serves).
    pub has_http_routes: bool,
    /// Its grants of each capability (`[guest.grants.<capability>]`), for the capability to
    /// read (see [`Backend::for_guest`](crate::Backend::for_guest)).
    pub capability_grants: BTreeMap<String, toml::Table>,
}

impl PlannedGuest {
    /// What an error about this guest begins with: `FILE:LINE: guest "id": ` for a manifest's
    /// guest, nothing for a component on its own (whose errors name its file already).
    pub fn prefix(&self) -> String {
        self.origin
            .as_ref()
            .map(|origin| format!("{origin}: "))
            .unwrap_or_default()
    }

    /// `result`, its error on one line prefixed with where the guest is declared (a
    /// manifest's guest; the errors of a component on its own name its file already).
    pub fn context<T>(&self, result: Result<T>) -> Result<T> {
        match &self.origin {
            Some(origin) => result.map_err(|err| anyhow::anyhow!("{origin}: {err:#}")),
            None => result,
        }
    }

    /// The runtime's settings `config` with this guest's own limits.
    pub fn config(&self, config: &RuntimeConfig) -> RuntimeConfig {
        let mut config = config.clone();
        self.limits.apply(&mut config);
        config
    }
}

impl RunPlan {
    /// The settings of the engines every guest shares (one of each kind): `config`, with
    /// instance slots as large as the largest memory a guest may have.
    pub fn engine_config(&self, config: &RuntimeConfig) -> RuntimeConfig {
        let mut engine = config.clone();
        engine.max_memory = self
            .guests
            .iter()
            .map(|guest| guest.config(config).max_memory)
            .max()
            .unwrap_or(config.max_memory);
        engine
    }

    /// A component on its own (`omnia run app.wasm`): every request, the configured topics,
    /// the grants of `args`.
    pub fn single(args: RunArgs) -> Self {
        let id = args
            .component
            .file_stem()
            .map_or_else(|| "guest".to_owned(), |s| s.to_string_lossy().into_owned());
        Self {
            guests: vec![PlannedGuest {
                id,
                origin: None,
                args,
                limits: GuestLimits::default(),
                topics: None,
                has_http_routes: false,
                capability_grants: BTreeMap::new(),
            }],
            http_routes: None,
        }
    }

    /// The guests of `manifest`, each with its `run` arguments (its file, its grants, the
    /// mounts; the command's own arguments kept from `args`) and limits. What this version
    /// cannot honour yet is refused, never ignored.
    ///
    /// # Errors
    ///
    /// `args` grants something itself (grants go in the manifest), or has arguments for a
    /// command beside a manifest of several guests.
    pub fn from_manifest(manifest: &Manifest, args: &RunArgs) -> Result<Self> {
        let shown = manifest.path.display();
        if !(args.env.is_empty()
            && args.dirs.is_empty()
            && args.dirs_read_only.is_empty()
            && !args.inherit_network
            && args.wasi.is_empty())
        {
            bail!(
                "{shown}: grants go in the manifest ([guest.grants] env, dirs, dirs_ro, \
                 network), not on the command line beside it"
            );
        }
        let alone = manifest.guests.len() == 1;
        if !alone && !args.args.is_empty() {
            bail!(
                "{shown}: arguments after the manifest ({}) are only for a wasi:cli/run \
                 component run on its own",
                args.args.join(" ")
            );
        }
        let mut guests = Vec::new();
        for guest in &manifest.guests {
            let origin = format!("{shown}:{}: guest {:?}", guest.line, guest.id);
            let mut run = RunArgs {
                component: guest.source.clone(),
                args: args.args.clone(),
                env: guest.grants.env.clone(),
                dirs: guest.grants.dirs.clone(),
                dirs_read_only: guest.grants.dirs_ro.clone(),
                inherit_network: guest.grants.network,
                wasi: Vec::new(),
            };
            for mount in &manifest.mounts {
                let grant = format!("{}::{}", mount.path.display(), mount.name);
                if mount.writable {
                    run.dirs.push(grant);
                } else {
                    run.dirs_read_only.push(grant);
                }
            }
            // A guest on its own without `routes.messaging` takes the configured topics, as
            // it would without a manifest; in an application each guest names its own.
            let topics = (!(alone && guest.routes.messaging.is_empty()))
                .then(|| guest.routes.messaging.clone());
            guests.push(PlannedGuest {
                id: guest.id.clone(),
                origin: Some(origin),
                args: run,
                limits: guest.limits,
                topics,
                has_http_routes: !guest.routes.http.is_empty(),
                capability_grants: guest.grants.capabilities.clone(),
            });
        }
        let http_routes = (!manifest.http_routes.is_empty()).then(|| {
            manifest.http_routes.clone().map(|id| {
                // Every route's id is a guest's: the table was built from the guests.
                manifest
                    .guests
                    .iter()
                    .position(|guest| guest.id == id)
                    .unwrap_or_default()
            })
        });
        Ok(Self {
            guests,
            http_routes,
        })
    }
}

impl GuestLimits {
    /// `config` with these limits where they are set.
    pub fn apply(&self, config: &mut RuntimeConfig) {
        if let Some(memory) = self.memory {
            config.max_memory = memory;
        }
        if let Some(timeout) = self.request_timeout {
            config.request_timeout = timeout;
        }
    }
}
