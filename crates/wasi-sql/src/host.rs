//! The `wasi:sql` host functions of the proposal's synchronous shape, over any [`Database`].
//!
//! Guest-visible resources are [`ConnectionHandle`] (an open database), [`StatementHandle`]
//! (SQL and its parameters, bound when it runs) and [`ErrorHandle`] (what went wrong, read
//! with `trace`). Every failure of the database is an `error` for the guest, never a trap;
//! only a broken resource handle, which a correct guest cannot produce, traps.
//!
//! How the proposal's types are read (its WIT leaves these to the host):
//!
//! * `prepare(query, params)`: each parameter is a string, bound as text; the database
//!   converts it where a column's type asks (SQLite's type affinity: `'42'` stored in an
//!   `INTEGER` column is the integer 42). Placeholders are `?` (or `?NNN`, `:name`, `$name`
//!   in order) for SQLite.
//! * `query` returns a `row` per value: the proposal's `row` is one `field-name` and `value`,
//!   so the result is each row's columns in order, row after row (a new row begins when the
//!   first column's name comes again). SQL NULL is `null`.
//! * `exec` returns the rows changed, capped at `u32::MAX`.

use std::sync::Arc;

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::backend::{self, Connection, Database, Error, Limits, Rows, Value};

pub mod p3;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "omnia:wasi-sql/host",
        imports: { default: async | trappable },
        with: {
            "wasi:sql/types.connection": super::ConnectionHandle,
            "wasi:sql/types.statement": super::StatementHandle,
            "wasi:sql/types.error": super::ErrorHandle,
        },
    });
}

use bindings::wasi::sql::{readwrite, types};

/// An open database, as held in a store's resource table.
pub struct ConnectionHandle {
    name: Arc<str>,
    connection: Arc<dyn Connection>,
}

/// A statement and its parameters, bound when it runs.
pub struct StatementHandle {
    sql: String,
    params: Vec<Value>,
}

/// A failure, for the guest to read with `trace`.
pub struct ErrorHandle(Error);

/// The per-call view of a store's data that the host functions work on.
pub struct SqlView<'a> {
    /// The configured database backend.
    pub database: &'a Arc<dyn Database>,
    /// The database `open("")` opens.
    pub default_database: &'a str,
    /// The databases the guest may open by name; `None`: any.
    pub granted: Option<&'a [String]>,
    /// Bounds on each statement.
    pub limits: Limits,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// What a host function returns: a value, the guest's `error`, or a trap.
type SqlResult<T> = wasmtime::Result<Result<T, Resource<ErrorHandle>>>;

/// What a `query` or `exec` runs: the connection, its database's name, the SQL and its
/// parameters.
pub(crate) struct Call {
    pub(crate) connection: Arc<dyn Connection>,
    pub(crate) database: Arc<str>,
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
}

impl SqlView<'_> {
    /// The database `open(name)` opens (both shapes): the empty name is the guest's default
    /// database; any other must be a valid name and, for a guest restricted to its grants, a
    /// granted one.
    pub(crate) fn database_name(&self, name: &str) -> backend::Result<String> {
        if name.is_empty() {
            return Ok(self.default_database.to_owned());
        }
        backend::check_database_name(name)?;
        if let Some(granted) = self.granted
            && !granted.iter().any(|g| g == name)
        {
            if let Some(suppressed) = DENIED_LOG.check() {
                tracing::warn!(
                    database = name,
                    "sql: a guest opened database {name:?}, which it is not granted (its \
                     manifest's [guest.grants] sql = {{ databases = [...] }}){}",
                    omnia::telemetry::suppressed_note(suppressed)
                );
            }
            return Err(Error::AccessDenied(format!(
                "database {name:?} is not granted to this guest"
            )));
        }
        Ok(name.to_owned())
    }

    /// The guest's `error` for `err`.
    pub(crate) fn error<T>(&mut self, err: Error) -> SqlResult<T> {
        Ok(Err(self.table.push(ErrorHandle(err))?))
    }

    /// The connection and statement a call names (shared with the async shape, [`p3`]).
    pub(crate) fn call(
        &self,
        connection: &Resource<ConnectionHandle>,
        statement: &Resource<StatementHandle>,
    ) -> wasmtime::Result<Call> {
        let handle = self.table.get(connection)?;
        let (connection, database) = (Arc::clone(&handle.connection), Arc::clone(&handle.name));
        let statement = self.table.get(statement)?;
        Ok(Call {
            connection,
            database,
            sql: statement.sql.clone(),
            params: statement.params.clone(),
        })
    }
}

/// Rate limit of the log line of a database a guest is not granted.
static DENIED_LOG: omnia::telemetry::LogLimit =
    omnia::telemetry::LogLimit::new(1, std::time::Duration::from_secs(10));

