"""Qdrant filters: validation of the REST JSON, and one evaluator for every endpoint.

``compile_filter(raw)`` checks a filter exactly once per request and turns it into a
tree of small closures; ``Filter.matches(point_id, payload, vector_names)`` then runs
per point without looking at the JSON again. Scroll, count, search/query,
delete-by-filter and every payload/vector update by filter must go through this one
module, so a filter can never select different points depending on the endpoint.

Semantics are those of the Qdrant server, as reproduced by qdrant-client's local mode
(``qdrant_client/local/payload_filters.py``), which ``tests/unit/test_filters.py``
uses as a differential oracle. In short:

- ``must`` all, ``must_not`` none, ``should`` at least one (an empty ``should`` list
  constrains nothing), ``min_should`` at least ``min_count`` (>= 1) of its
  conditions. Each clause may be one condition or a list; a filter nests as a
  condition.
- Field conditions read the values a key path reaches (see ``storage.paths``). Value
  conditions (match, range, geo) hold if any value does; an array value counts as its
  elements (one level). ``null`` never satisfies a value condition, ``except``
  included.
- ``match.value``/``any``/``except`` are type-strict: ``1`` is neither ``true`` nor
  ``1.0``, and a float payload value never equals anything (operands are only bool,
  integer or string).
- ``text``/``text_any``/``phrase``: without a full-text index (pointlog has none), the
  server splits both sides into lowercased alphanumeric words: ``text`` needs every
  query word, ``text_any`` one, ``phrase`` all of them consecutively; an empty query
  matches nothing.
- Datetime ranges compare instants; strings without an offset are UTC, a bare date
  is midnight UTC.
- ``values_count`` counts an array's elements, 1 for any other value, 0 for
  null/missing. ``is_empty``: missing, null or ``[]``; ``is_null``: null, or an array
  holding a null.
- ``has_id``/``has_vector``/``slice`` never hold inside ``nested`` (elements have no
  id or vectors).

Errors follow the server's split: a body that does not have the right shape is a
400 ``Format error in JSON body: ...``; a well-formed value the validator refuses
(``min_count: 0``, an open polygon, a field condition with no condition) is a 422
``Validation error in JSON body: [...]``.
"""
from __future__ import annotations

import math
import re
import sys
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Collection

from storage.errors import BadRequest, Unprocessable
from storage.ids import PointId, parse_id
from storage.paths import InvalidPath, Path, compile_getter, parse_path

__all__ = ["Filter", "compile_filter", "parse_datetime"]

# A compiled condition: (point_id, payload, vector_names) -> bool. Inside ``nested``
# the point id is None and vector_names is empty.
Matcher = Callable[[Any, dict, Collection[str]], bool]

_MISSING = object()
_NO_VECTORS: frozenset[str] = frozenset()
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = sys.float_info.max


class Filter:
    """A compiled filter.

    ``matches(point_id, payload, vector_names) -> bool``: ``point_id`` as
    ``storage.ids.parse_id`` returns it (int or lowercase hyphenated UUID str),
    ``payload`` a dict (``{}`` when the point has none), ``vector_names`` the names of
    the vectors the point has (``""`` for the unnamed default vector), anything
    supporting ``in``.

    ``matches_all``: the filter constrains nothing (``{}``, ``{"should": []}``...),
    callers may skip evaluating it.
    ``candidate_ids``: when the top-level ``must`` holds ``has_id`` conditions, the
    only ids that can match (a frozenset), so callers can look those points up
    instead of scanning; else None.
    """

    __slots__ = ("matches", "matches_all", "candidate_ids", "raw")

    def __init__(self, matcher: Matcher, candidate_ids: frozenset | None, raw: dict):
        # The closure itself is the attribute: no bound-method hop per point.
        self.matches: Matcher = matcher
        self.matches_all = matcher is _always
        self.candidate_ids = candidate_ids
        self.raw = raw

    def __repr__(self) -> str:
        return f"Filter({self.raw!r})"


def compile_filter(raw: dict | None, where: str = "filter") -> Filter | None:
    """Validate a REST filter (parsed JSON) and compile it; None for no filter.

    Raises BadRequest (400) for malformed filters and Unprocessable (422) for values
    the server's validator rejects. ``where`` names the filter in error messages
    (the request field holding it).
    """
    if raw is None:
        return None
    matcher = _filter(raw, where)
    return Filter(matcher, _candidate_ids(raw), raw)


# ============================================================================ errors

def _format_error(where: str, detail: str) -> BadRequest:
    return BadRequest(f"Format error in JSON body: {where}: {detail}")


def _validation_error(where: str, detail: str) -> Unprocessable:
    return Unprocessable(f"Validation error in JSON body: [{where}: {detail}]")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean `true`" if value else "boolean `false`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, list):
        return "a sequence"
    return "a map"


def _expect_object(raw: Any, where: str, what: str) -> dict:
    if not isinstance(raw, dict):
        raise _format_error(where, f"invalid type: {_describe(raw)}, expected {what}")
    return raw


