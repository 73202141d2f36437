"""Facet counts against qdrant-client's local mode: keyword, integer, bool and UUID
values, arrays, filters, limits; and the index they need."""
import random
import uuid

import httpx
from qdrant_client import QdrantClient, models


def test_facets_answer_like_local_mode(module_server):
    name = f"fa{uuid.uuid4().hex[:8]}"
    remote, local = QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")
    rng = random.Random(8)
    colors = ["red", "green", "blue", "cyan", "black"]
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(4)]
    points = [models.PointStruct(id=i, vector=[1.0], payload={
        "color": rng.choice(colors), "tags": rng.sample(colors, rng.randint(0, 3)), "n": rng.randint(0, 6),
        "ok": rng.random() < 0.3, "owner": rng.choice(ids)}) for i in range(300)]
    for client in (remote, local):
        client.create_collection(name, vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT))
        client.upsert(name, points=points)
    for key, schema in (("color", "keyword"), ("tags", "keyword"), ("n", "integer"), ("ok", "bool"), ("owner", "uuid")):
        remote.create_payload_index(name, key, schema)
    flt = models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=2))])
    for key in ("color", "tags", "n", "ok", "owner"):
        for kwargs in ({}, {"limit": 2}, {"facet_filter": flt, "limit": 100}):
            got = remote.facet(name, key, **kwargs).hits
            want = local.facet(name, key, **kwargs).hits
            assert [(h.value, h.count) for h in got] == [(h.value, h.count) for h in want], (key, kwargs)


def test_a_facet_needs_an_index(module_server):
    name = f"fb{uuid.uuid4().hex[:8]}"
    url = f"{module_server.url}/collections/{name}"
    assert httpx.put(url, json={"vectors": {"size": 1, "distance": "Dot"}}).status_code == 200
    r = httpx.post(url + "/facet", json={"key": "color"})
    assert r.status_code == 400 and "Index required but not found for \"color\"" in r.json()["status"]["error"]
