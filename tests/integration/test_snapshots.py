"""Snapshots with Qdrant's REST shapes and qdrant_client's calls, on a real broker:

- a collection snapshot, taken and downloaded, recovered through the log (over the
  collection itself, into another deployment by upload, by URL from another node)
  gives back the collection's points, config and payload indexes, and every replica
  of the log agrees (same digest);
- a full snapshot, downloaded and recovered into a fresh data dir, gives a node with
  the digest of the original at the snapshot, which then applies the rest of the log
  from the right offset and reaches the original's digest again.
"""
import hashlib
import subprocess
import sys
import uuid

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.support import ROOT, end_offsets


def _fill(client, name, ids, tag="v1"):
    client.upsert(name, points=[models.PointStruct(id=i, vector={"d": [1.0, float(i), 0.5], "s": models.SparseVector(
        indices=[i, i + 7], values=[0.5, 1.5])}, payload={"title": f"running dog {i}", "tag": tag}) for i in ids])


def _make(client, name):
    client.create_collection(name, vectors_config={"d": models.VectorParams(size=3, distance=models.Distance.COSINE,
                                                                           on_disk=True)},
                             sparse_vectors_config={"s": models.SparseVectorParams()},
                             metadata={"owner": "snapshots"})
    client.create_payload_index(name, "title", field_schema=models.TextIndexParams(
        type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.PREFIX))
    _fill(client, name, range(40))


def _everything(client, name) -> list:
    points, _ = client.scroll(name, limit=1000, with_vectors=True)
    return [(p.id, p.payload, p.vector["d"], p.vector["s"].indices, p.vector["s"].values) for p in points]


def _same(got: list, want: list) -> None:
    """Equal points; Cosine vectors within float32 rounding: a recovered upsert
    normalizes the stored (already unit) vector again, which may move a last bit."""
    assert [(p[0], p[1], p[3], p[4]) for p in got] == [(p[0], p[1], p[3], p[4]) for p in want]
    assert np.allclose([p[2] for p in got], [p[2] for p in want], rtol=0, atol=1e-6)


def _digests(*servers) -> list:
    for server in servers:
        server.wait_caught_up()
    return [server.digest() for server in servers]


def test_collection_snapshot_recovered_through_the_log(servers, topic):
    node = servers(topic)
    client = QdrantClient(url=node.url, timeout=60)
    _make(client, "docs")
    before = _everything(client, "docs")
    info = client.get_collection("docs")

    snap = client.create_snapshot("docs")
    assert snap.name.startswith("docs-") and snap.name.endswith(".snapshot") and snap.size > 0
    assert [s.name for s in client.list_snapshots("docs")] == [snap.name]
    url = f"{node.url}/collections/docs/snapshots/{snap.name}"
    data = httpx.get(url).content
    assert hashlib.sha256(data).hexdigest() == snap.checksum

    # Damage the collection, then recover it from the snapshot (served by the node itself).
    client.delete("docs", points_selector=models.PointIdsList(points=list(range(10))))
    _fill(client, "docs", [100, 101], tag="v2")
    client.delete_payload_index("docs", "title")
    assert client.recover_snapshot("docs", location=url, checksum=snap.checksum, wait=True)
    _same(_everything(client, "docs"), before)
    after = client.get_collection("docs")
    assert after.config.params == info.config.params and after.config.metadata == {"owner": "snapshots"}
    assert after.payload_schema["title"].params.tokenizer == models.TokenizerType.PREFIX
    hits = client.scroll("docs", scroll_filter=models.Filter(must=[models.FieldCondition(
        key="title", match=models.MatchText(text="runn"))]), limit=100)[0]
    assert len(hits) == 40  # the prefix index is back

    # The collection takes writes after the recovery, and a replica started afterwards
    # (its own data dir, the whole log from offset 0) agrees with the node, byte for byte.
    _fill(client, "docs", [200], tag="v3")
    replica = servers(topic)
    assert _digests(node, replica)[0] == _digests(node, replica)[1]
    assert len(_everything(QdrantClient(url=replica.url), "docs")) == 41


