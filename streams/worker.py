"""The Faust app and its one agent, which applies the WAL to this node's state.

Faust defaults that are wrong for a WAL consumer and are replaced here:
- where a partition starts: faust seeks to the consumer group's committed offset,
  which lags what was applied; we seek to the applied offset stored with the state
  (atomically with it) plus one;
- how long a fetch may wait: faust hard-codes 1.5 s, which would be added to every
  ``wait=true`` write; we wait a few milliseconds;
- group membership: a SIGKILLed member would block the next join until its session
  times out (10 s); a static member (``group.instance.id``) restarting under the same
  id takes its partitions back at once.
"""
import asyncio
import hashlib
import logging
import os
import sys
import threading

import faust
import mode
from faust.transport.drivers import aiokafka as faust_aiokafka

from storage.transaction import StateWriteError
from streams import checkpoint
from streams.applier import Applied, Applier, Record
from streams.node import Node
from streams.replay import LogError, read_range

log = logging.getLogger(__name__)
MAX_GROUP = 500  # records per state commit


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.pointlog_fetch_wait_ms  # read when the fetcher starts
        return consumer

    async def seek_to_committed(self):
        return await self.call_thread(self._seek_to_applied)

    async def _seek_to_applied(self):
        consumer = self._ensure_consumer()
        applier: Applier = self.app.pointlog_applier
        offsets = {}
        for tp in consumer.assignment():
            if tp.topic == applier.topic:
                offsets[tp] = applier.applied(tp.partition) + 1
                consumer.seek(tp, offsets[tp])
                print(f"pointlog: {tp.topic}[{tp.partition}] resumes at offset {offsets[tp]}", flush=True)
        return offsets


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self):
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class PointlogApp(faust.App):
    pointlog_applier: Applier
    pointlog_fetch_wait_ms: int = 5

    def _new_transport(self):
        return _Transport(self.conf.broker_consumer, self)


def _dir_hash(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:10]


def group_id(data_dir: str, topic: str) -> str:
    """Each data dir is a full replica, so it gets a consumer group of its own, per
    topic: a static member's cached assignment must never name another topic."""
    return f"pointlog-{_dir_hash(os.path.abspath(data_dir), topic)}"


