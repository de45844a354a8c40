//! wasi:keyvalue end to end: one guest binary (`kv-http`), one behavioural table, three backends
//! (in memory, Redis, NATS JetStream KV), the last two on real servers each test owns. Then
//! what only real servers show: data shared with native clients, exact counts under
//! concurrency, outages and recovery, and bad configuration.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use omnia_tests::services::{NatsServer, RedisServer, Resp, free_port};
use omnia_tests::{Omnia, Response, guests, omnia, omnia_aot, request, run_to_end};

/// Where the guest's data lives in a test.
enum Store {
    Memory,
    Redis(RedisServer),
    Nats(NatsServer),
}

impl Store {
    fn redis() -> Self {
        Self::Redis(RedisServer::start())
    }

    fn nats() -> Self {
        Self::Nats(NatsServer::start())
    }

    /// The environment that makes `omnia` use this store.
    fn env(&self) -> Vec<(String, String)> {
        match self {
            Self::Memory => vec![],
            Self::Redis(redis) => vec![("REDIS_URL".into(), redis.url())],
            Self::Nats(nats) => vec![
                ("OMNIA_KEYVALUE".into(), "nats".into()),
                ("NATS_URL".into(), nats.url()),
                ("OMNIA_NATS_KV_CREATE".into(), "true".into()),
            ],
        }
    }

    /// `omnia run kv-http.wasm` on this store, with `extra` environment.
    fn serve(&self, extra: &[(&str, &str)]) -> Omnia {
        self.serve_guest("kv-http", extra)
    }

    /// `omnia run {guest}.wasm` on this store, with `extra` environment.
    fn serve_guest(&self, guest: &str, extra: &[(&str, &str)]) -> Omnia {
        let env = self.env();
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        Omnia::serve(&omnia(), &guests::rust(guest), &all)
    }
}

async fn get(server: &Omnia, path: &str) -> Response {
    server.call(Method::GET, path, &[], b"").await
}

async fn post(server: &Omnia, path: &str, body: &[u8]) -> Response {
    server.call(Method::POST, path, &[], body).await
}

async fn put(server: &Omnia, bucket: &str, key: &str, value: &[u8]) {
    let response = server
        .call(Method::PUT, &format!("/kv/{bucket}/{key}"), &[], value)
        .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "PUT {bucket}/{key}: {}",
        response.text()
    );
}

/// Asserts `response` is `status` with body `body`.
fn expect(response: &Response, status: StatusCode, body: &str, what: &str) {
    assert_eq!(
        (response.status, response.text().as_str()),
        (status, body),
        "{what}"
    );
}

