//! `msg-echo` written as upstream omnia's guests are: a WASI 0.3 component with upstream's async
//! messaging (`wasi:messaging@0.2.0-draft` with every function that waits an `async func`, and an
//! async `incoming-handler.handle` export), upstream's async key-value
//! (`wasi:keyvalue@0.2.0-draft2`) and a wasi:http@0.3.0 handler. It exists so the host's tests
//! can check that upstream's async messaging guests run unchanged on Omnia and share topics (and
//! the `received` bucket) with the standard 0.2 guests. It behaves exactly as `msg-echo` does,
//! except that its transformed messages say `transformed-by: p3-msg-echo`:
//!
//! On a message (`incoming-handler.handle`) on a `dead.*` topic (a dead letter): records it.
//! On any other:
//!
//! * data `fail`, or metadata `fail: true`: returns an error (the host redelivers it);
//! * data `trap`: traps;
//! * data `sleep:<ms>`: sleeps that long first (`wasi:clocks/monotonic-clock@0.3.0.wait-for`:
//!   only this task waits);
//! * otherwise it records the message (`GET /received/{topic}` lists them), then: a request
//!   (it has a reply-to) gets the reply `echo: <data>`; any other message not on a `.out` topic
//!   is transformed: `echo: <data>` is published to `<topic>.out` with the same metadata plus
//!   `transformed-by: p3-msg-echo`.
//!
//! Over HTTP:
//!
//! * `POST /publish/{topic}`, body: the data; `content-type` and `x-meta-<key>` headers become
//!   the message's content type and metadata: 204, or 502 `messaging error: ...`;
//! * `POST /request/{topic}?timeout_ms=N&expected=K`, body: the data: 200 with each reply's
//!   data on a line, 504 `timeout`, or 502 `messaging error: ...`;
//! * `GET /received/{topic}`: 200 with one line per message received on the topic, in order:
//!   `<data>|attempt=<omnia-delivery-attempt>|content-type=<type>|<key>=<value>...`, metadata
//!   sorted by key; 500 `keyvalue error: ...`;
//! * anything else: 404 `no route`.
//!
//! Received messages are kept in wasi:keyvalue (bucket `received`: a counter per topic and one
//! key per message), so what one instance recorded, later instances read.
use guest_http_p3::{read_body, respond, sleep_ms, ErrorCode, Method, Request, Response};

mod msg {
    wit_bindgen::generate!({
        path: "../../wit/p3",
        world: "omnia:guests-p3/messaging-upstream",
        generate_all,
    });
}

use msg::wasi::keyvalue::{atomics, store};
use msg::wasi::messaging::types::{Client, Error, Message};
use msg::wasi::messaging::{producer, request_reply};

struct Component;

impl msg::exports::wasi::messaging::incoming_handler::Guest for Component {
    async fn handle(message: Message) -> Result<(), Error> {
        let topic = message.topic().unwrap_or_default();
        if topic.starts_with("dead.") {
            // A dead letter: only record it (its data would fail again).
            return record(&topic, &message)
                .await
                .map_err(|e| Error::Other(format!("keyvalue: {e:?}")));
        }
        let data = message.data();
        let metadata = message.metadata().unwrap_or_default();
        let meta = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if data == b"fail" || meta("fail").as_deref() == Some("true") {
            return Err(Error::Other("failing on purpose".into()));
        }
        if data == b"trap" {
            panic!("this message traps on purpose");
        }
        if let Some(ms) = std::str::from_utf8(&data).ok().and_then(|d| d.strip_prefix("sleep:")) {
            sleep_ms(ms.parse().unwrap_or(0)).await;
        }
        record(&topic, &message).await.map_err(|e| Error::Other(format!("keyvalue: {e:?}")))?;
        match request_reply::reply(&message, echo_of(&message)).await {
            Ok(()) => Ok(()),
            Err(Error::Other(m)) if m.contains("no reply-to") => {
                if topic.ends_with(".out") {
                    return Ok(());
                }
                let client = Client::connect("msg-echo".into()).await?;
                producer::send(&client, format!("{topic}.out"), echo_of(&message)).await
            }
            Err(other) => Err(other),
        }
    }
}

msg::export!(Component with_types_in msg);

