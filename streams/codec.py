"""WAL records (format 1): key = collection name, value = ``{"op": kind, ...body}``.

The API writes msgpack with vectors as little-endian float32 bytes, because it is
several times cheaper to decode than JSON floats. JSON is always accepted, since
external producers write it by hand; a record without a content-type header is
read as JSON.
"""
import msgpack
import orjson

from storage.errors import BadRequest
from storage.operations import Command, from_wire

FORMAT = b"1"
JSON = b"application/json"
MSGPACK = b"application/msgpack"


class DecodeError(BadRequest):
    """A record that can never be applied; it goes to the dead-letter topic."""


def encode(command: Command, binary: bool = True) -> tuple:
    """Return (key, value, headers) for a command."""
    wire = command.op.to_wire(binary)
    if binary:
        value, ctype = msgpack.packb(wire), MSGPACK
    else:
        value, ctype = orjson.dumps(wire), JSON
    return command.collection.encode(), value, [("pointlog-format", FORMAT), ("content-type", ctype)]


def decode(key: bytes | None, value: bytes | None, headers) -> Command:
    hdrs = {k: bytes(v) if v is not None else b"" for k, v in (headers or ())}
    fmt = hdrs.get("pointlog-format", FORMAT)
    if fmt != FORMAT:
        raise DecodeError(f"unsupported pointlog-format {fmt!r}")
    if not key:
        raise DecodeError("record has no key: the key must be the collection name")
    try:
        collection = bytes(key).decode()
    except UnicodeDecodeError:
        raise DecodeError("record key is not UTF-8") from None
    if value is None:
        raise DecodeError("record has no value")
    ctype = hdrs.get("content-type", JSON)
    try:
        if ctype == MSGPACK:
            wire = msgpack.unpackb(value)
        elif ctype == JSON:
            wire = orjson.loads(value)
        else:
            raise DecodeError(f"unsupported content-type {ctype!r}")
    except DecodeError:
        raise
    except Exception as exc:  # any garbage byte sequence ends here
        raise DecodeError(f"undecodable {ctype.decode(errors='replace')} value: {exc}") from None
    try:
        return Command(collection, from_wire(wire))
    except BadRequest as exc:
        raise DecodeError(exc.message) from None
