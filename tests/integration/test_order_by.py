"""Scroll ``order_by`` against qdrant-client's local mode: integer, float and datetime
keys, arrays, both directions, start_from, filters; and the index it needs."""
import random
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models


@pytest.fixture(scope="module")
def collection(module_server):
    name = f"ob{uuid.uuid4().hex[:8]}"
    remote, local = QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")
    rng = random.Random(4)
    values = rng.sample(range(10_000), 400)  # distinct: equal values have no defined order in Qdrant
    points = []
    for i in range(150):
        payload = {"g": i % 3, "price": values[i] / 7, "n": values[i],
                   "t": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"}
        if i % 10 == 0:
            payload["n"] = [values[i], values[200 + i]]  # a point appears once per value
        if i % 17 == 0:
            del payload["price"]
        points.append(models.PointStruct(id=i, vector=[1.0, float(i)], payload=payload))
    for client in (remote, local):
        client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        client.upsert(name, points=points)
    remote.create_payload_index(name, "n", models.IntegerIndexParams(type="integer", range=True, lookup=False))
    remote.create_payload_index(name, "price", models.PayloadSchemaType.FLOAT)
    remote.create_payload_index(name, "t", models.PayloadSchemaType.DATETIME)
    return name, remote, local


@pytest.mark.parametrize("key", ["n", "price", "t"])
def test_order_by_answers_like_local_mode(collection, key):
    name, remote, local = collection
    flt = models.Filter(must_not=[models.FieldCondition(key="g", match=models.MatchValue(value=1))])
    cases = [models.OrderBy(key=key), models.OrderBy(key=key, direction=models.Direction.DESC)]
    middle = local.scroll(name, order_by=models.OrderBy(key=key), limit=60)[0][-1].order_value
    cases += [models.OrderBy(key=key, start_from=middle),
              models.OrderBy(key=key, direction=models.Direction.DESC, start_from=middle)]
    for order_by in cases:
        for kwargs in ({"limit": 25}, {"limit": 200, "scroll_filter": flt}):
            got, offset = remote.scroll(name, order_by=order_by, **kwargs)
            want, _ = local.scroll(name, order_by=order_by, **kwargs)
            assert [(p.id, p.order_value) for p in got] == [(p.id, p.order_value) for p in want]
            assert offset is None


def test_order_by_needs_a_range_index_and_no_offset(collection, module_server):
    name, _remote, _local = collection
    url = f"{module_server.url}/collections/{name}/points/scroll"
    r = httpx.post(url, json={"order_by": "g"})
    assert r.status_code == 400 and "No range index for `order_by` key found" in r.text
    r = httpx.post(url, json={"order_by": "n", "offset": 3})
    assert r.status_code == 400 and "Offset is not supported" in r.text


@pytest.mark.parametrize("key", ["n", "price", "t"])
def test_order_by_inside_a_query_answers_like_local_mode(collection, module_server, key):
    name, remote, local = collection
    grpc_client = QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True, timeout=30)
    flt = models.Filter(must_not=[models.FieldCondition(key="g", match=models.MatchValue(value=1))])
    middle = local.scroll(name, order_by=models.OrderBy(key=key), limit=40)[0][-1].order_value
    for order_by in (models.OrderBy(key=key, direction=models.Direction.DESC),
                     models.OrderBy(key=key, start_from=middle)):
        query = models.OrderByQuery(order_by=order_by)
        for kwargs in ({"limit": 15}, {"limit": 30, "offset": 7, "query_filter": flt, "with_payload": ["g"]}):
            want = local.query_points(name, query=query, **kwargs).points
            for client in (remote, grpc_client):
                got = client.query_points(name, query=query, **kwargs).points
                assert [(p.id, p.order_value, p.score, p.payload) for p in got] == \
                    [(p.id, p.order_value, p.score, p.payload) for p in want]
    r = httpx.post(f"{module_server.url}/collections/{name}/points/query", json={"query": {"order_by": "g"}})
    assert r.status_code == 400 and "No range index for `order_by` key found" in r.text
