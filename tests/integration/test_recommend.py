"""Recommendation queries against qdrant-client's local mode: the three strategies,
examples by id and by vector, filters, thresholds, every distance, and lookup_from."""
import random
import uuid

import pytest
from qdrant_client import QdrantClient, models

from tests.support import same_scored, same_up_to_ties




@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID,
                                      models.Distance.MANHATTAN])
def test_recommend_answers_like_local_mode(module_server, distance):
    name, other = f"rc{uuid.uuid4().hex[:8]}", f"ro{uuid.uuid4().hex[:8]}"
    remote, local = QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")
    rng = random.Random(hash(distance.value) % 997)
    points = [models.PointStruct(id=i, vector=[round(rng.gauss(0, 1), 4) for _ in range(6)], payload={"g": i % 3})
              for i in range(150)]
    for client in (remote, local):
        for n in (name, other):
            client.create_collection(n, vectors_config=models.VectorParams(size=6, distance=distance))
            client.upsert(n, points=points if n == name else points[:20])
    flt = models.Filter(must_not=[models.FieldCondition(key="g", match=models.MatchValue(value=2))])
    vec = [round(rng.gauss(0, 1), 4) for _ in range(6)]
    for strategy in (models.RecommendStrategy.AVERAGE_VECTOR, models.RecommendStrategy.BEST_SCORE,
                     models.RecommendStrategy.SUM_SCORES):
        queries = [models.RecommendInput(positive=[1, 2], negative=[3], strategy=strategy),
                   models.RecommendInput(positive=[4, vec], strategy=strategy)]
        if strategy != models.RecommendStrategy.AVERAGE_VECTOR:
            queries.append(models.RecommendInput(negative=[5, 6], strategy=strategy))
        for q in queries:
            for kwargs in ({"limit": 8}, {"limit": 5, "query_filter": flt, "offset": 2}):
                query = models.RecommendQuery(recommend=q)
                same_up_to_ties(remote.query_points(name, query=query, **kwargs).points,
                                local.query_points(name, query=query, **kwargs).points)
        query = models.RecommendQuery(recommend=models.RecommendInput(positive=[7], negative=[8], strategy=strategy))
        lookup = models.LookupLocation(collection=other)
        same_up_to_ties(remote.query_points(name, query=query, lookup_from=lookup, limit=6).points,
                    local.query_points(name, query=query, lookup_from=lookup, limit=6).points)


def test_the_legacy_recommend_endpoints_answer_like_the_query_api(module_server):
    import httpx
    name = f"rl{uuid.uuid4().hex[:8]}"
    remote = QdrantClient(url=module_server.url, timeout=30)
    rng = random.Random(3)
    remote.create_collection(name, vectors_config={"v": models.VectorParams(size=4, distance=models.Distance.COSINE)})
    remote.upsert(name, points=[models.PointStruct(id=i, vector={"v": [rng.gauss(0, 1) for _ in range(4)]})
                                for i in range(60)])
    body = {"positive": [1, 2], "negative": [3], "strategy": "best_score", "using": "v", "limit": 5}
    want = remote.query_points(name, query=models.RecommendQuery(recommend=models.RecommendInput(
        positive=[1, 2], negative=[3], strategy=models.RecommendStrategy.BEST_SCORE)), using="v", limit=5).points
    url = f"{module_server.url}/collections/{name}/points/recommend"
    got = httpx.post(url, json=body).json()["result"]
    assert [(p["id"], p["score"]) for p in got] == [(p.id, p.score) for p in want]
    batch = httpx.post(url + "/batch", json={"searches": [body, {**body, "strategy": "average_vector"}]})
    assert [[p["id"] for p in r] for r in batch.json()["result"]][0] == [p.id for p in want]
    r = httpx.post(url, json={**body, "positive_ids": [1]})
    assert r.status_code == 400 and "positive_ids" in r.text


def sparse(rng: random.Random) -> models.SparseVector:
    indices = rng.sample(range(40), rng.randint(1, 6))
    return models.SparseVector(indices=indices, values=[round(rng.uniform(-1, 2), 3) for _ in indices])


