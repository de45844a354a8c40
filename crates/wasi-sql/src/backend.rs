//! What a SQL backend implements: a [`Database`] opens named databases, each a
//! [`Connection`] that runs one statement at a time with its parameters bound, never
//! interpolated. Values cross in one form, [`Value`], whichever WIT shape the guest uses.
//!
//! This crate knows nothing about PostgreSQL: [`Sqlite`](crate::Sqlite) is the embedded
//! default, and other backends implement these traits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// A value bound to a parameter or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 32-bit signed integer.
    Int32(i32),
    /// A 64-bit signed integer.
    Int64(i64),
    /// A 32-bit unsigned integer.
    Uint32(u32),
    /// A 64-bit unsigned integer.
    Uint64(u64),
    /// A 32-bit float (upstream's `float`).
    Float(f32),
    /// A 64-bit float.
    Double(f64),
    /// Text.
    Str(String),
    /// A boolean.
    Boolean(bool),
    /// A date, as text (ISO 8601 `YYYY-MM-DD`).
    Date(String),
    /// A time of day, as text (ISO 8601 `HH:MM:SS[.fff]`).
    Time(String),
    /// A timestamp, as text (RFC 3339).
    Timestamp(String),
    /// Bytes.
    Binary(Vec<u8>),
}

impl Value {
    /// The bytes the value takes in a result, for the result-size limit: its payload, at
    /// least 8.
    pub fn size(&self) -> usize {
        match self {
            Self::Str(s) | Self::Date(s) | Self::Time(s) | Self::Timestamp(s) => s.len().max(8),
            Self::Binary(b) => b.len().max(8),
            _ => 8,
        }
    }
}

/// What kind of value a column holds, from its declared type: which WIT variant a NULL in it
/// is (upstream's shape has no untyped NULL) and how a backend that stores dynamically typed
/// values (SQLite) reads an integer or text back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Integers (`INTEGER`, `INT`, `BIGINT`, ...).
    Integer,
    /// Floats (`REAL`, `DOUBLE`, `FLOAT`, `NUMERIC`...).
    Real,
    /// Booleans (`BOOLEAN`, `BOOL`).
    Boolean,
    /// Dates (`DATE`).
    Date,
    /// Times (`TIME`).
    Time,
    /// Timestamps (`TIMESTAMP`, `DATETIME`, `TIMESTAMPTZ`).
    Timestamp,
    /// Bytes (`BLOB`, `BYTEA`).
    Binary,
    /// Text, and anything else (an expression's column has no declared type).
    Text,
}

impl ColumnKind {
    /// The kind of a column declared `decl` (case-insensitive; `None`: not a table column).
    pub fn of(decl: Option<&str>) -> Self {
        let Some(decl) = decl else {
            return Self::Text;
        };
        let decl = decl.to_ascii_uppercase();
        let word = decl.split(['(', ' ']).next().unwrap_or_default();
        match word {
            "BOOLEAN" | "BOOL" => Self::Boolean,
            "DATE" => Self::Date,
            "TIME" | "TIMETZ" => Self::Time,
            "TIMESTAMP" | "DATETIME" | "TIMESTAMPTZ" => Self::Timestamp,
            "BLOB" | "BYTEA" => Self::Binary,
            _ if decl.contains("INT") => Self::Integer,
            _ if ["REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL"]
                .iter()
                .any(|w| decl.contains(w)) =>
            {
                Self::Real
            }
            _ => Self::Text,
        }
    }
}

/// The result of a query: the columns, and each row's values in column order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Each column's name and kind.
    pub columns: Vec<(String, ColumnKind)>,
    /// The rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
}

/// Bounds on one statement: how long it may run and how much it may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `OMNIA_SQL_STATEMENT_TIMEOUT`: how long a statement may run.
    pub statement_timeout: Duration,
    /// `OMNIA_SQL_MAX_ROWS`: the most rows a query may return.
    pub max_rows: usize,
    /// `OMNIA_SQL_MAX_RESULT_BYTES`: the most bytes a query's values may take.
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            statement_timeout: Duration::from_secs(30),
            max_rows: 10_000,
            max_result_bytes: 16 << 20,
        }
    }
}

/// A failure, as the guest reads it from the WIT `error` resource's `trace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `open(name)`: a name that is not a database name.
    BadName(String),
    /// `open(name)`: a database the guest is not granted.
    AccessDenied(String),
    /// The statement is refused before it runs (a transaction, `ATTACH`, a `PRAGMA`), or a
    /// parameter does not fit the database.
    Refused(String),
    /// The database refused or failed the statement (a syntax error, a constraint).
    Statement(String),
    /// The result is over [`Limits::max_rows`] or [`Limits::max_result_bytes`].
    TooLarge(String),
    /// A write would grow the database past its size limit.
    Full(String),
    /// The statement ran past [`Limits::statement_timeout`], or waited too long for a
    /// connection.
    Timeout(String),
    /// The database cannot be reached.
    Connection(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(m) => write!(f, "bad database name: {m}"),
            Self::AccessDenied(m) => write!(f, "access denied: {m}"),
            Self::Refused(m) => write!(f, "refused: {m}"),
            Self::Statement(m) => write!(f, "statement failed: {m}"),
            Self::TooLarge(m) => write!(f, "result too large: {m}"),
            Self::Full(m) => write!(f, "database full: {m}"),
            Self::Timeout(m) => write!(f, "timed out: {m}"),
            Self::Connection(m) => write!(f, "connection: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// The result of a backend operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A SQL backend, shared by every instance of the process.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    /// Opens the database `name` (checked with [`check_database_name`] and the guest's
    /// grants already), creating it if the backend makes databases on demand.
    async fn open(&self, name: &str) -> Result<Arc<dyn Connection>>;
}

/// An open database.
#[async_trait]
pub trait Connection: Send + Sync {
    /// Runs a statement that returns rows, `params` bound to its placeholders in order.
    async fn query(&self, sql: &str, params: Vec<Value>, limits: Limits) -> Result<Rows>;

    /// Runs a statement that changes data; returns how many rows it changed.
    async fn exec(&self, sql: &str, params: Vec<Value>, limits: Limits) -> Result<u64>;
}

/// Checks a database name: 1 to 64 ASCII letters, digits, `_` and `-`, not beginning with `-`
/// (it becomes a file name or a database identifier).
pub fn check_database_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(format!(
            "{name:?}: a database name is 1 to 64 ASCII letters, digits, '_' and '-', not \
             beginning with '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_name_their_kind() {
        for (decl, kind) in [
            (Some("INTEGER"), ColumnKind::Integer),
            (Some("bigint"), ColumnKind::Integer),
            (Some("BOOLEAN"), ColumnKind::Boolean),
            (Some("timestamp with time zone"), ColumnKind::Timestamp),
            (Some("DATETIME"), ColumnKind::Timestamp),
            (Some("DATE"), ColumnKind::Date),
            (Some("TIME"), ColumnKind::Time),
            (Some("DOUBLE PRECISION"), ColumnKind::Real),
            (Some("NUMERIC(10,2)"), ColumnKind::Real),
            (Some("BLOB"), ColumnKind::Binary),
            (Some("VARCHAR(20)"), ColumnKind::Text),
            (None, ColumnKind::Text),
        ] {
            assert_eq!(ColumnKind::of(decl), kind, "{decl:?}");
        }
    }

    #[test]
    fn database_names() {
        for good in ["default", "orders-2", "_api", "A"] {
            assert!(check_database_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(check_database_name(bad).is_err(), "{bad}");
        }
    }
}
