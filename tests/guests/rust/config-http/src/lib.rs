//! Reads its configuration with wasi:config, for the host's tests.
//!
//! * `GET /config/{key}`: 200 with the value, or 404 `no such key` if the host has none.
//! * `GET /config`: 200 with every key the host grants, a `KEY=VALUE` line each, sorted by key.
//!
//! A wasi:config `error` gets 500 `config error: ...`; an unknown route 404 `no route`.
use guest_http::wasi::config::store;
use guest_http::{respond, Guest, IncomingRequest, ResponseOutparam};

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, body) = match path.strip_prefix("/config") {
            Some("") => all(),
            Some(key) if key.starts_with('/') => one(&key[1..]),
            _ => (404, "no route\n".to_string()),
        };
        respond(out, status, &[("content-type", b"text/plain")], body.as_bytes());
    }
}

fn one(key: &str) -> (u16, String) {
    match store::get(key) {
        Ok(Some(value)) => (200, value),
        Ok(None) => (404, "no such key\n".to_string()),
        Err(err) => (500, format!("config error: {err:?}\n")),
    }
}

fn all() -> (u16, String) {
    match store::get_all() {
        Ok(mut pairs) => {
            pairs.sort();
            (200, pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect())
        }
        Err(err) => (500, format!("config error: {err:?}\n")),
    }
}

guest_http::export!(Component);
