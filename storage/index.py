"""Annoy indexes per collection and vector name, rebuilt in the background.

An index covers a snapshot of one VectorStore. Searches never wait for it and never
see a stale answer from it (storage/vectors.py has the bookkeeping):
- the snapshot remembers the store's ``generation``; a slot put after that is in
  the *delta*, scanned exactly, and is never taken from Annoy;
- an Annoy item maps to its point key (the file's own item -> key list), then to
  the key's slot now; it is a candidate only if that slot is alive and unchanged
  since the snapshot. Deleted points and reused slots therefore never come back.
- candidates are rescored exactly with the same numpy code as the exact scan, so a
  point has the same score whichever path found it.

Rebuilds run on the event loop's schedule but off its thread: the snapshot rows are
written to a raw float32 file by a worker thread (chunked, so the GIL is shared), Annoy is
built in a *spawned* process (``add_item`` holds the GIL; the server runs a Kafka
consumer thread, so never fork), written to a new file, and swapped in. The old
file is unlinked, never overwritten while mmapped.

Files, per collection (internal id) and vector name, under ``<data_dir>/indexes``::

    c<cid>/v_<hex of the name>/current     build id in use (replaced atomically)
    c<cid>/v_<hex of the name>/<id>.ann    the Annoy forest, mmapped when loaded
    c<cid>/v_<hex of the name>/<id>.keys   msgpack: item -> point key, and ``offset``

``offset`` is the highest point version when the snapshot was taken. All writes of
a collection share one partition, so a point with a higher version changed after the
snapshot: on restart those points are the delta and the file is used as is.

Settings (environment variables):

- ``POINTLOG_INDEX_THRESHOLD`` (20000): a store with fewer vectors is scanned
  exactly and never indexed. An exact scan of 20k x 128 float32 costs ~2 ms here,
  about what an Annoy query with exact rescoring costs, and needs no rebuilds.
- ``POINTLOG_INDEX_DELTA`` (10000): changes (puts + removes) since the snapshot that
  start a rebuild right away. Bounds the exact delta scan per query.
- ``POINTLOG_INDEX_INTERVAL`` (60 s): any pending change is indexed at most this
  long after the previous build. ``0`` rebuilds continuously (tests).
- ``POINTLOG_INDEX_TREES`` (32) and ``POINTLOG_INDEX_BUILD_THREADS`` (1).
"""
import asyncio
import logging
import multiprocessing
import os
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import msgpack
import numpy as np
from annoy import AnnoyIndex

log = logging.getLogger(__name__)

METRICS = {"Cosine": "angular", "Dot": "dot", "Euclid": "euclidean", "Manhattan": "manhattan"}
COPY_CHUNK = 2048  # rows copied per step while snapshotting: short GIL holds
RETRY_AFTER = 30.0  # seconds before retrying a store whose build failed


def _env_number(name: str, default, kind):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


@dataclass
class IndexSettings:
    threshold: int = 20000
    delta: int = 10000
    interval: float = 60.0
    trees: int = 32
    build_threads: int = 1
    # Default number of Annoy candidates per query (Qdrant's ``hnsw_ef`` overrides
    # it); Annoy visits trees x candidates nodes. Calibrated with
    # tests/benchmarks/search_recall.py.
    ef: int = 64

    @staticmethod
    def from_env() -> "IndexSettings":
        return IndexSettings(
            threshold=_env_number("POINTLOG_INDEX_THRESHOLD", 20000, int),
            delta=max(1, _env_number("POINTLOG_INDEX_DELTA", 10000, int)),
            interval=_env_number("POINTLOG_INDEX_INTERVAL", 60.0, float),
            trees=max(1, _env_number("POINTLOG_INDEX_TREES", 32, int)),
            build_threads=max(1, _env_number("POINTLOG_INDEX_BUILD_THREADS", 1, int)),
            ef=max(1, _env_number("POINTLOG_INDEX_EF", 64, int)),
        )

    @property
    def tick(self) -> float:
        """How often the manager looks for stores due a rebuild."""
        return max(0.02, min(1.0, self.interval / 4))


SETTINGS = IndexSettings.from_env()


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


