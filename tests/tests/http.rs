//! `omnia run` serving `wasi:http` guests (WAT and Rust) over HTTP/1.1 and HTTP/2.

use bytes::Bytes;
use http::{Method, StatusCode, Version};
use omnia_tests::{Omnia, get, guests, omnia, request};

#[tokio::test]
async fn serves_rust_hello() {
    let server = Omnia::serve(&omnia(), &guests::rust("http-hello"), &[]);
    let response = get(&server.url("/")).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "hello from Rust http guest\n");
    assert_eq!(response.headers["content-type"], "text/plain");
}

#[tokio::test]
async fn serves_wat_hello() {
    let server = Omnia::serve(&omnia(), &guests::wat_http_hello(), &[]);
    for path in ["/", "/any/path?x=1"] {
        let response = get(&server.url(path)).await.unwrap();
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.text(), "hello from WAT http guest\n");
    }
}

#[tokio::test]
async fn echo_sees_method_path_headers_and_body() {
    let server = Omnia::serve(&omnia(), &guests::rust("http-echo"), &[]);
    let body: Vec<u8> = (0..=255u8).chain(b"tail".iter().copied()).collect();
    let response = request(
        Method::PUT,
        &server.url("/a/b?x=1&y=%20"),
        &[
            ("x-custom", "value 1"),
            ("content-type", "application/x-test"),
        ],
        Bytes::from(body.clone()),
        false,
    )
    .await
    .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["x-echo"], "1");
    let text = response.body.as_ref();
    let split = text
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("header block")
        + 2;
    let head = String::from_utf8_lossy(&text[..split]);
    assert!(
        head.starts_with("method: PUT\npath: /a/b?x=1&y=%20\n"),
        "{head}"
    );
    assert!(head.contains("header: x-custom: value 1\n"), "{head}");
    assert!(
        head.contains("header: content-type: application/x-test\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("body-length: {}\n", body.len())),
        "{head}"
    );
    assert_eq!(&text[split..], body.as_slice(), "body echoed byte for byte");
}

#[tokio::test]
async fn guest_status_codes_pass_through() {
    let server = Omnia::serve(&omnia(), &guests::rust("http-echo"), &[]);
    for code in [201u16, 404, 418, 503] {
        let response = get(&server.url(&format!("/status/{code}"))).await.unwrap();
        assert_eq!(response.status.as_u16(), code);
        assert!(response.body.is_empty());
    }
}

#[tokio::test]
async fn http2_prior_knowledge() {
    let server = Omnia::serve(&omnia(), &guests::rust("http-echo"), &[]);
    let response = request(
        Method::POST,
        &server.url("/h2"),
        &[],
        Bytes::from_static(b"over h2"),
        true,
    )
    .await
    .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.version, Version::HTTP_2);
    assert!(response.text().starts_with("method: POST\npath: /h2\n"));
    assert!(response.text().ends_with("\n\nover h2"));
}

#[tokio::test]
async fn body_over_the_limit_is_refused() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[("OMNIA_HTTP_MAX_BODY", "1KiB")],
    );
    let small = request(
        Method::POST,
        &server.url("/"),
        &[],
        Bytes::from(vec![1u8; 1024]),
        false,
    )
    .await
    .unwrap();
    assert_eq!(small.status, StatusCode::OK);
    let big = request(
        Method::POST,
        &server.url("/"),
        &[],
        Bytes::from(vec![1u8; 1025]),
        false,
    )
    .await
    .unwrap();
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(big.text().contains("OMNIA_HTTP_MAX_BODY"));
}

#[tokio::test]
async fn admin_reports_liveness_and_readiness() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-hello"),
        &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")],
    );
    let live = get(&server.admin_url("/livez")).await.unwrap();
    assert_eq!(live.status, StatusCode::OK);
    let ready = get(&server.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status, StatusCode::OK);
    let other = get(&server.admin_url("/nope")).await.unwrap();
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}
