"""The error contract: malformed or invalid requests get Qdrant's status code and a
Qdrant-style message in ``{"status": {"error": ...}}``, never a 500, and nothing
reaches the log (the WAL topic's end offset does not move).

Codes and wording follow the Qdrant server: serde failures are 400 ``Format error in
JSON body: ...``, validator failures 422 ``Validation error in JSON body: [...]``,
query strings 400 ``Deserialize error in query parameters: ...``, config mismatches
400 ``Wrong input: ...``, a missing collection or point 404, an existing collection 409.
"""
import json

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.support import end_offsets

P = "/collections/plain"  # 3-dim unnamed Dot vectors; points 1 and 2
N = "/collections/named"  # image: 4-dim Cosine, text: 8-dim Dot; point 1
V3 = [0.1, 0.2, 0.3]
FILTER_RED = {"must": [{"key": "color", "match": {"value": "red"}}]}


def up(*points) -> dict:
    return {"points": list(points)}


def pt(pid, vector=None, **extra) -> dict:
    return {"id": pid, "vector": V3 if vector is None else vector, **extra}


# (name, method, path, body, status, part of the error message)
# body: a dict/list is sent as JSON, bytes as they are, None as no body.
CASES = [
    # -- the body is not the JSON the endpoint takes
    ("truncated JSON", "PUT", P + "/points", b'{"points": [', 400, "Format error in JSON body"),
    ("not JSON at all", "PUT", P + "/points", b"points=1", 400, "Format error in JSON body"),
    ("invalid UTF-8", "PUT", P + "/points", b'{"points": ["\xff"]}', 400, "Format error in JSON body"),
    ("no body", "PUT", P + "/points", None, 400, "Format error in JSON body: EOF while parsing"),
    ("body is a list", "PUT", P + "/points", [pt(1)], 400, "Format error in JSON body"),
    ("neither points nor batch", "PUT", P + "/points", {"ids": [1]}, 400, "Invalid PointInsertOperations format"),
    ("points is an object", "PUT", P + "/points", {"points": pt(1)}, 400, "Format error in JSON body: points"),
    ("point without id", "PUT", P + "/points", up({"vector": V3}), 400, "missing field `id`"),
    ("vector is a string", "PUT", P + "/points", up(pt(1, "0.1,0.2,0.3")), 400, "Format error in JSON body"),
    ("vector holds a string", "PUT", P + "/points", up(pt(1, [0.1, "0.2", 0.3])), 400, "Format error in JSON body"),
    ("vector holds a bool", "PUT", P + "/points", up(pt(1, [0.1, True, 0.3])), 400, "Format error in JSON body"),
    ("vector beyond float32", "PUT", P + "/points", up(pt(1, [1e39, 0.0, 0.0])), 400, "out of float32 range"),
    ("payload is a list", "PUT", P + "/points", up(pt(1, payload=[1, 2])), 400, "Format error in JSON body"),
    ("empty points list", "PUT", P + "/points", {"points": []}, 400, "Wrong input: Empty update request"),
    ("unknown update_mode", "PUT", P + "/points", {**up(pt(1)), "update_mode": "sometimes"}, 400,
     "unknown variant `sometimes`"),
    # -- point ids
    ("negative id", "PUT", P + "/points", up(pt(-1)), 400, "value -1 is not a valid point ID"),
    ("id 2**64", "PUT", P + "/points", b'{"points": [{"id": 18446744073709551616, "vector": [1, 2, 3]}]}', 400,
     "is not a valid point ID"),
    ("float id", "PUT", P + "/points", up(pt(1.5)), 400, "value 1.5 is not a valid point ID"),
    ("numeric string id", "PUT", P + "/points", up(pt("123")), 400, "value 123 is not a valid point ID"),
    ("non-UUID string id", "PUT", P + "/points", up(pt("point-7")), 400, "value point-7 is not a valid point ID"),
    ("boolean id", "PUT", P + "/points", up(pt(True)), 400, "value true is not a valid point ID"),
    ("null id", "PUT", P + "/points", up(pt(None)), 400, "is not a valid point ID"),
    ("bad id in a delete", "POST", P + "/points/delete", {"points": [1, "x"]}, 400, "value x is not a valid point ID"),
    # -- vectors against the collection's config
    ("wrong dimension", "PUT", P + "/points", up(pt(1, [0.1, 0.2])), 400,
     "Wrong input: Vector dimension error: expected dim: 3, got 2"),
    ("empty vector", "PUT", P + "/points", up(pt(1, [])), 400, "Vector dimension error: expected dim: 3, got 0"),
    ("named vector in unnamed collection", "PUT", P + "/points", up(pt(1, {"image": V3})), 400,
     "Wrong input: Not existing vector name error: image"),
    ("unknown vector name", "PUT", N + "/points", up(pt(1, {"audio": V3})), 400,
     "Not existing vector name error: audio"),
    ("named vector, wrong dimension", "PUT", N + "/points", up(pt(1, {"image": V3})), 400,
     "Vector dimension error: expected dim: 4, got 3"),
    ("plain vector in named collection", "PUT", N + "/points", up(pt(1)), 400, "Not existing vector name error: "),
    ("sparse vector for a dense name", "PUT", N + "/points", up(pt(1, {"text": {"indices": [1], "values": [0.5]}})),
     400, "Conversion between sparse and regular vectors failed for vector: text"),
    ("multi-vector for a plain vector", "PUT", P + "/points", up(pt(1, [V3, V3])), 400, "Conversion between multi and regular vectors failed"),
    ("batch: fewer vectors than ids", "PUT", P + "/points", {"batch": {"ids": [1, 2], "vectors": [V3]}}, 422,
     "Validation error in JSON body: [batch: number of ids and vectors must be equal (2 != 1)]"),
    ("batch: fewer payloads than ids", "PUT", P + "/points",
     {"batch": {"ids": [1, 2], "vectors": [V3, V3], "payloads": [{}]}}, 422,
     "number of ids and payloads must be equal (2 != 1)"),
    ("update_vectors without points", "PUT", N + "/points/vectors", {"points": []}, 422,
     "Validation error in JSON body: [points: must specify points to update]"),
    ("update_vectors without vectors", "PUT", N + "/points/vectors", up({"id": 1, "vector": {}}), 422,
     "must specify vectors to update for point"),
    ("update_vectors, unknown name", "PUT", N + "/points/vectors", up(pt(1, {"audio": V3})), 400,
     "Not existing vector name error: audio"),
    ("delete_vectors without names", "POST", N + "/points/vectors/delete", {"points": [1], "vector": []}, 422,
     "Validation error in JSON body: [vector: must specify vector names to delete]"),
    ("delete_vectors, unknown name", "POST", N + "/points/vectors/delete", {"points": [1], "vector": ["audio"]},
     400, "Not existing vector name error: audio"),
    ("shard key", "PUT", P + "/points", {**up(pt(1)), "shard_key": "eu"}, 400, "shard keys are not supported"),
    # -- payload updates and selectors
    ("set_payload without payload", "POST", P + "/points/payload", {"points": [1]}, 400, "missing field `payload`"),
    ("set_payload without selector", "POST", P + "/points/payload", {"payload": {"a": 1}}, 400,
     "needs either `points` (a list of ids) or `filter`"),
    ("payload is a string", "PUT", P + "/points/payload", {"payload": "a=1", "points": [1]}, 400,
     "Format error in JSON body: payload must be a JSON object"),
    ("delete_payload keys not strings", "POST", P + "/points/payload/delete", {"keys": [1], "points": [1]}, 400,
     "keys must be a list of strings"),
    ("clear_payload of no point", "POST", P + "/points/payload/clear", {"points": []}, 400, "Empty update request"),
    # -- filters
    ("unknown condition", "POST", P + "/points/delete", {"filter": {"must": [{"color": "red"}]}}, 400,
     "Format error in JSON body"),
    ("must is a string", "POST", P + "/points/delete", {"filter": {"must": "color"}}, 400, "Format error in JSON body"),
    ("min_should of 0", "POST", P + "/points/count",
     {"filter": {"min_should": {"conditions": [FILTER_RED["must"][0]], "min_count": 0}}}, 422,
     "Validation error in JSON body"),
    ("range over a word", "POST", P + "/points/scroll", {"filter": {"must": [{"key": "n", "range": {"gt": "abc"}}]}},
     400, "Format error in JSON body"),
    ("match without operand", "POST", P + "/points/payload",
     {"payload": {"a": 1}, "filter": {"must": [{"key": "color", "match": {}}]}}, 400, "Format error in JSON body"),
    # -- batches
    ("batch: unknown operation", "POST", P + "/points/batch", {"operations": [{"explode": {"points": [1]}}]}, 400,
     "unknown variant `explode`"),
    ("batch: no operations field", "POST", P + "/points/batch", {"ops": []}, 400, "missing field `operations`"),
    ("batch: invalid inner operation", "POST", P + "/points/batch",
     {"operations": [{"delete": {"points": [2]}}, {"upsert": up(pt(1, [0.1]))}]}, 400,
     "Vector dimension error: expected dim: 3, got 1"),
    # -- reads
    ("scroll limit 0", "POST", P + "/points/scroll", {"limit": 0}, 422,
     "Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]"),
    ("negative scroll limit", "POST", P + "/points/scroll", {"limit": -1}, 400,
     "invalid value: integer `-1`, expected usize"),
    ("scroll limit as string", "POST", P + "/points/scroll", {"limit": "10"}, 400, "Format error in JSON body"),
    ("scroll from a bad id", "POST", P + "/points/scroll", {"offset": -5}, 400, "value -5 is not a valid point ID"),
    ("order_by without index", "POST", P + "/points/scroll", {"order_by": "n"}, 400,
     "No range index for `order_by` key found"),
    ("query limit 0", "POST", P + "/points/query", {"query": V3, "limit": 0}, 422, "must be 1 or larger"),
    ("query, wrong dimension", "POST", P + "/points/query", {"query": [0.1]}, 400,
     "Vector dimension error: expected dim: 3, got 1"),
    ("query, unknown vector", "POST", N + "/points/query", {"query": V3, "using": "audio"}, 400,
     "Not existing vector name error: audio"),
    ("search without vector", "POST", P + "/points/search", {"limit": 3}, 400, "Format error in JSON body"),
    ("retrieve without ids", "POST", P + "/points", {"with_payload": True}, 400, "missing field `ids`"),
    ("retrieve a bad id", "POST", P + "/points", {"ids": [1, -2]}, 400, "value -2 is not a valid point ID"),
    ("get a bad id", "GET", P + "/points/-3", None, 400, "value -3 is not a valid point ID"),
    ("get a missing point", "GET", P + "/points/999", None, 404, "Not found: No point with id 999 found"),
    # -- collections
    ("upsert into missing collection", "PUT", "/collections/nope/points", up(pt(1)), 404,
     "Not found: Collection `nope` doesn't exist!"),
    ("scroll a missing collection", "POST", "/collections/nope/points/scroll", {}, 404,
     "Collection `nope` doesn't exist!"),
    ("get a missing collection", "GET", "/collections/nope", None, 404, "Collection `nope` doesn't exist!"),
    ("create an existing collection", "PUT", P, {"vectors": {"size": 3, "distance": "Dot"}}, 409,
     "Wrong input: Collection `plain` already exists!"),
    ("unknown distance", "PUT", "/collections/fresh", {"vectors": {"size": 3, "distance": "Cosinus"}}, 400,
     "unknown variant `Cosinus`, expected one of `Cosine`, `Euclid`, `Dot`, `Manhattan`"),
    ("vector size 0", "PUT", "/collections/fresh", {"vectors": {"size": 0, "distance": "Dot"}}, 422,
     "Validation error in JSON body: [vectors.size: value 0 invalid, must be from 1 to 65536]"),
    ("vector size missing", "PUT", "/collections/fresh", {"vectors": {"distance": "Dot"}}, 400, "missing field `size`"),
    ("collection config not JSON", "PUT", "/collections/fresh", b"{vectors}", 400, "Format error in JSON body"),
    ("collection without a body", "PUT", "/collections/fresh", None, 400, "Format error in JSON body: EOF"),
    ("name with a colon", "PUT", "/collections/a:b", {"vectors": {"size": 3, "distance": "Dot"}}, 422,
     'collection name cannot contain ":" char'),
    ("custom sharding", "PUT", "/collections/fresh",
     {"vectors": {"size": 3, "distance": "Dot"}, "sharding_method": "custom"}, 400, "custom sharding is not supported"),
    # -- query string
    ("wait=yes", "PUT", P + "/points?wait=yes", up(pt(1)), 400,
     "Deserialize error in query parameters: provided string was not `true` or `false`"),
    ("wait=1", "POST", P + "/points/delete?wait=1", {"points": [1]}, 400, "provided string was not `true` or `false`"),
    ("unknown ordering", "PUT", P + "/points?ordering=fast", up(pt(1)), 400,
     "unknown variant `fast`, expected one of `weak`, `medium`, `strong`"),
    ("timeout not a number", "PUT", P + "/points?wait=true&timeout=soon", up(pt(1)), 400,
     "Deserialize error in query parameters: invalid digit found in string"),
    ("timeout 0", "PUT", P + "/points?wait=true&timeout=0", up(pt(1)), 422,
     "Validation error in query parameters: [timeout: value 0 invalid, must be 1 or larger]"),
    # -- routes
    ("unknown path", "GET", "/nope", None, 404, "Not found: GET /nope is not an endpoint"),
    ("unknown points route", "POST", P + "/points/explode/now", {}, 404, "is not an endpoint"),
    ("POST to a point", "POST", P + "/points/7", {}, 405, "this path accepts GET, HEAD"),
    ("wrong method", "DELETE", P + "/points", None, 405, "Method not allowed: DELETE /collections/plain/points"),
    ("wrong method on a collection", "POST", P, {}, 405, "this path accepts DELETE, GET, HEAD, PATCH, PUT"),
]


