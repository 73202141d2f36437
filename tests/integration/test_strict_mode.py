"""Strict mode: `strict_mode_config` at creation and by PATCH, stored and reported, and
each limit refused with Qdrant's message (its tests/openapi/test_strictmode.py cases),
nothing published for a refused write. One module server, one collection per test."""
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.support import end_offsets

VEC = [0.2, 0.1, 0.9, 0.7]


@pytest.fixture
def col(module_server):
    """A collection of 10 points (city, price), like Qdrant's basic collection setup."""
    name = f"s{uuid.uuid4().hex[:8]}"
    url = f"{module_server.url}/collections/{name}"
    httpx.put(url, json={"vectors": {"size": 4, "distance": "Dot"}}).raise_for_status()
    points = [{"id": i, "vector": [0.1 * i, 0.2, 0.3, 0.4], "payload": {"city": ["Berlin", "London"][i % 2],
                                                                         "price": i}} for i in range(1, 11)]
    httpx.put(f"{url}/points?wait=true", json={"points": points}).raise_for_status()
    return url


def strict(url, **config):
    httpx.patch(url, json={"strict_mode_config": config}).raise_for_status()


def refused(response, *words):
    assert response.status_code == 400, response.text
    error = response.json()["status"]["error"]
    for word in words:
        assert word in error, error
    return error


def search(url, **body):
    return httpx.post(f"{url}/points/search", json={"vector": VEC, "limit": 4, **body})


def test_config_is_stored_merged_and_reported(col, module_server):
    assert "strict_mode_config" not in httpx.get(col).json()["result"]["config"]
    strict(col, enabled=True, max_query_limit=10, max_timeout=2, unindexed_filtering_retrieve=False,
           unindexed_filtering_update=False, search_max_hnsw_ef=3, search_allow_exact=False,
           search_max_oversampling=1.5)
    strict(col, max_query_limit=20, max_timeout=None)  # a null leaves a limit as it is, as in Qdrant
    got = httpx.get(col).json()["result"]["config"]["strict_mode_config"]
    assert got == {"enabled": True, "max_query_limit": 20, "max_timeout": 2, "unindexed_filtering_retrieve": False,
                   "unindexed_filtering_update": False, "search_max_hnsw_ef": 3, "search_allow_exact": False,
                   "search_max_oversampling": 1.5}
    name = col.rsplit("/", 1)[1]
    for client in (QdrantClient(url=module_server.url),
                   QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True)):
        info = client.get_collection(name).config.strict_mode_config
        assert info.enabled and info.max_query_limit == 20 and info.search_max_oversampling == 1.5

    # At creation, through the client (gRPC too).
    grpc = QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True)
    other = f"s{uuid.uuid4().hex[:8]}"
    grpc.create_collection(other, vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT),
                           strict_mode_config=models.StrictModeConfig(enabled=True, max_query_limit=3))
    assert grpc.get_collection(other).config.strict_mode_config.max_query_limit == 3
    with pytest.raises(Exception, match="limit"):
        grpc.query_points(other, query=VEC, limit=4)


def test_disabled_config_limits_nothing(col):
    strict(col, enabled=False, max_query_limit=1)
    search(col).raise_for_status()


def test_max_query_limit(col):
    search(col).raise_for_status()
    strict(col, enabled=True, max_query_limit=4)
    search(col).raise_for_status()
    strict(col, max_query_limit=3)
    assert refused(search(col), "limit") == ('Bad request: Limit exceeded 4 > 3 for "limit". '
                                              'Help: Reduce the "limit" parameter to or below 3.')
    refused(httpx.post(f"{col}/points/scroll", json={}), "limit")  # scroll's default limit is 10
    refused(httpx.post(f"{col}/points/query", json={"query": VEC, "limit": 5}), "limit")
    refused(httpx.post(f"{col}/points/query", json={"prefetch": {"query": VEC, "limit": 50}, "query": VEC,
                                                     "limit": 3}), "limit")


def test_example_queries_obey_the_query_limit(col, module_server):
    """Discover and the legacy recommend/discover RPCs are search-like reads too."""
    strict(col, enabled=True, max_query_limit=3)
    name = col.rsplit("/", 1)[1]
    refused(httpx.post(f"{col}/points/discover", json={"target": 1, "limit": 5}), "limit")
    refused(httpx.post(f"{col}/points/discover/batch", json={"searches": [{"target": 1, "limit": 5}]}), "limit")
    refused(httpx.post(f"{col}/points/recommend", json={"positive": [1], "limit": 5}), "limit")
    import grpc
    from qdrant_client import grpc as pb
    client = QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True, timeout=30)
    points = client._client.grpc_points  # the pinned client no longer calls the legacy RPCs itself
    one = pb.PointId(num=1)
    for call in (lambda: points.Discover(pb.DiscoverPoints(collection_name=name, target=pb.TargetVector(
                     single=pb.VectorExample(id=one)), limit=5)),
                 lambda: points.Recommend(pb.RecommendPoints(collection_name=name, positive=[one], limit=5)),
                 lambda: points.RecommendBatch(pb.RecommendBatchPoints(collection_name=name, recommend_points=[
                     pb.RecommendPoints(collection_name=name, positive=[one], limit=5)]))):
        with pytest.raises(grpc.RpcError, match="Limit exceeded 5 > 3"):
            call()
    assert len(points.Recommend(pb.RecommendPoints(collection_name=name, positive=[one], limit=3)).result) == 3
    client.close()

