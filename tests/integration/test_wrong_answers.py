"""Answers pointlog used to get wrong (issue 12's list): each test failed before its fix.

Where the client's local mode implements the feature it is the reference; elsewhere
the expected status and message are the Qdrant server's. Every refused request must
also leave the log untouched.
"""
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models

from tests.support import end_offsets

DIM = 4


@pytest.fixture(scope="module")
def node(module_server):
    return module_server


def http(node, method: str, path: str, body=None) -> httpx.Response:
    return httpx.request(method, node.url + path, json=body, timeout=30)


def refused(node, broker, method: str, path: str, body, status: int, fragment: str) -> None:
    before = end_offsets(broker.bootstrap, node.topic)
    r = http(node, method, path, body)
    assert r.status_code == status, r.text
    assert fragment in r.json()["status"]["error"], r.text
    assert end_offsets(broker.bootstrap, node.topic) == before  # nothing published


def fresh(node, vectors=None, points=10) -> str:
    """A new collection (named vectors ``image`` and ``text``) with points 0..n-1."""
    name = f"w{uuid.uuid4().hex[:8]}"
    vectors = vectors or {"image": {"size": DIM, "distance": "Dot"}, "text": {"size": 2, "distance": "Cosine"}}
    assert http(node, "PUT", f"/collections/{name}", {"vectors": vectors}).status_code == 200
    body = {"points": [{"id": i, "vector": {"image": [float(i), 1.0, (i * 7) % 5, 0.5], "text": [1.0, i]},
                        "payload": {"n": i, "even": i % 2 == 0}} for i in range(points)]}
    assert http(node, "PUT", f"/collections/{name}/points?wait=true", body).status_code == 200
    return name


def mirror(name: str, points=10) -> QdrantClient:
    local = QdrantClient(":memory:")
    local.create_collection(name, vectors_config={
        "image": models.VectorParams(size=DIM, distance=models.Distance.DOT),
        "text": models.VectorParams(size=2, distance=models.Distance.COSINE)})
    local.upsert(name, points=[models.PointStruct(id=i, vector={"image": [float(i), 1.0, (i * 7) % 5, 0.5],
                                                                "text": [1.0, i]}, payload={"n": i, "even": i % 2 == 0})
                               for i in range(points)])
    return local


def test_1_query_without_query_lists_points_like_a_scroll(node):
    name = fresh(node)
    local = mirror(name)
    remote = QdrantClient(url=node.url, timeout=30)
    flt = models.Filter(must=[models.FieldCondition(key="even", match=models.MatchValue(value=True))])
    for kwargs in ({}, {"query_filter": flt, "limit": 2, "offset": 1, "with_payload": True}):
        got = remote.query_points(name, **kwargs).points
        want = local.query_points(name, **kwargs).points
        assert [(p.id, p.payload, p.score) for p in got] == [(p.id, p.payload, p.score) for p in want]
    batch = http(node, "POST", f"/collections/{name}/points/query/batch", {"searches": [{"limit": 3}]})
    assert [p["id"] for p in batch.json()["result"][0]["points"]] == [0, 1, 2]


def test_2_lookup_from_takes_the_vector_from_the_other_collection(node, broker):
    c1, c2 = fresh(node), fresh(node, points=3)
    # Point 1 of c2 is far from point 1 of c1: the answer shows which was used.
    http(node, "PUT", f"/collections/{c2}/points?wait=true",
         {"points": [{"id": 1, "vector": {"image": [-9.0, 0.0, 9.0, 0.0], "text": [0.0, 1.0]}}]})
    local = mirror(c1)
    local.create_collection(c2, vectors_config={
        "image": models.VectorParams(size=DIM, distance=models.Distance.DOT),
        "text": models.VectorParams(size=2, distance=models.Distance.COSINE)})
    local.upsert(c2, points=[models.PointStruct(id=1, vector={"image": [-9.0, 0.0, 9.0, 0.0], "text": [0.0, 1.0]})])
    body = {"query": 1, "using": "image", "lookup_from": {"collection": c2, "vector": "image"}, "limit": 4}
    got = http(node, "POST", f"/collections/{c1}/points/query", body).json()["result"]["points"]
    want = local.query_points(c1, query=1, using="image", limit=4,
                              lookup_from=models.LookupLocation(collection=c2, vector="image")).points
    assert [(p["id"], p["score"]) for p in got] == [(p.id, p.score) for p in want]
    assert 1 in [p["id"] for p in got]  # another collection's id is not left out
    refused(node, broker, "POST", f"/collections/{c1}/points/query",
            {**body, "lookup_from": {"collection": "no_such_collection"}}, 404,
            "Collection `no_such_collection` doesn't exist!")


