"""Reading the log outside faust: rebuild, restore (time travel), filling gaps.

A ``LogReader`` is a plain aiokafka consumer with no group: it reads partitions
from positions we choose up to end offsets fixed when the read starts, so a replay
has a definite end even while producers keep writing. Records are applied with the
same ``Applier`` (hence the same ``storage.apply.apply``) as the live node, so a
replay of the same log yields the same state, byte for byte.
"""
import asyncio
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from storage import operations as ops
from storage import shards
from storage.collection import Collection
from storage.state import State
from streams.applier import Applier, Record
from streams.connection import Connection, connection
from streams.indexer import IndexManager
from streams.settings import Settings

log = logging.getLogger(__name__)

GROUP_RECORDS = 2000  # records per state commit while replaying
FETCH_BYTES = 16 * 1024 * 1024
STALL_SECONDS = 60.0  # no progress for this long while records are known to exist: give up


class LogError(RuntimeError):
    """The log cannot be read as asked (records deleted, no such topic, a stalled read)."""


class LogReader:
    """A plain consumer over the WAL topic, positioned by offsets we choose."""

    def __init__(self, kafka: Connection | str, topic: str):
        self.topic = topic
        # read_uncommitted, like the faust consumer: a replay must see what the node saw.
        self._consumer = AIOKafkaConsumer(
            **connection(kafka).options(), group_id=None, enable_auto_commit=False,
            auto_offset_reset="none", isolation_level="read_uncommitted",
            max_partition_fetch_bytes=FETCH_BYTES, fetch_max_bytes=FETCH_BYTES * 4,
            fetch_max_wait_ms=100, request_timeout_ms=30000,
        )

    async def __aenter__(self) -> "LogReader":
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._consumer.stop()

    async def partitions(self) -> list:
        parts = self._consumer.partitions_for_topic(self.topic)
        # A topic created a moment ago may take a few metadata rounds to show up.
        for _ in range(20):
            if parts:
                break
            await self._consumer._client.force_metadata_update()
            parts = self._consumer.partitions_for_topic(self.topic)
            if not parts:
                await asyncio.sleep(0.1)
        if not parts:
            raise LogError(f"topic {self.topic} does not exist")
        return sorted(parts)

    async def _tps(self) -> list:
        return [TopicPartition(self.topic, p) for p in await self.partitions()]

    async def end_offsets(self) -> dict:
        """{partition: offset one past the last record}."""
        ends = await self._consumer.end_offsets(await self._tps())
        return {tp.partition: off for tp, off in ends.items()}

    async def beginning_offsets(self) -> dict:
        starts = await self._consumer.beginning_offsets(await self._tps())
        return {tp.partition: off for tp, off in starts.items()}

    async def offsets_for_time(self, timestamp_ms: int) -> dict:
        """{partition: first offset whose record timestamp is >= timestamp_ms, or None}."""
        found = await self._consumer.offsets_for_times({tp: timestamp_ms for tp in await self._tps()})
        return {tp.partition: (meta.offset if meta is not None else None) for tp, meta in found.items()}

    async def read(self, start: dict, end: dict, max_records: int = GROUP_RECORDS):
        """Yield lists of records, each partition from ``start[p]`` up to ``end[p]``
        (exclusive), in offset order within a partition."""
        pending = {TopicPartition(self.topic, p): end[p] for p in start if start[p] < end.get(p, 0)}
        if not pending:
            return
        self._consumer.assign(list(pending))
        for tp in pending:
            self._consumer.seek(tp, start[tp.partition])
        last_progress = time.monotonic()
        while pending:
            try:
                fetched = await self._consumer.getmany(*pending, timeout_ms=500, max_records=max_records)
            except OffsetOutOfRangeError as exc:
                raise LogError(f"offsets {exc.args} are no longer in the log (deleted by retention?): "
                               "the state cannot be reproduced from it") from None
            out = []
            for tp, messages in fetched.items():
                stop = pending.get(tp)
                for m in messages:
                    if stop is None or m.offset >= stop:
                        break
                    out.append(Record(m.partition, m.offset, m.key, m.value, list(m.headers or ()), m.timestamp))
            for tp in list(pending):
                if await self._consumer.position(tp) >= pending[tp]:
                    del pending[tp]
            if out:
                last_progress = time.monotonic()
                yield out
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise LogError(f"reading {self.topic} stalled for {STALL_SECONDS:.0f}s before reaching {end}")


