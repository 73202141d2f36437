"""Compiled conditions (matchers) and the boolean combinators that join them.

``always``/``never`` are recognised by identity so that trivially true or false
sub-filters (``{}``, an empty ``should``...) fold away at compile time, and so that
``Filter.matches_all`` can tell a filter that constrains nothing.

The combinators unroll short lists into single lambdas: a filter runs once per point
of a scan, and a loop over a tuple costs more than a chained ``and``/``or``.
"""
from __future__ import annotations

from typing import Any, Callable, Collection

# (point_id, payload, vector_names) -> bool. Inside ``nested`` the point id is None
# and vector_names is empty.
Matcher = Callable[[Any, dict, Collection[str]], bool]


def always(pid, payload, vecs) -> bool:
    return True


def never(pid, payload, vecs) -> bool:
    return False


def all_of(conds: list[Matcher]) -> Matcher:
    if any(c is never for c in conds):
        return never
    conds = [c for c in conds if c is not always]
    if not conds:
        return always
    if len(conds) == 1:
        return conds[0]
    if len(conds) == 2:
        a, b = conds
        return lambda p, q, v: a(p, q, v) and b(p, q, v)
    if len(conds) == 3:
        a, b, c = conds
        return lambda p, q, v: a(p, q, v) and b(p, q, v) and c(p, q, v)
    items = tuple(conds)

    def all_hold(p, q, v):
        for cond in items:
            if not cond(p, q, v):
                return False
        return True

    return all_hold


def any_of(conds: list[Matcher]) -> Matcher:
    if any(c is always for c in conds):
        return always
    conds = [c for c in conds if c is not never]
    if not conds:
        return never
    if len(conds) == 1:
        return conds[0]
    if len(conds) == 2:
        a, b = conds
        return lambda p, q, v: a(p, q, v) or b(p, q, v)
    items = tuple(conds)

    def any_holds(p, q, v):
        for cond in items:
            if cond(p, q, v):
                return True
        return False

    return any_holds


def none_of(conds: list[Matcher]) -> Matcher:
    if any(c is always for c in conds):
        return never
    conds = [c for c in conds if c is not never]
    if not conds:
        return always
    if len(conds) == 1:
        (a,) = conds
        return lambda p, q, v: not a(p, q, v)
    inner = any_of(conds)
    return lambda p, q, v: not inner(p, q, v)


def at_least(conds: list[Matcher], min_count: int) -> Matcher:
    needed = min_count - sum(1 for c in conds if c is always)
    conds = [c for c in conds if c is not always and c is not never]
    if needed <= 0:
        return always
    if needed > len(conds):
        # includes an empty condition list: nothing can reach min_count >= 1
        return never
    if needed == 1:
        return any_of(conds)
    if needed == len(conds):
        return all_of(conds)
    items = tuple(conds)
    total = len(items)

    def enough_hold(p, q, v):
        hits = 0
        for i, cond in enumerate(items):
            if cond(p, q, v):
                hits += 1
                if hits >= needed:
                    return True
            elif needed - hits > total - i - 1:
                return False  # not enough conditions left to get there
        return False

    return enough_hold
