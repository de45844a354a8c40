//! One bad request never hurts another: a trap, an infinite loop and a memory bomb each fail
//! alone while concurrent good requests keep succeeding, and the process stays up.

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia, p2_and_p3, spawn_gets};

p2_and_p3!(
    a_trap_fails_alone,
    an_infinite_loop_hits_the_deadline_alone,
    a_memory_bomb_fails_alone,
    the_memory_budget_refuses_work_with_503_instead_of_growing,
    overload_is_refused_with_503,
    a_spinning_guest_delays_its_thread_only_by_ticks,
);

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

async fn a_trap_fails_alone(echo: &str) {
    let mut server = Omnia::serve(&omnia(), &guests::rust(echo), &[]);
    good_requests_meanwhile(&server, "/trap", StatusCode::INTERNAL_SERVER_ERROR).await;
    let log = server.log_with("GET /trap: guest failed");
    assert!(log.contains("GET /trap: guest failed"), "{log}");
    assert!(server.is_running());
    assert_eq!(
        get(&server.url("/after")).await.unwrap().status,
        StatusCode::OK
    );
}

async fn an_infinite_loop_hits_the_deadline_alone(echo: &str) {
    let mut server = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        &[("OMNIA_REQUEST_TIMEOUT", "2s")],
    );
    // The configured deadline, not the 30 s default, stops it.
    let started = std::time::Instant::now();
    let looped = get(&server.url("/loop")).await.unwrap();
    assert_eq!(looped.status, StatusCode::GATEWAY_TIMEOUT);
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(2) && took < std::time::Duration::from_secs(15),
        "504 after {took:?}"
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

async fn a_memory_bomb_fails_alone(echo: &str) {
    // 100 MiB is far below the 4 GiB a 32-bit memory can reach: only OMNIA_MAX_MEMORY stops it.
    let mut server = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        &[("OMNIA_MAX_MEMORY", "64MiB")],
    );
    good_requests_meanwhile(&server, "/alloc/100", StatusCode::INTERNAL_SERVER_ERROR).await;
    assert!(server.is_running());
    assert_eq!(
        get(&server.url("/alloc/32")).await.unwrap().status,
        StatusCode::OK,
        "allocating within the limit works"
    );
    let roomy = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        &[("OMNIA_MAX_MEMORY", "256MiB")],
    );
    let fits = get(&roomy.url("/alloc/100")).await.unwrap();
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.text());
}

async fn the_memory_budget_refuses_work_with_503_instead_of_growing(echo: &str) {
    // Eight requests of 100 MiB each at once, against a budget for about two of them: the
    // rest are refused with 503, and the process stays far below what eight would take.
    let server = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        &[
            ("OMNIA_MAX_MEMORY", "128MiB"),
            ("OMNIA_MEMORY_BUDGET", "256MiB"),
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
            // One request per 0.3 instance: two of these in one instance (at once, or one
            // after the other on a busy machine, as linear memory never shrinks) could pass its
            // own 128 MiB limit (a trap, 500) before the budget is reached.
            ("OMNIA_HTTP_INSTANCE_CONCURRENCY", "1"),
            ("OMNIA_HTTP_INSTANCE_REUSE", "1"),
        ],
    );
    let requests = spawn_gets(&server.url("/alloc/100/1500"), 8);
    let mut statuses = Vec::new();
    for handle in requests {
        statuses.push(handle.await.unwrap().unwrap().status);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(ok >= 1 && refused >= 4 && ok + refused == 8, "{statuses:?}");
    let peak_mib = server.status_kib("VmHWM") / 1024;
    assert!(peak_mib < 600, "peak RSS {peak_mib} MiB");
    // Every instance gives its memory back once its task ends (just after its response).
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = get(&server.admin_url("/metrics")).await.unwrap().text();
        if metrics.contains("omnia_guest_memory_bytes 0\n") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("omnia_guest_memory_bytes 0\n"),
        "all returned:\n{metrics}"
    );
    assert_eq!(
        get(&server.url("/alloc/100")).await.unwrap().status,
        StatusCode::OK,
        "room again once the others finished"
    );
}