@pytest.fixture(scope="module")
def node(module_server):
    server = module_server
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ok = [
            http.put(P, json={"vectors": {"size": 3, "distance": "Dot"}}),
            http.put(N, json={"vectors": {"image": {"size": 4, "distance": "Cosine"},
                                          "text": {"size": 8, "distance": "Dot"}}}),
            http.put(P + "/points?wait=true", json=up(pt(1, payload={"color": "red"}), pt(2))),
            http.put(N + "/points?wait=true", json=up(pt(1, {"image": [1.0, 0.0, 0.0, 0.0]}))),
        ]
        assert all(r.status_code == 200 for r in ok), [r.text for r in ok]
    server.wait_caught_up()
    return server


def _send(http: httpx.Client, method: str, path: str, body) -> httpx.Response:
    if body is None:
        return http.request(method, path)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.request(method, path, content=content, headers={"content-type": "application/json"})


def test_bad_requests_get_qdrant_errors_and_publish_nothing(node, broker):
    assert len(CASES) >= 40
    before = end_offsets(broker.bootstrap, node.topic)
    failures = []
    with httpx.Client(base_url=node.url, timeout=30) as http:
        for name, method, path, body, status, message in CASES:
            r = _send(http, method, path, body)
            try:
                answer = r.json()
            except ValueError:
                failures.append(f"{name}: {r.status_code}, not JSON: {r.text[:200]}")
                continue
            error = answer.get("status", {}).get("error") if isinstance(answer.get("status"), dict) else None
            if r.status_code != status or error is None or message not in error or "result" in answer:
                failures.append(f"{name}: want {status} '{message}', got {r.status_code} {r.text[:300]}")
    assert not failures, "\n".join(failures)
    # Every request above was refused before anything was appended to the log.
    assert end_offsets(broker.bootstrap, node.topic) == before
    with httpx.Client(base_url=node.url, timeout=30) as http:
        points = http.post(P + "/points/scroll", json={"with_payload": True}).json()["result"]["points"]
        assert points == [{"id": 1, "payload": {"color": "red"}}, {"id": 2, "payload": {}}]
        assert http.get("/collections").json()["result"] == {"collections": [{"name": "named"}, {"name": "plain"}]}


