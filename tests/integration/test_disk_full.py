"""A full disk under the node's state (a real one: a small tmpfs as its data dir).

When RocksDB refuses a commit the applier stops, and memory does not run ahead of
the disk (reads answer from the last commit); /readyz says not ready and why;
writes get 503 and nothing is published. Once the disk has room again, a restart
resumes from the committed offsets: nothing lost, nothing applied twice (the digest
equals a clean rebuild from the log).
"""
import subprocess

import grpc
import httpx
import pytest
from qdrant_client import QdrantClient, models

from tests.support import Server, end_offsets, free_port, metric, rebuilt_digest

SMALL = "3m"  # room to start and to commit a few hundred points, not the whole ingest
PAYLOAD = "x" * 2000


def mount_tmpfs(path: str, size: str, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    path = tmp_path / "disk"
    path.mkdir()
    try:
        mount_tmpfs(str(path), SMALL)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"a full disk needs a tmpfs mount (root): {exc}")
    yield str(path)
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_stops_the_applier_and_a_restart_resumes(own_broker, small_disk, tmp_path):
    topic = "diskfull.ops"
    server = Server(own_broker.bootstrap, topic, small_disk, free_port())
    server.start()
    http = httpx.Client(base_url=server.url, timeout=30)
    try:
        assert http.put("/collections/c", json={"vectors": {"size": 2, "distance": "Dot"}}).status_code == 200
        completed, failing = [], None
        for n in range(2000):
            ids = list(range(n * 20, n * 20 + 20))
            body = {"points": [{"id": i, "vector": [1.0, float(i)], "payload": {"p": PAYLOAD}} for i in ids]}
            r = http.put("/collections/c/points?wait=true", json=body)
            if r.status_code == 200 and r.json()["result"]["status"] == "completed":
                completed += ids
                continue
            # In the log (Kafka acknowledged it), but the commit that applies it was
            # refused: a 503 for the waiter, or "acknowledged" (true, and no more) if
            # the failure came while Kafka's acknowledgement was on its way.
            assert r.status_code == 503 or r.json()["result"]["status"] == "acknowledged", r.text
            failing = ids
            break
        assert failing is not None, "the disk never filled up"
        if r.status_code == 503:
            assert "No space left on device" in r.json()["status"]["error"]

        # Not ready, and why.
        ready = http.get("/readyz")
        assert ready.status_code == 503 and "No space left on device" in ready.text, ready.text
        assert http.get("/healthz").status_code == 200  # alive: it answers, it just cannot apply
        assert metric(server, "pointlog_applier_stopped") == 1

        # Reads answer from the last commit: exactly the completed writes, nothing of the failed group.
        count = http.post("/collections/c/points/count", json={"exact": True}).json()["result"]["count"]
        assert count == len(completed)
        got = http.post("/collections/c/points", json={"ids": failing[:3]}).json()["result"]
        assert got == []

        # Writes are refused before they reach the log.
        ends = end_offsets(own_broker.bootstrap, topic)
        for wait in ("true", "false"):
            r = http.put(f"/collections/c/points?wait={wait}", json={"points": [{"id": 10**9, "vector": [1, 2]}]})
            assert r.status_code == 503 and "No space left on device" in r.json()["status"]["error"], r.text
        assert http.delete("/collections/c").status_code == 503
        client = QdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=True, timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            client.upsert("c", points=[models.PointStruct(id=10**9, vector=[1.0, 2.0])])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and "No space" in refused.value.details()
        assert client.count("c").count == len(completed)  # reads go on through gRPC too
        assert end_offsets(own_broker.bootstrap, topic) == ends

        server.stop()
        assert server.proc.returncode == 0, server.tail_log()
        print(f"\ndisk full: {len(completed)} points committed, the commit of {len(failing)} more refused; "
              f"log end {ends}")

        # Room again: the restart resumes after the last commit.
        mount_tmpfs(small_disk, "64m", remount=True)
        server.start()
        server.wait_caught_up()
        assert http.get("/readyz").status_code == 200 and metric(server, "pointlog_applier_stopped") == 0
        count = http.post("/collections/c/points/count", json={"exact": True}).json()["result"]["count"]
        assert count == len(completed) + len(failing)
        r = http.put("/collections/c/points?wait=true", json={"points": [{"id": 10**9, "vector": [1, 2]}]})
        assert r.json()["result"]["status"] == "completed"
    finally:
        server.stop()
        server.kill()

    node_digest = server.digest()
    rebuilt = rebuilt_digest(own_broker.bootstrap, topic, str(tmp_path / "rebuilt"))
    assert node_digest == rebuilt and "\t" in node_digest
