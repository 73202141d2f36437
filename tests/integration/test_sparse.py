"""Sparse vectors against qdrant-client's local mode: upsert (points and batch), retrieve,
nearest queries (plain and IDF), filters, updates and deletes of sparse vectors, a
restart, and the bad inputs, through a real broker and server."""
import math
import random
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models

from tests.support import end_offsets, same_scored



def sparse(rng: random.Random, terms: int = 200) -> models.SparseVector:
    indices = sorted(rng.sample(range(terms), rng.randint(1, 12)))
    return models.SparseVector(indices=indices, values=[round(rng.uniform(0.1, 2.0), 3) for _ in indices])


def config(client, name: str) -> None:
    client.create_collection(
        name, vectors_config={"d": models.VectorParams(size=3, distance=models.Distance.COSINE)},
        sparse_vectors_config={"s": models.SparseVectorParams(),
                               "bm": models.SparseVectorParams(modifier=models.Modifier.IDF)})



@pytest.fixture(scope="module")
def pair(module_server):
    return QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")


def test_sparse_vectors_answer_like_local_mode(pair, module_server):
    remote, local = pair
    name = f"sp{uuid.uuid4().hex[:8]}"
    rng = random.Random(5)
    points = []
    for i in range(300):
        vector = {"s": sparse(rng), "d": [rng.random(), rng.random(), rng.random()]}
        if i % 4:
            vector["bm"] = sparse(rng, terms=40)
        points.append(models.PointStruct(id=i, vector=vector, payload={"k": i % 5}))
    batch = models.Batch(ids=[1000, 1001], vectors={"s": [sparse(rng), sparse(rng)], "bm": [sparse(rng), sparse(rng)],
                                                    "d": [[1, 0, 0], [0, 1, 0]]})
    for client in (remote, local):
        config(client, name)
        client.upsert(name, points=points)
        client.upsert(name, points=batch)

    got = remote.retrieve(name, [3, 1000], with_vectors=True)
    want = local.retrieve(name, [3, 1000], with_vectors=True)
    for g, w in zip(got, want):
        assert g.vector["s"].indices == w.vector["s"].indices
        assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(g.vector["s"].values, w.vector["s"].values))

    flt = models.Filter(must=[models.FieldCondition(key="k", match=models.MatchAny(any=[1, 2]))])
    for _ in range(15):
        q = sparse(rng)
        qi = sparse(rng, terms=40)
        for kwargs in ({"query": q, "using": "s", "limit": 7}, {"query": qi, "using": "bm", "limit": 10},
                       {"query": q, "using": "s", "limit": 5, "offset": 3, "query_filter": flt},
                       {"query": qi, "using": "bm", "limit": 50, "score_threshold": 1.0}):
            same_scored(remote.query_points(name, **kwargs).points, local.query_points(name, **kwargs).points)
    same_scored(remote.query_points(name, query=7, using="s", limit=5).points,
              local.query_points(name, query=7, using="s", limit=5).points)

    # Updates move the inverted index and the IDF statistics with them.
    for client in (remote, local):
        client.update_vectors(name, points=[models.PointVectors(id=5, vector={"bm": models.SparseVector(
            indices=[1, 2, 3], values=[3.0, 3.0, 3.0])})])
        client.delete_vectors(name, vectors=["bm"], points=[6, 7, 8])
        client.delete(name, points_selector=models.PointIdsList(points=[9, 10]))
    q = models.SparseVector(indices=[1, 2, 3, 4], values=[1.0, 0.5, 0.25, 2.0])
    same_scored(remote.query_points(name, query=q, using="bm", limit=20).points,
              local.query_points(name, query=q, using="bm", limit=20).points)
    has = models.Filter(must=[models.HasVectorCondition(has_vector="bm")])
    assert remote.count(name, count_filter=has).count == local.count(name, count_filter=has).count

    module_server.restart()  # the inverted index is rebuilt from the state
    remote = QdrantClient(url=module_server.url, timeout=30)
    same_scored(remote.query_points(name, query=q, using="bm", limit=20).points,
              local.query_points(name, query=q, using="bm", limit=20).points)
    info = remote.get_collection(name)
    assert info.config.params.sparse_vectors["bm"].modifier == models.Modifier.IDF


