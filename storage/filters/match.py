"""The ``match`` field condition: value, any, except, text, text_any, phrase, prefix,
substring.

``match.value``/``any``/``except`` are type-strict: ``1`` is neither ``true`` nor
``1.0``, and a float payload value never equals anything (operands are only bool,
integer or string). The full-text kinds are in ``storage.filters.text``.

Besides the per-value predicate, ``value`` and ``any`` on a top-level key also give
a matcher for the whole condition that reads the payload directly: these are the
most common filters, and skipping the generic path walk is most of their cost.
"""
from __future__ import annotations

from typing import Any, Callable

from storage.filters.json_body import check_fields, describe, expect_object, format_error, invalid_type
from storage.filters.matchers import Matcher
from storage.paths import Path
from storage.filters.text import indexed_matcher, match_phrase, match_text, match_text_any

_MATCH_FIELDS = ("value", "any", "except", "text", "text_any", "phrase", "prefix", "substring")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def match(raw: Any, path: Path, where: str, tokenizer=None) -> tuple[Callable[[Any], bool], Matcher | None]:
    """(value predicate, optional specialised matcher for the whole condition).
    ``tokenizer``: the text index on ``path``, if it has one."""
    raw = expect_object(raw, where, "a match condition")
    check_fields(raw, _MATCH_FIELDS, where)
    if len(raw) != 1:
        raise format_error(where, "a match condition takes exactly one of " + ", ".join(_MATCH_FIELDS))
    ((kind, operand),) = raw.items()
    at = f"{where}.{kind}"
    single = path[0] if len(path) == 1 else None

    if kind == "value":
        return _match_value(_value_variant(operand, at), single)
    if kind in ("any", "except"):
        values = _any_variants(operand, at)
        return _match_any(values, single) if kind == "any" else (_match_except(values), None)
    if not isinstance(operand, str):
        raise invalid_type(at, operand, "a string")
    if tokenizer is not None and kind in ("text", "text_any", "phrase"):
        return indexed_matcher(kind, operand, tokenizer), None
    if kind == "text":
        return match_text(operand), None
    if kind == "text_any":
        return match_text_any(operand), None
    if kind == "phrase":
        return match_phrase(operand), None
    if kind == "prefix":
        return (lambda x: type(x) is str and x.startswith(operand)), None
    return (lambda x: type(x) is str and operand in x), None  # substring


def _value_variant(raw: Any, where: str) -> bool | int | str:
    if type(raw) is bool or type(raw) is str:
        return raw
    if type(raw) is int and _I64_MIN <= raw <= _I64_MAX:
        return raw
    raise format_error(where, f"invalid value: {describe(raw)}, expected a string, an integer or a boolean")


def _any_variants(raw: Any, where: str) -> frozenset:
    if not isinstance(raw, list):
        raise invalid_type(where, raw, "a list of strings or of integers")
    if all(type(x) is str for x in raw):
        return frozenset(raw)
    if all(type(x) is int and _I64_MIN <= x <= _I64_MAX for x in raw):
        return frozenset(raw)
    raise format_error(where, "expected a list of strings or a list of integers (not mixed, no booleans)")


# The three value types get separate fast paths: each uses the cheapest equality test
# that stays type-strict for its type. (An integer as ``_match_any`` over a one-element
# set gives the same answers but measured about 5% slower per point.)
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
    # null is absence, not a value: it never matches (the value walkers never pass it
    # here at top level, and an array's null elements are rejected below).
    def pred(x):
        if x is None:
            return False
        return not (type(x) is kind and x in values)

    return pred
