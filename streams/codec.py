"""WAL records (format 1): key = collection name, value = ``{"op": kind, ...body}``.

The API writes msgpack with vectors as little-endian float32 bytes, because it is
several times cheaper to decode than JSON floats. JSON is always accepted, since
external producers write it by hand; a record without a content-type header is
read as JSON. ``streams/record.schema.json`` documents the value.

``decode`` turns every way a record can be wrong into a ``DecodeError`` (a dead
letter), never another exception: one bad record must not stop the applier.
"""
import msgpack
import orjson

from storage import operations as ops
from storage.errors import BadRequest
from storage.operations import Command, from_wire

FORMAT = b"1"
JSON = b"application/json"
MSGPACK = b"application/msgpack"
FORMAT_HEADER = "pointlog-format"
CONTENT_TYPE_HEADER = "content-type"


class DecodeError(BadRequest):
    """A record that can never be applied; it goes to the dead-letter topic."""


def encode(command: Command, binary: bool = True) -> tuple:
    """Return (key, value, headers) for a command."""
    wire = command.op.to_wire(binary)
    if binary:
        value, ctype = msgpack.packb(wire), MSGPACK
    else:
        value, ctype = orjson.dumps(wire), JSON
    return command.collection.encode(), value, [(FORMAT_HEADER, FORMAT), (CONTENT_TYPE_HEADER, ctype)]


def decode(key: bytes | None, value: bytes | None, headers) -> Command:
    try:
        return _decode(key, value, headers)
    except DecodeError:
        raise
    except BadRequest as exc:
        raise DecodeError(exc.message) from None
    except Exception as exc:  # whatever a hostile value provokes in the parsers
        raise DecodeError(f"invalid record: {type(exc).__name__}: {exc}") from None


def _decode(key, value, headers) -> Command:
    hdrs = {}
    for k, v in headers or ():
        hdrs[k.lower() if isinstance(k, str) else k] = bytes(v) if v is not None else b""
    fmt = hdrs.get(FORMAT_HEADER, FORMAT).strip()
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
    # "application/json; charset=utf-8" is what HTTP-minded producers send.
    ctype = hdrs.get(CONTENT_TYPE_HEADER, JSON).split(b";")[0].strip().lower()
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
    op = from_wire(wire)
    if ctype == MSGPACK:
        _require_json_payloads(op)
    return Command(collection, op)


def _require_json_payloads(op: ops.Operation) -> None:
    """msgpack can carry bytes or non-string keys where JSON cannot; a payload or
    config holding them could never be returned to a client."""
    try:
        for doc in _json_parts(op):
            orjson.dumps(doc)
    except TypeError as exc:
        raise DecodeError(f"payload is not JSON: {exc}") from None


def _json_parts(op: ops.Operation):
    if isinstance(op, ops.CreateCollection):
        yield op.config.to_json()
    elif isinstance(op, ops.Upsert):
        for p in op.points:
            if p.payload:
                yield p.payload
    elif isinstance(op, (ops.SetPayload, ops.OverwritePayload)):
        yield op.payload
    elif isinstance(op, ops.Batch):
        for inner in op.operations:
            yield from _json_parts(inner)
    if isinstance(getattr(op, "selector", None), ops.PointsSelector) and op.selector.filter is not None:
        yield op.selector.filter
