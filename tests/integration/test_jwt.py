"""JWT access tokens (Qdrant's RBAC) on REST and gRPC, through the official client:
tokens signed with the API key, global "r"/"m" and per-collection "r"/"rw" access,
`exp`, `value_exists`, and Qdrant's 401/403 answers. Nothing refused is published."""
import time
import uuid

import grpc
import httpx
import jwt
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.support import end_offsets

KEY = "jwt-key-" + uuid.uuid4().hex


def token(claims: dict, key: str = KEY) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


@pytest.fixture(scope="module")
def node(broker, tmp_path_factory):
    from tests.support import Server, free_port
    topic = f"pointlog.test.{uuid.uuid4().hex[:12]}"
    server = Server(broker.bootstrap, topic, str(tmp_path_factory.mktemp("jwt") / "node"), free_port(),
                    env={"POINTLOG_API_KEY": KEY, "POINTLOG_JWT_RBAC": "true"})
    server.start()
    admin = client(server, KEY, False)
    for name in ("open_c", "shut_c", "users"):
        admin.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        admin.upsert(name, points=[models.PointStruct(id=1, vector=[1.0, 2.0], payload={"user": "alice"})])
    yield server
    server.kill()


def client(server, key, grpc_: bool) -> QdrantClient:
    return QdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=grpc_, api_key=key, timeout=30,
                        https=False)


def status(call) -> int:
    """The REST status or gRPC code of a refused call."""
    try:
        call()
    except UnexpectedResponse as exc:
        return exc.status_code
    except grpc.RpcError as exc:
        return {grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403}[exc.code()]
    return 200


@pytest.mark.parametrize("via_grpc", [False, True], ids=["rest", "grpc"])
def test_collection_tokens(node, broker, via_grpc):
    rw_open = client(node, token({"access": [{"collection": "open_c", "access": "rw"},
                                             {"collection": "users", "access": "r"}]}), via_grpc)
    before = end_offsets(broker.bootstrap, node.topic)
    point = [models.PointStruct(id=2, vector=[2.0, 1.0])]
    # Its own collections: read and write as granted.
    rw_open.upsert("open_c", points=point)
    assert rw_open.count("open_c").count == 2
    assert rw_open.count("users").count == 1
    assert status(lambda: rw_open.upsert("users", points=point)) == 403
    # Others: neither, and they are not listed.
    assert status(lambda: rw_open.count("shut_c")) == 403
    assert status(lambda: rw_open.upsert("shut_c", points=point)) == 403
    assert sorted(c.name for c in rw_open.get_collections().collections) == ["open_c", "users"]
    # Managing collections needs global manage access.
    assert status(lambda: rw_open.delete_collection("open_c")) == 403
    assert status(lambda: rw_open.create_collection(
        "new_c", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))) == 403
    # A query that reads another collection needs access to it too.
    assert status(lambda: rw_open.query_points("open_c", query=1, lookup_from=models.LookupLocation(
        collection="shut_c"))) == 403
    assert rw_open.query_points("open_c", query=1, lookup_from=models.LookupLocation(collection="users")).points
    after = end_offsets(broker.bootstrap, node.topic)
    assert sum(after.values()) - sum(before.values()) == 1  # only the allowed upsert was published


@pytest.mark.parametrize("via_grpc", [False, True], ids=["rest", "grpc"])
def test_global_tokens_and_expiry(node, via_grpc):
    now = int(time.time())
    reader = client(node, token({"access": "r", "exp": now + 600}), via_grpc)
    manager = client(node, token({"access": "m"}), via_grpc)
    assert {c.name for c in reader.get_collections().collections} >= {"open_c", "shut_c", "users"}
    assert reader.count("shut_c").count >= 1
    assert status(lambda: reader.upsert("shut_c", points=[models.PointStruct(id=3, vector=[1.0, 1.0])])) == 403
    name = f"made_{uuid.uuid4().hex[:6]}"
    assert manager.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    assert manager.delete_collection(name)
    # Expired beyond the 30 s leeway, or signed with another key: 403, as in Qdrant.
    assert status(lambda: client(node, token({"access": "m", "exp": now - 60}), via_grpc).count("users")) == 403
    assert status(lambda: client(node, token({"access": "m"}, key="other-key-" * 4), via_grpc).count("users")) == 403
    assert status(lambda: client(node, "not-a-jwt", via_grpc).count("users")) == 401


def test_rest_messages(node):
    expired = token({"access": "r", "exp": int(time.time()) - 60})
    r = httpx.post(node.url + "/collections/users/points/count", json={}, headers={"api-key": expired})
    assert (r.status_code, r.text) == (403, "ExpiredSignature")
    r = httpx.get(node.url + "/collections", headers={"authorization": "Bearer nonsense"})
    assert (r.status_code, r.text) == (401, "Invalid API key or JWT")
    only_users = token({"access": [{"collection": "users", "access": "r"}]})
    r = httpx.post(node.url + "/collections/shut_c/points/count", json={}, headers={"api-key": only_users})
    assert r.status_code == 403
    assert r.json()["status"]["error"] == "Forbidden: Access to collection shut_c is required"
    r = httpx.put(node.url + "/collections/users/points", json={"points": [{"id": 5, "vector": [1, 1]}]},
                  headers={"api-key": only_users})
    assert r.json()["status"]["error"] == "Forbidden: Write access to collection users is required"
    r = httpx.get(node.url + "/metrics", headers={"api-key": only_users})
    assert (r.status_code, r.json()["status"]["error"]) == (403, "Forbidden: Global access is required")
    bad = token({"access": [{"collection": "users", "access": "x"}]})
    assert httpx.get(node.url + "/collections", headers={"api-key": bad}).status_code == 401
    assert KEY not in node.tail_log(100_000)


@pytest.mark.parametrize("via_grpc", [False, True], ids=["rest", "grpc"])
def test_value_exists(node, via_grpc):
    """A token valid while a point with those payload values exists: deleting the
    point revokes it (401), and a missing collection is a 403, as in Qdrant."""
    user = f"u{uuid.uuid4().hex[:6]}"
    admin = client(node, KEY, False)
    pid = abs(hash(user)) % 10**9 + 10
    admin.upsert("users", points=[models.PointStruct(id=pid, vector=[1.0, 1.0], payload={"user": user})], wait=True)
    claims = {"access": "r", "value_exists": {"collection": "users", "matches": [{"key": "user", "value": user}]}}
    holder = client(node, token(claims), via_grpc)
    assert holder.count("open_c").count >= 1
    admin.delete("users", points_selector=models.PointIdsList(points=[pid]), wait=True)
    assert status(lambda: holder.count("open_c")) == 401
    gone = {**claims, "value_exists": {"collection": "no_such", "matches": [{"key": "user", "value": user}]}}
    assert status(lambda: client(node, token(gone), via_grpc).count("open_c")) == 403
