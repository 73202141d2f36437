"""Hybrid queries against qdrant-client's local mode: prefetch (nested, filtered),
fusion (RRF with k and weights, DBSF) and rescoring, over dense and sparse vectors,
through a real broker and server."""
import random
import uuid

import pytest
from qdrant_client import QdrantClient, models

from tests.support import same_scored

DIM = 8


def sparse(rng: random.Random) -> models.SparseVector:
    indices = sorted(rng.sample(range(60), rng.randint(1, 8)))
    return models.SparseVector(indices=indices, values=[round(rng.uniform(0.1, 2.0), 3) for _ in indices])


def dense(rng: random.Random) -> list:
    return [rng.gauss(0, 1) for _ in range(DIM)]


@pytest.fixture(scope="module")
def collection(module_server):
    name = f"hy{uuid.uuid4().hex[:8]}"
    remote, local = QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")
    rng = random.Random(17)
    points = [models.PointStruct(id=i, vector={"d": dense(rng), "s": sparse(rng)}, payload={"g": i % 4})
              for i in range(400)]
    for client in (remote, local):
        client.create_collection(name, vectors_config={"d": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
                                 sparse_vectors_config={"s": models.SparseVectorParams(modifier=models.Modifier.IDF)})
        client.upsert(name, points=points)
    return name, remote, local



def test_fusion_and_rescoring_answer_like_local_mode(collection):
    name, remote, local = collection
    rng = random.Random(3)
    g1 = models.Filter(must=[models.FieldCondition(key="g", match=models.MatchValue(value=1))])
    not3 = models.Filter(must_not=[models.FieldCondition(key="g", match=models.MatchValue(value=3))])
    for _ in range(8):
        d, s = dense(rng), sparse(rng)
        both = [models.Prefetch(query=s, using="s", limit=25), models.Prefetch(query=d, using="d", limit=25)]
        requests = [
            dict(prefetch=both, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=10),
            dict(prefetch=both, query=models.FusionQuery(fusion=models.Fusion.DBSF), limit=10),
            dict(prefetch=both, query=models.RrfQuery(rrf=models.Rrf(k=60, weights=[1.0, 3.0])), limit=10, offset=2),
            dict(prefetch=both, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=20, query_filter=not3,
                 with_payload=True),
            # Rescoring: candidates from the sparse index, ordered by the dense vector.
            dict(prefetch=models.Prefetch(query=s, using="s", limit=50), query=d, using="d", limit=10),
            # Nested: a fused candidate list, filtered inside, rescored at the top.
            dict(prefetch=models.Prefetch(prefetch=both, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=30,
                                          filter=g1),
                 query=dense(rng), using="d", limit=5),
            dict(prefetch=both, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=50, score_threshold=0.4),
        ]
        for kwargs in requests:
            got = remote.query_points(name, **kwargs).points
            want = local.query_points(name, **kwargs).points
            same_scored(got, want)
            if kwargs.get("with_payload"):
                assert [p.payload for p in got] == [p.payload for p in want]


def test_prefetch_without_a_query_is_refused(collection, module_server):
    import httpx
    name, _remote, _local = collection
    r = httpx.post(f"{module_server.url}/collections/{name}/points/query",
                   json={"prefetch": {"query": [1.0] * DIM, "using": "d"}})
    assert r.status_code == 400 and "A query is needed to merge the prefetches" in r.text


def test_batch_queries_compose_too(collection):
    name, remote, local = collection
    rng = random.Random(9)
    reqs = [models.QueryRequest(prefetch=[models.Prefetch(query=sparse(rng), using="s", limit=10),
                                          models.Prefetch(query=dense(rng), using="d", limit=10)],
                                query=models.FusionQuery(fusion=models.Fusion.RRF), limit=5) for _ in range(3)]
    for got, want in zip(remote.query_batch_points(name, reqs), local.query_batch_points(name, reqs)):
        same_scored(got.points, want.points)
