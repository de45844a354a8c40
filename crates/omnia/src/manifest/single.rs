//! Running a manifest of one guest, the step before applications of many: its guest is run as
//! if its file, grants and limits had been given on the command line, through the same checks.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::routes::HttpRoutes;
use super::{GuestLimits, Manifest};
use crate::cli::RunArgs;
use crate::config::RuntimeConfig;

/// The name of the manifest `omnia run DIR` looks for in `DIR`.
pub const MANIFEST_NAME: &str = "omnia.toml";

/// The manifest `omnia run PATH` names, if `PATH` is one: a `.toml` file, or a directory
/// (which must then hold an `omnia.toml`).
///
/// # Errors
///
/// `path` is a directory without an `omnia.toml`.
pub fn manifest_path(path: &Path) -> Result<Option<PathBuf>> {
    if path.is_dir() {
        let manifest = path.join(MANIFEST_NAME);
        if !manifest.is_file() {
            bail!(
                "{} is a directory without an {MANIFEST_NAME}: give the component's file, or \
                 the manifest",
                path.display()
            );
        }
        return Ok(Some(manifest));
    }
    Ok(path
        .extension()
        .is_some_and(|ext| ext == "toml")
        .then(|| path.to_owned()))
}

/// What `omnia run` runs for a manifest of one guest.
pub struct SingleGuest {
    /// Its file, grants and mounts, as `run`'s arguments.
    pub args: RunArgs,
    /// Its limits.
    pub limits: GuestLimits,
    /// Its HTTP routes; `None` (no `routes.http`) takes every request, as a component given
    /// on the command line does.
    pub http_routes: Option<HttpRoutes<String>>,
}

impl Manifest {
    /// The `run` arguments of this manifest's one guest (its file, its grants, the mounts), the
    /// command's own arguments kept from `args`, and its limits. What only applications of many
    /// guests can do yet is refused, never ignored.
    ///
    /// # Errors
    ///
    /// The manifest has more than one guest, messaging routes or capability grants (which need
    /// per-guest capabilities), or `args` grants something itself (grants go in the manifest).
    pub fn single_guest(&self, args: &RunArgs) -> Result<SingleGuest> {
        let shown = self.path.display();
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
        let [guest] = &self.guests[..] else {
            bail!(
                "{shown}: {} guests: this version of omnia runs a manifest of one guest (serving \
                 several in one process is being built); run one process per guest meanwhile",
                self.guests.len()
            );
        };
        let not_yet = |key: &str| {
            anyhow::anyhow!(
                "{shown}:{}: guest {:?}: {key} needs applications of many guests, which are \
                 being built; remove it for now",
                guest.line,
                guest.id
            )
        };
        if !guest.routes.messaging.is_empty() {
            return Err(not_yet(
                "routes.messaging (subscribe with OMNIA_MESSAGING_TOPICS or OMNIA_MESSAGING_CONFIG)",
            ));
        }
        if let Some(name) = guest.grants.capabilities.keys().next() {
            return Err(not_yet(&format!("grants.{name}")));
        }
        let mut run = RunArgs {
            component: guest.source.clone(),
            args: args.args.clone(),
            env: guest.grants.env.clone(),
            dirs: guest.grants.dirs.clone(),
            dirs_read_only: guest.grants.dirs_ro.clone(),
            inherit_network: guest.grants.network,
            wasi: Vec::new(),
        };
        for mount in &self.mounts {
            let grant = format!("{}::{}", mount.path.display(), mount.name);
            if mount.writable {
                run.dirs.push(grant);
            } else {
                run.dirs_read_only.push(grant);
            }
        }
        let http_routes = (!guest.routes.http.is_empty()).then(|| self.http_routes.clone());
        Ok(SingleGuest {
            args: run,
            limits: guest.limits,
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