def _check_fields(raw: dict, allowed: tuple[str, ...], where: str) -> None:
    for name in raw:
        if name not in allowed:
            expected = ", ".join(f"`{a}`" for a in allowed)
            raise _format_error(where, f"unknown field `{name}`, expected one of {expected}")


def _require(raw: dict, name: str, where: str) -> Any:
    value = raw.get(name)
    if value is None:
        raise _format_error(where, f"missing field `{name}`")
    return value


def _is_number(v: Any) -> bool:
    """A finite JSON number usable as a float (bool is not a number in a payload)."""
    t = type(v)
    if t is float:
        return math.isfinite(v)
    # an int beyond the float range would overflow the geometry, so it is no number here
    return t is int and -_FLOAT_MAX <= v <= _FLOAT_MAX


def _integer(raw: Any, where: str, *, minimum: int | None = None) -> int:
    if type(raw) is not int:
        raise _format_error(where, f"invalid type: {_describe(raw)}, expected an integer")
    if minimum is not None and raw < minimum:
        raise _format_error(where, f"invalid value: {_describe(raw)}, expected an unsigned integer")
    return raw


def _key_path(raw: Any, where: str) -> Path:
    if not isinstance(raw, str):
        raise _format_error(where, f"invalid type: {_describe(raw)}, expected a payload key")
    try:
        return parse_path(raw)
    except InvalidPath:
        raise _format_error(where, f"Invalid json path: '{raw}'") from None


# ======================================================================= combinators
# ``_always``/``_never`` are recognised by identity so that trivially true or false
# sub-filters (``{}``, an empty ``should``...) fold away at compile time.

def _always(pid, payload, vecs) -> bool:
    return True


def _never(pid, payload, vecs) -> bool:
    return False


def _all_of(conds: list[Matcher]) -> Matcher:
    if any(c is _never for c in conds):
        return _never
    conds = [c for c in conds if c is not _always]
    if not conds:
        return _always
    if len(conds) == 1:
        return conds[0]
    if len(conds) == 2:
        a, b = conds
        return lambda p, q, v: a(p, q, v) and b(p, q, v)
    if len(conds) == 3:
        a, b, c = conds
        return lambda p, q, v: a(p, q, v) and b(p, q, v) and c(p, q, v)
    items = tuple(conds)

    def all_of(p, q, v):
        for cond in items:
            if not cond(p, q, v):
                return False
        return True

    return all_of


def _any_of(conds: list[Matcher]) -> Matcher:
    if any(c is _always for c in conds):
        return _always
    conds = [c for c in conds if c is not _never]
    if not conds:
        return _never
    if len(conds) == 1:
        return conds[0]
    if len(conds) == 2:
        a, b = conds
        return lambda p, q, v: a(p, q, v) or b(p, q, v)
    items = tuple(conds)

    def any_of(p, q, v):
        for cond in items:
            if cond(p, q, v):
                return True
        return False

    return any_of


def _none_of(conds: list[Matcher]) -> Matcher:
    if any(c is _always for c in conds):
        return _never
    conds = [c for c in conds if c is not _never]
    if not conds:
        return _always
    if len(conds) == 1:
        (a,) = conds
        return lambda p, q, v: not a(p, q, v)
    inner = _any_of(conds)
    return lambda p, q, v: not inner(p, q, v)


def _at_least(conds: list[Matcher], min_count: int) -> Matcher:
    needed = min_count - sum(1 for c in conds if c is _always)
    conds = [c for c in conds if c is not _always and c is not _never]
    if needed <= 0:
        return _always
    if needed > len(conds):
        # includes an empty condition list: nothing can reach min_count >= 1
        return _never
    if needed == 1:
        return _any_of(conds)
    if needed == len(conds):
        return _all_of(conds)
    items = tuple(conds)
    total = len(items)

    def at_least(p, q, v):
        hits = 0
        for i, cond in enumerate(items):
            if cond(p, q, v):
                hits += 1
                if hits >= needed:
                    return True
            elif needed - hits > total - i - 1:
                return False  # not enough conditions left to get there
        return False

    return at_least


# ============================================================================ filter

_FILTER_FIELDS = ("should", "min_should", "must", "must_not")
_MIN_SHOULD_FIELDS = ("conditions", "min_count")


def _filter(raw: Any, where: str) -> Matcher:
    raw = _expect_object(raw, where, "struct Filter")
    _check_fields(raw, _FILTER_FIELDS, where)
    parts: list[Matcher] = []

    if raw.get("must") is not None:
        parts.extend(_clause(raw["must"], f"{where}.must"))
    if raw.get("must_not") is not None:
        parts.append(_none_of(_clause(raw["must_not"], f"{where}.must_not")))
    if raw.get("should") is not None:
        should = _clause(raw["should"], f"{where}.should")
        # An empty list states no alternatives: it constrains nothing (server behaviour,
        # whereas "any of nothing" would reject every point).
        if should:
            parts.append(_any_of(should))
    if raw.get("min_should") is not None:
        parts.append(_min_should(raw["min_should"], f"{where}.min_should"))
    return _all_of(parts)