#[tokio::test]
async fn repeated_failures_are_logged_at_a_limited_rate() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")],
    );
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let burst = spawn_gets(&server.url("/trap"), 20);
        for handle in burst {
            assert_eq!(
                handle.await.unwrap().unwrap().status,
                StatusCode::INTERNAL_SERVER_ERROR
            );
        }
    }
    let logged = server.log().matches("GET /trap: guest failed").count();
    // A burst of 10, then one a second.
    let most = 11 + usize::try_from(started.elapsed().as_secs()).unwrap_or(usize::MAX);
    assert!(
        (1..=most).contains(&logged),
        "{logged} lines for 100 traps, at most {most} allowed"
    );
    let metrics = get(&server.admin_url("/metrics")).await.unwrap().text();
    assert!(
        metrics.contains("omnia_guest_traps_total 100\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "omnia_guest_calls_total{trigger=\"http\",component=\"http-echo\",outcome=\"trap\"} \
             100\n"
        ),
        "{metrics}"
    );
    // The next line logged says how many were left out.
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    let _ = get(&server.url("/trap")).await.unwrap();
    let log = server.log_with("similar lines suppressed");
    let suppressed: u64 = log
        .split(" similar lines suppressed")
        .next()
        .and_then(|before| before.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of suppressed lines:\n{log}"));
    assert!(suppressed >= 80, "{suppressed} reported as suppressed");
}

async fn overload_is_refused_with_503(echo: &str) {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        // One client here: a share above the slots leaves only OMNIA_MAX_CONCURRENCY.
        &[
            ("OMNIA_MAX_CONCURRENCY", "2"),
            ("OMNIA_HTTP_CLIENT_SHARE", "3"),
        ],
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

/// A guest that writes to stderr on every request (here its panic message, on each of 300
/// traps) cannot flood Omnia's log: past `OMNIA_GUEST_OUTPUT_RATE` (a burst of ten seconds'
/// worth) its lines are dropped and counted, a note says how many, and good requests go on.
#[tokio::test]
async fn guest_output_is_rate_limited() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
            ("OMNIA_GUEST_OUTPUT_RATE", "2"),
        ],
    );
    let started = std::time::Instant::now();
    for _ in 0..15 {
        for handle in spawn_gets(&server.url("/trap"), 20) {
            let status = handle.await.unwrap().unwrap().status;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        }
        let good = get(&server.url("/good")).await.unwrap();
        assert_eq!(good.status, StatusCode::OK, "good requests go on");
    }
    // Each trap writes its panic message; at most the burst (20 lines) and 2 lines a second
    // pass.
    let allowed = 22 + 2 * usize::try_from(started.elapsed().as_secs()).unwrap();
    let log = server.log();
    let passed = log.matches("traps on purpose").count();
    assert!(
        (1..=allowed).contains(&passed),
        "{passed} panic messages passed for 300 traps (at most {allowed})"
    );
    let dropped = server
        .metric("omnia_guest_output_lines_dropped_total")
        .await;
    assert!(dropped >= 250, "{dropped} lines counted as dropped");
    // The next line that passes says how many were dropped before it.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let _ = get(&server.url("/trap")).await.unwrap();
    let log = server.log_with("lines of guest output dropped");
    assert!(
        log.contains("lines of guest output dropped (more than OMNIA_GUEST_OUTPUT_RATE=2 lines/s)"),
        "{log}"
    );
}

/// A guest spinning on one serving thread holds the other connections of that thread back only
/// for a few 10 ms epoch ticks, not until the runtime's next I/O poll (61 guest slices, over
/// 600 ms, when it yielded with a plain wake). The bound is generous, for a busy test machine;
/// `tests/bench/run` measures the real delay.
async fn a_spinning_guest_delays_its_thread_only_by_ticks(echo: &str) {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust(echo),
        &[("OMNIA_REQUEST_TIMEOUT", "8s"), ("OMNIA_HTTP_THREADS", "1")],
    );
    assert_eq!(
        get(&server.url("/warm")).await.unwrap().status,
        StatusCode::OK
    );
    let looping = spawn_gets(&server.url("/loop"), 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut took = Vec::new();
    for i in 0..20 {
        let started = std::time::Instant::now();
        let response = get(&server.url(&format!("/good/{i}"))).await.unwrap();
        took.push(started.elapsed());
        assert_eq!(response.status, StatusCode::OK);
    }
    took.sort();
    let median = took[took.len() / 2];
    eprintln!(
        "{echo}: good requests beside a spinning guest: median {median:?}, max {:?}",
        took[took.len() - 1]
    );
    assert!(
        median < std::time::Duration::from_millis(150),
        "{echo}: good requests beside a spinning guest took {took:?}"
    );
    for handle in looping {
        assert_eq!(
            handle.await.unwrap().unwrap().status,
            StatusCode::GATEWAY_TIMEOUT
        );
    }
}
