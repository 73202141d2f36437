"""Publishing commands to the WAL. An operation is acknowledged once Kafka has it
(idempotent producer, acks=all); until then the caller gets 503, never a success.

After a failed send the client is replaced: aiokafka's idempotent producer never
recovers from a batch that expired (say, while the broker restarted): every later
send fails with OutOfOrderSequenceNumber. A new client gets a new producer id. A
record whose send failed may still have reached the log (the broker wrote it, the
answer was lost): a 503 means "unknown", as with any client of any database.

At a leader change (a broker died) the client retries its in-flight batches with
the same producer id and sequence numbers against the new leader, which drops one
the old leader had already replicated and answers its original offset: a write
acknowledged late is still written once. Past the bounded wait the caller gets 503,
and the replaced client is discarded, not flushed: what it had not sent is dropped
rather than retried for as long as its stop takes, so a write answered 503 cannot
land in the log after writes acknowledged later (a client retrying it would then
see its old value win).
"""
import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from storage.errors import Unavailable
from storage.operations import Command
from streams.codec import encode
from streams.connection import Connection, connection

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 64 * 1024 * 1024


class Producer:
    def __init__(self, kafka: Connection | str, topic: str, linger_ms: int = 0, request_timeout_ms: int = 5000):
        self.topic = topic
        # aiokafka binds to the running loop, so the client is made in start().
        self._options = dict(
            **connection(kafka).options(),
            enable_idempotence=True,
            acks="all",
            linger_ms=linger_ms,
            max_request_size=MAX_REQUEST_BYTES,
            request_timeout_ms=request_timeout_ms,
            max_batch_size=1024 * 1024,
        )
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._retiring: set = set()  # stops of replaced clients, kept referenced

    async def start(self) -> AIOKafkaProducer:
        """Idempotent: the API and the applier's dead letters both start it on first use."""
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(**self._options)
                try:
                    await producer.start()
                except KafkaError as exc:
                    await producer.stop()
                    raise Unavailable(f"Service unavailable: cannot reach Kafka: {type(exc).__name__}") from None
                self._producer = producer
            return self._producer

    async def stop(self) -> None:
        async with self._starting:
            producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def _replace(self, failed: AIOKafkaProducer) -> None:
        """Drop a client whose send failed; the next send starts a new one."""
        if self._producer is not failed:
            return  # another failure already replaced it
        self._producer = None
        log.warning("a send to Kafka failed; replacing the producer client")
        task = asyncio.ensure_future(asyncio.wait_for(_discard(failed), 30))
        self._retiring.add(task)
        task.add_done_callback(lambda t: (self._retiring.discard(t), t.cancelled() or t.exception()))

    async def publish(self, command: Command, binary: bool = True) -> tuple:
        """Append one command; returns (partition, offset) once Kafka acknowledged it."""
        key, value, headers = encode(command, binary)
        return await self.publish_raw(key, value, headers)

    async def enqueue(self, command: Command, binary: bool = True) -> asyncio.Future:
        """Hand a command to the producer without waiting for Kafka: the returned
        future resolves to its RecordMetadata (or raises Unavailable). Records to one
        partition keep the order of ``enqueue`` calls, so many can be in flight."""
        return await self.send_raw(*encode(command, binary))

    async def send_raw(self, key: bytes, value: bytes, headers=None, topic: str | None = None,
                       partition: int | None = None) -> asyncio.Future:
        """Append a raw record without waiting for Kafka; returns the delivery future."""
        producer = await self.start()
        try:
            pending = await producer.send(topic or self.topic, value=value, key=key, headers=headers or [],
                                          partition=partition)
        except (KafkaError, asyncio.TimeoutError) as exc:
            self._replace(producer)
            raise Unavailable(f"Service unavailable: the log (Kafka) did not take the write: "
                              f"{type(exc).__name__}") from None
        return asyncio.ensure_future(self._acknowledged(producer, pending))

    async def _acknowledged(self, producer: AIOKafkaProducer, pending):
        try:
            # Bounded here too: an idempotent client whose producer id request was cut
            # off by a broker outage keeps its batches queued without expiring them, and
            # the caller would wait with no answer. Twice the request timeout leaves
            # room for the client's own retries; past it the outcome is unknown: a 503.
            meta = await asyncio.wait_for(pending, 2 * self._options["request_timeout_ms"] / 1000)
        except (KafkaError, asyncio.TimeoutError) as exc:
            self._replace(producer)
            raise Unavailable(f"Service unavailable: the log (Kafka) did not acknowledge the write: "
                              f"{type(exc).__name__}") from None
        if meta.offset < 0:
            # aiokafka reports a retried batch the broker calls a duplicate (written
            # before, its offset no longer cached) as sent at offset -1: written, but
            # with no operation id to answer or to wait for.
            raise Unavailable("Service unavailable: the log (Kafka) took the write but did not say at which offset")
        return meta

    async def publish_raw(self, key: bytes, value: bytes, headers=None, topic: str | None = None,
                          partition: int | None = None) -> tuple:
        meta = await (await self.send_raw(key, value, headers, topic, partition))
        return meta.partition, meta.offset


async def _discard(producer: AIOKafkaProducer) -> None:
    """Stop a failed client without sending what it still holds. aiokafka's ``stop``
    flushes, retrying every queued batch (an idempotent client never expires one)
    until it is written; here the sender ends first (the requests already on the wire
    finish, written or not), then every batch left is failed, so it is never sent."""
    await producer._sender.close()
    producer._message_accumulator.fail_all(KafkaTimeoutError("the write was dropped with its failed producer"))
    await producer.stop()
