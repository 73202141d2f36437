"""``storage.apply.apply`` on its own: every operation kind, its errors, point versions,
and determinism, against a real RocksDB-backed ``State`` in a temp dir (no broker).

Commands are built the way the REST API builds them (``api.rest.bodies.parse``), so
these are the semantics a request or a hand-written record gets.
"""
import random
import uuid

import numpy as np
import pytest

from api.rest.bodies import parse
from storage import operations as ops
from storage.apply import apply
from storage.digest import digest
from storage.errors import BadRequest, Conflict, NotFound, QdrantError
from storage.ids import encode_id
from storage.state import State
from streams.codec import decode, encode

TOPIC = "t"
U1 = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"
U2 = "936da01f-9abd-4d9d-80c7-02af85c822a8"


def cmd(collection: str, kind: str, **body) -> ops.Command:
    return ops.Command(collection, parse(ops.KINDS[kind], body))


class Log:
    """Applies commands at consecutive offsets, like the applier does, and commits."""

    def __init__(self, state: State):
        self.state = state
        self.offset = -1

    def __call__(self, collection: str, kind: str, **body) -> int:
        """Apply one command; return its offset. Errors propagate (after the commit)."""
        self.offset += 1
        txn = self.state.transaction(TOPIC)
        try:
            apply(self.state, cmd(collection, kind, **body), self.offset)
        finally:
            txn.set_offset(0, self.offset)
            txn.commit()
        return self.offset


@pytest.fixture
def state(tmp_path):
    s = State(str(tmp_path / "state"))
    yield s
    s.close()


@pytest.fixture
def log(state):
    return Log(state)


def point(state: State, collection: str, pid):
    return state.collections[collection].points.get(encode_id(pid))


def vectors(state: State, collection: str, pid) -> dict:
    col = state.collections[collection]
    return {n: v.tolist() for n, v in col.point_vectors(encode_id(pid)).items()}


def view(state: State) -> dict:
    """Everything a client can observe, per collection, in scroll order."""
    out = {}
    for name, col in sorted(state.collections.items()):
        out[name] = {
            "config": col.config.to_json(),
            "points": [(p.id, p.version, p.payload, {n: v.tobytes() for n, v in col.point_vectors(k).items()})
                       for k in col.order for p in [col.points[k]]],
        }
    return out


def rocks(state: State) -> list:
    """Every key and value in every column family, as bytes."""
    out = []
    for cf_name in ("default", "meta", "points"):
        cf = state.db if cf_name == "default" else state.db.get_column_family(cf_name)
        out.extend((cf_name, bytes(k), bytes(v)) for k, v in cf.items())
        if cf is not state.db:
            cf.close()
    return out


@pytest.fixture
def plain(log):
    log("plain", "create_collection", vectors={"size": 3, "distance": "Dot"})
    return log


@pytest.fixture
def named(log):
    log("named", "create_collection", vectors={"a": {"size": 2, "distance": "Cosine"},
                                               "b": {"size": 3, "distance": "Euclid"}})
    return log


# =========================================================================== collections

def test_create_and_delete_collection(state, log):
    log("c", "create_collection", vectors={"size": 2, "distance": "Manhattan"})
    with pytest.raises(Conflict):
        log("c", "create_collection", vectors={"size": 2, "distance": "Dot"})
    assert state.collections["c"].config.vectors[""].distance == "Manhattan"
    log("c", "upsert", points=[{"id": 1, "vector": [1, 2]}])
    log("c", "delete_collection")
    assert "c" not in state.collections
    log("c", "delete_collection")  # deleting a missing collection is a no-op
    with pytest.raises(NotFound, match="Collection `c` doesn't exist"):
        log("c", "upsert", points=[{"id": 1, "vector": [1, 2]}])


def test_recreated_collection_sees_no_old_points(tmp_path):
    state = State(str(tmp_path / "s"))
    log = Log(state)
    log("c", "create_collection", vectors={"size": 2, "distance": "Dot"})
    log("c", "upsert", points=[{"id": i, "vector": [i, 1]} for i in range(5)])
    old_cid = state.collections["c"].cid
    log("c", "delete_collection")
    log("c", "create_collection", vectors={"size": 2, "distance": "Dot"})
    assert state.collections["c"].cid != old_cid and len(state.collections["c"]) == 0
    log("c", "upsert", points=[{"id": 9, "vector": [1, 1]}])
    state.close()
    state = State(str(tmp_path / "s"))
    try:
        assert [p.id for p in state.collections["c"].points.values()] == [9]
        # and RocksDB holds no point of the old collection either
        stored = [key for cf, key, _ in rocks(state) if cf == "points"]
        assert stored == [state.collections["c"].cid.to_bytes(4, "big") + encode_id(9)]
    finally:
        state.close()


