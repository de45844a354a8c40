//! Handles messages (wasi:messaging) and drives messaging over HTTP, for the host's tests.
//!
//! On a message (`incoming-handler.handle`) on a `dead.*` topic (a dead letter): records it.
//! On any other:
//!
//! * data `fail`, or metadata `fail: true`: returns an error (the host redelivers it);
//! * data `trap`: traps;
//! * data `sleep:<ms>`: sleeps that long first;
//! * otherwise it records the message (`GET /received/{topic}` lists them), then: a request
//!   (it has a reply-to) gets the reply `echo: <data>`; any other message not on a `.out` topic
//!   is transformed: `echo: <data>` is published to `<topic>.out` with the same metadata plus
//!   `transformed-by: msg-echo`.
//!
//! Over HTTP:
//!
//! * `POST /publish/{topic}`, body: the data; `content-type` and `x-meta-<key>` headers become
//!   the message's content type and metadata: 204, or 502 `messaging error: ...`;
//! * `POST /request/{topic}?timeout_ms=N&expected=K`, body: the data: 200 with each reply's
//!   data on a line, 504 `timeout`, or 502 `messaging error: ...`;
//! * `GET /received/{topic}`: 200 with one line per message received on the topic, in order:
//!   `<data>|attempt=<omnia-delivery-attempt>|content-type=<type>|<key>=<value>...`, metadata
//!   sorted by key.
//!
//! Received messages are kept in wasi:keyvalue (bucket `received`: a counter per topic and one
//! key per message), so what one instance recorded, later instances read.
use guest_http::wasi::keyvalue::{atomics, store};
use guest_http::{read_body, respond, IncomingRequest, Method, ResponseOutparam};
use guest_messaging::wasi::messaging::types::{Client, Error, Message};
use guest_messaging::wasi::messaging::{producer, request_reply};

struct Component;

impl guest_messaging::exports::wasi::messaging::incoming_handler::Guest for Component {
    fn handle(message: Message) -> Result<(), Error> {
        let topic = message.topic().unwrap_or_default();
        if topic.starts_with("dead.") {
            // A dead letter: only record it (its data would fail again).
            return record(&topic, &message).map_err(|e| Error::Other(format!("keyvalue: {e:?}")));
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
            std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
        }
        record(&topic, &message).map_err(|e| Error::Other(format!("keyvalue: {e:?}")))?;
        match request_reply::reply(&message, echo_of(&message)) {
            Ok(()) => Ok(()),
            Err(Error::Other(m)) if m.contains("no reply-to") => {
                if topic.ends_with(".out") {
                    return Ok(());
                }
                let client = Client::connect("msg-echo")?;
                producer::send(&client, &format!("{topic}.out"), echo_of(&message))
            }
            Err(other) => Err(other),
        }
    }
}

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
    echo.add_metadata("transformed-by", "msg-echo");
    echo
}

/// Appends `message` to what was received on `topic`.
fn record(topic: &str, message: &Message) -> Result<(), store::Error> {
    let bucket = store::open("received")?;
    let n = atomics::increment(&bucket, &format!("count:{topic}"), 1)?;
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
    bucket.set(&format!("{topic}#{n}"), &line)
}

impl guest_messaging::exports::wasi::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse::<u32>().ok())
        };
        match (request.method(), path.split_once('/').map(|(_, p)| p).unwrap_or("").split_once('/')) {
            (Method::Post, Some(("publish", topic))) => {
                let message = outgoing(&request);
                let sent = Client::connect("msg-echo").and_then(|c| producer::send(&c, topic, message));
                match sent {
                    Ok(()) => respond(out, 204, &[], b""),
                    Err(e) => respond(out, 502, &[], format!("messaging error: {e:?}").as_bytes()),
                }
            }
            (Method::Post, Some(("request", topic))) => {
                let message = outgoing(&request);
                let options = request_reply::RequestOptions::new();
                if let Some(ms) = param("timeout_ms") {
                    options.set_timeout_ms(ms);
                }
                if let Some(n) = param("expected") {
                    options.set_expected_replies(n);
                }
                let replies = Client::connect("msg-echo")
                    .and_then(|c| request_reply::request(&c, topic, &message, Some(options)));
                match replies {
                    Ok(replies) => {
                        let mut body = Vec::new();
                        for reply in replies {
                            body.extend_from_slice(&reply.data());
                            body.push(b'\n');
                        }
                        respond(out, 200, &[], &body);
                    }
                    Err(Error::Timeout) => respond(out, 504, &[], b"timeout"),
                    Err(e) => respond(out, 502, &[], format!("messaging error: {e:?}").as_bytes()),
                }
            }
            (Method::Get, Some(("received", topic))) => match received(topic) {
                Ok(body) => respond(out, 200, &[], &body),
                Err(e) => respond(out, 500, &[], format!("keyvalue error: {e:?}").as_bytes()),
            },
            _ => respond(out, 404, &[], b"no route"),
        }
    }
}

/// The message a request describes: its body, content type and `x-meta-*` headers.
fn outgoing(request: &IncomingRequest) -> Message {
    let message = Message::new(&read_body(request));
    for (name, value) in request.headers().entries() {
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
fn received(topic: &str) -> Result<Vec<u8>, store::Error> {
    let bucket = store::open("received")?;
    let count: u64 = bucket
        .get(&format!("count:{topic}"))?
        .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
    let mut body = Vec::new();
    for n in 1..=count {
        if let Some(line) = bucket.get(&format!("{topic}#{n}"))? {
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
    }
    Ok(body)
}

guest_messaging::export!(Component);
