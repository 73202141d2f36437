"""Maximal marginal relevance inside a nearest query, and ``sample: random``, against
qdrant-client's local mode, over REST and gRPC."""
import random
import os
import uuid
import zlib
from collections import Counter

import httpx
import pytest
from qdrant_client import QdrantClient, models

from tests.support import same_scored

SEED = int(os.environ.get("POINTLOG_TEST_SEED", "0"))


@pytest.fixture(scope="module")
def clients(module_server):
    return (QdrantClient(url=module_server.url, timeout=30),
            QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True, timeout=30),
            QdrantClient(":memory:"))


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID,
                                      models.Distance.MANHATTAN])
def test_mmr_answers_like_local_mode(clients, distance):
    remote, grpc_client, local = clients
    name = f"mm{uuid.uuid4().hex[:8]}"
    rng = random.Random(zlib.crc32(distance.value.encode()) + SEED)
    # Clusters of near-duplicates, so diversity visibly changes the order.
    centres = [[rng.gauss(0, 1) for _ in range(5)] for _ in range(6)]
    points = [models.PointStruct(id=i, vector={"v": [c + rng.gauss(0, 0.05) for c in centres[i % 6]]},
                                 payload={"g": i % 4}) for i in range(120)]
    for client in (remote, local):
        client.create_collection(name, vectors_config={"v": models.VectorParams(size=5, distance=distance)})
        client.upsert(name, points=points)
    flt = models.Filter(must_not=[models.FieldCondition(key="g", match=models.MatchValue(value=3))])
    for _ in range(3):
        target = [round(rng.gauss(0, 1), 4) for _ in range(5)]
        for mmr in (models.Mmr(), models.Mmr(diversity=round(rng.random(), 3), candidates_limit=40),
                    models.Mmr(diversity=1.0, candidates_limit=25), models.Mmr(diversity=0.0)):
            for nearest in (target, rng.randrange(120)):
                query = models.NearestQuery(nearest=nearest, mmr=mmr)
                for kwargs in ({"limit": 8}, {"limit": 5, "offset": 3, "query_filter": flt, "with_payload": True}):
                    want = local.query_points(name, query=query, using="v", **kwargs).points
                    plain = local.query_points(name, query=nearest, using="v", **kwargs).points
                    got = remote.query_points(name, query=query, using="v", **kwargs).points
                    same_scored(got, want)
                    assert [p.payload for p in got] == [p.payload for p in want]
                    same_scored(grpc_client.query_points(name, query=query, using="v", **kwargs).points, want)
                    if mmr.diversity == 1.0:
                        assert [p.id for p in got] != [p.id for p in plain]  # mmr is not ignored


def test_mmr_refusals(module_server, clients):
    remote, _grpc, _local = clients
    name = f"mr{uuid.uuid4().hex[:8]}"
    remote.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                             sparse_vectors_config={"s": models.SparseVectorParams()})
    url = f"{module_server.url}/collections/{name}/points/query"
    for body, status, words in (
            ({"query": {"nearest": [1, 2], "mmr": {"diversity": 1.5}}}, 422, "diversity"),
            ({"query": {"nearest": [1, 2], "mmr": {"lambda": 0.5}}}, 400, "`query.mmr.lambda` is not supported"),
            ({"query": {"nearest": [1, 2], "mmr": {"candidates_limit": -1}}}, 400, "candidates_limit"),
            ({"query": {"nearest": [1, 2], "mmr": {"candidates_limit": 16385}}}, 422, "16384 or smaller"),
            ({"query": {"nearest": [1, 2], "mmr": {}}, "using": "s"}, 400,
             "Conversion between sparse and regular vectors failed")):
        r = httpx.post(url, json=body)
        assert r.status_code == status and words in r.text, (body, r.text)


def test_random_sample_honours_the_filter_and_varies(clients):
    remote, grpc_client, _local = clients
    name = f"sa{uuid.uuid4().hex[:8]}"
    remote.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    remote.upsert(name, points=[models.PointStruct(id=i, vector=[i, 1], payload={"even": i % 2 == 0})
                                for i in range(100)])
    flt = models.Filter(must=[models.FieldCondition(key="even", match=models.MatchValue(value=True))])
    query = models.SampleQuery(sample=models.Sample.RANDOM)
    seen = Counter()
    orders = set()
    for client in (remote, grpc_client) * 10:
        points = client.query_points(name, query=query, query_filter=flt, limit=10, with_payload=True).points
        assert len(points) == 10 and len({p.id for p in points}) == 10
        assert all(p.payload == {"even": True} and p.score == 1.0 for p in points)
        seen.update(p.id for p in points)
        orders.add(tuple(p.id for p in points))
    assert len(orders) > 15  # random: twenty draws of 10 from 50 hardly repeat
    assert len(seen) > 35  # and they reach most of the matching points
    everything = remote.query_points(name, query=query, limit=500).points
    assert sorted(p.id for p in everything) == list(range(100))
    assert [p.id for p in everything] != list(range(100))
