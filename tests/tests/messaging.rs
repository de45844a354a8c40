//! wasi:messaging end to end: one guest (`msg-echo`), one behavioural table on the in-process
//! broker and on NATS (JetStream for the retried topics, core subjects for requests), passed
//! too by `p3-msg-echo`, the same guest written for upstream omnia's async shapes, which also
//! exchanges messages with `msg-echo` on one NATS server; then what
//! only a real nats-server shows: interop with native clients, 10,000 JetStream messages
//! without loss across a `kill -9`, replicas sharing a durable consumer, an outage and
//! recovery, and bad configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, StatusCode};
use omnia_tests::services::NatsServer;
use omnia_tests::{Omnia, Response, guests, omnia};

/// The subscriptions of the behavioural table: `in.>` retried three times then dead-lettered,
/// requests on `svc`, and the dead letters themselves. On NATS, `in.>` is a JetStream consumer.
fn config(jetstream: bool) -> String {
    let js = if jetstream {
        "[subscription.jetstream]\nstream = \"IN\"\nconsumer = \"omnia-in\"\n"
    } else {
        ""
    };
    format!(
        "[[subscription]]\ntopic = \"in.>\"\nmax_deliver = 3\nbackoff = [\"100ms\"]\n\
         dead_letter = \"dead.in\"\nack_wait = \"2s\"\nconcurrency = 32\n{js}\n\
         [[subscription]]\ntopic = \"svc\"\n\n[[subscription]]\ntopic = \"dead.>\"\n"
    )
}

/// Where messages flow in a test.
enum Broker {
    Memory,
    Nats(NatsServer),
}

impl Broker {
    async fn nats() -> Self {
        let nats = NatsServer::start();
        create_stream(&nats, "IN", &["in.>"]).await;
        Self::Nats(nats)
    }

    fn serve(&self, extra: &[(&str, &str)]) -> Omnia {
        self.serve_guest("msg-echo", extra)
    }

    /// `guest` (`msg-echo`, or `p3-msg-echo`: the same behaviour through upstream omnia's
    /// async shapes) with the behavioural table's subscriptions.
    fn serve_guest(&self, guest: &str, extra: &[(&str, &str)]) -> Omnia {
        let jetstream = matches!(self, Self::Nats(_));
        let file = guests::write_temp(
            &format!(
                "subscriptions-{}.toml",
                if jetstream { "nats" } else { "memory" }
            ),
            config(jetstream).as_bytes(),
        );
        let file = file.to_str().unwrap().to_owned();
        let url = match self {
            Self::Memory => String::new(),
            Self::Nats(nats) => nats.url(),
        };
        let mut env: Vec<(&str, &str)> = vec![("OMNIA_MESSAGING_CONFIG", &file)];
        if !url.is_empty() {
            env.push(("NATS_URL", &url));
        }
        env.extend_from_slice(extra);
        Omnia::serve(&omnia(), &guests::rust(guest), &env)
    }
}

