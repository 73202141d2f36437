"""Annoy indexes over snapshots of a VectorStore: the index files, loading them, and
what a search asks of them.

An index covers a snapshot of one VectorStore. Searches never wait for it and never
see a stale answer from it (storage/vectors/store.py has the bookkeeping):
- the snapshot remembers the store's ``generation``; a slot put after that is in
  the *delta*, scanned exactly, and is never taken from Annoy;
- an Annoy item maps to its point key (the file's own item -> key list), then to
  the key's slot now; it is a candidate only if that slot is alive and unchanged
  since the snapshot. Deleted points and reused slots therefore never come back.
- candidates are rescored exactly with the same numpy code as the exact scan, so a
  point has the same score whichever path found it.

Files, per collection (internal id) and vector name, under ``<data_dir>/indexes``::

    c<cid>/v_<hex of the name>/current     build id in use (replaced atomically)
    c<cid>/v_<hex of the name>/<id>.ann    the Annoy forest, mmapped when loaded
    c<cid>/v_<hex of the name>/<id>.keys   msgpack: item -> point key, and ``offset``

``offset`` is the highest point version when the snapshot was taken. All writes of
a collection share one partition, so a point with a higher version changed after the
snapshot: on restart those points are the delta and the file is used as is.

This module only touches those files; *when* to rebuild, and the spawned process
that builds, are the runtime's (``streams/indexer.py``).
"""
import logging
import os
import shutil
import time
from dataclasses import dataclass

import msgpack
import numpy as np
from annoy import AnnoyIndex

log = logging.getLogger(__name__)

METRICS = {"Cosine": "angular", "Dot": "dot", "Euclid": "euclidean", "Manhattan": "manhattan"}
COPY_CHUNK = 2048  # rows copied per step while snapshotting: short GIL holds


@dataclass
class IndexParams:
    """How vectors are indexed and searched; ``streams.settings`` fills it from flags
    and ``POINTLOG_INDEX_*`` variables."""
    # A store with fewer vectors is scanned exactly and never indexed. An exact scan
    # of 20k x 128 float32 costs ~2 ms here, about what an Annoy query with exact
    # rescoring costs, and needs no rebuilds.
    threshold: int = 20000
    # Changes (puts + removes) since the snapshot that start a rebuild right away;
    # bounds the exact delta scan per query.
    delta: int = 10000
    # Any pending change is indexed at most this many seconds after the previous
    # build; 0 rebuilds continuously (tests).
    interval: float = 60.0
    # While a store is still being written, its rebuild waits (for at most
    # ``interval``) until it has this many changes: a build in the middle of a bulk
    # load is outdated before it ends and slows the load (streams/indexer.py). Also
    # what bounds the exact scan of the changed points a search makes meanwhile.
    busy_delta: int = 100_000
    trees: int = 32
    build_threads: int = 1
    # Default number of Annoy candidates per query (Qdrant's ``hnsw_ef`` overrides
    # it); Annoy visits trees x candidates nodes. Calibrated with
    # tests/benchmarks/search_recall.py.
    ef: int = 64
    # ``ef`` is the default at this many indexed vectors; a larger index gets more
    # (default_ef): Annoy's trees split space at random, so the candidates a true
    # neighbour is found among grow with the index. Recall@10 on the bench's vectors
    # (32 trees, 300 queries): 100k at ef 64: 0.999; 1M at ef 64: 0.970, 96: 0.986,
    # 128: 0.994, 192: 0.998.
    ef_reference: int = 100_000

    def default_ef(self, indexed: int) -> int:
        """Candidates per query when the request names no ``hnsw_ef``: ``ef`` up to
        ``ef_reference`` vectors, then doubling for every tenfold (x10 ** 0.3)."""
        return round(self.ef * max(1.0, indexed / self.ef_reference) ** 0.3)

    @property
    def tick(self) -> float:
        """How often the scheduler looks for stores due a rebuild."""
        return max(0.02, min(1.0, self.interval / 4))


