//! A small application written as upstream omnia's examples are: one WASI 0.3 component that
//! serves HTTP (wasi:http@0.3.0), keeps its data in upstream's async key-value
//! (`wasi:keyvalue@0.2.0-draft2`), reads its settings from `wasi:config@0.2.0-rc.1`, publishes
//! and handles messages with upstream's async messaging (`wasi:messaging@0.2.0-draft`, with
//! `async func`s) and reports its work through upstream's telemetry (`omnia:otel@0.1.0`), so the
//! host's tests can check that such an application runs unchanged on
//! Omnia, on the embedded defaults and on Redis and NATS.
//!
//! * `POST /orders/{id}`, body: the order: keeps it in bucket `orders` under `{id}`, counts it
//!   (`count`), and publishes `{id}` to `{topic}.created`, `topic` being the config key `topic`
//!   (`orders` if unset): 201 `order {id} stored (n={count}), announced on {topic}.created`.
//! * `GET /orders/{id}`: 200 with the order, or 404 with an empty body.
//! * `GET /shipped/{id}`: 200 with the topic the `created` message came on, once this
//!   component's own message handler has seen it; 404 before.
//! * A message on `*.created` (the handler): records `shipped:{id}` = the message's topic.
//!
//! Each order is a span `create order` with the attribute `order.id`, started outside any other
//! span (as upstream's SDK starts one when the guest does not read `traceparent`), exported with
//! `tracing.export` when the order is announced: the host puts it under the request's span.
//!
//! A key-value, config or messaging error is 500 `keyvalue error: ...`, `config error: ...` or
//! 502 `messaging error: ...`; an unknown route 404 `no route`.
use guest_http_p3::{new_id, read_body, respond, ErrorCode, Method, Request, Response};

mod otel {
    wit_bindgen::generate!({
        path: "../../wit/p3-otel",
        world: "omnia:guests-p3-otel/otel-upstream",
        generate_all,
    });
}

mod app {
    wit_bindgen::generate!({
        path: "../../wit/p3",
        world: "omnia:guests-p3/app-upstream",
        generate_all,
    });
}

use app::wasi::config::store as config;
use app::wasi::keyvalue::{atomics, store};
use app::wasi::messaging::producer;
use app::wasi::messaging::types::{Client, Error, Message};
use otel::wasi::clocks::wall_clock::{self, Datetime};

struct Component;

impl guest_http_p3::Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let method = request.get_method();
        let path = request.get_path_with_query().unwrap_or_default();
        let body = read_body(request).await;
        let route = path.trim_start_matches('/').split_once('/');
        let (status, text) = match (method, route) {
            (Method::Post, Some(("orders", id))) => match create(id, body).await {
                Ok(text) => (201, text),
                Err(failed) => failed,
            },
            (Method::Get, Some(("orders", id))) => read("orders", id).await,
            (Method::Get, Some(("shipped", id))) => read("orders", &format!("shipped:{id}")).await,
            _ => (404, "no route".into()),
        };
        Ok(respond(status, &[], text.into_bytes()))
    }
}

guest_http_p3::export!(Component);

impl app::exports::wasi::messaging::incoming_handler::Guest for Component {
    async fn handle(message: Message) -> Result<(), Error> {
        let topic = message.topic().unwrap_or_default();
        if !topic.ends_with(".created") {
            return Ok(());
        }
        let id = String::from_utf8_lossy(&message.data()).into_owned();
        let orders = store::open("orders".into())
            .await
            .map_err(|e| Error::Other(format!("keyvalue: {e:?}")))?;
        orders
            .set(format!("shipped:{id}"), topic.into_bytes())
            .await
            .map_err(|e| Error::Other(format!("keyvalue: {e:?}")))
    }
}

app::export!(Component with_types_in app);

/// A status and a body.
type Answer = (u16, String);

/// `POST /orders/{id}`: keep, count, announce.
async fn create(id: &str, order: Vec<u8>) -> Result<String, Answer> {
    let started = wall_clock::now();
    let kv_error = |e: store::Error| (500, format!("keyvalue error: {e:?}"));
    let topic = config::get("topic")
        .map_err(|e| (500, format!("config error: {e:?}")))?
        .unwrap_or_else(|| "orders".into());
    let orders = store::open("orders".into()).await.map_err(kv_error)?;
    orders.set(id.to_string(), order).await.map_err(kv_error)?;
    let count = atomics::increment(&orders, "count".into(), 1).await.map_err(kv_error)?;
    let announced = format!("{topic}.created");
    let message = Message::new(id.as_bytes());
    message.set_content_type("text/plain");
    let client = Client::connect("app".into())
        .await
        .map_err(|e| (502, format!("messaging error: {e:?}")))?;
    producer::send(&client, announced.clone(), message)
        .await
        .map_err(|e| (502, format!("messaging error: {e:?}")))?;
    report(id, started).await;
    Ok(format!("order {id} stored (n={count}), announced on {announced}"))
}

/// Exports the span of order `id`, which began at `start`. Telemetry never fails an order: an
/// export error is ignored, as upstream's SDK does.
async fn report(id: &str, start: Datetime) {
    use otel::omnia::otel::tracing::{self, SpanContext, SpanData, SpanKind, Status, TraceFlags};
    use otel::omnia::otel::types::{InstrumentationScope, KeyValue, Value};
    let span = SpanData {
        span_context: SpanContext {
            trace_id: new_id(32),
            span_id: new_id(16),
            trace_flags: TraceFlags::SAMPLED,
            is_remote: false,
            trace_state: Vec::new(),
        },
        // No parent: upstream's SDK's invalid span id.
        parent_span_id: "0000000000000000".into(),
        span_kind: SpanKind::Internal,
        name: "create order".into(),
        start_time: start,
        end_time: wall_clock::now(),
        attributes: vec![KeyValue { key: "order.id".into(), value: Value::String(id.into()) }],
        events: Vec::new(),
        links: Vec::new(),
        status: Status::Ok,
        instrumentation_scope: InstrumentationScope {
            name: "p3-app-http".into(),
            version: None,
            schema_url: None,
            attributes: Vec::new(),
        },
        dropped_attributes: 0,
        dropped_events: 0,
        dropped_links: 0,
    };
    let _ = tracing::export(vec![span]).await;
}

/// `key` of `bucket`: 200 with its value, or 404.
async fn read(bucket: &str, key: &str) -> Answer {
    let value = match store::open(bucket.into()).await {
        Ok(bucket) => bucket.get(key.to_string()).await,
        Err(e) => Err(e),
    };
    match value {
        Ok(Some(value)) => (200, String::from_utf8_lossy(&value).into_owned()),
        Ok(None) => (404, String::new()),
        Err(e) => (500, format!("keyvalue error: {e:?}")),
    }
}
