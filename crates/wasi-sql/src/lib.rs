//! # wasi:sql for Omnia
//!
//! Guests keep rows in a database through `wasi:sql@0.2.0-draft`, and operators choose the
//! database without touching the guest. Two shapes of the WIT are served, one backend under
//! both: the proposal's synchronous one (`wit/`) to WASI 0.2 components, and upstream omnia's
//! async one (`wit-p3/`) to WASI 0.3 components; a component's own imports pick.
//!
//! The crate has three layers:
//!
//! * [`backend`]: the [`Database`] / [`Connection`] traits a backend implements, and
//!   [`Value`], the one form values cross in.
//! * [`Sqlite`]: the embedded default, in memory or in a directory (`OMNIA_SQLITE_DIR`).
//! * [`host`]: the `wasi:sql` host functions, and [`WasiSql`], the entry type
//!   [`omnia::runtime!`] lists under `"sql"`.
//!
//! ```ignore
//! omnia::runtime!({
//!     "http": WasiHttpCtx,
//!     "sql": SqlDefault,   // SQLite, in memory unless OMNIA_SQLITE_DIR is set
//! });
//! ```
//!
//! Every backend behaves the same towards the guest: parameters are bound, never spliced into
//! the SQL; one statement per call; a statement runs at most `OMNIA_SQL_STATEMENT_TIMEOUT`
//! and returns at most `OMNIA_SQL_MAX_ROWS` rows and `OMNIA_SQL_MAX_RESULT_BYTES` bytes; every
//! failure is the WIT `error` (its `trace` says what and how to fix it), never a trap.
//!
//! The WIT has no transactions. Each statement is atomic on its own, so a change that must be
//! whole is one statement (`INSERT ... SELECT`, an upsert, a `DELETE ... WHERE`); `BEGIN` and
//! the like are refused, since one connection serves many requests.

pub mod backend;
pub mod host;
mod sqlite;

use std::marker::PhantomData;
use std::sync::Arc;

use anyhow::Result;
use omnia::config::{Setting, var};
use omnia::{Backend, FromEnv, GuestScope, Host, HostView};
use serde::Deserialize;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use backend::{ColumnKind, Connection, Database, Error, Limits, Rows, Value};
pub use sqlite::{DEFAULT_MAX_SIZE, DEFAULT_POOL_WAIT, MAX_DATABASES, Sqlite, SqliteOptions};

/// The database `open("")` opens for a guest on its own.
pub const DEFAULT_DATABASE: &str = "default";

/// The first character of a guest's own database in an application (`_` and its id), which a
/// granted database's name may not have.
pub const OWN_DATABASE_PREFIX: char = '_';

/// The `"sql"` entry of a runtime: `wasi:sql` served by the database `B` connects to.
pub struct WasiSql<B> {
    database: Arc<dyn Database>,
    default_database: Arc<str>,
    /// The databases a guest may open by name (see [`Backend::for_guest`]); `None`: any.
    granted: Option<Arc<[String]>>,
    limits: Limits,
    backend: PhantomData<fn() -> B>,
}

/// The SQLite entry: `wasi:sql` backed by [`Sqlite`].
pub type SqlDefault = WasiSql<Sqlite>;

/// A guest's grants of SQL (`[guest.grants] sql = { databases = ["orders"] }`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlGrants {
    /// The databases it may open by name, shared with every guest granted them.
    #[serde(default)]
    databases: Vec<String>,
}

/// Options of a [`WasiSql`] entry: its backend's, plus the limits every backend keeps.
#[derive(Debug, Clone)]
pub struct SqlOptions<O> {
    /// Bounds on each statement.
    pub limits: Limits,
    /// The backend's own options.
    pub backend: O,
}

impl<O: FromEnv> FromEnv for SqlOptions<O> {
    fn from_env() -> Result<Self> {
        let defaults = Limits::default();
        let limits = Limits {
            statement_timeout: var(
                "OMNIA_SQL_STATEMENT_TIMEOUT",
                omnia::config::parse_positive_duration,
            )?
            .unwrap_or(defaults.statement_timeout),
            max_rows: var("OMNIA_SQL_MAX_ROWS", omnia::config::parse_positive_count)?
                .unwrap_or(defaults.max_rows),
            max_result_bytes: var("OMNIA_SQL_MAX_RESULT_BYTES", omnia::config::parse_size)?
                .unwrap_or(defaults.max_result_bytes),
        };
        Ok(Self {
            limits,
            backend: O::from_env()?,
        })
    }

