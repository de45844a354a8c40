//! SIGTERM drains: in-flight requests complete, new connections are refused, exit code 0.

use std::time::Duration;

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia, p2_and_p3, spawn_gets};

p2_and_p3!(sigterm_drains_in_flight_requests_and_exits_zero);

async fn sigterm_drains_in_flight_requests_and_exits_zero(echo: &str) {
    let mut server = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        &[("OMNIA_SHUTDOWN_GRACE", "20s")],
    );
    let slow = spawn_gets(&server.url("/sleep/2000"), 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused = tokio::net::TcpStream::connect(server.addr()).await;
    assert!(
        refused.is_err(),
        "new connections are refused while draining"
    );

    for handle in slow {
        let response = handle.await.unwrap().expect("in-flight request completes");
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.text(), "slept 2000 ms\n");
    }
    let status = server
        .wait(Duration::from_secs(15))
        .expect("exits after draining");
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let log = server.log_with("SIGTERM: draining");
    assert!(log.contains("SIGTERM: draining"), "{log}");
}

#[tokio::test]
async fn sigint_on_an_idle_server_exits_zero_at_once() {
    let mut server = Omnia::serve(&omnia(), &guests::rust("http-hello"), &[]);
    assert_eq!(get(&server.url("/")).await.unwrap().status, StatusCode::OK);
    server.signal("INT");
    let status = server.wait(Duration::from_secs(5)).expect("exits promptly");
    assert_eq!(status.code(), Some(0));
}
