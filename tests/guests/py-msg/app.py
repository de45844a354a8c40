"""A wasi:messaging handler in Python (componentize-py, world messaging-transform).

Each message received on topic T is published to `T.out` as `py: <its data, upper-cased>`,
with the same metadata; a message whose data is `fail` is refused with an error instead (the
host delivers it again).
"""
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import producer, types


class IncomingHandler(exports.IncomingHandler):
    def handle(self, message):
        data = bytes(message.data())
        if data == b"fail":
            raise Err(types.Error_Other("failing on purpose"))
        out = types.Message(b"py: " + data.upper())
        for key, value in message.metadata() or []:
            out.add_metadata(key, value)
        client = types.Client.connect("py-msg")
        producer.send(client, (message.topic() or "") + ".out", out)