def _clause(raw: Any, where: str) -> list[Matcher]:
    if isinstance(raw, list):
        return [_condition(item, f"{where}[{i}]") for i, item in enumerate(raw)]
    return [_condition(raw, where)]


def _min_should(raw: Any, where: str) -> Matcher:
    raw = _expect_object(raw, where, "struct MinShould")
    _check_fields(raw, _MIN_SHOULD_FIELDS, where)
    conditions = _require(raw, "conditions", where)
    if not isinstance(conditions, list):
        raise _format_error(f"{where}.conditions", f"invalid type: {_describe(conditions)}, expected a sequence")
    # negative -> 400 (not an unsigned integer), 0 -> 422 (validator), as the server
    min_count = _integer(_require(raw, "min_count", where), f"{where}.min_count", minimum=0)
    if min_count < 1:
        raise _validation_error(f"{where}.min_count", f"value {min_count} invalid, must be 1 or larger")
    conds = [_condition(c, f"{where}.conditions[{i}]") for i, c in enumerate(conditions)]
    # Note: the server (at least up to 1.18, qdrant#9369) answered every point for an
    # empty list with min_count >= 1; the documented meaning, and local mode, is none.
    return _at_least(conds, min_count)


def _candidate_ids(raw: dict) -> frozenset | None:
    """Ids a top-level ``must`` restricts the filter to (already validated raw)."""
    must = raw.get("must")
    if must is None:
        return None
    found: frozenset | None = None
    for cond in must if isinstance(must, list) else [must]:
        if isinstance(cond, dict) and "has_id" in cond:
            ids = frozenset(parse_id(i) for i in cond["has_id"])
            found = ids if found is None else found & ids
    return found


# ======================================================================== conditions

_CONDITION_SHAPES = (
    "Expected some form of condition, which can be a field condition "
    '(like {"key": ..., "match": ... }), or some other mentioned in the documentation: '
    "https://qdrant.tech/documentation/concepts/filtering/#filtering-conditions"
)


def _condition(raw: Any, where: str) -> Matcher:
    # Qdrant's Condition is an untagged union; the keys present decide the variant.
    if not isinstance(raw, dict):
        raise _format_error(where, f"invalid type: {_describe(raw)}. {_CONDITION_SHAPES}")
    if "key" in raw:
        return _field_condition(raw, where)
    for name, compile_one in _SINGLE_FIELD_CONDITIONS.items():
        if name in raw:
            if len(raw) != 1:
                other = next(k for k in raw if k != name)
                raise _format_error(where, f"unknown field `{other}` in a `{name}` condition")
            return compile_one(raw[name], f"{where}.{name}")
    if all(k in _FILTER_FIELDS for k in raw):
        return _filter(raw, where)
    unknown = next(k for k in raw if k not in _FILTER_FIELDS)
    raise _format_error(where, f"unknown condition field `{unknown}`. {_CONDITION_SHAPES}")


def _payload_field(raw: Any, where: str) -> Path:
    raw = _expect_object(raw, where, "struct PayloadField")
    _check_fields(raw, ("key",), where)
    return _key_path(_require(raw, "key", where), f"{where}.key")


def _is_empty_condition(raw: Any, where: str) -> Matcher:
    return _whole_values(_payload_field(raw, where), _values_empty, True)


def _is_null_condition(raw: Any, where: str) -> Matcher:
    return _whole_values(_payload_field(raw, where), _values_null, True)


def _has_id_condition(raw: Any, where: str) -> Matcher:
    if not isinstance(raw, list):
        raise _format_error(where, f"invalid type: {_describe(raw)}, expected a sequence of point ids")
    ids = frozenset(parse_id(x) for x in raw)
    if not ids:
        return _never
    return lambda p, q, v: p in ids


def _has_vector_condition(raw: Any, where: str) -> Matcher:
    if not isinstance(raw, str):
        raise _format_error(where, f"invalid type: {_describe(raw)}, expected a vector name")
    # An unknown name simply matches nothing, as on the server (no vector storage by
    # that name, so no point has it).
    return lambda p, q, v: raw in v


def _nested_condition(raw: Any, where: str) -> Matcher:
    raw = _expect_object(raw, where, "struct Nested")
    _check_fields(raw, ("key", "filter"), where)
    path = _key_path(_require(raw, "key", where), f"{where}.key")
    inner = _filter(_require(raw, "filter", where), f"{where}.filter")
    # `data` and `data[]` both name the array whose elements are tested one at a time.
    if len(path) > 1 and path[-1] is None:
        path = path[:-1]
    get = compile_getter(path)

    def nested(p, q, v):
        for value in get(q):
            if type(value) is list:
                for element in value:
                    # only objects are elements a filter can look into
                    if type(element) is dict and inner(None, element, _NO_VECTORS):
                        return True
        return False

    return nested


