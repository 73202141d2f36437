"""Column segments: a collection's points as a few large blobs, so a restart loads
them in bulk instead of decoding one RocksDB record per point.

RocksDB stays the state: every point is in the ``points`` column family, committed
with the applied offsets, and a state without segments loads exactly as before. A
segment is a derived copy of one collection as of one commit, plus a journal that
says which points changed after it:

- every commit carries a sequence number (``State.seq``, stored in ``meta``) and,
  for each point it writes or deletes, a journal entry ``<cid:u32><seq:u64><point
  key>`` (column family ``journal``), in the same WriteBatch as the point itself;
- a segment written as of sequence S holds every point of the collection as the
  commit S left it (keys in scroll order, versions, payloads, dense vectors);
- loading = the segment, then every point named by a journal entry after S re-read
  from ``points`` (present: it replaces the segment's; absent: it is removed).

Once a segment is on disk (written to a temporary file, fsynced, renamed), the
journal entries up to S are deleted and ``segment/<cid>`` in ``meta`` records S:
a segment older than that (a copy taken before the prune) is refused, since the
entries it would need are gone. A segment is also refused when it belongs to
another state (``state_id``), another incarnation of the collection, a sequence
the state has not committed, or when it cannot be read: the collection then loads
from ``points`` as before. Nothing in a segment is ever trusted more than RocksDB.

Capture and write may be split: ``capture`` runs between two commits (it takes the
key list and the sequence number, in one step), ``Capture.write`` may run in a
thread while the node keeps applying. A point read there after a later change may
come out torn or new, but every such point has a journal entry after S, so the
loader re-reads it from RocksDB; points not changed since S read as S left them.

File ``<state dir>/columns/c<cid>.seg``: sections, then a msgpack footer naming
them (``[offset, length]`` each), its length (u32 big-endian) and ``MAGIC``.
Sections: ``keys`` and ``payloads`` as msgpack arrays in chunks, ``versions`` as
little-endian int64, and per dense vector name ``has/<name>`` (one byte per point)
and ``rows/<name>`` (float32 rows of the points that have the vector).
"""
import os

import msgpack
import numpy as np

MAGIC = b"pointlog-columns-1\n"
DIR = "columns"
CHUNK = 2048  # points per msgpack chunk / rows per copy: GIL holds well under the 1 ms switch interval


def seg_path(state_dir: str, cid: int) -> str:
    return os.path.join(state_dir, DIR, f"c{cid}.seg")


def segmentable(col) -> bool:
    """Collections with multivectors or sparse vectors load point by point."""
    return not col.multi and not col.sparse


class Capture:
    """What ``capture`` took between two commits; ``write`` may run in a thread."""

    def __init__(self, state_id: bytes, col, seq: int, keys: list):
        self.state_id = state_id
        self.cid = col.cid
        self.created = col.created_offset
        self.col = col
        self.seq = seq
        self.keys = keys
        self.stores = dict(col.vectors)
        self.count = 0

    def write(self, state_dir: str) -> str:
        """Write the segment file atomically; returns its path."""
        path = seg_path(state_dir, self.cid)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        points = self.col.points
        sections: dict = {}
        with open(tmp, "wb") as f:
            def section(name: str, data) -> None:
                sections.setdefault(name, []).append([f.tell(), len(data)])
                f.write(data)

            keys, pts = [], []
            for start in range(0, len(self.keys), CHUNK):
                for key in self.keys[start:start + CHUNK]:
                    point = points.get(key)
                    if point is not None:  # deleted since: the journal has it
                        keys.append(key)
                        pts.append(point)
            self.count = len(keys)
            for start in range(0, len(keys), CHUNK):
                section("keys", msgpack.packb(keys[start:start + CHUNK]))
            for start in range(0, len(pts), CHUNK):
                section("payloads", msgpack.packb([p.payload for p in pts[start:start + CHUNK]]))
            section("versions", np.fromiter((p.version for p in pts), dtype="<i8", count=len(pts)).tobytes())
            for name, store in self.stores.items():
                get = store.slot_of.get
                slots = np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
                has = slots >= 0
                section("has/" + name, has.astype(np.uint8).tobytes())
                matrix = store.matrix  # a grown store keeps the old array intact for us
                slots = slots[has]
                for start in range(0, len(slots), CHUNK):
                    section("rows/" + name, np.ascontiguousarray(matrix[slots[start:start + CHUNK]],
                                                                 dtype="<f4").tobytes())
            footer = msgpack.packb({"state": self.state_id, "cid": self.cid, "created": self.created,
                                    "seq": self.seq, "count": len(keys), "sections": sections,
                                    "dims": {n: s.dim for n, s in self.stores.items()}})
            f.write(footer + len(footer).to_bytes(4, "big") + MAGIC)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return path


