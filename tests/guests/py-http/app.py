"""A wasi:http handler in Python (componentize-py): answers with its request path."""
from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import Fields, OutgoingBody, OutgoingResponse, ResponseOutparam


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        data = f"hello from componentize-py, path={request.path_with_query()}\n".encode()
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(200)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        stream = body.write()
        stream.blocking_write_and_flush(data)
        stream.__exit__(None, None, None)
        OutgoingBody.finish(body, None)