# =========================================================================== upsert

def test_upsert_replaces_the_whole_point(state, named):
    named("named", "upsert", points=[{"id": 1, "vector": {"a": [3, 4], "b": [1, 2, 3]}, "payload": {"k": 1, "x": 2}}])
    assert vectors(state, "named", 1) == {"a": [0.6000000238418579, 0.800000011920929], "b": [1, 2, 3]}
    off = named("named", "upsert", points=[{"id": 1, "vector": {"b": [4, 5, 6]}, "payload": {"y": 3}}])
    p = point(state, "named", 1)
    assert (p.payload, p.version) == ({"y": 3}, off)
    assert vectors(state, "named", 1) == {"b": [4, 5, 6]}  # the omitted vector is gone
    named("named", "upsert", points=[{"id": 1, "vector": {}}])
    assert point(state, "named", 1).payload == {} and vectors(state, "named", 1) == {}


def test_cosine_vectors_are_normalized_unless_shorter_than_epsilon(state, log):
    # As the server does (and unlike local mode's search, which normalizes again).
    log("c", "create_collection", vectors={"size": 3, "distance": "Cosine"})
    log("c", "upsert", points=[{"id": 1, "vector": [3, 0, 4]}, {"id": 2, "vector": [1e-9, 0, -1e-9]},
                               {"id": 3, "vector": [0, 0, 0]}])
    assert vectors(state, "c", 1) == {"": [np.float32(0.6).item(), 0.0, np.float32(0.8).item()]}
    assert vectors(state, "c", 2) == {"": [np.float32(1e-9).item(), 0.0, np.float32(-1e-9).item()]}
    assert vectors(state, "c", 3) == {"": [0.0, 0.0, 0.0]}


def test_upsert_ids_in_every_spelling_are_one_point(state, plain):
    spellings = [U1, U1.upper(), U1.replace("-", ""), "{" + U1 + "}", "urn:uuid:" + U1]
    for i, spelled in enumerate(spellings):
        plain("plain", "upsert", points=[{"id": spelled, "vector": [1, 2, i], "payload": {"i": i}}])
    col = state.collections["plain"]
    assert len(col) == 1 and point(state, "plain", U1).payload == {"i": 4}


def test_upsert_batch_and_duplicates(state, plain):
    off = plain("plain", "upsert", batch={"ids": [2, 1, 2], "vectors": [[1, 1, 1], [2, 2, 2], [3, 3, 3]],
                                          "payloads": [{"n": 1}, None, {"n": 3}]})
    assert [p.id for p in state.collections["plain"].points.values()] == [2, 1]
    assert point(state, "plain", 2).payload == {"n": 3} and vectors(state, "plain", 2) == {"": [3, 3, 3]}
    assert point(state, "plain", 1).payload == {} and point(state, "plain", 1).version == off


def test_upsert_scroll_order_is_ints_then_uuids(state, plain):
    ids = [U2, 2**64 - 1, 7, U1, 0]
    plain("plain", "upsert", points=[{"id": i, "vector": [1, 2, 3]} for i in ids])
    col = state.collections["plain"]
    assert [col.points[k].id for k in col.order] == [0, 7, 2**64 - 1, U1, U2]


def test_upsert_with_a_bad_vector_changes_nothing(state, plain, named):
    plain("plain", "upsert", points=[{"id": 1, "vector": [1, 2, 3]}])
    before = view(state)
    with pytest.raises(BadRequest, match="expected dim: 3, got 2"):
        plain("plain", "upsert", points=[{"id": 2, "vector": [1, 2, 3]}, {"id": 3, "vector": [1, 2]}])
    with pytest.raises(BadRequest, match="Not existing vector name error: c"):
        named("named", "upsert", points=[{"id": 2, "vector": {"a": [1, 2]}}, {"id": 3, "vector": {"c": [1]}}])
    with pytest.raises(BadRequest, match="Not existing vector name"):
        named("named", "upsert", points=[{"id": 2, "vector": [1, 2]}])  # unnamed form, named collection
    assert view(state) == before


