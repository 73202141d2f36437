"""Completion tracking for ``wait=true``: futures resolved once the state's
committed applied offset of their partition reaches them.

The applied offsets themselves belong to the state (moved only by a commit); this
keeps the waiters, and the outcomes of recent failed operations for them (the
applier also records those in the state, so a late waiter can still read them).
"""
import asyncio
from collections import OrderedDict, defaultdict

from storage.state import State

FAILURES_KEPT = 10000


class Progress:
    def __init__(self, state: State, topic: str, failures_kept: int = FAILURES_KEPT):
        self._state = state
        self._topic = topic
        self._waiters = defaultdict(list)  # partition -> [(offset, future)]
        self._failures: OrderedDict = OrderedDict()  # (partition, offset) -> error dict, oldest first
        self._failures_kept = failures_kept
        self._abandoned: Exception | None = None  # once set, every wait fails with it

    def reached(self, partition: int, offset: int) -> bool:
        return self._state.applied_offset(self._topic, partition) >= offset

    def record_failure(self, partition: int, offset: int, error: dict) -> None:
        self._failures[(partition, offset)] = error
        if len(self._failures) > self._failures_kept:
            self._failures.popitem(last=False)

    def failure(self, partition: int, offset: int) -> dict | None:
        return self._failures.get((partition, offset))

    def committed(self, partitions) -> None:
        """Called right after a state commit: resolve the waiters it satisfied."""
        for partition in partitions:
            waiters = self._waiters.get(partition)
            if not waiters:
                continue
            applied = self._state.applied_offset(self._topic, partition)
            keep = []
            for target, fut in waiters:
                if target <= applied:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    keep.append((target, fut))
            self._waiters[partition] = keep

    def abandon(self, error: Exception) -> None:
        """Nothing more will be applied (the node is stopping, or cannot write its
        state): every waiter, and every later one, gets ``error`` now rather than a
        closed connection or a timeout later."""
        self._abandoned = error
        for waiters in self._waiters.values():
            for _target, fut in waiters:
                if not fut.done():
                    fut.set_exception(error)
        self._waiters.clear()

    async def wait(self, partition: int, offset: int, timeout: float | None) -> bool:
        """True once applied, False on timeout."""
        if self.reached(partition, offset):
            return True
        if self._abandoned is not None:
            raise self._abandoned
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
