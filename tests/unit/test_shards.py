"""Sharded collections without a broker: placement, splitting, and the shard applier's
barriers (the same logs give the same shards, in any grouping, and equal an unsharded
collection fed the same operations)."""
import numpy as np

from storage import operations as ops
from storage import shards
from storage.digest import digest
from storage.state import State
from streams.applier import Applier, Record
from streams.codec import encode, from_wire
from streams.shard_applier import ShardApplier

WAL = "pointlog.ops"
N = 3


def rec(offset: int, collection: str, op: str, partition: int = 0, **body) -> Record:
    key, value, headers = encode(ops.Command(collection, from_wire({"op": op, **body})))
    return Record(partition, offset, key, value, headers)


def test_split_keeps_every_point_once_and_places_it_by_id():
    op = from_wire({"op": "upsert", "points": [{"id": i, "vector": [1.0, 2.0]} for i in range(50)]})
    parts = shards.split(op, N)
    ids = sorted(p.id for part in parts.values() for p in part.points)
    assert ids == list(range(50))
    for shard, part in parts.items():
        assert all(shards.shard_of(p.id, N) == shard for p in part.points)


def test_filters_and_batches_reach_every_shard_and_are_restricted_there():
    by_filter = from_wire({"op": "set_payload", "payload": {"a": 1}, "filter": {"must": []}})
    assert shards.split(by_filter, N) is None
    assert shards.restrict(by_filter, 1, N) is by_filter
    batch = from_wire({"op": "batch", "operations": [
        {"upsert": {"points": [{"id": i, "vector": [0.0, 1.0]} for i in range(6)]}},
        {"delete": {"points": [0]}}]})
    assert shards.split(batch, N) is None
    kept = [shards.restrict(batch, s, N) for s in range(N)]
    upserted = sorted(p.id for k in kept if k for p in k.operations[0].points)
    assert upserted == list(range(6))
    holder = shards.shard_of(0, N)
    assert [type(o).__name__ for o in kept[holder].operations] == ["Upsert", "DeletePoints"]
    ids = from_wire({"op": "delete", "points": [5]})
    assert shards.restrict(ids, (shards.shard_of(5, N) + 1) % N, N) is None


def _logs():
    """A WAL creating a sharded collection with kept operations, and the shard topic's
    records (split upserts and barriers) as the API writes them."""
    rng = np.random.default_rng(3)
    wal = [rec(0, "c", "create_collection", vectors={"size": 3, "distance": "Cosine"}, shard_number=N),
           rec(1, "c", "create_field_index", field_name="g", field_schema="integer"),
           rec(2, "c", "set_payload", payload={"hit": True}, filter={"must": [{"key": "g", "match": {"value": 1}}]}),
           rec(3, "c", "delete", filter={"must": [{"key": "g", "match": {"value": 2}}]})]
    points = [{"id": i, "vector": rng.random(3).tolist(), "payload": {"g": i % 3}} for i in range(40)]
    by_shard = {s: [] for s in range(N)}
    for shard, part in shards.split(from_wire({"op": "upsert", "points": points}), N).items():
        key, value, headers = encode(ops.Command("c", part))
        by_shard[shard].append((key, value, headers))
    for upto in (1, 3):  # barriers: the index and filter ops, in WAL order, after the upserts
        for shard in range(N):
            by_shard[shard].append(encode(ops.Command("c", ops.ShardBarrier(upto=upto))))
    return wal, {s: [Record(s, i, *r) for i, r in enumerate(rs)] for s, rs in by_shard.items()}


def _apply(tmp_path, name: str, group: int) -> State:
    wal, shard_log = _logs()
    state = State(str(tmp_path / name))
    Applier(state, WAL).apply_and_commit(wal)
    col = state.collections["c"]
    topic = shards.shard_topic(WAL, shards.incarnation(col))
    applier = ShardApplier(state, topic, shards.incarnation(col))
    for shard in range(N):
        records = shard_log[shard]
        for i in range(0, len(records), group):
            applier.apply_and_commit(records[i:i + group])
    return state


def test_shards_apply_kept_operations_at_their_barriers_deterministically(tmp_path):
    one = _apply(tmp_path, "one", 1)
    many = _apply(tmp_path, "many", 100)
    assert digest(one) == digest(many)
    which = shards.incarnation(one.collections["c"])
    held = [one.collections[shards.shard_name(which, s)] for s in range(N)]
    got = {p.id: p.payload for col in held for p in col.points.values()}
    # The same operations on one unsharded collection give the same points.
    assert sorted(got) == [i for i in range(40) if i % 3 != 2]
    assert all(got[i].get("hit") is (True if i % 3 == 1 else None) for i in got)
    assert all(col.payload_schema == {"g": "integer"} for col in held)
    assert len(one.collections["c"]) == 0  # the catalog entry holds no points


def test_a_deleted_sharded_collection_takes_its_shards_with_it(tmp_path):
    state = _apply(tmp_path, "s", 10)
    which = shards.incarnation(state.collections["c"])
    Applier(state, WAL).apply_and_commit([rec(4, "c", "delete_collection")])
    assert not any(shards.is_shard(name) for name in state.collections)
    assert state.is_gone(which)
    assert state.controls(which, -1, 10) == []


def test_the_assignor_spreads_shards_evenly_and_moves_only_what_it_must():
    from streams.shard_worker import owners_of
    nodes = ["a", "b", "c"]
    plan = owners_of(nodes, "t", list(range(6)), 1)
    load = {n: sum(1 for owners in plan.values() if n in owners) for n in nodes}
    assert sorted(load.values()) == [2, 2, 2]
    replicated = owners_of(nodes, "t", list(range(6)), 2)
    assert all(len(set(owners)) == 2 for owners in replicated.values())
    assert sorted(sum(1 for o in replicated.values() if n in o) for n in nodes) == [4, 4, 4]
    # "c" leaves: the shards "a" and "b" held stay where they were.
    after = owners_of(["a", "b"], "t", list(range(6)), 1)
    assert all(after[p] == plan[p] for p in plan if plan[p][0] != "c")
    assert owners_of(nodes, "t", list(range(6)), 1) == plan  # the same members, the same plan