def test_collection_snapshot_moves_to_another_deployment(servers, topic):
    source = servers(topic)
    client = QdrantClient(url=source.url, timeout=60)
    _make(client, "docs")
    snap = client.create_snapshot("docs")
    data = httpx.get(f"{source.url}/collections/docs/snapshots/{snap.name}").content

    # A fresh node on its own log: upload the file (multipart, as qdrant_client's docs do it).
    other = servers(f"pointlog.test.{uuid.uuid4().hex[:12]}")
    r = httpx.post(f"{other.url}/collections/copy/snapshots/upload?wait=true&checksum={snap.checksum}",
                   files={"snapshot": (snap.name, data)}, timeout=60)
    assert r.status_code == 200 and r.json()["result"] is True, r.text
    target = QdrantClient(url=other.url, timeout=60)
    _same(_everything(target, "copy"), _everything(client, "docs"))
    # ... or by URL from the node that took it, through the gRPC door's client too.
    grpc = QdrantClient(url=other.url, grpc_port=other.grpc_port, prefer_grpc=True, timeout=60)
    target.recover_snapshot("copy2", location=f"{source.url}/collections/docs/snapshots/{snap.name}")
    _same(_everything(grpc, "copy2"), _everything(client, "docs"))
    # A file:// location in the node's own snapshot directory.
    taken = target.create_snapshot("copy2")
    path = f"{other.data_dir}/snapshots/collections/copy2/{taken.name}"
    target.recover_snapshot("copy3", location=f"file://{path}")
    _same(_everything(target, "copy3"), _everything(client, "docs"))


def test_full_snapshot_restores_a_fresh_node(servers, topic, tmp_path):
    node = servers(topic)
    client = QdrantClient(url=node.url, timeout=60)
    _make(client, "a")
    _make(client, "b")
    full = client.create_full_snapshot()
    at_snapshot = _digests(node)[0]
    assert [s.name for s in client.list_full_snapshots()] == [full.name]
    data = httpx.get(f"{node.url}/snapshots/{full.name}").content
    assert hashlib.sha256(data).hexdigest() == full.checksum
    # The log goes on after the snapshot.
    _fill(client, "a", [500, 501], tag="after")
    client.delete("b", points_selector=models.PointIdsList(points=[1, 2, 3]))

    file = tmp_path / full.name
    file.write_bytes(data)
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "api.cli", "recover-snapshot", str(file), "--data-dir", str(fresh)],
                   check=True, cwd=ROOT, capture_output=True)
    digest = subprocess.run([sys.executable, "-m", "api.cli", "digest", "--data-dir", str(fresh)], check=True,
                            cwd=ROOT, capture_output=True, text=True).stdout
    assert digest == at_snapshot  # exactly the state at the snapshot's offsets
    restored = servers(topic, data_dir=str(fresh))  # resumes the log after them
    assert _digests(node, restored)[0] == _digests(node, restored)[1]
    assert len(_everything(QdrantClient(url=restored.url), "a")) == 42


def test_snapshot_management_and_refusals(server, broker, tmp_path):
    client = QdrantClient(url=server.url, timeout=60)
    _make(client, "docs")
    first, second = client.create_snapshot("docs"), client.create_snapshot("docs")
    assert sorted(s.name for s in client.list_snapshots("docs")) == sorted([first.name, second.name])
    assert client.delete_snapshot("docs", first.name)
    assert [s.name for s in client.list_snapshots("docs")] == [second.name]
    with pytest.raises(UnexpectedResponse) as info:
        client.delete_snapshot("docs", first.name)
    assert info.value.status_code == 404
    assert httpx.get(f"{server.url}/collections/docs/snapshots/..%2Fsecret.snapshot").status_code == 404
    assert httpx.get(f"{server.url}/collections/nope/snapshots").status_code == 404

    url = f"{server.url}/collections/docs/snapshots/{second.name}"
    before = end_offsets(broker.bootstrap, server.topic)
    cases = [({"location": url, "checksum": "0" * 64}, "Snapshot checksum mismatch"),
             ({"location": url, "priority": "replica"}, "priority `replica`"),
             ({"location": "file:///etc/passwd"}, "must be in the snapshots directory"),
             ({"location": "ftp://x/y.snapshot"}, "file:// or http(s)://"),
             ({"location": url, "wait": True}, "unknown field `wait`")]
    full = client.create_full_snapshot()
    cases.append(({"location": f"{server.url}/snapshots/{full.name}"}, "not a pointlog collection snapshot"))
    for body, message in cases:
        r = httpx.put(f"{server.url}/collections/docs/snapshots/recover", json=body)
        assert r.status_code == 400 and message in r.json()["status"]["error"], (body, r.text)
    assert end_offsets(broker.bootstrap, server.topic) == before  # nothing published

    grpc = QdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=True, timeout=60)
    made = grpc.create_snapshot("docs")
    assert made.name in [s.name for s in grpc.list_snapshots("docs")]
    grpc.delete_snapshot("docs", made.name)
    assert made.name not in [s.name for s in client.list_snapshots("docs")]
    assert grpc.delete_full_snapshot(full.name)
    assert client.list_full_snapshots() == []