def test_conditional_upsert(state, plain):
    plain("plain", "upsert", points=[{"id": 1, "vector": [1, 1, 1], "payload": {"k": "keep"}},
                                     {"id": 2, "vector": [2, 2, 2], "payload": {"k": "swap"}}])
    off = plain("plain", "upsert", points=[{"id": i, "vector": [9, 9, 9], "payload": {"new": True}} for i in (1, 2, 3)],
                update_filter={"must": [{"key": "k", "match": {"value": "swap"}}]})
    assert point(state, "plain", 1).payload == {"k": "keep"}  # existing, not matching: untouched
    assert point(state, "plain", 2).payload == {"new": True} and point(state, "plain", 2).version == off
    assert point(state, "plain", 3).payload == {"new": True}  # new points are inserted regardless
    plain("plain", "upsert", points=[{"id": 1, "vector": [0, 0, 1]}, {"id": 4, "vector": [0, 0, 1]}],
          update_mode="insert_only")
    assert point(state, "plain", 1).payload == {"k": "keep"} and point(state, "plain", 4) is not None
    plain("plain", "upsert", points=[{"id": 1, "vector": [0, 0, 1]}, {"id": 5, "vector": [0, 0, 1]}],
          update_mode="update_only")
    assert point(state, "plain", 1).payload == {} and point(state, "plain", 5) is None


# =========================================================================== vectors

def test_update_vectors_replaces_only_the_named_ones(state, named):
    first = named("named", "upsert", points=[{"id": 1, "vector": {"a": [1, 0], "b": [1, 1, 1]}, "payload": {"p": 1}},
                                             {"id": 2, "vector": {"b": [2, 2, 2]}}])
    off = named("named", "update_vectors", points=[{"id": 2, "vector": {"a": [0, 5]}}])
    assert vectors(state, "named", 2) == {"a": [0, 1], "b": [2, 2, 2]}
    assert point(state, "named", 2).version == off and point(state, "named", 1).version == first
    assert point(state, "named", 2).payload == {}


def test_update_vectors_of_a_missing_point_updates_the_others_then_404(state, named):
    named("named", "upsert", points=[{"id": i, "vector": {"b": [i, i, i]}} for i in (1, 2)])
    with pytest.raises(NotFound, match="No point with id 77 found"):
        named("named", "update_vectors", points=[{"id": 1, "vector": {"b": [5, 5, 5]}},
                                                 {"id": 77, "vector": {"b": [5, 5, 5]}},
                                                 {"id": 78, "vector": {"b": [5, 5, 5]}},
                                                 {"id": 2, "vector": {"b": [6, 6, 6]}}])
    off = named.offset
    assert vectors(state, "named", 1) == {"b": [5, 5, 5]} and vectors(state, "named", 2) == {"b": [6, 6, 6]}
    assert point(state, "named", 1).version == off and point(state, "named", 77) is None
    with pytest.raises(BadRequest, match="expected dim: 2, got 3"):
        named("named", "update_vectors", points=[{"id": 1, "vector": {"a": [1, 2, 3]}}])


def test_delete_vectors_keeps_the_point(state, named):
    named("named", "upsert", points=[{"id": 1, "vector": {"a": [1, 0], "b": [1, 1, 1]}, "payload": {"p": 1}},
                                     {"id": 2, "vector": {"a": [0, 1]}, "payload": {"p": 2}}])
    off = named("named", "delete_vectors", vector=["a"], filter={"must": [{"key": "p", "match": {"value": 1}}]})
    assert vectors(state, "named", 1) == {"b": [1, 1, 1]} and point(state, "named", 1).version == off
    assert vectors(state, "named", 2) == {"a": [0, 1]} and point(state, "named", 2).version == off - 1
    with pytest.raises(NotFound, match="No point with id 3 found"):
        named("named", "delete_vectors", vector=["a", "b"], points=[3, 2, 1])
    assert vectors(state, "named", 1) == {} and vectors(state, "named", 2) == {}
    assert len(state.collections["named"]) == 2
    with pytest.raises(BadRequest, match="Not existing vector name error: zz"):
        named("named", "delete_vectors", vector=["zz"], points=[1])


# =========================================================================== payload

def test_set_payload_merges_and_null_deletes(state, plain):
    plain("plain", "upsert", points=[{"id": 1, "vector": [1, 2, 3], "payload": {"a": 1, "b": {"c": 2}, "d": 4}}])
    off = plain("plain", "set_payload", points=[1], payload={"a": None, "b": {"x": 1}, "e": [1, None]})
    p = point(state, "plain", 1)
    assert p.payload == {"b": {"x": 1}, "d": 4, "e": [1, None]} and p.version == off


