"""Completion tracking for ``wait=true``: an applied watermark per partition, and
futures resolved when the applier commits past them.

Outcomes of failed operations are kept in memory for the waiters; the applier
also records them in the state, so a late waiter can still read them.
"""
import asyncio
from collections import defaultdict


class Progress:
    def __init__(self):
        self.applied: dict = {}  # partition -> last applied offset
        self._waiters = defaultdict(list)  # partition -> [(offset, future)]
        self._failures: dict = {}  # (partition, offset) -> error dict
        self._failure_order: list = []

    def reached(self, partition: int, offset: int) -> bool:
        return self.applied.get(partition, -1) >= offset

    def record_failure(self, partition: int, offset: int, error: dict) -> None:
        self._failures[(partition, offset)] = error
        self._failure_order.append((partition, offset))
        if len(self._failure_order) > 10000:
            self._failures.pop(self._failure_order.pop(0), None)

    def failure(self, partition: int, offset: int) -> dict | None:
        return self._failures.get((partition, offset))

    def advance(self, partition: int, offset: int) -> None:
        """Called right after the state commit that includes ``offset``."""
        self.applied[partition] = offset
        waiters = self._waiters.get(partition)
        if not waiters:
            return
        keep = []
        for target, fut in waiters:
            if target <= offset:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters[partition] = keep

    async def wait(self, partition: int, offset: int, timeout: float | None) -> bool:
        """True once applied, False on timeout."""
        if self.reached(partition, offset):
            return True
        fut = asyncio.get_running_loop().create_future()
        self._waiters[partition].append((offset, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            if not fut.done():
                fut.cancel()
                self._waiters[partition] = [(o, f) for o, f in self._waiters[partition] if f is not fut]
