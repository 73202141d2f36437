"""An in-memory inverted index of payload values, and the planner that uses it.

A filter is otherwise evaluated one payload at a time; for the common
``match: {value}`` / ``match: {any}`` conditions this index answers "which points
hold this value at this path" from a dict lookup, so scroll, count, search and
filter-selected writes only evaluate the filter on those candidates.

Which paths are indexed: automatically, the ones filters ask for. The first filter
that needs a path builds its index with one pass over the collection; from then on
``Collection`` keeps it up to date on every payload change. That needs no
configuration and nothing in the log: the index is a cache of the payloads, so it
never changes which points match, only how fast they are found. (Qdrant's explicit
``PUT /collections/{c}/index`` would have to be a logged operation persisted in the
collection catalog; pointlog does not offer it and reports no ``payload_schema``,
because which paths are cached here depends on the queries a replica has served.)
At most ``MAX_PATHS`` paths per collection are kept, least recently used evicted, so
a stream of one-off filters cannot grow memory without bound.

The planner (``PayloadIndex.plan``) reads the filter's ``match.value``/``match.any``
and ``has_id`` conditions combined by ``must`` and ``should`` (nested filters
included) and gives the candidate keys, and whether they are exactly the matching
points (the filter then needs no evaluation at all) or a superset of them.

Semantics are exactly those of the match matchers (``storage.filters.match`` over
``storage.paths.get_values``): a path made of object keys only (no ``[]`` or
``[n]``), whose value, or each element of an array value (one level), is indexed
when it is a string, an integer or a boolean. Type-strict like the matchers: the
term is ``(type, value)``, so ``1``, ``True`` and ``"1"`` are three terms (Python
alone would take ``True == 1``). Floats, null, objects and nested arrays never match
``value``/``any`` and are not indexed.

Invariant the maintenance relies on: a stored payload is never mutated in place;
a change replaces it (``Collection.set_payload``), so the old payload still says
which terms to remove.
"""
from __future__ import annotations

from dataclasses import dataclass

from storage.ids import encode_id, parse_id
from storage.paths import Path, compile_getter, parse_path

MAX_PATHS = 16
_INDEXED_TYPES = (str, int, bool)
_SINGLE_FIELD_CONDITIONS = ("has_id", "has_vector", "is_empty", "is_null", "nested", "slice")


class FieldIndex:
    """Point keys by term for one path.

    A term held by one point maps to that key itself, by several to a set: most
    values of a high-cardinality field (an external id) are unique, and a set per
    value would triple the memory.
    """

    __slots__ = ("values_at", "postings")

    def __init__(self, path: Path):
        self.values_at = compile_getter(path)
        self.postings: dict = {}  # (type, value) -> key bytes | set of key bytes

    def terms(self, payload: dict | None) -> set:
        return _terms(self.values_at(payload)) if payload else set()

    def replace(self, key: bytes, old: dict | None, new: dict | None) -> None:
        old_values = self.values_at(old) if old else []
        new_values = self.values_at(new) if new else []
        # A write elsewhere in the payload leaves the very same objects here (clones
        # share scalars). Identity, not ==, which would take 1 for True.
        if len(old_values) == len(new_values):
            for was, now in zip(old_values, new_values):
                if was is not now:
                    break
            else:
                return
        before, after = _terms(old_values), _terms(new_values)
        for term in before - after:
            self._discard(term, key)
        for term in after - before:
            self.add(term, key)

    def keys(self, terms) -> set:
        """The keys of the points holding any of the terms. May be a live posting set:
        read it before the next write, never change it."""
        postings = self.postings
        if len(terms) == 1:
            (term,) = terms
            held = postings.get(term)
            if type(held) is set:
                return held
            return set() if held is None else {held}
        out = set()
        for term in terms:
            held = postings.get(term)
            if type(held) is set:
                out |= held
            elif held is not None:
                out.add(held)
        return out

    def add(self, term, key: bytes) -> None:
        held = self.postings.get(term)
        if held is None:
            self.postings[term] = key
        elif type(held) is set:
            held.add(key)
        elif held != key:
            self.postings[term] = {held, key}

    def _discard(self, term, key: bytes) -> None:
        held = self.postings.get(term)
        if type(held) is set:
            held.discard(key)
            if len(held) == 1:
                self.postings[term] = next(iter(held))
        elif held == key:
            del self.postings[term]


def _terms(values: list) -> set:
    found = set()
    for value in values:
        if type(value) is list:
            for element in value:
                if type(element) in _INDEXED_TYPES:
                    found.add((type(element), element))
        elif type(value) in _INDEXED_TYPES:
            found.add((type(value), value))
    return found