@pytest.mark.parametrize("before,key,value,after", [
    ({"a": {"b": 1}}, "a", {"c": 2}, {"a": {"b": 1, "c": 2}}),
    ({"a": 5}, "a.b", {"c": 2}, {"a": {"b": {"c": 2}}}),
    ({}, "x.y", {"z": None, "w": 1}, {"x": {"y": {"w": 1}}}),
    ({"arr": [{"k": 1}, 3, {"k": 2}]}, "arr[]", {"n": 0}, {"arr": [{"k": 1, "n": 0}, {"n": 0}, {"k": 2, "n": 0}]}),
    ({"arr": [{"k": 1}, {"k": 2}]}, "arr[1]", {"n": 0}, {"arr": [{"k": 1}, {"k": 2, "n": 0}]}),
    ({"arr": [{"k": 1}]}, "arr[4]", {"n": 0}, {"arr": [{"k": 1}]}),
    ({"arr": {"k": 1}}, "arr[0]", {"n": 0}, {"arr": []}),
    ({"arr": [{"b": {}}, {}]}, "arr[].b", {"n": 0}, {"arr": [{"b": {"n": 0}}, {"b": {"n": 0}}]}),
])
def test_set_payload_under_a_key(state, plain, before, key, value, after):
    plain("plain", "upsert", points=[{"id": 1, "vector": [1, 2, 3], "payload": before}])
    plain("plain", "set_payload", points=[1], payload=value, key=key)
    assert point(state, "plain", 1).payload == after


def test_payload_writes_never_share_objects_between_points(state, plain):
    plain("plain", "upsert", points=[{"id": i, "vector": [1, 2, 3], "payload": {"arr": [{}, {}]}} for i in (1, 2)])
    plain("plain", "set_payload", points=[1, 2], payload={"o": {"deep": [1]}}, key="arr[]")
    plain("plain", "set_payload", points=[1], payload={"only": 1}, key="arr[0].o")
    assert point(state, "plain", 1).payload == {"arr": [{"o": {"deep": [1], "only": 1}}, {"o": {"deep": [1]}}]}
    assert point(state, "plain", 2).payload == {"arr": [{"o": {"deep": [1]}}, {"o": {"deep": [1]}}]}


def test_payload_updates_of_missing_points_update_the_others_then_404(state, plain):
    plain("plain", "upsert", points=[{"id": i, "vector": [1, 2, 3], "payload": {"k": i}} for i in (1, 2)])
    cases = [("set_payload", {"payload": {"s": 1}}, {"k": 1, "s": 1}),
             ("overwrite_payload", {"payload": {"o": 1}}, {"o": 1}),
             ("delete_payload", {"keys": ["o"]}, {}),
             ("clear_payload", {}, {})]
    for kind, body, expected in cases:
        with pytest.raises(NotFound, match=f"No point with id {U2} found"):
            plain("plain", kind, points=[1, U2.upper(), 99], **body)
        assert point(state, "plain", 1).payload == expected, kind
        assert point(state, "plain", 1).version == plain.offset
        assert point(state, "plain", 2).payload == {"k": 2} and point(state, "plain", 2).version == 1


def test_overwrite_delete_and_clear_payload(state, plain):
    plain("plain", "upsert", points=[{"id": 1, "vector": [1, 2, 3],
                                      "payload": {"a": 1, "n": {"x": 1, "y": 2}, "arr": [{"x": 1, "z": 0}, {"x": 2}]}}])
    plain("plain", "delete_payload", points=[1], keys=["a", "n.x", "arr[].x", "missing", "arr[0]"])
    assert point(state, "plain", 1).payload == {"n": {"y": 2}, "arr": [{"z": 0}, {}]}
    plain("plain", "overwrite_payload", points=[1], payload={"fresh": [1]})
    assert point(state, "plain", 1).payload == {"fresh": [1]}
    plain("plain", "delete_payload", points=[1], keys=["fresh[]"])
    assert point(state, "plain", 1).payload == {"fresh": []}
    plain("plain", "clear_payload", points=[1])
    assert point(state, "plain", 1).payload == {}


def test_payload_updates_by_filter(state, plain):
    plain("plain", "upsert", points=[{"id": i, "vector": [1, 2, 3], "payload": {"n": i}} for i in range(6)])
    off = plain("plain", "set_payload", payload={"big": True}, filter={"must": [{"key": "n", "range": {"gte": 3}}]})
    big = {p.id for p in state.collections["plain"].points.values() if p.payload.get("big")}
    assert big == {3, 4, 5} and {point(state, "plain", i).version for i in big} == {off}
    plain("plain", "set_payload", payload={"none": 1}, filter={"must": [{"key": "n", "match": {"value": 99}}]})
    assert all(point(state, "plain", i).version <= off for i in range(6))  # matched nothing: no change


