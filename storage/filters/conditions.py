"""Conditions on a point's payload or identity: the field condition (``key`` with
match, range, geo, values_count, is_empty, is_null) and the one-key conditions
``is_empty``, ``is_null``, ``has_id`` and ``has_vector``.

A field condition reads the values a key path reaches (see ``storage.paths``). Value
conditions (match, range, geo) hold if any value does; an array value counts as its
elements (one level). ``null`` never satisfies a value condition, ``except``
included. The whole-value conditions look at the list of values itself:
``values_count`` counts an array's elements, 1 for any other value, 0 for
null/missing; ``is_empty`` is missing, null or ``[]``; ``is_null`` is null, or an
array holding a null. A range compares numbers, or instants when its bounds are
datetime strings (``storage.filters.datetimes``).
"""
from __future__ import annotations

import math
from typing import Any, Callable

from storage.filters.datetimes import datetime_micros, parse_datetime
from storage.filters.geo import geo_bounding_box, geo_polygon, geo_radius
from storage.ids import parse_id
from storage.filters.json_body import (check_fields, describe, expect_object, format_error, integer,
                               invalid_type, key_path, require, validation_error)
from storage.filters.match import match
from storage.filters.matchers import Matcher, never
from storage.paths import Path, compile_getter

_FIELD_FIELDS = ("key", "match", "range", "geo_bounding_box", "geo_radius", "geo_polygon",
                 "values_count", "is_empty", "is_null")
_RANGE_FIELDS = ("lt", "gt", "gte", "lte")


def field_condition(raw: dict, where: str, text: dict | None = None) -> Matcher:
    check_fields(raw, _FIELD_FIELDS, where)
    path = key_path(raw["key"], f"{where}.key")
    given = {k: v for k, v in raw.items() if k != "key" and v is not None}
    if not given:
        raise validation_error(f"{where}.match", "At least one field condition must be specified")

    # Every part is validated even if the precedence below never consults it: a
    # malformed part is a malformed request.
    predicates: list[Callable[[Any], bool]] = []
    fast: Matcher | None = None
    if "match" in given:
        pred, fast = match(given["match"], path, f"{where}.match", (text or {}).get(path))
        predicates.append(pred)
    if "range" in given:
        pred, fast = _range(given["range"], path, f"{where}.range")
        predicates.append(pred)
    if "geo_bounding_box" in given:
        predicates.append(geo_bounding_box(given["geo_bounding_box"], f"{where}.geo_bounding_box"))
    if "geo_radius" in given:
        predicates.append(geo_radius(given["geo_radius"], f"{where}.geo_radius"))
    if "geo_polygon" in given:
        predicates.append(geo_polygon(given["geo_polygon"], f"{where}.geo_polygon"))
    count_test = None
    if "values_count" in given:
        count_test = _values_count(given["values_count"], f"{where}.values_count")
    for flag in ("is_empty", "is_null"):
        if flag in given and type(given[flag]) is not bool:
            raise invalid_type(f"{where}.{flag}", given[flag], "a boolean")

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


def is_empty_condition(raw: Any, where: str) -> Matcher:
    return _whole_values(_payload_field(raw, where), _values_empty, True)


def is_null_condition(raw: Any, where: str) -> Matcher:
    return _whole_values(_payload_field(raw, where), _values_null, True)


def has_id_condition(raw: Any, where: str) -> Matcher:
    if not isinstance(raw, list):
        raise invalid_type(where, raw, "a sequence of point ids")
    ids = frozenset(parse_id(x) for x in raw)
    if not ids:
        return never
    return lambda p, q, v: p in ids


def has_vector_condition(raw: Any, where: str) -> Matcher:
    if not isinstance(raw, str):
        raise invalid_type(where, raw, "a vector name")
    # An unknown name simply matches nothing, as on the server (no vector storage by
    # that name, so no point has it).
    return lambda p, q, v: raw in v


def _payload_field(raw: Any, where: str) -> Path:
    raw = expect_object(raw, where, "struct PayloadField")
    check_fields(raw, ("key",), where)
    return key_path(require(raw, "key", where), f"{where}.key")


# ===================================================================== value walkers

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


# ================================================================ range, values_count

def _range(raw: Any, path: Path, where: str) -> tuple[Callable[[Any], bool], Matcher | None]:
    raw = expect_object(raw, where, "a range")
    check_fields(raw, _RANGE_FIELDS, where)
    bounds = {k: v for k, v in raw.items() if v is not None}
    # RangeInterface is untagged: numbers make a float range, strings a datetime range.
    if all(type(v) is int or type(v) is float for v in bounds.values()):
        for k, v in bounds.items():
            if not math.isfinite(v):
                raise format_error(f"{where}.{k}", f"invalid value: {describe(v)}, expected a finite number")
        test = _interval({k: float(v) for k, v in bounds.items()})
        return _numeric_range(test, path)
    if all(type(v) is str for v in bounds.values()):
        instants = {}
        for k, v in bounds.items():
            instant = parse_datetime(v)
            if instant is None:
                raise format_error(f"{where}.{k}",
                                   f'invalid datetime "{v}", expected RFC 3339 (e.g. 2024-01-31T12:00:00Z)')
            instants[k] = instant
        test = _interval(instants)

        def pred(x):
            if type(x) is not str:
                return False
            t = datetime_micros(x)
            return t is not None and test(t)

        return pred, None
    raise format_error(where, "range bounds must be all numbers or all RFC 3339 datetime strings")


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


def _values_count(raw: Any, where: str) -> Callable[[int], bool]:
    raw = expect_object(raw, where, "struct ValuesCount")
    check_fields(raw, _RANGE_FIELDS, where)
    bounds = {k: integer(v, f"{where}.{k}", minimum=0) for k, v in raw.items() if v is not None}
    return _interval(bounds)
