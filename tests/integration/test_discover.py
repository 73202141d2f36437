"""Discovery, context and relevance-feedback queries against qdrant-client's local mode:
randomized examples by id and by vector, filters, offsets, every distance, lookup_from,
the legacy /points/discover endpoints, and the same queries over gRPC."""
import math
import random
import os
import uuid
import zlib

import httpx
import pytest
from qdrant_client import QdrantClient, models

from tests.support import same_scored

SEED = int(os.environ.get("POINTLOG_TEST_SEED", "0"))
DISTANCES = [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID, models.Distance.MANHATTAN]


def same_ranking(got: list, want: list, tol: float = 1e-4) -> None:
    """Scores equal in order; points of equal score may come in any order (local mode
    sorts with an unstable argsort), so ids are compared per score."""
    assert len(got) == len(want)
    assert all(math.isclose(g.score, w.score, rel_tol=tol, abs_tol=tol) for g, w in zip(got, want))
    assert {p.id: round(p.score, 3) for p in got} == {p.id: round(p.score, 3) for p in want}


def _vec(rng, dim=6):
    return [rng.gauss(0, 1) for _ in range(dim)]  # unrounded: equal scores (any order) stay unlikely


@pytest.fixture(scope="module")
def clients(module_server):
    return (QdrantClient(url=module_server.url, timeout=30),
            QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True, timeout=30),
            QdrantClient(":memory:"))


def _setup(clients, distance, size=150):
    name, other = f"dc{uuid.uuid4().hex[:8]}", f"do{uuid.uuid4().hex[:8]}"
    rng = random.Random(zlib.crc32(distance.value.encode()) + SEED)
    points = [models.PointStruct(id=i, vector=_vec(rng), payload={"g": i % 3}) for i in range(size)]
    remote, _grpc, local = clients
    for client in (remote, local):
        for n in (name, other):
            client.create_collection(n, vectors_config=models.VectorParams(size=6, distance=distance))
            client.upsert(n, points=points if n == name else points[:20])
    return name, other, rng


@pytest.mark.parametrize("distance", DISTANCES)
def test_discover_and_context_answer_like_local_mode(clients, distance):
    remote, grpc_client, local = clients
    name, other, rng = _setup(clients, distance)
    flt = models.Filter(must_not=[models.FieldCondition(key="g", match=models.MatchValue(value=2))])
    for _ in range(4):
        ids = rng.sample(range(150), 5)
        vec, vec2 = _vec(rng), _vec(rng)
        pairs = [models.ContextPair(positive=ids[0], negative=ids[1]),
                 models.ContextPair(positive=vec, negative=ids[2]),
                 models.ContextPair(positive=ids[3], negative=vec2)][:rng.randint(0, 3)]
        for target in (ids[4], vec):
            query = models.DiscoverQuery(discover=models.DiscoverInput(target=target, context=pairs))
            for kwargs in ({"limit": 10}, {"limit": 6, "query_filter": flt, "offset": 3}):
                want = local.query_points(name, query=query, **kwargs).points
                same_scored(remote.query_points(name, query=query, **kwargs).points, want)
                same_scored(grpc_client.query_points(name, query=query, **kwargs).points, want)
        if not pairs:
            continue  # a context query needs pairs
        query = models.ContextQuery(context=pairs)
        for kwargs in ({"limit": 200}, {"limit": 200, "query_filter": flt}):
            want = local.query_points(name, query=query, **kwargs).points
            same_ranking(remote.query_points(name, query=query, **kwargs).points, want)
            same_ranking(grpc_client.query_points(name, query=query, **kwargs).points, want)
    lookup = models.LookupLocation(collection=other)
    query = models.DiscoverQuery(discover=models.DiscoverInput(
        target=7, context=[models.ContextPair(positive=8, negative=9)]))
    same_scored(remote.query_points(name, query=query, lookup_from=lookup, limit=6).points,
                local.query_points(name, query=query, lookup_from=lookup, limit=6).points)


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.EUCLID])
def test_relevance_feedback_answers_like_local_mode(clients, distance):
    remote, grpc_client, local = clients
    name, _other, rng = _setup(clients, distance)
    for _ in range(4):
        ids = rng.sample(range(150), 4)
        feedback = [models.FeedbackItem(example=ids[0], score=0.9), models.FeedbackItem(example=ids[1], score=0.1),
                    models.FeedbackItem(example=_vec(rng), score=round(rng.random(), 3))]
        query = models.RelevanceFeedbackQuery(relevance_feedback=models.RelevanceFeedbackInput(
            target=rng.choice([ids[2], _vec(rng)]), feedback=feedback,
            strategy=models.NaiveFeedbackStrategy(naive=models.NaiveFeedbackStrategyParams(
                a=round(rng.uniform(0.1, 2), 3), b=round(rng.uniform(0.5, 2), 3), c=round(rng.uniform(0.1, 2), 3)))))
        flt = models.Filter(must=[models.FieldCondition(key="g", match=models.MatchAny(any=[0, 1]))])
        for kwargs in ({"limit": 8}, {"limit": 5, "query_filter": flt, "offset": 2}):
            want = local.query_points(name, query=query, **kwargs).points
            same_scored(remote.query_points(name, query=query, **kwargs).points, want)
            same_scored(grpc_client.query_points(name, query=query, **kwargs).points, want)


