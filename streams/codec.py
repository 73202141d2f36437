"""The WAL record codec (format 1): key = collection name, value = ``{"op": kind, ...}``.

``to_wire``/``from_wire`` turn an operation into its WAL value and back. They are
derived from the operation's fields (storage/operations.py): each field is read and
written by the reader/writer of its type below, under its Qdrant body name. So a new
operation made of known field types needs no codec code, and a record written by
hand means what the same Qdrant request body means.

``encode``/``decode`` add the record around the value. The API writes msgpack with
vectors as little-endian float32 bytes, several times cheaper to decode than JSON
floats; JSON is always accepted, since external producers write it by hand, and a
record without a content-type header is read as JSON. ``streams/record.schema.json``
documents the value.

``decode`` turns every way a record can be wrong into a ``DecodeError`` (a dead
letter) naming the field, never another exception: one bad record must not stop
the applier.
"""
import dataclasses
import types
import typing

import msgpack
import orjson

from storage import values
from storage.config import CollectionConfig
from storage.errors import BadRequest
from storage.ids import parse_id
from storage.operations import (ALIASES, BATCHABLE, KINDS, Command, Operation, PointStruct, PointsSelector,
                                PointVectors)

FORMAT = b"1"
JSON = b"application/json"
MSGPACK = b"application/msgpack"
FORMAT_HEADER = "pointlog-format"
CONTENT_TYPE_HEADER = "content-type"


class DecodeError(BadRequest):
    """A record that can never be applied; it goes to the dead-letter topic."""


# ---- the value -----------------------------------------------------------------------

def to_wire(op: Operation, binary: bool = False) -> dict:
    """The WAL value of an operation; ``binary`` writes vectors as float32 bytes (msgpack)."""
    out = {"op": op.kind}
    for f in dataclasses.fields(op):
        value = getattr(op, f.name)
        if value is None or (f.default is not dataclasses.MISSING and value == f.default):
            continue  # omitted means the default, so records stay as a client would write them
        _writer(f.type)(out, _name(f), value, binary)
    return out


def from_wire(value) -> Operation:
    """An operation from a WAL value; raises DecodeError naming what is wrong."""
    try:
        return _from_wire(value)
    except DecodeError:
        raise
    except BadRequest as exc:  # from the shared value readers, in the REST wording
        raise DecodeError(_reworded(exc.message)) from None


def _from_wire(value) -> Operation:
    if not isinstance(value, dict):
        raise DecodeError("record value must be a JSON object")
    kind = value.get("op")
    cls = KINDS.get(ALIASES.get(kind, kind)) if isinstance(kind, str) else None
    if cls is None:
        raise DecodeError(f"unknown operation kind {kind!r}")
    known = {"op"}
    args = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        names = (_name(f), *f.metadata.get("aliases", ()))
        known.update(names)
        read = _reader(f)
        if read is not None:  # a reader of several keys, or of the whole value
            known.update(getattr(read, "keys", ()))
            args[f.name] = read(value)
            continue
        present = next((n for n in names if value.get(n) is not None), None)
        if present is None:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DecodeError(f"{kind}: missing field `{names[0]}`")
            continue
        args[f.name] = _read_plain(f, value[present], present)
    if cls is not KINDS["create_collection"]:  # its value is the whole Qdrant config body
        unknown = sorted(set(value) - known)
        if unknown:
            raise DecodeError(f"{kind}: unknown field `{unknown[0]}`")
    op = cls(**args)
    op.check()
    return op


def _name(f: dataclasses.Field) -> str:
    return f.metadata.get("wire", f.name)


def _reworded(message: str) -> str:
    for prefix in ("Format error in JSON body: ", "Validation error in JSON body: "):
        if message.startswith(prefix):
            return "invalid record value: " + message[len(prefix):]
    return message


# Field types read from several keys, or from the whole value.

def _read_selector(value: dict) -> PointsSelector:
    if value.get("points") is not None:
        return PointsSelector(ids=[parse_id(i) for i in values.require_list(value["points"], "points")])
    if value.get("filter") is not None:
        return PointsSelector(filter=values.parse_filter(value["filter"], "filter"))
    raise DecodeError(f"{value.get('op')}: needs either `points` (a list of ids) or `filter`")


_read_selector.keys = ("points", "filter")


def _read_points(value: dict) -> list:
    if value.get("batch") is not None:
        return values.points_from_batch(value["batch"])
    if value.get("points") is not None:
        return values.points_from_list(value["points"])
    raise DecodeError(f"{value.get('op')}: expected `points` or `batch`")


_read_points.keys = ("points", "batch")


