"""PATCH /collections/{name}: a logged operation whose diffs GET reports, metadata merged
as local mode merges it, on a real broker and server."""
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.support import end_offsets


def test_updates_are_reported_and_survive_a_restart(server):
    name = f"u{uuid.uuid4().hex[:8]}"
    remote, local = QdrantClient(url=server.url, timeout=30), QdrantClient(":memory:")
    for client in (remote, local):
        client.create_collection(name, vectors_config={"a": models.VectorParams(size=2, distance=models.Distance.DOT)},
                                 metadata={"team": "search", "tier": 1})
        client.update_collection(name, metadata={"tier": 2, "team": None, "owner": {"n": "x"}})
    got, want = remote.get_collection(name).config.metadata, local.get_collection(name).config.metadata
    assert got == want == {"tier": 2, "owner": {"n": "x"}}

    remote.update_collection(name, optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0),
                             hnsw_config=models.HnswConfigDiff(m=32),
                             collection_params=models.CollectionParamsDiff(replication_factor=2),
                             vectors_config={"a": models.VectorParamsDiff(on_disk=True)})
    server.restart()  # the update is state like any other
    info = QdrantClient(url=server.url, timeout=30).get_collection(name)
    assert info.config.optimizer_config.indexing_threshold == 0
    assert info.config.hnsw_config.m == 32
    assert info.config.params.replication_factor == 2
    assert info.config.params.vectors["a"].on_disk is True
    assert info.config.metadata == {"tier": 2, "owner": {"n": "x"}}


def test_bad_updates_publish_nothing(server, broker):
    name = f"u{uuid.uuid4().hex[:8]}"
    httpx.put(f"{server.url}/collections/{name}", json={"vectors": {"size": 2, "distance": "Dot"}}).raise_for_status()
    cases = [
        ({"vectors": {"nope": {"on_disk": True}}}, 400, "Not existing vector name error: nope"),
        ({"params": {"replication_factor": 0}}, 422, "replication_factor"),
        ({"strict_mode_config": {"enabled": True, "write_rate_limit": 5}}, 400, "strict_mode_config.write_rate_limit"),
        ({"strict_mode_config": {"max_query_limit": 0}}, 422, "max_query_limit"),
        ({"sparse_vectors": {"s": {}}}, 400, "sparse_vectors"),
        ({"optimizer_config": {}}, 400, "optimizer_config"),  # a typo: refused, never ignored
    ]
    for body, status, message in cases:
        before = end_offsets(broker.bootstrap, server.topic)
        r = httpx.patch(f"{server.url}/collections/{name}", json=body)
        assert r.status_code == status and message in r.json()["status"]["error"], (body, r.text)
        assert end_offsets(broker.bootstrap, server.topic) == before
    with pytest.raises(UnexpectedResponse) as info:
        QdrantClient(url=server.url).update_collection("no_such_collection", metadata={"a": 1})
    assert info.value.status_code == 404
