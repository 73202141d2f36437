"""The shards this node holds: a consumer in the cluster's group over every shard topic.

Nodes started with the same ``--cluster`` share one Kafka consumer group over the
shard topics (``<wal>.shards.*``, one per sharded collection, one partition per
shard). Kafka's group protocol decides who holds what: when a node joins or leaves
(or its session times out after a crash), the group rebalances and the shards move.
The assignment itself is ours (``ShardAssignor``, run by the group's leader):
- rendezvous hashing of (node, topic, partition), so adding a topic or a node moves
  only what it must, and a node keeps the shards it already built;
- ``replication_factor`` nodes per shard (Qdrant's collection setting), which a
  plain Kafka assignor cannot do (the broker does not mind a partition assigned to
  several members of one group);
- the whole map, with every node's address, handed to every member in its
  assignment, so any node can send a read to a shard's holders without a registry of
  its own: the group assignment is the registry.

A node without ``--cluster`` is a group of one, holding every shard.

A shard newly assigned is applied from its applied offset (0 for one never held: it
is rebuilt from its partition and the WAL records its barriers name); a shard given
up is dropped from memory and disk, so a node's memory is its share of the shards.
"""
import asyncio
import hashlib
import json
import os
import logging
import re
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

from storage import shards
from storage.operations import Command, ShardBarrier
from storage.transaction import StateWriteError
from streams.codec import encode
from streams.connection import connection
from streams.progress import Progress
from streams.replay import LogError, read_range
from streams.shard_applier import NotYetKnown, ShardApplier

log = logging.getLogger(__name__)
MAX_GROUP = 500


def _score(member: str, topic: str, partition: int) -> bytes:
    return hashlib.blake2b(f"{member}\0{topic}\0{partition}".encode(), digest_size=8).digest()


def owners_of(members: list, topic: str, partitions: list, replicas: int) -> dict:
    """{partition: the ``replicas`` members that hold it}: each partition's members in
    rendezvous order, skipping those that already hold their even share of the topic,
    so a topic's shards spread evenly and mostly stay put when members come and go."""
    replicas = min(max(1, replicas), len(members))
    share = -(-len(partitions) * replicas // max(1, len(members)))
    load = dict.fromkeys(members, 0)
    out = {}
    for p in partitions:
        ranked = sorted(members, key=lambda m: _score(m, topic, p), reverse=True)
        chosen = [m for m in ranked if load[m] < share][:replicas]
        for m in chosen:
            load[m] += 1
        out[p] = chosen
    return out


class ShardAssignor(AbstractPartitionAssignor):
    """Kafka client-side assignor of the shard group (see the module's docstring)."""
    name = "pointlog-shards"
    version = 0

    def __init__(self, worker: "ShardWorker"):
        self.worker = worker

    def metadata(self, topics) -> ConsumerProtocolMemberMetadata:
        me = {"name": self.worker.name, "url": self.worker.url}
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), json.dumps(me).encode())

    def assign(self, cluster, members) -> dict:
        nodes = {}  # member id -> {"name", "url"}
        for member_id, meta in members.items():
            try:
                nodes[member_id] = json.loads(meta.user_data)
            except ValueError:
                nodes[member_id] = {"name": member_id, "url": ""}
        topics = sorted({t for meta in members.values() for t in meta.subscription})
        owners = {}  # topic -> {partition: [node names]}
        for topic in topics:
            parts = cluster.partitions_for_topic(topic) or ()
            candidates = sorted(n["name"] for m, n in nodes.items() if topic in members[m].subscription)
            replicas = self.worker.replication_of(topic)
            owners[topic] = owners_of(candidates, topic, sorted(parts), replicas)
        plan = {"nodes": {n["name"]: n["url"] for n in nodes.values()}, "owners": owners}
        blob = json.dumps(plan).encode()
        out = {}
        for member_id, node in nodes.items():
            mine = []
            for topic, parts in owners.items():
                held = [p for p, names in parts.items() if node["name"] in names]
                if held:
                    mine.append((topic, held))
            out[member_id] = ConsumerProtocolMemberAssignment(self.version, mine, blob)
        return out

    def on_assignment(self, assignment) -> None:
        try:
            plan = json.loads(assignment.user_data)
        except ValueError:
            return
        self.worker.plan_received(plan)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: "ShardWorker"):
        self.worker = worker

    async def on_partitions_revoked(self, revoked) -> None:
        self.worker.rebalancing = True

    async def on_partitions_assigned(self, assigned) -> None:
        await self.worker.assigned(set(assigned))
        self.worker.rebalancing = False