def multi(rng: random.Random) -> list:
    return [[round(rng.gauss(0, 1), 4) for _ in range(3)] for _ in range(rng.randint(1, 3))]


@pytest.mark.parametrize("modifier", [None, models.Modifier.IDF])
def test_recommend_over_sparse_vectors_answers_like_local_mode(module_server, modifier):
    name = f"rs{uuid.uuid4().hex[:8]}"
    remote, local = QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")
    rng = random.Random(f"sparse{modifier}")
    points = [models.PointStruct(id=i, vector={"s": sparse(rng)}, payload={"g": i % 3}) for i in range(120)]
    for client in (remote, local):
        client.create_collection(name, vectors_config={},
                                 sparse_vectors_config={"s": models.SparseVectorParams(modifier=modifier)})
        client.upsert(name, points=points)
    flt = models.Filter(must_not=[models.FieldCondition(key="g", match=models.MatchValue(value=2))])
    for strategy in models.RecommendStrategy:
        queries = [models.RecommendInput(positive=[1, 2], negative=[3], strategy=strategy),
                   models.RecommendInput(positive=[4, sparse(rng)], strategy=strategy)]
        if strategy != models.RecommendStrategy.AVERAGE_VECTOR:
            queries.append(models.RecommendInput(negative=[5, sparse(rng)], strategy=strategy))
        for q in queries:
            for kwargs in ({"limit": 8}, {"limit": 5, "query_filter": flt, "offset": 2}):
                query = models.RecommendQuery(recommend=q)
                same_up_to_ties(remote.query_points(name, query=query, using="s", **kwargs).points,
                                local.query_points(name, query=query, using="s", **kwargs).points)


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID,
                                      models.Distance.MANHATTAN])
def test_recommend_over_multivectors_answers_like_local_mode(module_server, distance):
    name = f"rm{uuid.uuid4().hex[:8]}"
    remote, local = QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")
    rng = random.Random(f"multi{distance}")
    points = [models.PointStruct(id=i, vector={"m": multi(rng)}, payload={"g": i % 3}) for i in range(100)]
    params = models.VectorParams(size=3, distance=distance, multivector_config=models.MultiVectorConfig(
        comparator=models.MultiVectorComparator.MAX_SIM))
    for client in (remote, local):
        client.create_collection(name, vectors_config={"m": params})
        client.upsert(name, points=points)
    flt = models.Filter(must=[models.FieldCondition(key="g", match=models.MatchValue(value=1))])
    for strategy in models.RecommendStrategy:
        queries = [models.RecommendInput(positive=[1, 2], negative=[3], strategy=strategy),
                   models.RecommendInput(positive=[4, multi(rng)], strategy=strategy)]
        if strategy != models.RecommendStrategy.AVERAGE_VECTOR:
            queries.append(models.RecommendInput(negative=[5, multi(rng)], strategy=strategy))
        for q in queries:
            for kwargs in ({"limit": 8}, {"limit": 5, "query_filter": flt, "offset": 1}):
                query = models.RecommendQuery(recommend=q)
                same_scored(remote.query_points(name, query=query, using="m", **kwargs).points,
                            local.query_points(name, query=query, using="m", **kwargs).points)


def test_recommend_examples_of_the_wrong_kind_are_refused(module_server):
    import httpx
    name = f"rk{uuid.uuid4().hex[:8]}"
    url = f"{module_server.url}/collections/{name}"
    assert httpx.put(url, json={"vectors": {"d": {"size": 2, "distance": "Dot"}},
                                "sparse_vectors": {"s": {}}}).status_code == 200
    for using, example in (("s", [1.0, 2.0]), ("d", {"indices": [1], "values": [1.0]}), ("d", [[1.0, 2.0]])):
        r = httpx.post(url + "/points/query", json={"query": {"recommend": {"positive": [example]}}, "using": using})
        assert r.status_code == 400, (using, example, r.text)
        assert "Conversion between" in r.json()["status"]["error"]
