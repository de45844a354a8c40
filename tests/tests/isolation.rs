//! One bad request never hurts another: a trap, an infinite loop and a memory bomb each fail
//! alone while concurrent good requests keep succeeding, and the process stays up.

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia, spawn_gets};

async fn good_requests_meanwhile(server: &Omnia, bad_path: &str, bad_status: StatusCode) {
    let bad = spawn_gets(&server.url(bad_path), 1)
        .pop()
        .expect("one request");
    let mut good = Vec::new();
    for i in 0..40 {
        good.extend(spawn_gets(&server.url(&format!("/good/{i}")), 1));
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    for (i, handle) in good.into_iter().enumerate() {
        let response = handle.await.unwrap().unwrap();
        assert_eq!(response.status, StatusCode::OK, "good request {i}");
        assert!(response.text().contains(&format!("path: /good/{i}\n")));
    }
    let bad = bad.await.unwrap().unwrap();
    assert_eq!(bad.status, bad_status, "{bad_path}: {}", bad.text());
}

#[tokio::test]
async fn a_trap_fails_alone() {
    let mut server = Omnia::serve(&omnia(), &guests::rust("http-echo"), &[]);
    good_requests_meanwhile(&server, "/trap", StatusCode::INTERNAL_SERVER_ERROR).await;
    let log = server.log_with("GET /trap: guest failed");
    assert!(log.contains("GET /trap: guest failed"), "{log}");
    assert!(server.is_running());
    assert_eq!(
        get(&server.url("/after")).await.unwrap().status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_infinite_loop_hits_the_deadline_alone() {
    let mut server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[("OMNIA_REQUEST_TIMEOUT", "2s")],
    );
    good_requests_meanwhile(&server, "/loop", StatusCode::GATEWAY_TIMEOUT).await;
    let log = server.log_with("GET /loop: guest ran past OMNIA_REQUEST_TIMEOUT");
    assert!(
        log.contains("GET /loop: guest ran past OMNIA_REQUEST_TIMEOUT"),
        "{log}"
    );
    // Two loops at once on two cores still leave room for good requests: looping guests yield.
    let loops = spawn_gets(&server.url("/loop"), 2);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        get(&server.url("/during")).await.unwrap().status,
        StatusCode::OK
    );
    for handle in loops {
        assert_eq!(
            handle.await.unwrap().unwrap().status,
            StatusCode::GATEWAY_TIMEOUT
        );
    }
    assert!(server.is_running());
}

#[tokio::test]
async fn a_memory_bomb_fails_alone() {
    let mut server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[("OMNIA_MAX_MEMORY", "64MiB")],
    );
    good_requests_meanwhile(&server, "/alloc", StatusCode::INTERNAL_SERVER_ERROR).await;
    assert!(server.is_running());
    assert_eq!(
        get(&server.url("/after")).await.unwrap().status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn overload_is_refused_with_503() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[("OMNIA_MAX_CONCURRENCY", "2")],
    );
    let slow = spawn_gets(&server.url("/sleep/3000"), 2);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let refused = get(&server.url("/extra")).await.unwrap();
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.text().contains("OMNIA_MAX_CONCURRENCY"));
    for handle in slow {
        assert_eq!(handle.await.unwrap().unwrap().status, StatusCode::OK);
    }
    assert_eq!(
        get(&server.url("/later")).await.unwrap().status,
        StatusCode::OK
    );
}
