"""`optimizers_config.indexing_threshold` (kilobytes of vectors, as in Qdrant; 0: never)
moves a collection's Annoy threshold, at creation and by PATCH, and
`indexed_vectors_count` reports the vectors an index covers, as Qdrant does."""
import time
import uuid

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.support import metric


def _fill(client, name, n, dim=64):
    rng = np.random.default_rng(7)
    client.upsert(name, points=models.Batch(ids=list(range(n)), vectors=rng.random((n, dim)).tolist()), wait=True)


def _wait_indexed(client, name, want, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get_collection(name)
        if info.indexed_vectors_count == want:
            return info
        time.sleep(0.3)
    raise AssertionError(f"indexed_vectors_count stayed {info.indexed_vectors_count}, wanted {want}")


def test_threshold_at_creation_and_by_patch(module_server):
    client = QdrantClient(url=module_server.url, timeout=30)
    low = f"i{uuid.uuid4().hex[:8]}"
    # 64 float32 = 256 bytes a vector: 10 kB are 40 vectors.
    client.create_collection(low, vectors_config=models.VectorParams(size=64, distance=models.Distance.COSINE),
                             optimizers_config=models.OptimizersConfigDiff(indexing_threshold=10))
    _fill(client, low, 39)
    time.sleep(2.5)  # the indexer looks every second: nothing to do below the threshold
    assert client.get_collection(low).indexed_vectors_count == 0
    _fill(client, low, 100)
    info = _wait_indexed(client, low, 100)
    assert info.config.optimizer_config.indexing_threshold == 10
    assert metric(module_server, f'pointlog_index_vectors{{collection="{low}",vector=""}}') == 100

    # The node's default threshold (20000 vectors) leaves this one unindexed until a PATCH lowers it.
    late = f"i{uuid.uuid4().hex[:8]}"
    client.create_collection(late, vectors_config=models.VectorParams(size=64, distance=models.Distance.DOT))
    _fill(client, late, 100)
    time.sleep(2.5)
    assert client.get_collection(late).indexed_vectors_count == 0
    client.update_collection(late, optimizer_config=models.OptimizersConfigDiff(indexing_threshold=1))
    _wait_indexed(client, late, 100)


def test_zero_turns_indexing_off(module_server):
    client = QdrantClient(url=module_server.url, timeout=30)
    name = f"i{uuid.uuid4().hex[:8]}"
    client.create_collection(name, vectors_config=models.VectorParams(size=64, distance=models.Distance.DOT),
                             optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0))
    _fill(client, name, 300)
    time.sleep(2.5)
    assert client.get_collection(name).indexed_vectors_count == 0
    # Search stays exact and finds every point.
    hits = client.query_points(name, query=[1.0] * 64, limit=300).points
    assert len(hits) == 300


def test_sparse_vectors_count_as_indexed(module_server):
    client = QdrantClient(url=module_server.url, timeout=30)
    name = f"i{uuid.uuid4().hex[:8]}"
    client.create_collection(name, vectors_config={}, sparse_vectors_config={"s": models.SparseVectorParams()})
    client.upsert(name, points=[models.PointStruct(id=i, vector={"s": models.SparseVector(indices=[i], values=[1.0])})
                                for i in range(5)], wait=True)
    assert client.get_collection(name).indexed_vectors_count == 5


def test_bad_threshold_is_refused(module_server):
    name = f"i{uuid.uuid4().hex[:8]}"
    r = httpx.put(f"{module_server.url}/collections/{name}", json={
        "vectors": {"size": 2, "distance": "Dot"}, "optimizers_config": {"indexing_threshold": -1}})
    assert r.status_code == 400 and "indexing_threshold" in r.json()["status"]["error"]
    with pytest.raises(UnexpectedResponse):
        QdrantClient(url=module_server.url).get_collection(name)
