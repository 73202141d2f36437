"""The node's state: collections in memory, mirrored to RocksDB.

Every change made while applying a group of records goes through one
``Transaction`` (storage.transaction), committed atomically with the applied
offsets of their partitions. A crash before the commit loses nothing the log does
not still hold: the node resumes at the stored offsets and reapplies.

The state is the one owner of the applied offsets: loaded once at open, changed
only by a commit, read by everyone else (applier, waiters, /metrics, checkpoints).

Layout (raw mode, so keys sort bytewise):
- column family ``meta``: ``collection/<name>`` -> catalog entry, ``aliases`` -> {alias: name},
  ``applied/<topic>/<partition>`` -> offset, ``next_cid``, ``format``,
  ``dead_letters`` -> count, ``failure/<partition:u32><offset:u64>`` -> error,
  ``outbox/<partition:u32><offset:u64>`` -> a dead letter not yet in the DLQ topic.
- column family ``points``: ``<cid:u32><point key>`` -> {version, payload, vectors}.
  Collections get a fresh internal id, so a recreated name never sees old points.
"""
import os

import msgpack
import numpy as np
from rocksdict import Options, Rdict

from storage.collection import Collection, Point
from storage.config import CollectionConfig
from storage.ids import decode_id
from storage.transaction import (APPLIED_PREFIX, OUTBOX_PREFIX, DeadLetter, StateWriteError, Transaction,
                                 applied_key, failure_key, parse_applied_key)
from storage.transaction import u32 as _u32
from storage.vectors import multi as multivec
from storage.vectors.sparse import SparseVector

FORMAT_VERSION = 1
_META, _POINTS = "meta", "points"
_CONTROL = b"control/"


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _control_mark(incarnation: str, shard: int) -> bytes:
    return b"ctl_applied/" + incarnation.encode() + b"/" + _u32(shard)


def encode_point(point: Point, vectors: dict) -> bytes:
    dense, multi, sparse = {}, {}, {}
    for n, v in vectors.items():
        if isinstance(v, SparseVector):
            sparse[n] = v.to_bytes()
        elif v.ndim == 2:
            multi[n] = multivec.to_bytes(v)
        else:
            dense[n] = v.astype("<f4", copy=False).tobytes()
    rec = {"v": point.version, "p": point.payload, "x": dense}
    if sparse:
        rec["s"] = sparse
    if multi:
        rec["m"] = multi
    return msgpack.packb(rec)


def decode_point(raw: bytes) -> tuple:
    """(version, payload, {name: float32 array or SparseVector})."""
    rec = msgpack.unpackb(raw)
    vectors = {n: np.frombuffer(b, dtype="<f4") for n, b in rec["x"].items()}
    for n, b in rec.get("s", {}).items():
        vectors[n] = SparseVector.from_bytes(b)
    for n, b in rec.get("m", {}).items():
        vectors[n] = multivec.from_bytes(b)
    return rec["v"], rec["p"], vectors