class ShardWorker:
    def __init__(self, node, group: str, name: str, url: str, session_timeout_ms: int = 6000):
        self.node = node
        self.settings = node.settings
        self.group = group
        self.name = name  # stable per node (its data dir): the rendezvous hash key
        self.url = url  # how other nodes reach this one's HTTP API
        self.session_timeout_ms = session_timeout_ms
        self.held: set = set()  # TopicPartition this node holds now
        self.nodes: dict = {}  # node name -> url, from the last assignment
        self.owners: dict = {}  # topic -> {partition: [node names]}
        self.generation = 0  # bumped at every assignment, for waiters on a new map
        self.rebalancing = True
        self.lag: dict = {}  # TopicPartition -> records behind the partition's end, at the last fetch
        self._appliers: dict = {}  # topic -> ShardApplier
        self._progress: dict = {}  # topic -> Progress
        self._assigned = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None
        self._fence_checked = 0.0
        self._latest_kept: dict = {}  # incarnation -> (WAL partition, offset, when) of its latest kept record
        self._fenced: dict = {}  # TopicPartition -> when _fence last wrote a barrier to it
        self._caught_up_at: dict = {}  # TopicPartition -> offset a shard taken over must reach before reads

    # ---- what the rest of the node asks ---------------------------------------

    def replication_of(self, topic: str) -> int:
        col = self.catalog_of(topic)
        return shards.replication(col.config) if col is not None else 1

    def catalog_of(self, topic: str):
        which = shards.topic_incarnation(self.settings.topic, topic)
        for col in self.node.state.collections.values():
            if shards.is_sharded(col) and shards.incarnation(col) == which:
                return col
        return None

    def holders(self, topic: str, shard: int) -> list:
        """(name, url) of the nodes that hold a shard, by the last assignment."""
        names = self.owners.get(topic, {}).get(str(shard)) or self.owners.get(topic, {}).get(shard) or []
        return [(n, self.nodes.get(n, "")) for n in names]

    def lag_of(self, topic: str, shard: int) -> int:
        """Records of the shard's partition not applied here, as of the last fetch."""
        tp = TopicPartition(topic, shard)
        end = self._consumer.highwater(tp) if self._consumer is not None and tp in self.held else None
        if end is None:
            return 0
        return max(0, end - 1 - self.node.state.applied_offset(topic, shard))

    def holds(self, topic: str, shard: int) -> bool:
        return TopicPartition(topic, shard) in self.held

    async def caught_up(self, topic: str, shard: int, timeout: float | None = None) -> bool:
        """Whether a shard held here has applied what it must before it answers reads
        (within ``timeout``)."""
        target = self._caught_up_at.get(TopicPartition(topic, shard), -1)
        return target < 0 or await self.progress(topic).wait(shard, target, timeout)

    def progress(self, topic: str) -> Progress:
        if topic not in self._progress:
            self._progress[topic] = Progress(self.node.state, topic)
        return self._progress[topic]

    async def assignment_changed(self, generation: int, timeout: float) -> None:
        """Wait (at most ``timeout``) for an assignment newer than ``generation``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.generation <= generation:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            self._assigned.clear()
            try:
                await asyncio.wait_for(self._assigned.wait(), left)
            except asyncio.TimeoutError:
                return

    # ---- group membership -------------------------------------------------------

    def plan_received(self, plan: dict) -> None:
        self.nodes = plan.get("nodes", {})
        self.owners = {t: {int(p): names for p, names in parts.items()} for t, parts in plan.get("owners", {}).items()}

    async def assigned(self, partitions: set) -> None:
        state = self.node.state
        new = partitions - self.held
        if new:
            # A shard taken over answers reads once it holds what its log held then:
            # every write acknowledged before the takeover. Known before it counts as held.
            try:
                ends = await self._consumer.end_offsets(sorted(new))
            except Exception:
                log.warning("could not read the end offsets of %s; reads wait for nothing", sorted(new))
                ends = {}
            for tp, end in ends.items():
                self._caught_up_at[tp] = end - 1
        gone = self.held - partitions
        if gone:
            self._drop(gone)
        self.held = set(partitions)
        for tp in sorted(partitions):
            self._consumer.seek(tp, state.applied_offset(tp.topic, tp.partition) + 1)
        self.generation += 1
        self._assigned.set()
        if partitions:
            log.info("pointlog: holding shards %s", sorted((tp.topic, tp.partition) for tp in partitions))

    def _drop(self, partitions: set) -> None:
        """Shards given up: out of memory and off disk; taken again, they are rebuilt."""
        state = self.node.state
        txn = state.transaction(self.settings.topic)
        for tp in partitions:
            which = shards.topic_incarnation(self.settings.topic, tp.topic)
            held = state.collections.get(shards.shard_name(which, tp.partition))
            if held is not None:
                state.drop_collection(held)
            state.forget_shard(tp.topic, which, tp.partition)
        txn.commit()
        if self.node.indexes is not None:
            self.node.indexes.load()

    # ---- running ------------------------------------------------------------------

    async def start(self) -> None:
        options = connection(self.settings.kafka).options()
        self._consumer = AIOKafkaConsumer(
            **options, group_id=self.group, client_id=f"pointlog-{self.name}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(ShardAssignor(self),),
            metadata_max_age_ms=1000,  # a new collection's topic is picked up within a second
            session_timeout_ms=self.session_timeout_ms, heartbeat_interval_ms=1000,
            fetch_max_wait_ms=self.settings.fetch_wait_ms, max_partition_fetch_bytes=16 * 1024 * 1024)
        self._consumer.subscribe(pattern=re.escape(self.settings.topic) + r"\.shards\..+",
                                 listener=_Listener(self))
        await self._consumer.start()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=MAX_GROUP)
                if time.monotonic() - self._fence_checked >= 0.5:
                    self._fence_checked = time.monotonic()
                    await self._fence()
                for tp, messages in batches.items():
                    if tp in self.held and messages:
                        await self._apply(tp, messages)
                        self.lag[tp] = max(0, (self._consumer.highwater(tp) or 0) - messages[-1].offset - 1)
            except asyncio.CancelledError:
                raise
            except StateWriteError as exc:
                self.node.state_write_failed(str(exc))
                return
            except Exception:
                log.exception("shard consumer failed; retrying in 1 s")
                await asyncio.sleep(1)

    async def _apply(self, tp: TopicPartition, messages: list) -> None:
        from streams.applier import Record
        applier = self._applier(tp.topic)
        records = [Record(m.partition, m.offset, m.key, m.value, list(m.headers or ()), m.timestamp)
                   for m in messages]
        await self._wal_caught_up(records)
        while True:
            if tp not in self.held:
                return  # given up while this waited: its records are the new holder's
            try:
                result = applier.apply_and_commit(records)
                break
            except NotYetKnown:
                # The WAL record creating this collection is not applied here yet.
                await asyncio.sleep(0.05)
        self._committed(tp.topic, result)
        while result.gap is not None:
            gap = result.gap
            missing = await read_range(self.settings.kafka, tp.topic, gap.partition, gap.expected, gap.got + 1)
            self._committed(tp.topic, applier.apply_and_commit(missing, contiguous=False))
            if applier.applied(gap.partition) < gap.got:
                raise LogError(f"{tp.topic}[{gap.partition}]: the broker did not return offset {gap.got}")
            result = applier.apply_and_commit(result.rest)
            self._committed(tp.topic, result)

    async def _wal_caught_up(self, records: list) -> None:
        """A barrier names a WAL offset: this node's WAL applier must be there first."""
        for rec in records:
            if rec.value and b"shard_barrier" in rec.value:
                from streams.codec import DecodeError, decode
                try:
                    op = decode(rec.key, rec.value, rec.headers).op
                except DecodeError:
                    continue
                if isinstance(op, ShardBarrier):
                    await self.node.progress.wait(op.partition, op.upto, None)

    def _applier(self, topic: str) -> ShardApplier:
        if topic not in self._appliers:
            which = shards.topic_incarnation(self.settings.topic, topic)
            self._appliers[topic] = ShardApplier(self.node.state, topic, which)
        return self._appliers[topic]

    def _committed(self, topic: str, result) -> None:
        progress = self.progress(topic)
        for partition, offset, error in result.failures:
            progress.record_failure(partition, offset, error)
        progress.committed(result.offsets)
        if result.dead:
            self.node.outbox.wake()

    # ---- barriers for WAL records nobody fenced --------------------------------

    def wal_kept(self, controls: list) -> None:
        """The WAL applier kept records for shards (``Applied.controls``): the latest of
        each collection, for ``_fence``."""
        now = time.monotonic()
        for which, partition, offset in controls:
            self._latest_kept[which] = (partition, offset, now)

    async def _fence(self) -> None:
        """The API writes the barriers of what it puts in the WAL; a producer writing to
        the WAL directly does not. So a holder whose shard, caught up with its
        partition, has not applied a WAL record kept for it a second after it was kept
        writes the barrier itself (at most once a second per shard). Also covers a
        barrier lost with a node that died between the two writes."""
        now = time.monotonic()
        state = self.node.state
        for tp in list(self.held):
            which = shards.topic_incarnation(self.settings.topic, tp.topic)
            latest = self._latest_kept.get(which)
            if latest is None:
                found = state.last_control(which)
                latest = self._latest_kept[which] = (found[0], found[1], 0.0) if found else (0, -1, 0.0)
            partition, offset, kept_at = latest
            if offset < 0 or now - kept_at < 1.0 or state.control_applied(which, tp.partition) >= offset:
                continue
            if self.lag_of(tp.topic, tp.partition) > 0 or now - self._fenced.get(tp, 0.0) < 1.0:
                continue
            col = self.catalog_of(tp.topic)
            if col is None:
                continue
            self._fenced[tp] = now
            key, value, headers = encode(Command(col.name, ShardBarrier(upto=offset, partition=partition)))
            try:
                await self.node.producer.publish_raw(key, value, headers, topic=tp.topic, partition=tp.partition)
            except Exception:
                log.warning("could not write a barrier to %s[%s]; retrying later", tp.topic, tp.partition)


def shard_group(settings) -> str:
    """The consumer group of the shard topics: the cluster's, or this node's alone."""
    wal = hashlib.sha1(settings.topic.encode()).hexdigest()[:10]
    if settings.cluster:
        return f"pointlog-cluster-{settings.cluster}-{wal}"
    return f"pointlog-shards-{node_name(settings)}-{wal}"


def node_name(settings) -> str:
    """A node's name in the cluster: stable per data dir, so a restarted node is the
    same member of the rendezvous hash and takes its shards back."""
    return hashlib.sha1(os.path.abspath(settings.data_dir).encode()).hexdigest()[:12]


def shard_service(node) -> type:
    """A mode service for ``app.service``: joins the shard group once the app runs
    (the WAL applier started, the HTTP server up), leaves it on a clean stop, which
    hands the shards over at once."""
    import mode

    s = node.settings
    node.shards = ShardWorker(node, shard_group(s), node_name(s), s.url, s.shard_session_timeout_ms)

    class ShardService(mode.Service):
        async def on_start(self) -> None:
            await node.shards.start()

        async def on_stop(self) -> None:
            if node.shards is not None:
                await asyncio.wait_for(node.shards.stop(), 3)

    return ShardService
