"""Publishing the state's outbox of dead letters to the DLQ topic.

The applier stages a dead letter in the same commit as the offset that skips its
record (``storage.transaction``), so applying never waits for Kafka; this one task
on the worker's loop copies committed entries to ``<topic>.dlq`` in log order and
deletes each once Kafka acknowledged it. Entries left by a crash between the commit
and the publish are published when the task starts. A crash after the publish and
before the delete sends an entry twice: DLQ readers dedupe by source partition and
offset (``pointlog-source-partition``/``-offset``), so at-least-once is enough.
"""
import asyncio
import logging

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from storage.state import State
from storage.transaction import DeadLetter
from streams.producer import Producer

log = logging.getLogger(__name__)
CHUNK = 500  # entries in flight at once


def dlq_record(letter: DeadLetter) -> tuple:
    """(key, value, headers) of the DLQ copy: the record as it was, plus where it
    came from and why it was skipped."""
    headers = list(letter.headers) + [
        ("pointlog-source-partition", str(letter.partition).encode()),
        ("pointlog-source-offset", str(letter.offset).encode()),
        *([("pointlog-source-topic", letter.topic.encode())] if letter.topic else []),
        ("pointlog-dlq-reason", letter.reason.encode()[:4000]),
    ]
    return letter.key or b"", letter.value or b"", headers


class OutboxPublisher:
    def __init__(self, state: State, producer: Producer, topic: str, max_backoff: float = 5.0):
        self._state = state
        self._producer = producer
        self.topic = topic
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A commit staged dead letters."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()  # before reading the outbox, so a commit during the publish is not missed
            await self.publish_pending()
            await self._wake.wait()

    async def publish_pending(self) -> None:
        """Publish everything in the outbox, retrying (forever, with backoff) while
        Kafka does not take it."""
        retrying = AsyncRetrying(wait=wait_exponential(multiplier=0.1, max=self._max_backoff),
                                 retry=retry_if_exception_type(Exception), before_sleep=_log_retry)
        async for attempt in retrying:
            with attempt:
                while await self._publish_chunk():
                    pass

    async def _publish_chunk(self) -> int:
        if self._state.failed:
            return 0  # it could not delete what it published: every retry would send it again
        letters = self._state.outbox(limit=CHUNK)
        sent = []
        # Records to one partition keep the order of send(): the DLQ gets log order.
        for letter in letters:
            fut = await self._producer.send_raw(*dlq_record(letter), topic=self.topic)
            fut.add_done_callback(_retrieve)  # after a failure the retry resends the rest
            sent.append(fut)
        for letter, fut in zip(letters, sent):
            await fut
            self._state.published(letter)
        return len(letters)


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


def _log_retry(state) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    log.warning("dead letters not yet written to the DLQ (attempt %s): %s", state.attempt_number, exc)
