//! The embedded default: SQLite, compiled in, with no service to run.
//!
//! Each database a guest opens is one SQLite database: a file `<name>.sqlite3` in
//! `OMNIA_SQLITE_DIR` (WAL journal, so readers of other processes never block), or, without
//! it, a database in memory that lives as long as the process. Every instance of the process
//! shares one connection per database, so statements on one database run one at a time, each
//! on a blocking thread; a statement waits for the connection at most `OMNIA_SQL_POOL_WAIT`.
//!
//! What a guest may not do, refused before the statement runs (SQLite's authorizer): attach or
//! detach another database file (which would reach files outside the directory), begin, commit
//! or roll back a transaction, or use a savepoint (the connection is shared: a guest's open
//! transaction would take in every other guest's statements), or run a `PRAGMA`. One statement
//! per call: a second after `;` is refused, so a parameter that is text can never become SQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use omnia::FromEnv;
use omnia::config::{Setting, var};
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value as SqlValue, ValueRef};

use crate::backend::{self, ColumnKind, Connection, Database, Error, Limits, Rows, Value};

/// Options of [`Sqlite`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `OMNIA_SQLITE_DIR`: where database files are; `None`: in memory.
    pub dir: Option<PathBuf>,
    /// `OMNIA_SQL_POOL_WAIT`: how long a statement waits for its database's connection.
    pub pool_wait: Duration,
    /// `OMNIA_SQLITE_MAX_SIZE`: the most bytes one database may take (in memory or on disk).
    pub max_size: usize,
}

/// The default of `OMNIA_SQLITE_MAX_SIZE`.
pub const DEFAULT_MAX_SIZE: usize = 1 << 30;

/// The most databases one process opens (each has a connection, and in memory its data): a
/// guest that names a new database per request cannot grow the process without bound.
pub const MAX_DATABASES: usize = 256;

/// The default of `OMNIA_SQL_POOL_WAIT`.
pub const DEFAULT_POOL_WAIT: Duration = Duration::from_secs(5);

impl FromEnv for SqliteOptions {
    fn from_env() -> anyhow::Result<Self> {
        let dir = var("OMNIA_SQLITE_DIR", |s| Ok(PathBuf::from(s)))?;
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "OMNIA_SQLITE_DIR={}: cannot create the directory",
                    dir.display()
                )
            })?;
        }
        let pool_wait = var(
            "OMNIA_SQL_POOL_WAIT",
            omnia::config::parse_positive_duration,
        )?
        .unwrap_or(DEFAULT_POOL_WAIT);
        let max_size =
            var("OMNIA_SQLITE_MAX_SIZE", omnia::config::parse_size)?.unwrap_or(DEFAULT_MAX_SIZE);
        Ok(Self {
            dir,
            pool_wait,
            max_size,
        })
    }

    fn settings() -> Vec<Setting> {
        vec![
            Setting {
                env: "OMNIA_SQLITE_DIR",
                flag: None,
                value: "DIR",
                default: "(in memory)",
                help: "where SQLite keeps each database a guest opens, as <name>.sqlite3; unset: in memory, gone at exit",
            },
            Setting {
                env: "OMNIA_SQL_POOL_WAIT",
                flag: None,
                value: "DURATION",
                default: "5s",
                help: "how long a SQL statement waits for a connection to its database before it fails",
            },
            Setting {
                env: "OMNIA_SQLITE_MAX_SIZE",
                flag: None,
                value: "SIZE",
                default: "1GiB",
                help: "the most one SQLite database may take, in memory or on disk; a write past it is an error",
            },
        ]
    }
}

/// SQLite databases, in memory or in a directory; clones share them.
#[derive(Clone)]
pub struct Sqlite {
    options: SqliteOptions,
    open: Arc<Mutex<HashMap<String, Arc<SqliteConnection>>>>,
}