def test_indices_come_back_sorted_and_a_sparse_only_collection_works(module_server):
    name = f"so{uuid.uuid4().hex[:8]}"
    url = f"{module_server.url}/collections/{name}"
    assert httpx.put(url, json={"sparse_vectors": {"text": {}}}).status_code == 200
    r = httpx.put(url + "/points?wait=true", json={"points": [
        {"id": 1, "vector": {"text": {"indices": [9, 2, 5], "values": [0.9, 0.2, 0.5]}}},
        {"id": 2, "vector": {"text": {"indices": [], "values": []}}}]})
    assert r.status_code == 200, r.text
    got = httpx.post(url + "/points", json={"ids": [1, 2], "with_vector": True}).json()["result"]
    assert got[0]["vector"] == {"text": {"indices": [2, 5, 9], "values": [0.2, 0.5, 0.9]}}
    assert got[1]["vector"] == {"text": {"indices": [], "values": []}}
    hits = httpx.post(url + "/points/query", json={"query": {"indices": [5], "values": [2.0]}, "using": "text"})
    assert [(p["id"], p["score"]) for p in hits.json()["result"]["points"]] == [(1, 1.0)]
    legacy = httpx.post(url + "/points/search", json={"vector": {"name": "text", "vector": {
        "indices": [2, 9], "values": [1.0, 1.0]}}, "limit": 3})
    assert [p["id"] for p in legacy.json()["result"]] == [1]


@pytest.mark.parametrize("vector,status,message", [
    ({"s": {"indices": [1, 2], "values": [0.5]}}, 422, "same length"),
    ({"s": {"indices": [1, 1], "values": [0.5, 0.5]}}, 422, "unique"),
    ({"s": {"indices": [-1], "values": [0.5]}}, 400, "u32"),
    ({"d": {"indices": [1], "values": [0.5]}}, 400, "Conversion between sparse and regular vectors failed"),
    ({"s": [0.1, 0.2, 0.3]}, 400, "Conversion between sparse and regular vectors failed"),
    ({"indices": [1], "values": [0.5]}, 400, "sparse vector without a name"),
])
def test_bad_sparse_vectors_are_refused_and_publish_nothing(module_server, broker, vector, status, message):
    name = f"bs{uuid.uuid4().hex[:8]}"
    url = f"{module_server.url}/collections/{name}"
    body = {"vectors": {"d": {"size": 3, "distance": "Dot"}}, "sparse_vectors": {"s": {}}}
    assert httpx.put(url, json=body).status_code == 200
    before = end_offsets(broker.bootstrap, module_server.topic)
    r = httpx.put(url + "/points", json={"points": [{"id": 1, "vector": vector}]})
    assert r.status_code == status and message in r.json()["status"]["error"], r.text
    assert end_offsets(broker.bootstrap, module_server.topic) == before


def test_a_selective_filter_over_many_sparse_matches_answers_like_local_mode(pair):
    """Most points share the query's terms and few pass the filter: the best-scored
    few are not enough, and ranking goes on to the rest."""
    remote, local = pair
    name = f"sf{uuid.uuid4().hex[:8]}"
    rng = random.Random(41)
    points = [models.PointStruct(id=i, vector={"s": models.SparseVector(
        indices=[0, 1, 2 + i % 7], values=[round(rng.uniform(0.1, 2.0), 3) for _ in range(3)])},
        payload={"rare": i % 97 == 0}) for i in range(1500)]
    for client in (remote, local):
        config(client, name)
        client.upsert(name, points=points)
    flt = models.Filter(must=[models.FieldCondition(key="rare", match=models.MatchValue(value=True))])
    query = models.SparseVector(indices=[0, 1, 3], values=[1.0, 0.5, 2.0])
    for kwargs in ({"limit": 5}, {"limit": 4, "offset": 3}, {"limit": 10, "query_filter": flt},
                   {"limit": 3, "offset": 2, "query_filter": flt}, {"limit": 5, "score_threshold": 2.5}):
        same_scored(remote.query_points(name, query=query, using="s", **kwargs).points,
                    local.query_points(name, query=query, using="s", **kwargs).points)
