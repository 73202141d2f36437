"""Which shard holds a point, and what part of an operation each shard applies.

A collection created with ``shard_number: N > 1`` keeps its points in N shards, each
a partition of its own topic (streams/shard_worker.py). This module is the pure part
of that: the hash that places a point, how an operation addressed to the collection
splits into per-shard operations (by point id), which operations must reach every
shard instead (by filter, batches, payload indexes, collection settings), and the
hidden collection a node keeps a shard in.

The placement is a fixed function of the point id and N (crc32 of the id's key
bytes, the same bytes that order points), so every node, producer and replay agrees
on it without asking anyone.
"""
import dataclasses
import zlib

from storage import operations as ops
from storage.ids import encode_id

# A shard lives in the node's state as a collection under a name no user collection
# can have ("\0" is refused in names): "\0<incarnation>/<shard>".
HIDDEN = "\0"


def shard_count(config) -> int:
    return int(config.extra.get("shard_number") or 1)


def is_sharded(col) -> bool:
    return col is not None and not is_shard(col.name) and shard_count(col.config) > 1


def replication(config) -> int:
    return max(1, int(config.extra.get("replication_factor") or 1))


def shard_of(point_id, shards: int) -> int:
    return zlib.crc32(encode_id(point_id)) % shards


def incarnation(col) -> str:
    """What tells this collection from an earlier or later one of the same name: the
    offset of its creation, and the name's hash, which keeps two collections created at
    the same offset of different WAL partitions apart."""
    return f"{col.created_offset}.{zlib.crc32(col.name.encode()):08x}"


def shard_name(incarnation_id: str, shard: int) -> str:
    return f"{HIDDEN}{incarnation_id}/{shard}"


def is_shard(name: str) -> bool:
    return name.startswith(HIDDEN)


def shard_topic(wal_topic: str, incarnation_id: str) -> str:
    """The topic of a sharded collection's point operations, one partition per shard."""
    return f"{wal_topic}.shards.{incarnation_id}"


def topic_incarnation(wal_topic: str, topic: str) -> str | None:
    prefix = f"{wal_topic}.shards."
    return topic[len(prefix):] if topic.startswith(prefix) else None


# Operations that address points by id: they split by shard. Upserts and vector updates
# carry their points; the others a selector, which splits only when it lists ids.
_BY_POINTS = (ops.Upsert, ops.UpdateVectors)
_BY_SELECTOR = (ops.DeleteVectors, ops.SetPayload, ops.OverwritePayload, ops.DeletePayload, ops.ClearPayload,
                ops.DeletePoints)
# Operations that change the collection itself: the catalog applies them too.
CATALOG_OPS = (ops.UpdateCollection, ops.CreateFieldIndex, ops.DeleteFieldIndex)


def split(op: ops.Operation, shards: int) -> dict | None:
    """{shard: the part of ``op`` for that shard} for an operation by point ids; None
    for one that must reach every shard in the log's order (by filter, a batch, a
    payload index or settings change)."""
    if isinstance(op, _BY_POINTS):
        groups: dict = {}
        for p in op.points:
            groups.setdefault(shard_of(p.id, shards), []).append(p)
        return {s: dataclasses.replace(op, points=pts) for s, pts in sorted(groups.items())}
    if isinstance(op, _BY_SELECTOR) and op.selector.ids is not None and op.selector.filter is None:
        groups = {}
        for pid in op.selector.ids:
            groups.setdefault(shard_of(pid, shards), []).append(pid)
        return {s: dataclasses.replace(op, selector=ops.PointsSelector(ids=ids)) for s, ids in sorted(groups.items())}
    return None


def restrict(op: ops.Operation, shard: int, shards: int) -> ops.Operation | None:
    """The part of an operation that reached every shard which concerns ``shard``:
    points and ids of other shards left out; None when nothing is left (a shard never
    answers "empty request" for points it does not hold)."""
    if isinstance(op, ops.Batch):
        inner = [r for r in (restrict(o, shard, shards) for o in op.operations) if r is not None]
        return dataclasses.replace(op, operations=inner) if inner else None
    if isinstance(op, _BY_POINTS):
        pts = [p for p in op.points if shard_of(p.id, shards) == shard]
        return dataclasses.replace(op, points=pts) if pts else None
    if isinstance(op, _BY_SELECTOR) and op.selector.ids is not None:
        ids = [pid for pid in op.selector.ids if shard_of(pid, shards) == shard]
        if not ids:
            return None
        return dataclasses.replace(op, selector=dataclasses.replace(op.selector, ids=ids))
    return op