# =========================================================================== delete points

def test_delete_points_by_ids_and_filter(state, plain):
    plain("plain", "upsert", points=[{"id": i, "vector": [1, 2, 3], "payload": {"n": i}} for i in range(6)])
    plain("plain", "delete", points=[0, 77, U1])  # missing ids are no error
    plain("plain", "delete", filter={"must": [{"key": "n", "range": {"gt": 3}}]})
    col = state.collections["plain"]
    assert [col.points[k].id for k in col.order] == [1, 2, 3]
    assert all(encode_id(i) not in col.vectors[""] for i in (0, 4, 5))
    before = view(state)
    plain("plain", "delete", filter={"must": [{"key": "n", "match": {"value": 99}}]})
    assert view(state) == before


# =========================================================================== batch

def test_batch_applies_in_order_and_stops_at_the_first_error(state, plain):
    with pytest.raises(NotFound, match="No point with id 5 found"):
        plain("plain", "batch", operations=[
            {"upsert": {"points": [{"id": 1, "vector": [1, 2, 3]}, {"id": 2, "vector": [1, 2, 3]}]}},
            {"set_payload": {"points": [1], "payload": {"a": 1}}},
            {"delete": {"points": [2]}},
            {"set_payload": {"points": [1, 5], "payload": {"b": 2}}},
            {"upsert": {"points": [{"id": 3, "vector": [1, 2, 3]}]}},
        ])
    off = plain.offset
    col = state.collections["plain"]
    assert [col.points[k].id for k in col.order] == [1]
    assert point(state, "plain", 1).payload == {"a": 1, "b": 2} and point(state, "plain", 1).version == off
    # A bad vector anywhere rejects the whole batch before anything is applied.
    before = view(state)
    with pytest.raises(BadRequest):
        plain("plain", "batch", operations=[{"delete": {"points": [1]}},
                                            {"upsert": {"points": [{"id": 4, "vector": [1, 2]}]}}])
    assert view(state) == before


# =========================================================================== versions

def test_versions_are_the_offset_of_the_last_change(state, named):
    o1 = named("named", "upsert", points=[{"id": i, "vector": {"a": [1, i]}, "payload": {"n": i}} for i in range(4)])
    o2 = named("named", "set_payload", points=[1], payload={"x": 1})
    o3 = named("named", "update_vectors", points=[{"id": 2, "vector": {"b": [1, 2, 3]}}])
    o4 = named("named", "delete_vectors", points=[3], vector=["a"])
    named("named", "delete", points=[99])
    named("named", "clear_payload", filter={"must": [{"key": "n", "match": {"value": 42}}]})
    versions = {p.id: p.version for p in state.collections["named"].points.values()}
    assert versions == {0: o1, 1: o2, 2: o3, 3: o4}
    assert state.applied_offset(TOPIC, 0) == named.offset
    assert digest(state)["named"].startswith("4 points ")


# =========================================================================== determinism

