//! Exercises every wasi:keyvalue function over HTTP, for the host's tests. Each request opens
//! its bucket with `store.open`. Bucket names and keys are path segments, percent-decoded
//! (`%XX`); the key is everything after the bucket segment, so it may contain `/`.
//!
//! * `GET /kv/{bucket}/{key}`: 200 with the value's bytes, or 404 with an empty body if none.
//! * `PUT /kv/{bucket}/{key}`, body: the value: 204. `DELETE /kv/{bucket}/{key}`: 204.
//! * `GET /exists/{bucket}/{key}`: 200 `true` or `false`.
//! * `POST /incr/{bucket}/{key}?by=N` (`N` defaults to 1): 200 with the new value in decimal.
//! * `POST /cas/{bucket}/{key}`, body: the new value, header `x-expect`: the value the key should
//!   hold now (no header: the key should be missing). 409 `changed` if `current` differs from
//!   it; otherwise `swap`: 200 `swapped`, or 409 `cas-failed`.
//! * `POST /cas-incr/{bucket}/{key}`: adds 1 to a decimal counter (missing: 0) in a CAS loop
//!   that retries with the handle `cas-failed` returns: 200 with the value written and
//!   `x-attempts: N`, or 409 `cas-failed` after 1000 attempts.
//! * `POST /batch/get/{bucket}`, body: keys: 200 with a line per key, in order, `KEY=HEX`, or
//!   `KEY!` if missing.
//! * `POST /batch/set/{bucket}`, body: `KEY=HEX` lines: 204. `POST /batch/delete/{bucket}`,
//!   body: keys: 204.
//! * `GET /list/{bucket}?cursor=N` (cursor optional): 200 with one `list-keys` page, and
//!   `x-cursor: N` if the host gave a next cursor.
//! * `GET /list-all/{bucket}`: follows cursors until there is none: 200 with every page's keys
//!   and `x-pages: P`, or 500 after 1,000,000 pages.
//!
//! Bodies hold one item a line; lines this guest writes each end with `\n`, and its hex is
//! lower-case. Bad input gets 400 with a message, an unknown route 404 `no route`. A
//! wasi:keyvalue `error` gets 404 `keyvalue error: no-such-store`, 403 `keyvalue error:
//! access-denied` or 500 `keyvalue error: other: MSG`, so it can be told apart from a trap.
use guest_http::wasi::keyvalue::atomics::{self, Cas, CasError};
use guest_http::wasi::keyvalue::batch;
use guest_http::wasi::keyvalue::store::{self, Bucket, Error};
use guest_http::{
    percent_decode, read_body, respond, Guest, IncomingRequest, Method, ResponseOutparam,
};

/// How many swaps `/cas-incr` tries before it gives up.
const MAX_CAS_ATTEMPTS: u32 = 1000;
/// How many pages `/list-all` reads before it decides the host's cursors never end.
const MAX_PAGES: u32 = 1_000_000;

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let reply = route(&request).unwrap_or_else(|reply| reply);
        let headers: Vec<(&str, &[u8])> =
            reply.headers.iter().map(|(name, value)| (*name, value.as_bytes())).collect();
        respond(out, reply.status, &headers, &reply.body);
    }
}

guest_http::export!(Component);

/// A response to send.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply { status, headers: Vec::new(), body: body.into() }
    }

    fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// A wasi:keyvalue error answers the request, so `?` works on every keyvalue call.
impl From<Error> for Reply {
    fn from(error: Error) -> Self {
        match error {
            Error::NoSuchStore => Reply::new(404, "keyvalue error: no-such-store"),
            Error::AccessDenied => Reply::new(403, "keyvalue error: access-denied"),
            Error::Other(message) => Reply::new(500, format!("keyvalue error: other: {message}")),
        }
    }
}

/// The reply to a request; `Err` is a reply that cut the request short (bad input, a keyvalue
/// error), so `?` can send it.
type Outcome = Result<Reply, Reply>;

fn bad_request(message: impl Into<Vec<u8>>) -> Reply {
    Reply::new(400, message)
}

fn no_route() -> Reply {
    Reply::new(404, "no route")
}