def _slice_condition(raw: Any, where: str) -> Matcher:
    raw = _expect_object(raw, where, "struct Slice")
    _check_fields(raw, ("total", "index"), where)
    total = _integer(_require(raw, "total", where), f"{where}.total", minimum=0)
    index = _integer(_require(raw, "index", where), f"{where}.index", minimum=0)
    if total < 1:
        raise _validation_error(f"{where}.total", f"value {total} invalid, must be 1 or larger")
    if index >= total:
        raise _validation_error(f"{where}.index", f"value {index} invalid, must be in [0;{total - 1}]")
    if total == 1:
        return lambda p, q, v: p is not None
    return lambda p, q, v: p is not None and _id_hash(p) % total == index


_SINGLE_FIELD_CONDITIONS: dict[str, Callable[[Any, str], Matcher]] = {
    "has_id": _has_id_condition,
    "has_vector": _has_vector_condition,
    "is_empty": _is_empty_condition,
    "is_null": _is_null_condition,
    "nested": _nested_condition,
    "slice": _slice_condition,
}


# =================================================================== field condition

_FIELD_FIELDS = ("key", "match", "range", "geo_bounding_box", "geo_radius", "geo_polygon",
                 "values_count", "is_empty", "is_null")


def _field_condition(raw: dict, where: str) -> Matcher:
    _check_fields(raw, _FIELD_FIELDS, where)
    path = _key_path(raw["key"], f"{where}.key")
    given = {k: v for k, v in raw.items() if k != "key" and v is not None}
    if not given:
        raise _validation_error(f"{where}.match", "At least one field condition must be specified")

    # Every part is validated even if the precedence below never consults it: a
    # malformed part is a malformed request.
    predicates: list[Callable[[Any], bool]] = []
    fast: Matcher | None = None
    if "match" in given:
        pred, fast = _match(given["match"], path, f"{where}.match")
        predicates.append(pred)
    if "range" in given:
        pred, fast = _range(given["range"], path, f"{where}.range")
        predicates.append(pred)
    if "geo_bounding_box" in given:
        predicates.append(_geo_bounding_box(given["geo_bounding_box"], f"{where}.geo_bounding_box"))
    if "geo_radius" in given:
        predicates.append(_geo_radius(given["geo_radius"], f"{where}.geo_radius"))
    if "geo_polygon" in given:
        predicates.append(_geo_polygon(given["geo_polygon"], f"{where}.geo_polygon"))
    count_test = None
    if "values_count" in given:
        count_test = _values_count(given["values_count"], f"{where}.values_count")
    for flag in ("is_empty", "is_null"):
        if flag in given and type(given[flag]) is not bool:
            raise _format_error(f"{where}.{flag}", f"invalid type: {_describe(given[flag])}, expected a boolean")

    # Precedence as on the server (FieldCondition::check): values_count, then is_empty,
    # then is_null, then the value conditions.
    if count_test is not None:
        return _whole_values(path, lambda values: _count_matches(values, count_test), True)
    if "is_empty" in given:
        return _whole_values(path, _values_empty, given["is_empty"])
    if "is_null" in given:
        return _whole_values(path, _values_null, given["is_null"])
    if len(predicates) == 1 and fast is not None:
        return fast
    # Several value conditions in one field condition: the server ORs them
    # (FieldCondition::check_match); local mode only looks at the first one present.
    if len(predicates) == 1:
        pred = predicates[0]
    else:
        preds = tuple(predicates)

        def pred(x):
            for p in preds:
                if p(x):
                    return True
            return False

    return _any_value(path, pred)


def _any_value(path: Path, pred: Callable[[Any], bool]) -> Matcher:
    """Holds when ``pred`` holds for a value the path reaches, arrays counting as their
    elements (one level: an array inside an array is a value of its own)."""
    if len(path) == 1:
        (k,) = path

        def one_key(p, q, v):
            x = q.get(k)
            if x is None:
                return False  # missing or null: no value condition accepts null
            if type(x) is list:
                for e in x:
                    if pred(e):
                        return True
                return False
            return pred(x)

        return one_key

    get = compile_getter(path)

    def any_value(p, q, v):
        for x in get(q):
            if type(x) is list:
                for e in x:
                    if pred(e):
                        return True
            elif x is not None and pred(x):
                return True
        return False

    return any_value


def _whole_values(path: Path, test: Callable[[list], bool], expected: bool) -> Matcher:
    """A condition on the list of values itself (counts, emptiness, nulls)."""
    get = compile_getter(path)
    if expected:
        return lambda p, q, v: test(get(q))
    return lambda p, q, v: not test(get(q))


def _values_empty(values: list) -> bool:
    for v in values:
        if v is not None and not (type(v) is list and not v):
            return False
    return True


def _values_null(values: list) -> bool:
    for v in values:
        if v is None or (type(v) is list and None in v):
            return True
    return False


def _count_matches(values: list, test: Callable[[int], bool]) -> bool:
    if not values:
        # a missing key has 0 values (servers before the fix of qdrant#9586 never
        # matched a missing key here; local mode and the fixed server count 0)
        return test(0)
    for v in values:
        count = 0 if v is None else len(v) if type(v) is list else 1
        if test(count):
            return True
    return False