def _random_log(seed: int, n: int) -> list:
    """A seeded sequence of commands over two collections: every kind, ids in every
    spelling, a delete and recreate, and commands that fail."""
    rng = random.Random(seed)
    uuids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(8)]
    pool = list(range(12)) + [2**64 - 1] + uuids
    specs = {"p": {"size": 3, "distance": "Cosine"},
             "q": {"u": {"size": 2, "distance": "Dot"}, "v": {"size": 4, "distance": "Manhattan"}}}

    def pid():
        i = rng.choice(pool)
        if isinstance(i, str) and rng.random() < 0.5:
            return rng.choice([i.upper(), uuid.UUID(i).hex, "{" + i + "}", "urn:uuid:" + i])
        return i

    def vec(c):
        if c == "p":
            return [rng.uniform(-1, 1) for _ in range(3)]
        return {n: [rng.uniform(-1, 1) for _ in range(s["size"])] for n, s in specs["q"].items() if rng.random() < 0.7}

    def payload():
        return {k: rng.choice([1, 2.5, "s", None, [1, {"x": 2}], {"y": {"z": 1}}, True])
                for k in rng.sample(["a", "b", "c", "d"], rng.randint(0, 3))}

    def where():
        if rng.random() < 0.3:
            return {"filter": {"must": [{"key": "a", "match": {"value": 1}}]}}
        return {"points": [pid() for _ in range(rng.randint(1, 3))]}

    out = [("p", "create_collection", {"vectors": specs["p"]}), ("q", "create_collection", {"vectors": specs["q"]})]
    for i in range(n):
        c = rng.choice("pq")
        names = ["u", "v"] if c == "q" else [""]
        kind = rng.randrange(11)
        if kind < 3:
            body = ("upsert", {"points": [{"id": pid(), "vector": vec(c), "payload": payload()}
                                          for _ in range(rng.randint(1, 4))]})
        elif kind == 3:
            body = ("update_vectors", {"points": [{"id": pid(), "vector": vec(c) or {"u": [1, 2]}}]})
        elif kind == 4:
            body = ("delete_vectors", {"vector": rng.sample(names, 1), **where()})
        elif kind == 5:
            body = ("set_payload", {"payload": payload() or {"a": 1}, "key": rng.choice([None, "b", "b.c", "d[]"]),
                                    **where()})
        elif kind == 6:
            body = ("overwrite_payload", {"payload": payload(), **where()})
        elif kind == 7:
            body = ("delete_payload", {"keys": rng.sample(["a", "b", "b.c", "d[]"], 2), **where()})
        elif kind == 8:
            body = ("delete", where())
        elif kind == 9:
            body = ("batch", {"operations": [{"clear_payload": where()},
                                             {"upsert": {"points": [{"id": pid(), "vector": vec(c)}]}},
                                             {"set_payload": {"payload": {"a": 1}, **where()}}]})
        else:
            body = ("clear_payload", where())
        out.append((c, *body))
        if i == n // 2:  # the recreated collection starts empty, with a new internal id
            out += [("p", "delete_collection", {}), ("p", "create_collection", {"vectors": specs["p"]})]
    return out


def _replay(path, log: list, group: int, via_wire: bool | None) -> State:
    """Apply ``log`` to a fresh state, committing every ``group`` commands;
    ``via_wire`` sends each command through the WAL codec (True: msgpack, False: JSON)."""
    state = State(str(path))
    txn = state.transaction(TOPIC)
    for offset, (c, kind, body) in enumerate(log):
        command = cmd(c, kind, **body)
        if via_wire is not None:
            command = decode(*encode(command, binary=via_wire))
        try:
            apply(state, command, offset)
        except QdrantError:
            pass
        txn.set_offset(0, offset)
        if (offset + 1) % group == 0:
            txn.commit()
            txn = state.transaction(TOPIC)
    txn.commit()
    return state


def test_the_same_log_yields_the_same_state_byte_for_byte(tmp_path):
    log = _random_log(seed=11, n=400)
    states = [_replay(tmp_path / "one", log, group=1, via_wire=None),
              _replay(tmp_path / "many", log, group=37, via_wire=None),
              _replay(tmp_path / "msgpack", log, group=5, via_wire=True),
              _replay(tmp_path / "json", log, group=400, via_wire=False)]
    try:
        first = states[0]
        assert len(first.collections["p"]) > 5 and len(first.collections["q"]) > 5
        for other in states[1:]:
            assert digest(other) == digest(first)
            assert view(other) == view(first)
            assert rocks(other) == rocks(first)
    finally:
        for s in states:
            s.close()


def test_reopening_the_state_reproduces_the_same_view(tmp_path):
    log = _random_log(seed=12, n=300)
    state = _replay(tmp_path / "s", log, group=10, via_wire=True)
    before, before_digest = view(state), digest(state)
    assert sum(len(v["points"]) for v in before.values()) > 10
    state.close()
    state = State(str(tmp_path / "s"))
    try:
        assert view(state) == before and digest(state) == before_digest
        # Searches read the vector stores: they must be rebuilt as they were.
        for col in state.collections.values():
            for name, store in col.vectors.items():
                assert len(store) == sum(1 for k in col.order if col.point_vectors(k).get(name) is not None)
                for key in store.slot_of:
                    assert key in col.points
        # And it goes on from there like a state that never closed.
        txn = state.transaction(TOPIC)
        apply(state, cmd("p", "upsert", points=[{"id": 1000, "vector": [1, 0, 0]}]), len(log))
        txn.set_offset(0, len(log))
        txn.commit()
        assert point(state, "p", 1000).version == len(log)
        assert np.allclose(state.collections["p"].vectors[""].get(encode_id(1000)), [1, 0, 0])
    finally:
        state.close()
