"""Reads over a collection: retrieve, scroll, count, and the shape of returned records.

Records are plain dicts ready for JSON; vectors stay float32 numpy arrays so the
response encoder writes them without a Python float per element.
"""
from storage.collection import Collection, Point
from storage.config import DEFAULT_VECTOR
from storage.errors import BadRequest, Unprocessable
from storage.filters import Filter
from storage.ids import encode_id, parse_id
from storage.operations import field_type
from storage.filters import parse_datetime
from storage.paths import compile_getter, leaf_values, parse_path
from storage.vectors.sparse import SparseVector


class Shape:
    """What of a point to return: ``with_payload`` and ``with_vector(s)`` as Qdrant takes them."""

    def __init__(self, with_payload=True, with_vector=False):
        self.payload = _payload_selector(with_payload)
        self.vector = _vector_selector(with_vector)

    def check(self, col: Collection) -> None:
        """Vector names that the collection lacks are an error, as in Qdrant."""
        if isinstance(self.vector, set):
            for name in sorted(self.vector):
                if name not in col.config.names():
                    raise BadRequest(f"Wrong input: Not existing vector name error: {name}")

    @staticmethod
    def from_body(body: dict, with_payload=True) -> "Shape":
        """From a read body; ``with_payload`` is the endpoint's default (true for
        retrieve and scroll, false for searches)."""
        return Shape(body.get("with_payload", with_payload), body.get("with_vector", body.get("with_vectors", False)))

    def record(self, col: Collection, point: Point) -> dict:
        out = {"id": point.id}
        if self.payload is not None:
            out["payload"] = self.payload(point.payload)
        if self.vector is not None:
            out["vector"] = _vector_output(col, point.key, self.vector)
        return out


def _payload_selector(value):
    if value is True:
        return lambda p: p
    if value is False or value is None:
        return None
    if isinstance(value, list):
        tree = _selector_tree(_key_list(value, "with_payload"))
        return lambda p: _include(p, tree)
    if isinstance(value, dict):
        if isinstance(value.get("include"), list) and len(value) == 1:
            tree = _selector_tree(_key_list(value["include"], "with_payload.include"))
            return lambda p: _include(p, tree)
        if isinstance(value.get("exclude"), list) and len(value) == 1:
            tree = _selector_tree(_key_list(value["exclude"], "with_payload.exclude"))
            return lambda p: _exclude(p, tree)
    raise BadRequest("Format error in JSON body: with_payload must be a bool, a list of keys, "
                     "or {\"include\": [...]} / {\"exclude\": [...]}")


def _key_list(value: list, where: str) -> list:
    if not all(isinstance(k, str) for k in value):
        raise BadRequest(f"Format error in JSON body: {where} must be a list of strings")
    return value


def _selector_tree(keys: list) -> dict:
    """Key paths merged into a prefix tree: ``a.b``, ``c[]`` -> {"a": {"b": True}, "c": {None: True}};
    True selects everything below it."""
    tree: dict = {}
    for key in keys:
        *parents, last = parse_path(key)
        node = tree
        for step in parents:
            node = node.setdefault(step, {})
            if node is True:  # a shorter path already selects all of it
                break
        else:
            node[last] = True
    return tree


# The server filters a payload by walking it with the selector paths: an object keeps
# the keys on a path, an array is only entered by `[]` (`a[0]` selects nothing inside
# it), and a scalar where the path goes on is kept (include) or left alone (exclude).

def _include(value, tree: dict):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            sub = tree.get(key)
            if sub is not None:
                out[key] = item if sub is True else _include(item, sub)
        return out
    if isinstance(value, list):
        sub = tree.get(None)
        if sub is None:
            return []
        return value if sub is True else [_include(item, sub) for item in value]
    return value


def _exclude(value, tree: dict):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            sub = tree.get(key)
            if sub is None:
                out[key] = item
            elif sub is not True:
                out[key] = _exclude(item, sub)
        return out
    if isinstance(value, list):
        sub = tree.get(None)
        if sub is None:
            return value
        return [] if sub is True else [_exclude(item, sub) for item in value]
    return value


def _vector_selector(value):
    if value is True:
        return True
    if value is False or value is None:
        return None
    if isinstance(value, list) and all(isinstance(n, str) for n in value):
        return set(value)
    raise BadRequest("Format error in JSON body: with_vector must be a bool or a list of vector names")