class AnnIndex:
    """A loaded, immutable Annoy index over a snapshot of one VectorStore."""

    def __init__(self, ann: AnnoyIndex, keys: list, item_slot: np.ndarray, generation: int, removals: int,
                 offset: int, build: str, trees: int):
        self.ann = ann
        self.keys = keys  # item -> point key
        self.item_slot = item_slot  # item -> the key's slot when loaded, -1 if gone
        self.generation = generation  # store generation of the snapshot
        self.removals = removals  # store removals at the snapshot
        self.offset = offset  # highest point version in the snapshot
        self.build = build
        self.trees = trees
        self.loaded_at = time.monotonic()

    def __len__(self) -> int:
        return len(self.keys)

    def candidates(self, store, query: list, n: int) -> np.ndarray:
        """Slots of up to ``n`` approximate neighbours that are still valid: alive and
        not put since the snapshot (those are in the delta)."""
        search_k = -1 if n >= len(self.keys) else n * self.trees
        items = self.ann.get_nns_by_vector(query, n, search_k=search_k)
        if not items:
            return np.empty(0, dtype=np.int64)
        slots = self.item_slot[np.asarray(items, dtype=np.int64)]
        slots = slots[slots >= 0]
        # A key moved to another slot after loading left its old slot dead or
        # reused (stamped later): either way excluded here.
        keep = store.alive[slots] & (store.stamp[slots] <= self.generation)
        return slots[keep]


def indexed_from(col, store, params: IndexParams) -> int | None:
    """How many vectors a store of ``col`` needs before it is indexed (None: never).

    A collection's ``optimizers_config.indexing_threshold`` counts as in Qdrant: in
    kilobytes of vectors (1 kB = 256 float32 numbers), 0 turning indexing off.
    Without one, the node's ``POINTLOG_INDEX_THRESHOLD`` (a vector count) applies.
    """
    kilobytes = (col.config.extra.get("optimizers_config") or {}).get("indexing_threshold")
    if kilobytes is None:
        return params.threshold
    if kilobytes == 0:
        return None
    return max(1, -(-kilobytes * 1024 // (store.dim * 4)))


def indexing(col, store, params: IndexParams) -> bool:
    """Whether a store is large enough to be indexed (and searched through its index)."""
    threshold = indexed_from(col, store, params)
    return threshold is not None and len(store) > 0 and len(store) >= threshold


def index_status(col) -> tuple:
    """(vectors covered by loaded indexes, whether a build is running) of a collection."""
    indexed, building = 0, False
    for store in col.vectors.values():
        if store.index is not None:
            indexed += len(store.index)
        building = building or store.building
    return indexed, building


# ---- files ---------------------------------------------------------------------

def store_dir(root: str, cid: int, name: str) -> str:
    return os.path.join(root, f"c{cid}", "v_" + name.encode().hex())


def _name_of(entry: str) -> str | None:
    if not entry.startswith("v_"):
        return None
    try:
        return bytes.fromhex(entry[2:]).decode()
    except ValueError:
        return None


def write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_current(dirpath: str) -> str | None:
    try:
        with open(os.path.join(dirpath, "current"), "rb") as f:
            return f.read().decode().strip() or None
    except FileNotFoundError:
        return None


def remove_other_builds(dirpath: str, keep: str | None) -> None:
    for entry in os.listdir(dirpath):
        if entry == "current" or (keep is not None and entry.split(".")[0] == keep):
            continue
        try:
            os.remove(os.path.join(dirpath, entry))
        except OSError:
            pass


def write_snapshot(matrix: np.ndarray, store_keys: list, slots: np.ndarray, meta: dict,
                    rows_path: str, keys_path: str) -> list:
    """Runs in a thread, while the loop keeps applying: rows of the snapshot to
    .npy, the item -> key list to .keys; returns the keys.

    A slot put after the snapshot may be read torn here, or under its new key, or
    freed (key None): all of those are stamped after the snapshot generation and
    versioned after its offset, so no search and no restart ever trusts them."""
    keys = [store_keys[s] for s in slots.tolist()]
    # Raw float32 rows through write(), which drops the GIL; filling a fresh memmap
    # would hold it through every page fault.
    with open(rows_path, "wb") as f:
        for start in range(0, len(slots), COPY_CHUNK):
            f.write(np.ascontiguousarray(matrix[slots[start:start + COPY_CHUNK]]).data)
    write_atomic(keys_path, msgpack.packb({**meta, "keys": keys}))
    return keys


def slots_of(slot_of: dict, keys: list) -> np.ndarray:
    """Runs in a thread: each key's slot now (single dict lookups are atomic)."""
    get = slot_of.get
    return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))



