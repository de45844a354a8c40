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

#[tokio::test]
async fn urls_with_user_info_are_refused_clearly() {
    let upstream = Omnia::serve(&omnia(), &guests::rust("http-hello"), &[]);
    let port = upstream.addr().rsplit(':').next().unwrap().to_string();
    let open = Omnia::serve(
        &omnia(),
        &guests::rust("http-fetch"),
        &[("OMNIA_HTTP_ALLOWED_HOSTS", &format!("127.0.0.1:{port}"))],
    );
    let target = format!("http://user:hunter2@127.0.0.1:{port}/");
    let refused = get(&open.url(&format!("/?url={target}"))).await.unwrap();
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    assert_eq!(refused.text(), "error: ErrorCode::HttpRequestUriInvalid\n");
    let log = open.log_with("user-info");
    assert!(log.contains("Authorization header"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}