# ============================================================================== memo

def _first_n_memo(fn: Callable[[Any], Any], capacity: int,
                  max_len: int | None = None) -> Callable[[Any], Any]:
    """Memoize ``fn``, keeping the first ``capacity`` results and never evicting.

    Filters re-read the same payload strings on every scan, in the same order each
    time: an LRU cache drops to a 0% hit rate as soon as a scan sees more distinct
    strings than it holds. Keeping the first entries gives a steady hit rate instead.
    Strings longer than ``max_len`` are not kept, to bound the memory a memo can pin.
    """
    memo: dict[Any, Any] = {}

    def memoized(key: Any) -> Any:
        result = memo.get(key, _MISSING)
        if result is _MISSING:
            result = fn(key)
            if len(memo) < capacity and (max_len is None or len(key) <= max_len):
                memo[key] = result
        return result

    memoized.clear = memo.clear  # type: ignore[attr-defined]
    return memoized


# ============================================================================= match

_MATCH_FIELDS = ("value", "any", "except", "text", "text_any", "phrase", "prefix", "substring")


def _match(raw: Any, path: Path, where: str) -> tuple[Callable[[Any], bool], Matcher | None]:
    """(value predicate, optional specialised matcher for the whole condition)."""
    raw = _expect_object(raw, where, "a match condition")
    _check_fields(raw, _MATCH_FIELDS, where)
    if len(raw) != 1:
        raise _format_error(where, "a match condition takes exactly one of " + ", ".join(_MATCH_FIELDS))
    ((kind, operand),) = raw.items()
    at = f"{where}.{kind}"
    single = path[0] if len(path) == 1 else None

    if kind == "value":
        return _match_value(_value_variant(operand, at), single)
    if kind in ("any", "except"):
        values = _any_variants(operand, at)
        return _match_any(values, single) if kind == "any" else (_match_except(values), None)
    if not isinstance(operand, str):
        raise _format_error(at, f"invalid type: {_describe(operand)}, expected a string")
    if kind == "text":
        return _match_text(operand), None
    if kind == "text_any":
        return _match_text_any(operand), None
    if kind == "phrase":
        return _match_phrase(operand), None
    if kind == "prefix":
        return (lambda x: type(x) is str and x.startswith(operand)), None
    return (lambda x: type(x) is str and operand in x), None  # substring


def _value_variant(raw: Any, where: str) -> bool | int | str:
    if type(raw) is bool or type(raw) is str:
        return raw
    if type(raw) is int and _I64_MIN <= raw <= _I64_MAX:
        return raw
    raise _format_error(where, f"invalid value: {_describe(raw)}, expected a string, an integer or a boolean")


def _any_variants(raw: Any, where: str) -> frozenset:
    if not isinstance(raw, list):
        raise _format_error(where, f"invalid type: {_describe(raw)}, expected a list of strings or of integers")
    if all(type(x) is str for x in raw):
        return frozenset(raw)
    if all(type(x) is int and _I64_MIN <= x <= _I64_MAX for x in raw):
        return frozenset(raw)
    raise _format_error(where, "expected a list of strings or a list of integers (not mixed, no booleans)")


def _match_value(target: bool | int | str, single: str | None):
    if type(target) is str:
        def pred(x):
            return x == target  # only a str equals a str

        if single is None:
            return pred, None
        k = single

        def fast(p, q, v):
            x = q.get(k)
            return x == target or (type(x) is list and target in x)

        return pred, fast

    if type(target) is bool:
        def pred(x):
            return x is target

        if single is None:
            return pred, None
        k = single

        def fast(p, q, v):
            x = q.get(k)
            if x is target:
                return True
            if type(x) is list:
                for e in x:
                    if e is target:
                        return True
            return False

        return pred, fast

    def pred(x):
        return type(x) is int and x == target  # neither True nor 1.0

    if single is None:
        return pred, None
    k = single

    def fast(p, q, v):
        x = q.get(k)
        if type(x) is int:
            return x == target
        if type(x) is list:
            for e in x:
                if type(e) is int and e == target:
                    return True
        return False

    return pred, fast


def _match_any(values: frozenset, single: str | None):
    # An empty list is typed as strings; it matches nothing either way.
    kind = str if all(type(x) is str for x in values) else int

    def pred(x):
        return type(x) is kind and x in values

    if single is None:
        return pred, None
    k = single

    def fast(p, q, v):
        x = q.get(k)
        if type(x) is kind:
            return x in values
        if type(x) is list:
            for e in x:
                if type(e) is kind and e in values:
                    return True
        return False

    return pred, fast


def _match_except(values: frozenset) -> Callable[[Any], bool]:
    kind = str if all(type(x) is str for x in values) else int

    # Any value of another type (bool, float, object, inner array) is "not in the list".
    # null is absence, not a value: it never matches (the _any_value loops never pass
    # it here at top level, and an array's null elements are rejected below).
    def pred(x):
        if x is None:
            return False
        return not (type(x) is kind and x in values)

    return pred