def test_3_mmr_reranks_as_local_mode_does(node):
    name = fresh(node)
    local = mirror(name)
    remote = QdrantClient(url=node.url, timeout=30)
    query = models.NearestQuery(nearest=[1, 0, 0, 0], mmr=models.Mmr(diversity=0.9, candidates_limit=10))
    want = local.query_points(name, query=query, using="image", limit=5).points
    got = remote.query_points(name, query=query, using="image", limit=5).points
    assert [p.id for p in got] == [p.id for p in want]
    plain = remote.query_points(name, query=[1, 0, 0, 0], using="image", limit=5).points
    assert [p.id for p in got] != [p.id for p in plain]  # not the plain nearest order


def test_4_unknown_vector_names_in_with_vector_are_errors(node):
    name = fresh(node)
    for path, body in ((f"/collections/{name}/points", {"ids": [1], "with_vector": ["nope"]}),
                       (f"/collections/{name}/points/scroll", {"with_vector": ["image", "nope"]}),
                       (f"/collections/{name}/points/query", {"query": [1, 0, 0, 0], "using": "image",
                                                              "with_vector": ["nope"]})):
        r = http(node, "POST", path, body)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["status"]["error"] == "Wrong input: Not existing vector name error: nope"


def test_5_an_integer_index_with_no_capability_is_refused(node, broker):
    name = fresh(node)
    refused(node, broker, "PUT", f"/collections/{name}/index",
            {"field_name": "n", "field_schema": {"type": "integer", "lookup": False, "range": False}}, 422,
            "can't be both disabled")


def test_6_a_slice_of_total_zero_is_a_format_error(node, broker):
    name = fresh(node)
    refused(node, broker, "POST", f"/collections/{name}/points/count",
            {"filter": {"must": [{"slice": {"total": 0, "index": 0}}]}}, 400, "total")


@pytest.mark.parametrize("field", ["shard_number", "replication_factor", "write_consistency_factor"])
def test_7_collection_counts_below_one_are_refused(node, broker, field):
    body = {"vectors": {"size": 2, "distance": "Dot"}}
    refused(node, broker, "PUT", f"/collections/c{uuid.uuid4().hex[:8]}", {**body, field: 0}, 422, field)
    refused(node, broker, "PUT", f"/collections/c{uuid.uuid4().hex[:8]}", {**body, field: -1}, 400, field)


def test_8_zero_ef_is_refused_on_create_and_on_query(node, broker):
    refused(node, broker, "PUT", f"/collections/c{uuid.uuid4().hex[:8]}",
            {"vectors": {"size": 2, "distance": "Dot"}, "hnsw_config": {"ef_construct": 0}}, 422, "ef_construct")
    name = fresh(node)
    refused(node, broker, "POST", f"/collections/{name}/points/query",
            {"query": [1, 0, 0, 0], "using": "image", "params": {"hnsw_ef": 0}}, 422, "hnsw_ef")


def test_9_an_overlong_collection_name_is_invalid_on_reads_too(node):
    long = "x" * 256
    for method, path in (("GET", f"/collections/{long}"), ("POST", f"/collections/{long}/points/count")):
        r = http(node, method, path, {} if method == "POST" else None)
        assert r.status_code == 422, (path, r.text)


def test_10_order_by_on_a_range_index_does_not_ask_for_an_index(node, broker):
    name = fresh(node)
    r = http(node, "PUT", f"/collections/{name}/index?wait=true",
             {"field_name": "n", "field_schema": {"type": "integer", "lookup": True, "range": True}})
    assert r.status_code == 200, r.text
    r = http(node, "POST", f"/collections/{name}/points/scroll", {"order_by": {"key": "n", "direction": "desc"},
                                                                  "limit": 3})
    assert r.status_code == 200, r.text
    assert [(p["id"], p["order_value"]) for p in r.json()["result"]["points"]] == [(9, 9), (8, 8), (7, 7)]
