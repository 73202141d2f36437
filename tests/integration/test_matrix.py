"""The distance matrix (pairs and offsets) against qdrant-client's local mode. When the
sample covers every matching point the answer is exactly local mode's; a smaller
sample is random, so its properties are checked instead."""
import math
import os
import random
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models

SEED = int(os.environ.get("POINTLOG_TEST_SEED", "0"))


@pytest.fixture(scope="module")
def clients(module_server):
    return (QdrantClient(url=module_server.url, timeout=30),
            QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True, timeout=30),
            QdrantClient(":memory:"))


def _close(a: list, b: list) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-4) for x, y in zip(a, b))


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.EUCLID, models.Distance.MANHATTAN])
def test_a_full_sample_answers_like_local_mode(clients, distance):
    remote, grpc_client, local = clients
    name = f"mx{uuid.uuid4().hex[:8]}"
    rng = random.Random(len(distance.value) + SEED)
    ids = list(range(40)) + [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(5)]
    points = [models.PointStruct(id=pid, vector={"v": [rng.gauss(0, 1) for _ in range(4)]} if n % 9 else {},
                                 payload={"g": n % 3}) for n, pid in enumerate(ids)]
    for client in (remote, local):
        client.create_collection(name, vectors_config={"v": models.VectorParams(size=4, distance=distance)})
        client.upsert(name, points=points)
    flt = models.Filter(must=[models.FieldCondition(key="g", match=models.MatchAny(any=[0, 1]))])
    for kwargs in ({"sample": 100, "limit": 3}, {"sample": 45, "limit": 1, "query_filter": flt},
                   {"sample": 30, "limit": 10, "query_filter": flt}):
        kwargs = {**kwargs, "using": "v"}
        want = local.search_matrix_pairs(name, **kwargs)
        for client in (remote, grpc_client):
            got = client.search_matrix_pairs(name, **kwargs)
            assert [(p.a, p.b) for p in got.pairs] == [(p.a, p.b) for p in want.pairs]
            assert _close([p.score for p in got.pairs], [p.score for p in want.pairs])
        want = local.search_matrix_offsets(name, **kwargs)
        for client in (remote, grpc_client):
            got = client.search_matrix_offsets(name, **kwargs)
            assert (got.ids, got.offsets_row, got.offsets_col) == (want.ids, want.offsets_row, want.offsets_col)
            assert _close(got.scores, want.scores)


def test_a_smaller_sample_is_random_and_consistent(clients):
    remote, grpc_client, _local = clients
    name = f"ms{uuid.uuid4().hex[:8]}"
    rng = random.Random(5 + SEED)
    remote.create_collection(name, vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    remote.upsert(name, points=[models.PointStruct(id=i, vector=[rng.gauss(0, 1) for _ in range(3)],
                                                   payload={"odd": i % 2 == 1}) for i in range(200)])
    flt = models.Filter(must=[models.FieldCondition(key="odd", match=models.MatchValue(value=True))])
    samples = set()
    for client in (remote, grpc_client) * 4:
        got = client.search_matrix_offsets(name, sample=12, limit=4, query_filter=flt)
        assert len(got.ids) == 12 and got.ids == sorted(got.ids) and all(i % 2 == 1 for i in got.ids)
        samples.add(tuple(got.ids))
        vectors = {p.id: p.vector for p in remote.retrieve(name, got.ids, with_vectors=True)}
        for row in range(12):
            cols = [c for r, c in zip(got.offsets_row, got.offsets_col) if r == row]
            scores = [s for r, s in zip(got.offsets_row, got.scores) if r == row]
            assert len(cols) == 4 and row not in cols and scores == sorted(scores, reverse=True)
            for col, score in zip(cols, scores):
                dot = sum(a * b for a, b in zip(vectors[got.ids[row]], vectors[got.ids[col]]))
                assert math.isclose(score, dot, rel_tol=1e-4, abs_tol=1e-4)
    assert len(samples) > 1


def test_matrix_refusals(module_server, clients):
    remote, _grpc, _local = clients
    name = f"mz{uuid.uuid4().hex[:8]}"
    remote.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    remote.upsert(name, points=[models.PointStruct(id=1, vector=[1, 2])])
    url = f"{module_server.url}/collections/{name}/points/search/matrix/pairs"
    assert httpx.post(url, json={}).json()["result"] == {"pairs": []}  # fewer than two points
    for body, status, words in (({"sample": 1}, 422, "sample"), ({"limit": 0}, 422, "limit"),
                                ({"using": "nope"}, 400, "Not existing vector name error: nope"),
                                ({"offset": 3}, 400, "offset`"),
                                ({"filter": {"must": [{"key": "k"}]}}, 422, "At least one field condition")):
        r = httpx.post(url, json=body)
        assert r.status_code == status and words in r.text, (body, r.text)
    r = httpx.post(f"{module_server.url}/collections/missing_{uuid.uuid4().hex[:6]}/points/search/matrix/offsets",
                   json={})
    assert r.status_code == 404
