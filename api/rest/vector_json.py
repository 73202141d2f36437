"""Point-write bodies decoded with simdjson: dense vectors go from the JSON text
straight into float32 arrays, with no Python float per component.

Python clients send vectors as ``json.dumps`` writes them (~18 characters per
component); decoding them into lists of Python floats and converting those to
numpy was the largest cost of an upsert. simdjson parses the numbers into its
own tape and copies a whole vector column out in one call (``as_buffer``).

Only the plain shapes are taken this way: ``{"batch": {"vectors": [[..], ..]}}``
(or named columns) and ``{"points": [{"vector": [..]}, ..]}`` (or named
vectors), every vector a flat, non-empty list of numbers. Anything else (a
sparse vector, a multivector, a bool among the numbers, a duplicated key, a body
simdjson refuses) returns None and the caller decodes the body with orjson as
before, so every error keeps its wording. Everything but the vectors becomes the
same Python values orjson gives.
"""
import numpy as np
import orjson
import simdjson


class _Unplain(Exception):
    """Not a shape decoded here: the caller falls back to orjson."""


def loads(raw: bytes) -> dict | None:
    """The body as Python values with its dense vectors as float32 arrays, or None."""
    if raw.startswith(b"\xef\xbb\xbf"):  # simdjson skips a byte order mark; orjson (and Qdrant) refuse it
        return None
    # A parser per body: proxies of a parser that is reused must all be gone first,
    # and a traceback holding one would break every later request.
    try:
        doc = simdjson.Parser().parse(raw)
    except (ValueError, TypeError, RuntimeError, UnicodeError):
        return None
    try:
        if not isinstance(doc, simdjson.Object):
            return None
        body = {}
        for key, value in _items(doc):
            if key == "batch" and isinstance(value, simdjson.Object):
                body[key] = _batch(value)
            elif key == "points" and isinstance(value, simdjson.Array):
                body[key] = [_point(p) for p in value]
            else:
                body[key] = _plain(value)
    except (_Unplain, ValueError, TypeError, KeyError, RuntimeError):
        return None
    # Flattening cannot tell [[1], [2]] from [1, 2]: a vector holding arrays must not
    # pass for a flat one. Every "[" of the text opens an array or sits in a string
    # (an escaped "\u005b" would break that, so such a body takes the other path):
    # the decoded body, written back with each vector as the empty arrays of its
    # shape, must hold exactly as many.
    # A lone backslash is found by memchr; the six-byte search is slow (~1 ms per batch).
    if b"\\" in raw and (b"\\u005b" in raw or b"\\u005B" in raw):
        return None
    text = np.frombuffer(raw, dtype=np.uint8)  # numpy counts bytes several times faster than bytes.count
    if np.count_nonzero(text == _OPEN) != orjson.dumps(body, default=_skeleton).count(b"["):
        return None
    return body


_OPEN = ord("[")


def _skeleton(value):
    """A decoded vector as the arrays it was written with, without its numbers."""
    if isinstance(value, np.ndarray):
        return [] if value.ndim == 1 else [[]] * len(value)
    raise TypeError


def _items(obj: "simdjson.Object") -> list:
    keys = list(obj)
    if len(set(keys)) != len(keys):  # orjson keeps the last, simdjson's lookup the first
        raise _Unplain
    return [(k, obj[k]) for k in keys]


def _plain(value):
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _batch(batch: "simdjson.Object") -> dict:
    out = {}
    for key, value in _items(batch):
        if key == "vectors" and isinstance(value, simdjson.Array):
            out[key] = _matrix(value)
        elif key == "vectors" and isinstance(value, simdjson.Object):
            out[key] = {name: _matrix(col) if isinstance(col, simdjson.Array) else _plain(col)
                        for name, col in _items(value)}
        else:
            out[key] = _plain(value)
    return out


def _point(point) -> dict:
    if not isinstance(point, simdjson.Object):
        raise _Unplain
    out = {}
    for key, value in _items(point):
        if key in ("vector", "vectors") and isinstance(value, simdjson.Array):
            out[key] = _vector(value)
        elif key in ("vector", "vectors") and isinstance(value, simdjson.Object):
            out[key] = {name: _vector(v) if isinstance(v, simdjson.Array) else _plain(v) for name, v in _items(value)}
        else:
            out[key] = _plain(value)
    return out


def _floats(array: "simdjson.Array") -> np.ndarray:
    """Every number of the (nested) array, in order, as float32. simdjson raises
    for anything that is not a number, bools included."""
    flat = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused by the parsers
        return flat.astype(np.float32)


def _vector(array: "simdjson.Array") -> np.ndarray:
    flat = _floats(array)
    if len(flat) == 0 or len(flat) != len(array):  # empty, or nested (a multivector)
        raise _Unplain
    return flat


def _matrix(column: "simdjson.Array") -> np.ndarray:
    """A column of equally long flat vectors as one (rows, dim) array."""
    rows = len(column)
    if rows == 0:
        raise _Unplain
    flat = _floats(column)
    dim = len(flat) // rows
    if dim == 0 or len(flat) != rows * dim or any(len(row) != dim for row in column):
        raise _Unplain
    return flat.reshape(rows, dim)