async def read_range(kafka: Connection | str, topic: str, partition: int, start: int, end: int) -> list:
    """The records of one partition in [start, end): what a gap left out."""
    async with LogReader(kafka, topic) as reader:
        out = []
        async for records in reader.read({partition: start}, {partition: end}):
            out.extend(records)
        return out


# ---- replaying into a state ----------------------------------------------------------

@dataclass
class ReplayStats:
    records: int = 0  # records read (selected or not)
    applied: int = 0  # records applied
    points: int = 0  # points written
    dead: int = 0
    seconds: float = 0.0
    offsets: dict = field(default_factory=dict)  # partition -> (start, end) read

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0


async def replay(state: State, reader: LogReader, end: dict, start: dict | None = None,
                 select=None, progress=None) -> ReplayStats:
    """Apply the log into ``state`` from its applied offsets (or ``start``) up to ``end``.

    ``select(record)`` picks the records to apply (all by default); ``progress(done,
    total, stats)`` is called after every committed group.
    """
    applier = Applier(state, reader.topic)
    if start is None:
        start = {p: applier.applied(p) + 1 for p in end}
    stats = ReplayStats(offsets={p: (start.get(p, 0), end[p]) for p in end})
    total = sum(max(0, end[p] - start.get(p, 0)) for p in end)
    covered = {}  # partition -> offsets read, so filtered-out records count as done too
    began = time.perf_counter()
    async for records in reader.read(start, end):
        stats.records += len(records)
        chosen = records if select is None else [r for r in records if select(r)]
        # The reader positioned itself: a skipped offset is one the broker has no record at.
        result = applier.apply_and_commit(chosen, contiguous=False)
        stats.applied += result.records
        stats.points += result.points
        stats.dead += len(result.dead)
        stats.seconds = time.perf_counter() - began
        if progress is not None:
            for r in records:
                covered[r.partition] = r.offset + 1 - start.get(r.partition, 0)
            progress(sum(covered.values()), total, stats)
        await asyncio.sleep(0)
    stats.seconds = time.perf_counter() - began
    return stats


# ---- rebuild ---------------------------------------------------------------------------

@dataclass
class RebuildReport:
    data_dir: str
    stats: ReplayStats
    collections: dict  # name -> points
    indexes: int = 0  # vector indexes built
    index_seconds: float = 0.0