impl Sqlite {
    /// Databases as `options` say.
    pub fn new(options: SqliteOptions) -> Self {
        Self {
            options,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Opens (creating it if need be) and sets up the database `name`.
    fn connect(&self, name: &str) -> anyhow::Result<rusqlite::Connection> {
        let conn = match &self.options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let path = dir.join(format!("{name}.sqlite3"));
                let conn = rusqlite::Connection::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                conn.pragma_update(None, "journal_mode", "WAL")
                    .with_context(|| format!("cannot use a WAL journal for {}", path.display()))?;
                conn
            }
            None => rusqlite::Connection::open_in_memory().context("cannot open SQLite")?,
        };
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(self.options.pool_wait)?;
        // The size bound: SQLite refuses to grow a database past max_page_count pages.
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
        let pages = i64::try_from(self.options.max_size).unwrap_or(i64::MAX) / page_size.max(1);
        conn.pragma_update(None, "max_page_count", pages.max(1))?;
        conn.authorizer(Some(authorize));
        Ok(conn)
    }
}

/// Refuses what a guest may not do (see the module docs); allows the rest.
fn authorize(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Attach { .. }
        | AuthAction::Detach { .. }
        | AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. }
        | AuthAction::Pragma { .. } => Authorization::Deny,
        _ => Authorization::Allow,
    }
}

/// Why the authorizer refused a statement, for the guest.
const REFUSED: &str = "ATTACH, DETACH, transactions (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) and \
     PRAGMA are not allowed: each statement is atomic on its own (use one statement, such as \
     INSERT ... SELECT or an upsert, for a change that must be whole)";

#[async_trait]
impl Database for Sqlite {
    async fn open(&self, name: &str) -> backend::Result<Arc<dyn Connection>> {
        if let Some(conn) = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(Arc::clone(conn) as Arc<dyn Connection>);
        }
        if self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
            >= MAX_DATABASES
        {
            return Err(Error::Refused(format!(
                "database {name:?}: {MAX_DATABASES} databases are open already, the most one \
                 process keeps; use fewer names (tables in one database)"
            )));
        }
        let conn = self.connect(name).map_err(|err| {
            tracing::warn!(database = name, "sql: cannot open: {err:#}");
            Error::Connection(format!("cannot open database {name:?}: {err:#}"))
        })?;
        let conn = Arc::new(SqliteConnection {
            name: name.into(),
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
            pool_wait: self.options.pool_wait,
        });
        // Two first opens at once: the first one in wins, the other connection is dropped.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = open.entry(name.to_owned()).or_insert(conn);
        Ok(Arc::clone(conn) as Arc<dyn Connection>)
    }
}

/// One SQLite database, its connection shared by every instance.
struct SqliteConnection {
    name: Arc<str>,
    conn: Arc<tokio::sync::Mutex<rusqlite::Connection>>,
    pool_wait: Duration,
}

impl SqliteConnection {
    /// Runs `work` on the connection, on a blocking thread, once the connection is free.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> backend::Result<T> + Send + 'static,
    ) -> backend::Result<T> {
        let guard = tokio::time::timeout(self.pool_wait, Arc::clone(&self.conn).lock_owned())
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "waited {:?} (OMNIA_SQL_POOL_WAIT) for database {:?}, busy with other \
                     statements",
                    self.pool_wait, self.name
                ))
            })?;
        tokio::task::spawn_blocking(move || work(&guard))
            .await
            .map_err(|err| Error::Statement(format!("the statement's thread failed: {err}")))?
    }
}

#[async_trait]
impl Connection for SqliteConnection {
    async fn query(&self, sql: &str, params: Vec<Value>, limits: Limits) -> backend::Result<Rows> {
        let sql = sql.to_owned();
        self.with(move |conn| query(conn, &sql, &params, limits))
            .await
    }

    async fn exec(&self, sql: &str, params: Vec<Value>, limits: Limits) -> backend::Result<u64> {
        let sql = sql.to_owned();
        self.with(move |conn| exec(conn, &sql, &params, limits))
            .await
    }
}

