//! Upstream omnia's async shape of `wasi:sql@0.2.0-draft`, for WASI 0.3 components.
//!
//! The same names as the proposal's, but `prepare`, `open`, `query` and `exec` are
//! `async func`s, parameters are typed `data-type`s, a `data-type` carries an `option` (`none`
//! is SQL NULL) and a `row` is a record of `fields` with an `index` (the row's position from 0,
//! in decimal, as upstream numbers them). The same backend serves both shapes: these functions
//! take what they need out of the store ([`SqlView`]) without holding it across an `await`.
//!
//! A NULL read back is the `none` of the variant its column's declared type names
//! ([`ColumnKind`]): `int64(none)` from an `INTEGER` column, `str(none)` from an expression.

use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Resource};

use super::{ConnectionHandle, ErrorHandle, SqlView, StatementHandle, logged, open};
use crate::backend::{ColumnKind, Error, Rows, Value};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit-p3",
        world: "omnia:wasi-sql-p3/host",
        imports: { default: trappable },
        with: {
            "wasi:sql/types.connection": crate::host::ConnectionHandle,
            "wasi:sql/types.statement": crate::host::StatementHandle,
            "wasi:sql/types.error": crate::host::ErrorHandle,
        },
    });
}

use bindings::wasi::sql::{readwrite, types};

/// What a host function returns: a value, the guest's `error`, or a trap.
type SqlResult<T> = wasmtime::Result<Result<T, Resource<ErrorHandle>>>;

/// Marks [`SqlView`] as the data the async host functions reach through their accessor.
struct SqlAsync;

impl HasData for SqlAsync {
    type Data<'a> = SqlView<'a>;
}

/// `result` for the guest: the value pushed as `ok`, or the error resource.
fn to_guest<T, R: 'static + Send>(
    accessor: &Accessor<T, SqlAsync>,
    result: Result<R, Error>,
) -> SqlResult<Resource<R>> {
    accessor.with(|mut access| {
        let view = access.get();
        Ok(match result {
            Ok(value) => Ok(view.table.push(value)?),
            Err(err) => Err(view.table.push(ErrorHandle(err))?),
        })
    })
}

