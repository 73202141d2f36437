"""Multivectors (MaxSim) against qdrant-client's local mode: upsert, retrieve, queries by
matrix and by id, as a rescoring stage after a dense prefetch, updates, filters, for
every distance, through a real broker and server."""
import math
import random
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models

from tests.support import same_scored



def matrix(rng: random.Random, dim: int = 4) -> list:
    return [[round(rng.gauss(0, 1), 4) for _ in range(dim)] for _ in range(rng.randint(1, 5))]



@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID,
                                      models.Distance.MANHATTAN])
def test_max_sim_answers_like_local_mode(module_server, distance):
    name = f"mv{uuid.uuid4().hex[:8]}"
    remote, local = QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")
    rng = random.Random(hash(distance.value) % 1000)
    points = [models.PointStruct(id=i, vector={"d": [rng.gauss(0, 1) for _ in range(4)], "m": matrix(rng)},
                                 payload={"g": i % 3}) for i in range(120)]
    multi = models.VectorParams(size=4, distance=distance,
                                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM))
    for client in (remote, local):
        client.create_collection(name, vectors_config={"d": models.VectorParams(size=4, distance=distance), "m": multi})
        client.upsert(name, points=points)
        client.update_vectors(name, points=[models.PointVectors(id=3, vector={"m": [[1.0, 2.0, 3.0, 4.0]]})])
    got = remote.retrieve(name, [3, 4], with_vectors=["m"])
    want = local.retrieve(name, [3, 4], with_vectors=["m"])
    for g, w in zip(got, want):
        assert len(g.vector["m"]) == len(w.vector["m"])
        assert all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
                   for ga, wa in zip(g.vector["m"], w.vector["m"]) for a, b in zip(ga, wa))
    flt = models.Filter(must=[models.FieldCondition(key="g", match=models.MatchValue(value=1))])
    for _ in range(5):
        q = matrix(rng)
        for kwargs in ({"query": q, "using": "m", "limit": 8}, {"query": q, "using": "m", "query_filter": flt},
                       {"query": 5, "using": "m", "limit": 4},
                       {"prefetch": models.Prefetch(query=[rng.gauss(0, 1) for _ in range(4)], using="d", limit=30),
                        "query": q, "using": "m", "limit": 6}):
            same_scored(remote.query_points(name, **kwargs).points, local.query_points(name, **kwargs).points)


def test_bad_multivectors_are_refused(module_server):
    name = f"mb{uuid.uuid4().hex[:8]}"
    url = f"{module_server.url}/collections/{name}"
    body = {"vectors": {"m": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}},
                        "d": {"size": 2, "distance": "Dot"}}}
    assert httpx.put(url, json=body).status_code == 200
    for vector, message in (({"m": [[1, 2], [3]]}, "same dimension"), ({"m": [[1, 2, 3]]}, "expected dim: 2"),
                            ({"m": []}, "must not be empty"), ({"d": [[1, 2]]}, "Conversion between multi and regular"),
                            ({"m": [1, 2]}, "Conversion between multi and regular")):
        r = httpx.put(url + "/points", json={"points": [{"id": 1, "vector": vector}]})
        assert r.status_code == 400 and message in r.json()["status"]["error"], (vector, r.text)
