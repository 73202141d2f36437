"""A state transaction: everything one group of records changes, committed at once.

Modelled on Quix Streams' partition transaction. ``State.transaction(topic)`` opens
one; ``storage.apply`` stages its writes in it (through the state, whose write
methods need an open transaction); ``commit`` writes the staged changes, the
applied offsets, the failures and the dead letters (the outbox) in ONE rocksdict
``WriteBatch``, and only then makes the new applied offsets visible. Everything
that reads applied offsets (waiters, /metrics, checkpoints) therefore never gets
ahead of what is on disk.

The in-memory collections do change as operations apply, because an operation
must read the writes before it (a batch that upserts, then sets a payload by
filter). So the invariant that keeps reads honest is on the caller: apply a group
and commit it with nothing else running in between, i.e. no ``await`` (see
``streams.applier.Applier.apply_and_commit``). A transaction that is never
committed (a crash) leaves RocksDB and the offsets as they were; its in-memory
changes are only undone by reopening the state, which is what a crash does.
"""
from dataclasses import dataclass

import msgpack
from rocksdict import WriteBatch


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


APPLIED_PREFIX = b"applied/"
OUTBOX_PREFIX = b"outbox/"


def applied_key(topic: str, partition: int) -> bytes:
    return APPLIED_PREFIX + topic.encode() + b"/" + u32(partition)


def parse_applied_key(key: bytes) -> tuple:
    """(topic, partition) of an ``applied_key``."""
    rest = bytes(key[len(APPLIED_PREFIX):])
    return rest[:-5].decode(), int.from_bytes(rest[-4:], "big")


def failure_key(partition: int, offset: int, scope: bytes = b"") -> bytes:
    """Where the outcome of a failed operation is kept: WAL records by partition and
    offset; a shard topic's (``scope``: its name) and the WAL operations a shard
    applied at a barrier (``scope``: "ctl:" + the shard topic) under their scope."""
    return b"failure/" + (scope + b"/" if scope else b"") + u32(partition) + u64(offset)


def outbox_key(partition: int, offset: int, topic: str = "") -> bytes:
    # Big-endian, so RocksDB order is the log's order within a partition; a shard
    # topic's letters (``topic`` set) come after the WAL's.
    return OUTBOX_PREFIX + (b"\xff" + topic.encode() + b"/" if topic else b"") + u32(partition) + u64(offset)


class StateWriteError(RuntimeError):
    """RocksDB refused a commit (a full or failing disk). Nothing of the group is on
    disk, the applied offsets did not move, and the in-memory collections were put
    back as the disk has them (``State.write_failed``); the state takes no further
    transaction until it is reopened."""


@dataclass
class DeadLetter:
    """A record the applier skipped, waiting in the outbox to be copied to the DLQ."""
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list  # [(name, bytes)] as the record had them
    reason: str
    topic: str = ""  # of a shard topic's record; "" for the WAL's

    @property
    def key_in_outbox(self) -> bytes:
        return outbox_key(self.partition, self.offset, self.topic)

    def encode(self) -> bytes:
        out = {"p": self.partition, "o": self.offset, "k": self.key, "v": self.value,
               "h": [[n, v] for n, v in self.headers], "r": self.reason}
        if self.topic:
            out["t"] = self.topic
        return msgpack.packb(out)

    @classmethod
    def decode(cls, raw: bytes) -> "DeadLetter":
        d = msgpack.unpackb(raw)
        return cls(d["p"], d["o"], d["k"], d["v"], [(n, v) for n, v in d["h"]], d["r"], d.get("t", ""))


class Transaction:
    def __init__(self, state, topic: str, scope: bytes = b""):
        self._state = state
        self.topic = topic
        self.scope = scope  # of the failures it records (failure_key)
        self.batch = WriteBatch(raw_mode=True)
        self.offsets: dict = {}  # partition -> last offset staged
        self.failures: list = []  # (partition, offset, error dict)
        self.dead_letters: list = []  # DeadLetter, in the order staged
        self.controls: dict = {}  # (shard topic, shard) -> WAL offset of the last control record staged
        self.forgotten: list = []  # (topic, partition) whose applied offset the commit deletes
        self.open = True
        self.seq_bytes = u64(state.seq + 1)  # the sequence number this commit gets (journal keys)
        self.wrote = False

    def applied_offset(self, partition: int) -> int:
        """What this transaction has applied of a partition: its staged offset, else
        the committed one."""
        staged = self.offsets.get(partition)
        return staged if staged is not None else self._state.applied_offset(self.topic, partition)

    def set_offset(self, partition: int, offset: int) -> None:
        self.offsets[partition] = offset

    def record_failure(self, partition: int, offset: int, error: dict, scope: bytes | None = None) -> None:
        """Keep the outcome of a failed operation, for a waiter that asks later."""
        scope = self.scope if scope is None else scope
        if scope == self.scope:
            self.failures.append((partition, offset, error))
        self.batch.put(failure_key(partition, offset, scope), msgpack.packb(error), self._state.meta_handle)

    def dead_letter(self, letter: DeadLetter) -> None:
        """Stage a record for the DLQ in the outbox, committed with the offset that
        skips it: a committed offset past a record always has its dead letter on disk."""
        self.dead_letters.append(letter)
        self.batch.put(letter.key_in_outbox, letter.encode(), self._state.meta_handle)

    def commit(self) -> None:
        """Write everything staged and the applied offsets atomically, then publish
        the offsets to readers of the state."""
        if not self.open:
            raise RuntimeError("transaction already committed")
        state, meta = self._state, self._state.meta_handle
        for partition, offset in self.offsets.items():
            self.batch.put(applied_key(self.topic, partition), u64(offset), meta)
        dead_total = state.dead_letters + len(self.dead_letters)
        if self.dead_letters:
            self.batch.put(b"dead_letters", u64(dead_total), meta)
        if len(self.batch) > 0:
            self.batch.put(b"seq", self.seq_bytes, state.columns_handle)
            try:
                state.db.write(self.batch)
            except Exception as exc:  # rocksdict raises a bare Exception("IO error: No space left ...")
                self.open = False
                state.write_failed(str(exc))
                raise StateWriteError(str(exc)) from exc
            self.wrote = True
        state._committed(self, dead_total)
        self.open = False