_WORD = re.compile(r"[^\W_]+")  # runs of letters/digits: the server's default word tokenizer
_ASCII_WORD = re.compile(r"[a-z0-9]+")  # the same on lowercased ASCII text


def _tokens(text: str) -> tuple[str, ...]:
    if text.isascii():
        # ASCII lowercasing is per character, so it can come first
        return tuple(_ASCII_WORD.findall(text.lower()))
    # Otherwise split first and lowercase each word: lowercasing can change what is a
    # word character (e.g. "İ" -> "i̇"), and the server tokenizes before it lowercases.
    return tuple(token.lower() for token in _WORD.findall(text))


_token_set = _first_n_memo(lambda text: frozenset(_tokens(text)), capacity=1 << 15, max_len=256)


def _match_text(query: str) -> Callable[[Any], bool]:
    wanted = frozenset(_tokens(query))
    if not wanted:
        return lambda x: False
    return lambda x: type(x) is str and wanted <= _token_set(x)


def _match_text_any(query: str) -> Callable[[Any], bool]:
    wanted = frozenset(_tokens(query))
    if not wanted:
        return lambda x: False
    return lambda x: type(x) is str and not wanted.isdisjoint(_token_set(x))


def _match_phrase(query: str) -> Callable[[Any], bool]:
    phrase = _tokens(query)
    if not phrase:
        return lambda x: False
    n = len(phrase)
    first = phrase[0]

    def pred(x):
        if type(x) is not str:
            return False
        words = _tokens(x)
        for i in range(len(words) - n + 1):
            if words[i] == first and words[i:i + n] == phrase:
                return True
        return False

    return pred


# ============================================================================= range

_RANGE_FIELDS = ("lt", "gt", "gte", "lte")


def _range(raw: Any, path: Path, where: str) -> tuple[Callable[[Any], bool], Matcher | None]:
    raw = _expect_object(raw, where, "a range")
    _check_fields(raw, _RANGE_FIELDS, where)
    bounds = {k: v for k, v in raw.items() if v is not None}
    # RangeInterface is untagged: numbers make a float range, strings a datetime range.
    if all(type(v) is int or type(v) is float for v in bounds.values()):
        for k, v in bounds.items():
            if not math.isfinite(v):
                raise _format_error(f"{where}.{k}", f"invalid value: {_describe(v)}, expected a finite number")
        test = _interval({k: float(v) for k, v in bounds.items()})
        return _numeric_range(test, path)
    if all(type(v) is str for v in bounds.values()):
        instants = {}
        for k, v in bounds.items():
            instant = parse_datetime(v)
            if instant is None:
                raise _format_error(f"{where}.{k}",
                                    f'invalid datetime "{v}", expected RFC 3339 (e.g. 2024-01-31T12:00:00Z)')
            instants[k] = instant
        test = _interval(instants)

        def pred(x):
            if type(x) is not str:
                return False
            t = _datetime_micros(x)
            return t is not None and test(t)

        return pred, None
    raise _format_error(where, "range bounds must be all numbers or all RFC 3339 datetime strings")


def _interval(bounds: dict[str, Any]) -> Callable[[Any], bool]:
    """One chained comparison for the tightest of the given bounds."""
    lo = hi = None
    lo_incl = hi_incl = True
    if "gt" in bounds:
        lo, lo_incl = bounds["gt"], False
    if "gte" in bounds and (lo is None or bounds["gte"] > lo):
        lo, lo_incl = bounds["gte"], True
    if "lt" in bounds:
        hi, hi_incl = bounds["lt"], False
    if "lte" in bounds and (hi is None or bounds["lte"] < hi):
        hi, hi_incl = bounds["lte"], True

    if lo is None and hi is None:
        return lambda n: True
    if hi is None:
        return (lambda n: n >= lo) if lo_incl else (lambda n: n > lo)
    if lo is None:
        return (lambda n: n <= hi) if hi_incl else (lambda n: n < hi)
    if lo_incl and hi_incl:
        return lambda n: lo <= n <= hi
    if lo_incl:
        return lambda n: lo <= n < hi
    if hi_incl:
        return lambda n: lo < n <= hi
    return lambda n: lo < n < hi


def _numeric_range(test: Callable[[Any], bool], path: Path):
    # bool is an int subclass in Python, but not a number in a payload: type() checks.
    def pred(x):
        t = type(x)
        return (t is int or t is float) and test(x)

    if len(path) != 1:
        return pred, None
    (k,) = path

    def fast(p, q, v):
        x = q.get(k)
        t = type(x)
        if t is int or t is float:
            return test(x)
        if t is list:
            for e in x:
                te = type(e)
                if (te is int or te is float) and test(e):
                    return True
        return False

    return pred, fast


