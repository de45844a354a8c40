"""A wasi:keyvalue counter in Python (componentize-py, world keyvalue-http).

`GET /count/{bucket}/{key}` (percent-decoded path segments; the key is the rest of the path)
adds 1 with `atomics.increment` and answers 200 with the new value in decimal. A wasi:keyvalue
error answers 500 `keyvalue error: no-such-store`, `keyvalue error: access-denied` or
`keyvalue error: other: MSG`; any other request gets 404 `no route`.
"""
from urllib.parse import unquote

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import atomics, store
from wit_world.imports.types import (
    Fields,
    Method_Get,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        status, text = count(request)
        respond(response_out, status, text.encode())


def count(request):
    """The status and body text for `request`."""
    path = (request.path_with_query() or "").split("?", 1)[0]
    segments = path.split("/", 3)  # "", "count", bucket, key
    if not isinstance(request.method(), Method_Get) or len(segments) != 4 or segments[1] != "count":
        return 404, "no route"
    bucket, key = unquote(segments[2]), unquote(segments[3])
    try:
        with store.open(bucket) as handle:
            return 200, str(atomics.increment(handle, key, 1))
    except Err as err:
        return 500, f"keyvalue error: {describe(err.value)}"


def describe(error):
    """A wasi:keyvalue `error` as the Rust guests spell it."""
    if isinstance(error, store.Error_NoSuchStore):
        return "no-such-store"
    if isinstance(error, store.Error_AccessDenied):
        return "access-denied"
    return f"other: {error.value}"


def respond(response_out, status, data):
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    stream = body.write()
    stream.blocking_write_and_flush(data)
    stream.__exit__(None, None, None)
    OutgoingBody.finish(body, None)