/// Logs a failure that is the database's (not the guest's SQL), naming the operation and the
/// database; the result as it was.
pub(crate) fn logged<T>(
    result: backend::Result<T>,
    op: &str,
    database: &str,
) -> backend::Result<T> {
    if let Err(err @ (Error::Connection(_) | Error::Timeout(_))) = &result {
        omnia::metrics::BACKEND_ERRORS.inc();
        tracing::warn!(database, op, error = %err, "sql: operation failed");
    }
    result
}

/// Opens `name` for the guest (both shapes): the name checked, then the backend asked.
pub(crate) async fn open(
    database: Arc<dyn Database>,
    name: backend::Result<String>,
) -> backend::Result<ConnectionHandle> {
    let name = name?;
    let connection = logged(database.open(&name).await, "open", &name)?;
    Ok(ConnectionHandle {
        name: name.into(),
        connection,
    })
}

impl types::Host for SqlView<'_> {}

impl types::HostConnection for SqlView<'_> {
    async fn open(&mut self, name: String) -> SqlResult<Resource<ConnectionHandle>> {
        let checked = self.database_name(&name);
        match open(Arc::clone(self.database), checked).await {
            Ok(handle) => Ok(Ok(self.table.push(handle)?)),
            Err(err) => self.error(err),
        }
    }

    async fn drop(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl types::HostStatement for SqlView<'_> {
    async fn prepare(
        &mut self,
        query: String,
        params: Vec<String>,
    ) -> SqlResult<Resource<StatementHandle>> {
        let statement = StatementHandle {
            sql: query,
            params: params.into_iter().map(Value::Str).collect(),
        };
        Ok(Ok(self.table.push(statement)?))
    }

    async fn drop(&mut self, handle: Resource<StatementHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl types::HostError for SqlView<'_> {
    async fn trace(&mut self, handle: Resource<ErrorHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.0.to_string())
    }

    async fn drop(&mut self, handle: Resource<ErrorHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl readwrite::Host for SqlView<'_> {
    async fn query(
        &mut self,
        c: Resource<ConnectionHandle>,
        q: Resource<StatementHandle>,
    ) -> SqlResult<Vec<types::Row>> {
        let call = self.call(&c, &q)?;
        let result = call
            .connection
            .query(&call.sql, call.params, self.limits)
            .await;
        match logged(result, "query", &call.database) {
            Ok(rows) => Ok(Ok(to_wit_rows(rows))),
            Err(err) => self.error(err),
        }
    }

    async fn exec(
        &mut self,
        c: Resource<ConnectionHandle>,
        q: Resource<StatementHandle>,
    ) -> SqlResult<u32> {
        let call = self.call(&c, &q)?;
        let result = call
            .connection
            .exec(&call.sql, call.params, self.limits)
            .await;
        match logged(result, "exec", &call.database) {
            Ok(changed) => Ok(Ok(u32::try_from(changed).unwrap_or(u32::MAX))),
            Err(err) => self.error(err),
        }
    }
}

/// The proposal's result: a `row` per value, row after row.
fn to_wit_rows(rows: Rows) -> Vec<types::Row> {
    let mut out = Vec::with_capacity(rows.rows.len() * rows.columns.len());
    for row in rows.rows {
        for ((name, _), value) in rows.columns.iter().zip(row) {
            out.push(types::Row {
                field_name: name.clone(),
                value: to_wit(value),
            });
        }
    }
    out
}

/// A value in the proposal's `data-type`.
fn to_wit(value: Value) -> types::DataType {
    use types::DataType as D;
    match value {
        Value::Null => D::Null,
        Value::Int32(i) => D::Int32(i),
        Value::Int64(i) => D::Int64(i),
        Value::Uint32(u) => D::Uint32(u),
        Value::Uint64(u) => D::Uint64(u),
        Value::Float(f) => D::Float(f64::from(f)),
        Value::Double(f) => D::Double(f),
        Value::Str(s) => D::Str(s),
        Value::Boolean(b) => D::Boolean(b),
        Value::Date(s) => D::Date(s),
        Value::Time(s) => D::Time(s),
        Value::Timestamp(s) => D::Timestamp(s),
        Value::Binary(b) => D::Binary(b),
    }
}

/// Marks [`SqlView`] as the data the host functions reach.
struct Sql;

impl HasData for Sql {
    type Data<'a> = SqlView<'a>;
}

/// Adds the synchronous shape of `wasi:sql` to `linker`, each call reaching its [`SqlView`]
/// through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> SqlView<'_>,
) -> anyhow::Result<()> {
    types::add_to_linker::<T, Sql>(linker, view)?;
    readwrite::add_to_linker::<T, Sql>(linker, view)?;
    Ok(())
}