async fn create_stream(nats: &NatsServer, name: &str, subjects: &[&str]) {
    let js = jetstream::new(nats.client().await);
    js.create_stream(jetstream::stream::Config {
        name: name.to_owned(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|err| panic!("create stream {name}: {err}"));
}

async fn publish(server: &Omnia, topic: &str, body: &[u8], headers: &[(&str, &str)]) -> Response {
    server
        .call(Method::POST, &format!("/publish/{topic}"), headers, body)
        .await
}

/// What the guest recorded for `topic`, once it has at least `n` lines (waits up to 20 s).
async fn received(server: &Omnia, topic: &str, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let response = server
            .call(Method::GET, &format!("/received/{topic}"), &[], b"")
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let lines: Vec<String> = response.text().lines().map(str::to_owned).collect();
        if lines.len() >= n || started.elapsed() > Duration::from_secs(20) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The behaviour every backend shares, for `guest` (which names itself in the metadata of
/// what it transforms).
async fn behaviour_table(server: &Omnia, backend: &str, guest: &str) {
    flows(server, backend, guest).await;
    failures(server, backend, guest).await;
}

/// Publishing, transforming, requests and replies.
async fn flows(server: &Omnia, backend: &str, guest: &str) {
    // Published, received with its content type and metadata, transformed onto `<topic>.out`.
    let sent = publish(
        server,
        "in.a",
        b"hello",
        &[("content-type", "text/plain"), ("x-meta-k", "v")],
    )
    .await;
    assert_eq!(
        sent.status,
        StatusCode::NO_CONTENT,
        "{backend}: {}",
        sent.text()
    );
    let lines = received(server, "in.a", 1).await;
    assert_eq!(
        lines,
        ["hello|attempt=1|content-type=text/plain|k=v"],
        "{backend}"
    );
    let lines = received(server, "in.a.out", 1).await;
    assert_eq!(
        lines,
        [format!(
            "echo: hello|attempt=1|content-type=text/plain|k=v|transformed-by={guest}"
        )],
        "{backend}"
    );

    // Request and reply.
    let reply = server
        .call(Method::POST, "/request/svc?timeout_ms=5000", &[], b"ping")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{backend}: {}", reply.text());
    assert_eq!(reply.text(), "echo: ping\n", "{backend}");
    let nobody = server
        .call(Method::POST, "/request/nobody?timeout_ms=500", &[], b"x")
        .await;
    assert_eq!(
        nobody.status,
        StatusCode::BAD_GATEWAY,
        "{backend}: {}",
        nobody.text()
    );
    assert!(
        nobody.text().contains("no one answers"),
        "{backend}: {}",
        nobody.text()
    );
}

/// Failing messages, and bad topics.
async fn failures(server: &Omnia, backend: &str, guest: &str) {
    // A failing message is delivered three times, then dead-lettered with the reason; other
    // messages flow meanwhile.
    publish(server, "in.b", b"fail", &[]).await;
    publish(server, "in.b", b"trap", &[]).await;
    publish(server, "in.c", b"meanwhile", &[]).await;
    assert_eq!(received(server, "in.c", 1).await.len(), 1, "{backend}");
    let dead = received(server, "dead.in", 2).await;
    assert_eq!(dead.len(), 2, "{backend}: {dead:?}");
    for (data, reason) in [
        ("fail", "the guest returned an error: failing on purpose"),
        (
            "trap",
            "the guest trapped: wasm trap: wasm `unreachable` instruction executed",
        ),
    ] {
        let line = dead
            .iter()
            .find(|l| l.starts_with(&format!("{data}|")))
            .unwrap_or_else(|| panic!("{backend}: {data} not dead-lettered: {dead:?}"));
        assert!(
            line.contains(&format!("omnia-dead-letter-reason={reason}")),
            "{backend}: {line}"
        );
        assert!(
            line.contains("omnia-dead-letter-topic=in.b"),
            "{backend}: {line}"
        );
        assert!(
            line.contains("omnia-dead-letter-attempts=3"),
            "{backend}: {line}"
        );
    }
    assert!(
        received(server, "in.b", 0).await.is_empty(),
        "{backend}: failures are not recorded"
    );
    // Each delivery is one guest call, counted by its guest (the file's stem) and outcome.
    for outcome in ["guest_error", "trap"] {
        let calls = server
            .metric(&format!(
                "omnia_guest_calls_total{{trigger=\"messaging\",component=\"{guest}\",\
                 outcome=\"{outcome}\"}}"
            ))
            .await;
        assert!(calls >= 3, "{backend}: {calls} calls ended {outcome}");
    }

    // Bad topics are the guest's error variant, not a trap.
    let bad = publish(server, "in..b", b"x", &[]).await;
    assert_eq!(
        bad.status,
        StatusCode::BAD_GATEWAY,
        "{backend}: {}",
        bad.text()
    );
    assert!(
        bad.text().contains("not a valid subject"),
        "{backend}: {}",
        bad.text()
    );
}

#[tokio::test]
async fn behaviour_table_in_memory() {
    let broker = Broker::Memory;
    let server = broker.serve(&[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")]);
    behaviour_table(&server, "memory", "msg-echo").await;
}

#[tokio::test]
async fn behaviour_table_on_nats() {
    let broker = Broker::nats().await;
    let server = broker.serve(&[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")]);
    behaviour_table(&server, "nats", "msg-echo").await;
}

#[tokio::test]
async fn an_upstream_async_guest_behaves_the_same_in_memory() {
    let server = Broker::Memory.serve_guest("p3-msg-echo", &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")]);
    behaviour_table(&server, "memory", "p3-msg-echo").await;
}

#[tokio::test]
async fn an_upstream_async_guest_behaves_the_same_on_nats() {
    let broker = Broker::nats().await;
    let server = broker.serve_guest("p3-msg-echo", &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")]);
    behaviour_table(&server, "nats", "p3-msg-echo").await;
}

/// A handler past `OMNIA_REQUEST_TIMEOUT` is stopped, and its message delivered again, then
/// dead-lettered with the reason; the same for a synchronous and an async handler.
#[tokio::test]
async fn a_handler_past_the_request_timeout_is_stopped_and_retried() {
    for guest in ["msg-echo", "p3-msg-echo"] {
        let server = Broker::Memory.serve_guest(guest, &[("OMNIA_REQUEST_TIMEOUT", "1s")]);
        let sent = publish(&server, "in.slow", b"sleep:60000", &[]).await;
        assert_eq!(
            sent.status,
            StatusCode::NO_CONTENT,
            "{guest}: {}",
            sent.text()
        );
        let dead = received(&server, "dead.in", 1).await;
        assert_eq!(dead.len(), 1, "{guest}: {dead:?}");
        assert!(
            dead[0]
                .contains("omnia-dead-letter-reason=the guest ran past OMNIA_REQUEST_TIMEOUT (1s)")
                && dead[0].contains("omnia-dead-letter-attempts=3"),
            "{guest}: {}",
            dead[0]
        );
    }
}

/// A standard 0.2 guest and an upstream-style 0.3 guest on one NATS server: each publishes to
/// the other's topics and sends it requests.
#[tokio::test]
async fn standard_and_upstream_guests_exchange_messages_on_nats() {
    let nats = NatsServer::start();
    let url = nats.url();
    let serve = |guest: &str, prefix: &str| {
        let file = guests::write_temp(
            &format!("subscriptions-{prefix}.toml"),
            format!("[[subscription]]\ntopic = \"{prefix}.>\"\n").as_bytes(),
        );
        let file = file.to_str().unwrap().to_owned();
        Omnia::serve(
            &omnia(),
            &guests::rust(guest),
            &[("OMNIA_MESSAGING_CONFIG", &file), ("NATS_URL", &url)],
        )
    };
    let standard = serve("msg-echo", "std");
    let upstream = serve("p3-msg-echo", "up");
    for (from, to, topic, name) in [
        (&upstream, &standard, "std.a", "msg-echo"),
        (&standard, &upstream, "up.a", "p3-msg-echo"),
    ] {
        let sent = publish(from, topic, b"hi", &[("x-meta-k", "v")]).await;
        assert_eq!(sent.status, StatusCode::NO_CONTENT, "{}", sent.text());
        assert_eq!(
            received(to, topic, 1).await,
            ["hi|attempt=1|k=v"],
            "{name} receives what the other guest published"
        );
        assert_eq!(
            received(to, &format!("{topic}.out"), 1).await,
            [format!("echo: hi|attempt=1|k=v|transformed-by={name}")],
            "{name} transforms it"
        );
        let reply = from
            .call(
                Method::POST,
                &format!("/request/{topic}.svc?timeout_ms=5000"),
                &[],
                b"ping",
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text());
        assert_eq!(
            reply.text(),
            "echo: ping\n",
            "{name} answers the other's request"
        );
    }
}

/// Collects what arrives on a subject: (data, headers) of each message.
async fn collect(
    nats: &NatsServer,
    subject: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<async_nats::Message> {
    let mut sub = nats
        .client()
        .await
        .subscribe(subject.to_owned())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = sub.next().await {
            if tx.send(message).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test]
async fn native_clients_see_metadata_as_headers_and_back() {
    let broker = Broker::nats().await;
    let Broker::Nats(nats) = &broker else {
        unreachable!()
    };
    let server = broker.serve(&[]);
    let mut out = collect(nats, "in.native.out").await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("trace", "t-1");
    headers.insert("content-type", "application/json");
    let js = jetstream::new(nats.client().await);
    js.publish_with_headers("in.native", headers, Bytes::from_static(b"{}"))
        .await
        .unwrap()
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(20), out.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.payload.as_ref(), b"echo: {}");
    let h = message.headers.unwrap();
    assert_eq!(
        h.get("trace").map(async_nats::HeaderValue::as_str),
        Some("t-1")
    );
    assert_eq!(
        h.get("content-type").map(async_nats::HeaderValue::as_str),
        Some("application/json")
    );
    assert_eq!(
        h.get("transformed-by").map(async_nats::HeaderValue::as_str),
        Some("msg-echo")
    );
    assert!(
        h.iter()
            .all(|(name, _)| !name.to_string().starts_with("Nats-")),
        "server headers stay hidden"
    );
    let lines = received(&server, "in.native", 1).await;
    assert_eq!(
        lines,
        ["{}|attempt=1|content-type=application/json|trace=t-1"]
    );
}

/// The ids seen on `<subject>` (messages `echo: m<i>`) and the delivery attempt of each copy.
fn drain_ids(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<async_nats::Message>,
    seen: &mut BTreeMap<u32, Vec<u64>>,
) {
    while let Ok(message) = rx.try_recv() {
        let text = String::from_utf8_lossy(&message.payload).into_owned();
        let id: u32 = text
            .trim_start_matches("echo: m")
            .parse()
            .unwrap_or_else(|_| panic!("{text}"));
        let attempt = message
            .headers
            .as_ref()
            .and_then(|h| h.get("omnia-delivery-attempt"))
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or(0);
        seen.entry(id).or_default().push(attempt);
    }
}

async fn publish_many(nats: &NatsServer, subject: &str, n: u32) {
    let js = jetstream::new(nats.client().await);
    let mut acks = Vec::new();
    for i in 0..n {
        acks.push(
            js.publish(subject.to_owned(), Bytes::from(format!("m{i}")))
                .await
                .unwrap(),
        );
        if acks.len() >= 500 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

/// Waits until every id below `n` was seen (up to `limit`).
async fn wait_all(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<async_nats::Message>,
    seen: &mut BTreeMap<u32, Vec<u64>>,
    n: u32,
    limit: Duration,
) {
    let started = Instant::now();
    while seen.len() < n as usize && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain_ids(rx, seen);
    }
}

/// Every id seen, and a copy beyond the first only where a redelivery happened.
fn check_no_loss(seen: &BTreeMap<u32, Vec<u64>>, n: u32) -> usize {
    let missing: Vec<u32> = (0..n).filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "{} lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let mut duplicates = 0;
    for (id, attempts) in seen {
        if attempts.len() > 1 {
            duplicates += attempts.len() - 1;
            assert!(
                attempts.iter().any(|a| *a > 1),
                "m{id} handled {} times without a redelivery: {attempts:?}",
                attempts.len()
            );
        }
    }
    duplicates
}

#[tokio::test]
async fn ten_thousand_jetstream_messages_survive_a_kill_9() {
    let broker = Broker::nats().await;
    let Broker::Nats(nats) = &broker else {
        unreachable!()
    };
    let mut out = collect(nats, "in.bulk.out").await;
    let mut server = broker.serve(&[]);
    let mut seen = BTreeMap::new();
    publish_many(nats, "in.bulk", 10_000).await;
    // Kill it mid-stream.
    let started = Instant::now();
    while seen.len() < 2_000 && started.elapsed() < Duration::from_mins(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        drain_ids(&mut out, &mut seen);
    }
    assert!(
        seen.len() >= 2_000 && seen.len() < 10_000,
        "{} handled before the kill",
        seen.len()
    );
    server.signal("KILL");
    server.wait(Duration::from_secs(10)).expect("killed");
    let restarted = broker.serve(&[]);
    wait_all(&mut out, &mut seen, 10_000, Duration::from_mins(4)).await;
    let duplicates = check_no_loss(&seen, 10_000);
    eprintln!("10000 messages, {duplicates} redelivered after the kill");
    drop(restarted);
}

#[tokio::test]
async fn replicas_share_a_durable_consumer_and_one_finishes_when_the_other_dies() {
    let broker = Broker::nats().await;
    let Broker::Nats(nats) = &broker else {
        unreachable!()
    };
    let mut out = collect(nats, "in.shared.out").await;
    let one = broker.serve(&[]);
    let two = broker.serve(&[]);
    let mut seen = BTreeMap::new();
    publish_many(nats, "in.shared", 2_000).await;
    wait_all(&mut out, &mut seen, 2_000, Duration::from_mins(2)).await;
    check_no_loss(&seen, 2_000);
    let (a, b) = (
        received(&one, "in.shared", 0).await.len(),
        received(&two, "in.shared", 0).await.len(),
    );
    assert!(a > 0 && b > 0, "both replicas took part: {a} and {b}");
    assert!(a + b >= 2_000, "together all: {a} + {b}");

    // Kill one mid-stream: the other finishes (the unsettled ones after ack_wait).
    let mut seen = BTreeMap::new();
    let mut out = collect(nats, "in.more.out").await;
    publish_many(nats, "in.more", 2_000).await;
    while seen.len() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        drain_ids(&mut out, &mut seen);
    }
    two.signal("KILL");
    wait_all(&mut out, &mut seen, 2_000, Duration::from_mins(2)).await;
    check_no_loss(&seen, 2_000);
    drop(one);
}

#[tokio::test]
async fn a_nats_outage_is_an_error_variant_and_omnia_resumes() {
    let mut broker = Broker::nats().await;
    let server = broker.serve(&[]);
    let Broker::Nats(nats) = &mut broker else {
        unreachable!()
    };
    assert_eq!(
        publish(&server, "in.x", b"before", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    // Core NATS is at-most-once: a message the server has not delivered yet when it is killed
    // is gone. Kill it only once `before` was handled.
    assert_eq!(
        received(&server, "in.x", 1).await.len(),
        1,
        "before was handled"
    );
    nats.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = publish(&server, "in.x", b"during", &[]).await;
    assert_eq!(during.status, StatusCode::BAD_GATEWAY, "{}", during.text());
    assert!(
        during.text().contains("Connection"),
        "the connection variant: {}",
        during.text()
    );
    nats.restart();
    // Reconnects by itself; publishing and consuming resume.
    let started = Instant::now();
    loop {
        let after = publish(&server, "in.x", b"after", &[]).await;
        if after.status == StatusCode::NO_CONTENT {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no recovery: {}",
            after.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lines = received(&server, "in.x", 2).await;
    assert!(lines.iter().any(|l| l.starts_with("after|")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("before|")), "{lines:?}");
}

#[tokio::test]
async fn work_slots_are_shared_with_http_as_back_pressure() {
    // Two slots for everything: busy message handlers make HTTP answer 503, never fail, and
    // every message is still handled.
    let broker = Broker::Memory;
    let server = broker.serve(&[("OMNIA_MAX_CONCURRENCY", "2")]);
    for _ in 0..10 {
        let sent = publish(&server, "in.slow", b"sleep:300", &[]).await;
        assert!(
            sent.status == StatusCode::NO_CONTENT || sent.status == StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let mut statuses = BTreeSet::new();
    for _ in 0..20 {
        statuses.insert(publish(&server, "in.slow", b"sleep:300", &[]).await.status);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "HTTP felt the busy slots: {statuses:?}"
    );
    assert!(
        !statuses.contains(&StatusCode::INTERNAL_SERVER_ERROR),
        "{statuses:?}"
    );
    let log = server.log();
    assert!(
        !log.contains("instantiat"),
        "no instantiation failure:\n{log}"
    );
}

#[test]
fn bad_configuration_is_a_clear_start_up_error() {
    let refuses = |env: &[(&str, &str)], needles: &[&str]| {
        // The HTTP trigger may already listen when the messaging trigger fails: then the
        // process must exit at once.
        let log = match Omnia::try_serve(&omnia(), &guests::rust("msg-echo"), env) {
            Err(log) => log,
            Ok(mut server) => {
                let status = server.wait(Duration::from_secs(10));
                assert_eq!(
                    status.and_then(|s| s.code()),
                    Some(1),
                    "{env:?}: {}",
                    server.log()
                );
                server.log()
            }
        };
        for needle in needles {
            assert!(log.contains(needle), "{env:?}: {needle:?} not in:\n{log}");
        }
    };
    refuses(
        &[("NATS_URL", "nats://a b"), ("OMNIA_MESSAGING_TOPICS", "x")],
        &["NATS_URL=", "is not valid"],
    );
    refuses(
        &[("OMNIA_MESSAGING_TOPICS", "a b")],
        &["OMNIA_MESSAGING_TOPICS=", "not a valid subject"],
    );
    refuses(&[], &["no topic is configured", "OMNIA_MESSAGING_TOPICS"]);
    let file = guests::write_temp(
        "bad-subscriptions.toml",
        b"[[subscription]]\ntopic = \"x\"\nretries = 3\n",
    );
    refuses(
        &[("OMNIA_MESSAGING_CONFIG", file.to_str().unwrap())],
        &[
            "bad-subscriptions.toml",
            "subscription 1",
            "unknown key \"retries\"",
        ],
    );
    let nats = NatsServer::start();
    let url = nats.url();
    let file = guests::write_temp(
        "unknown-stream.toml",
        b"[[subscription]]\ntopic = \"orders.>\"\n[subscription.jetstream]\nstream = \"ORDERS\"\nconsumer = \"c\"\n",
    );
    refuses(
        &[
            ("NATS_URL", &url),
            ("OMNIA_MESSAGING_CONFIG", file.to_str().unwrap()),
        ],
        &[
            "cannot subscribe to \"orders.>\"",
            "JetStream stream \"ORDERS\"",
            "create the stream first",
        ],
    );
}

#[tokio::test]
async fn a_message_over_the_servers_max_payload_is_an_error_variant() {
    let broker = Broker::nats().await;
    let server = broker.serve(&[]);
    let big = vec![b'x'; omnia_tests::services::NATS_MAX_PAYLOAD + 1];
    let response = publish(&server, "in.big", &big, &[]).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        response.text()
    );
    assert!(
        response.text().contains("max_payload"),
        "{}",
        response.text()
    );
}