@dataclass
class Plan:
    """What the index says about a filter: ``keys`` holds every matching point (and
    only existing points); when ``exact`` it holds nothing else, so the filter need
    not be evaluated on them. ``keys`` may be a live posting set: read-only."""
    keys: set
    exact: bool


class PayloadIndex:
    """The field indexes of one collection, over its ``key -> Point`` dict."""

    def __init__(self, points: dict):
        self._points = points
        self._fields: dict = {}  # path -> FieldIndex, least recently used first

    def paths(self) -> list:
        return list(self._fields)

    def field(self, path: Path) -> FieldIndex:
        """The index of a path, built now if it is not kept yet."""
        index = self._fields.pop(path, None)
        if index is None:
            index = FieldIndex(path)
            for key, point in self._points.items():
                for term in index.terms(point.payload):
                    index.add(term, key)
            while len(self._fields) >= MAX_PATHS:
                del self._fields[next(iter(self._fields))]
        self._fields[path] = index  # most recently used last
        return index

    def replaced(self, key: bytes, old: dict | None, new: dict | None) -> None:
        """A point's payload changed from ``old`` to ``new`` (None: no point)."""
        if old is new:
            return
        for index in self._fields.values():
            index.replace(key, old, new)

    def plan(self, flt) -> Plan | None:
        """Candidates for a compiled filter (storage.filters.Filter), or None when
        the filter has no condition the index can answer."""
        query, exact = _filter_query(flt.raw)
        # More paths than are kept would rebuild indexes on every such query.
        if query is None or len(_paths(query)) > MAX_PATHS:
            return None
        return Plan(self._evaluate(query), exact)

    def _evaluate(self, query) -> set:
        kind = query[0]
        if kind == "term":
            return self.field(query[1]).keys(query[2])
        if kind == "ids":
            return self._points.keys() & query[1]
        found = sorted((self._evaluate(q) for q in query[1]), key=len)
        if kind == "all":
            return found[0].intersection(*found[1:]) if len(found) > 1 else found[0]
        return set().union(*found)


# ===================================================================== planning
#
# A filter (already validated by compile_filter) becomes a query tree over the
# index: ("term", path, terms), ("ids", keys), ("all", [queries]), ("any", [queries]).
# Each function returns (query or None, exact): None when the part restricts
# nothing the index can tell; ``exact`` when the query's keys are exactly the
# points the part matches (None with exact means the part matches everything).

def _filter_query(raw: dict) -> tuple:
    parts, exact = [], True
    for cond in _as_list(raw.get("must")):
        query, cond_exact = _condition_query(cond)
        exact = exact and cond_exact
        if query is not None:
            parts.append(query)
    if _as_list(raw.get("must_not")):
        exact = False  # a negation selects the complement: not indexable
    should = _as_list(raw.get("should"))
    if should:  # an empty should constrains nothing
        found = [_condition_query(cond) for cond in should]
        if any(query is None and cond_exact for query, cond_exact in found):
            pass  # one alternative matches everything, and so does the clause
        elif all(query is not None for query, _ in found):
            parts.append(("any", [query for query, _ in found]))
            exact = exact and all(cond_exact for _, cond_exact in found)
        else:
            exact = False
    if raw.get("min_should") is not None:
        exact = False
    if not parts:
        return None, exact
    return (parts[0] if len(parts) == 1 else ("all", parts)), exact


def _condition_query(cond: dict) -> tuple:
    if "key" in cond:
        return _field_query(cond)
    if "has_id" in cond:
        return ("ids", frozenset(encode_id(parse_id(i)) for i in cond["has_id"])), True
    if any(name in cond for name in _SINGLE_FIELD_CONDITIONS):
        return None, False
    return _filter_query(cond)  # a filter nested as a condition


def _field_query(cond: dict) -> tuple:
    given = {k: v for k, v in cond.items() if k != "key" and v is not None}
    # With any other part the condition means something else (values_count and the
    # emptiness checks take precedence; several value conditions are ORed).
    if set(given) != {"match"}:
        return None, False
    path = parse_path(cond["key"])
    if not all(type(step) is str for step in path):
        return None, False
    ((kind, operand),) = given["match"].items()
    if kind == "value":
        return ("term", path, frozenset([(type(operand), operand)])), True
    if kind == "any":
        return ("term", path, frozenset((type(x), x) for x in operand)), True
    return None, False


def _paths(query) -> set:
    if query[0] == "term":
        return {query[1]}
    if query[0] == "ids":
        return set()
    return set().union(*(_paths(q) for q in query[1]))


def _as_list(clause) -> list:
    if clause is None:
        return []
    return clause if isinstance(clause, list) else [clause]
