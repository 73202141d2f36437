"""Creating the WAL topic and its dead-letter topic, which broker auto-create must not do."""
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

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


async def ensure_topics(bootstrap: str, topic: str, partitions: int = 1, replication: int = 0,
                        min_insync: int = 0) -> int:
    """Create the WAL and DLQ topics if missing; return the WAL's partition count.
    An existing topic is left as it is (Kafka cannot change a replication factor by
    a config change; reassigning replicas is an operator's job)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in (topic, dlq_topic(topic)) if name not in existing]
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
        described = await admin.describe_topics([topic])
        return len(described[0]["partitions"]) or partitions
    finally:
        await admin.close()


def dlq_topic(topic: str) -> str:
    return topic + ".dlq"
