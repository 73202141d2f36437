"""Indexed filter evaluation (storage/filters/payload_index.py planner) against the plain
evaluator, over random filters and payloads: every read and write path that uses a
plan must select exactly the points a full scan selects, in the same order.

The dataset and the random filters are those of test_filters.py (checked there
against qdrant-client's local mode), plus filters shaped for the planner: indexable
conditions nested in must/should, mixed with has_id and non-indexable ones.
"""
import random

import numpy as np
import pytest

from storage import reads
from storage.collection import Collection, Point
from storage.config import CollectionConfig
from storage.filters import compile_filter
from storage.ids import encode_id
from storage.vectors.annoy_index import IndexParams
from storage.vectors.search import candidates, exact_slots, filter_slots
from tests.unit.test_filters import SEED, STRINGS, _random_filters, make_points

N_PLANNER_FILTERS = 600


def build_collection() -> Collection:
    config = CollectionConfig.from_body({"vectors": {"a": {"size": 2, "distance": "Dot"},
                                                     "b": {"size": 2, "distance": "Dot"}}})
    col = Collection(1, "c", config, 0)
    for pid, payload, vectors in make_points(random.Random(SEED)):
        key = encode_id(pid)
        col.add(Point(pid, key, payload, 0))
        for name, vec in vectors.items():
            col.vectors[name].put(key, np.asarray(vec, dtype=np.float32))
    return col


@pytest.fixture(scope="module")
def col():
    return build_collection()


def scan(col, flt) -> list:
    """Matching keys in scroll order, the plain way: the filter on every point."""
    return [key for key in col.order
            if flt.matches(col.points[key].id, col.points[key].payload, col.vector_names(key))]


# -------------------------------------------------------------- planner-shaped filters

# mostly keys that hold such values, so that most plans select some points
INDEXABLE_KEYS = {"str": ["s", "s", "obj.b", "obj.b", '"q.k"', "t", "missing"],
                  "int": ["i", "i", "arr", "obj.a", "obj.c.d", "f", "n"], "bool": ["b", "b", "i", "arr"]}


def _indexable(rng):
    kind = rng.choice(["str", "int", "bool"])
    key = rng.choice(INDEXABLE_KEYS[kind])
    if kind == "bool":
        return {"key": key, "match": {"value": rng.random() < 0.5}}
    values = STRINGS if kind == "str" else list(range(-3, 6))
    if rng.random() < 0.5:
        return {"key": key, "match": {"value": rng.choice(values)}}
    return {"key": key, "match": {"any": rng.sample(values, rng.choice([0, 2, 3, 4]))}}


def _other(rng, ids):
    return rng.choice([
        {"key": "i", "range": {"gte": rng.randint(-3, 3)}},
        {"key": "s", "match": {"except": rng.sample(STRINGS, 2)}},
        {"key": "s", "match": {"value": "red"}, "is_empty": False},  # is_empty takes precedence
        {"key": "i", "match": {"value": 1}, "range": {"gt": 2}},  # ORed by the server
        {"key": "arr[]", "match": {"value": 1}},
        {"has_id": rng.sample(ids, rng.randint(0, 60))},
        {"has_vector": rng.choice(["a", "b"])},
        {"is_empty": {"key": "s"}},
        {},
    ])


def _planner_condition(rng, ids, depth):
    r = rng.random()
    if depth and r < 0.25:
        return _planner_filter(rng, ids, depth - 1)
    if r < 0.75:
        return _indexable(rng)
    return _other(rng, ids)


def _planner_filter(rng, ids, depth=2):
    raw = {}
    clauses = [c for c, p in (("must", 0.7), ("should", 0.4), ("must_not", 0.15), ("min_should", 0.1))
               if rng.random() < p]
    for clause in clauses or ["should"]:
        conds = [_planner_condition(rng, ids, depth) for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3]))]
        if clause == "min_should":
            raw[clause] = {"conditions": conds, "min_count": rng.randint(1, max(1, len(conds)))}
        else:
            raw[clause] = conds[0] if len(conds) == 1 and rng.random() < 0.3 else conds
    return raw


def all_filters() -> list:
    rng = random.Random(SEED + 5)
    ids = [pid for pid, _, _ in make_points(random.Random(SEED))]
    return _random_filters() + [_planner_filter(rng, ids) for _ in range(N_PLANNER_FILTERS)]


BATCHES = 6


@pytest.fixture(scope="module")
def plan_stats():
    return {"planned": 0, "exact": 0, "exact_nonempty": 0, "total": 0}


