"""The boolean structure of a filter (must / should / must_not / min_should, nested)
and ``compile_filter``; the package docstring explains the whole language."""
from __future__ import annotations

from typing import Any, Callable

import orjson

from storage.filters.conditions import (field_condition, has_id_condition, has_vector_condition,
                                is_empty_condition, is_null_condition)
from storage.ids import parse_id
from storage.filters.json_body import (check_fields, describe, expect_object, format_error, integer,
                               invalid_type, key_path, require, validation_error)
from storage.filters.matchers import Matcher, all_of, always, any_of, at_least, none_of
from storage.paths import compile_getter
from storage.filters.slices import slice_condition

__all__ = ["Filter", "compile_filter"]

_NO_VECTORS: frozenset[str] = frozenset()


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
        self.matches_all = matcher is always
        self.candidate_ids = candidate_ids
        self.raw = raw

    def __repr__(self) -> str:
        return f"Filter({self.raw!r})"

    @property
    def fingerprint(self) -> bytes:
        """The filter's canonical JSON: equal for equal filters, type-strict (1 != true)."""
        return orjson.dumps(self.raw, option=orjson.OPT_SORT_KEYS)


def compile_filter(raw: dict | None, where: str = "filter", text: dict | None = None) -> Filter | None:
    """Validate a REST filter (parsed JSON) and compile it; None for no filter.

    Raises BadRequest (400) for malformed filters and Unprocessable (422) for values
    the server's validator rejects. ``where`` names the filter in error messages
    (the request field holding it). ``text`` maps key paths with a full-text index to
    their tokenizer (storage.filters.text_index); other keys match text without one.
    """
    if raw is None:
        return None
    matcher = _filter(raw, where, text or {})
    return Filter(matcher, _candidate_ids(raw), raw)


# ============================================================================ filter

_FILTER_FIELDS = ("should", "min_should", "must", "must_not")
_MIN_SHOULD_FIELDS = ("conditions", "min_count")


def _filter(raw: Any, where: str, text: dict) -> Matcher:
    raw = expect_object(raw, where, "struct Filter")
    check_fields(raw, _FILTER_FIELDS, where)
    parts: list[Matcher] = []

    if raw.get("must") is not None:
        parts.extend(_clause(raw["must"], f"{where}.must", text))
    if raw.get("must_not") is not None:
        parts.append(none_of(_clause(raw["must_not"], f"{where}.must_not", text)))
    if raw.get("should") is not None:
        should = _clause(raw["should"], f"{where}.should", text)
        # An empty list states no alternatives: it constrains nothing (server behaviour,
        # whereas "any of nothing" would reject every point).
        if should:
            parts.append(any_of(should))
    if raw.get("min_should") is not None:
        parts.append(_min_should(raw["min_should"], f"{where}.min_should", text))
    return all_of(parts)


def _clause(raw: Any, where: str, text: dict) -> list[Matcher]:
    if isinstance(raw, list):
        return [_condition(item, f"{where}[{i}]", text) for i, item in enumerate(raw)]
    return [_condition(raw, where, text)]


def _min_should(raw: Any, where: str, text: dict) -> Matcher:
    raw = expect_object(raw, where, "struct MinShould")
    check_fields(raw, _MIN_SHOULD_FIELDS, where)
    conditions = require(raw, "conditions", where)
    if not isinstance(conditions, list):
        raise invalid_type(f"{where}.conditions", conditions, "a sequence")
    # negative -> 400 (not an unsigned integer), 0 -> 422 (validator), as the server
    min_count = integer(require(raw, "min_count", where), f"{where}.min_count", minimum=0)
    if min_count < 1:
        raise validation_error(f"{where}.min_count", f"value {min_count} invalid, must be 1 or larger")
    conds = [_condition(c, f"{where}.conditions[{i}]", text) for i, c in enumerate(conditions)]
    # Note: the server (at least up to 1.18, qdrant#9369) answered every point for an
    # empty list with min_count >= 1; the documented meaning, and local mode, is none.
    return at_least(conds, min_count)


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


# ========================================================================= condition

_CONDITION_SHAPES = (
    "Expected some form of condition, which can be a field condition "
    '(like {"key": ..., "match": ... }), or some other mentioned in the documentation: '
    "https://qdrant.tech/documentation/concepts/filtering/#filtering-conditions"
)


def _condition(raw: Any, where: str, text: dict) -> Matcher:
    # Qdrant's Condition is an untagged union; the keys present decide the variant.
    if not isinstance(raw, dict):
        raise format_error(where, f"invalid type: {describe(raw)}. {_CONDITION_SHAPES}")
    if "key" in raw:
        return field_condition(raw, where, text)
    for name, compile_one in _SINGLE_FIELD_CONDITIONS.items():
        if name in raw:
            if len(raw) != 1:
                other = next(k for k in raw if k != name)
                raise format_error(where, f"unknown field `{other}` in a `{name}` condition")
            if name == "nested":
                return _nested_condition(raw[name], f"{where}.{name}", text)
            return compile_one(raw[name], f"{where}.{name}")
    if all(k in _FILTER_FIELDS for k in raw):
        return _filter(raw, where, text)
    unknown = next(k for k in raw if k not in _FILTER_FIELDS)
    raise format_error(where, f"unknown condition field `{unknown}`. {_CONDITION_SHAPES}")


def _nested_condition(raw: Any, where: str, text: dict | None = None) -> Matcher:
    # Here rather than in storage.filters.conditions: it compiles a whole filter, and that
    # module is imported by this one.
    raw = expect_object(raw, where, "struct Nested")
    check_fields(raw, ("key", "filter"), where)
    path = key_path(require(raw, "key", where), f"{where}.key")
    # `data` and `data[]` both name the array whose elements are tested one at a time.
    if len(path) > 1 and path[-1] is None:
        path = path[:-1]
    # Inside, keys are relative to an element: a text index on `data[].title` is `title` here.
    prefix = (*path, None)
    inner_text = {p[len(prefix):]: t for p, t in (text or {}).items() if p[:len(prefix)] == prefix}
    inner = _filter(require(raw, "filter", where), f"{where}.filter", inner_text)
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


# The order decides which name a condition holding two of them is reported under.
_SINGLE_FIELD_CONDITIONS: dict[str, Callable[[Any, str], Matcher]] = {
    "has_id": has_id_condition,
    "has_vector": has_vector_condition,
    "is_empty": is_empty_condition,
    "is_null": is_null_condition,
    "nested": _nested_condition,
    "slice": slice_condition,
}


def merge_filters(outer: dict | None, inner: dict | None) -> dict | None:
    """Both filters at once, clause lists concatenated (the server's ``merge_opts``)."""
    if outer is None:
        return inner
    if inner is None:
        return outer
    merged = {}
    for clause in ("must", "must_not", "should"):
        parts = []
        for flt in (outer, inner):
            value = flt.get(clause)
            if value is not None:
                parts.extend(value if isinstance(value, list) else [value])
        if parts:
            merged[clause] = parts
    first, second = outer.get("min_should"), inner.get("min_should")
    if first is not None and second is not None:
        merged["min_should"] = {"conditions": [*first["conditions"], *second["conditions"]],
                                "min_count": max(first["min_count"], second["min_count"])}
    elif first is not None or second is not None:
        merged["min_should"] = first if first is not None else second
    return merged