def _vector_output(col: Collection, key: bytes, selection):
    vectors = {n: v.to_response() if isinstance(v, SparseVector) else v for n, v in col.point_vectors(key).items()}
    if selection is not True:
        vectors = {n: v for n, v in vectors.items() if n in selection}
    # A plain list only when the set returned is exactly the unnamed vector.
    if set(vectors) == {DEFAULT_VECTOR}:
        return vectors[DEFAULT_VECTOR]
    return vectors


def retrieve(col: Collection, ids: list, shape: Shape) -> list:
    shape.check(col)
    out = []
    for pid in dict.fromkeys(parse_id(i) for i in ids):
        point = col.points.get(encode_id(pid))
        if point is not None:
            out.append(shape.record(col, point))
    return out


def matching_keys(col: Collection, flt: Filter) -> list:
    """Keys of the points matching a compiled filter, in scroll order. The payload
    index narrows the points the filter is evaluated on (storage/filters/payload_index.py)."""
    plan = col.payload_index.plan(flt)
    keep = holds(col, flt)
    if plan is None:
        return [key for key in col.order if keep(key)]
    keys = sorted(plan.keys)
    return keys if plan.exact else [key for key in keys if keep(key)]


def holds(col: Collection, flt: Filter):
    """``key -> bool``: whether the filter matches the point with that key."""
    points, names, matches = col.points, col.vector_names_view(), flt.matches

    def matches_key(key: bytes) -> bool:
        point = points[key]
        names.key = key
        return matches(point.id, point.payload, names)

    return matches_key


def scroll(col: Collection, offset, limit: int, raw_filter, shape: Shape) -> dict:
    shape.check(col)
    limit = _limit(limit, default=10)
    start = None if offset is None else encode_id(parse_id(offset))
    flt = col.compile_filter(raw_filter)
    page, next_offset = [], None
    for key in scroll_keys(col, flt, start, limit + 1):
        point = col.points[key]
        if len(page) == limit:
            next_offset = point.id
            break
        page.append(shape.record(col, point))
    return {"points": page, "next_page_offset": next_offset}


def scroll_keys(col: Collection, flt: Filter | None, start: bytes | None, want: int):
    """Keys of matching points from ``start`` on, in scroll order, lazily: the caller
    stops after ``want``."""
    keys = col.order if start is None else col.order.islice(col.order.bisect_left(start))
    if flt is None:
        return iter(keys)
    keep = holds(col, flt)
    plan = col.payload_index.plan(flt)
    if plan is None:
        return (key for key in keys if keep(key))
    found = plan.keys
    # Sorting m candidates costs about m log m; walking the order until ``want`` of
    # them turn up, about want * n / m steps: sort only the few.
    if len(found) ** 2 <= want * len(col):
        keys = sorted(found) if start is None else sorted(key for key in found if key >= start)
    else:
        keys = (key for key in keys if key in found)
    return keys if plan.exact else (key for key in keys if keep(key))