@pytest.mark.parametrize("batch", range(BATCHES))
def test_plans_select_what_a_scan_selects(col, batch, plan_stats):
    filters = all_filters()
    size = -(-len(filters) // BATCHES)
    rng = random.Random(batch)
    for raw in filters[batch * size:(batch + 1) * size]:
        flt = compile_filter(raw)
        expected = scan(col, flt)
        plan = col.payload_index.plan(flt)
        plan_stats["total"] += 1
        if plan is not None:
            plan_stats["planned"] += 1
            assert set(expected) <= plan.keys, raw
            assert plan.keys <= col.points.keys(), raw
            if plan.exact:
                plan_stats["exact"] += 1
                plan_stats["exact_nonempty"] += bool(expected)
                assert plan.keys == set(expected), raw
        # reads and filter-selected writes
        assert reads.matching_keys(col, flt) == expected, raw
        assert reads.count(col, raw) == len(expected), raw
        limit = rng.choice([1, 3, 10, 400])
        start = rng.choice(expected) if expected and rng.random() < 0.5 else None
        page = reads.scroll(col, None if start is None else col.points[start].id, limit, raw,
                            reads.Shape(False, False))
        tail = expected if start is None else expected[expected.index(start):]
        assert [p["id"] for p in page["points"]] == [col.points[k].id for k in tail[:limit]], raw
        assert page["next_page_offset"] == (col.points[tail[limit]].id if len(tail) > limit else None), raw
        # search: the exact scan and the filtering of Annoy's candidates
        for store in col.vectors.values():
            want = sorted(store.slot_of[k] for k in expected if k in store.slot_of)
            assert exact_slots(col, store, flt, plan, None).tolist() == want, raw
            assert exact_slots(col, store, flt, None, None).tolist() == want, raw
            some = store.alive_slots()[rng.random() < 0.5:: 2]
            assert filter_slots(col, store, flt, some, plan).tolist() == \
                filter_slots(col, store, flt, some).tolist(), raw
            query = np.array([1.0, 0.5], dtype=np.float32)
            assert sorted(candidates(col, store, query, flt, plan, None, 10, IndexParams(), exact=True).tolist()) == want


def test_plans_are_frequent_and_often_exact(plan_stats):
    """Guards the equivalence test: it must exercise planned, exact and unplanned filters."""
    if plan_stats["total"] < len(all_filters()):
        pytest.skip("needs the whole equivalence test in the same run")
    assert plan_stats["planned"] > 0.25 * plan_stats["total"]
    assert plan_stats["exact"] > 0.1 * plan_stats["total"]
    assert plan_stats["exact_nonempty"] > 0.05 * plan_stats["total"]
    assert plan_stats["planned"] < 0.75 * plan_stats["total"]


def test_plan_shapes():
    col = Collection(1, "c", CollectionConfig.from_body({"vectors": {"size": 2, "distance": "Dot"}}), 0)
    for i in range(6):
        col.add(Point(i, encode_id(i), {"k": "ab"[i % 2], "n": i % 3}, 0))

    def plan(raw):
        found = col.payload_index.plan(compile_filter(raw))
        return None if found is None else (sorted(k[-1] for k in found.keys), found.exact)

    k_a = {"key": "k", "match": {"value": "a"}}
    n_1 = {"key": "n", "match": {"any": [1, 7]}}
    assert plan({"must": [k_a]}) == ([0, 2, 4], True)
    assert plan({"must": k_a}) == ([0, 2, 4], True)
    assert plan({"must": [k_a, n_1]}) == ([4], True)
    assert plan({"should": [k_a, n_1]}) == ([0, 1, 2, 4], True)
    assert plan({"must": [{"must": [k_a], "should": [n_1, {"has_id": [0]}]}]}) == ([0, 4], True)
    assert plan({"must": [k_a], "must_not": [n_1]}) == ([0, 2, 4], False)
    assert plan({"must": [k_a, {"key": "n", "range": {"gt": 0}}]}) == ([0, 2, 4], False)
    assert plan({"must": [k_a], "should": [n_1, {"key": "n", "range": {"gt": 0}}]}) == ([0, 2, 4], False)
    assert plan({"must": [k_a], "should": [n_1, {}]}) == ([0, 2, 4], True)  # {} matches all: so does should
    assert plan({"must": [{"has_id": [1, 2, 99]}]}) == ([1, 2], True)
    assert plan({"must": [{"key": "k", "match": {"any": []}}]}) == ([], True)
    assert plan({"must_not": [k_a]}) is None
    assert plan({"must": [{"key": "k", "match": {"except": ["a"]}}]}) is None
    assert plan({"must": [{"key": "n", "match": {"value": 1}, "values_count": {"gt": 0}}]}) is None
    assert plan({}) is None


def test_exact_scan_when_every_point_has_the_vector():
    """The plan's keys are then looked up in the store directly (no intersection)."""
    config = CollectionConfig.from_body({"vectors": {"size": 2, "distance": "Dot"}})
    full = Collection(1, "c", config, 0)
    for pid, payload, _ in make_points(random.Random(SEED)):
        key = encode_id(pid)
        full.add(Point(pid, key, payload, 0))
        full.vectors[""].put(key, np.asarray([1.0, 0.0], dtype=np.float32))
    store = full.vectors[""]
    assert len(store) == len(full)
    for raw in all_filters()[::7]:
        flt = compile_filter(raw)
        plan = full.payload_index.plan(flt)
        assert exact_slots(full, store, flt, plan, None).tolist() == \
            exact_slots(full, store, flt, None, None).tolist(), raw