def test_max_timeout(col):
    strict(col, enabled=True, max_timeout=2)
    httpx.post(f"{col}/points/search?timeout=2", json={"vector": VEC, "limit": 3}).raise_for_status()
    refused(httpx.post(f"{col}/points/search?timeout=3", json={"vector": VEC, "limit": 3}), "timeout")
    refused(httpx.put(f"{col}/points?timeout=3", json={"points": [{"id": 1, "vector": VEC}]}), "timeout")


def test_unindexed_filtering_retrieve(col):
    flt = {"must": [{"key": "city", "match": {"value": "Berlin"}}]}
    strict(col, enabled=True, unindexed_filtering_retrieve=True)
    search(col, filter=flt).raise_for_status()
    strict(col, unindexed_filtering_retrieve=False)
    assert refused(search(col, filter=flt), "city") == (
        'Bad request: Index required but not found for "city" of one of the following types: [keyword]. '
        'Help: Create an index for this key or use a different filter.')
    refused(httpx.post(f"{col}/points/count", json={"filter": flt}), "city")
    refused(search(col, filter={"must": [{"key": "price", "range": {"gte": 1.5}}]}), "[float, integer]")
    httpx.put(f"{col}/index?wait=true", json={"field_name": "city", "field_schema": "keyword"}).raise_for_status()
    search(col, filter=flt).raise_for_status()
    httpx.post(f"{col}/points/count", json={"filter": flt}).raise_for_status()
    # A text condition needs a text index, not the keyword one.
    refused(search(col, filter={"must": [{"key": "city", "match": {"text": "Berlin"}}]}), "[text]")


def test_unindexed_filtering_update(col, module_server, broker):
    flt = {"filter": {"must": [{"key": "city", "match": {"value": "Berlin"}}]}}
    strict(col, enabled=True, unindexed_filtering_update=False)
    before = end_offsets(broker.bootstrap, module_server.topic)
    refused(httpx.post(f"{col}/points/delete?wait=true", json=flt), "city")
    refused(httpx.post(f"{col}/points/payload?wait=true", json={"payload": {"a": 1}, **flt}), "city")
    assert end_offsets(broker.bootstrap, module_server.topic) == before
    httpx.post(f"{col}/points/delete?wait=true", json={"points": [1]}).raise_for_status()  # ids need no index
    httpx.put(f"{col}/index?wait=true", json={"field_name": "city", "field_schema": "keyword"}).raise_for_status()
    httpx.post(f"{col}/points/delete?wait=true", json=flt).raise_for_status()


def test_search_params(col):
    strict(col, enabled=True, search_max_hnsw_ef=5)
    search(col, params={"hnsw_ef": 5}).raise_for_status()
    strict(col, search_max_hnsw_ef=4)
    refused(search(col, params={"hnsw_ef": 5}), "hnsw_ef")
    strict(col, search_allow_exact=False)
    assert refused(search(col, params={"exact": True}), "Exact") == \
        "Bad request: Exact search disabled!. Help: Set exact=false."
    strict(col, search_max_oversampling=1.9)
    refused(search(col, params={"quantization": {"oversampling": 2.0}}), "oversampling")


def test_full_scan_refused_without_hnsw(module_server):
    name = f"s{uuid.uuid4().hex[:8]}"
    url = f"{module_server.url}/collections/{name}"
    httpx.put(url, json={"vectors": {"size": 4, "distance": "Dot"}, "hnsw_config": {"m": 0},
                         "strict_mode_config": {"enabled": True, "search_allow_exact": False}}).raise_for_status()
    refused(httpx.post(f"{url}/points/query", json={"query": VEC}),
            "because global vector indexing is disabled (hnsw_config.m = 0)")


def test_batch_sizes(col):
    points = {"batch": {"ids": [1, 2, 3, 4, 5, 6], "vectors": [VEC] * 6}}
    strict(col, enabled=True, upsert_max_batchsize=6)
    httpx.put(f"{col}/points", json=points).raise_for_status()
    strict(col, upsert_max_batchsize=5)
    refused(httpx.put(f"{col}/points", json=points), '"upsert limit"')
    refused(httpx.post(f"{col}/points/batch", json={"operations": [{"upsert": points}]}), "upsert")
    refused(httpx.put(f"{col}/points/vectors", json={"points": [{"id": i, "vector": VEC} for i in range(1, 7)]}),
            '"update limit"')
    strict(col, search_max_batchsize=1)
    refused(httpx.post(f"{col}/points/search/batch", json={"searches": [{"vector": VEC, "limit": 1}] * 2}),
            '"search batch size"')