def build_faust_app(node: Node) -> PointlogApp:
    s = node.settings
    group = s.group or group_id(s.data_dir, s.topic)
    app = PointlogApp(
        group,
        broker=f"kafka://{s.kafka_bootstrap}",
        broker_credentials=s.kafka.faust_credentials(),
        store="memory://",
        web_enabled=True,  # the ASGI service replaces faust's own web server
        web_bind=s.host,
        web_port=s.port,
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        agent_supervisor=mode.CrashingSupervisor,
        stream_wait_empty=False,
        table_standby_replicas=0,
        # One member per group (the node); restarting under the same instance id skips
        # the wait for the dead member's session to time out. Unique per data dir even
        # if an operator shares --group between nodes, which would fence each other.
        consumer_group_instance_id=f"{group}-{_dir_hash(os.path.abspath(s.data_dir))}",
        broker_session_timeout=10,
        broker_heartbeat_interval=3,
        broker_rebalance_timeout=20,
        broker_request_timeout=30,
        consumer_max_fetch_size=64 * 1024 * 1024,
        datadir=os.path.join(s.data_dir, "faust"),
    )
    app.pointlog_applier = Applier(node.state, s.topic)
    app.pointlog_fetch_wait_ms = s.fetch_wait_ms
    wal = app.topic(s.topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                    value_serializer="raw", internal=False)

    @app.agent(wal, name="pointlog-applier")
    async def apply_wal(stream):
        # Group whatever is already queued into one commit, but never wait for more:
        # a lone record is applied at once (wait=true latency), a burst is batched.
        queue = stream.channel.queue
        batch = []
        async for event in stream.events():
            msg = event.message
            batch.append(Record(msg.partition, msg.offset, msg.key, msg.value, list(msg.headers or ()),
                                msg.timestamp))
            if len(batch) >= MAX_GROUP or queue.empty():
                await _apply_group(batch)
                batch = []

    async def _apply_group(batch: list) -> None:
        try:
            await _apply_in_order(batch)
        except StateWriteError as exc:
            # The disk refused a commit: nothing of the group is on disk, and the state
            # has read itself back from it. The applier stops here for good (this
            # agent never takes another event; faust's buffer stops the fetching) and
            # the node says why; a restart resumes from the committed offsets.
            node.state_write_failed(str(exc))
            await asyncio.Future()  # until the worker stops and cancels it

    async def _apply_in_order(batch: list) -> None:
        applier: Applier = app.pointlog_applier
        # Each apply_and_commit is one synchronous step (no await inside): readers on
        # this loop only ever see committed groups.
        result = applier.apply_and_commit(batch)
        _committed(result)
        while result.gap is not None:
            # Never skip offsets silently, and never trust a re-seek of the faust
            # consumer (it drops what it thinks it has read): read the missing range
            # straight from the broker; offsets it has no record at are confirmed empty.
            gap = result.gap
            missing = await read_range(s.kafka, s.topic, gap.partition, gap.expected, gap.got + 1)
            _committed(applier.apply_and_commit(missing, contiguous=False))
            if applier.applied(gap.partition) < gap.got:
                raise LogError(f"partition {gap.partition}: the broker did not return offset {gap.got}, "
                               f"which it delivered before; refusing to skip {gap.expected}..{gap.got}")
            result = applier.apply_and_commit(result.rest)
            _committed(result)

    def _committed(result: Applied) -> None:
        """After a commit: the waiters, then the dead letters it put in the outbox."""
        for partition, offset, error in result.failures:
            node.progress.record_failure(partition, offset, error)
        node.progress.committed(result.offsets)
        if result.dead:
            node.outbox.wake()
        if result.controls and node.shards is not None:
            node.shards.wal_kept(result.controls)

    app.task(node.outbox.run)

    if s.checkpoint_every > 0:
        @app.timer(s.checkpoint_every, name="pointlog-checkpoint")
        async def take_checkpoint():
            if node.applied() == app.pointlog_last_checkpoint:
                return  # nothing applied since the last one
            try:
                info = await node.checkpoint()
            except Exception:  # a full disk must not stop the applier; the next tick retries
                log.exception("automatic checkpoint failed")
                return
            app.pointlog_last_checkpoint = node.applied()
            await asyncio.to_thread(checkpoint.prune, s.data_dir, s.checkpoint_keep)
            log.info("checkpoint %s at %s", info["path"], info["applied"])

    app.pointlog_last_checkpoint = None
    return app


class BoundedWorker(faust.Worker):
    """faust's worker, with a stop that ends within ``grace`` seconds even when Kafka is
    unreachable (faust's own stop then waits a minute for clients that keep retrying).

    Cutting the stop short loses nothing: state and applied offsets are committed
    together or not at all (storage/transaction.py), dead letters wait in the outbox,
    and everything acknowledged is in the log, which the next start applies from the
    committed offset on. It is the same recovery a SIGKILL gets, and the crash tests
    exercise it."""

    def __init__(self, *args, node: Node, grace: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._node = node
        self._grace = grace

    def on_setup_root_logger(self, logger, level: int) -> None:
        """No terminal spinner: faust's sets the root logger to DEBUG for good (to spin
        on every record), so every debug call of aiokafka, faust and mode, several per
        Kafka request in both threads, built a LogRecord that no handler wanted. The
        root logger stays at the configured level."""
        self.spinner = None

    def _schedule_shutdown(self, signal) -> None:
        if not self._signal_stop_time:
            self._node.stopping()
            timer = threading.Timer(self._grace, self._give_up)
            timer.daemon = True  # a stop that finishes in time exits without it
            timer.start()
        super()._schedule_shutdown(signal)

    def _give_up(self) -> None:
        print(f"pointlog: stopping took over {self._grace:.0f}s (is Kafka reachable?); exiting now. The state is "
              "committed up to its applied offsets; the log holds the rest.", file=sys.stderr, flush=True)
        os._exit(0)
