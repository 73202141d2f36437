"""Applying WAL records to the state, idempotently, in groups.

``Applier.apply_records`` is the synchronous heart of every consumer of the log (the
faust agent, rebuild, restore): it decodes each record, applies it, and stages
everything with the new applied offsets for ONE atomic commit. Then:
- a record at or below the applied offset is a duplicate (redelivered after a
  crash or a rebalance) and is skipped;
- a record past applied + 1 from a consumer we do not position ourselves is a gap:
  application stops there and the caller reads the missing range from the broker
  (``contiguous=False`` for records read in order from a known position, where a
  skipped offset is one the broker confirmed holds no record, e.g. a transaction
  marker);
- a record that cannot be decoded or validated is a dead letter: skipped, counted
  in the state, and copied to the DLQ topic by the caller.
"""
import logging
from dataclasses import dataclass, field

from storage.apply import apply
from storage.errors import BadRequest, QdrantError
from storage.state import State
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
    offsets: dict = field(default_factory=dict)  # partition -> last offset in this group
    failures: list = field(default_factory=list)  # (partition, offset, error dict)
    dead: list = field(default_factory=list)  # DeadLetter
    gap: Gap | None = None  # where application stopped
    rest: list = field(default_factory=list)  # the records from the gap on, not looked at
    records: int = 0  # records applied (dead letters included)
    points: int = 0  # points written by upserts and vector updates, for throughput figures


class Applier:
    def __init__(self, state: State, topic: str):
        self.state = state
        self.topic = topic
        self._applied: dict = {}  # partition -> offset, a cache of the state's

    def applied(self, partition: int) -> int:
        if partition not in self._applied:
            self._applied[partition] = self.state.applied_offset(self.topic, partition)
        return self._applied[partition]

    def apply_records(self, records, contiguous: bool = True) -> Applied:
        """Apply a group of records and stage them; the caller commits with ``commit``,
        then, if ``gap`` is set, reads the missing offsets from the broker, applies
        them with ``contiguous=False`` and hands ``rest`` back."""
        result = Applied()
        for i, rec in enumerate(records):
            applied = self.applied(rec.partition)
            if rec.offset <= applied:
                continue
            if contiguous and rec.offset != applied + 1:
                result.gap = Gap(rec.partition, applied + 1, rec.offset)
                result.rest = list(records[i:])
                log.warning("partition %s: expected offset %s, got %s; reading the missing offsets",
                            rec.partition, applied + 1, rec.offset)
                break
            self._apply_one(rec, result)
            self._applied[rec.partition] = rec.offset
            result.offsets[rec.partition] = rec.offset
            result.records += 1
        return result

    def _apply_one(self, rec: Record, result: Applied) -> None:
        try:
            command = decode(rec.key, rec.value, rec.headers)
        except DecodeError as exc:
            self._dead(rec, result, exc)
            return
        try:
            apply(self.state, command, rec.offset)
        except QdrantError as exc:
            result.failures.append((rec.partition, rec.offset, exc.to_dict()))
            self.state.record_failure(rec.partition, rec.offset, exc.to_dict())
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

    def _dead(self, rec: Record, result: Applied, exc: QdrantError, failure_recorded: bool = False) -> None:
        if not failure_recorded:
            result.failures.append((rec.partition, rec.offset, exc.to_dict()))
            self.state.record_failure(rec.partition, rec.offset, exc.to_dict())
        self.state.count_dead_letter()
        result.dead.append(DeadLetter(rec, exc.message))

    def commit(self, result: Applied) -> None:
        if result.offsets:
            self.state.commit(self.topic, result.offsets)

