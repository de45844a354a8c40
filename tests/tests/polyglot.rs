//! Real polyglot guests: componentize-py and componentize-js HTTP handlers served by `omnia run`.
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