def index_status(col) -> tuple:
    """(vectors covered by loaded indexes, whether a build is running) of a collection."""
    indexed, building = 0, False
    for store in col.vectors.values():
        if store.index is not None:
            indexed += len(store.index)
        building = building or store.building
    return indexed, building


# ---- files ---------------------------------------------------------------------

def _store_dir(root: str, cid: int, name: str) -> str:
    return os.path.join(root, f"c{cid}", "v_" + name.encode().hex())


def _name_of(entry: str) -> str | None:
    if not entry.startswith("v_"):
        return None
    try:
        return bytes.fromhex(entry[2:]).decode()
    except ValueError:
        return None


def _write_atomic(path: str, data: bytes) -> None:
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


def _remove_other_builds(dirpath: str, keep: str | None) -> None:
    for entry in os.listdir(dirpath):
        if entry == "current" or (keep is not None and entry.split(".")[0] == keep):
            continue
        try:
            os.remove(os.path.join(dirpath, entry))
        except OSError:
            pass


def _max_version(points: list) -> int:
    return max((p.version for p in points), default=-1)


def _write_snapshot(matrix: np.ndarray, store_keys: list, slots: np.ndarray, meta: dict,
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
    _write_atomic(keys_path, msgpack.packb({**meta, "keys": keys}))
    return keys


def _slots_of(slot_of: dict, keys: list) -> np.ndarray:
    """Runs in a thread: each key's slot now (single dict lookups are atomic)."""
    get = slot_of.get
    return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))


# ---- the build process ------------------------------------------------------------

def _child_init(parent: int) -> None:
    """In the spawned builder: be nice to the server, and die with it (a killed
    server would otherwise leave the pool process waiting forever)."""
    try:
        os.nice(10)
    except OSError:
        pass

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


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


# ---- the manager -------------------------------------------------------------------

