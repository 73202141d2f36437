"""The node's state: collections in memory, mirrored to RocksDB.

Every change made while applying a group of records is staged in one rocksdict
``WriteBatch`` together with the applied offsets of their partitions; ``commit``
writes it atomically. A crash before the commit loses nothing the log does not
still hold: the node resumes at the stored offsets and reapplies.

Layout (raw mode, so keys sort bytewise):
- column family ``meta``: ``collection/<name>`` -> catalog entry, ``aliases`` -> {alias: name},
  ``applied/<topic>/<partition>`` -> offset, ``next_cid``, ``format``,
  ``dead_letters`` -> count, ``failure/<partition:u32><offset:u64>`` -> error.
- column family ``points``: ``<cid:u32><point key>`` -> {version, payload, vectors}.
  Collections get a fresh internal id, so a recreated name never sees old points.
"""
import os

import msgpack
import numpy as np
from rocksdict import Options, Rdict, WriteBatch

from storage.collection import Collection, Point
from storage.config import CollectionConfig
from storage.ids import decode_id
from storage.vectors import multi as multivec
from storage.vectors.sparse import SparseVector

FORMAT_VERSION = 1
_META, _POINTS = "meta", "points"


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _applied_key(topic: str, partition: int) -> bytes:
    return b"applied/" + topic.encode() + b"/" + _u32(partition)


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
        self._meta_h = self.db.get_column_family_handle(_META)
        self._points_h = self.db.get_column_family_handle(_POINTS)
        self.collections: dict = {}
        self.aliases: dict = {}  # alias -> collection name
        self.dead_letters = 0
        self._batch = WriteBatch(raw_mode=True)
        self._dirty = False
        self._next_cid = 1
        self._load()

    # ---- loading -------------------------------------------------------------

    def _load(self) -> None:
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
        by_cid = {}
        for key, value in self.meta.items(from_key=b"collection/"):
            if not key.startswith(b"collection/"):
                break
            entry = msgpack.unpackb(value)
            col = Collection(entry["cid"], entry["name"], CollectionConfig.from_body(entry["config"]),
                             entry["offset"])
            col.payload_schema = entry.get("payload_schema", {})
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

    # ---- reads ---------------------------------------------------------------

    def applied_offset(self, topic: str, partition: int) -> int:
        """The last applied offset of a partition, or -1 if none."""
        raw = self.meta.get(_applied_key(topic, partition))
        return int.from_bytes(raw, "big") if raw is not None else -1

    # ---- staged writes (used by storage.apply) --------------------------------

    def allocate_cid(self) -> int:
        cid = self._next_cid
        self._next_cid += 1
        self._batch.put(b"next_cid", _u32(self._next_cid), self._meta_h)
        self._dirty = True
        return cid

    def put_collection(self, col: Collection) -> None:
        entry = {"cid": col.cid, "name": col.name, "config": col.config.to_json(), "offset": col.created_offset,
                 "payload_schema": col.payload_schema}
        self._batch.put(b"collection/" + col.name.encode(), msgpack.packb(entry), self._meta_h)
        self.collections[col.name] = col
        self._dirty = True

    def drop_collection(self, col: Collection) -> None:
        self._batch.delete(b"collection/" + col.name.encode(), self._meta_h)
        self._batch.delete_range(_u32(col.cid), _u32(col.cid + 1), self._points_h)
        del self.collections[col.name]
        self._dirty = True

    def put_aliases(self, aliases: dict) -> None:
        """Replace the whole alias table: a few names, written as one value."""
        self._batch.put(b"aliases", msgpack.packb(aliases), self._meta_h)
        self.aliases = aliases

    def resolve(self, name: str) -> str:
        """The collection a name means: itself, or the collection its alias points to."""
        return name if name in self.collections else self.aliases.get(name, name)

    def put_point(self, col: Collection, point: Point) -> None:
        self._batch.put(_u32(col.cid) + point.key, encode_point(point, col.point_vectors(point.key)),
                        self._points_h)
        self._dirty = True

    def delete_point(self, col: Collection, key: bytes) -> None:
        self._batch.delete(_u32(col.cid) + key, self._points_h)
        self._dirty = True

    def record_failure(self, partition: int, offset: int, error: dict) -> None:
        self._batch.put(b"failure/" + _u32(partition) + _u64(offset), msgpack.packb(error), self._meta_h)
        self._dirty = True

    def count_dead_letter(self) -> None:
        self.dead_letters += 1
        self._batch.put(b"dead_letters", _u64(self.dead_letters), self._meta_h)
        self._dirty = True

    def failure(self, partition: int, offset: int) -> dict | None:
        raw = self.meta.get(b"failure/" + _u32(partition) + _u64(offset))
        return msgpack.unpackb(raw) if raw is not None else None

    def commit(self, topic: str, offsets: dict) -> None:
        """Write staged changes and the applied offsets {partition: offset} atomically."""
        for partition, offset in offsets.items():
            self._batch.put(_applied_key(topic, partition), _u64(offset), self._meta_h)
        self.db.write(self._batch)
        self._batch = WriteBatch(raw_mode=True)
        self._dirty = False

    def close(self) -> None:
        # Column family objects hold the DB open; drop them first or the lock stays.
        self.meta.close()
        self.points_cf.close()
        del self.meta, self.points_cf, self._meta_h, self._points_h, self._batch
        self.db.close()
