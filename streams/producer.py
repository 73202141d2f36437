"""Publishing commands to the WAL. An operation is acknowledged once Kafka has it
(idempotent producer, acks=all); until then the caller gets 503, never a success."""
import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from storage.errors import Unavailable
from storage.operations import Command
from streams.codec import encode

MAX_REQUEST_BYTES = 64 * 1024 * 1024


class Producer:
    def __init__(self, bootstrap: str, topic: str, linger_ms: int = 1, request_timeout_ms: int = 10000):
        self.topic = topic
        # aiokafka binds to the running loop, so the client is made in start().
        self._options = dict(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=linger_ms,
            max_request_size=MAX_REQUEST_BYTES,
            request_timeout_ms=request_timeout_ms,
            max_batch_size=1024 * 1024,
        )
        self._producer = None
        self._started = False
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Idempotent: the API and the applier's dead letters both start it on first use."""
        async with self._starting:
            if not self._started:
                self._producer = AIOKafkaProducer(**self._options)
                try:
                    await self._producer.start()
                except KafkaError as exc:
                    await self._producer.stop()
                    raise Unavailable(f"Service unavailable: cannot reach Kafka: {type(exc).__name__}") from None
                self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    async def publish(self, command: Command, binary: bool = True) -> tuple:
        """Append one command; returns (partition, offset) once Kafka acknowledged it."""
        key, value, headers = encode(command, binary)
        return await self.publish_raw(key, value, headers)

    async def publish_raw(self, key: bytes, value: bytes, headers=None, topic: str | None = None) -> tuple:
        if not self._started:
            await self.start()
        try:
            pending = await self._producer.send(topic or self.topic, value=value, key=key, headers=headers or [])
            meta = await pending
        except (KafkaError, asyncio.TimeoutError) as exc:
            raise Unavailable(f"Service unavailable: the log (Kafka) did not acknowledge the write: "
                              f"{type(exc).__name__}") from None
        return meta.partition, meta.offset
