//! wasi:sql end to end on embedded SQLite: the `sql-http` guest (the proposal's synchronous
//! shape) served by `omnia`, in memory and in a directory; what a guest may not do; the
//! statement limits; and per-guest databases in an application.

use std::path::{Path, PathBuf};

use http::Method;
use omnia_tests::{Omnia, guests, omnia};

/// `POST /{op}/{db}` with the SQL and its parameters as the body's lines: status and body.
async fn sql(server: &Omnia, op: &str, db: &str, lines: &[&str]) -> (u16, String) {
    let body = lines.join("\n");
    let response = server
        .call(Method::POST, &format!("/{op}/{db}"), &[], body.as_bytes())
        .await;
    (response.status.as_u16(), response.text())
}

/// `exec` that must succeed: the rows changed.
async fn exec(server: &Omnia, db: &str, lines: &[&str]) -> String {
    let (status, body) = sql(server, "exec", db, lines).await;
    assert_eq!(status, 200, "exec {lines:?}: {body}");
    body
}

/// `query` that must succeed: one line per value.
async fn query(server: &Omnia, db: &str, lines: &[&str]) -> String {
    let (status, body) = sql(server, "query", db, lines).await;
    assert_eq!(status, 200, "query {lines:?}: {body}");
    body
}

fn serve(env: &[(&str, &str)]) -> Omnia {
    Omnia::serve(&omnia(), &guests::rust("sql-http"), env)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnia-sql-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn rows_round_trip_through_a_guest_with_their_types() {
    let server = serve(&[]);
    exec(
        &server,
        "",
        &["CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, ok BOOLEAN, day DATE, at TIMESTAMP, \
           x REAL, s TEXT, b BLOB)"],
    )
    .await;
    // Parameters of the proposal's shape are text; SQLite's affinity makes `n` an integer.
    let changed = exec(
        &server,
        "",
        &[
            "INSERT INTO t (n, ok, day, at, x, s, b) VALUES (?, TRUE, ?, ?, 1.5, ?, X'00ff')",
            "-9223372036854775808",
            "2026-12-07",
            "2026-12-07T21:00:00Z",
            "caf%C3%A9%0Aline two",
        ],
    )
    .await;
    assert_eq!(changed, "1");
    exec(&server, "", &["INSERT INTO t (n) VALUES (NULL)"]).await;
    let rows = query(
        &server,
        "",
        &["SELECT n, ok, day, at, x, s, b FROM t ORDER BY id"],
    )
    .await;
    assert_eq!(
        rows,
        "n=int64:-9223372036854775808\nok=bool:true\nday=date:2026-12-07\n\
         at=timestamp:2026-12-07T21:00:00Z\nx=double:1.5\ns=str:caf%C3%A9%0Aline two\n\
         b=binary:00ff\n\
         n=null\nok=null\nday=null\nat=null\nx=null\ns=null\nb=null\n"
    );
    // Each named database is its own.
    exec(&server, "other", &["CREATE TABLE t (v TEXT)"]).await;
    assert_eq!(
        query(&server, "other", &["SELECT count(*) AS c FROM t"]).await,
        "c=int64:0\n"
    );
}

#[tokio::test]
async fn a_parameter_stays_data_and_what_a_guest_may_not_do_is_refused() {
    let server = serve(&[]);
    exec(&server, "", &["CREATE TABLE users (name TEXT)"]).await;
    let injection = "x'); DROP TABLE users; --";
    exec(&server, "", &["INSERT INTO users VALUES (?)", injection]).await;
    assert_eq!(
        query(
            &server,
            "",
            &["SELECT name FROM users WHERE name = ?", injection]
        )
        .await,
        format!("name=str:{injection}\n")
    );
    for (statement, expected) in [
        ("BEGIN", "refused: ATTACH, DETACH, transactions"),
        (
            "ATTACH DATABASE '/etc/passwd' AS p",
            "refused: ATTACH, DETACH, transactions",
        ),
        (
            "PRAGMA foreign_keys = OFF",
            "refused: ATTACH, DETACH, transactions",
        ),
        (
            "DELETE FROM users; DROP TABLE users",
            "refused: more than one statement",
        ),
        ("SELEC 1", "statement failed: near \"SELEC\": syntax error"),
        (
            "SELECT ?",
            "refused: the statement has 1 placeholder(s) and 0 parameter(s)",
        ),
    ] {
        let (status, body) = sql(&server, "exec", "", &[statement]).await;
        assert_eq!(status, 500, "{statement}: {body}");
        assert!(
            body.starts_with(&format!("sql error: {expected}")),
            "{statement}: {body}"
        );
    }
    let (status, body) = sql(&server, "exec", "..", &["SELECT 1"]).await;
    assert_eq!(
        (status, body.contains("bad database name")),
        (502, true),
        "{body}"
    );
    assert_eq!(
        query(&server, "", &["SELECT count(*) AS c FROM users"]).await,
        "c=int64:1\n"
    );
}

#[tokio::test]
async fn a_statement_past_a_limit_is_an_error_and_omnia_keeps_serving() {
    let server = serve(&[
        ("OMNIA_SQL_MAX_ROWS", "5"),
        ("OMNIA_SQL_MAX_RESULT_BYTES", "4KiB"),
        ("OMNIA_SQL_STATEMENT_TIMEOUT", "300ms"),
        ("OMNIA_SQLITE_MAX_SIZE", "256KiB"),
    ]);
    let numbers = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT ?) \
                   SELECT i FROM n";
    let (status, body) = sql(&server, "query", "", &[numbers, "6"]).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("result too large: more than 5 rows (OMNIA_SQL_MAX_ROWS)"),
        "{body}"
    );
    assert_eq!(query(&server, "", &[numbers, "5"]).await.lines().count(), 5);
    let (status, body) = sql(&server, "query", "", &["SELECT zeroblob(8192) AS b"]).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("more than 4096 bytes (OMNIA_SQL_MAX_RESULT_BYTES)"),
        "{body}"
    );
    let forever = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                   SELECT count(*) FROM n";
    let (status, body) = sql(&server, "query", "", &[forever]).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("timed out: the statement ran past 300ms"),
        "{body}"
    );
    exec(&server, "", &["CREATE TABLE big (b BLOB)"]).await;
    let (status, body) = sql(
        &server,
        "exec",
        "",
        &["INSERT INTO big VALUES (zeroblob(1048576))"],
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("database full: the write would grow it past OMNIA_SQLITE_MAX_SIZE"),
        "{body}"
    );
    assert_eq!(
        query(&server, "", &["SELECT 1 AS one"]).await,
        "one=int64:1\n"
    );
}