/// Asserts `response` is the guest's answer to a wasi:keyvalue `error::other` containing
/// `needle` (a 500 the guest wrote, not a trap).
fn expect_kv_error(response: &Response, needle: &str, what: &str) {
    let text = response.text();
    assert_eq!(
        response.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{what}: {text}"
    );
    assert!(
        text.starts_with("keyvalue error: other: ") && text.contains(needle),
        "{what}: {text}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// 1 MiB covering every byte value (so not UTF-8).
fn one_mib() -> Vec<u8> {
    (0..1u32 << 20)
        .map(|i| u8::try_from((i * 7 + i / 256) % 256).expect("a byte"))
        .collect()
}

/// The behavioural table every backend must pass, unchanged.
async fn behaviour_table(server: &Omnia, backend: &str) {
    values_and_buckets(server, backend).await;
    counters_and_compare_and_swap(server, backend).await;
    batches(server, backend).await;
    listing_10_000_keys(server, backend).await;
}

/// Values round-trip byte-exactly, missing keys are `none`, buckets are separate, and a bucket
/// name no backend can represent is an error variant.
async fn values_and_buckets(server: &Omnia, backend: &str) {
    let large = one_mib();
    let values: [(&str, &[u8]); 4] = [
        ("text", b"hello"),
        ("empty", b""),
        ("binary", &[0, 0xff, 0xfe, 0x80, b'\n', b'=', 0]),
        ("large", &large),
    ];
    for (key, value) in values {
        put(server, "t", key, value).await;
        let got = get(server, &format!("/kv/t/{key}")).await;
        assert_eq!(got.status, StatusCode::OK, "{backend}: get {key}");
        assert!(
            got.body.as_ref() == value,
            "{backend}: {key} came back as {} bytes, not the {} put",
            got.body.len(),
            value.len()
        );
        expect(
            &get(server, &format!("/exists/t/{key}")).await,
            StatusCode::OK,
            "true",
            key,
        );
    }
    put(server, "t", "text", b"overwritten").await;
    expect(
        &get(server, "/kv/t/text").await,
        StatusCode::OK,
        "overwritten",
        "overwrite",
    );

    // Missing keys are `none`; delete is idempotent.
    expect(
        &get(server, "/kv/t/missing").await,
        StatusCode::NOT_FOUND,
        "",
        "missing",
    );
    expect(
        &get(server, "/exists/t/missing").await,
        StatusCode::OK,
        "false",
        "exists missing",
    );
    for _ in 0..2 {
        let deleted = server.call(Method::DELETE, "/kv/t/text", &[], b"").await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{backend}: delete");
    }
    expect(
        &get(server, "/kv/t/text").await,
        StatusCode::NOT_FOUND,
        "",
        "deleted",
    );

    // Buckets are separate namespaces.
    put(server, "other", "only-here", b"o").await;
    expect(
        &get(server, "/kv/t/only-here").await,
        StatusCode::NOT_FOUND,
        "",
        "bucket isolation",
    );

    expect_kv_error(
        &get(server, "/kv/bad.bucket/k").await,
        "invalid bucket name",
        "bad bucket",
    );
}

/// Counters are decimal text (a non-number is an error, not a trap); compare-and-swap.
async fn counters_and_compare_and_swap(server: &Omnia, backend: &str) {
    put(server, "t", "binary", &[0, 0xff]).await;
    expect(
        &post(server, "/incr/t/n?by=5", b"").await,
        StatusCode::OK,
        "5",
        "incr new",
    );
    expect(
        &post(server, "/incr/t/n?by=10", b"").await,
        StatusCode::OK,
        "15",
        "incr",
    );
    expect(
        &get(server, "/kv/t/n").await,
        StatusCode::OK,
        "15",
        "counter text",
    );
    expect_kv_error(
        &post(server, "/incr/t/binary", b"").await,
        "not",
        &format!("{backend}: incr of bytes"),
    );

    // Compare-and-swap.
    let cas = |expect: Option<&'static str>, body: &'static [u8]| async move {
        let headers: Vec<(&str, &str)> = expect.map(|e| ("x-expect", e)).into_iter().collect();
        server.call(Method::POST, "/cas/t/c", &headers, body).await
    };
    expect(
        &cas(None, b"v1").await,
        StatusCode::OK,
        "swapped",
        "cas create",
    );
    expect(
        &cas(None, b"v2").await,
        StatusCode::CONFLICT,
        "changed",
        "cas create again",
    );
    expect(
        &cas(Some("v0"), b"v2").await,
        StatusCode::CONFLICT,
        "changed",
        "cas stale",
    );
    expect(
        &cas(Some("v1"), b"v2").await,
        StatusCode::OK,
        "swapped",
        "cas",
    );
    expect(
        &get(server, "/kv/t/c").await,
        StatusCode::OK,
        "v2",
        "cas result",
    );
    expect(
        &post(server, "/cas-incr/t/ci", b"").await,
        StatusCode::OK,
        "1",
        "cas-incr",
    );
    expect(
        &post(server, "/cas-incr/t/ci", b"").await,
        StatusCode::OK,
        "2",
        "cas-incr",
    );
}

/// get-many, set-many, delete-many.
async fn batches(server: &Omnia, backend: &str) {
    let set = post(server, "/batch/set/t", b"a=6869\nb=\nc=ff00\n").await;
    assert_eq!(
        set.status,
        StatusCode::NO_CONTENT,
        "{backend}: set-many: {}",
        set.text()
    );
    let got = post(server, "/batch/get/t", b"a\nb\nmissing\nc\n").await;
    expect(
        &got,
        StatusCode::OK,
        "a=6869\nb=\nmissing!\nc=ff00\n",
        "get-many",
    );
    let deleted = post(server, "/batch/delete/t", b"a\nc\n").await;
    assert_eq!(
        deleted.status,
        StatusCode::NO_CONTENT,
        "{backend}: delete-many"
    );
    expect(
        &post(server, "/batch/get/t", b"a\nb\nc\n").await,
        StatusCode::OK,
        "a!\nb=\nc!\n",
        "after delete-many",
    );
}

/// list-keys pages through 10,000 keys completely.
async fn listing_10_000_keys(server: &Omnia, backend: &str) {
    let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i:05}")).collect();
    for chunk in keys.chunks(500) {
        let body = chunk.iter().fold(String::new(), |mut body, k| {
            let _ = writeln!(body, "{k}={}", hex(k.as_bytes()));
            body
        });
        let set = post(server, "/batch/set/many", body.as_bytes()).await;
        assert_eq!(
            set.status,
            StatusCode::NO_CONTENT,
            "{backend}: fill: {}",
            set.text()
        );
    }
    let listed = get(server, "/list-all/many").await;
    assert_eq!(
        listed.status,
        StatusCode::OK,
        "{backend}: list-all: {}",
        listed.text()
    );
    let pages: u32 = listed.headers["x-pages"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number");
    let seen: BTreeSet<String> = listed.text().lines().map(str::to_owned).collect();
    let expected: BTreeSet<String> = keys.into_iter().collect();
    assert!(
        seen == expected,
        "{backend}: listed {} distinct keys of 10,000 in {pages} pages",
        seen.len()
    );
    assert!(pages > 1, "{backend}: 10,000 keys came in one page");
    let first = get(server, "/list/many").await;
    assert!(
        first.headers.contains_key("x-cursor"),
        "{backend}: first page has a cursor"
    );
}

#[tokio::test]
async fn behaviour_table_in_memory() {
    let store = Store::Memory;
    behaviour_table(&store.serve(&[]), "memory").await;
}

#[tokio::test]
async fn behaviour_table_on_redis() {
    let store = Store::redis();
    behaviour_table(&store.serve(&[]), "redis").await;
}

#[tokio::test]
async fn behaviour_table_on_nats() {
    let store = Store::nats();
    behaviour_table(&store.serve(&[]), "nats").await;
}

/// `n` concurrent POSTs of `path`; every answer must be 200, and the bodies are returned.
async fn concurrent_posts(server: &Omnia, path: &str, n: usize) -> Vec<u64> {
    let url = server.url(path);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { request(Method::POST, &url, &[], Bytes::new(), false).await })
        })
        .collect();
    let mut values = Vec::new();
    for handle in handles {
        let response = handle.await.expect("task").expect("answer");
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {}",
            response.text()
        );
        values.push(response.text().parse().expect("a number"));
    }
    values.sort_unstable();
    values
}

