"""Applying WAL records to the state, idempotently, in groups.

``Applier.apply_records`` is the synchronous heart of the consumer: it decodes each
record, applies it, and stages everything with the new applied offsets for ONE
atomic commit. Records at or below the applied offset are duplicates (redelivered
after a crash) and are skipped; a record that cannot be decoded or validated is a
dead letter: skipped, recorded, and copied to the DLQ topic by the caller.
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
    """The consumer skipped offsets of a partition; it must seek back to ``expected``."""
    partition: int
    expected: int
    got: int


@dataclass
class Applied:
    offsets: dict  # partition -> last offset in this group
    failures: list  # (partition, offset, error dict)
    dead: list  # DeadLetter
    gaps: list  # Gap: partitions to seek back


class Applier:
    def __init__(self, state: State, topic: str):
        self.state = state
        self.topic = topic
        self._applied: dict = {}  # partition -> offset, a cache of the state's
        self._seeking: dict = {}  # partition -> [expected offset, last offset seen since]

    def applied(self, partition: int) -> int:
        if partition not in self._applied:
            self._applied[partition] = self.state.applied_offset(self.topic, partition)
        return self._applied[partition]

    def apply_records(self, records) -> Applied:
        """Apply a group of records and stage them; the caller commits with ``commit``
        and then seeks back every partition listed in ``gaps``."""
        result = Applied({}, [], [], [])
        for rec in records:
            if rec.offset <= self.applied(rec.partition) or not self._in_sequence(rec, result):
                continue
            self._apply_one(rec, result)
            self._applied[rec.partition] = rec.offset
            result.offsets[rec.partition] = rec.offset
        return result

    def _in_sequence(self, rec: Record, result: Applied) -> bool:
        """Offsets are contiguous unless the broker skipped some (transaction markers).
        On a gap, seek back and drop what was queued before the seek; when the
        re-fetch starts (offsets go back) past the expected offset, the broker has
        confirmed those offsets hold nothing."""
        expected = self.applied(rec.partition) + 1
        seeking = self._seeking.get(rec.partition)
        if rec.offset == expected:
            self._seeking.pop(rec.partition, None)
            return True
        if seeking is None:
            self._seeking[rec.partition] = [expected, rec.offset]
            result.gaps.append(Gap(rec.partition, expected, rec.offset))
            log.warning("partition %s: expected offset %s, got %s; seeking back", rec.partition, expected, rec.offset)
            return False
        if rec.offset <= seeking[1]:
            log.error("partition %s: offsets %s..%s hold no records; continuing at %s",
                      rec.partition, expected, rec.offset - 1, rec.offset)
            self._seeking.pop(rec.partition)
            return True
        seeking[1] = rec.offset
        return False

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
        except Exception as exc:  # a bug must not stall the log; it is visible in the DLQ
            log.exception("applying offset %s:%s failed", rec.partition, rec.offset)
            self._dead(rec, result, BadRequest(f"internal error while applying: {type(exc).__name__}: {exc}"))

    def _dead(self, rec: Record, result: Applied, exc: QdrantError, failure_recorded: bool = False) -> None:
        if not failure_recorded:
            result.failures.append((rec.partition, rec.offset, exc.to_dict()))
            self.state.record_failure(rec.partition, rec.offset, exc.to_dict())
        self.state.count_dead_letter()
        result.dead.append(DeadLetter(rec, exc.message))

    def commit(self, result: Applied) -> None:
        if result.offsets:
            self.state.commit(self.topic, result.offsets)
