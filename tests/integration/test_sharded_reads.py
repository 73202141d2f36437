"""Every read pointlog merges across shards answers as one node holding every shard:
two nodes of a cluster split a 4-shard collection, a third node (no cluster) holds all
four shards of the same log, and each request gets the same answer from both sides,
over REST and gRPC. Writes by filter and batches, taken by either cluster node, reach
every shard. Reads pointlog does not merge yet are refused with a 400 naming them."""
import random
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient

N = 400


def _points(rng: random.Random) -> list:
    out = []
    for i in range(N):
        group = [rng.randint(0, 9), f"t{rng.randint(0, 3)}"] if rng.random() < 0.2 else rng.randint(0, 9)
        out.append({"id": i, "vector": {"d": [rng.random() for _ in range(6)], "e": [rng.random() for _ in range(3)],
                                        "s": {"indices": sorted(rng.sample(range(40), 4)),
                                              "values": [rng.random() for _ in range(4)]}},
                    "payload": {"g": group, "price": round(rng.random() * 100, 2), "tag": rng.choice("abc")}})
    return out


@pytest.fixture(scope="module")
def nodes(broker, tmp_path_factory):
    from tests.support import Server, free_port
    topic = f"pointlog.test.{uuid.uuid4().hex[:12]}"
    cluster = {"POINTLOG_CLUSTER": uuid.uuid4().hex[:8]}
    root = tmp_path_factory.mktemp("sharded")
    started = [Server(broker.bootstrap, topic, str(root / f"c{i}"), free_port(), env=cluster) for i in range(2)]
    try:
        for s in started:
            s.start()
        a, b = started
        body = {"vectors": {"d": {"size": 6, "distance": "Cosine"}, "e": {"size": 3, "distance": "Euclid"}},
                "sparse_vectors": {"s": {}}, "shard_number": 4}
        assert httpx.put(a.url + "/collections/sh", json=body, timeout=60).status_code == 200
        assert httpx.put(a.url + "/collections/plain", json={"vectors": {"d": {"size": 6, "distance": "Cosine"}}},
                         timeout=60).status_code == 200
        for field, kind in (("g", "keyword"), ("tag", "keyword"), ("price", "float")):
            r = httpx.put(b.url + "/collections/sh/index?wait=true", json={"field_name": field, "field_schema": kind},
                          timeout=60)
            assert r.status_code == 200, r.text
        rng = random.Random(20261204)
        pts = _points(rng)
        for i in range(0, N, 100):
            target = (a, b)[i // 100 % 2]
            r = httpx.put(target.url + "/collections/sh/points?wait=true", json={"points": pts[i:i + 100]}, timeout=60)
            assert r.json()["result"]["status"] == "completed", r.text
        plain = [{"id": i, "vector": {"d": [rng.random() for _ in range(6)]}} for i in range(20)]
        httpx.put(a.url + "/collections/plain/points?wait=true", json={"points": plain}, timeout=60)
        # Writes that reach every shard, taken by either node: by filter, and a batch.
        r = httpx.post(b.url + "/collections/sh/points/payload?wait=true", timeout=60,
                       json={"payload": {"cheap": True}, "filter": {"must": [{"key": "price", "range": {"lt": 30}}]}})
        assert r.json()["result"]["status"] == "completed", r.text
        r = httpx.post(a.url + "/collections/sh/points/batch?wait=true", timeout=60, json={"operations": [
            {"delete": {"points": [1, 2, 3]}},
            {"set_payload": {"payload": {"seen": 1}, "points": [10, 11, 12]}},
            {"delete": {"filter": {"must": [{"key": "tag", "match": {"value": "c"}}, {"key": "price", "range": {"gt": 90}}]}}}]})
        assert r.status_code == 200, r.text
        single = Server(broker.bootstrap, topic, str(root / "single"), free_port())
        single.start()
        started.append(single)
        yield a, b, single
    finally:  # a setup that fails must not leave its servers behind
        for s in started:
            s.kill()


def _ask(node, path: str, body: dict | None = None, method: str = "POST"):
    r = httpx.request(method, node.url + path, json=body, timeout=60)
    assert r.status_code == 200, (path, body, r.text)
    return _rounded(r.json()["result"])


def _rounded(value):
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _settled(node, single):
    """The single node has applied what the cluster did (it reads the same log): every
    point and payload of both collections alike (a count alone passes through the final
    value while the single node is still applying the inserts that precede the deletes)."""
    import time
    deadline = time.monotonic() + 60
    every = {"limit": 10_000, "with_payload": True}

    def same() -> bool:
        return all(_ask(node, f"/collections/{c}/points/scroll", every) ==
                   _ask(single, f"/collections/{c}/points/scroll", every) for c in ("sh",))
    while not same() and time.monotonic() < deadline:
        time.sleep(0.2)


NEAR = [0.3, 0.1, 0.9, 0.2, 0.5, 0.7]
CHEAP = {"must": [{"key": "cheap", "match": {"value": True}}]}
READS = [
    ("/collections/sh/points/query", {"query": NEAR, "using": "d", "limit": 7, "with_payload": True}),
    ("/collections/sh/points/query", {"query": NEAR, "using": "d", "limit": 5, "offset": 3, "filter": CHEAP}),
    ("/collections/sh/points/query", {"query": [0.5, 0.5, 0.5], "using": "e", "limit": 6, "with_vector": ["e"]}),
    ("/collections/sh/points/query", {"query": {"indices": [1, 5, 9], "values": [1.0, 0.5, 0.2]}, "using": "s",
                                      "limit": 6}),
    ("/collections/sh/points/query", {"prefetch": [{"query": NEAR, "using": "d", "limit": 30},
                                                   {"query": {"indices": [1, 5, 9], "values": [1, 1, 1]},
                                                    "using": "s", "limit": 30}],
                                      "query": {"fusion": "rrf"}, "limit": 8, "with_payload": ["tag"]}),
    ("/collections/sh/points/query", {"prefetch": {"query": NEAR, "using": "d", "limit": 40},
                                      "query": [0.1, 0.2, 0.3], "using": "e", "limit": 5}),
    ("/collections/sh/points/query", {"query": {"recommend": {"positive": [5, 6], "negative": [7]}}, "using": "d",
                                      "limit": 6}),
    ("/collections/sh/points/query", {"query": {"recommend": {"positive": [5, 6], "strategy": "best_score"}},
                                      "using": "e", "limit": 6}),
    ("/collections/sh/points/query", {"query": {"discover": {"target": 8, "context": [{"positive": 9, "negative": 13}]}},
                                      "using": "d", "limit": 6}),
    ("/collections/sh/points/query", {"query": 21, "using": "d", "limit": 5}),
    ("/collections/sh/points/query", {"query": {"nearest": NEAR, "mmr": {"diversity": 0.6, "candidates_limit": 40}},
                                      "using": "d", "limit": 6, "offset": 1}),
    ("/collections/sh/points/query", {"query": {"nearest": [0.3, 0.2, 0.6], "mmr": {"diversity": 0.3}}, "using": "e",
                                      "limit": 5, "with_payload": True}),
    ("/collections/sh/points/query", {"query": {"nearest": 33, "mmr": {"diversity": 0.5, "candidates_limit": 20}},
                                      "using": "d", "limit": 4}),
    ("/collections/sh/points/query", {"query": 4, "using": "d", "limit": 5, "lookup_from": {"collection": "plain"}}),
    ("/collections/sh/points/query", {"query": {"order_by": {"key": "price", "direction": "desc"}}, "limit": 7,
                                      "offset": 2, "filter": CHEAP}),
    ("/collections/sh/points/query", {"prefetch": [{"query": NEAR, "using": "d", "limit": 25},
                                                   {"query": [0.4, 0.4, 0.1], "using": "e", "limit": 25}],
                                      "query": {"formula": {"sum": ["$score[0]", {"mult": [0.5, "$score[1]"]},
                                                                    {"mult": [0.01, "price"]},
                                                                    {"key": "tag", "match": {"value": "a"}}]},
                                                "defaults": {"price": 0}},
                                      "limit": 6, "with_payload": True}),
    ("/collections/sh/points/query/groups", {"query": NEAR, "using": "d", "group_by": "g", "limit": 5,
                                             "group_size": 3}),
    ("/collections/sh/points/query/batch", {"searches": [{"query": NEAR, "using": "d", "limit": 3},
                                                          {"query": [0.2, 0.2, 0.9], "using": "e", "limit": 3}]}),
    ("/collections/sh/points/search", {"vector": {"name": "d", "vector": NEAR}, "limit": 5, "filter": CHEAP}),
    ("/collections/sh/points/recommend", {"positive": [30], "using": "d", "limit": 4}),
    ("/collections/sh/points/scroll", {"limit": 9, "offset": 40, "with_payload": True}),
    ("/collections/sh/points/scroll", {"limit": 9, "order_by": {"key": "price", "direction": "desc"}}),
    ("/collections/sh/points/count", {"filter": CHEAP}),
    ("/collections/sh/points", {"ids": [10, 1, 399, 77, 10], "with_payload": True, "with_vector": ["e"]}),
    ("/collections/sh/facet", {"key": "tag"}),
    ("/collections/sh/facet", {"key": "g", "limit": 4, "filter": CHEAP}),
]


@pytest.mark.parametrize("path,body", READS, ids=[f"{p.rsplit('/', 1)[-1]}-{i}" for i, (p, _b) in enumerate(READS)])
def test_a_merged_read_equals_one_node_holding_every_shard(nodes, path, body):
    a, b, single = nodes
    _settled(b, single)
    want = _ask(single, path, body)
    assert _ask(a, path, body) == want
    assert _ask(b, path, body) == want


def test_the_point_and_the_collection_info(nodes):
    a, b, single = nodes
    _settled(a, single)
    assert _ask(a, "/collections/sh/points/12", method="GET") == _ask(single, "/collections/sh/points/12", method="GET")
    info = _ask(b, "/collections/sh", method="GET")
    assert info["points_count"] == _ask(single, "/collections/sh/points/count", {})["count"]
    assert info["config"]["params"]["shard_number"] == 4
    held = [_ask(n, "/collections/sh/cluster", method="GET") for n in (a, b)]
    assert sorted(s["shard_id"] for h in held for s in h["local_shards"]) == [0, 1, 2, 3]
    assert all(len(h["local_shards"]) == 2 for h in held)
    assert _ask(a, "/cluster", method="GET")["status"] == "enabled"


def test_grpc_reads_merge_too(nodes):
    a, _b, single = nodes
    _settled(a, single)
    clients = [QdrantClient(url=n.url, grpc_port=n.grpc_port, prefer_grpc=True, timeout=30) for n in (a, single)]
    got = [[(p.id, round(p.score, 5)) for p in c.query_points("sh", query=NEAR, using="d", limit=6).points]
           for c in clients]
    assert got[0] == got[1]
    assert clients[0].count("sh").count == clients[1].count("sh").count
    pages = [[p.id for p in c.scroll("sh", limit=20, offset=100)[0]] for c in clients]
    assert pages[0] == pages[1]


def test_a_random_sample_draws_from_every_shard(nodes):
    a, _b, single = nodes
    _settled(a, single)
    matching = _ask(single, "/collections/sh/points/count", {"filter": CHEAP})["count"]
    seen = set()
    for _ in range(20):
        got = _ask(a, "/collections/sh/points/query", {"query": {"sample": "random"}, "limit": 10, "filter": CHEAP,
                                                        "with_payload": True})["points"]
        assert len(got) == 10 and len({p["id"] for p in got}) == 10
        assert all(p["payload"]["cheap"] is True for p in got)
        seen |= {p["id"] for p in got}
    assert len(seen) > min(matching, 60)  # 200 draws of a ~110-point set: far more than one shard's share
    everything = _ask(a, "/collections/sh/points/query", {"query": {"sample": "random"}, "limit": 10_000})["points"]
    assert len(everything) == _ask(single, "/collections/sh/points/count", {})["count"]


def test_a_distance_matrix_of_every_matching_point_equals_one_node(nodes):
    a, _b, single = nodes
    _settled(a, single)
    few = {"must": [{"key": "tag", "match": {"value": "a"}}, {"key": "price", "range": {"lt": 20}}]}
    for path in ("pairs", "offsets"):
        body = {"sample": 1000, "limit": 3, "using": "d", "filter": few}
        want = _ask(single, f"/collections/sh/points/search/matrix/{path}", body)
        assert _ask(a, f"/collections/sh/points/search/matrix/{path}", body) == want
    got = _ask(a, "/collections/sh/points/search/matrix/offsets", {"sample": 6, "limit": 2, "using": "e"})
    assert len(got["ids"]) == 6 and len(got["scores"]) == 12


def test_reads_not_merged_yet_are_refused_by_name(nodes):
    a, _b, _single = nodes
    r = httpx.post(a.url + "/collections/sh/snapshots")
    assert r.status_code == 400 and "sharded" in r.json()["status"]["error"], r.text
    body = {"prefetch": {"query": {"nearest": NEAR, "mmr": {"diversity": 0.5}}, "using": "d"}, "query": {"fusion": "rrf"}}
    r = httpx.post(a.url + "/collections/sh/points/query", json=body)
    assert r.status_code == 400 and "mmr" in r.json()["status"]["error"], r.text


def test_a_producer_writing_to_the_wal_reaches_every_shard(nodes):
    """Records a producer writes to the WAL itself carry no barrier: the shards' holders
    fence them a moment later, and they apply in WAL order."""
    import asyncio
    import time

    import orjson
    from aiokafka import AIOKafkaProducer
    a, b, single = nodes
    body = {"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 3}
    assert httpx.put(a.url + "/collections/ext", json=body, timeout=60).status_code == 200

    async def produce():
        producer = AIOKafkaProducer(bootstrap_servers=a.bootstrap)
        await producer.start()
        try:
            for value in ({"op": "upsert", "points": [{"id": i, "vector": [1.0, float(i)]} for i in range(30)]},
                          {"op": "set_payload", "payload": {"x": 1}, "filter": {"must": [{"has_id": [1, 2, 3, 4]}]}},
                          {"op": "delete", "points": [4]}):
                await producer.send_and_wait(a.topic, key=b"ext", value=orjson.dumps(value))
        finally:
            await producer.stop()

    asyncio.run(produce())
    marked = {"filter": {"must": [{"key": "x", "match": {"value": 1}}]}}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (_ask(b, "/collections/ext/points/count", {}) == {"count": 29}
                and _ask(b, "/collections/ext/points/count", marked) == {"count": 3}):
            break
        time.sleep(0.2)
    assert _ask(b, "/collections/ext/points/count", {}) == {"count": 29}
    assert _ask(a, "/collections/ext/points/count", marked) == {"count": 3}
    assert _ask(single, "/collections/ext/points/scroll", {"limit": 40}) == _ask(a, "/collections/ext/points/scroll",
                                                                              {"limit": 40})