def parse_order_by(raw) -> tuple:
    """(key, descending, start_from) of a scroll's ``order_by``: a key or {key, direction, start_from}."""
    if isinstance(raw, str):
        raw = {"key": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
        raise BadRequest("Format error in JSON body: order_by must be a payload key or {key, direction, start_from}")
    unknown = set(raw) - {"key", "direction", "start_from"}
    if unknown:
        raise BadRequest(f"Format error in JSON body: order_by: unknown field `{sorted(unknown)[0]}`")
    direction = raw.get("direction") or "asc"
    if direction not in ("asc", "desc"):
        raise BadRequest(f"Format error in JSON body: order_by.direction: unknown variant `{direction}`, "
                         "expected `asc` or `desc`")
    start = raw.get("start_from")
    if start is not None:
        start = order_value(start)
        if start is None:
            raise BadRequest("Format error in JSON body: order_by.start_from must be a number or a datetime")
    parse_path(raw["key"])
    return raw["key"], direction == "desc", start


def check_order_index(col: Collection, order_by) -> None:
    """``order_by`` needs a payload index with range lookups on its key, as in Qdrant."""
    key, _descending, _start = parse_order_by(order_by)
    schema = col.payload_schema.get(key)
    if field_type(schema) not in ("integer", "float", "datetime") or (isinstance(schema, dict) and schema.get("range") is False):
        raise BadRequest("Bad request: No range index for `order_by` key found. "
                         "Please create one to use `order_by`.")


def order_value(value):
    """What a payload value sorts by: a number as is, a datetime string as microseconds
    since the epoch (UTC), anything else not at all."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    return parse_datetime(value) if isinstance(value, str) else None


def scroll_by_value(col: Collection, order_by, raw_filter, limit, shape: Shape) -> dict:
    """Points in the order of a payload value; a point appears once per distinct value it
    holds there. Equal values go in id order. There is no next page offset: the next
    page starts from the last value seen (``start_from``), as in Qdrant."""
    shape.check(col)
    limit = _limit(limit, default=10)
    key, descending, start = parse_order_by(order_by)
    getter = compile_getter(parse_path(key))
    flt = col.compile_filter(raw_filter)
    keep = holds(col, flt) if flt is not None and not flt.matches_all else None
    entries = []
    for pkey in col.order:
        if keep is not None and not keep(pkey):
            continue
        values = set()
        for value in leaf_values(getter(col.points[pkey].payload)):
            ordered = order_value(value)
            if ordered is not None:
                values.add(ordered)
        for value in values:
            if start is None or (value <= start if descending else value >= start):
                entries.append((value, pkey))
    entries.sort(key=lambda entry: ((-entry[0] if descending else entry[0]), entry[1]))
    page = []
    for value, pkey in entries[:limit]:
        record = shape.record(col, col.points[pkey])
        record["order_value"] = value
        page.append(record)
    return {"points": page, "next_page_offset": None}


_FACET_TYPES = (bool, int, str)  # the position is a type tag: True and 1 are different facet values


def facet(col: Collection, key: str, raw_filter, limit) -> dict:
    """Values of a payload key and how many points hold each (a point counts once per
    value), most frequent first, then by value. UUID strings count in one spelling."""
    limit = _limit(limit, default=10)
    getter = compile_getter(parse_path(key))
    flt = col.compile_filter(raw_filter)
    keep = None if flt is None or flt.matches_all else holds(col, flt)
    keys = col.order if keep is None else (k for k in col.order if keep(k))
    counts: dict = {}
    for pkey in keys:
        values = set()
        for value in leaf_values(getter(col.points[pkey].payload)):
            if type(value) not in _FACET_TYPES:
                continue
            if isinstance(value, str):
                value = _uuid_spelling(value)
            values.add((_FACET_TYPES.index(type(value)), value))
        for tagged in values:
            counts[tagged] = counts.get(tagged, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return {"hits": [{"value": value, "count": n} for (_tag, value), n in ranked]}


def facet_rank(value) -> int:
    """The type tag ``facet`` ranks a value by (what merges facets of shards needs)."""
    return _FACET_TYPES.index(type(value))


def _uuid_spelling(text: str) -> str:
    try:
        return str(parse_id(text)) if len(text) >= 32 else text
    except BadRequest:
        return text


def count(col: Collection, raw_filter) -> int:
    flt = col.compile_filter(raw_filter)
    if flt is None or flt.matches_all:
        return len(col)
    plan = col.payload_index.plan(flt)
    if plan is not None and plan.exact:
        return len(plan.keys)
    keep = holds(col, flt)
    return sum(1 for key in (col.points if plan is None else plan.keys) if keep(key))


def positive(value, where: str, default: int) -> int:
    """A count of at least 1 (a limit, a group size), as Qdrant validates it."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"Format error in JSON body: {where} must be a positive integer")
    if value < 0:
        raise BadRequest(f"Format error in JSON body: invalid value: integer `{value}`, expected usize")
    if value == 0:
        raise Unprocessable(f"Validation error in JSON body: [{where}: value 0 invalid, must be 1 or larger]")
    return value


def _limit(value, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("Format error in JSON body: limit must be a positive integer")
    if value < 0:  # serde refuses it for a usize: a format error, 400
        raise BadRequest(f"Format error in JSON body: invalid value: integer `{value}`, expected usize")
    if value == 0:  # the validator refuses it: 422
        raise Unprocessable("Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]")
    return value
