"""API keys on REST and gRPC, as Qdrant checks them: 401 without a valid key, 403 for
a write with the read-only key, the health endpoints open; keys never logged."""
import uuid

import grpc
import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

FULL, READER = "full-" + uuid.uuid4().hex, "reader-" + uuid.uuid4().hex


@pytest.fixture
def keyed(servers, topic):
    return servers(topic, env={"POINTLOG_API_KEY": FULL, "POINTLOG_READ_ONLY_API_KEY": READER})


def client(server, key, grpc_: bool) -> QdrantClient:
    return QdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=grpc_, api_key=key, timeout=30,
                        https=False)


def test_rest_keys(keyed):
    url = keyed.url
    for path in ("/", "/healthz", "/livez", "/readyz"):
        assert httpx.get(url + path).status_code == 200, path
    r = httpx.get(url + "/collections")
    assert r.status_code == 401 and r.text == "Must provide an API key or an Authorization bearer token"
    assert httpx.get(url + "/collections", headers={"api-key": "nope"}).status_code == 401
    assert httpx.get(url + "/metrics").status_code == 401  # not one of Qdrant's open paths
    body = {"vectors": {"size": 2, "distance": "Dot"}}
    assert httpx.put(url + "/collections/k", json=body, headers={"api-key": READER}).status_code == 403
    assert httpx.put(url + "/collections/k", json=body, headers={"authorization": f"Bearer {FULL}"}).status_code == 200
    writer, reader = client(keyed, FULL, False), client(keyed, READER, False)
    writer.upsert("k", points=[models.PointStruct(id=1, vector=[1.0, 2.0], payload={"a": 1})])
    assert reader.retrieve("k", [1])[0].payload == {"a": 1}
    assert reader.query_points("k", query=[1.0, 0.0]).points[0].id == 1
    assert reader.count("k").count == 1
    with pytest.raises(UnexpectedResponse) as info:
        reader.upsert("k", points=[models.PointStruct(id=2, vector=[1.0, 2.0])])
    assert info.value.status_code == 403
    assert FULL not in keyed.tail_log(100_000) and READER not in keyed.tail_log(100_000)


def test_grpc_keys(keyed):
    writer, reader = client(keyed, FULL, True), client(keyed, READER, True)
    writer.create_collection("g", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    writer.upsert("g", points=[models.PointStruct(id=1, vector=[1.0, 2.0])])
    assert reader.count("g").count == 1
    with pytest.raises(grpc.RpcError) as info:
        reader.upsert("g", points=[models.PointStruct(id=2, vector=[1.0, 2.0])])
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as info:
        client(keyed, None, True).count("g")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Must provide an API key" in info.value.details()
    assert writer.count("g").count == 1  # still serving after the refusals