def test_the_legacy_discover_endpoints(module_server, clients):
    remote, _grpc, local = clients
    name, _other, _rng = _setup(clients, models.Distance.COSINE, size=60)
    url = f"{module_server.url}/collections/{name}/points/discover"
    body = {"target": 3, "context": [{"positive": 4, "negative": 5}], "limit": 5, "with_payload": True}
    want = local.query_points(name, query=models.DiscoverQuery(discover=models.DiscoverInput(
        target=3, context=[models.ContextPair(positive=4, negative=5)])), limit=5).points
    got = httpx.post(url, json=body).json()["result"]
    assert [(p["id"], p["payload"]) for p in got] == [(p.id, p.payload) for p in want]
    assert all(math.isclose(p["score"], w.score, abs_tol=1e-4) for p, w in zip(got, want))
    context_only = {"context": [{"positive": 4, "negative": 5}], "limit": 60}
    batch = httpx.post(url + "/batch", json={"searches": [body, context_only]}).json()["result"]
    assert [p["id"] for p in batch[0]] == [p.id for p in want]
    assert len(batch[1]) == 58  # every point but the two examples
    for bad, status, words in (({**body, "score_threshold": 0.5}, 400, "score_threshold`"),
                               ({"limit": 3}, 400, "No target or context given"),
                               ({**body, "target": [1.0, 2.0]}, 400, "Vector dimension error")):
        r = httpx.post(url, json=bad)
        assert r.status_code == status and words in r.text, r.text


def test_bad_discover_queries_are_refused(module_server, clients):
    remote, _grpc, _local = clients
    name, _other, _rng = _setup(clients, models.Distance.DOT, size=10)
    url = f"{module_server.url}/collections/{name}/points/query"
    for query, status, words in (
            ({"discover": {"context": []}}, 400, "missing field `target`"),
            ({"discover": {"target": 1, "context": [{"positive": 2}]}}, 400, "missing field `negative`"),
            ({"context": []}, 400, "No target or context given"),
            ({"context": [{"positive": 2, "negative": 12345}]}, 404, "No point with id 12345"),
            ({"relevance_feedback": {"target": 1, "feedback": [], "strategy": {"other": {}}}}, 400, "naive"),
            ({"discover": {"target": 1, "context": {"positive": 2, "negative": 3}}, "mmr": {}}, 400, "not supported")):
        r = httpx.post(url, json={"query": query})
        assert r.status_code == status and words in r.text, (query, r.text)