#[tokio::test]
async fn databases_in_a_directory_outlive_the_process() {
    let dir = scratch("files");
    let env = [("OMNIA_SQLITE_DIR", dir.to_str().unwrap())];
    {
        let server = serve(&env);
        exec(&server, "orders", &["CREATE TABLE o (id INTEGER)"]).await;
        exec(&server, "orders", &["INSERT INTO o VALUES (?)", "7"]).await;
    }
    assert!(dir.join("orders.sqlite3").exists());
    let server = serve(&env);
    assert_eq!(
        query(&server, "orders", &["SELECT id FROM o"]).await,
        "id=int64:7\n"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A manifest of two `sql-http` guests: `a` granted the database `shared`, `b` nothing.
fn two_guests(dir: &Path) -> PathBuf {
    let guest = |id: &str, more: &str| {
        format!(
            "[[guest]]\nid = \"{id}\"\nsource.path = \"{}\"\nroutes.http = [\"/{id}\"]\n{more}\n",
            guests::rust("sql-http").display()
        )
    };
    let text = guest("a", "[guest.grants]\nsql = { databases = [\"shared\"] }") + &guest("b", "");
    let path = dir.join("omnia.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn each_guest_of_an_application_opens_its_own_database_and_its_grants() {
    let dir = scratch("app");
    let server = Omnia::serve(&omnia(), &two_guests(&dir), &[]);
    // `open("")` is each guest's own database: the same table name, two tables.
    for guest in ["a", "b"] {
        let (status, body) = sql(
            &server,
            &format!("{guest}/exec"),
            "",
            &["CREATE TABLE t (v TEXT)"],
        )
        .await;
        assert_eq!(status, 200, "{guest}: {body}");
        let (status, body) = sql(
            &server,
            &format!("{guest}/exec"),
            "",
            &["INSERT INTO t VALUES (?)", guest],
        )
        .await;
        assert_eq!(status, 200, "{guest}: {body}");
    }
    for guest in ["a", "b"] {
        let (status, body) =
            sql(&server, &format!("{guest}/query"), "", &["SELECT v FROM t"]).await;
        assert_eq!((status, body), (200, format!("v=str:{guest}\n")));
    }
    // A granted database opens; one not granted, or another guest's own, is access denied.
    let (status, body) = sql(&server, "a/exec", "shared", &["CREATE TABLE s (v TEXT)"]).await;
    assert_eq!(status, 200, "{body}");
    for (guest, db) in [("b", "shared"), ("a", "_b"), ("b", "_a")] {
        let (status, body) = sql(&server, &format!("{guest}/query"), db, &["SELECT 1"]).await;
        assert_eq!(status, 502, "{guest} opened {db}: {body}");
        assert!(body.starts_with("open error: access denied"), "{body}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_grant_of_sql_is_checked_at_start_up() {
    let dir = scratch("bad-grant");
    let path = two_guests(&dir);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("databases = [\"shared\"]", "databases = [\"_b\"]");
    std::fs::write(&path, text).unwrap();
    let output = omnia_tests::run_to_end(&omnia(), &["run", path.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("guest \"a\"")
            && stderr.contains("a name beginning with '_' is a guest's own database"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_guest_built_for_upstream_omnia_binds_typed_parameters_and_reads_typed_nulls() {
    let server = Omnia::serve(&omnia(), &guests::rust("p3-sql-http"), &[]);
    exec(
        &server,
        "",
        &["CREATE TABLE t (n INTEGER, ok BOOLEAN, day DATE, x DOUBLE, s TEXT, b BLOB)"],
    )
    .await;
    let insert = "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)";
    exec(
        &server,
        "",
        &[
            insert,
            "uint32:4294967295",
            "bool:false",
            "date:2026-12-07",
            "float:0.5",
            "str:x",
            "binary:00ff",
        ],
    )
    .await;
    exec(
        &server,
        "",
        &[
            insert,
            "int64:none",
            "bool:none",
            "date:none",
            "double:none",
            "str:none",
            "binary:none",
        ],
    )
    .await;
    assert_eq!(
        query(
            &server,
            "",
            &["SELECT n, ok, day, x, s, b, n + 1 AS e FROM t"]
        )
        .await,
        "0: n=int64:4294967295 ok=bool:false day=date:2026-12-07 x=double:0.5 s=str:x \
         b=binary:00ff e=int64:4294967296\n\
         1: n=int64:none ok=bool:none day=date:none x=double:none s=str:none b=binary:none \
         e=str:none\n"
    );
    let (status, body) = sql(
        &server,
        "exec",
        "",
        &["SELECT ?", "uint64:18446744073709551615"],
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("parameter 1: 18446744073709551615 does not fit SQLite's INTEGER"),
        "{body}"
    );
}

#[tokio::test]
async fn guests_of_both_shapes_share_a_granted_database() {
    let dir = scratch("shapes");
    let guest = |id: &str, file: &str| {
        format!(
            "[[guest]]\nid = \"{id}\"\nsource.path = \"{}\"\nroutes.http = [\"/{id}\"]\n\
             [guest.grants]\nsql = {{ databases = [\"shared\"] }}\n",
            guests::rust(file).display()
        )
    };
    let path = dir.join("omnia.toml");
    std::fs::write(&path, guest("p2", "sql-http") + &guest("p3", "p3-sql-http")).unwrap();
    let server = Omnia::serve(&omnia(), &path, &[]);
    let (status, body) = sql(&server, "p2/exec", "shared", &["CREATE TABLE s (v TEXT)"]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sql(
        &server,
        "p3/exec",
        "shared",
        &["INSERT INTO s VALUES (?)", "str:from p3"],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sql(&server, "p2/query", "shared", &["SELECT v FROM s"]).await;
    assert_eq!((status, body.as_str()), (200, "v=str:from p3\n"));
    let _ = std::fs::remove_dir_all(dir);
}
