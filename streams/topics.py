"""Creating the WAL topic and its dead-letter topic, which broker auto-create must not do."""
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

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


async def ensure_topics(kafka: Connection | str, topic: str, partitions: int = 1, replication: int = 1) -> int:
    """Create the WAL and DLQ topics if missing; return the WAL's partition count."""
    admin = AIOKafkaAdminClient(**connection(kafka).options(), request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(name, partitions, replication, topic_configs=WAL_CONFIG)
                  for name in (topic, dlq_topic(topic)) if name not in existing]
        if wanted:
            response = await admin.create_topics(wanted)
            for name, code, *rest in response.topic_errors:
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"cannot create topic {name}: error {code} {rest}")
                log.info("created topic %s", name)
        described = await admin.describe_topics([topic])
        return len(described[0]["partitions"]) or partitions
    finally:
        await admin.close()


def dlq_topic(topic: str) -> str:
    return topic + ".dlq"
