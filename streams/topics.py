"""Creating the WAL topic and its dead-letter topic, which broker auto-create must not do."""
import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.metadata import MetadataRequest

from streams.connection import Connection, connection

log = logging.getLogger(__name__)

# The log is the source of truth: it is never deleted by time or size.
WAL_CONFIG = {
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
    "max.message.bytes": str(64 * 1024 * 1024),
}
_TOPIC_ALREADY_EXISTS = 36


def durability(brokers: int, replication: int = 0, min_insync: int = 0) -> tuple:
    """(replication factor, min.insync.replicas) of a new topic on a cluster of ``brokers``.

    0 means "from the cluster": three copies when there are three brokers or more
    (fewer brokers, one copy each), and a write acknowledged (acks=all) once a majority
    of them have it, so any one broker may die without losing an acknowledged write
    and writes go on meanwhile. Kafka's own default (min ISR 1) would acknowledge a
    write that only the leader holds, which the leader's death then loses."""
    rf = replication or max(1, min(3, brokers))
    isr = min_insync or (rf // 2 + 1 if rf >= 3 else 1)
    if isr > rf:
        raise ValueError(f"min.insync.replicas {isr} is more than the replication factor {rf}")
    return rf, isr


async def ensure_topics(kafka: Connection | str, topic: str, partitions: int = 1, replication: int = 0,
                        min_insync: int = 0, with_dlq: bool = True) -> int:
    """Create the WAL and DLQ topics if missing (or a shard topic: ``with_dlq=False``);
    return the first's partition count.
    An existing topic is left as it is (Kafka cannot change a replication factor by
    a config change; reassigning replicas is an operator's job)."""
    admin = AIOKafkaAdminClient(**connection(kafka).options(), request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [topic, dlq_topic(topic)] if with_dlq else [topic]
        missing = [name for name in names if name not in existing]
        if missing:
            brokers = len((await admin.describe_cluster())["brokers"])
            rf, isr = durability(brokers, replication, min_insync)
            config = {**WAL_CONFIG, "min.insync.replicas": str(isr)}
            response = await admin.create_topics([NewTopic(name, partitions, rf, topic_configs=config)
                                                  for name in missing])
            for name, code, *rest in response.topic_errors:
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"cannot create topic {name} (replication factor {rf} on {brokers} "
                                       f"brokers): error {code} {rest}")
                log.info("created topic %s: replication factor %s, min.insync.replicas %s", name, rf, isr)
        return await _wait_for_leaders(admin, names)
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list, timeout: float = 30.0) -> int:
    """The first topic's partition count, once every broker's metadata gives every
    partition of ``topics`` a leader. A topic just created reaches the brokers'
    metadata caches one by one: a client asking another broker a moment later would
    be told it does not exist. (aiokafka's admin asks a random broker; asking each
    one takes its per-node send.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    brokers = [b["node_id"] for b in (await admin.describe_cluster())["brokers"]]
    counts = {}
    for node in brokers:
        while True:
            response = (await admin._send_request_to_node(node, MetadataRequest(topics))).to_object()
            found = {t["topic"]: t for t in response["topics"] if t["error_code"] == 0}
            if all(t in found and found[t]["partitions"] and all(p["leader"] >= 0 for p in found[t]["partitions"])
                   for t in topics):
                counts = {t: len(found[t]["partitions"]) for t in topics}
                break
            if loop.time() > deadline:
                raise RuntimeError(f"topics {topics} have no leader for every partition on broker {node} "
                                   f"after {timeout:.0f}s: {response['topics']}")
            await asyncio.sleep(0.05)
    return counts[topics[0]]


def dlq_topic(topic: str) -> str:
    return topic + ".dlq"
