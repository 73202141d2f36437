"""Vector datatypes (`float16`, `uint8`) through the official client, REST and gRPC.

qdrant-client's local mode ignores `datatype` (it stores float32), so the reference here
is Qdrant's own definition (lib/segment/src/data_types/primitive.rs and the metrics in
lib/segment/src/spaces/): a vector is preprocessed for its distance and converted to the
element type, queries the same way; uint8 components are cast like Rust's `f32 as u8`
(truncated, saturated, NaN -> 0) and uint8 Cosine vectors are not normalized but scored
as dot / sqrt(|a|^2 |b|^2)."""
import math
import random
import uuid

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from tests.support import end_offsets

DISTANCES = ["Cosine", "Dot", "Euclid", "Manhattan"]


def as_stored(vector, distance: str, datatype: str) -> np.ndarray:
    if datatype == "uint8":
        return np.array([0 if math.isnan(x) else min(255, max(0, int(x))) for x in vector], dtype=np.float32)
    v = np.asarray(vector, dtype=np.float32)
    if distance == "Cosine":
        v = v / np.float32(np.linalg.norm(v))
    return v.astype(np.float16).astype(np.float32) if datatype == "float16" else v


def score(a: np.ndarray, b: np.ndarray, distance: str, datatype: str) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if distance == "Cosine" and datatype == "uint8":
        norms = float(a @ a) * float(b @ b)
        return 0.0 if norms == 0 else float(a @ b) / math.sqrt(norms)
    if distance in ("Cosine", "Dot"):
        return float(a @ b)
    if distance == "Euclid":
        return float(np.sqrt(np.sum((a - b) ** 2)))
    return float(np.sum(np.abs(a - b)))


def sample(rng: random.Random, datatype: str, dim: int) -> list:
    if datatype == "uint8":  # fractions, negatives and values past 255 show the cast
        return [round(rng.uniform(-20, 300), 3) for _ in range(dim)]
    return [rng.gauss(0, 1) for _ in range(dim)]


@pytest.mark.parametrize("datatype", ["float16", "uint8"])
@pytest.mark.parametrize("distance", DISTANCES)
def test_vectors_are_stored_and_scored_in_their_datatype(module_server, datatype, distance):
    name = f"dt{uuid.uuid4().hex[:8]}"
    client = QdrantClient(url=module_server.url, timeout=30)
    rng = random.Random(f"{datatype}{distance}")
    dim = 12
    client.create_collection(name, vectors_config=models.VectorParams(
        size=dim, distance=distance, datatype=models.Datatype(datatype)))
    raw = {i: sample(rng, datatype, dim) for i in range(150)}
    client.upsert(name, points=[models.PointStruct(id=i, vector=v, payload={"odd": i % 2})
                                for i, v in raw.items()])
    stored = {i: as_stored(v, distance, datatype) for i, v in raw.items()}

    for record in client.retrieve(name, list(range(0, 150, 7)), with_vectors=True):
        np.testing.assert_allclose(record.vector, stored[record.id], rtol=1e-6, atol=1e-7)

    smaller = distance in ("Euclid", "Manhattan")
    for _ in range(4):
        query = sample(rng, datatype, dim)
        q = as_stored(query, distance, datatype)
        for flt in (None, models.Filter(must=[models.FieldCondition(key="odd", match=models.MatchValue(value=1))])):
            ids = [i for i in stored if flt is None or i % 2 == 1]
            want = sorted(((score(stored[i], q, distance, datatype), i) for i in ids),
                          key=lambda t: (t[0] if smaller else -t[0], t[1]))[:10]
            got = client.query_points(name, query=query, query_filter=flt, limit=10).points
            assert [p.id for p in got][:5] == [i for _, i in want][:5]
            for p, (s, _) in zip(got, want):
                assert math.isclose(p.score, s, rel_tol=1e-4, abs_tol=1e-4)


def test_multivectors_use_their_datatype(module_server):
    name = f"dm{uuid.uuid4().hex[:8]}"
    client = QdrantClient(url=module_server.url, timeout=30)
    client.create_collection(name, vectors_config={"m": models.VectorParams(
        size=3, distance="Cosine", datatype=models.Datatype.UINT8,
        multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM))})
    docs = {1: [[1.7, 0, 300], [4, 4, 4]], 2: [[0, 0, 0], [9, -3, 1]], 3: [[250, 1, 1]]}
    client.upsert(name, points=[models.PointStruct(id=i, vector={"m": m}) for i, m in docs.items()])
    record = client.retrieve(name, [1], with_vectors=True)[0]
    assert record.vector["m"] == [[1.0, 0.0, 255.0], [4.0, 4.0, 4.0]]
    query = [[2.9, 1, 1], [0, 0, 5]]
    q = [as_stored(row, "Cosine", "uint8") for row in query]

    def max_sim(doc):
        rows = [as_stored(row, "Cosine", "uint8") for row in doc]
        return sum(max(score(r, qrow, "Cosine", "uint8") for r in rows) for qrow in q)

    got = client.query_points(name, query=query, using="m").points
    want = sorted(docs, key=lambda i: -max_sim(docs[i]))
    assert [p.id for p in got] == want
    for p in got:
        assert math.isclose(p.score, max_sim(docs[p.id]), rel_tol=1e-5)


def test_datatype_is_reported_as_given(module_server):
    client = QdrantClient(url=module_server.url, timeout=30)
    name = f"dr{uuid.uuid4().hex[:8]}"
    client.create_collection(name, vectors_config={
        "half": models.VectorParams(size=2, distance="Dot", datatype=models.Datatype.FLOAT16),
        "plain": models.VectorParams(size=2, distance="Dot")})
    vectors = client.get_collection(name).config.params.vectors
    assert vectors["half"].datatype == models.Datatype.FLOAT16
    assert vectors["plain"].datatype is None


def test_datatype_over_grpc(module_server):
    client = QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True, timeout=30)
    name = f"dg{uuid.uuid4().hex[:8]}"
    client.create_collection(name, vectors_config=models.VectorParams(size=3, distance="Dot",
                                                                      datatype=models.Datatype.UINT8))
    assert client.get_collection(name).config.params.vectors.datatype == models.Datatype.UINT8
    client.upsert(name, points=[models.PointStruct(id=1, vector=[1.9, -4.0, 512.5])])
    assert client.retrieve(name, [1], with_vectors=True)[0].vector == [1.0, 0.0, 255.0]
    hit = client.query_points(name, query=[2.2, 7.0, 0.5]).points[0]
    assert hit.score == 2.0  # [2, 7, 0] . [1, 0, 255]


def test_unknown_datatype_is_refused(module_server):
    name = f"du{uuid.uuid4().hex[:8]}"
    before = end_offsets(module_server.bootstrap, module_server.topic)
    r = httpx.put(f"{module_server.url}/collections/{name}",
                  json={"vectors": {"size": 2, "distance": "Dot", "datatype": "int4"}})
    assert r.status_code == 400 and "datatype" in r.json()["status"]["error"]
    assert end_offsets(module_server.bootstrap, module_server.topic) == before
