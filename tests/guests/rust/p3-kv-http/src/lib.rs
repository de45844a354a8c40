//! A WASIp3 HTTP handler that keeps its data with upstream omnia's async key-value
//! (`wasi:keyvalue@0.2.0-draft2`, every function an `async func`), written as upstream omnia's
//! guests are, so the host's tests can check that such guests run unchanged and share a store
//! with the standard 0.2 `kv-http` guest. The routes are `kv-http`'s (a subset):
//!
//! * `GET /kv/{bucket}/{key}`: 200 with the value's bytes, or 404 with an empty body if none.
//! * `PUT /kv/{bucket}/{key}`, body: the value: 204. `DELETE /kv/{bucket}/{key}`: 204.
//! * `GET /exists/{bucket}/{key}`: 200 `true` or `false`.
//! * `POST /incr/{bucket}/{key}?by=N` (`N` defaults to 1, may be negative): 200 with the new
//!   value in decimal.
//! * `POST /cas-incr/{bucket}/{key}`: adds 1 to a decimal counter (missing: 0) in a CAS loop:
//!   200 with the value written, or 409 `cas-failed` after 1000 attempts.
//! * `POST /batch/get/{bucket}`, body: keys, one a line: 200 with a line per key, `KEY=VALUE`,
//!   or `KEY!` if missing.
//! * `GET /list-all/{bucket}`: follows `list-keys` cursors until there is none: 200 with every
//!   key, one a line, sorted.
//!
//! Bucket and key are plain path segments (the key is everything after the bucket). A
//! key-value `error` gets 404 `keyvalue error: no-such-store`, 403 `keyvalue error:
//! access-denied` or 500 `keyvalue error: other: MSG`; an unknown route 404 `no route`.
use guest_http_p3::{method_name, read_body, respond, ErrorCode, Guest, Request, Response};

mod kv {
    wit_bindgen::generate!({
        path: "../../wit/p3",
        world: "omnia:guests-p3/keyvalue-upstream",
        generate_all,
    });
}

use kv::wasi::keyvalue::atomics::{self, Cas, CasError};
use kv::wasi::keyvalue::batch;
use kv::wasi::keyvalue::store::{self, Bucket, Error};

/// How many swaps `/cas-incr` tries before it gives up.
const MAX_CAS_ATTEMPTS: u32 = 1000;

struct Component;

impl Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let method = method_name(&request.get_method());
        let path = request.get_path_with_query().unwrap_or_default();
        let (path, query) = path.split_once('?').unwrap_or((&path, ""));
        let (path, query) = (path.to_string(), query.to_string());
        let body = read_body(request).await;
        let (status, text) = match route(&method, &path, &query, body).await {
            Ok(answer) | Err(answer) => answer,
        };
        Ok(respond(status, &[], text))
    }
}

guest_http_p3::export!(Component);

/// A status and a body.
type Answer = (u16, Vec<u8>);

async fn route(method: &str, path: &str, query: &str, body: Vec<u8>) -> Result<Answer, Answer> {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (route, bucket, key) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    let Some(bucket) = bucket else {
        return Err((404, b"no route\n".to_vec()));
    };
    match (method, route) {
        ("GET", Some("kv")) => match open(bucket).await?.get(key.to_string()).await {
            Ok(Some(value)) => Ok((200, value)),
            Ok(None) => Ok((404, Vec::new())),
            Err(err) => Err(kv_error(err)),
        },
        ("PUT", Some("kv")) => {
            open(bucket).await?.set(key.to_string(), body).await.map_err(kv_error)?;
            Ok((204, Vec::new()))
        }
        ("DELETE", Some("kv")) => {
            open(bucket).await?.delete(key.to_string()).await.map_err(kv_error)?;
            Ok((204, Vec::new()))
        }
        ("GET", Some("exists")) => {
            let exists = open(bucket).await?.exists(key.to_string()).await.map_err(kv_error)?;
            Ok((200, exists.to_string().into_bytes()))
        }
        ("POST", Some("incr")) => {
            let by = match query.strip_prefix("by=") {
                Some(n) => n.parse::<i64>().map_err(|_| (400, b"bad by\n".to_vec()))?,
                None => 1,
            };
            let bucket = open(bucket).await?;
            let value = atomics::increment(&bucket, key.to_string(), by).await.map_err(kv_error)?;
            Ok((200, value.to_string().into_bytes()))
        }
        ("POST", Some("cas-incr")) => cas_incr(&open(bucket).await?, key).await,
        ("POST", Some("batch")) if bucket == "get" => {
            let bucket = open(key).await?;
            let keys: Vec<String> =
                String::from_utf8_lossy(&body).lines().map(str::to_string).collect();
            let values =
                batch::get_many(&bucket, keys.clone()).await.map_err(kv_error)?;
            let mut out = String::new();
            for (key, value) in keys.iter().zip(values) {
                match value {
                    Some((_, value)) => {
                        out.push_str(&format!("{key}={}\n", String::from_utf8_lossy(&value)))
                    }
                    None => out.push_str(&format!("{key}!\n")),
                }
            }
            Ok((200, out.into_bytes()))
        }
        ("GET", Some("list-all")) => {
            let bucket = open(bucket).await?;
            let mut keys = Vec::new();
            let mut cursor = None;
            loop {
                let page = bucket.list_keys(cursor).await.map_err(kv_error)?;
                keys.extend(page.keys);
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            keys.sort();
            Ok((200, keys.iter().map(|k| format!("{k}\n")).collect::<String>().into_bytes()))
        }
        _ => Err((404, b"no route\n".to_vec())),
    }
}

async fn open(bucket: &str) -> Result<Bucket, Answer> {
    store::open(bucket.to_string()).await.map_err(kv_error)
}

/// Adds 1 to a decimal counter with compare-and-swap, retrying with the handle a lost race
/// gives back.
async fn cas_incr(bucket: &Bucket, key: &str) -> Result<Answer, Answer> {
    let mut cas = Cas::new(bucket, key.to_string()).await.map_err(kv_error)?;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = cas.current().await.map_err(kv_error)?;
        let n: u64 = current
            .map(|v| String::from_utf8_lossy(&v).parse().unwrap_or(0))
            .unwrap_or(0);
        let next = (n + 1).to_string();
        match atomics::swap(cas, next.clone().into_bytes()).await {
            Ok(()) => return Ok((200, next.into_bytes())),
            Err(CasError::CasFailed(fresh)) => cas = fresh,
            Err(CasError::StoreError(err)) => return Err(kv_error(err)),
        }
    }
    Err((409, b"cas-failed\n".to_vec()))
}

fn kv_error(err: Error) -> Answer {
    match err {
        Error::NoSuchStore => (404, b"keyvalue error: no-such-store\n".to_vec()),
        Error::AccessDenied => (403, b"keyvalue error: access-denied\n".to_vec()),
        Error::Other(message) => (500, format!("keyvalue error: other: {message}\n").into_bytes()),
    }
}
