//! Connection-level defences: header-read and idle timeouts, the connection cap, accept
//! back-off, each client's share of the work slots, cancellation of requests whose client went
//! away, and the drain on shutdown.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use omnia_tests::client::raw;
use omnia_tests::process::run_to_end_with_open_files;
use omnia_tests::{Omnia, get, guests, omnia, p2_and_p3, spawn_gets};

p2_and_p3!(slow_request_bodies_are_cut_at_the_body_timeout);
p2_and_p3!(a_full_server_cuts_the_request_waiting_longest_for_its_body);
p2_and_p3!(working_guests_are_never_cut);

#[tokio::test]
async fn half_sent_headers_are_cut_off_at_the_header_timeout() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-hello"),
        &[
            ("OMNIA_HTTP_HEADER_TIMEOUT", "1s"),
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
        ],
    );
    let addr = server.addr().to_string();
    let closed = tokio::task::spawn_blocking(move || {
        let mut slow = raw::connect(&addr);
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let started = Instant::now();
        let (_, closed) = raw::read_until_closed(&mut slow, Duration::from_secs(8));
        (closed, started.elapsed())
    })
    .await
    .unwrap();
    assert!(closed.0, "a slowloris connection is closed");
    assert!(
        closed.1 < Duration::from_secs(5),
        "closed after {:?}",
        closed.1
    );
    assert!(server.metric("omnia_connections_timed_out_total").await >= 1);
}

