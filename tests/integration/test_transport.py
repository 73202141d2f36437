"""TLS on both front doors, with a self-signed certificate made for the test, through
qdrant_client (https=True, REST and gRPC); and the request size limit (Qdrant's
max_request_size_mb): 413 on REST, RESOURCE_EXHAUSTED on gRPC, nothing published."""
import subprocess
import uuid

import grpc
import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.support import end_offsets


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple:
    where = tmp_path_factory.mktemp("tls")
    cert, key = str(where / "cert.pem"), str(where / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def test_tls_rest_and_grpc(servers, topic, certificate):
    cert, key = certificate
    node = servers(topic, env={"POINTLOG_TLS_CERT": cert, "POINTLOG_TLS_KEY": key}, ca=cert)
    assert node.url.startswith("https://")
    with open(cert, "rb") as f:
        root = f.read()
    rest = QdrantClient(url=node.url, https=True, verify=node.verify, timeout=30)
    rpc = QdrantClient(url=node.url, grpc_port=node.grpc_port, prefer_grpc=True, https=True, timeout=30,
                       grpc_options={"root_certificates": root})
    rest.create_collection("t", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    rpc.upsert("t", points=[models.PointStruct(id=1, vector=[1.0, 2.0], payload={"via": "grpc"})])
    rest.upsert("t", points=[models.PointStruct(id=2, vector=[2.0, 1.0], payload={"via": "rest"})])
    assert rest.count("t").count == rpc.count("t").count == 2
    assert rpc.retrieve("t", [2])[0].payload == {"via": "rest"}
    # Plain HTTP and an untrusting client are refused by the TLS handshake.
    with pytest.raises(httpx.HTTPError):
        httpx.get(node.url.replace("https", "http") + "/collections", timeout=5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(node.url + "/collections", timeout=5)  # system CAs do not know the certificate


MB = 1024 * 1024


def test_request_size_limit(servers, topic, broker):
    node = servers(topic, env={"POINTLOG_MAX_REQUEST_SIZE_MB": "1"})
    rest = QdrantClient(url=node.url, timeout=30)
    rpc = QdrantClient(url=node.url, grpc_port=node.grpc_port, prefer_grpc=True, timeout=30)
    rest.create_collection("big", vectors_config=models.VectorParams(size=256, distance=models.Distance.DOT))
    before = end_offsets(broker.bootstrap, node.topic)
    # ~1.4 MB of JSON (far less as a gRPC message: more points there).
    points = [models.PointStruct(id=i, vector=[0.123456789] * 256) for i in range(450)]
    with pytest.raises(UnexpectedResponse) as info:
        rest.upsert("big", points=points)
    assert info.value.status_code == 413
    assert "larger than allowed (limit: 1048576 bytes" in info.value.content.decode()
    # A body without content-length (chunked) is counted as it arrives.
    body = b'{"points": [' + b",".join(b'{"id": %d, "vector": [%s]}' % (i, b",".join([b"0.5"] * 256))
                                       for i in range(1500)) + b"]}"
    assert len(body) > MB

    def chunks():
        for i in range(0, len(body), 64 * 1024):
            yield body[i:i + 64 * 1024]
    r = httpx.put(node.url + "/collections/big/points?wait=true", content=chunks(),
                  headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413, r.text
    many = [models.PointStruct(id=i, vector=[0.5] * 256) for i in range(1200)]
    with pytest.raises(grpc.RpcError) as rpc_info:
        rpc.upsert("big", points=many)
    assert rpc_info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert end_offsets(broker.bootstrap, node.topic) == before
    # Below the limit, both doors take it.
    rest.upsert("big", points=points[:100])
    rpc.upsert("big", points=many[:100])
    assert rest.count("big").count == 100
    assert sum(end_offsets(broker.bootstrap, node.topic).values()) == sum(before.values()) + 2
    name = uuid.uuid4().hex  # the node still serves after the refusals
    assert rest.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
