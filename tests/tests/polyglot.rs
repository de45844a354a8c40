//! Real polyglot guests: componentize-py and componentize-js HTTP handlers (and Python guests
//! of key-value, messaging and SQL) served by `omnia run`.
//! (Built by `tests/guests/build-polyglot`; JIT-compiling each takes several seconds.)

use bytes::Bytes;
use http::{Method, StatusCode};
use omnia_tests::{Omnia, get, guests, omnia, request};

#[tokio::test]
async fn python_http_guest() {
    let server = Omnia::serve(&omnia(), &guests::polyglot("py-http"), &[]);
    let response = get(&server.url("/from/python?x=1")).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.text(),
        "hello from componentize-py, path=/from/python?x=1\n"
    );
    let posted = request(
        Method::POST,
        &server.url("/echo"),
        &[],
        Bytes::from_static(b"py body"),
        true,
    )
    .await
    .unwrap();
    assert_eq!(posted.status, StatusCode::OK);
    assert_eq!(posted.text(), "hello from componentize-py, path=/echo\n");
}

#[tokio::test]
async fn javascript_http_guest() {
    let server = Omnia::serve(&omnia(), &guests::polyglot("js-http"), &[]);
    let response = get(&server.url("/from/js")).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.text(),
        "hello from componentize-js, path=/from/js\n"
    );
}

#[tokio::test]
async fn python_keyvalue_counter() {
    let server = Omnia::serve(&omnia(), &guests::polyglot("py-kv"), &[]);
    for expected in ["1", "2", "3"] {
        let response = get(&server.url("/count/default/hits")).await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        assert_eq!(response.text(), expected);
    }
    // Another key counts on its own; a bad bucket name is the guest's error, not a trap.
    let other = get(&server.url("/count/default/other")).await.unwrap();
    assert_eq!(other.text(), "1");
    let bad = get(&server.url("/count/no.dots/hits")).await.unwrap();
    assert_eq!(bad.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        bad.text()
            .starts_with("keyvalue error: other: invalid bucket name"),
        "{}",
        bad.text()
    );
}

#[tokio::test]
async fn python_sql_guest() {
    let server = Omnia::serve(&omnia(), &guests::polyglot("py-sql"), &[]);
    let sql = |op: &'static str, body: &'static str| {
        let url = server.url(&format!("/{op}/"));
        async move {
            let response = request(
                Method::POST,
                &url,
                &[],
                Bytes::from_static(body.as_bytes()),
                true,
            )
            .await
            .unwrap();
            (response.status, response.text())
        }
    };
    let created = sql("exec", "CREATE TABLE t (n INTEGER, s TEXT, b BLOB)").await;
    assert_eq!(created, (StatusCode::OK, "0".into()));
    let inserted = sql(
        "exec",
        "INSERT INTO t VALUES (?, ?, X'00ff')\n42\nx'); DROP TABLE t; --",
    )
    .await;
    assert_eq!(inserted, (StatusCode::OK, "1".into()));
    let rows = sql("query", "SELECT n, s, b, NULL AS z FROM t").await;
    assert_eq!(
        rows,
        (
            StatusCode::OK,
            "n=int64:42\ns=str:x'); DROP TABLE t; --\nb=binary:00ff\nz=null\n".into()
        )
    );
    let refused = sql("exec", "BEGIN").await;
    assert_eq!(refused.0, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        refused.1.starts_with("sql error: refused: "),
        "{}",
        refused.1
    );
}

#[tokio::test]
async fn python_messaging_guest_on_nats() {
    use futures::StreamExt;
    let nats = omnia_tests::services::NatsServer::start();
    let _server = Omnia::serve_messaging(
        &omnia(),
        &guests::polyglot("py-msg"),
        &[
            ("NATS_URL", &nats.url()),
            ("OMNIA_MESSAGING_TOPICS", "py.in"),
        ],
    );
    let client = nats.client().await;
    let mut out = client.subscribe("py.in.out").await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("trace", "t-7");
    client
        .publish_with_headers("py.in", headers, Bytes::from_static(b"hello"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let message = tokio::time::timeout(std::time::Duration::from_mins(1), out.next())
        .await
        .expect("a reply within 60 s")
        .unwrap();
    assert_eq!(message.payload.as_ref(), b"py: HELLO");
    let trace = message.headers.as_ref().and_then(|h| h.get("trace"));
    assert_eq!(trace.map(async_nats::HeaderValue::as_str), Some("t-7"));
}
