"""The payload value index (storage/filters/payload_index.py): kept in step with every payload
change made by ``apply``, and the same whatever order of writes led to a state.

The invariant checked throughout: each kept field index equals the index built from
scratch over the current payloads. State is changed with the real ``apply`` over a
real rocksdict state in a temp dir.
"""
import random

import pytest

from api.rest.bodies import parse
from storage import operations as ops
from storage.filters import payload_index
from storage.errors import QdrantError
from storage.filters import compile_filter
from storage.ids import encode_id
from storage.paths import parse_path
from storage.filters.payload_index import FieldIndex
from tests.unit.statelog import StateLog



@pytest.fixture
def log(tmp_path):
    lg = StateLog(str(tmp_path / "state"))
    lg.do(parse(ops.CreateCollection, {"vectors": {"size": 2, "distance": "Dot"}}))
    yield lg
    lg.state.close()


def contents(index: FieldIndex) -> dict:
    """term -> frozenset of keys, whatever the posting representation."""
    return {term: frozenset(held) if isinstance(held, set) else frozenset([held])
            for term, held in index.postings.items()}


def rebuilt(col, path) -> dict:
    fresh = FieldIndex(parse_path(path) if isinstance(path, str) else path)
    for key, point in col.points.items():
        fresh.replace(key, None, point.payload)
    return contents(fresh)


def assert_consistent(col) -> None:
    for path in col.payload_index.paths():
        assert contents(col.payload_index.field(path)) == rebuilt(col, path), path


def keys_with(col, path: str, value) -> set:
    """Keys the planner gives for one `match.value` condition (building the index)."""
    plan = col.payload_index.plan(compile_filter({"must": [{"key": path, "match": {"value": value}}]}))
    return set(plan.keys)


def ids(*numbers) -> set:
    return {encode_id(n) for n in numbers}


def upsert(log: StateLog, points: dict) -> None:
    log.do(parse(ops.Upsert, {"points": [{"id": i, "vector": [1.0, 0.0], "payload": p}
                                            for i, p in points.items()]}))


def test_terms_are_type_strict_and_follow_the_path_semantics():
    index = FieldIndex(parse_path("a"))
    assert index.terms({"a": [1, True, "1", 1.0, None, [2], {"x": 3}, 1]}) == {(int, 1), (bool, True), (str, "1")}
    assert index.terms({"a": None}) == set()
    assert index.terms({}) == set()
    nested = FieldIndex(parse_path("a.b"))
    assert nested.terms({"a": {"b": ["x", "y"]}}) == {(str, "x"), (str, "y")}
    # Arrays are only entered where the path says so, as storage.paths.get_values does.
    assert nested.terms({"a": [{"b": "x"}]}) == set()
    assert FieldIndex(parse_path('"a.b"')).terms({"a.b": "x", "a": {"b": "y"}}) == {(str, "x")}


def test_upsert_overwrite_and_delete_points(log):
    upsert(log, {1: {"color": "red"}, 2: {"color": ["red", "blue"]}, 3: {"color": 7}})
    col = log.col()
    assert keys_with(col, "color", "red") == ids(1, 2)
    assert keys_with(col, "color", 7) == ids(3)
    assert col.payload_index.paths() == [("color",)]
    upsert(log, {2: {"color": "green"}, 4: {"color": "red"}, 3: {}})  # replaces the whole point
    assert keys_with(col, "color", "red") == ids(1, 4)
    assert keys_with(col, "color", "blue") == set()
    assert keys_with(col, "color", 7) == set()
    assert_consistent(col)
    log.do(parse(ops.DeletePoints, {"points": [1, 99]}))
    assert keys_with(col, "color", "red") == ids(4)
    log.do(parse(ops.DeletePoints, {"filter": {"must": [{"key": "color", "match": {"any": ["green"]}}]}}))
    assert keys_with(col, "color", "green") == set()
    assert set(col.points) == ids(3, 4)
    assert_consistent(col)


