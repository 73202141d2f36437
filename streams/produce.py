"""Writing operations to the log without going through HTTP.

    async with LogProducer("127.0.0.1:9092", "pointlog.ops") as wal:
        await wal.send("items", "create_collection", {"vectors": {"size": 4, "distance": "Dot"}})
        partition, offset = await wal.send("items", "upsert", {"points": [{"id": 1, "vector": [1, 2, 3, 4]}]})
        await wal.send_many(commands)  # pipelined, order kept

``LogProducer(settings.kafka, ...)`` (a ``streams.connection.Connection``) connects with
the SASL / TLS settings too; a bootstrap string means PLAINTEXT.

``send(collection, kind, body)`` takes any kind of ``storage.operations.KINDS``.

Bodies are WAL values without ``op`` (the Qdrant request bodies): they are read by
the WAL codec (``streams.codec.from_wire``), so a body the applier would dead-letter
raises here and nothing is published; what is published is byte for byte what the
API publishes (``streams.codec.encode``). A producer has no node, so it only knows the
vector sizes of collections it created itself and checks those as the API does;
anything else wrong is found by the applier, which dead-letters the record.

The JSON Lines format of ``pointlog produce FILE.jsonl`` is one WAL value per line
plus the collection: ``{"collection": "items", "op": "upsert", "points": [...]}``
(see ``streams/record.schema.json`` for every ``op`` and its fields).
"""
import time
from collections import deque
from dataclasses import dataclass

import orjson

from storage import operations as ops
from storage.errors import BadRequest, QdrantError, Unavailable
from streams.codec import from_wire
from streams.connection import Connection
from streams.producer import Producer
from streams.settings import Settings

DEFAULT_TOPIC = Settings.model_fields["topic"].default
WINDOW = 2000  # records in flight before waiting for the oldest acknowledgement


def command(collection: str, op: str, body: dict | None = None) -> ops.Command:
    """Build and validate an operation from a Qdrant-style body."""
    if not isinstance(collection, str) or not collection:
        raise BadRequest("Format error: `collection` must be a non-empty string")
    return ops.Command(collection, from_wire({**(body or {}), "op": op}))


def command_from_json(obj) -> ops.Command:
    """One line of a JSONL file: a WAL value plus ``collection``."""
    if not isinstance(obj, dict):
        raise BadRequest("Format error: each line must be a JSON object")
    obj = dict(obj)
    collection = obj.pop("collection", None)
    op = obj.pop("op", None)
    return command(collection, op, obj)


class ProduceError(Unavailable):
    """Kafka did not acknowledge a record; ``acknowledged`` records before it were."""

    def __init__(self, message: str, acknowledged: list):
        super().__init__(message)
        self.acknowledged = acknowledged


class KnownConfigs:
    """Configs of the collections a producer created itself: enough to make the
    API's vector checks for those."""

    def __init__(self):
        self.configs: dict = {}  # collection -> CollectionConfig

    def check(self, cmd: ops.Command) -> None:
        if isinstance(cmd.op, ops.CreateCollection):
            self.configs[cmd.collection] = cmd.op.config
        elif isinstance(cmd.op, ops.DeleteCollection):
            self.configs.pop(cmd.collection, None)
        elif cmd.collection in self.configs:
            cmd.op.validate_against(self.configs[cmd.collection])


class LogProducer:
    def __init__(self, kafka: Connection | str, topic: str = DEFAULT_TOPIC, linger_ms: int = 5, window: int = WINDOW):
        self.topic = topic
        self.window = window
        self.known = KnownConfigs()
        self._producer = Producer(kafka, topic, linger_ms=linger_ms, request_timeout_ms=30000)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> "LogProducer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def publish(self, cmd: ops.Command) -> tuple:
        """Publish one command; (partition, offset) once Kafka acknowledged it."""
        return (await self.send_many([cmd]))[0]

    async def send(self, collection: str, op: str, body: dict | None = None) -> tuple:
        return await self.publish(command(collection, op, body))

    async def send_many(self, commands, on_ack=None) -> list:
        """Publish commands in order with many in flight; returns [(partition, offset)].
        ``on_ack(count)`` is called as acknowledgements arrive."""
        acks, inflight = [], deque()

        async def settle_oldest():
            try:
                meta = await inflight.popleft()
            except QdrantError as exc:
                raise ProduceError(f"record {len(acks) + 1}: {exc.message}", acks) from None
            acks.append((meta.partition, meta.offset))
            if on_ack is not None:
                on_ack(len(acks))

        try:
            for cmd in commands:
                self.known.check(cmd)
                try:
                    inflight.append(await self._producer.enqueue(cmd))
                except QdrantError as exc:
                    raise ProduceError(exc.message, acks) from None
                while len(inflight) >= self.window:
                    await settle_oldest()
            while inflight:
                await settle_oldest()
        finally:
            for fut in inflight:  # left only after an error; their outcome is unknown
                fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        return acks


# ---- JSON Lines files -------------------------------------------------------------------

class LineError(BadRequest):
    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line


def read_jsonl(path: str):
    """Yield the commands of a JSONL file in order; raise LineError at the first bad line.
    Blank lines and lines starting with ``#`` are skipped."""
    known = KnownConfigs()
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith(b"#"):
                continue
            try:
                cmd = command_from_json(orjson.loads(line))
                known.check(cmd)
            except orjson.JSONDecodeError as exc:
                raise LineError(number, f"not JSON: {exc}") from None
            except QdrantError as exc:
                raise LineError(number, exc.message) from None
            yield cmd


@dataclass
class ProduceReport:
    operations: int
    points: int
    seconds: float
    first: tuple | None  # (partition, offset)
    last: tuple | None


async def produce_file(path: str, kafka: Connection | str, topic: str = DEFAULT_TOPIC, progress=None) -> ProduceReport:
    """Validate every line first (a typo on the last line publishes nothing), then
    publish them all in order. ``progress(done, total)`` follows acknowledgements."""
    total = points = 0
    for cmd in read_jsonl(path):
        total += 1
        points += cmd.op.points_written()
    began = time.perf_counter()
    async with LogProducer(kafka, topic) as wal:
        acks = await wal.send_many(read_jsonl(path), on_ack=(lambda n: progress(n, total)) if progress else None)
    seconds = time.perf_counter() - began
    return ProduceReport(len(acks), points, seconds, acks[0] if acks else None, acks[-1] if acks else None)