/// `echo: <data>`, with the message's content type and metadata, and `transformed-by`.
fn echo_of(message: &Message) -> Message {
    let mut data = b"echo: ".to_vec();
    data.extend_from_slice(&message.data());
    let echo = Message::new(&data);
    if let Some(content_type) = message.content_type() {
        echo.set_content_type(&content_type);
    }
    for (key, value) in message.metadata().unwrap_or_default() {
        echo.add_metadata(&key, &value);
    }
    echo.add_metadata("transformed-by", "p3-msg-echo");
    echo
}

/// Appends `message` to what was received on `topic`.
async fn record(topic: &str, message: &Message) -> Result<(), store::Error> {
    let bucket = store::open("received".into()).await?;
    let n = atomics::increment(&bucket, format!("count:{topic}"), 1).await?;
    let mut line = message.data();
    let mut metadata = message.metadata().unwrap_or_default();
    // Sorted: backends need not keep the order (NATS headers do not).
    metadata.sort();
    let attempt = metadata
        .iter()
        .find(|(k, _)| k == "omnia-delivery-attempt")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    line.extend_from_slice(format!("|attempt={attempt}").as_bytes());
    if let Some(content_type) = message.content_type() {
        line.extend_from_slice(format!("|content-type={content_type}").as_bytes());
    }
    for (key, value) in metadata.iter().filter(|(k, _)| k != "omnia-delivery-attempt") {
        line.extend_from_slice(format!("|{key}={value}").as_bytes());
    }
    bucket.set(format!("{topic}#{n}"), line).await
}

impl guest_http_p3::Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse::<u32>().ok())
        };
        let route = path.split_once('/').map(|(_, p)| p).unwrap_or("").split_once('/');
        let (status, body) = match (request.get_method(), route) {
            (Method::Post, Some(("publish", topic))) => {
                let message = outgoing(request).await;
                match publish(topic, message).await {
                    Ok(()) => (204, Vec::new()),
                    Err(e) => (502, format!("messaging error: {e:?}").into_bytes()),
                }
            }
            (Method::Post, Some(("request", topic))) => {
                let message = outgoing(request).await;
                let options = request_reply::RequestOptions::new();
                if let Some(ms) = param("timeout_ms") {
                    options.set_timeout_ms(ms);
                }
                if let Some(n) = param("expected") {
                    options.set_expected_replies(n);
                }
                match send_request(topic, &message, options).await {
                    Ok(replies) => {
                        let mut body = Vec::new();
                        for reply in replies {
                            body.extend_from_slice(&reply.data());
                            body.push(b'\n');
                        }
                        (200, body)
                    }
                    Err(Error::Timeout) => (504, b"timeout".to_vec()),
                    Err(e) => (502, format!("messaging error: {e:?}").into_bytes()),
                }
            }
            (Method::Get, Some(("received", topic))) => match received(topic).await {
                Ok(body) => (200, body),
                Err(e) => (500, format!("keyvalue error: {e:?}").into_bytes()),
            },
            _ => (404, b"no route".to_vec()),
        };
        Ok(respond(status, &[], body))
    }
}

guest_http_p3::export!(Component);

/// Sends `message` to `topic`.
async fn publish(topic: &str, message: Message) -> Result<(), Error> {
    let client = Client::connect("msg-echo".into()).await?;
    producer::send(&client, topic.to_string(), message).await
}

/// Sends `message` to `topic` as a request and waits for the replies `options` asks for.
async fn send_request(
    topic: &str,
    message: &Message,
    options: request_reply::RequestOptions,
) -> Result<Vec<Message>, Error> {
    let client = Client::connect("msg-echo".into()).await?;
    request_reply::request(&client, topic.to_string(), message, Some(options)).await
}

/// The message a request describes: its body, content type and `x-meta-*` headers.
async fn outgoing(request: Request) -> Message {
    let headers = request.get_headers().copy_all();
    let message = Message::new(&read_body(request).await);
    for (name, value) in headers {
        let value = String::from_utf8_lossy(&value).into_owned();
        if name == "content-type" {
            message.set_content_type(&value);
        } else if let Some(key) = name.strip_prefix("x-meta-") {
            message.add_metadata(key, &value);
        }
    }
    message
}

/// Every line recorded for `topic`, in order.
async fn received(topic: &str) -> Result<Vec<u8>, store::Error> {
    let bucket = store::open("received".into()).await?;
    let count: u64 = bucket
        .get(format!("count:{topic}"))
        .await?
        .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
    let mut body = Vec::new();
    for n in 1..=count {
        if let Some(line) = bucket.get(format!("{topic}#{n}")).await? {
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
    }
    Ok(body)
}