class State:
    def __init__(self, path: str):
        os.makedirs(path, exist_ok=True)
        self.path = path
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        cfs = {_META: Options(raw_mode=True), _POINTS: Options(raw_mode=True)}
        self.db = Rdict(path, options=opts, column_families=cfs)
        self.meta = self.db.get_column_family(_META)
        self.points_cf = self.db.get_column_family(_POINTS)
        self.meta_handle = self.db.get_column_family_handle(_META)
        self._points_h = self.db.get_column_family_handle(_POINTS)
        self.collections: dict = {}
        self.aliases: dict = {}  # alias -> collection name
        self.dead_letters = 0  # committed count
        self._applied: dict = {}  # (topic, partition) -> committed offset
        self._txn: Transaction | None = None
        self._next_cid = 1
        self.failed: str | None = None  # why a commit failed; then no transaction until reopened
        self._load()

    # ---- loading -------------------------------------------------------------

    def _load(self) -> None:
        self.collections.clear()
        fmt = self.meta.get(b"format")
        if fmt is None:
            self.meta.put(b"format", _u32(FORMAT_VERSION))
        elif int.from_bytes(fmt, "big") != FORMAT_VERSION:
            raise RuntimeError(f"state at {self.path} has format {int.from_bytes(fmt, 'big')}, "
                               f"this pointlog reads {FORMAT_VERSION}: rebuild it from the log")
        raw = self.meta.get(b"next_cid")
        self._next_cid = int.from_bytes(raw, "big") if raw else 1
        raw = self.meta.get(b"dead_letters")
        self.dead_letters = int.from_bytes(raw, "big") if raw else 0
        raw = self.meta.get(b"aliases")
        self.aliases = msgpack.unpackb(raw) if raw else {}
        for key, value in self._prefixed(APPLIED_PREFIX):
            self._applied[parse_applied_key(key)] = int.from_bytes(value, "big")
        by_cid = {}
        for _key, value in self._prefixed(b"collection/"):
            entry = msgpack.unpackb(value)
            col = Collection(entry["cid"], entry["name"], CollectionConfig.from_body(entry["config"]),
                             entry["offset"])
            col.set_payload_schema(entry.get("payload_schema", {}))
            self.collections[col.name] = col
            by_cid[col.cid] = col
        for key, value in self.points_cf.items():
            col = by_cid.get(int.from_bytes(key[:4], "big"))
            if col is None:
                continue
            pkey = bytes(key[4:])
            version, payload, vectors = decode_point(value)
            col.add(Point(decode_id(pkey), pkey, payload, version))
            for name, vec in vectors.items():
                store = col.store(name)
                if store is not None:
                    store.put(pkey, vec)

    def _prefixed(self, prefix: bytes):
        for key, value in self.meta.items(from_key=prefix):
            if not key.startswith(prefix):
                break
            yield key, value

    # ---- reads ---------------------------------------------------------------

    def applied_offset(self, topic: str, partition: int) -> int:
        """The last committed offset of a partition, or -1 if none."""
        return self._applied.get((topic, partition), -1)

    def applied_offsets(self, topic: str) -> dict:
        """{partition: last committed offset} of the partitions with one."""
        return {p: o for (t, p), o in sorted(self._applied.items()) if t == topic}

    def failure(self, partition: int, offset: int, scope: bytes = b"") -> dict | None:
        raw = self.meta.get(failure_key(partition, offset, scope))
        return msgpack.unpackb(raw) if raw is not None else None

    # ---- what the shards of sharded collections read from the WAL (storage/shards.py)

    def controls(self, incarnation: str, after: int, upto: int) -> list:
        """The WAL records (offset, key, value, headers) the shards of a sharded
        collection's ``incarnation`` (storage/shards.py) apply at their barriers, with ``after < offset <= upto``, in WAL order."""
        prefix = _CONTROL + incarnation.encode() + b"/"
        out = []
        for key, value in self.meta.items(from_key=prefix + _u64(after + 1)):
            if not key.startswith(prefix) or int.from_bytes(key[len(prefix):], "big") > upto:
                break
            k, v, h, _partition = msgpack.unpackb(value)
            out.append((int.from_bytes(key[len(prefix):], "big"), k, v, [tuple(x) for x in h]))
        return out

    def last_control(self, incarnation: str) -> tuple | None:
        """(WAL partition, offset) of the latest record kept for the collection's shards."""
        prefix = _CONTROL + incarnation.encode() + b"/"
        last = None
        for key, value in self.meta.items(from_key=prefix):
            if not key.startswith(prefix):
                break
            last = (msgpack.unpackb(value)[3], int.from_bytes(key[len(prefix):], "big"))
        return last

    def control_applied(self, incarnation: str, shard: int) -> int:
        """The last WAL offset whose control record the shard applied (-1: none)."""
        staged = self._txn.controls.get((incarnation, shard)) if self._txn is not None else None
        if staged is not None:
            return staged
        raw = self.meta.get(_control_mark(incarnation, shard))
        return int.from_bytes(raw, "big") if raw else -1

    # ---- transactions --------------------------------------------------------

    def transaction(self, topic: str, scope: bytes = b"") -> Transaction:
        """Open the transaction that the write methods below stage into."""
        if self.failed is not None:
            raise StateWriteError(f"the state could not be written ({self.failed}); reopen it to go on")
        if self._txn is not None:
            raise RuntimeError("a state transaction is already open; commit it first")
        self._txn = Transaction(self, topic, scope)
        return self._txn

    @property
    def in_transaction(self) -> bool:
        return self._txn is not None

    def _committed(self, txn: Transaction, dead_total: int) -> None:
        """Called by ``Transaction.commit`` once its batch is on disk."""
        for topic_partition in txn.forgotten:
            self._applied.pop(topic_partition, None)
        for partition, offset in txn.offsets.items():
            self._applied[(txn.topic, partition)] = offset
        self.dead_letters = dead_total
        self._txn = None

    def write_failed(self, reason: str) -> None:
        """Called by ``Transaction.commit`` when RocksDB refused its batch. The group's
        operations already changed the in-memory collections; they are read back from
        RocksDB, so memory never holds what the disk does not (readers see the state
        as of the last commit). It is the whole reread a restart does, O(points), on
        a path that ends the applier anyway. The state stays read-only: RocksDB itself
        refuses writes after such an error until the DB is reopened."""
        self.failed = reason
        self._txn = None
        self._load()

    def _staging(self):
        if self._txn is None:
            raise RuntimeError("state changes need an open transaction (State.transaction)")
        return self._txn.batch

    # ---- staged writes (used by storage.apply) --------------------------------

    def allocate_cid(self) -> int:
        cid = self._next_cid
        self._next_cid += 1
        self._staging().put(b"next_cid", _u32(self._next_cid), self.meta_handle)
        return cid

    def put_collection(self, col: Collection) -> None:
        entry = {"cid": col.cid, "name": col.name, "config": col.config.to_json(), "offset": col.created_offset,
                 "payload_schema": col.payload_schema}
        self._staging().put(b"collection/" + col.name.encode(), msgpack.packb(entry), self.meta_handle)
        self.collections[col.name] = col

    def drop_collection(self, col: Collection) -> None:
        batch = self._staging()
        batch.delete(b"collection/" + col.name.encode(), self.meta_handle)
        batch.delete_range(_u32(col.cid), _u32(col.cid + 1), self._points_h)
        del self.collections[col.name]

    def put_control(self, incarnation: str, partition: int, offset: int, key: bytes, value: bytes,
                    headers: list) -> None:
        self._staging().put(_CONTROL + incarnation.encode() + b"/" + _u64(offset),
                            msgpack.packb([key, value, [list(h) for h in headers], partition]), self.meta_handle)

    def mark_control(self, incarnation: str, shard: int, offset: int) -> None:
        self._staging().put(_control_mark(incarnation, shard), _u64(offset), self.meta_handle)
        self._txn.controls[(incarnation, shard)] = offset

    def forget_shard(self, topic: str, incarnation: str, shard: int) -> None:
        """A shard this node no longer holds: its applied offset and barrier mark go,
        so taking it again later rebuilds it from the start of its partition."""
        batch = self._staging()
        batch.delete(applied_key(topic, shard), self.meta_handle)
        batch.delete(_control_mark(incarnation, shard), self.meta_handle)
        self._txn.forgotten.append((topic, shard))

    def drop_controls(self, incarnation: str) -> None:
        """The sharded collection is deleted: its kept records go, and a tombstone
        tells its shard topic's late records from those of a collection not yet seen."""
        prefix = _CONTROL + incarnation.encode() + b"/"
        self._staging().delete_range(prefix, prefix + b"\xff" * 9, self.meta_handle)
        self._staging().put(b"gone/" + incarnation.encode(), b"", self.meta_handle)

    def is_gone(self, incarnation: str) -> bool:
        return self.meta.get(b"gone/" + incarnation.encode()) is not None

    def put_aliases(self, aliases: dict) -> None:
        """Replace the whole alias table: a few names, written as one value."""
        self._staging().put(b"aliases", msgpack.packb(aliases), self.meta_handle)
        self.aliases = aliases

    def resolve(self, name: str) -> str:
        """The collection a name means: itself, or the collection its alias points to."""
        return name if name in self.collections else self.aliases.get(name, name)

    def put_point(self, col: Collection, point: Point) -> None:
        self._staging().put(_u32(col.cid) + point.key, encode_point(point, col.point_vectors(point.key)),
                            self._points_h)

    def delete_point(self, col: Collection, key: bytes) -> None:
        self._staging().delete(_u32(col.cid) + key, self._points_h)

    # ---- the outbox of dead letters ------------------------------------------

    def outbox(self, limit: int | None = None) -> list:
        """Committed dead letters not yet published, in partition and offset order."""
        out = []
        for _key, value in self._prefixed(OUTBOX_PREFIX):
            if limit is not None and len(out) >= limit:
                break
            out.append(DeadLetter.decode(value))
        return out

    def published(self, letter: DeadLetter) -> None:
        """The DLQ topic has it: drop it from the outbox. Not part of any transaction:
        it changes no applied state, and on its own it is atomic."""
        self.meta.delete(letter.key_in_outbox)

    def close(self) -> None:
        # An open transaction is dropped, as a crash would drop it.
        self._txn = None
        try:
            # Column family objects hold the DB open; drop them first or the lock stays.
            self.meta.close()
            self.points_cf.close()
            del self.meta, self.points_cf, self.meta_handle, self._points_h
            self.db.close()
        except Exception:
            if self.failed is None:
                raise
            # After a failed write RocksDB refuses to flush on close; what was committed
            # is in its write-ahead log already, and the process is about to end.