# ---------------------------------------------------------------------- datetimes
# The formats Qdrant core accepts for datetime payloads and range bounds (what the
# server's DateTimeWrapper parses, and what local mode lists). A missing offset means
# UTC. Parsing goes through strptime so that its exact leniencies (single-digit
# fields, case-insensitive 'T', "+0100" offsets...) are the same as local mode's.
_DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
    # core reads back its own Display output, which has a space before the offset
    "%Y-%m-%dT%H:%M:%S %z", "%Y-%m-%dT%H:%M:%S.%f %z", "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M:%S.%f %z",
)
# The usual RFC 3339 spellings, parsed by the much faster datetime.fromisoformat. The
# pattern only admits strings one of the formats above also accepts (an offset needs
# seconds, as there), on which both parsers agree; whatever fromisoformat then refuses
# still goes through the full list.
_COMMON_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:[0-5]\d)?)?)?",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _normalize_datetime(text: str) -> str:
    # Leniencies of core's parser that strptime lacks: leading whitespace, a lowercase
    # "z", chrono's " UTC" suffix, and fractions finer than microseconds (truncated).
    text = text.lstrip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    elif text.endswith("z"):
        text = text[:-1] + "Z"
    dot = text.find(".")  # the first dot only, whatever follows it
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        if end - dot > 7:
            text = text[:dot + 7] + text[end:]
    return text


def _fast_datetime(text: str) -> datetime | None:
    if _COMMON_DATETIME.fullmatch(text) is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _strptime_any(text: str) -> datetime | None:
    for fmt in _DATETIME_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    return None


def parse_datetime(text: str) -> int | None:
    """Microseconds since the epoch (UTC) of a datetime string Qdrant accepts, else None."""
    return _datetime_micros(text) if isinstance(text, str) else None


def _parse_datetime_micros(text: str) -> int | None:
    text = _normalize_datetime(text)
    parsed = _fast_datetime(text) or _strptime_any(text)
    if parsed is None:
        # strptime's %z wants minutes; core also takes an hour-only offset ("+01")
        tail = text[-3:]
        if len(tail) == 3 and tail[0] in "+-" and tail[1:].isdigit():
            parsed = _strptime_any(text + ":00")
    if parsed is None:
        return None
    try:
        return (parsed - _EPOCH) // _MICROSECOND
    except OverflowError:
        return None


# a scan parses the same payload strings again for every query
_datetime_micros = _first_n_memo(_parse_datetime_micros, capacity=1 << 17, max_len=64)


# =============================================================================== geo

_EARTH_RADIUS_M = 6371008.8  # mean Earth radius (IUGG), as the server's haversine


def _geo_point(raw: Any, where: str) -> tuple[float, float]:
    raw = _expect_object(raw, where, "struct GeoPoint")
    _check_fields(raw, ("lon", "lat"), where)
    lon, lat = _require(raw, "lon", where), _require(raw, "lat", where)
    if not (_is_number(lon) and _is_number(lat)):
        raise _format_error(where, "`lon` and `lat` must be numbers")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise _format_error(where, f"Wrong format of GeoPoint payload: expected `lat` = {lat} "
                                   f"within [-90;90] and `lon` = {lon} within [-180;180]")
    return float(lon), float(lat)


def _payload_geo(x: Any) -> tuple[float, float] | None:
    """(lon, lat) of a payload value that is a geo point, else None."""
    if type(x) is not dict:
        return None
    lon, lat = x.get("lon"), x.get("lat")
    if _is_number(lon) and _is_number(lat):
        return lon, lat
    return None


def _geo_bounding_box(raw: Any, where: str) -> Callable[[Any], bool]:
    raw = _expect_object(raw, where, "struct GeoBoundingBox")
    _check_fields(raw, ("top_left", "bottom_right"), where)
    left, top = _geo_point(_require(raw, "top_left", where), f"{where}.top_left")
    right, bottom = _geo_point(_require(raw, "bottom_right", where), f"{where}.bottom_right")
    crosses_antimeridian = left > right

    def pred(x):
        point = _payload_geo(x)
        if point is None:
            return False
        lon, lat = point
        if not bottom < lat < top:
            return False
        if crosses_antimeridian:
            return lon > left or lon < right
        return left < lon < right

    return pred


def _geo_radius(raw: Any, where: str) -> Callable[[Any], bool]:
    raw = _expect_object(raw, where, "struct GeoRadius")
    _check_fields(raw, ("center", "radius"), where)
    c_lon, c_lat = _geo_point(_require(raw, "center", where), f"{where}.center")
    radius = _require(raw, "radius", where)
    if not _is_number(radius):
        raise _format_error(f"{where}.radius", f"invalid type: {_describe(radius)}, expected a number")
    if radius <= 0:
        return lambda x: False  # a distance is never below zero
    lon2, lat2 = math.radians(c_lon), math.radians(c_lat)
    cos_lat2 = math.cos(lat2)
    sin, cos, asin, sqrt, radians = math.sin, math.cos, math.asin, math.sqrt, math.radians
    # A great-circle distance is at least R * |latitude difference|: points farther
    # than that in latitude are rejected without trigonometry (the margin keeps
    # rounding from rejecting a point the exact formula accepts).
    lat_reach = math.degrees(radius / _EARTH_RADIUS_M) * (1 + 1e-9) + 1e-9

    def pred(x):
        point = _payload_geo(x)
        if point is None or abs(point[1] - c_lat) > lat_reach:
            return False
        lon1, lat1 = radians(point[0]), radians(point[1])
        # haversine: great-circle distance in metres
        a = sin((lat2 - lat1) / 2) ** 2 + cos(lat1) * cos_lat2 * sin((lon2 - lon1) / 2) ** 2
        return _EARTH_RADIUS_M * (2 * asin(sqrt(a))) < radius

    return pred


