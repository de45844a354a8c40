//! Applications of many components: the manifest (`omnia.toml`) that lists them, with their
//! routes and grants, and the tables the triggers route by.
//!
//! One process runs one *application*: components, each with its own source, routes, grants and
//! limits, sharing one listener, one memory budget and one connection per backend. A single
//! component (`omnia run app.wasm`) is the application of one component that takes every route.
//!
//! * [`Manifest`] and the rest of this module: an application, as the runtime uses it.
//! * [`file`]: reading `omnia.toml` into a [`Manifest`], checking everything on the way.
//! * [`routes`]: the HTTP route table (path prefixes on segment boundaries, longest wins, an
//!   optional host).
//!
//! * [`RunPlan`]: what `omnia run` runs, a component on its own or a manifest's guests.

pub mod file;
mod plan;
pub mod routes;

pub use plan::{MANIFEST_NAME, PlannedGuest, RunPlan, manifest_path};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use routes::{HttpRoute, HttpRoutes};

/// The longest guest id: a DNS label, so that an id can name the guest in a host name.
pub const MAX_ID_LEN: usize = 63;

/// An application: its guests, read from a manifest and checked.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file, as given.
    pub path: PathBuf,
    /// The guests, in the order of the file.
    pub guests: Vec<Guest>,
    /// Directories given to every guest (upstream's `[[mount]]`).
    pub mounts: Vec<Mount>,
    /// Every guest's `routes.http`, by guest id: built, and so checked, once when the manifest
    /// is read.
    pub http_routes: HttpRoutes<String>,
}

/// One guest of an application.
#[derive(Debug, Clone, PartialEq)]
pub struct Guest {
    /// Its id: letters, digits, `-` and `_`, at most [`MAX_ID_LEN`].
    pub id: String,
    /// The line of its `[[guest]]` entry.
    pub line: usize,
    /// The component file (`source.path`, resolved against the manifest's directory).
    pub source: PathBuf,
    /// The sha256 the file must have, as 64 lowercase hex digits.
    pub digest: Option<String>,
    /// What it is routed.
    pub routes: Routes,
    /// Whether it is the application's command (`wasi:cli/run`), run once.
    pub command: bool,
    /// What it is granted.
    pub grants: GuestGrants,
    /// Its limits, where they differ from the runtime's.
    pub limits: GuestLimits,
}

/// What a guest is routed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// HTTP routes: path prefixes, each for `routes.host` if the manifest names one.
    pub http: Vec<HttpRoute>,
    /// Message topics (NATS subject patterns).
    pub messaging: Vec<String>,
}

/// What a guest is granted (nothing unless listed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestGrants {
    /// Environment variables, as `--env` takes them (`KEY=VALUE`, or `KEY` for omnia's own).
    pub env: Vec<String>,
    /// Directories, as `--dir` takes them (`HOST[::GUEST]`), read-write.
    pub dirs: Vec<String>,
    /// Directories, as `--dir-ro` takes them, read-only.
    pub dirs_ro: Vec<String>,
    /// The host's network (`--inherit-network`).
    pub network: bool,
    /// Each capability's own grants, by the capability's name (`keyvalue`, `http`, ...),
    /// for the capability to read.
    pub capabilities: BTreeMap<String, toml::Table>,
}

/// A guest's own limits; `None` takes the runtime's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestLimits {
    /// Memory per instance, in bytes.
    pub memory: Option<usize>,
    /// How long a request or message may take.
    pub request_timeout: Option<Duration>,
    /// How many of its requests and messages may be in flight at once, within the runtime's
    /// `OMNIA_MAX_CONCURRENCY`; `None`: no cap of its own.
    pub concurrency: Option<usize>,
    /// WASI 0.3 guests: requests one instance serves at once (`OMNIA_HTTP_INSTANCE_CONCURRENCY`).
    pub instance_concurrency: Option<usize>,
    /// WASI 0.3 guests: requests one instance serves before it is replaced
    /// (`OMNIA_HTTP_INSTANCE_REUSE`).
    pub instance_reuse: Option<usize>,
}

/// A directory given to every guest (upstream's `[[mount]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The name the guest sees (its preopen).
    pub name: String,
    /// The host directory, resolved against the manifest's directory.
    pub path: PathBuf,
    /// Read-write if set; read-only otherwise.
    pub writable: bool,
}
