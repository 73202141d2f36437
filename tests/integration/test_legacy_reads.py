"""The legacy read endpoints and RPCs (recommend, discover, search and recommend groups)
answer as the universal query they stand for, over REST and gRPC."""
import math
import random
import uuid

import grpc
import httpx
import pytest
from qdrant_client import QdrantClient, grpc as pb, models


def _pid(n: int) -> pb.PointId:
    return pb.PointId(num=n)


def _same(got: list, want: list) -> None:
    assert [p["id"] for p in got] == [p["id"] for p in want]
    assert all(math.isclose(g["score"], w["score"], abs_tol=1e-5) for g, w in zip(got, want))


def _scored(points) -> list:
    return [{"id": p.id.num, "score": p.score} for p in points]


@pytest.fixture(scope="module")
def node(module_server):
    remote = QdrantClient(url=module_server.url, timeout=30)
    name = f"lg{uuid.uuid4().hex[:8]}"
    rng = random.Random(11)
    remote.create_collection(name, vectors_config={"v": models.VectorParams(size=4, distance=models.Distance.COSINE)})
    remote.upsert(name, points=[models.PointStruct(id=i, vector={"v": [rng.gauss(0, 1) for _ in range(4)]},
                                                   payload={"g": i % 7, "tags": [f"t{i % 3}", f"t{i % 4}"]})
                                for i in range(80)])
    grpc_client = QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True,
                               timeout=30)
    yield module_server, name, grpc_client._client.grpc_points
    grpc_client.close()


def _post(server, name: str, path: str, body: dict):
    r = httpx.post(f"{server.url}/collections/{name}/points/{path}", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def test_grouped_legacy_endpoints_answer_as_the_grouped_query(node):
    server, name, points = node
    vec = [0.3, -0.2, 0.5, 0.1]
    common = {"group_by": "tags", "group_size": 2, "limit": 4, "with_payload": ["g"],
              "filter": {"must_not": [{"key": "g", "match": {"value": 0}}]}}
    want = _post(server, name, "query/groups", {**common, "query": vec, "using": "v"})["groups"]
    got = _post(server, name, "search/groups", {**common, "vector": {"name": "v", "vector": vec}})["groups"]
    assert [g["id"] for g in got] == [g["id"] for g in want] and len(got) == 4
    for g, w in zip(got, want):
        _same(g["hits"], w["hits"])
        assert [h["payload"] for h in g["hits"]] == [h["payload"] for h in w["hits"]]
    reco = {"positive": [1, 2], "negative": [3], "strategy": "best_score"}
    want = _post(server, name, "query/groups", {**common, "query": {"recommend": reco}, "using": "v"})["groups"]
    got = _post(server, name, "recommend/groups", {**common, **reco, "using": "v"})["groups"]
    assert [[h["id"] for h in g["hits"]] for g in got] == [[h["id"] for h in g["hits"]] for g in want]
    # over gRPC
    grpc_got = points.SearchGroups(pb.SearchPointGroups(
        collection_name=name, vector=vec, vector_name="v", group_by="tags", group_size=2, limit=4,
        filter=pb.Filter(must_not=[pb.Condition(field=pb.FieldCondition(key="g", match=pb.Match(integer=0)))])),
        timeout=30).result.groups
    search_want = _post(server, name, "search/groups", {**common, "vector": {"name": "v", "vector": vec}})["groups"]
    assert [[h.id.num for h in g.hits] for g in grpc_got] == [[h["id"] for h in g["hits"]] for g in search_want]
    grpc_got = points.RecommendGroups(pb.RecommendPointGroups(
        collection_name=name, positive=[_pid(1), _pid(2)], negative=[_pid(3)], strategy=pb.RecommendStrategy.BestScore,
        using="v", group_by="tags", group_size=2, limit=4,
        filter=pb.Filter(must_not=[pb.Condition(field=pb.FieldCondition(key="g", match=pb.Match(integer=0)))])),
        timeout=30).result.groups
    assert [[h.id.num for h in g.hits] for g in grpc_got] == [[h["id"] for h in g["hits"]] for g in want]
    r = httpx.post(f"{server.url}/collections/{name}/points/search/groups",
                   json={**common, "vector": {"name": "v", "vector": vec}, "offset": 2})
    assert r.status_code == 400 and "offset`" in r.text


def test_legacy_recommend_and_discover_rpcs(node):
    server, name, points = node
    vec = [0.1, 0.9, -0.3, 0.2]
    want = _post(server, name, "recommend", {"positive": [4], "negative": [5], "using": "v", "limit": 6,
                                              "strategy": "sum_scores", "offset": 1})
    got = points.Recommend(pb.RecommendPoints(collection_name=name, positive=[_pid(4)], negative=[_pid(5)],
                                              using="v", limit=6, offset=1, strategy=pb.RecommendStrategy.SumScores),
                           timeout=30).result
    _same(_scored(got), want)
    want_avg = _post(server, name, "recommend", {"positive": [4, vec], "using": "v", "limit": 5})
    batch = points.RecommendBatch(pb.RecommendBatchPoints(collection_name=name, recommend_points=[
        pb.RecommendPoints(collection_name=name, positive=[_pid(4)], negative=[_pid(5)], using="v", limit=6, offset=1,
                           strategy=pb.RecommendStrategy.SumScores),
        pb.RecommendPoints(collection_name=name, positive=[_pid(4)], using="v", limit=5,
                           positive_vectors=[pb.Vector(dense=pb.DenseVector(data=vec))])]), timeout=30).result
    _same(_scored(batch[0].result), want)
    _same(_scored(batch[1].result), want_avg)
    body = {"target": 6, "context": [{"positive": 7, "negative": vec}], "using": "v", "limit": 5}
    want = _post(server, name, "discover", body)
    request = pb.DiscoverPoints(
        collection_name=name, target=pb.TargetVector(single=pb.VectorExample(id=_pid(6))), using="v", limit=5,
        context=[pb.ContextExamplePair(positive=pb.VectorExample(id=_pid(7)), negative=pb.VectorExample(
            vector=pb.Vector(dense=pb.DenseVector(data=vec))))])
    _same(_scored(points.Discover(request, timeout=30).result), want)
    batch = points.DiscoverBatch(pb.DiscoverBatchPoints(collection_name=name, discover_points=[request]),
                                 timeout=30).result
    _same(_scored(batch[0].result), want)
    with pytest.raises(grpc.RpcError) as raised:
        points.Discover(pb.DiscoverPoints(collection_name=name, using="v", limit=3,
                                          shard_key_selector=pb.ShardKeySelector()), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