/// Runs `work` with the statement timeout watched (SQLite's progress handler interrupts it),
/// and the connection left as it was found (no transaction open).
fn watched<T>(
    conn: &rusqlite::Connection,
    limits: Limits,
    work: impl FnOnce() -> backend::Result<T>,
) -> backend::Result<T> {
    let deadline = Instant::now() + limits.statement_timeout;
    conn.progress_handler(1000, Some(move || Instant::now() >= deadline));
    let result = work();
    conn.progress_handler(1000, None::<fn() -> bool>);
    if !conn.is_autocommit() {
        // The authorizer refuses BEGIN; should a transaction open anyway, end it.
        let _ = conn.execute_batch("ROLLBACK");
        return Err(Error::Refused(REFUSED.into()));
    }
    result.map_err(|err| match err {
        // Only the progress handler interrupts a statement.
        Error::Timeout(_) => Error::Timeout(format!(
            "the statement ran past {:?} (OMNIA_SQL_STATEMENT_TIMEOUT)",
            limits.statement_timeout
        )),
        other => other,
    })
}

/// Prepares `sql` and binds `params` to it.
fn prepare<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> backend::Result<rusqlite::Statement<'c>> {
    let mut statement = conn.prepare(sql).map_err(from_sqlite_error)?;
    let expected = statement.parameter_count();
    if expected != params.len() {
        return Err(Error::Refused(format!(
            "the statement has {expected} placeholder(s) and {} parameter(s) were given",
            params.len()
        )));
    }
    for (index, value) in params.iter().enumerate() {
        statement
            .raw_bind_parameter(index + 1, to_sqlite(index + 1, value)?)
            .map_err(from_sqlite_error)?;
    }
    Ok(statement)
}

fn query(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
    limits: Limits,
) -> backend::Result<Rows> {
    watched(conn, limits, || {
        let mut statement = prepare(conn, sql, params)?;
        let columns: Vec<(String, ColumnKind)> = statement
            .columns()
            .iter()
            .map(|c| (c.name().to_owned(), ColumnKind::of(c.decl_type())))
            .collect();
        let mut rows = Vec::new();
        let mut bytes = 0;
        let mut cursor = statement.raw_query();
        while let Some(row) = cursor.next().map_err(from_sqlite_error)? {
            if rows.len() == limits.max_rows {
                return Err(Error::TooLarge(format!(
                    "more than {} rows (OMNIA_SQL_MAX_ROWS): select fewer (LIMIT and OFFSET, or \
                     a narrower WHERE)",
                    limits.max_rows
                )));
            }
            let mut values = Vec::with_capacity(columns.len());
            for (index, (name, kind)) in columns.iter().enumerate() {
                let value = from_sqlite(row.get_ref(index).map_err(from_sqlite_error)?, *kind)
                    .map_err(|err| Error::Statement(format!("column {name:?}: {err}")))?;
                bytes += value.size();
                values.push(value);
            }
            if bytes > limits.max_result_bytes {
                return Err(Error::TooLarge(format!(
                    "more than {} bytes (OMNIA_SQL_MAX_RESULT_BYTES) in {} rows: select fewer \
                     rows or columns",
                    limits.max_result_bytes,
                    rows.len() + 1
                )));
            }
            rows.push(values);
        }
        Ok(Rows { columns, rows })
    })
}

fn exec(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
    limits: Limits,
) -> backend::Result<u64> {
    watched(conn, limits, || {
        let mut statement = prepare(conn, sql, params)?;
        // SQLite's count of changed rows is the last INSERT, UPDATE or DELETE's: a statement
        // that changed none (DDL, say) would report the one before it.
        let before = conn.total_changes();
        let changed = statement.raw_execute().map_err(|err| match err {
            rusqlite::Error::ExecuteReturnedResults => {
                Error::Refused("the statement returns rows: run it with query, not exec".into())
            }
            other => from_sqlite_error(other),
        })?;
        Ok(if conn.total_changes() == before {
            0
        } else {
            changed as u64
        })
    })
}

/// The guest's error for a SQLite failure.
fn from_sqlite_error(err: rusqlite::Error) -> Error {
    match err {
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::AuthorizationForStatementDenied =>
        {
            Error::Refused(REFUSED.into())
        }
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            Error::Timeout("interrupted".into())
        }
        rusqlite::Error::SqliteFailure(code, _) if code.code == rusqlite::ErrorCode::DiskFull => {
            Error::Full(
                "the write would grow it past OMNIA_SQLITE_MAX_SIZE (delete rows, or ask for a \
                 larger limit)"
                    .into(),
            )
        }
        rusqlite::Error::MultipleStatement => Error::Refused(
            "more than one statement: run one statement per call (parameters are bound, never \
             spliced into the SQL)"
                .into(),
        ),
        other => Error::Statement(other.to_string()),
    }
}