class IndexManager:
    """Loads persisted indexes at startup and keeps them fresh while serving."""

    def __init__(self, root: str, state, settings: IndexSettings | None = None):
        self.root = root
        self.state = state  # anything with ``collections``: name -> Collection
        self.settings = settings or SETTINGS
        self.builds = 0  # completed builds, for logs and tests
        self.last_build: dict = {}  # figures of the last build
        self._pool: ProcessPoolExecutor | None = None
        self._retry_at: dict = {}  # (cid, name) -> monotonic time
        self._known_cids: set = set()

    # ---- startup -------------------------------------------------------------

    def load(self) -> int:
        """Attach the persisted indexes of existing collections (mmap, no rebuild);
        remove the files of dropped collections. Returns how many were loaded."""
        by_cid = {col.cid: col for col in self.state.collections.values()}
        self._known_cids = set(by_cid)
        if not os.path.isdir(self.root):
            return 0
        loaded = 0
        for entry in os.listdir(self.root):
            path = os.path.join(self.root, entry)
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
                    index = self._open(col, store, dirpath)
                except Exception:
                    log.exception("index in %s is unreadable; it will be rebuilt", dirpath)
                    index = None
                _remove_other_builds(dirpath, index.build if index else None)
                if index is not None:
                    store.index = index
                    loaded += 1
        return loaded

    def _open(self, col, store, dirpath: str) -> AnnIndex | None:
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
        index = AnnIndex(ann, keys, _slots_of(store.slot_of, keys), generation, removals, meta["offset"], build,
                         meta["trees"])
        # Points written after the snapshot are the delta: their versions tell.
        offset = meta["offset"]
        store.mark_changed([key for key, point in col.points.items() if point.version > offset])
        return index

    # ---- while serving -------------------------------------------------------

    async def run(self) -> None:
        """Forever: rebuild the stores that are due, one at a time."""
        while True:
            try:
                await self.maintain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("index maintenance failed")
            await asyncio.sleep(self.settings.tick)

    async def maintain(self) -> int:
        """One pass: rebuild every store that is due. Returns how many were rebuilt."""
        self._forget_dropped()
        done = 0
        now = time.monotonic()
        for col in list(self.state.collections.values()):
            for name, store in list(col.vectors.items()):
                if self.due(col, name, store, now) and await self.rebuild(col, name):
                    done += 1
        return done

    def due(self, col, name: str, store, now: float) -> bool:
        if store.building or len(store) == 0 or len(store) < self.settings.threshold:
            return False
        if now < self._retry_at.get((col.cid, name), 0.0):
            return False
        index = store.index
        if index is None:
            return True
        changes = store.changes_since(index.generation, index.removals)
        return changes > 0 and (changes >= self.settings.delta
                                or now - index.loaded_at >= self.settings.interval)

    async def rebuild(self, col, name: str) -> bool:
        """Snapshot one store, build its index in the builder process, swap it in."""
        store = col.vectors[name]
        if store.building:
            return False
        loop = asyncio.get_running_loop()
        store.building = True
        dirpath = _store_dir(self.root, col.cid, name)
        build = f"{time.time_ns():x}"
        rows_path = os.path.join(dirpath, build + ".rows")
        keys_path = os.path.join(dirpath, build + ".keys")
        ann_path = os.path.join(dirpath, build + ".ann")
        started = time.perf_counter()
        try:
            # The offset first: read in a thread but before the generation is taken,
            # so it can only be lower than the true one, never higher. Lower is safe
            # (more points count as changed after a restart); higher would trust
            # points changed after the snapshot.
            offset = await loop.run_in_executor(None, _max_version, list(col.points.values()))
            generation, removals = store.generation, store.removals
            slots = store.alive_slots()
            matrix, store_keys = store.matrix, store.keys
            trees = self.settings.trees
            meta = {"offset": offset, "created_offset": col.created_offset, "dim": store.dim,
                    "distance": store.distance, "trees": trees}
            os.makedirs(dirpath, exist_ok=True)
            keys = await loop.run_in_executor(None, _write_snapshot, matrix, store_keys, slots, meta, rows_path,
                                              keys_path)
            copied = time.perf_counter()
            stats = await loop.run_in_executor(self._builder(), build_annoy, rows_path, store.dim,
                                               METRICS[store.distance], trees, self.settings.build_threads,
                                               ann_path)
            os.remove(rows_path)
            if self.state.collections.get(col.name) is not col:
                shutil.rmtree(dirpath, ignore_errors=True)  # dropped while building
                return False
            ann = AnnoyIndex(store.dim, METRICS[store.distance])
            ann.load(ann_path)
            item_slot = await loop.run_in_executor(None, _slots_of, store.slot_of, keys)
            await loop.run_in_executor(None, _write_atomic, os.path.join(dirpath, "current"), build.encode())
            store.index = AnnIndex(ann, keys, item_slot, generation, removals, offset, build, trees)
            # The old index may still be mapped: unlinking is safe, its pages live
            # until unmapped (only overwriting in place would not be).
            _remove_other_builds(dirpath, build)
            self.builds += 1
            self.last_build = {"collection": col.name, "vector": name, "items": len(keys),
                               "snapshot_s": copied - started, **stats,
                               "total_s": time.perf_counter() - started}
            self._retry_at.pop((col.cid, name), None)
            log.info("index %s/%s: %s vectors in %.2fs", col.name, name, len(keys), time.perf_counter() - started)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, BrokenProcessPool):
                self._pool = None
            log.exception("building the index of %s/%s failed", col.name, name)
            self._retry_at[(col.cid, name)] = time.monotonic() + RETRY_AFTER
            for path in (rows_path, ann_path + ".tmp"):
                try:
                    os.remove(path)
                except OSError:
                    pass
            return False
        finally:
            store.building = False

    def _builder(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_child_init, initargs=(os.getpid(),))
        return self._pool

    def _forget_dropped(self) -> None:
        cids = {col.cid for col in self.state.collections.values()}
        for cid in self._known_cids - cids:
            shutil.rmtree(os.path.join(self.root, f"c{cid}"), ignore_errors=True)
            self._retry_at = {k: v for k, v in self._retry_at.items() if k[0] != cid}
        self._known_cids = cids

    def close(self) -> None:
        """Stop the builder now: a build can take a while and is redone after a
        restart anyway (its partial files are removed when indexes are loaded)."""
        if self._pool is not None:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            self._pool = None