impl<T> types::HostConnectionWithStore<T> for SqlAsync {
    async fn open(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> SqlResult<Resource<ConnectionHandle>> {
        let (database, checked) = accessor.with(|mut access| {
            let view = access.get();
            (Arc::clone(view.database), view.database_name(&name))
        });
        let opened = open(database, checked).await;
        to_guest(accessor, opened)
    }
}

impl types::HostConnection for SqlView<'_> {
    fn drop(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl<T> types::HostStatementWithStore<T> for SqlAsync {
    async fn prepare(
        accessor: &Accessor<T, Self>,
        query: String,
        params: Vec<types::DataType>,
    ) -> SqlResult<Resource<StatementHandle>> {
        let statement = StatementHandle {
            sql: query,
            params: params.into_iter().map(from_wit).collect(),
        };
        to_guest(accessor, Ok(statement))
    }
}

impl types::HostStatement for SqlView<'_> {
    fn drop(&mut self, handle: Resource<StatementHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl types::HostError for SqlView<'_> {
    fn trace(&mut self, handle: Resource<ErrorHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.0.to_string())
    }

    fn drop(&mut self, handle: Resource<ErrorHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl types::Host for SqlView<'_> {}

impl<T> readwrite::HostWithStore<T> for SqlAsync {
    async fn query(
        accessor: &Accessor<T, Self>,
        c: Resource<ConnectionHandle>,
        q: Resource<StatementHandle>,
    ) -> SqlResult<Vec<types::Row>> {
        let (call, limits) = accessor.with(|mut access| {
            let view = access.get();
            (view.call(&c, &q), view.limits)
        });
        let call = call?;
        let result = call.connection.query(&call.sql, call.params, limits).await;
        let result = logged(result, "query", &call.database);
        accessor.with(|mut access| {
            Ok(match result {
                Ok(rows) => Ok(to_wit_rows(rows)),
                Err(err) => Err(access.get().table.push(ErrorHandle(err))?),
            })
        })
    }

    async fn exec(
        accessor: &Accessor<T, Self>,
        c: Resource<ConnectionHandle>,
        q: Resource<StatementHandle>,
    ) -> SqlResult<u32> {
        let (call, limits) = accessor.with(|mut access| {
            let view = access.get();
            (view.call(&c, &q), view.limits)
        });
        let call = call?;
        let result = call.connection.exec(&call.sql, call.params, limits).await;
        let result = logged(result, "exec", &call.database);
        accessor.with(|mut access| {
            Ok(match result {
                Ok(changed) => Ok(u32::try_from(changed).unwrap_or(u32::MAX)),
                Err(err) => Err(access.get().table.push(ErrorHandle(err))?),
            })
        })
    }
}

impl readwrite::Host for SqlView<'_> {}

/// Upstream's rows: a record per row, its fields in column order.
fn to_wit_rows(rows: Rows) -> Vec<types::Row> {
    rows.rows
        .into_iter()
        .enumerate()
        .map(|(index, row)| types::Row {
            index: index.to_string(),
            fields: rows
                .columns
                .iter()
                .zip(row)
                .map(|((name, kind), value)| types::Field {
                    name: name.clone(),
                    value: to_wit(value, *kind),
                })
                .collect(),
        })
        .collect()
}

/// A value in upstream's `data-type`; a NULL is the `none` of its column's kind.
fn to_wit(value: Value, kind: ColumnKind) -> types::DataType {
    use types::DataType as D;
    match value {
        Value::Null => match kind {
            ColumnKind::Integer => D::Int64(None),
            ColumnKind::Real => D::Double(None),
            ColumnKind::Boolean => D::Boolean(None),
            ColumnKind::Date => D::Date(None),
            ColumnKind::Time => D::Time(None),
            ColumnKind::Timestamp => D::Timestamp(None),
            ColumnKind::Binary => D::Binary(None),
            ColumnKind::Text => D::Str(None),
        },
        Value::Int32(i) => D::Int32(Some(i)),
        Value::Int64(i) => D::Int64(Some(i)),
        Value::Uint32(u) => D::Uint32(Some(u)),
        Value::Uint64(u) => D::Uint64(Some(u)),
        Value::Float(f) => D::Float(Some(f)),
        Value::Double(f) => D::Double(Some(f)),
        Value::Str(s) => D::Str(Some(s)),
        Value::Boolean(b) => D::Boolean(Some(b)),
        Value::Date(s) => D::Date(Some(s)),
        Value::Time(s) => D::Time(Some(s)),
        Value::Timestamp(s) => D::Timestamp(Some(s)),
        Value::Binary(b) => D::Binary(Some(b)),
    }
}

/// A parameter from upstream's `data-type`; any `none` is SQL NULL.
fn from_wit(value: types::DataType) -> Value {
    use types::DataType as D;
    match value {
        D::Int32(v) => v.map_or(Value::Null, Value::Int32),
        D::Int64(v) => v.map_or(Value::Null, Value::Int64),
        D::Uint32(v) => v.map_or(Value::Null, Value::Uint32),
        D::Uint64(v) => v.map_or(Value::Null, Value::Uint64),
        D::Float(v) => v.map_or(Value::Null, Value::Float),
        D::Double(v) => v.map_or(Value::Null, Value::Double),
        D::Str(v) => v.map_or(Value::Null, Value::Str),
        D::Boolean(v) => v.map_or(Value::Null, Value::Boolean),
        D::Date(v) => v.map_or(Value::Null, Value::Date),
        D::Time(v) => v.map_or(Value::Null, Value::Time),
        D::Timestamp(v) => v.map_or(Value::Null, Value::Timestamp),
        D::Binary(v) => v.map_or(Value::Null, Value::Binary),
    }
}

/// Links upstream's async `wasi:sql/{types, readwrite}` into `linker` (an engine with
/// concurrency support: WASI 0.3), reading each store's data through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> SqlView<'_>,
) -> anyhow::Result<()> {
    types::add_to_linker::<_, SqlAsync>(linker, view)?;
    readwrite::add_to_linker::<_, SqlAsync>(linker, view)?;
    Ok(())
}
