"""The index scheduler: when each vector store's Annoy index is rebuilt, and the
process that builds it.

Rebuilds run on the event loop's schedule but off its thread: the snapshot rows are
written to a raw float32 file by a worker thread (chunked, so the GIL is shared), Annoy is
built in a *spawned* process (``add_item`` holds the GIL; the server runs a Kafka
consumer thread, so never fork), written to a new file, and swapped in. The old
file is unlinked, never overwritten while mmapped. The files and what they promise
are ``storage/vectors/annoy_index.py``'s; the thresholds are ``IndexParams``.
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

from annoy import AnnoyIndex

from storage.vectors.annoy_index import (METRICS, AnnIndex, IndexParams, build_annoy, indexing, load_indexes,
                                         remove_other_builds, slots_of, store_dir, write_atomic,
                                         write_snapshot)

log = logging.getLogger(__name__)
RETRY_AFTER = 30.0  # seconds before retrying a store whose build failed


def _child_init(parent: int) -> None:
    """In the spawned builder: run only on CPU nothing else wants, and die with the
    server (a killed server would otherwise leave the pool process waiting forever).

    SCHED_IDLE rather than a nice value: a niced builder still delays every thread
    it shares a core with (the broker's, the server's) at each wakeup, and a write
    crosses several. Four A/B pairs of wait=true writes during the rebuild after a
    50k-point ingest, nice 10 -> SCHED_IDLE: p50 3.1/2.5/5.0/2.1 -> 2.5/2.8/2.5/1.5 ms,
    p99 10.3/13.4/14.1/8.8 -> 9.7/7.8/11.5/7.8 ms. The cost: on a machine busy all the
    time a rebuild waits for a quiet moment; searches stay exact meanwhile (the
    points changed since the last index are scanned), only slower."""
    try:
        os.nice(10)
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux: the nice value stays
        pass

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()



class IndexManager:
    """Loads persisted indexes at startup and keeps them fresh while serving."""

    def __init__(self, root: str, state, params: IndexParams | None = None):
        self.root = root
        self.state = state  # anything with ``collections``: name -> Collection
        self.params = params or IndexParams()
        self.builds = 0  # completed builds, for logs and tests
        self.passes = 0  # completed maintenance passes: after one, every due store was seen
        self.last_build: dict = {}  # figures of the last build
        self._pool: ProcessPoolExecutor | None = None
        self._retry_at: dict = {}  # (cid, name) -> monotonic time
        self._known_cids: set = set()
        self._seen: dict = {}  # (cid, name) -> the store's change count at the previous pass
        self._waiting: dict = {}  # (cid, name) -> when its rebuild was first put off

    # ---- startup -------------------------------------------------------------

    def load(self) -> int:
        """Attach the persisted indexes (mmap, no rebuild); returns how many."""
        self._known_cids = {col.cid for col in self.state.collections.values()}
        return load_indexes(self.root, self.state.collections.values())

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
            await asyncio.sleep(self.params.tick)

    async def maintain(self) -> int:
        """One pass: rebuild every store that is due. Returns how many were rebuilt."""
        self._forget_dropped()
        done = 0
        now = time.monotonic()
        for col in list(self.state.collections.values()):
            for name, store in list(col.vectors.items()):
                if self.due(col, name, store, now) and await self.rebuild(col, name):
                    done += 1
        self.passes += 1
        return done

    def due(self, col, name: str, store, now: float) -> bool:
        """Whether a store's index should be (re)built now: ``delta`` changes since the
        last build, or any after ``interval``.

        A store still being written (it changed since the previous pass) waits until
        its changes reach ``busy_delta``, for ``interval`` at most: a build started in
        the middle of a bulk load is outdated before it ends, and the builder's passes
        over tens of MB of vectors, on the core the broker and the load run on, slowed
        the server's own thread by up to a tenth per point. Six A/B pairs of a 100k
        bulk load over REST: 30.8k -> 36.2k and 35.9k -> 39.4k points/s (means of
        three), the index ready as soon after the load. Searches stay exact over the
        changed points meanwhile (a scan of up to ``busy_delta`` vectors)."""
        key = (col.cid, name)
        seen = store.generation + store.removals
        busy = self._seen.get(key, seen) != seen
        self._seen[key] = seen
        if store.building or not indexing(col, store, self.params):
            return False
        if now < self._retry_at.get(key, 0.0):
            return False
        index = store.index
        changes = len(store) if index is None else store.changes_since(index.generation, index.removals)
        if changes == 0:
            return False
        if busy and changes < self.params.busy_delta:
            if now - self._waiting.setdefault(key, now) < self.params.interval:
                return False
        elif index is not None and changes < self.params.delta and now - index.loaded_at < self.params.interval:
            return False
        self._waiting.pop(key, None)
        return True

    async def rebuild(self, col, name: str) -> bool:
        """Snapshot one store, build its index in the builder process, swap it in."""
        store = col.vectors[name]
        if store.building:
            return False
        loop = asyncio.get_running_loop()
        store.building = True
        dirpath = store_dir(self.root, col.cid, name)
        build = f"{time.time_ns():x}"
        rows_path = os.path.join(dirpath, build + ".rows")
        keys_path = os.path.join(dirpath, build + ".keys")
        ann_path = os.path.join(dirpath, build + ".ann")
        started = time.perf_counter()
        try:
            # Taken together, with no await between them: every point changed after
            # this snapshot has a higher version than ``offset``.
            offset, generation, removals = col.newest_version, store.generation, store.removals
            slots = store.alive_slots()
            matrix, store_keys = store.matrix, store.keys
            trees = self.params.trees
            meta = {"offset": offset, "created_offset": col.created_offset, "dim": store.dim,
                    "distance": store.distance, "trees": trees}
            os.makedirs(dirpath, exist_ok=True)
            keys = await loop.run_in_executor(None, write_snapshot, matrix, store_keys, slots, meta, rows_path,
                                              keys_path)
            copied = time.perf_counter()
            stats = await loop.run_in_executor(self._builder(), build_annoy, rows_path, store.dim,
                                               METRICS[store.distance], trees, self.params.build_threads,
                                               ann_path)
            # Unlinking a file of tens of MB takes milliseconds: never on the loop.
            await loop.run_in_executor(None, os.remove, rows_path)
            if self.state.collections.get(col.name) is not col:
                shutil.rmtree(dirpath, ignore_errors=True)  # dropped while building
                return False
            ann = AnnoyIndex(store.dim, METRICS[store.distance])
            ann.load(ann_path)
            item_slot = await loop.run_in_executor(None, slots_of, store.slot_of, keys)
            await loop.run_in_executor(None, write_atomic, os.path.join(dirpath, "current"), build.encode())
            store.index = AnnIndex(ann, keys, item_slot, generation, removals, offset, build, trees)
            # The old index may still be mapped: unlinking is safe, its pages live
            # until unmapped (only overwriting in place would not be).
            await loop.run_in_executor(None, remove_other_builds, dirpath, build)
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
            for per_store in (self._retry_at, self._seen, self._waiting):
                for key in [k for k in per_store if k[0] == cid]:
                    del per_store[key]
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
