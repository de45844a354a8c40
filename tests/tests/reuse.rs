//! WASI 0.3 HTTP guests reuse instances: concurrent requests share them, within the per-instance
//! limits and within a serving thread, while a WASI 0.2 guest still gets an instance per
//! request. The guarantees every HTTP
//! guest has (limits, isolation, drain) are checked for both in `http.rs`, `isolation.rs` and
//! `shutdown.rs`.

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia, run_to_end, spawn_gets};

/// `omnia_instantiations_total` of `server`.
async fn instantiations(server: &Omnia) -> u64 {
    let metrics = get(&server.admin_url("/metrics")).await.unwrap().text();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("omnia_instantiations_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no instantiation count:\n{metrics}"))
}

/// 32 requests that each wait 500 ms, all at once: every one succeeds, and the count of
/// instances made for them tells the two paths apart. One serving thread, warmed by a first
/// request: a burst on a cold pool may start an instance per request before the first is
/// ready (wasmtime's dispatcher starts one for each request that finds none with room).
async fn concurrent_sleeps(echo: &str, env: &[(&str, &str)]) -> u64 {
    let mut all = vec![
        ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
        ("OMNIA_HTTP_THREADS", "1"),
    ];
    all.extend_from_slice(env);
    let server = Omnia::serve(&omnia(), &guests::rust(echo), &all);
    let warm = get(&server.url("/sleep/0")).await.unwrap();
    assert_eq!(warm.status, StatusCode::OK, "{echo}: {}", warm.text());
    let before = instantiations(&server).await;
    for handle in spawn_gets(&server.url("/sleep/500"), 32) {
        let response = handle.await.unwrap().unwrap();
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{echo}: {}",
            response.text()
        );
        assert_eq!(response.text(), "slept 500 ms\n");
    }
    instantiations(&server).await - before
}

#[tokio::test]
async fn concurrent_requests_share_instances() {
    let p3 = concurrent_sleeps("p3-http-echo", &[]).await;
    assert!(
        (1..32).contains(&p3),
        "32 concurrent requests took {p3} WASI 0.3 instances"
    );
    // At most 4 at a time per instance: at least 8 instances.
    let bounded =
        concurrent_sleeps("p3-http-echo", &[("OMNIA_HTTP_INSTANCE_CONCURRENCY", "4")]).await;
    assert!(
        (8..32).contains(&bounded),
        "with 4 per instance, 32 requests took {bounded} instances"
    );
    let p2 = concurrent_sleeps("http-echo", &[]).await;
    assert_eq!(p2, 32, "a WASI 0.2 guest gets an instance per request");
}

#[tokio::test]
async fn an_instance_is_replaced_after_its_reuse_count() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("p3-http-echo"),
        &[
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
            ("OMNIA_HTTP_INSTANCE_REUSE", "3"),
            ("OMNIA_HTTP_INSTANCE_IDLE", "30s"),
            // One serving thread: each has instances of its own.
            ("OMNIA_HTTP_THREADS", "1"),
        ],
    );
    for i in 0..9 {
        let response = get(&server.url(&format!("/n/{i}"))).await.unwrap();
        assert_eq!(response.status, StatusCode::OK);
    }
    assert_eq!(
        instantiations(&server).await,
        3,
        "9 requests, 3 per instance"
    );
}

#[tokio::test]
async fn an_idle_instance_is_dropped_after_its_idle_time() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("p3-http-echo"),
        &[
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
            ("OMNIA_HTTP_INSTANCE_IDLE", "200ms"),
            ("OMNIA_HTTP_THREADS", "1"),
        ],
    );
    for _ in 0..2 {
        assert_eq!(get(&server.url("/")).await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(
        instantiations(&server).await,
        1,
        "back to back: one instance"
    );
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(get(&server.url("/")).await.unwrap().status, StatusCode::OK);
    assert_eq!(instantiations(&server).await, 2, "after idling: a new one");
}

#[tokio::test]
async fn each_serving_thread_has_instances_of_its_own() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("p3-http-echo"),
        &[
            ("OMNIA_ADMIN_ADDR", "127.0.0.1:0"),
            ("OMNIA_HTTP_INSTANCE_IDLE", "30s"),
            ("OMNIA_HTTP_THREADS", "3"),
        ],
    );
    let names = serving_threads(&server);
    assert_eq!(names.len(), 3, "serving threads: {names:?}");
    // Connections go to the threads in turn: 6 of them, one request each, meet each thread
    // twice, and each thread reuses the instance it made the first time.
    for i in 0..6 {
        let response = get(&server.url(&format!("/n/{i}"))).await.unwrap();
        assert_eq!(response.status, StatusCode::OK);
    }
    assert_eq!(instantiations(&server).await, 3, "6 requests on 3 threads");
}

/// The names of `server`'s serving threads.
fn serving_threads(server: &Omnia) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with("omnia-http-"))
        .collect()
}

#[tokio::test]
async fn no_serving_threads_serves_on_the_main_runtime() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("p3-http-echo"),
        &[("OMNIA_HTTP_THREADS", "0")],
    );
    assert_eq!(serving_threads(&server), Vec::<String>::new());
    for handle in spawn_gets(&server.url("/sleep/50"), 8) {
        assert_eq!(handle.await.unwrap().unwrap().status, StatusCode::OK);
    }
}

#[test]
fn reuse_settings_are_checked_at_start_up() {
    for (var, bad) in [
        ("OMNIA_HTTP_INSTANCE_REUSE", "0"),
        ("OMNIA_HTTP_INSTANCE_CONCURRENCY", "0"),
        ("OMNIA_HTTP_INSTANCE_IDLE", "0"),
        ("OMNIA_HTTP_THREADS", "1025"),
    ] {
        let wasm = guests::rust("p3-http-echo");
        let out = run_to_end(&omnia(), &["run", wasm.to_str().unwrap()], &[(var, bad)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{var}={bad}: {stderr}");
        assert!(stderr.contains(var), "the error names {var}: {stderr}");
    }
}