    fn settings() -> Vec<Setting> {
        let mut settings = vec![
            Setting {
                env: "OMNIA_SQL_STATEMENT_TIMEOUT",
                flag: None,
                value: "DURATION",
                default: "30s",
                help: "how long one SQL statement may run before it is stopped (the guest gets an error)",
            },
            Setting {
                env: "OMNIA_SQL_MAX_ROWS",
                flag: None,
                value: "N",
                default: "10000",
                help: "the most rows a SQL query may return (more is an error: page with LIMIT)",
            },
            Setting {
                env: "OMNIA_SQL_MAX_RESULT_BYTES",
                flag: None,
                value: "SIZE",
                default: "16MiB",
                help: "the most bytes a SQL query's values may take (more is an error)",
            },
        ];
        settings.extend(O::settings());
        settings
    }
}

impl<B> WasiSql<B> {
    /// An entry serving `database` with default limits, whose `open("")` opens
    /// [`DEFAULT_DATABASE`].
    pub fn new(database: impl Database) -> Self {
        Self::from_shared(Arc::new(database), Limits::default())
    }

    /// An entry serving an already shared database with `limits`.
    pub fn from_shared(database: Arc<dyn Database>, limits: Limits) -> Self {
        Self {
            database,
            default_database: DEFAULT_DATABASE.into(),
            granted: None,
            limits,
            backend: PhantomData,
        }
    }
}

impl<B> Clone for WasiSql<B> {
    fn clone(&self) -> Self {
        Self {
            database: Arc::clone(&self.database),
            default_database: Arc::clone(&self.default_database),
            granted: self.granted.clone(),
            limits: self.limits,
            backend: PhantomData,
        }
    }
}

impl<B: Backend + Database> Backend for WasiSql<B> {
    type Options = SqlOptions<B::Options>;

    async fn connect_with(options: Self::Options) -> Result<Self> {
        let database = B::connect_with(options.backend).await?;
        Ok(Self::from_shared(Arc::new(database), options.limits))
    }

    fn backends() -> Vec<&'static str> {
        B::backends()
    }

    /// A guest restricted to its grants opens by name only the databases it is granted,
    /// shared with the other guests granted them; in an application of several guests its
    /// `open("")` is a database of its own (`_` and its id).
    fn for_guest(&self, guest: &GuestScope<'_>) -> Result<Self> {
        if !guest.restricted() {
            return Ok(self.clone());
        }
        let grants: SqlGrants = guest.grants()?;
        for name in &grants.databases {
            backend::check_database_name(name)
                .map_err(|err| anyhow::anyhow!("databases: {err}"))?;
            if name.starts_with(OWN_DATABASE_PREFIX) {
                anyhow::bail!(
                    "databases: {name:?}: a name beginning with {OWN_DATABASE_PREFIX:?} is a \
                     guest's own database (what it opens as \"\"), which no other guest may be \
                     granted; name shared databases otherwise"
                );
            }
        }
        let default_database = if guest.shared {
            format!("{OWN_DATABASE_PREFIX}{}", guest.id).into()
        } else {
            Arc::clone(&self.default_database)
        };
        backend::check_database_name(&default_database).map_err(|err| anyhow::anyhow!("{err}"))?;
        Ok(Self {
            database: Arc::clone(&self.database),
            default_database,
            granted: Some(grants.databases.into()),
            limits: self.limits,
            backend: PhantomData,
        })
    }
}

impl Backend for Sqlite {
    type Options = SqliteOptions;

    async fn connect_with(options: SqliteOptions) -> Result<Self> {
        Ok(Self::new(options))
    }

    fn backends() -> Vec<&'static str> {
        vec!["sqlite"]
    }
}

/// The [`host::SqlView`] of a store that holds a [`WasiSql`].
fn view<T: HostView<WasiSql<B>>, B: 'static>(store: &mut T) -> host::SqlView<'_> {
    let (entry, core) = store.host();
    host::SqlView {
        database: &entry.database,
        default_database: &entry.default_database,
        granted: entry.granted.as_deref(),
        limits: entry.limits,
        table: &mut core.table,
    }
}

impl<T: HostView<WasiSql<B>>, B: 'static> Host<T> for WasiSql<B> {
    fn used_by(engine: &Engine, component: &Component) -> bool {
        omnia::component::imports_interface(engine, component, "wasi:sql/")
    }

    fn add_to_linker(linker: &mut Linker<T>, component: &Component) -> Result<()> {
        // Upstream omnia's async shape has the proposal's names, so a linker holds one or the
        // other: the component's own imports pick (only a WASI 0.3 component can import
        // `async func`s, and it runs in the engine that supports them).
        if omnia::component::imports_async_func(linker.engine(), component, "wasi:sql/") {
            host::p3::add_to_linker(linker, view::<T, B>)
        } else {
            host::add_to_linker(linker, view::<T, B>)
        }
    }
}