def test_max_points_count(col):
    strict(col, enabled=True, max_points_count=11)
    httpx.put(f"{col}/points?wait=true", json={"points": [{"id": 11, "vector": VEC}]}).raise_for_status()
    assert refused(httpx.put(f"{col}/points", json={"points": [{"id": 12, "vector": VEC}]})) == \
        "Bad request: Max points count limit of 11 reached!"


def test_max_collection_vector_and_payload_size(col):
    strict(col, enabled=True, max_collection_vector_size_bytes=160)  # 10 points x 4 x 4 bytes
    refused(httpx.put(f"{col}/points", json={"points": [{"id": 12, "vector": VEC}]}),
            "Max vector storage size limit of 0.00015258789MB reached!")
    strict(col, max_collection_vector_size_bytes=10**9, max_collection_payload_size_bytes=100)
    refused(httpx.put(f"{col}/points", json={"points": [{"id": 12, "vector": VEC}]}), "Max payload storage size")
    refused(httpx.post(f"{col}/points/payload", json={"payload": {"a": 1}, "points": [1]}), "Max payload storage")


def test_filter_max_conditions_and_condition_max_size(col):
    many = {"must": [{"key": "price", "match": {"value": i}} for i in range(6)]}
    strict(col, enabled=True, filter_max_conditions=5)
    search(col, filter={"must": many["must"][:5]}).raise_for_status()
    assert refused(search(col, filter=many)) == ("Bad request: Filter condition limit reached (6 > 5). "
                                                 "Help: Reduce the amount of conditions of your filter.")
    strict(col, filter_max_conditions=100, condition_max_size=5)
    search(col, filter={"must": [{"key": "price", "match": {"any": list(range(5))}}]}).raise_for_status()
    refused(search(col, filter={"must": [{"key": "price", "match": {"any": list(range(6))}}]}),
            "Condition size limit reached (6 > 5)")
    nested = {"must": [{"nested": {"key": "city", "filter": {"must": [
        {"key": "key", "match": {"any": [1, 2, 3]}}, {"key": "key2", "match": {"any": [1, 2]}}]}}}]}
    search(col, filter=nested).raise_for_status()
    strict(col, condition_max_size=2)  # counted inside nested filters too
    refused(search(col, filter=nested), "Condition size limit reached (3 > 2)")
    strict(col, condition_max_size=1000, filter_max_conditions=1)
    refused(search(col, filter=nested), "Filter condition limit reached (2 > 1)")


def test_multivector_and_sparse_limits(module_server):
    name = f"s{uuid.uuid4().hex[:8]}"
    url = f"{module_server.url}/collections/{name}"
    httpx.put(url, json={"vectors": {"m": {"size": 2, "distance": "Dot", "multivector_config": {
        "comparator": "max_sim"}}}, "sparse_vectors": {"s": {}}}).raise_for_status()
    strict(url, enabled=True, multivector_config={"m": {"max_vectors": 2}}, sparse_config={"s": {"max_length": 2}})
    httpx.put(f"{url}/points?wait=true", json={"points": [{"id": 1, "vector": {"m": [[1, 2], [3, 4]]}}]}
              ).raise_for_status()
    refused(httpx.put(f"{url}/points", json={"points": [{"id": 1, "vector": {"m": [[1, 2]] * 3}}]}),
            "Multivector 'm' has a limit of 2 vectors, but 3 were provided!")
    refused(httpx.put(f"{url}/points", json={"points": [{"id": 1, "vector": {"s": {"indices": [1, 2, 3],
                                                                                     "values": [1, 1, 1]}}}]}),
            "Sparse vector 's' has a limit of 2 indices, but 3 were provided!")


def test_max_payload_index_count(col):
    strict(col, enabled=True, max_payload_index_count=1)
    httpx.put(f"{col}/index?wait=true", json={"field_name": "city", "field_schema": "keyword"}).raise_for_status()
    refused(httpx.put(f"{col}/index", json={"field_name": "price", "field_schema": "integer"}),
            "Collection already has the maximum number of payload indices (1)")


def test_group_by_needs_an_index(col):
    strict(col, enabled=True, unindexed_filtering_retrieve=False)
    refused(httpx.post(f"{col}/points/query/groups", json={"query": VEC, "group_by": "city"}),
            'Index required but not found for "city"')


@pytest.mark.parametrize("field", ["read_rate_limit", "write_rate_limit", "max_resident_memory_percent"])
def test_unimplemented_limits_are_refused(col, field, module_server, broker):
    before = end_offsets(broker.bootstrap, module_server.topic)
    r = httpx.patch(col, json={"strict_mode_config": {"enabled": True, field: 10}})
    refused(r, f"strict_mode_config.{field}", "not supported by pointlog")
    assert end_offsets(broker.bootstrap, module_server.topic) == before
    with pytest.raises(UnexpectedResponse):
        QdrantClient(url=module_server.url).create_collection(
            f"s{uuid.uuid4().hex[:8]}", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT),
            strict_mode_config=models.StrictModeConfig(enabled=True, **{field: 10}))