WRITE_ROUTES = {("PUT", "points"), ("PUT", "points/vectors"), ("POST", "points/vectors/delete"),
                ("POST", "points/payload"), ("PUT", "points/payload"), ("POST", "points/payload/delete"),
                ("POST", "points/payload/clear"), ("POST", "points/delete"), ("POST", "points/batch")}


def test_every_case_is_refused_with_wait_false_too(node, broker):
    """Validation does not depend on `wait`: the same write requests without it."""
    before = end_offsets(broker.bootstrap, node.topic)
    writes = [c for c in CASES if (c[1], c[2].split("/", 3)[-1]) in WRITE_ROUTES and c[4] in (400, 422)]
    assert len(writes) >= 30
    with httpx.Client(base_url=node.url, timeout=30) as http:
        for name, method, path, body, status, message in writes:
            r = _send(http, method, path + "?wait=false", body)
            assert r.status_code == status, (name, r.text)
            assert message in r.json()["status"]["error"], (name, r.text)
    assert end_offsets(broker.bootstrap, node.topic) == before


def test_errors_found_while_applying_reach_the_waiter(node):
    """Some errors need the data (a missing point): the operation is in the log, and
    a `wait=true` caller gets Qdrant's 404 after the points that exist were updated."""
    with httpx.Client(base_url=node.url, timeout=30) as http:
        http.put(P + "/points?wait=true", json=up(pt(10), pt(11)))
        r = http.post(P + "/points/payload?wait=true", json={"payload": {"k": 1}, "points": [10, 12345, 11]})
        assert r.status_code == 404, r.text
        assert r.json()["status"]["error"] == "Not found: No point with id 12345 found"
        got = http.post(P + "/points", json={"ids": [10, 11]}).json()["result"]
        assert [p["payload"] for p in got] == [{"k": 1}, {"k": 1}]
        r = http.put(P + "/points/vectors?wait=true", json=up(pt(777)))
        assert r.status_code == 404 and "No point with id 777 found" in r.text
        # The same request without waiting is acknowledged: it is valid, only its effect fails.
        r = http.post(P + "/points/payload", json={"payload": {"k": 2}, "points": [12345]})
        assert r.status_code == 200 and r.json()["result"]["status"] == "acknowledged"
        http.post(P + "/points/delete?wait=true", json={"points": [10, 11]})


def test_client_surfaces_the_error(node):
    client = QdrantClient(url=node.url, prefer_grpc=False, timeout=30)
    with pytest.raises(UnexpectedResponse) as raised:
        client.upsert("plain", points=[models.PointStruct(id=5, vector=[0.1, 0.2])])
    assert raised.value.status_code == 400
    assert "Vector dimension error: expected dim: 3, got 2" in raised.value.content.decode()
    with pytest.raises(UnexpectedResponse) as raised:
        client.create_collection("plain", vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    assert raised.value.status_code == 409
    assert not client.collection_exists("nope")
    client.close()
