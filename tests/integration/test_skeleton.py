"""The walking skeleton end to end: qdrant-client -> HTTP -> Kafka -> faust agent -> rocksdict."""
import threading
import time

import httpx
from qdrant_client import QdrantClient, models

from tests.support import end_offsets

U1 = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"
U2 = "936DA01F9ABD4d9d80C702AF85C822A8"  # simple form of a UUID: same point as hyphenated


def client(server) -> QdrantClient:
    return QdrantClient(url=server.url, prefer_grpc=False, timeout=30)


def test_client_creates_upserts_and_retrieves(server):
    c = client(server)
    c.create_collection("items", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
    assert c.collection_exists("items")
    assert [d.name for d in c.get_collections().collections] == ["items"]

    r = c.upsert("items", points=[
        models.PointStruct(id=1, vector=[1, 2, 3, 4], payload={"color": "red"}),
        models.PointStruct(id=U1, vector=[0.5, 0.5, 0.5, 0.5], payload={"color": "blue"}),
    ])
    assert r.status == models.UpdateStatus.COMPLETED
    r2 = c.upsert("items", points=models.Batch(ids=[2, U2], vectors=[[1, 0, 0, 0], [0, 1, 0, 0]],
                                                 payloads=[{"n": 2}, {"n": 3}]))
    assert r2.operation_id > r.operation_id

    got = c.retrieve("items", [U2.lower(), 2, U1, 1, 12345], with_vectors=True)
    assert [p.id for p in got] == ["936da01f-9abd-4d9d-80c7-02af85c822a8", 2, U1, 1]
    assert got[3].payload == {"color": "red"} and got[3].vector == [1, 2, 3, 4]
    assert got[0].payload == {"n": 3} and got[0].vector == [0, 1, 0, 0]
    assert c.get_collection("items").points_count == 4

    one = httpx.get(f"{server.url}/collections/items/points/{U1}").json()
    assert one["result"]["id"] == U1 and one["result"]["payload"] == {"color": "blue"}


def test_wait_false_is_acknowledged_then_applied(server):
    c = client(server)
    c.create_collection("acks", vectors_config=models.VectorParams(size=2, distance=models.Distance.EUCLID))
    body = {"points": [{"id": 7, "vector": [1.0, 2.0], "payload": {"k": "v"}}]}
    res = httpx.put(f"{server.url}/collections/acks/points", json=body).json()["result"]
    assert res["status"] == "acknowledged" and isinstance(res["operation_id"], int)
    deadline = time.monotonic() + 10
    while not c.retrieve("acks", [7]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert c.retrieve("acks", [7])[0].payload == {"k": "v"}
    # wait=true reports completion of exactly that offset
    res = httpx.put(f"{server.url}/collections/acks/points?wait=true", json=body).json()["result"]
    assert res == {"operation_id": res["operation_id"], "status": "completed"}


def test_restart_resumes_from_stored_offset(server):
    c = client(server)
    c.create_collection("keep", vectors_config={"a": models.VectorParams(size=3, distance=models.Distance.COSINE)})
    for i in range(20):
        c.upsert("keep", points=[models.PointStruct(id=i, vector={"a": [i, 1, 2]}, payload={"i": i})])
    before = c.scroll("keep", limit=100, with_vectors=True)[0]
    server.stop()
    digest = server.digest()
    server.start()
    c = client(server)
    after = c.scroll("keep", limit=100, with_vectors=True)[0]
    assert after == before
    server.stop()
    # Nothing was applied twice: versions and contents are byte-identical.
    assert server.digest() == digest
    server.start()
    r = client(server).upsert("keep", points=[models.PointStruct(id=100, vector={"a": [1, 1, 1]})])
    assert r.status == models.UpdateStatus.COMPLETED and client(server).count("keep").count == 21


def test_bad_input_is_rejected_and_nothing_published(server, broker):
    c = client(server)
    c.create_collection("strict", vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    before = end_offsets(broker.bootstrap, server.topic)
    url = f"{server.url}/collections/strict/points?wait=true"
    cases = [
        (b'{"points": [', "Format error in JSON body"),
        (b'{"points": [{"id": 1, "vector": [1, 2]}]}', "Vector dimension error: expected dim: 3, got 2"),
        (b'{"points": [{"id": -1, "vector": [1, 2, 3]}]}', "not a valid point ID"),
        (b'{"points": [{"id": "abc", "vector": [1, 2, 3]}]}', "not a valid point ID"),
        (b'{"points": [{"id": 1.5, "vector": [1, 2, 3]}]}', "not a valid point ID"),
    ]
    for body, message in cases:
        r = httpx.put(url, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, (body, r.text)
        assert message in r.json()["status"]["error"]
    assert end_offsets(broker.bootstrap, server.topic) == before


def test_kill_mid_ingest_yields_the_same_points(servers, topic):
    """SIGKILL during ingest, restart: the state equals a clean replay of the log."""
    node = servers(topic)
    c = client(node)
    c.create_collection("crash", vectors_config=models.VectorParams(size=8, distance=models.Distance.EUCLID))
    acked = []
    stop = threading.Event()

    def ingest():
        i = 0
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                pts = [{"id": i * 10 + j, "vector": [float(i + j)] * 8, "payload": {"batch": i}} for j in range(10)]
                try:
                    r = http.put(f"{node.url}/collections/crash/points", json={"points": pts})
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    acked.extend(p["id"] for p in pts)
                i += 1

    t = threading.Thread(target=ingest)
    t.start()
    time.sleep(1.0)
    acked_before_kill = len(acked)
    node.kill()
    time.sleep(0.3)
    node.start()
    acked_at_restart = len(acked)
    deadline = time.monotonic() + 15
    while len(acked) <= acked_at_restart and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join()
    # Without these the test could pass having written nothing at all.
    assert acked_before_kill > 0, "no write was acknowledged before the kill"
    assert len(acked) > acked_at_restart, "no write was acknowledged after the restart"
    # A barrier: once this completes, everything published before it is applied.
    c = client(node)
    c.upsert("crash", points=[models.PointStruct(id=10**9, vector=[0.0] * 8)], wait=True)
    ids = {p.id for p in c.scroll("crash", limit=100000)[0]}
    assert set(acked) <= ids
    node.stop()

    clean = servers(topic)  # a second node replays the whole log from offset 0
    clean.wait_caught_up()
    clean.stop()
    assert node.digest() == clean.digest()
