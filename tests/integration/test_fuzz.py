"""Fuzzing the REST API with schemathesis, from the node's own /openapi.json: every
operation gets generated requests (bounded examples, valid and invalid per the
schema); none may answer 5xx, and every
write refused (4xx) publishes nothing, every write accepted exactly one record
(the WAL's end offset is read before and after each write).

Writes are sent with wait=false, so an answer is about the request alone: a record
accepted and then refused while applying (a missing point, say) would otherwise be a
4xx that did publish, which is right, but not what this test measures. The admin
endpoint POST /pointlog/checkpoint is left out: it writes a directory wherever its
body says.
"""
import asyncio
import os
import time
import uuid

import httpx
import pytest
import schemathesis
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings

from api.rest.access import need_of

EXAMPLES = int(os.environ.get("POINTLOG_FUZZ_EXAMPLES", "20"))
COLLECTION, SCRATCH = "fuzz", "fuzz_scratch"
SKIP = {("POST", "/pointlog/checkpoint")}
# schemathesis's negative-mode generation does not finish on the query schemas
# (measured: POST /points/query drew no 5 examples in 10 minutes); those operations
# are fuzzed with valid requests only.
NO_NEGATIVE = ("/points/query", "/points/search", "/points/recommend")


class LogEnd:
    """The WAL's end offsets, read with one long-lived consumer (a round trip each)."""

    def __init__(self, bootstrap: str, topic: str):
        self.loop = asyncio.new_event_loop()

        async def start() -> AIOKafkaConsumer:  # aiokafka binds to the loop it is made on
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
            await consumer.start()
            return consumer
        self.consumer = self.loop.run_until_complete(start())
        self.tps = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or [0])]

    def total(self) -> int:
        return sum(self.loop.run_until_complete(self.consumer.end_offsets(self.tps)).values())

    def close(self) -> None:
        self.loop.run_until_complete(self.consumer.stop())
        self.loop.close()


@pytest.fixture
def fuzzed(server, broker):
    url = server.url
    httpx.put(f"{url}/collections/{COLLECTION}", json={"vectors": {"size": 4, "distance": "Dot"}}).raise_for_status()
    httpx.put(f"{url}/collections/{COLLECTION}/index?wait=true",
              json={"field_name": "k", "field_schema": "keyword"}).raise_for_status()
    points = [{"id": i, "vector": [i, 1, 0, 2], "payload": {"k": f"v{i % 3}", "n": i}} for i in range(1, 20)]
    httpx.put(f"{url}/collections/{COLLECTION}/points?wait=true", json={"points": points}).raise_for_status()
    ends = LogEnd(broker.bootstrap, server.topic)
    yield server, ends
    ends.close()


def test_fuzz_rest_api(fuzzed):
    node, ends = fuzzed
    schema = schemathesis.openapi.from_dict(httpx.get(node.url + "/openapi.json").json())
    stats = {"requests": 0, "server_errors": [], "published_when_refused": [], "wrong_count": []}
    began = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 35
    for op in operations:
        method, path = op.method.upper(), op.path
        if (method, path) in SKIP:
            continue
        need, _own = need_of(method, path)
        writes = need.write
        overrides = {}
        if "{collection}" in path:
            overrides["path_parameters"] = {"collection": SCRATCH if path == "/collections/{collection}"
                                            and method in ("PUT", "DELETE") else COLLECTION}
        query = {"wait": "false"} if writes and "/points" in path else None
        # Valid requests, and requests the schema says are wrong (pointlog must refuse
        # them cleanly), but for the query family (see NO_NEGATIVE).
        strategy = op.as_strategy(query=query, **overrides)
        if not any(part in path for part in NO_NEGATIVE):
            strategy = strategy | op.as_strategy(schemathesis.GenerationMode.NEGATIVE, query=query, **overrides)

        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            before = ends.total() if writes else None
            response = case.call(base_url=node.url, timeout=30)
            stats["requests"] += 1
            where = f"{method} {path} {case.path_parameters} {case.query} body={str(case.body)[:300]}"
            if response.status_code >= 500:
                stats["server_errors"].append(f"{where} -> {response.status_code} {response.text[:300]}")
            if writes:
                grew = ends.total() - before
                if response.status_code >= 400 and grew:
                    stats["published_when_refused"].append(f"{where} -> {response.status_code}, {grew} records")
                elif response.status_code == 200 and grew != _records(response):
                    stats["wrong_count"].append(f"{where} -> 200 {response.text[:200]}, {grew} records")

        op_began = time.monotonic()
        run()
        stats.setdefault("slowest", []).append((time.monotonic() - op_began, f"{method} {path}"))
    seconds = time.monotonic() - began
    print(f"\nfuzz: {stats['requests']} requests over {len(operations) - len(SKIP)} operations in {seconds:.1f}s; "
          f"5xx: {len(stats['server_errors'])}; slowest: "
          + ", ".join(f"{name} {secs:.1f}s" for secs, name in sorted(stats["slowest"], reverse=True)[:5]))
    assert not stats["server_errors"], "\n".join(stats["server_errors"][:20])
    assert not stats["published_when_refused"], "\n".join(stats["published_when_refused"][:20])
    assert not stats["wrong_count"], "\n".join(stats["wrong_count"][:20])
    assert stats["requests"] >= EXAMPLES * 20  # operations without inputs need a single request
    assert httpx.get(f"{node.url}/collections/{COLLECTION}").status_code in (200, 404)  # still serving


def _records(response) -> int:
    """Records an accepted write published: one, or none for a deletion of nothing."""
    result = response.json().get("result")
    return 0 if result is False else 1


def test_openapi_lists_every_route(server):
    from api.rest.routes import ROUTES
    doc = httpx.get(server.url + "/openapi.json").json()
    for route in ROUTES:
        for method in (route.methods or {"GET"}) - {"HEAD"}:
            assert method.lower() in doc["paths"][route.path], (method, route.path)
    upsert = doc["paths"]["/collections/{collection}/points"]["put"]["requestBody"]["content"]["application/json"]
    point = doc["components"]["schemas"]["PointStruct"]
    assert set(point["properties"]) == {"id", "vector", "vectors", "payload"}
    assert point["additionalProperties"] is False
    assert {s["$ref"].rsplit("/", 1)[1] for s in upsert["schema"]["anyOf"]} == {"PointsList", "PointsBatch"}
    name = uuid.uuid4().hex  # the document is served without publishing anything
    assert httpx.get(f"{server.url}/collections/{name}/exists").json()["result"]["exists"] is False