/// The SQLite value bound for parameter `index` (1-based, for the error).
fn to_sqlite(index: usize, value: &Value) -> backend::Result<SqlValue> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Int32(i) => SqlValue::Integer(i64::from(*i)),
        Value::Int64(i) => SqlValue::Integer(*i),
        Value::Uint32(u) => SqlValue::Integer(i64::from(*u)),
        Value::Uint64(u) => SqlValue::Integer(i64::try_from(*u).map_err(|_| {
            Error::Refused(format!(
                "parameter {index}: {u} does not fit SQLite's INTEGER (signed 64-bit): bind it as \
                 text or binary"
            ))
        })?),
        Value::Float(f) => SqlValue::Real(f64::from(*f)),
        Value::Double(f) => SqlValue::Real(*f),
        Value::Boolean(b) => SqlValue::Integer(i64::from(*b)),
        Value::Str(s) | Value::Date(s) | Value::Time(s) | Value::Timestamp(s) => {
            SqlValue::Text(s.clone())
        }
        Value::Binary(b) => SqlValue::Blob(b.clone()),
    })
}

/// A column's value, read as its declared `kind` says where SQLite's storage class leaves a
/// choice (an integer in a `BOOLEAN` column is a boolean; text in a `DATE` column a date).
fn from_sqlite(value: ValueRef<'_>, kind: ColumnKind) -> Result<Value, String> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) if kind == ColumnKind::Boolean => Value::Boolean(i != 0),
        ValueRef::Integer(i) => Value::Int64(i),
        ValueRef::Real(f) => Value::Double(f),
        ValueRef::Text(bytes) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| "text that is not UTF-8 (store it as a BLOB)".to_owned())?
                .to_owned();
            match kind {
                ColumnKind::Date => Value::Date(text),
                ColumnKind::Time => Value::Time(text),
                ColumnKind::Timestamp => Value::Timestamp(text),
                _ => Value::Str(text),
            }
        }
        ValueRef::Blob(bytes) => Value::Binary(bytes.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Sqlite {
        Sqlite::new(SqliteOptions {
            dir: None,
            pool_wait: Duration::from_secs(1),
            max_size: DEFAULT_MAX_SIZE,
        })
    }

    #[tokio::test]
    async fn values_round_trip_with_their_declared_kinds() {
        let db = memory().open("t").await.unwrap();
        let limits = Limits::default();
        db.exec(
            "CREATE TABLE t (i INTEGER, b BOOLEAN, d DATE, ts TIMESTAMP, f REAL, s TEXT, x BLOB)",
            vec![],
            limits,
        )
        .await
        .unwrap();
        let row = vec![
            Value::Int64(i64::MIN),
            Value::Boolean(true),
            Value::Date("2026-12-07".into()),
            Value::Timestamp("2026-12-07T21:00:00Z".into()),
            Value::Double(0.5),
            Value::Str("'; DROP TABLE t; --".into()),
            Value::Binary(vec![0, 255]),
        ];
        let changed = db
            .exec(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)",
                row.clone(),
                limits,
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
        db.exec(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![Value::Null; 7],
            limits,
        )
        .await
        .unwrap();
        let rows = db.query("SELECT * FROM t", vec![], limits).await.unwrap();
        assert_eq!(rows.rows, vec![row, vec![Value::Null; 7]]);
        // A statement that changes no row says 0, not the count of the one before it.
        let changed = db
            .exec("CREATE TABLE u (v TEXT)", vec![], limits)
            .await
            .unwrap();
        assert_eq!(changed, 0);
        assert_eq!(rows.columns[1], ("b".into(), ColumnKind::Boolean));
    }

    #[tokio::test]
    async fn what_a_guest_may_not_do_is_refused() {
        let db = memory().open("t").await.unwrap();
        let limits = Limits::default();
        for sql in [
            "BEGIN",
            "SAVEPOINT a",
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "PRAGMA foreign_keys = OFF",
        ] {
            let err = db.exec(sql, vec![], limits).await.unwrap_err();
            assert!(matches!(err, Error::Refused(_)), "{sql}: {err}");
        }
        let err = db
            .exec("SELECT 1; SELECT 2", vec![], limits)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Refused(_)), "{err}");
        let err = db
            .exec("SELECT ?", vec![Value::Uint64(u64::MAX)], limits)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }

    #[tokio::test]
    async fn limits_cut_rows_bytes_and_time() {
        let db = memory().open("t").await.unwrap();
        let many = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 50) \
                    SELECT i, 'xxxxxxxxxxxxxxxx' FROM n";
        let rows = Limits {
            max_rows: 10,
            ..Limits::default()
        };
        let err = db.query(many, vec![], rows).await.unwrap_err();
        assert!(err.to_string().contains("more than 10 rows"), "{err}");
        let bytes = Limits {
            max_result_bytes: 100,
            ..Limits::default()
        };
        let err = db.query(many, vec![], bytes).await.unwrap_err();
        assert!(err.to_string().contains("more than 100 bytes"), "{err}");
        let time = Limits {
            statement_timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        let forever = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                       SELECT count(*) FROM n";
        let err = db.query(forever, vec![], time).await.unwrap_err();
        assert!(matches!(err, Error::Timeout(_)), "{err}");
        // The connection is usable after each.
        let ok = db.query("SELECT 1", vec![], time).await.unwrap();
        assert_eq!(ok.rows, vec![vec![Value::Int64(1)]]);
    }

    #[tokio::test]
    async fn a_database_does_not_grow_past_its_size() {
        let sqlite = Sqlite::new(SqliteOptions {
            dir: None,
            pool_wait: Duration::from_secs(1),
            max_size: 256 << 10,
        });
        let db = sqlite.open("small").await.unwrap();
        let limits = Limits::default();
        db.exec("CREATE TABLE b (x BLOB)", vec![], limits)
            .await
            .unwrap();
        let mut written = 0;
        let err = loop {
            match db
                .exec("INSERT INTO b VALUES (zeroblob(16384))", vec![], limits)
                .await
            {
                Ok(_) => written += 1,
                Err(err) => break err,
            }
            assert!(written < 100, "256 KiB held {written} rows of 16 KiB");
        };
        assert!(matches!(err, Error::Full(_)), "{err}");
        assert!(err.to_string().contains("OMNIA_SQLITE_MAX_SIZE"), "{err}");
        // Deleting makes room again.
        db.exec("DELETE FROM b", vec![], limits).await.unwrap();
        db.exec("INSERT INTO b VALUES (zeroblob(16384))", vec![], limits)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_number_of_databases_is_bounded() {
        let sqlite = memory();
        for n in 0..MAX_DATABASES {
            sqlite.open(&format!("db{n}")).await.unwrap();
        }
        let err = sqlite.open("one-more").await.err().unwrap();
        assert!(
            err.to_string().contains("databases are open already"),
            "{err}"
        );
        // One already open still opens.
        assert!(sqlite.open("db0").await.is_ok());
    }

    #[tokio::test]
    async fn files_in_the_directory_keep_their_data() {
        let dir = std::env::temp_dir().join(format!("omnia-sqlite-{}", std::process::id()));
        let options = SqliteOptions {
            dir: Some(dir.clone()),
            pool_wait: Duration::from_secs(1),
            max_size: DEFAULT_MAX_SIZE,
        };
        let limits = Limits::default();
        let db = Sqlite::new(options.clone()).open("kept").await.unwrap();
        db.exec("CREATE TABLE k (v TEXT)", vec![], limits)
            .await
            .unwrap();
        db.exec(
            "INSERT INTO k VALUES (?)",
            vec![Value::Str("x".into())],
            limits,
        )
        .await
        .unwrap();
        let again = Sqlite::new(options).open("kept").await.unwrap();
        let rows = again
            .query("SELECT v FROM k", vec![], limits)
            .await
            .unwrap();
        assert_eq!(rows.rows, vec![vec![Value::Str("x".into())]]);
        assert!(dir.join("kept.sqlite3").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
