"""Grouped queries against qdrant-client's local mode: string, integer and array keys,
group sizes and limits, filters, prefetch + fusion, and with_lookup."""
import math
import random
import uuid

import httpx
from qdrant_client import QdrantClient, models


def same(got, want) -> None:
    assert [g.id for g in got.groups] == [g.id for g in want.groups]
    for g, w in zip(got.groups, want.groups):
        assert [h.id for h in g.hits] == [h.id for h in w.hits]
        assert all(math.isclose(a.score, b.score, rel_tol=1e-4, abs_tol=1e-4) for a, b in zip(g.hits, w.hits))
        assert [h.payload for h in g.hits] == [h.payload for h in w.hits]
        assert (g.lookup and g.lookup.payload) == (w.lookup and w.lookup.payload)


def test_groups_answer_like_local_mode(module_server):
    name, docs = f"gr{uuid.uuid4().hex[:8]}", f"docs{uuid.uuid4().hex[:8]}"
    remote, local = QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")
    rng = random.Random(12)
    points = []
    for i in range(200):
        payload = {"doc": i % 17, "color": rng.choice(["red", "green", "blue"]), "tags": rng.sample("abcde", 2)}
        if i % 13 == 0:
            payload["doc"] = [i % 17, 100 + i % 5]
        if i % 29 == 0:
            payload["color"] = True  # cannot be a group id: the point joins no group
        points.append(models.PointStruct(id=i, vector={"d": [rng.gauss(0, 1) for _ in range(4)]}, payload=payload))
    for client in (remote, local):
        client.create_collection(name, vectors_config={"d": models.VectorParams(size=4, distance=models.Distance.DOT)})
        client.upsert(name, points=points)
        client.create_collection(docs, vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT))
        client.upsert(docs, points=[models.PointStruct(id=i, vector=[1.0], payload={"title": f"doc {i}"})
                                    for i in range(17)])
    flt = models.Filter(must_not=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))])
    for _ in range(4):
        q = [rng.gauss(0, 1) for _ in range(4)]
        for kwargs in ({"group_by": "doc"}, {"group_by": "color", "group_size": 5, "limit": 2},
                       {"group_by": "tags", "group_size": 2, "query_filter": flt},
                       {"group_by": "doc", "with_lookup": models.WithLookup(collection=docs, with_payload=["title"]),
                        "limit": 4},
                       {"group_by": "doc", "with_payload": ["color"], "limit": 3}):
            same(remote.query_points_groups(name, query=q, using="d", **kwargs),
                 local.query_points_groups(name, query=q, using="d", **kwargs))
        fused = dict(prefetch=[models.Prefetch(query=q, using="d", limit=20),
                               models.Prefetch(query=[-x for x in q], using="d", limit=20)],
                     query=models.FusionQuery(fusion=models.Fusion.RRF), group_by="color", group_size=3)
        same(remote.query_points_groups(name, **fused), local.query_points_groups(name, **fused))


def test_group_parameters_are_checked(module_server):
    name = f"gq{uuid.uuid4().hex[:8]}"
    url = f"{module_server.url}/collections/{name}"
    assert httpx.put(url, json={"vectors": {"size": 1, "distance": "Dot"}}).status_code == 200
    r = httpx.post(url + "/points/query/groups", json={"query": [1.0]})
    assert r.status_code == 400 and "group_by" in r.text
    r = httpx.post(url + "/points/query/groups", json={"query": [1.0], "group_by": "k", "group_size": 0})
    assert r.status_code == 422 and "group_size" in r.text


def test_groups_over_grpc_answer_as_over_rest(module_server):
    name = f"gg{uuid.uuid4().hex[:8]}"
    rest = QdrantClient(url=module_server.url, timeout=30)
    grpc_ = QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True, timeout=30)
    rest.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    rest.upsert(name, points=[models.PointStruct(id=i, vector=[1.0, i / 10], payload={"k": i % 4, "s": str(i % 3)})
                              for i in range(30)])
    for kwargs in ({"group_by": "k", "group_size": 2}, {"group_by": "s", "limit": 2, "with_payload": True,
                                                         "with_lookup": models.WithLookup(collection=name)}):
        same(grpc_.query_points_groups(name, query=[1.0, 0.5], **kwargs),
             rest.query_points_groups(name, query=[1.0, 0.5], **kwargs))