/// Runs the operation the method and path name. Input is checked before the bucket is opened.
fn route(request: &IncomingRequest) -> Outcome {
    let target = request.path_with_query().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    let (op, rest) = path.strip_prefix('/').and_then(|p| p.split_once('/')).ok_or_else(no_route)?;
    match (request.method(), op) {
        (Method::Get, "kv") => {
            let (bucket, key) = bucket_and_key(rest)?;
            match store::open(&bucket)?.get(&key)? {
                Some(value) => Ok(Reply::new(200, value)),
                None => Ok(Reply::new(404, "")),
            }
        }
        (Method::Put, "kv") => {
            let (bucket, key) = bucket_and_key(rest)?;
            let value = read_body(request);
            store::open(&bucket)?.set(&key, &value)?;
            Ok(Reply::new(204, ""))
        }
        (Method::Delete, "kv") => {
            let (bucket, key) = bucket_and_key(rest)?;
            store::open(&bucket)?.delete(&key)?;
            Ok(Reply::new(204, ""))
        }
        (Method::Get, "exists") => {
            let (bucket, key) = bucket_and_key(rest)?;
            let exists = store::open(&bucket)?.exists(&key)?;
            Ok(Reply::new(200, exists.to_string()))
        }
        (Method::Post, "incr") => {
            let (bucket, key) = bucket_and_key(rest)?;
            let by = query_u64(query, "by")?.unwrap_or(1);
            let value = atomics::increment(&store::open(&bucket)?, &key, by)?;
            Ok(Reply::new(200, value.to_string()))
        }
        (Method::Post, "cas") => {
            let (bucket, key) = bucket_and_key(rest)?;
            let expected = request.headers().get("x-expect").into_iter().next();
            let value = read_body(request);
            cas(&store::open(&bucket)?, &key, expected.as_deref(), &value)
        }
        (Method::Post, "cas-incr") => {
            let (bucket, key) = bucket_and_key(rest)?;
            cas_incr(&store::open(&bucket)?, &key)
        }
        (Method::Post, "batch") => match rest.split_once('/') {
            Some(("get", bucket)) => {
                let bucket = bucket_name(bucket)?;
                let keys = body_lines(request)?;
                batch_get(&store::open(&bucket)?, &keys)
            }
            Some(("set", bucket)) => {
                let bucket = bucket_name(bucket)?;
                let pairs = body_lines(request)?
                    .iter()
                    .map(|line| key_and_hex(line))
                    .collect::<Result<Vec<_>, _>>()?;
                batch::set_many(&store::open(&bucket)?, &pairs)?;
                Ok(Reply::new(204, ""))
            }
            Some(("delete", bucket)) => {
                let bucket = bucket_name(bucket)?;
                let keys = body_lines(request)?;
                batch::delete_many(&store::open(&bucket)?, &keys)?;
                Ok(Reply::new(204, ""))
            }
            _ => Err(no_route()),
        },
        (Method::Get, "list") => {
            let bucket = bucket_name(rest)?;
            let cursor = query_u64(query, "cursor")?;
            list(&store::open(&bucket)?, cursor)
        }
        (Method::Get, "list-all") => list_all(&store::open(&bucket_name(rest)?)?),
        _ => Err(no_route()),
    }
}

