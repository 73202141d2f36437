"""Applying WAL records to the state, idempotently, in groups.

``Applier.apply_and_commit`` is the synchronous heart of every consumer of the log
(the faust agent, rebuild, restore): it decodes each record, applies it, stages
everything with the new applied offsets in one state transaction and commits it
atomically. Then:
- a record at or below the applied offset is a duplicate (redelivered after a
  crash or a rebalance) and is skipped;
- a record past applied + 1 from a consumer we do not position ourselves is a gap:
  application stops there and the caller reads the missing range from the broker
  (``contiguous=False`` for records read in order from a known position, where a
  skipped offset is one the broker confirmed holds no record, e.g. a transaction
  marker);
- a record that cannot be decoded or validated is a dead letter: skipped, and
  staged in the state's outbox, from which ``streams.outbox`` copies it to the DLQ
  topic after the commit.

The state's applied offsets move only when the transaction commits; the applier
keeps no copy of them.
"""
import logging
from dataclasses import dataclass, field

from storage import operations as ops
from storage import shards
from storage.apply import apply
from storage.errors import BadRequest, QdrantError
from storage.state import State
from storage.transaction import DeadLetter as OutboxLetter
from storage.transaction import Transaction
from streams.codec import DecodeError, decode

log = logging.getLogger(__name__)


@dataclass
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)
    timestamp: int | None = None


@dataclass
class DeadLetter:
    record: Record
    reason: str


@dataclass
class Gap:
    """Offsets ``expected`` .. ``got - 1`` of a partition were not delivered."""
    partition: int
    expected: int
    got: int


@dataclass
class Applied:
    txn: Transaction  # what the group staged
    dead: list = field(default_factory=list)  # DeadLetter
    gap: Gap | None = None  # where application stopped
    rest: list = field(default_factory=list)  # the records from the gap on, not looked at
    records: int = 0  # records applied (dead letters included)
    points: int = 0  # points written by upserts and vector updates, for throughput figures
    # (incarnation, WAL partition, offset) of the records kept for a sharded collection's
    # shards, which apply them at their next barrier (streams/shard_worker.py)
    controls: list = field(default_factory=list)

    @property
    def offsets(self) -> dict:
        """partition -> last offset in this group."""
        return self.txn.offsets

    @property
    def failures(self) -> list:
        """(partition, offset, error dict)."""
        return self.txn.failures


class Applier:
    letter_topic = ""  # the topic its dead letters name, when it is not the WAL

    def __init__(self, state: State, topic: str):
        self.state = state
        self.topic = topic

    def applied(self, partition: int) -> int:
        """The committed applied offset of a partition (the state owns it)."""
        return self.state.applied_offset(self.topic, partition)

    def apply_and_commit(self, records, contiguous: bool = True) -> Applied:
        """Apply a group and commit it in one synchronous call.

        This is where the invariant that makes every read consistent holds: between
        the first in-memory change of a group and its commit there is no ``await``,
        so nothing else on the event loop (HTTP and gRPC reads, checkpoints, the
        outbox publisher) ever sees applied-but-uncommitted state. Keep it so:
        anything that must wait on I/O (dead letters to Kafka) goes through the
        outbox, after the commit."""
        result = self.apply_records(records, contiguous)
        self.commit(result)
        return result

    def apply_records(self, records, contiguous: bool = True) -> Applied:
        """Apply a group of records in a new state transaction, uncommitted (tests
        use it to stop before the commit, as a crash would); ``apply_and_commit`` is
        the way to apply. If ``gap`` is set, the caller reads the missing offsets from
        the broker, applies them with ``contiguous=False`` and hands ``rest`` back."""
        result = Applied(self._transaction())
        txn = result.txn
        for i, rec in enumerate(records):
            applied = txn.applied_offset(rec.partition)
            if rec.offset <= applied:
                continue
            if contiguous and rec.offset != applied + 1:
                result.gap = Gap(rec.partition, applied + 1, rec.offset)
                result.rest = list(records[i:])
                log.warning("partition %s: expected offset %s, got %s; reading the missing offsets",
                            rec.partition, applied + 1, rec.offset)
                break
            self._apply_one(rec, result)
            txn.set_offset(rec.partition, rec.offset)
            result.records += 1
        return result

    def _transaction(self) -> Transaction:
        return self.state.transaction(self.topic)

    def _apply_one(self, rec: Record, result: Applied) -> None:
        try:
            command = decode(rec.key, rec.value, rec.headers)
        except DecodeError as exc:
            self._dead(rec, result, exc)
            return
        try:
            if not self._kept_for_shards(command, rec, result):
                apply(self.state, command, rec.offset)
        except QdrantError as exc:
            result.txn.record_failure(rec.partition, rec.offset, exc.to_dict())
            # Malformed content (bad dimension, unknown vector) can only come from a
            # producer that bypassed the API: it is a dead letter too.
            if type(exc) is BadRequest:
                self._dead(rec, result, exc, failure_recorded=True)
            return
        except Exception as exc:  # a bug must not stall the log; it is visible in the DLQ
            log.exception("applying offset %s:%s failed", rec.partition, rec.offset)
            self._dead(rec, result, BadRequest(f"internal error while applying: {type(exc).__name__}: {exc}"))
            return
        result.points += command.op.points_written()

    def _kept_for_shards(self, command, rec: Record, result: Applied) -> bool:
        """A sharded collection's points live in its shards, not in this state's
        catalog entry: an operation on them (by filter, a batch, or by ids from a
        producer writing to the WAL) is checked, then kept for every shard to apply at
        its next barrier. The collection's own changes (indexes, settings) apply here
        too; its creation is kept as the shards' first record."""
        op = command.op
        if isinstance(op, ops.CreateCollection):
            if shards.shard_count(op.config) > 1:
                apply(self.state, command, rec.offset)
                col = self.state.collections[command.collection]
                self._keep(shards.incarnation(col), rec, result)
                return True
            return False
        if isinstance(op, (ops.DeleteCollection, ops.UpdateAliases)):
            return False
        col = self.state.collections.get(self.state.resolve(command.collection))
        if not shards.is_sharded(col):
            return False
        if isinstance(op, shards.CATALOG_OPS):
            apply(self.state, command, rec.offset)
        else:
            op.validate_against(col.config)
        self._keep(shards.incarnation(col), rec, result)
        return True

    def _keep(self, which: str, rec: Record, result: Applied) -> None:
        self.state.put_control(which, rec.partition, rec.offset, rec.key, rec.value, list(rec.headers))
        result.controls.append((which, rec.partition, rec.offset))

    def _dead(self, rec: Record, result: Applied, exc: QdrantError, failure_recorded: bool = False) -> None:
        if not failure_recorded:
            result.txn.record_failure(rec.partition, rec.offset, exc.to_dict())
        result.txn.dead_letter(OutboxLetter(rec.partition, rec.offset, rec.key, rec.value, list(rec.headers),
                                            exc.message, self.letter_topic))
        result.dead.append(DeadLetter(rec, exc.message))

    def commit(self, result: Applied) -> None:
        result.txn.commit()