async def rebuild(settings: Settings, force: bool = False, progress=None, indexes: bool = True) -> RebuildReport:
    """Build a fresh data dir (state, and the vector indexes a node would build) from
    offset 0 to the current end of the log.

    It is built in a sibling temporary directory and renamed into place, so an
    interrupted rebuild leaves the old data dir (or none) and never half a state.
    """
    kafka, topic = settings.kafka, settings.topic
    data_dir = os.path.abspath(settings.data_dir)
    if _nonempty(data_dir):
        if not force:
            raise FileExistsError(f"{data_dir} is not empty; pass --force to replace it")
        if state_in_use(os.path.join(data_dir, "state")):
            raise RuntimeError(f"a running node holds {data_dir}; stop it before replacing its state")
    parent = os.path.dirname(data_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(data_dir) + ".rebuild-", dir=parent)
    try:
        scratch = settings.model_copy(update={"data_dir": tmp})
        state = State(scratch.state_dir)
        try:
            async with LogReader(kafka, topic) as reader:
                begin, end = await reader.beginning_offsets(), await reader.end_offsets()
                for p, off in begin.items():
                    if off > 0:
                        raise LogError(f"partition {p} of {topic} starts at offset {off}: records were "
                                       "deleted, the state cannot be rebuilt from this log")
                stats = await replay(state, reader, end, start={p: 0 for p in end}, progress=progress)
            collections = {name: len(col) for name, col in sorted(state.collections.items())}
            began = time.perf_counter()
            built = await build_indexes(state, scratch) if indexes else 0
            index_seconds = time.perf_counter() - began
        finally:
            state.close()
        _swap_into_place(tmp, data_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RebuildReport(data_dir, stats, collections, built, index_seconds)


async def build_indexes(state: State, settings: Settings) -> int:
    """The indexes a serving node would build for this state, so it starts with them.
    No server shares the machine during a rebuild, so Annoy builds on every core."""
    params = replace(settings.index, build_threads=max(settings.index_build_threads, os.cpu_count() or 1))
    manager = IndexManager(settings.index_dir, state, params)
    built = 0
    try:
        for col in list(state.collections.values()):
            for name, store in col.vectors.items():
                if manager.due(col, name, store, time.monotonic()):
                    built += await manager.rebuild(col, name)
    finally:
        manager.close()
    return built


def _nonempty(path: str) -> bool:
    return os.path.isdir(path) and bool(os.listdir(path))


def _swap_into_place(tmp: str, data_dir: str) -> None:
    old = None
    if os.path.exists(data_dir):
        old = tempfile.mkdtemp(prefix=os.path.basename(data_dir) + ".old-", dir=os.path.dirname(data_dir))
        os.rename(data_dir, os.path.join(old, "data"))
    os.rename(tmp, data_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def state_in_use(state_dir: str) -> bool:
    """True if a process holds RocksDB's lock on this state (a running node)."""
    import fcntl
    lock = os.path.join(state_dir, "LOCK")
    if not os.path.exists(lock):
        return False
    with open(lock, "rb+") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(f, fcntl.LOCK_UN)
    return False


# ---- restore (time travel) ------------------------------------------------------------

@dataclass
class RestoreReport:
    collection: str
    new: str
    bound: dict  # partition -> first offset NOT applied (None: the end of the log)
    points: int
    stats: ReplayStats
    published: tuple  # (first offset, last offset) of the records written back


async def restore(kafka: Connection | str, topic: str, collection: str, new: str, until_offset: int | None = None,
                  until_time_ms: int | None = None, chunk: int = 256, progress=None) -> RestoreReport:
    """Rebuild ``collection`` as it was before ``until_offset`` (an operation_id) or
    before ``until_time_ms`` (record timestamps), then write it back through the log
    as the new collection ``new``.

    Only the records keyed ``collection`` (and ``new``, to refuse an existing name)
    are applied, in a temporary state. The time bound is turned into an offset per
    partition (the first record at or after that time), so the result is a prefix of
    the log: a state that really existed.
    """
    from streams.produce import LogProducer

    if collection == new:
        raise ValueError("restore into a new name: --as must differ from the collection")
    src, dst = collection.encode(), new.encode()
    with tempfile.TemporaryDirectory(prefix="pointlog-restore-") as tmp:
        state = State(os.path.join(tmp, "state"))
        try:
            async with LogReader(kafka, topic) as reader:
                end = await reader.end_offsets()
                if until_time_ms is not None:
                    bound = await reader.offsets_for_time(until_time_ms)
                elif until_offset is not None:
                    bound = {p: until_offset for p in end}
                else:
                    bound = {p: None for p in end}

                def select(rec: Record) -> bool:
                    if rec.key == src:
                        limit = bound.get(rec.partition)
                        return limit is None or rec.offset < limit
                    return rec.key == dst

                stats = await replay(state, reader, end, start={p: 0 for p in end}, select=select,
                                     progress=progress)
            if new in state.collections:
                raise FileExistsError(f"collection `{new}` already exists; choose another name")
            col = state.collections.get(collection)
            if col is None:
                raise LookupError(f"collection `{collection}` did not exist at that point of the log")
            if shards.is_sharded(col):
                # Its points are in its shard topic, which this replay of the WAL does not read.
                raise LookupError(f"collection `{collection}` is sharded (shard_number > 1): restoring it to an "
                                  "offset is not supported yet")
            async with LogProducer(kafka, topic) as producer:
                acks = await producer.send_many(restore_commands(col, new, chunk))
        finally:
            state.close()
    return RestoreReport(collection, new, bound, len(col), stats, (acks[0][1], acks[-1][1]))


def restore_commands(col: Collection, new: str, chunk: int):
    """create_collection with the same config, then the points in scroll order."""
    yield ops.Command(new, ops.CreateCollection(col.config))
    points = []
    for key in col.order:
        point = col.points[key]
        points.append(ops.PointStruct(point.id, col.point_vectors(key), point.payload or None))
        if len(points) >= chunk:
            yield ops.Command(new, ops.Upsert(points))
            points = []
    if points:
        yield ops.Command(new, ops.Upsert(points))
