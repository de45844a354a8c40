//! An application written for upstream omnia runs unchanged: `p3-app-http`, one WASI 0.3
//! component using upstream's async key-value and messaging, `wasi:config` and telemetry
//! together, as upstream's examples do, on the embedded defaults and on Redis and NATS with an
//! OTLP collector. (Each
//! interface has its own tests beside the standard guests': `keyvalue.rs`, `messaging.rs`,
//! `telemetry.rs`.) And an HTTP guest written as upstream's are, on the crates.io `wasip3`
//! bindings and their `http-compat` conversions (`p3-wasip3-http`), runs unchanged too.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt;
use http::Method;
use omnia_tests::otlp::{OtlpReceiver, Protocol};
use omnia_tests::services::{NatsServer, RedisServer};
use omnia_tests::{Omnia, guests, omnia};

/// `p3-app-http` with its config (`topic = "shop"`), subscribed to `shop.created`, plus `env`.
fn serve(env: &[(&str, &str)]) -> Omnia {
    let config = guests::write_temp("p3-app-http.toml", b"topic = \"shop\"\n");
    let config = config.to_str().unwrap().to_owned();
    let mut all = vec![
        ("OMNIA_CONFIG_FILE", config.as_str()),
        ("OMNIA_MESSAGING_TOPICS", "shop.created"),
    ];
    all.extend_from_slice(env);
    Omnia::serve(&omnia(), &guests::rust("p3-app-http"), &all)
}

/// `GET path` until it answers 200 (up to 10 s): the body.
async fn eventually(server: &Omnia, path: &str) -> String {
    let started = Instant::now();
    loop {
        let response = server.call(Method::GET, path, &[], b"").await;
        if response.status == 200 {
            return response.text();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "GET {path}: {} {}",
            response.status,
            response.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two orders through the application: kept, counted, announced and handled.
async fn orders(server: &Omnia, backend: &str) {
    for (n, id) in ["1", "2"].into_iter().enumerate() {
        let created = server
            .call(Method::POST, &format!("/orders/{id}"), &[], b"two apples")
            .await;
        assert_eq!(created.status, 201, "{backend}: {}", created.text());
        assert_eq!(
            created.text(),
            format!("order {id} stored (n={}), announced on shop.created", n + 1),
            "{backend}: the topic comes from wasi:config"
        );
        let kept = server
            .call(Method::GET, &format!("/orders/{id}"), &[], b"")
            .await;
        assert_eq!(
            (kept.status.as_u16(), kept.text()),
            (200, "two apples".into()),
            "{backend}"
        );
        assert_eq!(
            eventually(server, &format!("/shipped/{id}")).await,
            "shop.created",
            "{backend}: its own message handler saw the announcement"
        );
    }
    let missing = server.call(Method::GET, "/orders/none", &[], b"").await;
    assert_eq!(missing.status, 404, "{backend}");
}

#[tokio::test]
async fn an_upstream_application_runs_on_the_embedded_defaults() {
    orders(&serve(&[]), "memory").await;
}

#[tokio::test]
async fn an_upstream_application_runs_on_redis_and_nats_with_telemetry() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let collector = OtlpReceiver::start(Protocol::Grpc);
    let mut announced = nats
        .client()
        .await
        .subscribe("shop.created")
        .await
        .expect("subscribe to shop.created");
    let server = serve(&[
        ("REDIS_URL", &redis.url()),
        ("NATS_URL", &nats.url()),
        ("OTEL_GRPC_URL", &collector.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    orders(&server, "redis and nats").await;
    assert_eq!(
        redis.command(&[b"GET", b"orders:1"]).into_bulk().as_deref(),
        Some(&b"two apples"[..]),
        "the order is in Redis"
    );
    let message = tokio::time::timeout(Duration::from_secs(5), announced.next())
        .await
        .expect("the announcement reaches a native NATS subscriber")
        .expect("a message");
    assert_eq!(&message.payload[..], b"1");

    // The order's span, exported through omnia:otel without a parent, is the request's child.
    let wait = Duration::from_secs(20);
    let request = collector
        .wait_for_span(
            |s| s.attributes.get("url.path").map(String::as_str) == Some("/orders/1"),
            wait,
        )
        .unwrap_or_else(|| panic!("no request span; got {:?}", collector.spans()));
    let order = collector
        .wait_for_span(
            |s| {
                s.name == "create order"
                    && s.attributes.get("order.id").map(String::as_str) == Some("1")
            },
            wait,
        )
        .unwrap_or_else(|| panic!("no order span; got {:?}", collector.spans()));
    assert_eq!(
        (order.trace_id.as_str(), order.parent_span_id.as_str()),
        (request.trace_id.as_str(), request.span_id.as_str()),
        "the guest's span is the request span's child"
    );
}

/// `p3-wasip3-http`, built as upstream's guests are (`wasip3` 0.7.0, `export!`, http-compat to
/// and from the `http` crate's types): its three routes and its 404.
#[tokio::test]
async fn a_wasip3_http_compat_guest_runs_unchanged() {
    let server = Omnia::serve(&omnia(), &guests::rust("p3-wasip3-http"), &[]);

    let hello = server.call(Method::GET, "/hello", &[], b"").await;
    assert_eq!(
        (hello.status.as_u16(), hello.text().as_str()),
        (200, "hello from wasip3")
    );
    assert_eq!(hello.headers["content-type"], "text/plain");

    // A body of several read chunks (wasip3 reads 16 KiB at a time), not all text.
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let echo = server
        .call(
            Method::POST,
            "/echo",
            &[("x-a", "1"), ("x-b", "two"), ("y-c", "3")],
            &body,
        )
        .await;
    assert_eq!(echo.status, 200, "{}", echo.text());
    assert!(echo.body == body, "the body comes back byte for byte");
    assert_eq!(echo.headers["x-echo-method"], "POST");
    assert_eq!(echo.headers["echo-x-a"], "1");
    assert_eq!(echo.headers["echo-x-b"], "two");
    assert!(
        !echo.headers.contains_key("echo-y-c"),
        "only x-* headers are echoed: {:?}",
        echo.headers
    );

    let stream = server.call(Method::GET, "/stream?n=1000", &[], b"").await;
    assert_eq!(stream.status, 200, "{}", stream.text());
    let expected = (0..1000).fold(String::new(), |mut text, i| {
        writeln!(text, "line {i}").unwrap();
        text
    });
    assert!(
        stream.text() == expected,
        "1000 lines, complete and in order; got {} bytes ending {:?}",
        stream.body.len(),
        stream.text().lines().last()
    );
    assert!(
        !stream.headers.contains_key("content-length"),
        "the body was streamed (its length unknown when the head was sent): {:?}",
        stream.headers
    );

    let no_count = server.call(Method::GET, "/stream", &[], b"").await;
    assert_eq!(no_count.status, 400, "{}", no_count.text());

    for (method, path) in [
        (Method::GET, "/nowhere"),
        (Method::GET, "/echo"),
        (Method::POST, "/hello"),
    ] {
        let missing = server.call(method.clone(), path, &[], b"").await;
        assert_eq!(
            (missing.status.as_u16(), missing.text().as_str()),
            (404, "no route"),
            "{method} {path}"
        );
    }
}
