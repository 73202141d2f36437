"""Applying a shard topic's records to the shards this node holds.

A sharded collection's shard ``i`` is partition ``i`` of its topic; this node keeps
the shard in a hidden collection (storage/shards.py) and applies the partition to it
with the same ``apply`` as the WAL, idempotently and atomically with the partition's
applied offset (the ``Applier`` machinery: duplicates, gaps, dead letters).

Two kinds of records reach a shard:
- point operations by id, already split by the API (or a producer) for this shard;
- ``shard_barrier`` records, each naming a WAL offset: every operation that had to
  reach all shards (by filter, batches, payload indexes, settings; and the
  collection's creation, first of all) and was kept by the WAL's applier up to there
  is applied here, in WAL order. So every shard applies them in the same relative
  order, at a fixed place in its own log: the state a shard reaches is a function of
  its partition and the WAL, whichever node applies it and however often.
A point touched by either gets this shard topic's offset as its version.
"""
import logging

from storage import operations as ops
from storage import shards
from storage.apply import apply
from storage.errors import BadRequest, QdrantError
from streams.applier import Applied, Applier, Record
from streams.codec import DecodeError, decode

log = logging.getLogger(__name__)


def control_scope(topic: str) -> bytes:
    """Where a shard keeps the failures of the WAL operations it applied at barriers."""
    return b"ctl:" + topic.encode()


class NotYetKnown(Exception):
    """The WAL that creates this shard's collection is not applied here yet."""


class ShardApplier(Applier):
    def __init__(self, state, topic: str, incarnation: str):
        super().__init__(state, topic)
        self.incarnation = incarnation
        self.scope = topic.encode()
        self.letter_topic = topic
        self._catalog = None  # the sharded collection, looked up at each transaction

    def catalog(self):
        """The sharded collection in this node's catalog, or None once it is deleted.
        Raises NotYetKnown while the WAL that creates it is not applied here."""
        for col in self.state.collections.values():
            if shards.is_sharded(col) and shards.incarnation(col) == self.incarnation:
                return col
        if self.state.is_gone(self.incarnation):
            return None
        raise NotYetKnown(self.incarnation)

    def _transaction(self):
        self._catalog = self.catalog()  # before the transaction: NotYetKnown leaves nothing open
        return self.state.transaction(self.topic, self.scope)

    def _apply_one(self, rec: Record, result: Applied) -> None:
        if self._catalog is not None:  # None: the collection is deleted, its records are no-ops
            self._apply_shard_record(self._catalog, rec, result)

    def _apply_shard_record(self, col, rec: Record, result: Applied) -> None:
        shard, count = rec.partition, shards.shard_count(col.config)
        try:
            command = decode(rec.key, rec.value, rec.headers)
        except DecodeError as exc:
            self._dead(rec, result, exc)
            return
        if shard >= count:
            self._dead(rec, result, BadRequest(f"partition {shard} is past the collection's {count} shards"))
            return
        self._catch_up(col, shard, col.created_offset, rec.offset, result)
        op = command.op
        if isinstance(op, ops.ShardBarrier):
            self._catch_up(col, shard, op.upto, rec.offset, result)
            return
        if isinstance(op, (ops.CreateCollection, ops.DeleteCollection, ops.UpdateAliases) + shards.CATALOG_OPS):
            self._dead(rec, result, BadRequest(f"`{op.kind}` belongs in the WAL, not in a shard topic"))
            return
        part = shards.restrict(op, shard, count)
        if part is None:
            return
        try:
            apply(self.state, ops.Command(shards.shard_name(self.incarnation, shard), part), rec.offset)
        except QdrantError as exc:
            result.txn.record_failure(rec.partition, rec.offset, exc.to_dict())
            if type(exc) is BadRequest:
                self._dead(rec, result, exc, failure_recorded=True)
            return
        except Exception as exc:
            log.exception("applying %s:%s:%s failed", self.topic, rec.partition, rec.offset)
            self._dead(rec, result, BadRequest(f"internal error while applying: {type(exc).__name__}: {exc}"))
            return
        result.points += part.points_written()

    def _catch_up(self, col, shard: int, upto: int, offset: int, result: Applied) -> None:
        """Apply the kept WAL operations up to ``upto`` not yet applied to this shard."""
        done = self.state.control_applied(self.incarnation, shard)
        if done >= upto:
            return
        hidden = shards.shard_name(self.incarnation, shard)
        count = shards.shard_count(col.config)
        for wal_offset, key, value, headers in self.state.controls(self.incarnation, done, upto):
            command = decode(key, value, headers)  # the WAL's applier checked it before keeping it
            op = command.op
            try:
                if isinstance(op, ops.CreateCollection):
                    apply(self.state, ops.Command(hidden, op), wal_offset)
                else:
                    part = shards.restrict(op, shard, count)
                    if part is not None:
                        apply(self.state, ops.Command(hidden, part), offset)
            except QdrantError as exc:
                result.txn.record_failure(shard, wal_offset, exc.to_dict(), scope=control_scope(self.topic))
            self.state.mark_control(self.incarnation, shard, wal_offset)
        if self.state.control_applied(self.incarnation, shard) < upto:
            self.state.mark_control(self.incarnation, shard, upto)