def test_payload_updates_by_id_and_by_filter(log):
    upsert(log, {i: {"n": i % 3, "tag": "a", "obj": {"k": "x"}} for i in range(9)})
    col = log.col()
    for path, value in (("n", 0), ("tag", "a"), ("obj.k", "x")):
        keys_with(col, path, value)  # index these paths before the writes
    by_filter = {"must": [{"key": "n", "match": {"value": 0}}]}
    log.do(parse(ops.SetPayload, {"payload": {"tag": "b"}, "filter": by_filter}))
    assert keys_with(col, "tag", "b") == ids(0, 3, 6)
    log.do(parse(ops.SetPayload, {"payload": {"k": "y"}, "key": "obj", "points": [1, 2]}))
    assert keys_with(col, "obj.k", "y") == ids(1, 2)
    assert keys_with(col, "obj.k", "x") == ids(0, 3, 4, 5, 6, 7, 8)
    log.do(parse(ops.SetPayload, {"payload": {"n": None}, "points": [4]}))  # null deletes the key
    assert encode_id(4) not in keys_with(col, "n", 1)
    log.do(parse(ops.OverwritePayload, {"payload": {"n": 0}, "points": [5]}))
    assert keys_with(col, "n", 0) == ids(0, 3, 5, 6)
    assert keys_with(col, "tag", "a") == ids(1, 2, 4, 7, 8)
    log.do(parse(ops.DeletePayload, {"keys": ["tag", "obj.k"], "points": [7]}))
    assert keys_with(col, "tag", "a") == ids(1, 2, 4, 8)
    log.do(parse(ops.ClearPayload, {"filter": {"must": [{"key": "tag", "match": {"value": "b"}}]}}))
    assert keys_with(col, "tag", "b") == set()
    assert keys_with(col, "n", 0) == ids(5)
    assert_consistent(col)


def test_equal_but_differently_typed_values_are_reindexed(log):
    upsert(log, {1: {"k": True, "n": [1]}})
    col = log.col()
    assert keys_with(col, "k", True) == ids(1) and keys_with(col, "n", 1) == ids(1)
    log.do(parse(ops.OverwritePayload, {"payload": {"k": 1, "n": [True]}, "points": [1]}))  # == but not same
    assert keys_with(col, "k", True) == set() and keys_with(col, "k", 1) == ids(1)
    assert keys_with(col, "n", 1) == set() and keys_with(col, "n", True) == ids(1)
    log.do(parse(ops.SetPayload, {"payload": {"other": 2}, "points": [1]}))  # k and n untouched
    assert keys_with(col, "k", 1) == ids(1) and keys_with(col, "n", True) == ids(1)
    assert_consistent(col)


def test_changes_before_a_failing_operation_are_indexed(log):
    upsert(log, {1: {"k": "a"}, 2: {"k": "a"}})
    col = log.col()
    keys_with(col, "k", "a")
    with pytest.raises(QdrantError):  # point 3 is missing: 1 and 2 are updated, then 404
        log.do(parse(ops.SetPayload, {"payload": {"k": "b"}, "points": [1, 3, 2]}))
    assert keys_with(col, "k", "b") == ids(1, 2)
    with pytest.raises(QdrantError):  # a batch stops at its first error; what ran stays
        log.do(parse(ops.Batch, {"operations": [
            {"overwrite_payload": {"payload": {"k": "c"}, "points": [1]}},
            {"clear_payload": {"points": [42]}},
            {"overwrite_payload": {"payload": {"k": "c"}, "points": [2]}}]}))
    assert keys_with(col, "k", "c") == ids(1)
    assert_consistent(col)


def test_collection_delete_and_recreate_starts_empty(log):
    upsert(log, {1: {"k": "a"}})
    assert keys_with(log.col(), "k", "a") == ids(1)
    log.do(ops.DeleteCollection())
    log.do(parse(ops.CreateCollection, {"vectors": {"size": 2, "distance": "Dot"}}))
    assert log.col().payload_index.paths() == []
    assert keys_with(log.col(), "k", "a") == set()
    upsert(log, {2: {"k": "a"}})
    assert keys_with(log.col(), "k", "a") == ids(2)


def test_one_point_postings_are_plain_keys(log):
    """A value held by one point costs no set; it becomes one at two and back at one."""
    upsert(log, {1: {"k": "a"}})
    index = log.col().payload_index.field(("k",))
    assert index.postings == {(str, "a"): encode_id(1)}
    upsert(log, {2: {"k": "a"}})
    assert index.postings == {(str, "a"): ids(1, 2)}
    log.do(parse(ops.DeletePoints, {"points": [1]}))
    assert index.postings == {(str, "a"): encode_id(2)}
    log.do(parse(ops.ClearPayload, {"points": [2]}))
    assert index.postings == {}


def test_least_recently_used_paths_are_evicted(log, monkeypatch):
    monkeypatch.setattr(payload_index, "MAX_PATHS", 2)
    upsert(log, {1: {"a": 1, "b": 1, "c": 1}})
    col = log.col()
    for path in ("a", "b", "a", "c"):
        assert keys_with(col, path, 1) == ids(1)
    assert col.payload_index.paths() == [("a",), ("c",)]
    upsert(log, {1: {"a": 2, "b": 2, "c": 2}})
    assert keys_with(col, "b", 2) == ids(1)  # rebuilt on demand, from the current payloads
    assert_consistent(col)
    # A filter on more paths than are kept is not planned: it would evict its own indexes.
    too_many = {"should": [{"key": k, "match": {"value": 2}} for k in "abc"]}
    assert col.payload_index.plan(compile_filter(too_many)) is None
    assert col.payload_index.paths() == [("c",), ("b",)]


