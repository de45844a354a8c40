//! A small application written as upstream omnia's examples are: one WASI 0.3 component that
//! serves HTTP (wasi:http@0.3.0), keeps its data in upstream's async key-value
//! (`wasi:keyvalue@0.2.0-draft2`), reads its settings from `wasi:config@0.2.0-rc.1`, publishes
//! and handles messages with upstream's async messaging (`wasi:messaging@0.2.0-draft`, with
//! `async func`s), so the host's tests can check that such an application runs unchanged on
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
//! A key-value, config or messaging error is 500 `keyvalue error: ...`, `config error: ...` or
//! 502 `messaging error: ...`; an unknown route 404 `no route`.
use guest_http_p3::{read_body, respond, ErrorCode, Method, Request, Response};

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
    Ok(format!("order {id} stored (n={count}), announced on {announced}"))
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
