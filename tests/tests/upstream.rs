//! An application written for upstream omnia runs unchanged: `p3-app-http`, one WASI 0.3
//! component using upstream's async key-value and messaging, `wasi:config` and telemetry
//! together, as upstream's examples do, on the embedded defaults and on Redis and NATS with an
//! OTLP collector. (Each
//! interface has its own tests beside the standard guests': `keyvalue.rs`, `messaging.rs`,
//! `telemetry.rs`.)

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
