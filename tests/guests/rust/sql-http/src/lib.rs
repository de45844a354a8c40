//! Exercises wasi:sql (the proposal's synchronous shape) over HTTP, for the host's tests. Each
//! request opens its database with `connection.open`; the database name is the path's last
//! segment, percent-decoded (empty: `open("")`), the operation the one before it (so the guest
//! serves under any route prefix: `/a/exec/db`).
//!
//! * `POST [/...]/exec/{db}`, body: the SQL on the first line, then one parameter a line (each
//!   percent-decoded, so a parameter may hold a newline as `%0A`): 200 with the rows changed.
//! * `POST [/...]/query/{db}`, body as for `/exec`: 200 with one line per `row` the host returned
//!   (the proposal's `row` is one field): `NAME=VALUE`, where VALUE is `null`, `int32:N`,
//!   `int64:N`, `uint32:N`, `uint64:N`, `float:X`, `double:X`, `bool:true|false`, `str:TEXT`,
//!   `date:TEXT`, `time:TEXT`, `timestamp:TEXT` or `binary:HEX` (TEXT percent-encoded where it
//!   holds `%`, a control character or a non-ASCII byte).
//!
//! A wasi:sql error answers 502 `open error: TRACE` (from `open`) or 500 `sql error: TRACE`
//! (from `query` or `exec`), so it can be told apart from a trap; bad input 400, an unknown
//! route 404 `no route`.
use guest_http::wasi::sql::readwrite;
use guest_http::wasi::sql::types::{Connection, DataType, Error, Statement};
use guest_http::{percent_decode, read_body, respond, Guest, IncomingRequest, Method, ResponseOutparam};

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = route(&request).unwrap_or_else(|reply| reply);
        respond(out, status, &[], &body);
    }
}

guest_http::export!(Component);

/// A reply: status and body.
type Reply = (u16, Vec<u8>);

fn route(request: &IncomingRequest) -> Result<Reply, Reply> {
    let target = request.path_with_query().unwrap_or_default();
    let path = target.split_once('?').map_or(target.as_str(), |(path, _)| path);
    // The last two segments, so the guest serves under any route prefix (`/a/exec/db`).
    let mut segments = path.rsplitn(3, '/');
    let (db, op) = match (segments.next(), segments.next()) {
        (Some(db), Some(op)) => (db, op),
        _ => return Err((404, b"no route".to_vec())),
    };
    if !matches!(request.method(), Method::Post) || !matches!(op, "exec" | "query") {
        return Err((404, b"no route".to_vec()));
    }
    let db = percent_decode(db).ok_or((400, b"bad percent-encoding in the database".to_vec()))?;
    let body = String::from_utf8(read_body(request)).map_err(|_| (400, b"the body is not UTF-8".to_vec()))?;
    let mut lines = body.lines();
    let sql = lines.next().ok_or((400, b"no SQL".to_vec()))?.to_string();
    let params = lines
        .map(|line| percent_decode(line).ok_or((400, b"bad percent-encoding in a parameter".to_vec())))
        .collect::<Result<Vec<_>, _>>()?;
    let connection = Connection::open(&db).map_err(|e| failed(502, "open error", &e))?;
    let statement = Statement::prepare(&sql, &params).map_err(|e| failed(500, "sql error", &e))?;
    if op == "exec" {
        let changed = readwrite::exec(&connection, &statement).map_err(|e| failed(500, "sql error", &e))?;
        return Ok((200, changed.to_string().into_bytes()));
    }
    let rows = readwrite::query(&connection, &statement).map_err(|e| failed(500, "sql error", &e))?;
    let mut out = String::new();
    for row in rows {
        out.push_str(&row.field_name);
        out.push('=');
        out.push_str(&show(&row.value));
        out.push('\n');
    }
    Ok((200, out.into_bytes()))
}

fn failed(status: u16, what: &str, error: &Error) -> Reply {
    (status, format!("{what}: {}", error.trace()).into_bytes())
}

/// A value as `/query` writes it.
fn show(value: &DataType) -> String {
    match value {
        DataType::Null => "null".into(),
        DataType::Int32(n) => format!("int32:{n}"),
        DataType::Int64(n) => format!("int64:{n}"),
        DataType::Uint32(n) => format!("uint32:{n}"),
        DataType::Uint64(n) => format!("uint64:{n}"),
        DataType::Float(x) => format!("float:{x}"),
        DataType::Double(x) => format!("double:{x}"),
        DataType::Boolean(b) => format!("bool:{b}"),
        DataType::Str(s) => format!("str:{}", encode(s)),
        DataType::Date(s) => format!("date:{}", encode(s)),
        DataType::Time(s) => format!("time:{}", encode(s)),
        DataType::Timestamp(s) => format!("timestamp:{}", encode(s)),
        DataType::Binary(b) => {
            let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("binary:{hex}")
        }
    }
}

/// `text` with `%`, control characters and non-ASCII bytes percent-encoded.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte == b'%' || byte.is_ascii_control() || !byte.is_ascii() {
            out.push_str(&format!("%{byte:02X}"));
        } else {
            out.push(byte as char);
        }
    }
    out
}
