"""wasi:sql in Python (componentize-py, world sql-http; the proposal's synchronous shape).

`POST /exec/{db}` and `POST /query/{db}` (the database percent-decoded; empty: `open("")`),
body: the SQL on the first line, then one parameter a line (percent-decoded; the proposal's
parameters are strings). `/exec` answers 200 with the rows changed; `/query` 200 with one line
per value the host returned, `NAME=TYPE:VALUE` (or `NAME=null`), as the Rust `sql-http` guest
writes them. A wasi:sql error answers 502 `open error: TRACE` (from `open`) or 500
`sql error: TRACE`; any other request 404 `no route`.
"""
from urllib.parse import unquote

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import readwrite
from wit_world.imports.wasi_http_types import (
    Fields,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from wit_world.imports.wasi_sql_types import Connection, DataType_Binary, DataType_Null, Statement


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        status, text = run(request)
        respond(response_out, status, text.encode())


def run(request):
    """The status and body text for `request`."""
    path = (request.path_with_query() or "").split("?", 1)[0]
    segments = path.split("/")
    if not isinstance(request.method(), Method_Post) or len(segments) != 3 or segments[1] not in ("exec", "query"):
        return 404, "no route"
    op, db = segments[1], unquote(segments[2])
    lines = read_body(request).decode().split("\n")
    sql, params = lines[0], [unquote(line) for line in lines[1:]]
    try:
        connection = Connection.open(db)
    except Err as err:
        return 502, f"open error: {err.value.trace()}"
    try:
        with connection, Statement.prepare(sql, params) as statement:
            if op == "exec":
                return 200, str(readwrite.exec(connection, statement))
            return 200, "".join(f"{row.field_name}={show(row.value)}\n" for row in readwrite.query(connection, statement))
    except Err as err:
        return 500, f"sql error: {err.value.trace()}"


def show(value):
    """A value as the Rust guest writes it."""
    if isinstance(value, DataType_Null):
        return "null"
    if isinstance(value, DataType_Binary):
        return "binary:" + bytes(value.value).hex()
    kind = type(value).__name__.removeprefix("DataType_").lower()
    kind = {"boolean": "bool"}.get(kind, kind)
    shown = str(value.value).lower() if kind == "bool" else str(value.value)
    return f"{kind}:{shown}"


def read_body(request):
    body = request.consume()
    stream = body.stream()
    data = b""
    while True:
        try:
            data += stream.blocking_read(65536)
        except Err:
            break
    stream.__exit__(None, None, None)
    return data


def respond(response_out, status, data):
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    stream = body.write()
    stream.blocking_write_and_flush(data)
    stream.__exit__(None, None, None)
    OutgoingBody.finish(body, None)
