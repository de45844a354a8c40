//! Emits a wasi:otel span while handling a message, for the host's tests.
//!
//! * `POST /publish/{topic}`, body: the data: publishes it with wasi:messaging (the host adds
//!   the request's `traceparent`): 204, or 502 `messaging error: ...`; anything else 404.
//! * On a message: emits a span `guest-message` (a child of the span the host gives as current,
//!   attribute `guest.topic`, scope `otel-msg`) and succeeds.
use guest_http::{read_body, respond, IncomingRequest, Method, ResponseOutparam};
use guest_otel::{attribute, scope, Span};
use guest_messaging::wasi::messaging::producer;
use guest_messaging::wasi::messaging::types::{Client, Error, Message};

struct Component;

impl guest_messaging::exports::wasi::messaging::incoming_handler::Guest for Component {
    fn handle(message: Message) -> Result<(), Error> {
        let topic = message.topic().unwrap_or_default();
        let span = Span::start("guest-message", scope("otel-msg"));
        span.end(vec![attribute("guest.topic", &topic)], Vec::new());
        Ok(())
    }
}

impl guest_messaging::exports::wasi::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        match (request.method(), path.strip_prefix("/publish/")) {
            (Method::Post, Some(topic)) => {
                let message = Message::new(&read_body(&request));
                let sent = Client::connect("otel-msg").and_then(|c| producer::send(&c, topic, message));
                match sent {
                    Ok(()) => respond(out, 204, &[], b""),
                    Err(e) => respond(out, 502, &[], format!("messaging error: {e:?}").as_bytes()),
                }
            }
            _ => respond(out, 404, &[], b"no route\n"),
        }
    }
}

guest_messaging::export!(Component);