def _read_config(value: dict) -> CollectionConfig:
    return CollectionConfig.from_body({k: v for k, v in value.items() if k != "op"})


def _read_operations(value: dict) -> list:
    raw = values.require_list(value.get("operations"), "operations")
    ops = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or len(item) != 1:
            raise DecodeError(f"operations[{i}] must be an object with exactly one operation kind")
        (kind, body), = item.items()
        kind = ALIASES.get(kind, kind)
        if kind not in BATCHABLE:
            raise DecodeError(f"operations[{i}]: `{kind}` cannot be part of a batch, expected one of "
                              f"{', '.join(f'`{k}`' for k in BATCHABLE)}")
        if not isinstance(body, dict):
            raise DecodeError(f"operations[{i}].{kind} must be an object")
        ops.append(_from_wire({**body, "op": kind}))
    return ops


_read_operations.keys = ("operations",)

_READERS = {
    PointsSelector: _read_selector,
    list[PointStruct]: _read_points,
    list[PointVectors]: lambda value: values.point_vectors_from_list(value.get("points")),
    CollectionConfig: _read_config,
    list[Operation]: _read_operations,
}
_READERS[list[PointVectors]].keys = ("points",)


def _reader(f: dataclasses.Field):
    return _READERS.get(f.type)


def _read_plain(f: dataclasses.Field, raw, where: str):
    if f.metadata.get("filter"):
        return values.parse_filter(raw, where)
    kinds = f.type.__args__ if isinstance(f.type, types.UnionType) else (f.type,)
    for kind in kinds:
        if kind is type(None):
            continue
        if typing.get_origin(kind) is list:  # a JSON list of plain values
            item = typing.get_args(kind)[0]
            if isinstance(raw, list) and all(isinstance(x, item) for x in raw):
                return raw
        elif isinstance(raw, kind) and not isinstance(raw, bool):
            return raw
    expected = " or ".join(_TYPE_NAMES.get(k, str(k)) for k in kinds if k is not type(None))
    raise DecodeError(f"invalid record value: {where} must be {expected}")


_TYPE_NAMES = {str: "a string", dict: "an object", list[str]: "a list of strings", list[dict]: "a list of objects",
               int: "an integer"}


# Writers: (out, name, value, binary) -> None

def _write_plain(out: dict, name: str, value, binary: bool) -> None:
    out[name] = value


def _write_selector(out: dict, name: str, sel: PointsSelector, binary: bool) -> None:
    if sel.ids is not None:
        out["points"] = sel.ids
    else:
        out["filter"] = sel.filter


def _write_points(out: dict, name: str, points: list, binary: bool) -> None:
    rows = []
    for p in points:
        row = {"id": p.id, "vector": values.vectors_to_json(p.vectors, binary)}
        if getattr(p, "payload", None) is not None:
            row["payload"] = p.payload
        rows.append(row)
    out[name] = rows


def _write_config(out: dict, name: str, config: CollectionConfig, binary: bool) -> None:
    out.update(config.to_json())


def _write_operations(out: dict, name: str, ops: list, binary: bool) -> None:
    nested = []
    for op in ops:
        body = to_wire(op, binary)
        nested.append({body.pop("op"): body})
    out[name] = nested


_WRITERS = {
    PointsSelector: _write_selector,
    list[PointStruct]: _write_points,
    list[PointVectors]: _write_points,
    CollectionConfig: _write_config,
    list[Operation]: _write_operations,
}


def _writer(kind):
    return _WRITERS.get(kind, _write_plain)


# ---- the record ----------------------------------------------------------------------

def encode(command: Command, binary: bool = True) -> tuple:
    """Return (key, value, headers) for a command."""
    wire = to_wire(command.op, binary)
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
        raise DecodeError(_reworded(exc.message)) from None
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
        _require_json(op)
    return Command(collection, op)


def _require_json(op: Operation) -> None:
    """msgpack can carry bytes or non-string keys where JSON cannot; a payload, filter
    or config holding them could never be returned to a client."""
    try:
        for doc in _json_parts(op):
            orjson.dumps(doc)
    except TypeError as exc:
        raise DecodeError(f"payload is not JSON: {exc}") from None


def _json_parts(op: Operation):
    """Everything of an operation that must be JSON: all but its vectors."""
    for f in dataclasses.fields(op):
        value = getattr(op, f.name)
        if isinstance(value, PointsSelector):
            yield value.filter
        elif isinstance(value, CollectionConfig):
            yield value.to_json()
        elif f.type == list[PointStruct]:
            yield [p.payload for p in value]
        elif f.type == list[Operation]:
            for inner in value:
                yield from _json_parts(inner)
        elif f.type != list[PointVectors]:
            yield value