/// Swaps in `value` if the key still holds `expected` (`None`: if the key is still missing).
fn cas(bucket: &Bucket, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Outcome {
    let cas = Cas::new(bucket, key)?;
    if cas.current()?.as_deref() != expected {
        return Ok(Reply::new(409, "changed"));
    }
    match atomics::swap(cas, value) {
        Ok(()) => Ok(Reply::new(200, "swapped")),
        Err(CasError::CasFailed(_)) => Ok(Reply::new(409, "cas-failed")),
        Err(CasError::StoreError(error)) => Err(error.into()),
    }
}

/// Adds 1 to a decimal counter with a read-modify-write CAS loop, retrying with the handle each
/// `cas-failed` returns.
fn cas_incr(bucket: &Bucket, key: &str) -> Outcome {
    let mut cas = Cas::new(bucket, key)?;
    for attempt in 1..=MAX_CAS_ATTEMPTS {
        let current = match cas.current()? {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or_else(|| bad_request(format!("the value of {key:?} is not a decimal u64")))?,
        };
        let next = current
            .checked_add(1)
            .ok_or_else(|| bad_request(format!("the counter {key:?} is already u64::MAX")))?;
        match atomics::swap(cas, next.to_string().as_bytes()) {
            Ok(()) => return Ok(Reply::new(200, next.to_string()).header("x-attempts", attempt)),
            Err(CasError::CasFailed(fresh)) => cas = fresh,
            Err(CasError::StoreError(error)) => return Err(error.into()),
        }
    }
    Ok(Reply::new(409, "cas-failed").header("x-attempts", MAX_CAS_ATTEMPTS))
}

/// `get-many`: a line per requested key, in order. A found entry shows the key the host returned.
fn batch_get(bucket: &Bucket, keys: &[String]) -> Outcome {
    let entries = batch::get_many(bucket, keys)?;
    if entries.len() != keys.len() {
        let message =
            format!("get-many returned {} entries for {} keys", entries.len(), keys.len());
        return Err(Reply::new(500, message));
    }
    let text: String = keys
        .iter()
        .zip(entries)
        .map(|(requested, entry)| match entry {
            Some((key, value)) => format!("{key}={}\n", hex(&value)),
            None => format!("{requested}!\n"),
        })
        .collect();
    Ok(Reply::new(200, text))
}

/// One `list-keys` page, with `x-cursor` if the host gave a next cursor.
fn list(bucket: &Bucket, cursor: Option<u64>) -> Outcome {
    let page = bucket.list_keys(cursor)?;
    let reply = Reply::new(200, lines(&page.keys));
    Ok(match page.cursor {
        Some(next) => reply.header("x-cursor", next),
        None => reply,
    })
}

/// Every page of `list-keys`, following cursors until there is none (duplicates are kept).
fn list_all(bucket: &Bucket) -> Outcome {
    let mut keys = Vec::new();
    let mut cursor = None;
    for pages in 1..=MAX_PAGES {
        let page = bucket.list_keys(cursor)?;
        keys.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(Reply::new(200, lines(&keys)).header("x-pages", pages));
        }
    }
    Err(Reply::new(500, format!("list-all: the cursors did not end after {MAX_PAGES} pages")))
}

/// Splits `{bucket}/{key}` and percent-decodes both; the key keeps any further `/`.
fn bucket_and_key(rest: &str) -> Result<(String, String), Reply> {
    let (bucket, key) = rest.split_once('/').ok_or_else(no_route)?;
    Ok((decode(bucket)?, decode(key)?))
}

/// Percent-decodes a `{bucket}` that must be the path's last segment.
fn bucket_name(rest: &str) -> Result<String, Reply> {
    if rest.contains('/') {
        return Err(no_route());
    }
    decode(rest)
}

/// Percent-decodes a path segment: `%XX` is a byte, and the result must be UTF-8.
fn decode(segment: &str) -> Result<String, Reply> {
    percent_decode(segment).ok_or_else(|| {
        bad_request(format!("bad percent-encoding in {segment:?}, or not UTF-8 once decoded"))
    })
}

/// The query parameter `name` as a decimal u64, if it is there.
fn query_u64(query: &str, name: &str) -> Result<Option<u64>, Reply> {
    let Some(value) = query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    else {
        return Ok(None);
    };
    let number = value
        .parse()
        .map_err(|_| bad_request(format!("?{name}= must be a decimal u64, not {value:?}")))?;
    Ok(Some(number))
}

/// The request body as lines (`\n` or `\r\n`; a final newline is optional).
fn body_lines(request: &IncomingRequest) -> Result<Vec<String>, Reply> {
    let body =
        String::from_utf8(read_body(request)).map_err(|_| bad_request("the body is not UTF-8"))?;
    Ok(body.lines().map(str::to_string).collect())
}

/// Parses a `KEY=HEX` line, split at the last `=`.
fn key_and_hex(line: &str) -> Result<(String, Vec<u8>), Reply> {
    let (key, hex) =
        line.rsplit_once('=').ok_or_else(|| bad_request(format!("{line:?} is not KEY=HEX")))?;
    Ok((key.to_string(), unhex(hex)?))
}

fn lines(items: &[String]) -> String {
    items.iter().flat_map(|item| [item.as_str(), "\n"]).collect()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|byte| [DIGITS[usize::from(byte >> 4)], DIGITS[usize::from(byte & 15)]])
        .map(char::from)
        .collect()
}

/// Decodes hex digits, either case.
fn unhex(text: &str) -> Result<Vec<u8>, Reply> {
    let bad = || bad_request(format!("{text:?} is not hex"));
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(high), Some(low)) => Ok(high << 4 | low),
            _ => Err(bad()),
        })
        .collect()
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}
