"""A node: the state it serves reads from, the producer it writes the log with, and
the progress its applier has made. The API talks to this and nothing lower."""
import asyncio
import logging
from dataclasses import dataclass

from storage.errors import QdrantError
from storage.operations import Command
from storage.state import State
from streams.producer import Producer
from streams.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class Settings:
    bootstrap: str = "127.0.0.1:9092"
    topic: str = "pointlog.ops"
    data_dir: str = "./data"
    host: str = "127.0.0.1"
    port: int = 6333
    group: str = ""  # consumer group; defaults to one derived from data_dir
    partitions: int = 1
    fetch_wait_ms: int = 50  # a fetch returns as soon as a record arrives; this bounds idle polls
    linger_ms: int = 1


class Node:
    def __init__(self, settings: Settings, state: State, producer: Producer):
        self.settings = settings
        self.state = state
        self.producer = producer
        self.progress = Progress()

    async def publish_dead_letter(self, topic: str, dead) -> None:
        """Copy a record the applier skipped to the DLQ, with where it came from and why.
        Retried until Kafka takes it: the applier must not move past a record whose
        dead letter could be lost."""
        rec = dead.record
        headers = list(rec.headers) + [
            ("pointlog-source-partition", str(rec.partition).encode()),
            ("pointlog-source-offset", str(rec.offset).encode()),
            ("pointlog-dlq-reason", dead.reason.encode()[:4000]),
        ]
        delay = 0.1
        while True:
            try:
                await self.producer.publish_raw(rec.key or b"", rec.value or b"", headers, topic=topic)
                return
            except QdrantError as exc:
                log.warning("dead letter for offset %s not yet written: %s", rec.offset, exc.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

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
