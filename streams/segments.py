"""When column segments are written (storage/segments.py), off the event loop.

A segment makes the next start load a collection in bulk; the journal after it is
re-read point by point. Writing one costs about what loading it saves (a pass over
the collection), so it is written when the collection has been quiet for a moment
(after an ingest, before a restart is likely), when its journal outgrows it, or
when the last one is old; never for small collections, which load fast anyway.

Capture happens on the event loop between two commits (the applier commits
synchronously, so any coroutine runs between commits); the file is written in a
thread while the node keeps applying; the journal it covers is pruned after.
"""
import asyncio
import logging
import time

from storage.segments import segmentable

log = logging.getLogger(__name__)

MIN_POINTS = 1000  # smaller collections load point by point as fast
QUIET_S = 2.0  # no change for this long: write
GROWTH = 2  # or the journal holds this many changes per point of the collection
MIN_GROWTH = 100_000
STALE_S = 120.0  # or the last segment is this old and changes are pending
TICK_S = 1.0


class SegmentWriter:
    def __init__(self, state, tick: float = TICK_S, min_points: int = MIN_POINTS, quiet: float = QUIET_S):
        self.state = state
        self.tick = tick
        self.min_points = min_points
        self.quiet = quiet
        self.written = 0  # segments written, for logs and tests
        self._seen: dict = {}  # cid -> (changes, monotonic time they were first seen at that count)
        self._last: dict = {}  # cid -> monotonic time of its last segment

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                await self.maintain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("column segment maintenance failed")

    def due(self, col, now: float) -> bool:
        state = self.state
        changes = state.changes.get(col.cid, 0)
        if changes == 0 or state.failed is not None or len(col) < self.min_points or not segmentable(col):
            return False
        seen = self._seen.get(col.cid)
        if seen is None or seen[0] != changes:
            self._seen[col.cid] = seen = (changes, now)
        last = self._last.setdefault(col.cid, now)
        return (now - seen[1] >= self.quiet or changes >= max(MIN_GROWTH, GROWTH * len(col))
                or now - last >= STALE_S)

    async def maintain(self) -> int:
        done = 0
        for col in list(self.state.collections.values()):
            if self.due(col, time.monotonic()) and await self.write(col):
                done += 1
        live = {col.cid for col in self.state.collections.values()}
        for cid in [c for c in self._seen if c not in live]:
            self._seen.pop(cid, None)
            self._last.pop(cid, None)
        return done

    async def write(self, col) -> bool:
        state = self.state
        if state.in_transaction or state.failed is not None:
            return False
        cap = state.capture_segment(col)  # between two commits: nothing awaited since the check
        started = time.perf_counter()
        try:
            await asyncio.to_thread(cap.write, state.path)
            state.segment_written(cap)
        except Exception:
            state.segment_failed(cap)
            raise
        finally:
            self._last[col.cid] = time.monotonic()
            self._seen.pop(col.cid, None)
        self.written += 1
        log.info("column segment of %s: %d points as of commit %d in %.2fs", col.name, cap.count, cap.seq,
                 time.perf_counter() - started)
        return True