def _geo_ring(raw: Any, where: str) -> tuple[tuple[float, float], ...]:
    raw = _expect_object(raw, where, "struct GeoLineString")
    _check_fields(raw, ("points",), where)
    points = _require(raw, "points", where)
    if not isinstance(points, list):
        raise _format_error(f"{where}.points", f"invalid type: {_describe(points)}, expected a sequence")
    ring = tuple(_geo_point(p, f"{where}.points[{i}]") for i, p in enumerate(points))
    # the server's validator: a closed line of at least 4 points (422)
    if len(ring) < 4:
        raise _validation_error(f"{where}.points", f"polygon invalid, the size must be at least 4, got {len(ring)}")
    if ring[0] != ring[-1]:
        raise _validation_error(f"{where}.points", "polygon invalid, the first and the last points "
                                                   "should be same to form a closed line")
    return ring


def _geo_polygon(raw: Any, where: str) -> Callable[[Any], bool]:
    raw = _expect_object(raw, where, "struct GeoPolygon")
    _check_fields(raw, ("exterior", "interiors"), where)
    exterior = _geo_ring(_require(raw, "exterior", where), f"{where}.exterior")
    interiors_raw = raw.get("interiors")
    if interiors_raw is None:
        interiors_raw = []
    if not isinstance(interiors_raw, list):
        raise _format_error(f"{where}.interiors", f"invalid type: {_describe(interiors_raw)}, expected a sequence")
    interiors = [_geo_ring(r, f"{where}.interiors[{i}]") for i, r in enumerate(interiors_raw)]
    lons = [p[0] for p in exterior]
    lats = [p[1] for p in exterior]
    min_lon, max_lon, min_lat, max_lat = min(lons), max(lons), min(lats), max(lats)

    def pred(x):
        point = _payload_geo(x)
        if point is None:
            return False
        lon, lat = point
        if not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat):
            return False  # cheap reject before the ring walks
        # Boundaries belong to no polygon: a point on the exterior is outside, a point
        # on a hole's edge is in the hole.
        if _ring_position(exterior, lon, lat) <= 0:
            return False
        for hole in interiors:
            if _ring_position(hole, lon, lat) >= 0:
                return False
        return True

    return pred


def _ring_position(ring: tuple[tuple[float, float], ...], x: float, y: float) -> int:
    """1 inside, 0 on the boundary, -1 outside (even-odd ray casting along +x)."""
    inside = False
    x_prev, y_prev = ring[-1]
    for x_cur, y_cur in ring:
        # on this edge: collinear and within its bounding box
        if ((x_cur - x) * (x_prev - x) <= 0 and (y_cur - y) * (y_prev - y) <= 0
                and (x_prev - x_cur) * (y - y_cur) == (y_prev - y_cur) * (x - x_cur)):
            return 0
        if (y_cur > y) != (y_prev > y):
            if x < (x_prev - x_cur) * (y - y_cur) / (y_prev - y_cur) + x_cur:
                inside = not inside
        x_prev, y_prev = x_cur, y_cur
    return 1 if inside else -1


# ====================================================================== values_count

def _values_count(raw: Any, where: str) -> Callable[[int], bool]:
    raw = _expect_object(raw, where, "struct ValuesCount")
    _check_fields(raw, _RANGE_FIELDS, where)
    bounds = {k: _integer(v, f"{where}.{k}", minimum=0) for k, v in raw.items() if v is not None}
    return _interval(bounds)


# ============================================================================= slice

_MASK64 = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK64


def _siphash24(data: bytes) -> int:
    """SipHash-2-4 with a zero key: how the server assigns an id to a slice."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _MASK64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    full = len(data) // 8 * 8
    blocks = [int.from_bytes(data[i:i + 8], "little") for i in range(0, full, 8)]
    # last block: the remaining bytes, zero padded, length in the top byte
    blocks.append(int.from_bytes(data[full:].ljust(7, b"\0"), "little") | ((len(data) & 0xFF) << 56))
    for m in blocks:
        v3 ^= m
        rounds(2)
        v0 ^= m
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def _slice_hash(point_id: PointId) -> int:
    # integer ids hash as 8 little-endian bytes, UUIDs as their 16 RFC 4122 bytes
    if isinstance(point_id, int):
        return _siphash24(point_id.to_bytes(8, "little"))
    return _siphash24(uuid.UUID(point_id).bytes)


_id_hash = _first_n_memo(_slice_hash, capacity=1 << 16)
