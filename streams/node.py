"""A node: the state it serves reads from, the producer it writes the log with, and
the progress its applier has made. The API talks to this and nothing lower."""
import asyncio
import logging
import os

from storage.errors import BadRequest, QdrantError, Unavailable
from storage.operations import Command
from storage.state import State
from streams import checkpoint
from streams.outbox import OutboxPublisher
from streams.producer import Producer
from streams.progress import Progress
from streams.settings import Settings
from streams.topics import dlq_topic

log = logging.getLogger(__name__)


_STOPPING = "Service unavailable: pointlog is stopping; retry on another node or after the restart"


class Node:
    def __init__(self, settings: Settings, state: State, producer: Producer, partitions: int = 0):
        self.settings = settings
        self.state = state
        self.producer = producer
        self.partitions = partitions  # of the WAL topic, so /metrics lists those not yet applied too
        self.progress = Progress(state, settings.topic)
        self.outbox = OutboxPublisher(state, producer, dlq_topic(settings.topic))
        self.ready_at: dict = {}  # partition -> end offset of the log when the node started
        self.shards = None  # streams.shard_worker.ShardWorker: the shards of sharded collections held here
        self.indexes = None  # the index scheduler (streams.indexer.IndexManager) when one runs; read by metrics
        self._checkpointing = asyncio.Lock()
        self._stopping = False
        self.failure: str | None = None  # why the applier stopped for good (the state cannot be written)

    def applied(self) -> dict:
        """{partition: last committed applied offset}, -1 for a partition not yet
        applied; read from the state, their one owner."""
        stored = self.state.applied_offsets(self.settings.topic)
        return {**{p: -1 for p in range(self.partitions)}, **stored}

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
            return checkpoint.finish(self.state, tmp, dest, s.topic, self.applied())

    def stopping(self) -> None:
        """A stop was asked for: refuse new writes, and answer the waiting ones now."""
        self._stopping = True
        self.progress.abandon(Unavailable(_STOPPING))

    def state_write_failed(self, reason: str) -> None:
        """The state refused a commit (disk full or failing): the applier has stopped,
        the state was read back as the disk holds it, and the node stays up answering
        reads from that, with /readyz saying why and writes refused (503) until a
        restart, which resumes from the committed offsets once the disk has room."""
        self.failure = (f"the state cannot be written ({reason}); applying stopped at offsets {self.applied()}; "
                        "restart the node once its disk has room")
        log.error("pointlog: %s", self.failure)
        self.progress.abandon(Unavailable(f"Service unavailable: {self.failure}"))
        if self.indexes is not None:
            self.indexes.load()  # the reread collections have new vector stores

    def check_writable(self) -> None:
        if self._stopping:
            raise Unavailable(_STOPPING)
        if self.failure:
            raise Unavailable(f"Service unavailable: {self.failure}")

    async def submit(self, command: Command, wait: bool, timeout: float | None = None) -> dict:
        """Publish a command; with ``wait`` return once this node has applied it."""
        self.check_writable()
        partition, offset = await self.producer.publish(command)
        if self._stopping or self.failure:  # acknowledged by Kafka: applied by the next start, if not by this one
            return {"operation_id": offset, "status": "acknowledged"}
        if not wait:
            return {"operation_id": offset, "status": "acknowledged"}
        if not await self.progress.wait(partition, offset, timeout):
            return {"operation_id": offset, "status": "wait_timeout"}
        failure = self.progress.failure(partition, offset) or self.state.failure(partition, offset)
        if failure is not None:
            raise QdrantError.from_dict(failure)
        return {"operation_id": offset, "status": "completed"}

