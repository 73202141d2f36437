"""Qdrant payload key paths: parsing, reading, and the two path-aware payload writes.

A key path addresses values inside a JSON payload, as Qdrant's filters, ``set_payload``
(``key``) and ``delete_payload`` (``keys``) use it::

    city                 top-level key
    address.city         key inside an object
    tags[]               every element of an array
    offers[].price       a key inside every element of an array
    offers[0].price      a key inside one element
    "a.b".c              a quoted key may hold any character but ``"`` and ``\\``

A parsed path is a tuple of steps: ``str`` (object key), ``int`` (array index) or
``None`` (``[]``, all elements). The first step is always a key, as on the server.

Arrays are only entered where the path says so (``[]`` or ``[n]``). Whatever the path
ends on is returned as is, an array included: a filter then decides that "an array
matches if any of its elements does", while ``values_count``/``is_empty`` need the
array itself.

The write semantics follow the Qdrant server (``JsonPath::value_set`` /
``value_remove``), which qdrant-client's local mode reproduces: they are part of the
deterministic ``apply`` so they must never depend on anything but their inputs.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable

from storage.errors import BadRequest

Step = str | int | None
Path = tuple[Step, ...]

_MISSING = object()
_U64_MAX = 2**64 - 1

# The server's grammar (nom parser in lib/segment/src/json_path/parse.rs): a raw key is
# one or more alphanumeric, '_' or '-' characters (Unicode letters and digits included,
# as Rust's char::is_alphanumeric); a quoted key is anything without '"' or '\'.
# Python's ``\w`` is exactly "alphanumeric or '_'", so "[\w-]" is that set.
_RAW_KEY = r"[\w-]+"
_QUOTED_KEY = r'"[^"\\]*"'
_FIRST = re.compile(rf"{_RAW_KEY}|{_QUOTED_KEY}")
_NEXT = re.compile(rf"\.(?:{_RAW_KEY}|{_QUOTED_KEY})|\[\d*\]")


class InvalidPath(BadRequest):
    """A key that is not a valid Qdrant json path (HTTP 400, like a format error)."""

    def __init__(self, key: object):
        super().__init__(f"Format error in JSON body: Invalid json path: '{key}'")
        self.key = key


def _key_of(token: str) -> str:
    return token[1:-1] if token.startswith('"') else token


@lru_cache(maxsize=4096)
def _parse(key: str) -> Path:
    m = _FIRST.match(key)
    if m is None:
        raise InvalidPath(key)
    steps: list[Step] = [_key_of(m.group())]
    pos = m.end()
    while pos < len(key):
        m = _NEXT.match(key, pos)
        if m is None:
            raise InvalidPath(key)
        token = m.group()
        if token[0] == ".":
            steps.append(_key_of(token[1:]))
        elif token == "[]":
            steps.append(None)
        else:
            digits = token[1:-1]
            # "\d" would also take non-ASCII digits, which the server's digit1 does not.
            if not digits.isascii() or int(digits) > _U64_MAX:
                raise InvalidPath(key)
            steps.append(int(digits))
        pos = m.end()
    return tuple(steps)


def parse_path(key: str | Path) -> Path:
    """Parse a key path (already-parsed tuples pass through); raise InvalidPath (400)."""
    if isinstance(key, tuple):
        return key
    if not isinstance(key, str):
        raise InvalidPath(key)
    return _parse(key)


def format_path(path: Path) -> str:
    """The canonical spelling of a parsed path (quotes keys that need them)."""
    out = []
    for i, step in enumerate(path):
        if step is None:
            out.append("[]")
        elif isinstance(step, int):
            out.append(f"[{step}]")
        else:
            text = step if re.fullmatch(_RAW_KEY, step) else f'"{step}"'
            out.append(text if i == 0 else "." + text)
    return "".join(out)


# --------------------------------------------------------------------------- reading

def get_values(payload: dict, path: str | Path) -> list:
    """Every value ``path`` reaches in ``payload``, arrays at the end left unflattened.

    A key present with ``null`` yields ``None``; a missing key yields nothing, so an
    empty list means "the path reaches nothing".
    """
    return compile_getter(parse_path(path))(payload)


def leaf_values(found: list) -> list:
    """What a getter found, with arrays opened one level: the values ``order_by``,
    facets and groups count one by one."""
    return [v for value in found for v in (value if isinstance(value, list) else [value])]


def compile_getter(path: Path) -> Callable[[dict], list]:
    """A function ``payload -> list of values`` for one parsed path, built once.

    Filters call this per point, so the common one- and two-key paths avoid the generic
    loop entirely.
    """
    if len(path) == 1:
        (k,) = path

        def get_one(payload: dict) -> list:
            v = payload.get(k, _MISSING)
            return [] if v is _MISSING else [v]

        return get_one

    if len(path) == 2 and isinstance(path[1], str):
        k1, k2 = path

        def get_two(payload: dict) -> list:
            obj = payload.get(k1)
            if isinstance(obj, dict):
                v = obj.get(k2, _MISSING)
                if v is not _MISSING:
                    return [v]
            return []

        return get_two

    first, rest = path[0], path[1:]

    def get_many(payload: dict) -> list:
        v = payload.get(first, _MISSING)
        if v is _MISSING:
            return []
        current = [v]
        for step in rest:
            found = []
            if step is None:
                for v in current:
                    if isinstance(v, list):
                        found.extend(v)
            elif isinstance(step, str):
                for v in current:
                    if isinstance(v, dict):
                        x = v.get(step, _MISSING)
                        if x is not _MISSING:
                            found.append(x)
            else:
                for v in current:
                    if isinstance(v, list) and step < len(v):
                        found.append(v[step])
            if not found:
                return found
            current = found
        return current

    return get_many


# --------------------------------------------------------------------------- writing

def clone_json(value: Any) -> Any:
    """Deep copy of a JSON value; much cheaper than copy.deepcopy for plain JSON."""
    if isinstance(value, dict):
        return {k: clone_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone_json(v) for v in value]
    return value


def merge_payload(dest: dict, src: dict) -> dict:
    """Qdrant's set_payload merge: top-level keys of ``src`` replace those of ``dest``,
    and a ``null`` value removes the key instead of storing null."""
    for k, v in src.items():
        if v is None:
            dest.pop(k, None)
        else:
            # copied, so the request body (or a sibling written by a `[]` path) never
            # shares mutable objects with the stored payload
            dest[k] = clone_json(v)
    return dest


def set_at_path(payload: dict, key: str | Path | None, value: dict) -> None:
    """set_payload with an optional ``key``: merge ``value`` into the object at ``key``.

    Mutates ``payload`` in place. Like the server:
    - a missing or non-object value on the way (or at the end) becomes an object;
    - ``a[n]`` on a non-array makes it ``[]`` (and writes nothing); an index past the
      end writes nothing;
    - ``a[]`` on a non-array makes it ``[]``; on an array it writes into every element.
    """
    if key is None:
        merge_payload(payload, value)
        return
    path = parse_path(key)
    _set_in_map(payload, path[0], path[1:], value)


def _set_in_map(obj: dict, k: str, rest: Path, value: dict) -> None:
    obj[k] = _set(obj.get(k), rest, value)


def _set(dest: Any, path: Path, value: dict) -> Any:
    """Write into ``dest`` and return what should now stand in its place."""
    if not path:
        if not isinstance(dest, dict):
            dest = {}
        merge_payload(dest, value)
        return dest
    head, rest = path[0], path[1:]
    if isinstance(head, str):
        if not isinstance(dest, dict):
            dest = {}
        _set_in_map(dest, head, rest, value)
        return dest
    if not isinstance(dest, list):
        return []
    if head is None:
        for i, item in enumerate(dest):
            dest[i] = _set(item, rest, value)
    elif head < len(dest):
        dest[head] = _set(dest[head], rest, value)
    return dest


def delete_at_path(payload: dict, key: str | Path) -> None:
    """delete_payload of one key path; mutates ``payload``; a path reaching nothing is a no-op.

    ``a.b`` removes ``b`` inside ``a``; ``a[].b`` removes ``b`` in every element;
    ``a[]`` empties the array. A path ending in an index (``a[0]``) deletes nothing:
    the server refuses to remove array elements by position because it is not
    idempotent (replaying it would remove a second element).
    """
    path = parse_path(key)
    if len(path) == 1:
        payload.pop(path[0], None)
        return
    v = payload.get(path[0], _MISSING)
    if v is not _MISSING:
        _remove(path[1], path[2:], v)


def _remove(head: Step, rest: Path, value: Any) -> None:
    if rest:
        if isinstance(head, str):
            if isinstance(value, dict) and head in value:
                _remove(rest[0], rest[1:], value[head])
        elif isinstance(value, list):
            if head is None:
                for item in value:
                    _remove(rest[0], rest[1:], item)
            elif head < len(value):
                _remove(rest[0], rest[1:], value[head])
        return
    if isinstance(head, str):
        if isinstance(value, dict):
            value.pop(head, None)
    elif head is None and isinstance(value, list):
        value.clear()
