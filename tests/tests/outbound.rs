//! Outgoing HTTP from guests: denied unless the host is allowed.

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia};

#[tokio::test]
async fn denied_by_default_allowed_when_listed() {
    // The upstream is itself an omnia serving the hello guest: a real loopback HTTP server.
    let upstream = Omnia::serve(&omnia(), &guests::rust("http-hello"), &[]);
    let target = upstream.url("/from-guest");

    let closed = Omnia::serve(&omnia(), &guests::rust("http-fetch"), &[]);
    let denied = get(&closed.url(&format!("/?url={target}"))).await.unwrap();
    assert_eq!(denied.status, StatusCode::BAD_GATEWAY);
    assert_eq!(denied.text(), "error: ErrorCode::HttpRequestDenied\n");
    let port = upstream.addr().rsplit(':').next().unwrap();
    let denial = format!("outgoing request to 127.0.0.1:{port} denied");
    let log = closed.log_with(&denial);
    assert!(
        log.contains(&denial) && log.contains("OMNIA_HTTP_ALLOWED_HOSTS"),
        "{log}"
    );

    let allowed_list = format!("example.com,127.0.0.1:{port}");
    let open = Omnia::serve(
        &omnia(),
        &guests::rust("http-fetch"),
        &[("OMNIA_HTTP_ALLOWED_HOSTS", &allowed_list)],
    );
    let fetched = get(&open.url(&format!("/?url={target}"))).await.unwrap();
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text());
    assert_eq!(fetched.text(), "upstream 200\nhello from Rust http guest\n");

    // Allowed host, other port: still denied.
    let denied = get(&open.url("/?url=http://127.0.0.1:1/")).await.unwrap();
    assert_eq!(denied.text(), "error: ErrorCode::HttpRequestDenied\n");
}