def capture(state, col) -> Capture:
    """Between two commits (never inside a transaction): the collection's keys in
    scroll order and the sequence number of the last commit, taken in one step."""
    if state.in_transaction:
        raise RuntimeError("a segment is captured between commits, not inside a transaction")
    return Capture(state.state_id, col, state.seq, list(col.order))


class Segment:
    """A segment file read back: ``keys`` (scroll order), ``versions`` (list of
    int), ``payloads`` and ``vectors``: {name: (has mask, float32 rows)}."""

    def __init__(self, meta: dict, keys: list, versions: list, payloads: list, vectors: dict):
        self.meta = meta
        self.seq = meta["seq"]
        self.keys = keys
        self.versions = versions
        self.payloads = payloads
        self.vectors = vectors


def read_meta(path: str) -> dict | None:
    try:
        with open(path, "rb") as f:
            return _footer(f)
    except (OSError, ValueError, msgpack.UnpackException):
        return None


def _footer(f) -> dict:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail = len(MAGIC) + 4
    if size < tail:
        raise ValueError("segment too short")
    f.seek(size - tail)
    raw = f.read(tail)
    if raw[4:] != MAGIC:
        raise ValueError("not a segment file")
    length = int.from_bytes(raw[:4], "big")
    f.seek(size - tail - length)
    return msgpack.unpackb(f.read(length))


def read(path: str, dims: dict) -> Segment:
    """The whole segment; raises ValueError (or OSError) if it is not one whose dense
    vectors are ``dims`` ({name: dim})."""
    with open(path, "rb") as f:
        meta = _footer(f)
        if meta["dims"] != dims:
            raise ValueError("segment vectors differ from the collection's")
        sections = meta["sections"]
        count = meta["count"]

        def blobs(name: str):
            for offset, length in sections.get(name, []):
                f.seek(offset)
                data = f.read(length)
                if len(data) != length:
                    raise ValueError("segment truncated")
                yield data

        keys, payloads = [], []
        for blob in blobs("keys"):
            keys.extend(msgpack.unpackb(blob))
        for blob in blobs("payloads"):
            payloads.extend(msgpack.unpackb(blob))
        versions = np.frombuffer(b"".join(blobs("versions")), dtype="<i8")
        if len(keys) != count or len(payloads) != count or len(versions) != count:
            raise ValueError("segment sections disagree")
        vectors = {}
        for name, dim in dims.items():
            has = np.frombuffer(b"".join(blobs("has/" + name)), dtype=np.uint8).astype(bool)
            if len(has) != count:
                raise ValueError("segment sections disagree")
            n = int(has.sum())
            # Sized as the store's matrix (room to grow), so the store adopts it as is:
            # one pass over the memory instead of a zeroed matrix and a copy.
            capacity = 1024
            while capacity < n:
                capacity *= 2
            matrix = np.zeros((capacity, dim), dtype=np.float32)
            rows = matrix[:n]
            view = memoryview(rows).cast("B")
            done = 0
            for offset, length in sections.get("rows/" + name, []):
                f.seek(offset)
                if f.readinto(view[done:done + length]) != length:
                    raise ValueError("segment truncated")
                done += length
            if done != rows.nbytes:
                raise ValueError("segment rows disagree")
            vectors[name] = (has, rows)  # rows.base: the whole matrix
    return Segment(meta, keys, versions.tolist(), payloads, vectors)