# ============================================================== random operations

PATHS = ["k", "tags", "obj.k", "obj.n", "n"]
VALUES = ["a", "b", "c", 0, 1, 2, True, False, 1.0, None]


def _random_value(rng: random.Random):
    r = rng.random()
    if r < 0.6:
        return rng.choice(VALUES)
    if r < 0.85:
        return [rng.choice(VALUES) for _ in range(rng.randint(0, 3))]
    return {"k": rng.choice(VALUES), "n": rng.choice(VALUES)}


def _random_payload(rng: random.Random) -> dict:
    return {key: _random_value(rng) for key in ("k", "tags", "obj", "n", "other") if rng.random() < 0.7}


def _random_filter(rng: random.Random) -> dict:
    path = rng.choice(PATHS)
    if rng.random() < 0.5:
        return {"must": [{"key": path, "match": {"value": rng.choice(["a", "b", 0, 1, True])}}]}
    return {"must": [{"key": path, "match": {"any": rng.sample(["a", "b", "c"], 2)}}]}


def _random_selector(rng: random.Random) -> dict:
    if rng.random() < 0.5:
        return {"filter": _random_filter(rng)}
    return {"points": rng.sample(range(40), rng.randint(1, 5))}


def _random_op(rng: random.Random):
    kind = rng.choice(["upsert", "upsert", "set", "set_key", "overwrite", "delete_payload", "clear", "delete",
                       "batch"])
    if kind == "upsert":
        return parse(ops.Upsert, {"points": [{"id": rng.randrange(40), "vector": [1.0, 2.0],
                                                 "payload": _random_payload(rng)}
                                                for _ in range(rng.randint(1, 6))]})
    if kind == "set":
        return parse(ops.SetPayload, {"payload": _random_payload(rng), **_random_selector(rng)})
    if kind == "set_key":
        return parse(ops.SetPayload, {"payload": {"k": _random_value(rng)}, "key": "obj",
                                         **_random_selector(rng)})
    if kind == "overwrite":
        return parse(ops.OverwritePayload, {"payload": _random_payload(rng), **_random_selector(rng)})
    if kind == "delete_payload":
        return parse(ops.DeletePayload, {"keys": rng.sample(["k", "obj.k", "tags", "n"], 2),
                                            **_random_selector(rng)})
    if kind == "clear":
        return parse(ops.ClearPayload, _random_selector(rng))
    if kind == "delete":
        return parse(ops.DeletePoints, _random_selector(rng))
    return parse(ops.Batch, {"operations": [
        {"overwrite_payload": {"payload": _random_payload(rng), **_random_selector(rng)}},
        {"delete": _random_selector(rng)}]})


def _run_random_log(log: StateLog, seed: int, steps: int, check_every_step: bool) -> None:
    rng = random.Random(seed)
    for _ in range(steps):
        try:
            log.do(_random_op(rng))
        except QdrantError:
            pass  # a missing id: what ran before stays, and the index must follow it
        if check_every_step:
            assert_consistent(log.col())


@pytest.mark.parametrize("seed", range(4))
def test_random_writes_keep_the_index_equal_to_a_rebuild(log, seed):
    _run_random_log(log, seed, 150, check_every_step=True)
    assert set(log.col().payload_index.paths()) == {parse_path(p) for p in PATHS}


def test_index_is_deterministic_across_replays_and_restarts(tmp_path):
    """Two replicas applying the same log, one of them restarted in the middle (it
    reloads from RocksDB and rebuilds its indexes on demand), index the same."""
    replicas = []
    for name, restart in (("one", False), ("two", True)):
        lg = StateLog(str(tmp_path / name))
        lg.do(parse(ops.CreateCollection, {"vectors": {"size": 2, "distance": "Dot"}}))
        _run_random_log(lg, 99, 100, check_every_step=False)
        if restart:
            lg.reopen()
            assert lg.col().payload_index.paths() == []
        rng = random.Random(100)
        for _ in range(60):
            try:
                lg.do(_random_op(rng))
            except QdrantError:
                pass
        replicas.append(lg)
    one, two = (lg.col() for lg in replicas)
    for path in PATHS:
        assert contents(one.payload_index.field(parse_path(path))) == \
            contents(two.payload_index.field(parse_path(path))), path
        assert contents(one.payload_index.field(parse_path(path))) == rebuilt(one, path)
    for lg in replicas:
        lg.state.close()