#[tokio::test]
async fn idle_keep_alive_connections_outlive_the_header_timeout_until_the_idle_timeout() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-hello"),
        &[
            ("OMNIA_HTTP_HEADER_TIMEOUT", "1s"),
            ("OMNIA_HTTP_IDLE_TIMEOUT", "3s"),
        ],
    );
    let addr = server.addr().to_string();
    tokio::task::spawn_blocking(move || {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut conn = raw::connect(&addr);
        conn.write_all(request).unwrap();
        let (first, closed) = raw::read_until_closed(&mut conn, Duration::from_millis(1500));
        assert!(!closed && first.starts_with("HTTP/1.1 200"), "{first}");
        // Idle for longer than the header timeout: still open, and still serving.
        conn.write_all(request).unwrap();
        let (second, closed) = raw::read_until_closed(&mut conn, Duration::from_millis(500));
        assert!(!closed && second.starts_with("HTTP/1.1 200"), "{second}");
        // Idle past the idle timeout: closed by the server.
        let started = Instant::now();
        let (_, closed) = raw::read_until_closed(&mut conn, Duration::from_secs(8));
        assert!(closed, "the idle connection is closed");
        assert!(
            started.elapsed() > Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn new_clients_are_served_at_the_connection_cap() {
    // 300 idle connections against a cap of 50, in a process limited to 256 open files: the
    // longest-idle connections make room, and a new client is still served.
    let server = Omnia::serve_with_open_files(
        &omnia(),
        &guests::rust("http-hello"),
        &[
            ("OMNIA_HTTP_MAX_CONNECTIONS", "50"),
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
        ],
        256,
    );
    let addr = server.addr().to_string();
    let idle: Vec<_> = (0..300).map(|_| raw::connect(&addr)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..5 {
        let response = get(&server.url(&format!("/new/{i}"))).await.unwrap();
        assert_eq!(response.status, StatusCode::OK);
    }
    assert!(server.metric("omnia_connections_shed_total").await >= 250);
    assert!(server.metric("omnia_connections_open").await <= 51);
    drop(idle);
}

#[tokio::test]
async fn the_default_cap_follows_the_open_file_limit() {
    // No cap given: it is derived from `ulimit -n`, so 400 idle connections against 128
    // files do not lock new clients out.
    let server = Omnia::serve_with_open_files(&omnia(), &guests::rust("http-hello"), &[], 128);
    let addr = server.addr().to_string();
    let idle: Vec<_> = (0..400)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = get(&server.url("/")).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    drop(idle);
}

#[tokio::test]
async fn a_failing_accept_backs_off_instead_of_spinning() {
    // The admin endpoint of a process with 40 open files: 200 connections exhaust the file
    // descriptors, so accept fails. The loop must wait between attempts (little CPU, few log
    // lines), and the HTTP listener must still serve once the flood is gone.
    let server = Omnia::serve_with_open_files(
        &omnia(),
        &guests::rust("http-hello"),
        &[
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
            ("OMNIA_HTTP_MAX_CONNECTIONS", "16"),
        ],
        40,
    );
    let admin = server
        .admin_url("")
        .trim_start_matches("http://")
        .to_string();
    let before = server.cpu_time();
    let flood: Vec<_> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(&admin).ok())
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = server.cpu_time().saturating_sub(before);
    assert!(used < Duration::from_millis(1500), "{used:?} of CPU in 3 s");
    let log = server.log();
    let warnings = log.matches("accept failed").count();
    assert!(
        (1..=10).contains(&warnings),
        "{warnings} accept warnings:\n{log}"
    );
    drop(flood);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = get(&server.url("/"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        get(&server.admin_url("/livez")).await.unwrap().status,
        StatusCode::OK
    );
}

#[test]
fn serving_threads_start_before_the_listener_reports_ready() {
    // 64 open files cannot hold 1024 runtimes (each needs an epoll and an event descriptor).
    // That must fail start-up, naming the thread, before the listener says it is listening: a
    // listener that reported ready and then failed to start its threads would refuse every
    // connection a client was told it could open.
    let out = run_to_end_with_open_files(
        &omnia(),
        &guests::rust("http-hello"),
        &[
            ("RUST_LOG", "info"),
            ("OMNIA_HTTP_ADDR", "127.0.0.1:0"),
            ("OMNIA_HTTP_THREADS", "1024"),
        ],
        64,
    );
    let log =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("cannot start the runtime of http serving thread"),
        "{log}"
    );
    assert!(!log.contains("http: listening"), "{log}");
}

#[tokio::test]
async fn abandoned_requests_free_their_slots() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[
            ("OMNIA_MAX_CONCURRENCY", "4"),
            // One client here: a share above the slots leaves only OMNIA_MAX_CONCURRENCY.
            ("OMNIA_HTTP_CLIENT_SHARE", "5"),
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
        ],
    );
    // HTTP/1: four clients start a long request and hang up.
    let addr = server.addr().to_string();
    let abandoned: Vec<_> = (0..4)
        .map(|_| {
            let mut conn = raw::connect(&addr);
            conn.write_all(b"GET /sleep/25000 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            conn
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = get(&server.url("/busy")).await.unwrap();
    assert_eq!(
        busy.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "all slots taken"
    );
    drop(abandoned);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = get(&server.url("/after")).await.unwrap();
    assert_eq!(after.status, StatusCode::OK, "{}", after.text());

    // HTTP/2: four streams reset by the client (dropping the response future).
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    for _ in 0..4 {
        let request = http::Request::get(server.url("/sleep/25000"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let pending = client.request(request);
        let _ = tokio::time::timeout(Duration::from_millis(300), pending).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let request = http::Request::get(server.url("/h2-after"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let _ = response.into_body().collect().await;
    assert!(server.metric("omnia_guest_cancelled_total").await >= 8);
}

#[tokio::test]
async fn drain_closes_header_pending_connections_at_once() {
    let mut server = Omnia::serve(
        &omnia(),
        &guests::rust("http-hello"),
        &[("OMNIA_SHUTDOWN_GRACE", "30s")],
    );
    let mut pending = raw::connect(server.addr());
    pending.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    let _idle = raw::connect(server.addr());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    server.signal("TERM");
    let status = server
        .wait(Duration::from_secs(10))
        .expect("exits without waiting for the grace period");
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let mut server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[("OMNIA_SHUTDOWN_GRACE", "30s")],
    );
    let slow = spawn_gets(&server.url("/sleep/20000"), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.is_running(), "draining the slow request");
    server.signal("INT");
    let status = server.wait(Duration::from_secs(3)).expect("exits at once");
    assert_eq!(status.code(), Some(130), "{}", server.log());
    drop(slow);
}

#[tokio::test]
async fn readiness_turns_503_during_the_drain() {
    let mut server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
            ("OMNIA_SHUTDOWN_GRACE", "20s"),
        ],
    );
    assert_eq!(
        get(&server.admin_url("/readyz")).await.unwrap().status,
        StatusCode::OK
    );
    let slow = spawn_gets(&server.url("/sleep/2000"), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = get(&server.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let live = get(&server.admin_url("/livez")).await.unwrap();
    assert_eq!(live.status, StatusCode::OK);
    for handle in slow {
        assert_eq!(handle.await.unwrap().unwrap().status, StatusCode::OK);
    }
    let status = server.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

/// One client cannot take every work slot: an HTTP/2 connection opening 24 streams on a slow
/// route, with 16 slots in all, gets its share (8) and 503 for the rest, while requests from
/// other clients are served meanwhile. The clients are told apart by `X-Forwarded-For` from a
/// trusted proxy (this test's loopback address); the same header from an untrusted peer is
/// ignored, so it cannot be used to dodge the share.
#[tokio::test]
async fn one_client_cannot_take_every_slot() {
    for trusted in [true, false] {
        let mut env = vec![
            ("OMNIA_MAX_CONCURRENCY", "16"),
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
        ];
        if trusted {
            env.push(("OMNIA_HTTP_TRUSTED_PROXIES", "127.0.0.0/8, ::1"));
        }
        let server = Omnia::serve(&omnia(), &guests::rust("http-echo"), &env);
        let attacker = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Full<Bytes>>();
        let streams: Vec<_> = (0..24)
            .map(|i| {
                // Each stream names another client: only a trusted proxy is believed.
                let request = http::Request::get(server.url("/sleep/3000"))
                    .header("x-forwarded-for", format!("203.0.113.{i}, 203.0.113.200"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                tokio::spawn(attacker.request(request))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut good = 0;
        for i in 0..8 {
            let response = omnia_tests::client::request(
                http::Method::GET,
                &server.url(&format!("/good/{i}")),
                &[("x-forwarded-for", &format!("198.51.100.{i}"))],
                Bytes::new(),
                false,
            )
            .await
            .unwrap();
            good += usize::from(response.status == StatusCode::OK);
        }
        let mut admitted = 0;
        let mut refused = 0;
        for stream in streams {
            let response = stream.await.unwrap().unwrap();
            match response.status() {
                StatusCode::OK => admitted += 1,
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(response.headers()["retry-after"], "1");
                    refused += 1;
                }
                other => panic!("attacker stream answered {other}"),
            }
            let _ = response.into_body().collect().await;
        }
        if trusted {
            // 203.0.113.200 is the client of every stream: it gets half the slots.
            assert_eq!((admitted, refused), (8, 16), "the attacker's streams");
            assert_eq!(
                good, 8,
                "requests of other clients while the attacker held its share"
            );
        } else {
            // Every request comes from the loopback peer, which gets half the slots.
            assert_eq!((admitted, refused), (8, 16), "the attacker's streams");
            assert_eq!(
                good, 0,
                "all from one client (untrusted headers are ignored)"
            );
        }
        assert_eq!(
            server
                .metric("omnia_http_client_share_refusals_total")
                .await,
            if trusted { 16 } else { 24 }
        );
    }
}

/// A request body that trickles in (10 bytes a second, as slowhttptest -B sends) is cut once
/// the guest has waited `OMNIA_HTTP_BODY_TIMEOUT` for it (408), freeing its slot long before
/// `OMNIA_REQUEST_TIMEOUT`; a body that keeps up with `OMNIA_HTTP_BODY_MIN_RATE` is read whole
/// however long it takes.
async fn slow_request_bodies_are_cut_at_the_body_timeout(echo: &str) {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        &[
            ("OMNIA_HTTP_BODY_TIMEOUT", "2s"),
            ("OMNIA_HTTP_BODY_MIN_RATE", "100"),
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
        ],
    );
    let addr = server.addr().to_string();
    // `chunk` bytes every `every`, `n` times, then the rest of the declared 1000 bytes.
    let send = move |chunk: usize, every: Duration, n: usize| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut conn = raw::connect(&addr);
            conn.write_all(
                b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n",
            )
            .unwrap();
            let mut sent = 0;
            for _ in 0..n {
                if conn.write_all(&vec![b'x'; chunk]).is_err() {
                    break;
                }
                sent += chunk;
                std::thread::sleep(every);
            }
            let _ = conn.write_all(&vec![b'y'; 1000 - sent]);
            let (answer, _) = raw::read_until_closed(&mut conn, Duration::from_secs(20));
            (answer, started.elapsed())
        })
    };
    // 10 bytes a second for 8 s: cut after the 2 s grace (and the 10 bytes/s it earned).
    let (answer, took) = send(10, Duration::from_secs(1), 8).await.unwrap();
    assert_eq!(raw::status(&answer), 408, "{echo}: {answer}");
    assert!(
        answer.contains("OMNIA_HTTP_BODY_TIMEOUT"),
        "{echo}: {answer}"
    );
    assert!(took < Duration::from_secs(6), "{echo}: cut after {took:?}");
    assert_eq!(
        server.metric("omnia_work_in_flight").await,
        0,
        "{echo}: slot freed"
    );
    // 200 bytes a second for 4 s (twice the minimum rate): slow, but kept up.
    let (answer, _) = send(200, Duration::from_secs(1), 4).await.unwrap();
    assert_eq!(raw::status(&answer), 200, "{echo}: {answer}");
    assert!(answer.contains("body-length: 1000"), "{echo}: {answer}");
}

/// When every slot is taken, a request that has only been waiting for its body (slowhttptest
/// -B, well inside `OMNIA_HTTP_BODY_TIMEOUT`) is cut with 408 so a new request without a body
/// can be served; a new request with a body cuts nobody.
async fn a_full_server_cuts_the_request_waiting_longest_for_its_body(echo: &str) {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        &[
            ("OMNIA_MAX_CONCURRENCY", "4"),
            // One client here: a share above the slots leaves only OMNIA_MAX_CONCURRENCY.
            ("OMNIA_HTTP_CLIENT_SHARE", "8"),
            ("OMNIA_HTTP_BODY_TIMEOUT", "60s"),
            // 0.3: an instance per request, so that the echo guest's panic on its cut body
            // (its choice) takes no other request with it (see the reuse module).
            ("OMNIA_HTTP_INSTANCE_CONCURRENCY", "1"),
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
        ],
    );
    let addr = server.addr().to_string();
    // Four bodies that stall after 10 of their 1000 bytes take every slot.
    let stalled: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || {
                let mut conn = raw::connect(&addr);
                conn.write_all(
                    b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                      Content-Length: 1000\r\n\r\n0123456789",
                )
                .unwrap();
                raw::read_until_closed(&mut conn, Duration::from_secs(30)).0
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("omnia_work_in_flight").await < 4 {
        assert!(
            Instant::now() < deadline,
            "{echo}: the stalled bodies never took the slots"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A request with a body to come could be the next trickle: it cuts nobody.
    let with_body = omnia_tests::request(
        http::Method::POST,
        &server.url("/"),
        &[],
        Bytes::from_static(b"a body"),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        with_body.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{echo}: {}",
        with_body.text()
    );
    assert_eq!(
        server.metric("omnia_http_body_waits_cut_total").await,
        0,
        "{echo}"
    );
    // Each good request holds its slot a while, so each needs a slot of its own.
    let good = spawn_gets(&server.url("/sleep/1000"), 2);
    for good in good {
        let good = good.await.unwrap().unwrap();
        assert_eq!(good.status, StatusCode::OK, "{echo}: {}", good.text());
    }
    assert_eq!(
        server.metric("omnia_http_body_waits_cut_total").await,
        2,
        "{echo}"
    );
    // The cut ones were answered 408; the others still wait.
    let mut answers = Vec::new();
    for conn in stalled {
        if let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_millis(500), conn).await {
            answers.push(answer);
        }
    }
    assert_eq!(answers.len(), 2, "{echo}: {answers:?}");
    for answer in &answers {
        assert_eq!(raw::status(answer), 408, "{echo}: {answer}");
        assert!(answer.contains("server is full"), "{echo}: {answer}");
    }
}

/// A full server whose guests are all working cuts nothing: the new request is refused (503).
async fn working_guests_are_never_cut(echo: &str) {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        &[
            ("OMNIA_MAX_CONCURRENCY", "4"),
            ("OMNIA_HTTP_CLIENT_SHARE", "8"),
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
        ],
    );
    let _busy = spawn_gets(&server.url("/sleep/5000"), 4);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("omnia_work_in_flight").await < 4 {
        assert!(
            Instant::now() < deadline,
            "{echo}: the sleeps never took the slots"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused = get(&server.url("/refused")).await.unwrap();
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{echo}");
    assert_eq!(
        server.metric("omnia_http_body_waits_cut_total").await,
        0,
        "{echo}"
    );
}
