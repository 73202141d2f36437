"""A node: the state it serves reads from, the producer it writes the log with, and
the progress its applier has made. The API talks to this and nothing lower."""
import asyncio
import logging
import os
from storage.errors import BadRequest, QdrantError
from storage.operations import Command
from storage.state import State
from streams import checkpoint
from streams.producer import Producer
from streams.progress import Progress
from streams.settings import Settings

log = logging.getLogger(__name__)


class Node:
    def __init__(self, settings: Settings, state: State, producer: Producer):
        self.settings = settings
        self.state = state
        self.producer = producer
        self.progress = Progress()
        self.indexes = None  # the index scheduler (streams.indexer.IndexManager) when one runs; read by metrics
        self._checkpointing = asyncio.Lock()

    async def publish_dead_letters(self, topic: str, dead: list) -> None:
        """Copy records the applier skipped to the DLQ, with where they came from and
        why. Retried until Kafka takes them: the applier must not commit past a record
        whose dead letter could be lost. (A crash between the two repeats the copy:
        DLQ readers dedupe by source partition and offset.)"""
        pending = list(dead)
        delay = 0.1
        while pending:
            sent = []
            try:
                for d in pending:
                    sent.append((d, await self.producer.send_raw(*_dead_letter(d), topic=topic)))
            except QdrantError as exc:
                log.warning("dead letters not yet written: %s", exc.message)
            failed = []
            for d, fut in sent:
                try:
                    await fut
                except Exception as exc:  # any send failure: retried below
                    log.warning("dead letter for offset %s not yet written: %s", d.record.offset, exc)
                    failed.append(d)
            pending = failed + pending[len(sent):]
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def checkpoint(self, dest: str | None = None) -> dict:
        """Checkpoint this node's data dir into ``dest`` (default: a new directory under
        ``<data_dir>/checkpoints``) while it keeps applying."""
        s = self.settings
        dest = dest or checkpoint.default_path(s.data_dir)
        if not os.path.isabs(dest):
            raise BadRequest("checkpoint path must be absolute")
        async with self._checkpointing:
            try:
                tmp = await asyncio.to_thread(checkpoint.prepare, s.data_dir, dest)
            except FileExistsError as exc:
                raise BadRequest(str(exc)) from None
            # No await from here on: the applier cannot commit in the middle.
            return checkpoint.finish(self.state, tmp, dest, s.topic, self.progress.applied)

    async def submit(self, command: Command, wait: bool, timeout: float | None = None) -> dict:
        """Publish a command; with ``wait`` return once this node has applied it."""
        partition, offset = await self.producer.publish(command)
        if not wait:
            return {"operation_id": offset, "status": "acknowledged"}
        if not await self.progress.wait(partition, offset, timeout):
            return {"operation_id": offset, "status": "wait_timeout"}
        failure = self.progress.failure(partition, offset) or self.state.failure(partition, offset)
        if failure is not None:
            raise QdrantError.from_dict(failure)
        return {"operation_id": offset, "status": "completed"}


def _dead_letter(dead) -> tuple:
    rec = dead.record
    headers = list(rec.headers) + [
        ("pointlog-source-partition", str(rec.partition).encode()),
        ("pointlog-source-offset", str(rec.offset).encode()),
        ("pointlog-dlq-reason", dead.reason.encode()[:4000]),
    ]
    return rec.key or b"", rec.value or b"", headers
