//! A WASIp3 HTTP handler that keeps rows with upstream omnia's async SQL (`wasi:sql@0.2.0-draft`
//! with `async func`s, typed parameters and a record per row), written as upstream omnia's
//! guests are, so the host's tests can check that such guests run unchanged and share a
//! database with the 0.2 `sql-http` guest. The routes are `sql-http`'s:
//!
//! * `POST [/...]/exec/{db}`, body: the SQL on the first line, then one parameter a line as
//!   `TYPE:VALUE` (`int32`, `int64`, `uint32`, `uint64`, `float`, `double`, `bool`, `str`,
//!   `date`, `time`, `timestamp`, `binary` with hex), or `TYPE:none` for a NULL: 200 with the
//!   rows changed.
//! * `POST [/...]/query/{db}`, body as for `/exec`: 200 with one line per row,
//!   `INDEX: NAME=VALUE NAME=VALUE ...`, each VALUE written as a parameter is.
//!
//! The database is the path's last segment (empty: `open("")`). A wasi:sql error answers 502
//! `open error: TRACE` or 500 `sql error: TRACE`; bad input 400; an unknown route 404.
use guest_http_p3::{method_name, read_body, respond, ErrorCode, Guest, Request, Response};

mod sql {
    wit_bindgen::generate!({
        path: "../../wit/p3",
        world: "omnia:guests-p3/sql-upstream",
        generate_all,
    });
}

use sql::wasi::sql::readwrite;
use sql::wasi::sql::types::{Connection, DataType, Error, Statement};

struct Component;

impl Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let method = method_name(&request.get_method());
        let path = request.get_path_with_query().unwrap_or_default();
        let path = path.split_once('?').map_or(path.as_str(), |(p, _)| p).to_string();
        let body = read_body(request).await;
        let (status, text) = match route(&method, &path, body).await {
            Ok(answer) | Err(answer) => answer,
        };
        Ok(respond(status, &[], text))
    }
}

guest_http_p3::export!(Component);

/// A status and a body.
type Answer = (u16, Vec<u8>);

fn bad(message: String) -> Answer {
    (400, message.into_bytes())
}

async fn route(method: &str, path: &str, body: Vec<u8>) -> Result<Answer, Answer> {
    let mut segments = path.rsplitn(3, '/');
    let (db, op) = match (segments.next(), segments.next()) {
        (Some(db), Some(op)) if method == "POST" && matches!(op, "exec" | "query") => (db, op),
        _ => return Err((404, b"no route".to_vec())),
    };
    let body = String::from_utf8(body).map_err(|_| bad("the body is not UTF-8".into()))?;
    let mut lines = body.lines();
    let sql = lines.next().ok_or_else(|| bad("no SQL".into()))?.to_string();
    let params = lines.map(parse).collect::<Result<Vec<_>, _>>()?;
    let connection =
        Connection::open(db.to_string()).await.map_err(|e| failed(502, "open error", &e))?;
    let statement =
        Statement::prepare(sql, params).await.map_err(|e| failed(500, "sql error", &e))?;
    if op == "exec" {
        let changed = readwrite::exec(&connection, &statement)
            .await
            .map_err(|e| failed(500, "sql error", &e))?;
        return Ok((200, changed.to_string().into_bytes()));
    }
    let rows = readwrite::query(&connection, &statement)
        .await
        .map_err(|e| failed(500, "sql error", &e))?;
    let mut out = String::new();
    for row in rows {
        out.push_str(&row.index);
        out.push(':');
        for field in row.fields {
            out.push_str(&format!(" {}={}", field.name, show(&field.value)));
        }
        out.push('\n');
    }
    Ok((200, out.into_bytes()))
}

fn failed(status: u16, what: &str, error: &Error) -> Answer {
    (status, format!("{what}: {}", error.trace()).into_bytes())
}

/// A `TYPE:VALUE` parameter.
fn parse(line: &str) -> Result<DataType, Answer> {
    let (kind, value) = line.split_once(':').ok_or_else(|| bad(format!("{line:?}: not TYPE:VALUE")))?;
    let none = value == "none";
    let number = |what: &str| bad(format!("{line:?}: not a {what}"));
    Ok(match kind {
        "int32" => DataType::Int32(if none { None } else { Some(value.parse().map_err(|_| number("s32"))?) }),
        "int64" => DataType::Int64(if none { None } else { Some(value.parse().map_err(|_| number("s64"))?) }),
        "uint32" => DataType::Uint32(if none { None } else { Some(value.parse().map_err(|_| number("u32"))?) }),
        "uint64" => DataType::Uint64(if none { None } else { Some(value.parse().map_err(|_| number("u64"))?) }),
        "float" => DataType::Float(if none { None } else { Some(value.parse().map_err(|_| number("f32"))?) }),
        "double" => DataType::Double(if none { None } else { Some(value.parse().map_err(|_| number("f64"))?) }),
        "bool" => DataType::Boolean(if none { None } else { Some(value == "true") }),
        "str" => DataType::Str((!none).then(|| value.to_string())),
        "date" => DataType::Date((!none).then(|| value.to_string())),
        "time" => DataType::Time((!none).then(|| value.to_string())),
        "timestamp" => DataType::Timestamp((!none).then(|| value.to_string())),
        "binary" => DataType::Binary(if none {
            None
        } else {
            let bytes = (0..value.len())
                .step_by(2)
                .map(|i| value.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| number("hex string"))?;
            Some(bytes)
        }),
        _ => return Err(bad(format!("{line:?}: unknown type {kind:?}"))),
    })
}

/// A value as `/query` writes it: as a parameter is written.
fn show(value: &DataType) -> String {
    fn or_none<T>(value: &Option<T>, show: impl Fn(&T) -> String) -> String {
        value.as_ref().map_or_else(|| "none".to_string(), show)
    }
    match value {
        DataType::Int32(v) => format!("int32:{}", or_none(v, ToString::to_string)),
        DataType::Int64(v) => format!("int64:{}", or_none(v, ToString::to_string)),
        DataType::Uint32(v) => format!("uint32:{}", or_none(v, ToString::to_string)),
        DataType::Uint64(v) => format!("uint64:{}", or_none(v, ToString::to_string)),
        DataType::Float(v) => format!("float:{}", or_none(v, ToString::to_string)),
        DataType::Double(v) => format!("double:{}", or_none(v, ToString::to_string)),
        DataType::Boolean(v) => format!("bool:{}", or_none(v, ToString::to_string)),
        DataType::Str(v) => format!("str:{}", or_none(v, Clone::clone)),
        DataType::Date(v) => format!("date:{}", or_none(v, Clone::clone)),
        DataType::Time(v) => format!("time:{}", or_none(v, Clone::clone)),
        DataType::Timestamp(v) => format!("timestamp:{}", or_none(v, Clone::clone)),
        DataType::Binary(v) => format!(
            "binary:{}",
            or_none(v, |b| b.iter().map(|byte| format!("{byte:02x}")).collect())
        ),
    }
}
