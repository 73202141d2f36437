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
- column family ``columns``, the bookkeeping of column segments (storage/segments.py),
  apart from the state proper: ``seq`` (the number of commits so far), ``state_id``
  (random, set once) and ``segment/<cid:u32>`` (the sequence of the last segment written).
- column family ``journal``: ``<cid:u32><seq:u64><point key>`` -> empty, for each
  point a commit wrote or deleted, until a column segment covers it
  (storage/segments.py: what makes loading a large state fast).
"""
import gc
import logging
import os

import msgpack
import numpy as np
from rocksdict import Options, Rdict, WriteBatch

from storage.collection import Collection, Point
from storage.config import CollectionConfig
from storage import segments
from storage.ids import decode_id
from storage.transaction import (APPLIED_PREFIX, OUTBOX_PREFIX, DeadLetter, StateWriteError, Transaction,
                                 applied_key, failure_key, parse_applied_key)
from storage.transaction import u32 as _u32
from storage.transaction import u64 as _u64
from storage.vectors import multi as multivec
from storage.vectors.sparse import SparseVector

FORMAT_VERSION = 1
_JOURNAL, _COLUMNS = "journal", "columns"  # storage/segments.py
_SEGMENT_PREFIX = b"segment/"
_INT_KEYS = np.dtype([("tag", "u1"), ("id", ">u8")])
log = logging.getLogger(__name__)
_META, _POINTS = "meta", "points"
_CONTROL = b"control/"


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


def _add_stored(col: Collection, pkey: bytes, value: bytes) -> None:
    """One point as RocksDB holds it, into the in-memory collection."""
    version, payload, vectors = decode_point(value)
    col.add(Point(decode_id(pkey), pkey, payload, version))
    for name, vec in vectors.items():
        store = col.store(name)
        if store is not None:
            store.put(pkey, vec)


class State:
    def __init__(self, path: str):
        os.makedirs(path, exist_ok=True)
        self.path = path
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        cfs = {name: Options(raw_mode=True) for name in (_META, _POINTS, _JOURNAL, _COLUMNS)}
        self.db = Rdict(path, options=opts, column_families=cfs)
        self.meta = self.db.get_column_family(_META)
        self.points_cf = self.db.get_column_family(_POINTS)
        self.journal_cf = self.db.get_column_family(_JOURNAL)
        self.columns_cf = self.db.get_column_family(_COLUMNS)
        self.columns_handle = self.db.get_column_family_handle(_COLUMNS)
        self.meta_handle = self.db.get_column_family_handle(_META)
        self._points_h = self.db.get_column_family_handle(_POINTS)
        self._journal_h = self.db.get_column_family_handle(_JOURNAL)
        self.seq = 0  # commits so far (storage/segments.py)
        self.state_id = b""
        self.changes: dict = {}  # cid -> points journaled since its last segment capture
        self.loaded_from: dict = {}  # collection name -> "segment" or "points": how the last load read it
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
        # Loading creates a few objects per point and frees none: without the
        # collector it is a third faster at a million points.
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._load_all()
        finally:
            if enabled:
                gc.enable()

    def _load_all(self) -> None:
        self.collections.clear()
        self.changes.clear()
        self.loaded_from.clear()
        fmt = self.meta.get(b"format")
        if fmt is None:
            self.meta.put(b"format", _u32(FORMAT_VERSION))
        elif int.from_bytes(fmt, "big") != FORMAT_VERSION:
            raise RuntimeError(f"state at {self.path} has format {int.from_bytes(fmt, 'big')}, "
                               f"this pointlog reads {FORMAT_VERSION}: rebuild it from the log")
        raw = self.columns_cf.get(b"state_id")
        if raw is None:
            raw = os.urandom(16)
            self.columns_cf.put(b"state_id", raw)
        self.state_id = bytes(raw)
        raw = self.columns_cf.get(b"seq")
        self.seq = int.from_bytes(raw, "big") if raw else 0
        raw = self.meta.get(b"next_cid")
        self._next_cid = int.from_bytes(raw, "big") if raw else 1
        raw = self.meta.get(b"dead_letters")
        self.dead_letters = int.from_bytes(raw, "big") if raw else 0
        raw = self.meta.get(b"aliases")
        self.aliases = msgpack.unpackb(raw) if raw else {}
        for key, value in self._prefixed(APPLIED_PREFIX):
            self._applied[parse_applied_key(key)] = int.from_bytes(value, "big")
        for _key, value in self._prefixed(b"collection/"):
            entry = msgpack.unpackb(value)
            col = Collection(entry["cid"], entry["name"], CollectionConfig.from_body(entry["config"]),
                             entry["offset"])
            col.set_payload_schema(entry.get("payload_schema", {}))
            self.collections[col.name] = col
        for col in sorted(self.collections.values(), key=lambda c: c.cid):
            if segments.segmentable(col) and self._load_segment(col):
                self.loaded_from[col.name] = "segment"
            else:
                self._load_points(col)
                self.loaded_from[col.name] = "points"
        self._remove_stale_segments()

    def _load_points(self, col: Collection) -> None:
        """Every point of a collection from the ``points`` column family."""
        prefix = _u32(col.cid)
        keys, values = [], []
        for key, value in self.points_cf.items(from_key=prefix):
            if key[:4] != prefix:
                break
            keys.append(key[4:])
            values.append(value)
        self.changes[col.cid] = len(keys)  # no segment covers them
        if not segments.segmentable(col):
            for pkey, value in zip(keys, values):
                _add_stored(col, pkey, value)
            return
        records = [msgpack.unpackb(v) for v in values]
        del values
        points = list(map(Point, _ids(keys), keys, [r["p"] for r in records], [r["v"] for r in records]))
        vectors = {}
        for name, store in col.vectors.items():
            with_it = [(k, r["x"][name]) for k, r in zip(keys, records) if name in r["x"]]
            rows = np.frombuffer(b"".join(b for _k, b in with_it), dtype="<f4")
            if rows.size != len(with_it) * store.dim:
                raise ValueError(f"collection {col.name}: a stored vector `{name}` is not {store.dim}-d")
            vectors[name] = ([k for k, _b in with_it], rows.reshape(len(with_it), store.dim))
        col.load(points, vectors)

    def _load_segment(self, col: Collection) -> bool:
        """The collection from its column segment and the journal after it; False
        (nothing loaded) when there is no usable segment."""
        path = segments.seg_path(self.path, col.cid)
        meta = segments.read_meta(path) if os.path.exists(path) else None
        if meta is None:
            return False
        raw = self.columns_cf.get(_SEGMENT_PREFIX + _u32(col.cid))
        pruned = int.from_bytes(raw, "big") if raw else 0
        if (meta.get("state") != self.state_id or meta.get("cid") != col.cid
                or meta.get("created") != col.created_offset or not pruned <= meta.get("seq", -1) <= self.seq):
            return False
        dirty = self._journaled_after(col.cid, meta["seq"])
        if len(dirty) > meta["count"] // 2 + 1000:
            return False  # mostly rewritten since: reading every point is as cheap
        try:
            seg = segments.read(path, {name: store.dim for name, store in col.vectors.items()})
        except (OSError, ValueError, KeyError, msgpack.UnpackException) as exc:
            log.warning("column segment %s unreadable (%s): loading the collection point by point", path, exc)
            return False
        keys = seg.keys
        points = list(map(Point, _ids(keys), keys, seg.payloads, seg.versions))
        vectors = {}
        for name, (has, rows) in seg.vectors.items():
            vectors[name] = (keys if has.all() else [k for k, h in zip(keys, has.tolist()) if h], rows)
        col.load(points, vectors)
        prefix = _u32(col.cid)
        for pkey in dirty:  # changed after the segment: RocksDB has them as committed
            col.remove(pkey)
            value = self.points_cf.get(prefix + pkey)
            if value is not None:
                _add_stored(col, pkey, value)
        self.changes[col.cid] = len(dirty)
        return True

    def _journaled_after(self, cid: int, seq: int) -> set:
        prefix = _u32(cid)
        dirty = set()
        for key, _value in self.journal_cf.items(from_key=prefix + _u64(seq + 1)):
            if key[:4] != prefix:
                break
            dirty.add(key[12:])
        return dirty

    def _remove_stale_segments(self) -> None:
        folder = os.path.join(self.path, segments.DIR)
        if not os.path.isdir(folder):
            return
        live = {segments.seg_path(self.path, col.cid) for col in self.collections.values()}
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if path not in live:
                try:
                    os.remove(path)
                except OSError:
                    pass

    # ---- column segments (storage/segments.py) -------------------------------

    def capture_segment(self, col: Collection) -> "segments.Capture":
        """Between two commits: what ``Capture.write`` writes; the collection's
        change count starts over."""
        cap = segments.capture(self, col)
        cap.pending = self.changes.get(col.cid, 0)
        self.changes[col.cid] = 0
        return cap

    def segment_written(self, cap: "segments.Capture") -> None:
        """The segment of ``cap`` is on disk: drop the journal it covers."""
        if self.collections.get(cap.col.name) is not cap.col:  # dropped meanwhile
            try:
                os.remove(segments.seg_path(self.path, cap.cid))
            except OSError:
                pass
            return
        batch = WriteBatch(raw_mode=True)
        prefix = _u32(cap.cid)
        batch.put(_SEGMENT_PREFIX + prefix, _u64(cap.seq), self.columns_handle)
        batch.delete_range(prefix + _u64(0), prefix + _u64(cap.seq + 1), self._journal_h)
        self.db.write(batch)

    def segment_failed(self, cap: "segments.Capture") -> None:
        self.changes[cap.cid] = self.changes.get(cap.cid, 0) + cap.pending

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
        if txn.wrote:
            self.seq += 1
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
        batch.delete_range(_u32(col.cid), _u32(col.cid + 1), self._journal_h)
        batch.delete(_SEGMENT_PREFIX + _u32(col.cid), self.columns_handle)
        del self.collections[col.name]
        self.changes.pop(col.cid, None)

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
        batch = self._staging()
        prefix = _u32(col.cid)
        batch.put(prefix + point.key, encode_point(point, col.point_vectors(point.key)), self._points_h)
        batch.put(prefix + self._txn.seq_bytes + point.key, b"", self._journal_h)
        self.changes[col.cid] = self.changes.get(col.cid, 0) + 1

    def delete_point(self, col: Collection, key: bytes) -> None:
        batch = self._staging()
        prefix = _u32(col.cid)
        batch.delete(prefix + key, self._points_h)
        batch.put(prefix + self._txn.seq_bytes + key, b"", self._journal_h)
        self.changes[col.cid] = self.changes.get(col.cid, 0) + 1

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
            self.journal_cf.close()
            self.columns_cf.close()
            del (self.meta, self.points_cf, self.journal_cf, self.columns_cf, self.meta_handle, self._points_h,
                 self._journal_h, self.columns_handle)
            self.db.close()
        except Exception:
            if self.failed is None:
                raise
            # After a failed write RocksDB refuses to flush on close; what was committed
            # is in its write-ahead log already, and the process is about to end.


def _ids(keys: list) -> list:
    """decode_id of each key; integer keys (the common case) all at once."""
    joined = b"".join(keys)
    if keys and len(joined) == 9 * len(keys):  # keys are 9 or 17 bytes: all 9, all integers
        arr = np.frombuffer(joined, dtype=_INT_KEYS)
        if not arr["tag"].any():
            return arr["id"].tolist()
    return [decode_id(k) for k in keys]