# ---- the build (runs in the builder process) --------------------------------------

def build_annoy(rows_path: str, dim: int, metric: str, trees: int, threads: int, ann_path: str) -> dict:
    """In the spawned builder: the Annoy forest over the snapshot rows (raw float32,
    ``dim`` per row), saved to ``ann_path`` (under a temporary name, then renamed)."""
    started = time.perf_counter()
    rows = np.fromfile(rows_path, dtype=np.float32).reshape(-1, dim)
    ann = AnnoyIndex(dim, metric)
    for item in range(rows.shape[0]):
        ann.add_item(item, rows[item].tolist())
    added = time.perf_counter()
    ann.build(trees, n_jobs=threads)
    built = time.perf_counter()
    tmp = ann_path + ".tmp"
    ann.save(tmp)
    ann.unload()
    os.replace(tmp, ann_path)
    return {"items": rows.shape[0], "add_s": added - started, "build_s": built - added,
            "save_s": time.perf_counter() - built}



# ---- loading --------------------------------------------------------------------

def load_indexes(root: str, collections) -> int:
    """Attach the persisted indexes of existing collections (mmap, no rebuild) and
    remove the files of dropped ones. Returns how many were loaded."""
    by_cid = {col.cid: col for col in collections}
    if not os.path.isdir(root):
        return 0
    loaded = 0
    for entry in os.listdir(root):
        path = os.path.join(root, entry)
        col = by_cid.get(int(entry[1:])) if entry[1:].isdigit() and entry[0] == "c" else None
        if col is None:
            shutil.rmtree(path, ignore_errors=True)
            continue
        for vdir in os.listdir(path):
            name = _name_of(vdir)
            store = col.vectors.get(name) if name is not None else None
            dirpath = os.path.join(path, vdir)
            if store is None:
                shutil.rmtree(dirpath, ignore_errors=True)
                continue
            try:
                index = _open(col, store, dirpath)
            except Exception:
                log.exception("index in %s is unreadable; it will be rebuilt", dirpath)
                index = None
            remove_other_builds(dirpath, index.build if index else None)
            if index is not None:
                store.index = index
                loaded += 1
    return loaded


def _open(col, store, dirpath: str) -> AnnIndex | None:
    build = _read_current(dirpath)
    if build is None:
        return None
    with open(os.path.join(dirpath, build + ".keys"), "rb") as f:
        meta = msgpack.unpackb(f.read())
    if (meta["created_offset"] != col.created_offset or meta["dim"] != store.dim
            or meta["distance"] != store.distance):
        return None  # another collection's file under a reused id: rebuild
    ann = AnnoyIndex(store.dim, METRICS[store.distance])
    ann.load(os.path.join(dirpath, build + ".ann"))  # mmap; pages come in on demand
    keys = meta["keys"]
    generation, removals = store.generation, store.removals
    index = AnnIndex(ann, keys, slots_of(store.slot_of, keys), generation, removals, meta["offset"], build,
                     meta["trees"])
    # Points written after the snapshot are the delta: their versions tell.
    offset = meta["offset"]
    store.mark_changed([key for key, point in col.points.items() if point.version > offset])
    return index