/// 100 concurrent increments end at exactly +100, each seeing a distinct value; the same with
/// the guest's own compare-and-swap loop; and racing compare-and-swaps have one winner a round.
async fn concurrency(store: Store, backend: &str) {
    let server = store.serve(&[]);
    let increments = concurrent_posts(&server, "/incr/c/hits", 100).await;
    assert_eq!(
        increments,
        (1..=100).collect::<Vec<_>>(),
        "{backend}: increment"
    );
    expect(
        &get(&server, "/kv/c/hits").await,
        StatusCode::OK,
        "100",
        "after 100 increments",
    );

    let cas_increments = concurrent_posts(&server, "/cas-incr/c/cas-hits", 30).await;
    assert_eq!(
        cas_increments,
        (1..=30).collect::<Vec<_>>(),
        "{backend}: cas-incr"
    );

    for round in 0..5 {
        let expected = format!("round-{round}");
        put(&server, "c", "flag", expected.as_bytes()).await;
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let url = server.url("/cas/c/flag");
                let expected = expected.clone();
                let body = Bytes::from(format!("winner-{round}-{i}"));
                tokio::spawn(async move {
                    request(Method::POST, &url, &[("x-expect", &expected)], body, false).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, handle) in handles.into_iter().enumerate() {
            let response = handle.await.expect("task").expect("answer");
            match response.status {
                StatusCode::OK => winners.push(i),
                StatusCode::CONFLICT => {}
                other => panic!("{backend}: cas round {round}: {other} {}", response.text()),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "{backend}: round {round} winners {winners:?}"
        );
        let value = format!("winner-{round}-{}", winners[0]);
        expect(
            &get(&server, "/kv/c/flag").await,
            StatusCode::OK,
            &value,
            "the winner's value",
        );
    }
}

#[tokio::test]
async fn concurrency_in_memory() {
    concurrency(Store::Memory, "memory").await;
}

#[tokio::test]
async fn concurrency_on_redis() {
    concurrency(Store::redis(), "redis").await;
}

#[tokio::test]
async fn concurrency_on_nats() {
    concurrency(Store::nats(), "nats").await;
}

#[tokio::test]
async fn redis_data_is_shared_with_native_clients_under_the_app_prefix() {
    let store = Store::redis();
    let Store::Redis(redis) = &store else {
        unreachable!()
    };
    let app1 = store.serve(&[("OMNIA_REDIS_PREFIX", "app1:")]);
    let app2 = store.serve(&[("OMNIA_REDIS_PREFIX", "app2:")]);

    let bytes = [0u8, 0xff, b'\r', b'\n', 0x80];
    put(&app1, "shared", "from-guest", &bytes).await;
    let native = redis
        .command(&[b"GET", b"app1:shared:from-guest"])
        .into_bulk();
    assert_eq!(native.as_deref(), Some(&bytes[..]), "guest -> redis");

    assert_eq!(
        redis.command(&[b"SET", b"app1:shared:from-redis", b"\x01\x02\xfe"]),
        Resp::Simple("OK".into())
    );
    let got = get(&app1, "/kv/shared/from-redis").await;
    assert_eq!(got.body.as_ref(), b"\x01\x02\xfe", "redis -> guest");

    expect(
        &post(&app1, "/incr/shared/n?by=3", b"").await,
        StatusCode::OK,
        "3",
        "incr",
    );
    assert_eq!(
        redis.command(&[b"INCRBY", b"app1:shared:n", b"4"]),
        Resp::Integer(7)
    );
    expect(
        &post(&app1, "/incr/shared/n", b"").await,
        StatusCode::OK,
        "8",
        "incr after INCRBY",
    );

    // The other app's prefix hides app1's keys.
    expect(
        &get(&app2, "/kv/shared/from-guest").await,
        StatusCode::NOT_FOUND,
        "",
        "app2 sees app1",
    );
    let listed = get(&app2, "/list-all/shared").await;
    expect(&listed, StatusCode::OK, "", "app2 lists app1's keys");

    // A key Redis holds with another type is an error for the guest, not a trap.
    redis.command(&[b"RPUSH", b"app1:shared:list", b"x"]);
    expect_kv_error(
        &get(&app1, "/kv/shared/list").await,
        "WRONGTYPE",
        "wrong type",
    );
}

#[tokio::test]
async fn nats_data_is_shared_with_native_clients() {
    let store = Store::nats();
    let Store::Nats(nats) = &store else {
        unreachable!()
    };
    let server = store.serve(&[]);

    let bytes = [0u8, 0xff, b'\r', b'\n', 0x80];
    put(&server, "shared", "from-guest", &bytes).await;
    assert_eq!(
        nats.kv_get("shared", "from-guest").as_deref(),
        Some(&bytes[..]),
        "guest -> nats"
    );

    nats.kv_put("shared", "from-nats", b"\x01\x02\xfe");
    let got = get(&server, "/kv/shared/from-nats").await;
    assert_eq!(got.body.as_ref(), b"\x01\x02\xfe", "nats -> guest");

    expect(
        &post(&server, "/incr/shared/n?by=3", b"").await,
        StatusCode::OK,
        "3",
        "incr",
    );
    assert_eq!(
        nats.kv_get("shared", "n").as_deref(),
        Some(&b"3"[..]),
        "counter as text"
    );

    // Keys NATS cannot represent are an error variant naming the rule.
    expect_kv_error(
        &get(&server, "/kv/shared/a%20b").await,
        "invalid key",
        "bad key",
    );
}

#[tokio::test]
async fn nats_missing_bucket_is_no_such_store_unless_creation_is_on() {
    let nats = NatsServer::start();
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("kv-http"),
        &[("OMNIA_KEYVALUE", "nats"), ("NATS_URL", &nats.url())],
    );
    let response = get(&server, "/kv/nobucket/k").await;
    expect(
        &response,
        StatusCode::NOT_FOUND,
        "keyvalue error: no-such-store",
        "missing bucket",
    );
    nats.kv_put("made", "k", b"v");
    expect(
        &get(&server, "/kv/made/k").await,
        StatusCode::OK,
        "v",
        "existing bucket",
    );
}

/// Kills the backend under steady load and restarts it: every answer, before, during and
/// after, is a success or the guest's error variant (never a dropped connection or a trap);
/// requests during the outage fail in bounded time; the process stays up; and requests succeed
/// again after the restart without restarting omnia.
async fn outage(store: &mut Store, backend: &str) {
    let mut server = store.serve(&[]);
    put(&server, "f", "before", b"kept").await;

    // Steady load from before the kill until after the recovery.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (url, stop) = (server.url("/kv/f/load"), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = request(Method::PUT, &url, &[], Bytes::from_static(b"l"), false).await;
                answers.push(answer.map(|r| (r.status, r.text())));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let kill_at = Instant::now();
    match store {
        Store::Redis(redis) => redis.kill(),
        Store::Nats(nats) => nats.kill(),
        Store::Memory => unreachable!("memory has no outage"),
    }
    // During the outage: the WIT error variant, in bounded time, for concurrent requests too.
    let during: Vec<_> = (0..8)
        .map(|i| {
            let url = server.url(&format!("/kv/f/during-{i}"));
            tokio::spawn(async move {
                request(Method::PUT, &url, &[], Bytes::from_static(b"x"), false).await
            })
        })
        .collect();
    for handle in during {
        let response = handle
            .await
            .expect("task")
            .expect("omnia answers during the outage");
        expect_kv_error(&response, backend, "during the outage");
    }
    assert!(
        kill_at.elapsed() < Duration::from_secs(30),
        "{backend}: errors took {:?}",
        kill_at.elapsed()
    );
    assert!(
        server.is_running(),
        "{backend}: omnia exited during the outage"
    );
    let log = server.log_with("keyvalue: operation failed");
    assert!(log.contains("keyvalue: operation failed"), "{log}");

    match store {
        Store::Redis(redis) => redis.restart(),
        Store::Nats(nats) => nats.restart(),
        Store::Memory => unreachable!(),
    }
    // Recovery without restarting omnia.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = server.call(Method::PUT, "/kv/f/after", &[], b"back").await;
        if response.status == StatusCode::NO_CONTENT {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{backend}: no recovery: {}",
            response.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    expect(
        &get(&server, "/kv/f/after").await,
        StatusCode::OK,
        "back",
        "after recovery",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = load.await.expect("load task");
    let ok = answers
        .iter()
        .filter(|a| matches!(a, Ok((StatusCode::NO_CONTENT, _))))
        .count();
    for answer in &answers {
        match answer {
            Ok((StatusCode::NO_CONTENT, _)) => {}
            Ok((StatusCode::INTERNAL_SERVER_ERROR, text))
                if text.starts_with("keyvalue error: other: ") => {}
            other => panic!("{backend}: under load: {other:?}"),
        }
    }
    assert!(
        ok >= 2,
        "{backend}: {ok} of {} loaded requests succeeded",
        answers.len()
    );
    assert!(server.is_running());
}

#[tokio::test]
async fn redis_outage_is_an_error_variant_and_recovers() {
    let mut store = Store::redis();
    outage(&mut store, "Redis").await;
}

#[tokio::test]
async fn nats_outage_is_an_error_variant_and_recovers() {
    let mut store = Store::nats();
    outage(&mut store, "NATS").await;
    // JetStream kept what was written before the outage (file storage).
    let server = store.serve(&[]);
    expect(
        &get(&server, "/kv/f/before").await,
        StatusCode::OK,
        "kept",
        "data after restart",
    );
}

/// `omnia run kv-http.wasm` with `env` must fail to start, its log naming `needles` and not
/// containing `secret`.
fn refuses_to_start(bin: &std::path::Path, env: &[(&str, &str)], needles: &[&str]) -> String {
    let Err(log) = Omnia::try_serve(bin, &guests::rust("kv-http"), env) else {
        panic!("omnia started with {env:?}");
    };
    for needle in needles {
        assert!(log.contains(needle), "{env:?}: {needle:?} not in:\n{log}");
    }
    log
}

#[test]
fn bad_backend_configuration_is_a_clear_start_up_error() {
    let closed = format!("127.0.0.1:{}", free_port());
    refuses_to_start(
        &omnia(),
        &[("OMNIA_KEYVALUE", "postgres")],
        &["OMNIA_KEYVALUE=\"postgres\"", "memory, redis or nats"],
    );
    refuses_to_start(
        &omnia(),
        &[("REDIS_URL", "http://x")],
        &["REDIS_URL=\"http://x\" is not valid", "redis://"],
    );
    let log = refuses_to_start(
        &omnia(),
        &[("REDIS_URL", &format!("redis://app:hunter2@{closed}"))],
        &["cannot connect to Redis at redis://app:***@", "REDIS_URL"],
    );
    assert!(!log.contains("hunter2"), "the password leaked:\n{log}");
    refuses_to_start(
        &omnia(),
        &[("OMNIA_KEYVALUE", "nats")],
        &["NATS_URL is not set"],
    );
    refuses_to_start(
        &omnia(),
        &[("OMNIA_KEYVALUE", "nats"), ("NATS_URL", "nats://a:b:c")],
        &["NATS_URL=", "is not valid"],
    );
    refuses_to_start(
        &omnia(),
        &[
            ("OMNIA_KEYVALUE", "nats"),
            ("NATS_URL", &format!("nats://{closed}")),
        ],
        &["cannot connect to NATS at nats://127.0.0.1:", "NATS_URL"],
    );
    refuses_to_start(
        &omnia(),
        &[
            ("OMNIA_NATS_KV_CREATE", "maybe"),
            ("OMNIA_KEYVALUE", "nats"),
            ("NATS_URL", "nats://127.0.0.1:1"),
        ],
        &["OMNIA_NATS_KV_CREATE=\"maybe\"", "true or false"],
    );
}

#[tokio::test]
async fn the_aot_only_build_serves_keyvalue_and_names_the_feature_of_missing_backends() {
    // The AOT-only test build (the http-kv profile) has key-value in memory and on Redis, not on
    // NATS; it loads precompiled components.
    let dir = std::env::temp_dir().join(format!("omnia-kv-aot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bin = dir.join("kv-http.bin");
    let wasm = guests::rust("kv-http");
    let out = run_to_end(
        &omnia(),
        &["compile", path_str(&wasm), "-o", path_str(&bin)],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Omnia::serve(&omnia_aot(), &bin, &[]);
    expect(
        &post(&server, "/incr/a/n", b"").await,
        StatusCode::OK,
        "1",
        "aot incr",
    );
    expect(
        &post(&server, "/incr/a/n", b"").await,
        StatusCode::OK,
        "2",
        "aot incr",
    );

    let Err(log) = Omnia::try_serve(&omnia_aot(), &bin, &[("OMNIA_KEYVALUE", "nats")]) else {
        panic!("the build without NATS started with OMNIA_KEYVALUE=nats");
    };
    for needle in ["OMNIA_KEYVALUE=nats", "keyvalue-nats"] {
        assert!(log.contains(needle), "{needle:?} not in:\n{log}");
    }
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Guests written for `wasmtime serve -S keyvalue` open the empty identifier: it is the default
/// bucket, named by `OMNIA_KEYVALUE_DEFAULT_BUCKET`.
#[tokio::test]
async fn the_empty_identifier_opens_the_default_bucket() {
    let memory = Store::Memory.serve(&[]);
    put(&memory, "", "k", b"from the empty identifier").await;
    expect(
        &get(&memory, "/kv/default/k").await,
        StatusCode::OK,
        "from the empty identifier",
        "\"\" is the bucket default",
    );

    let redis = Store::redis();
    let server = redis.serve(&[
        ("OMNIA_KEYVALUE_DEFAULT_BUCKET", "shared"),
        ("OMNIA_REDIS_PREFIX", "app:"),
    ]);
    expect(
        &post(&server, "/incr//hits", b"").await,
        StatusCode::OK,
        "1",
        "incr in the default bucket",
    );
    let Store::Redis(redis) = &redis else {
        unreachable!()
    };
    assert_eq!(
        redis.command(&[b"GET", b"app:shared:hits"]).into_bulk(),
        Some(b"1".to_vec())
    );
}

#[tokio::test]
async fn the_in_memory_store_can_be_bounded() {
    let server = Store::Memory.serve(&[("OMNIA_KEYVALUE_MEMORY_MAX", "2KiB")]);
    put(&server, "b", "first", &[7; 1500]).await;
    let full = server
        .call(Method::PUT, "/kv/b/second", &[], &[7; 1500])
        .await;
    expect_kv_error(&full, "OMNIA_KEYVALUE_MEMORY_MAX", "over the limit");
    let deleted = server.call(Method::DELETE, "/kv/b/first", &[], b"").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    put(&server, "b", "second", &[7; 1500]).await;
}

#[tokio::test]
async fn backends_of_capabilities_a_component_does_not_use_are_not_connected() {
    // Redis is configured but down: a guest without key-value starts and serves...
    let down = format!("redis://127.0.0.1:{}", free_port());
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-hello"),
        &[("REDIS_URL", &down)],
    );
    let hello = omnia_tests::get(&server.url("/")).await.unwrap();
    assert_eq!(hello.status, StatusCode::OK);
    // ...while one that imports key-value refuses to start, naming the URL.
    refuses_to_start(
        &omnia(),
        &[("REDIS_URL", &down)],
        &["cannot connect to Redis"],
    );
}

#[tokio::test]
async fn nats_credentials_in_the_url_or_variables_are_used() {
    use omnia_tests::services::NatsLogin;
    let nats = NatsServer::start_with_login(NatsLogin::User("app", "s3cr%t pw"));
    let port = nats.port();
    let url = format!("nats://app:s3cr%25t%20pw@127.0.0.1:{port}");
    let in_url = Omnia::serve(
        &omnia(),
        &guests::rust("kv-http"),
        &[
            ("OMNIA_KEYVALUE", "nats"),
            ("NATS_URL", &url),
            ("OMNIA_NATS_KV_CREATE", "true"),
        ],
    );
    expect(
        &post(&in_url, "/incr/auth/n", b"").await,
        StatusCode::OK,
        "1",
        "user in URL",
    );
    assert_eq!(nats.kv_get("auth", "n"), Some(b"1".to_vec()));
    let plain = nats.url();
    let in_vars = Omnia::serve(
        &omnia(),
        &guests::rust("kv-http"),
        &[
            ("OMNIA_KEYVALUE", "nats"),
            ("NATS_URL", &plain),
            ("NATS_USER", "app"),
            ("NATS_PASSWORD", "s3cr%t pw"),
        ],
    );
    expect(
        &post(&in_vars, "/incr/auth/n", b"").await,
        StatusCode::OK,
        "2",
        "user in vars",
    );
    let wrong = format!("nats://app:wrong-pw-123@127.0.0.1:{port}");
    let log = refuses_to_start(
        &omnia(),
        &[("OMNIA_KEYVALUE", "nats"), ("NATS_URL", &wrong)],
        &["refused the credentials", "NATS_URL"],
    );
    assert!(!log.contains("wrong-pw-123"), "{log}");
    refuses_to_start(
        &omnia(),
        &[
            ("OMNIA_KEYVALUE", "nats"),
            ("NATS_URL", &url),
            ("NATS_TOKEN", "t"),
        ],
        &["NATS credentials are given more than once"],
    );

    let tokened = NatsServer::start_with_login(NatsLogin::Token("tok-3n"));
    let with_token = Omnia::serve(
        &omnia(),
        &guests::rust("kv-http"),
        &[
            ("OMNIA_KEYVALUE", "nats"),
            (
                "NATS_URL",
                &format!("nats://tok-3n@127.0.0.1:{}", tokened.port()),
            ),
            ("OMNIA_NATS_KV_CREATE", "true"),
        ],
    );
    expect(
        &post(&with_token, "/incr/auth/n", b"").await,
        StatusCode::OK,
        "1",
        "token",
    );
}

/// A guest written for upstream omnia (`p3-kv-http`: a WASI 0.3 component importing
/// `wasi:keyvalue@0.2.0-draft2`, where every function is an `async func`) runs unchanged on
/// `store`; where the store outlives a process (`shared`), it and the standard 0.2 guest
/// (`kv-http`) see each other's writes.
async fn upstream_async_guest(store: &Store, backend: &str, shared: bool) {
    let upstream = store.serve_guest("p3-kv-http", &[]);
    put(&upstream, "u", "k", b"from p3").await;
    let got = get(&upstream, "/kv/u/k").await;
    assert_eq!(
        (got.status, got.text()),
        (StatusCode::OK, "from p3".into()),
        "{backend}"
    );
    assert_eq!(get(&upstream, "/kv/u/none").await.status, 404, "{backend}");
    assert_eq!(
        get(&upstream, "/exists/u/k").await.text(),
        "true",
        "{backend}"
    );
    assert_eq!(
        post(&upstream, "/incr/u/n?by=5", b"").await.text(),
        "5",
        "{backend}"
    );
    // Upstream's `increment` takes an `s64`: counters go down too.
    assert_eq!(
        post(&upstream, "/incr/u/n?by=-6", b"").await.text(),
        "-1",
        "{backend}"
    );
    assert_eq!(
        post(&upstream, "/incr/u/n?by=6", b"").await.text(),
        "5",
        "{backend}"
    );
    assert_eq!(
        post(&upstream, "/cas-incr/u/c", b"").await.text(),
        "1",
        "{backend}"
    );
    assert_eq!(
        post(&upstream, "/cas-incr/u/c", b"").await.text(),
        "2",
        "{backend}"
    );
    let many = post(&upstream, "/batch/get/u", b"k\nnone\n").await;
    assert_eq!(many.text(), "k=from p3\nnone!\n", "{backend}");
    assert_eq!(
        get(&upstream, "/list-all/u").await.text(),
        "c\nk\nn\n",
        "{backend}"
    );
    assert_eq!(
        upstream
            .call(Method::DELETE, "/kv/u/k", &[], b"")
            .await
            .status,
        204,
        "{backend}"
    );
    assert_eq!(
        get(&upstream, "/exists/u/k").await.text(),
        "false",
        "{backend}"
    );
    if !shared {
        return;
    }
    let standard = store.serve(&[]);
    assert_eq!(
        get(&standard, "/kv/u/c").await.text(),
        "2",
        "{backend}: the p3 guest's write"
    );
    put(&standard, "u", "s", b"from p2").await;
    assert_eq!(
        get(&upstream, "/kv/u/s").await.text(),
        "from p2",
        "{backend}"
    );
    let counted = post(&standard, "/incr/u/n", b"").await;
    assert_eq!(
        counted.text(),
        "6",
        "{backend}: one counter for both shapes"
    );
    // A counter the upstream guest took below zero is an error for the standard shape, whose
    // `increment` returns a `u64`, that says where the counter is now.
    post(&upstream, "/incr/u/n?by=-10", b"").await;
    let below = post(&standard, "/incr/u/n", b"").await;
    assert_eq!(below.status, 500, "{backend}: {}", below.text());
    assert!(
        below
            .text()
            .contains("incremented key \"n\" to -3: negative"),
        "{backend}: {}",
        below.text()
    );
}

#[tokio::test]
async fn an_upstream_async_guest_runs_in_memory() {
    upstream_async_guest(&Store::Memory, "memory", false).await;
}

#[tokio::test]
async fn an_upstream_async_guest_shares_redis_with_a_standard_guest() {
    upstream_async_guest(&Store::redis(), "redis", true).await;
}

#[tokio::test]
async fn an_upstream_async_guest_shares_nats_with_a_standard_guest() {
    upstream_async_guest(&Store::nats(), "nats", true).await;
}
