"""Qdrant's gRPC API (port 6334) against a real server and broker.

The unmodified qdrant-client drives the same calls through gRPC (``prefer_grpc=True``),
through REST, and through its local mode; answers must agree. A gRPC write must
publish the very record its REST twin publishes, and a refused request nothing.

DEVIATION (qdrant-client's gRPC conversion, not the server): a record's empty payload
comes back as ``{}`` from Get/Scroll and as ``None`` from scored points, whatever
``with_payload`` said; ``_norm`` treats an empty payload and no payload alike.
"""
import asyncio
import time

import grpc
import msgpack
import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client import grpc as pb
from qdrant_client.grpc import collections_service_pb2_grpc, points_service_pb2_grpc, qdrant_pb2_grpc

from streams.replay import read_range
from tests.support import end_offsets

pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")

NAMED = {"image": models.VectorParams(size=4, distance=models.Distance.COSINE),
         "text": models.VectorParams(size=3, distance=models.Distance.EUCLID)}
PLAIN = models.VectorParams(size=3, distance=models.Distance.DOT)


def grpc_client(server) -> QdrantClient:
    return QdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=True, timeout=30)


def rest_client(server) -> QdrantClient:
    return QdrantClient(url=server.url, prefer_grpc=False, timeout=30)


# ---- comparing answers -------------------------------------------------------------

def _vec(v):
    if isinstance(v, dict):
        return {k: _vec(x) for k, x in sorted(v.items())}
    return None if v is None else [round(float(x), 5) for x in np.asarray(v, dtype=np.float32)]


def _norm(value):
    """A client answer as plain data, vectors rounded, empty payload == no payload."""
    if isinstance(value, tuple):
        return tuple(_norm(v) for v in value)
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, models.ScoredPoint):
        return {"id": value.id, "payload": value.payload or None, "vector": _vec(value.vector),
                "score": round(value.score, 4)}
    if isinstance(value, models.Record):
        return {"id": value.id, "payload": value.payload or None, "vector": _vec(value.vector)}
    if hasattr(value, "points") and isinstance(value.points, list):  # QueryResponse
        return _norm(value.points)
    if isinstance(value, models.CountResult):
        return value.count
    return value


class Trio:
    """The same call through gRPC, REST and local mode, each on its own collection of
    one name (gRPC and REST share the server, so theirs carry a prefix)."""

    def __init__(self, server):
        self.g, self.r, self.local = grpc_client(server), rest_client(server), QdrantClient(":memory:")

    def each(self, name: str):
        return [(self.g, "g_" + name), (self.r, "r_" + name), (self.local, name)]

    def create(self, name: str, config) -> None:
        for client, col in self.each(name):
            assert client.create_collection(col, vectors_config=config)

    def call(self, method: str, name: str, **kwargs):
        answers = [getattr(client, method)(col, **kwargs) for client, col in self.each(name)]
        return answers

    def same(self, method: str, name: str, **kwargs):
        """Reads: all three answers equal."""
        g, r, local = self.call(method, name, **kwargs)
        assert _norm(g) == _norm(r) == _norm(local), (method, kwargs)
        return g

    def write(self, method: str, name: str, **kwargs):
        """Writes: both server answers completed, then the three states equal."""
        g, r, _ = self.call(method, name, wait=True, **kwargs)
        for result in (g, r):
            for res in result if isinstance(result, list) else [result]:
                assert res.status == models.UpdateStatus.COMPLETED, (method, res)
        self.same("scroll", name, limit=100, with_payload=True, with_vectors=True)
        return g


@pytest.fixture(scope="module")
def trio(module_server):
    return Trio(module_server)


def _points():
    rng = np.random.default_rng(7)
    out = []
    for i in range(12):
        pid = i if i % 3 else f"00000000-0000-0000-0000-{i:012d}"
        out.append(models.PointStruct(id=pid, vector={"image": rng.random(4).tolist(), "text": rng.random(3).tolist()},
                                      payload={"n": i, "color": ["red", "blue", "green"][i % 3], "f": i / 4,
                                               "tags": ["a", "b"][: i % 3], "nested": {"x": None, "y": [1, 2.5]}}))
    return out


RED = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))])


def test_health_and_collections(module_server):
    g, r = grpc_client(module_server), rest_client(module_server)
    assert g.info().title == r.info().title and g.info().version == r.info().version
    assert g.create_collection("c_grpc", vectors_config=NAMED)
    assert g.collection_exists("c_grpc") and not g.collection_exists("c_nope")
    assert "c_grpc" in [c.name for c in g.get_collections().collections]
    got, want = g.get_collection("c_grpc"), r.get_collection("c_grpc")
    assert got.config.params.vectors == want.config.params.vectors
    assert got.points_count == want.points_count == 0
    assert got.config.hnsw_config == want.config.hnsw_config
    with pytest.raises(grpc.RpcError) as raised:
        g.create_collection("c_grpc", vectors_config=NAMED)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert raised.value.details() == "Wrong input: Collection `c_grpc` already exists!"
    assert g.delete_collection("c_grpc")
    assert not g.delete_collection("c_grpc")
    assert not r.collection_exists("c_grpc")


def test_points_through_grpc_rest_and_local_agree(trio):
    t = trio
    t.create("pts", NAMED)
    points = _points()
    t.write("upsert", "pts", points=points[:6])
    t.write("upsert", "pts", points=models.Batch(ids=[p.id for p in points[6:]],
                                                vectors={"image": [p.vector["image"] for p in points[6:]],
                                                         "text": [p.vector["text"] for p in points[6:]]},
                                                payloads=[p.payload for p in points[6:]]))
    ids = [1, 2, "00000000-0000-0000-0000-000000000003", 999]
    t.same("retrieve", "pts", ids=ids, with_payload=True, with_vectors=True)
    t.same("retrieve", "pts", ids=ids, with_payload=["color", "nested.y"], with_vectors=["text"])
    t.same("retrieve", "pts", ids=ids, with_payload=models.PayloadSelectorExclude(exclude=["nested"]))
    t.same("scroll", "pts", limit=5, scroll_filter=RED, with_payload=True)
    t.same("scroll", "pts", limit=4, offset=5, with_vectors=True)
    t.same("count", "pts", count_filter=RED, exact=True)
    t.same("count", "pts", count_filter=models.Filter(should=[
        models.FieldCondition(key="n", range=models.Range(gte=3, lt=7)),
        models.HasIdCondition(has_id=[10, 11])]), exact=True)
    q = [0.3, 0.1, 0.8, 0.2]
    t.same("query_points", "pts", query=q, using="image", limit=5, with_payload=True)
    t.same("query_points", "pts", query=q, using="image", limit=3, offset=2, query_filter=RED, with_vectors=True,
           search_params=models.SearchParams(exact=True))
    t.same("query_points", "pts", query=2, using="text", limit=4, score_threshold=0.5)
    t.same("query_batch_points", "pts", requests=[
        models.QueryRequest(query=q, using="image", limit=3),
        models.QueryRequest(query=[1.0, 0.0, 0.0], using="text", limit=2, filter=RED, with_payload=True)])

    # Every update kind.
    t.write("update_vectors", "pts", points=[models.PointVectors(id=1, vector={"text": [0.5, 0.5, 0.5]})])
    t.write("delete_vectors", "pts", points=[2, 4], vectors=["image"])
    t.write("set_payload", "pts", payload={"k": {"deep": True}}, points=[1, 5])
    t.write("set_payload", "pts", payload={"z": 1}, key="nested", points=RED)
    t.write("overwrite_payload", "pts", payload={"only": "this", "none": None}, points=[7])
    t.write("delete_payload", "pts", keys=["tags", "nested.y"], points=models.FilterSelector(filter=RED))
    t.write("clear_payload", "pts", points_selector=[8])
    t.write("delete", "pts", points_selector=[9])
    t.write("delete", "pts", points_selector=models.FilterSelector(filter=models.Filter(
        must=[models.FieldCondition(key="n", range=models.Range(gt=10))])))
    results = t.write("batch_update_points", "pts", update_operations=[
        models.UpsertOperation(upsert=models.PointsList(points=[models.PointStruct(
            id=20, vector={"image": [1, 0, 0, 0], "text": [0, 1, 0]}, payload={"b": 1})])),
        models.SetPayloadOperation(set_payload=models.SetPayload(payload={"c": 2}, points=[20])),
        models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(points=[
            models.PointVectors(id=20, vector={"text": [0, 0, 1]})])),
        models.DeleteVectorsOperation(delete_vectors=models.DeleteVectors(points=[20], vector=["image"])),
        models.OverwritePayloadOperation(overwrite_payload=models.SetPayload(payload={"d": 3}, points=[1])),
        models.DeletePayloadOperation(delete_payload=models.DeletePayload(keys=["d"], points=[1])),
        models.ClearPayloadOperation(clear_payload=models.PointIdsList(points=[4])),
        models.DeleteOperation(delete=models.PointIdsList(points=[6])),
    ])
    assert len(results) == 8 and len({r.operation_id for r in results}) == 1
    t.same("scroll", "pts", limit=100, with_payload=True, with_vectors=True)

    # Field indexes are declared and reported as the payload schema.
    for client, col in t.each("pts")[:2]:
        client.create_payload_index(col, "color", models.PayloadSchemaType.KEYWORD, wait=True)
        client.create_payload_index(col, "n", models.IntegerIndexParams(type="integer", lookup=True, range=True),
                                    wait=True)
    g_schema = t.g.get_collection("g_pts").payload_schema
    assert g_schema == t.r.get_collection("r_pts").payload_schema
    assert g_schema["color"].data_type == models.PayloadSchemaType.KEYWORD and g_schema["n"].points > 0
    assert t.g.delete_payload_index("g_pts", "color", wait=True).status == models.UpdateStatus.COMPLETED
    assert set(t.g.get_collection("g_pts").payload_schema) == {"n"}


def test_plain_collection_and_conditional_upsert(trio):
    t = trio
    t.create("plain", PLAIN)
    t.write("upsert", "plain", points=[models.PointStruct(id=i, vector=[i, 1.0, -i / 2], payload={"i": i})
                                       for i in range(6)])
    t.write("upsert", "plain", points=[models.PointStruct(id=i, vector=[0.0, i / 10, 1.0], payload={"i": -i})
                                       for i in range(3, 9)],
            update_filter=models.Filter(must=[models.FieldCondition(key="i", range=models.Range(gte=4))]))
    t.write("update_vectors", "plain", points=[models.PointVectors(id=i, vector=[1.0, 2.0, 3.0]) for i in (0, 1)],
            update_filter=models.Filter(must=[models.FieldCondition(key="i", match=models.MatchValue(value=1))]))
    t.same("query_points", "plain", query=[0.2, 0.4, 0.1], limit=10, with_payload=True, with_vectors=True)
    t.same("query_points", "plain", query=models.NearestQuery(nearest=[1.0, 0.0, 0.0]), limit=3)


def test_wait_false_is_acknowledged_then_applied(module_server):
    g = grpc_client(module_server)
    g.create_collection("nowait", vectors_config=PLAIN)
    result = g.upsert("nowait", points=[models.PointStruct(id=1, vector=[1, 2, 3])], wait=False)
    assert result.status == models.UpdateStatus.ACKNOWLEDGED and result.operation_id >= 0
    deadline = time.monotonic() + 10
    while not g.retrieve("nowait", [1]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p.id for p in g.retrieve("nowait", [1])] == [1]
    done = g.upsert("nowait", points=[models.PointStruct(id=2, vector=[1, 2, 3])], wait=True)
    assert done.status == models.UpdateStatus.COMPLETED and done.operation_id > result.operation_id


# ---- the WAL --------------------------------------------------------------------------

def _records(bootstrap: str, topic: str) -> list:
    """Every record of the topic's one partition, read back with aiokafka."""
    end = end_offsets(bootstrap, topic)[0]
    return asyncio.run(read_range(bootstrap, topic, 0, 0, end))


def test_grpc_and_rest_writes_publish_the_same_records(server):
    g, r = grpc_client(server), rest_client(server)
    r.create_collection("wal", vectors_config=NAMED)
    points = _points()
    calls = [
        ("upsert", {"points": points}),
        ("upsert", {"points": points[:3], "update_filter": RED}),
        ("set_payload", {"payload": {"a": [1, 2.0, None, {"b": True}]}, "points": [1, 2], "key": "k"}),
        ("overwrite_payload", {"payload": {"o": "x"}, "points": RED}),
        ("delete_payload", {"keys": ["o", "n"], "points": [1]}),
        ("clear_payload", {"points_selector": [2]}),
        ("update_vectors", {"points": [models.PointVectors(id=1, vector={"text": [1, 2, 3]})]}),
        ("delete_vectors", {"points": [1], "vectors": ["text"]}),
        ("delete", {"points_selector": models.FilterSelector(filter=RED)}),
        ("create_payload_index", {"field_name": "color", "field_schema": models.PayloadSchemaType.KEYWORD}),
        ("delete_payload_index", {"field_name": "color"}),
        ("batch_update_points", {"update_operations": [
            models.UpsertOperation(upsert=models.PointsList(points=points[3:5])),
            models.DeleteOperation(delete=models.PointIdsList(points=[4]))]}),
    ]
    for method, kwargs in calls:
        getattr(g, method)("wal", wait=True, **kwargs)
        getattr(r, method)("wal", wait=True, **kwargs)
    records = _records(server.bootstrap, server.topic)[1:]  # after the create
    assert len(records) == 2 * len(calls)
    for i, (method, _) in enumerate(calls):
        via_grpc, via_rest = records[2 * i], records[2 * i + 1]
        assert via_grpc.key == via_rest.key == b"wal", method
        assert msgpack.unpackb(via_grpc.value) == msgpack.unpackb(via_rest.value), method
        # Equal as data: a protobuf map does not carry the order of a payload's keys,
        # so only the bytes of payload objects may differ (in key order).
        assert msgpack.unpackb(via_grpc.value) == msgpack.unpackb(via_rest.value), method
        assert list(via_grpc.headers) == list(via_rest.headers), method


def test_interleaved_grpc_and_rest_give_the_rest_only_digest(servers, broker):
    import uuid
    mixed = servers(f"pointlog.test.{uuid.uuid4().hex[:12]}")
    rest_only = servers(f"pointlog.test.{uuid.uuid4().hex[:12]}")
    points = _points()
    calls = [
        ("create_collection", {"vectors_config": NAMED}),
        ("upsert", {"points": points[:6]}),
        ("upsert", {"points": points[6:]}),
        ("set_payload", {"payload": {"s": 1}, "points": RED}),
        ("update_vectors", {"points": [models.PointVectors(id=2, vector={"image": [0, 0, 1, 0]})]}),
        ("delete_payload", {"keys": ["f"], "points": [1, 2, 4]}),
        ("delete_vectors", {"points": [5], "vectors": ["image"]}),
        ("overwrite_payload", {"payload": {"w": 0}, "points": [7]}),
        ("delete", {"points_selector": [8]}),
        ("clear_payload", {"points_selector": [10]}),
    ]
    clients = [grpc_client(mixed), rest_client(mixed)]
    rest = rest_client(rest_only)
    for i, (method, kwargs) in enumerate(calls):
        extra = {} if method == "create_collection" else {"wait": True}
        getattr(clients[i % 2], method)("mix", **kwargs, **extra)
        getattr(rest, method)("mix", **kwargs, **extra)
    mixed.wait_caught_up()
    rest_only.wait_caught_up()
    mixed.stop()
    rest_only.stop()
    assert mixed.digest() == rest_only.digest()


# ---- refusals -----------------------------------------------------------------------

def _stubs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return (channel, points_service_pb2_grpc.PointsStub(channel),
            collections_service_pb2_grpc.CollectionsStub(channel), qdrant_pb2_grpc.QdrantStub(channel))


def _pid(i):
    return pb.PointId(num=i) if isinstance(i, int) else pb.PointId(uuid=i)


def _point(pid, data=(0.1, 0.2, 0.3), **vectors):
    vecs = (pb.Vectors(vectors=pb.NamedVectors(vectors={k: pb.Vector(dense=pb.DenseVector(data=v))
                                                        for k, v in vectors.items()}))
            if vectors else pb.Vectors(vector=pb.Vector(dense=pb.DenseVector(data=data))))
    return pb.PointStruct(id=_pid(pid), vectors=vecs)


def _red():
    return pb.Filter(must=[pb.Condition(field=pb.FieldCondition(key="color", match=pb.Match(keyword="red")))])


INVALID, NOT_FOUND, EXISTS, UNIMPLEMENTED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                             grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.UNIMPLEMENTED)
P = "plain_bad"
N = "named_bad"

# (name, service, method, request, code, part of the message)
BAD = [
    ("wrong dimension", "points", "Upsert", pb.UpsertPoints(collection_name=P, points=[_point(1, (0.1, 0.2))]),
     INVALID, "Wrong input: Vector dimension error: expected dim: 3, got 2"),
    ("empty vector", "points", "Upsert", pb.UpsertPoints(collection_name=P, points=[_point(1, ())]),
     INVALID, "Vector dimension error: expected dim: 3, got 0"),
    ("no point id", "points", "Upsert",
     pb.UpsertPoints(collection_name=P, points=[pb.PointStruct(vectors=_point(1).vectors)]),
     INVALID, "a point id must be `num` or `uuid`"),
    ("bad uuid", "points", "Upsert", pb.UpsertPoints(collection_name=P, points=[_point("point-7")]),
     INVALID, "value point-7 is not a valid point ID"),
    ("bad id in a delete", "points", "Delete", pb.DeletePoints(collection_name=P, points=pb.PointsSelector(
        points=pb.PointsIdsList(ids=[_pid(1), _pid("x")]))), INVALID, "value x is not a valid point ID"),
    ("empty upsert", "points", "Upsert", pb.UpsertPoints(collection_name=P), INVALID, "Empty update request"),
    ("unknown collection", "points", "Upsert", pb.UpsertPoints(collection_name="nope", points=[_point(1)]),
     NOT_FOUND, "Not found: Collection `nope` doesn't exist!"),
    ("scroll unknown collection", "points", "Scroll", pb.ScrollPoints(collection_name="nope"), NOT_FOUND,
     "Collection `nope` doesn't exist!"),
    ("get unknown collection", "collections", "Get", pb.GetCollectionInfoRequest(collection_name="nope"),
     NOT_FOUND, "Collection `nope` doesn't exist!"),
    ("unknown vector name", "points", "Upsert",
     pb.UpsertPoints(collection_name=N, points=[_point(1, audio=[0.1, 0.2, 0.3])]), INVALID,
     "Wrong input: Not existing vector name error: audio"),
    ("plain vector into a named collection", "points", "Upsert", pb.UpsertPoints(collection_name=N, points=[_point(1)]),
     INVALID, "Not existing vector name error: "),
    ("query with an unknown vector", "points", "Query", pb.QueryPoints(
        collection_name=N, using="audio", query=pb.Query(nearest=pb.VectorInput(dense=pb.DenseVector(data=[1, 2, 3])))),
     INVALID, "Not existing vector name error: audio"),
    ("sparse vector", "points", "Upsert", pb.UpsertPoints(collection_name=N, points=[pb.PointStruct(
        id=_pid(1), vectors=pb.Vectors(vectors=pb.NamedVectors(vectors={"text": pb.Vector(
            sparse=pb.SparseVector(indices=[1], values=[0.5]))})))]), INVALID,
     "Conversion between sparse and regular vectors failed for vector: text"),
    ("multi-vector", "points", "Upsert", pb.UpsertPoints(collection_name=P, points=[pb.PointStruct(
        id=_pid(1), vectors=pb.Vectors(vector=pb.Vector(multi_dense=pb.MultiDenseVector(vectors=[
            pb.DenseVector(data=[1, 2, 3])] * 2))))]), INVALID, "Conversion between multi and regular vectors failed"),
    ("document input", "points", "Upsert", pb.UpsertPoints(collection_name=P, points=[pb.PointStruct(
        id=_pid(1), vectors=pb.Vectors(vector=pb.Vector(document=pb.Document(text="hi", model="m"))))]),
     INVALID, "inference inputs"),
    ("shard key", "points", "Upsert", pb.UpsertPoints(collection_name=P, points=[_point(1)],
                                                      shard_key_selector=pb.ShardKeySelector(
                                                          shard_keys=[pb.ShardKey(keyword="eu")])),
     INVALID, "shard keys are not supported"),
    ("field condition without a test", "points", "Delete", pb.DeletePoints(collection_name=P, points=pb.PointsSelector(
        filter=pb.Filter(must=[pb.Condition(field=pb.FieldCondition(key="color"))]))), INVALID,
        "At least one field condition must be specified"),
    ("empty condition", "points", "Count", pb.CountPoints(collection_name=P, filter=pb.Filter(must=[pb.Condition()])),
     INVALID, "invalid Condition"),
    ("min_should of 0", "points", "Count", pb.CountPoints(collection_name=P, filter=pb.Filter(
        min_should=pb.MinShould(conditions=_red().must, min_count=0))), INVALID, "Validation error"),
    ("set_payload without selector", "points", "SetPayload", pb.SetPayloadPoints(collection_name=P),
     INVALID, "needs either `points` (a list of ids) or `filter`"),
    ("overwrite with a key", "points", "OverwritePayload", pb.SetPayloadPoints(
        collection_name=P, key="k", points_selector=pb.PointsSelector(points=pb.PointsIdsList(ids=[_pid(1)]))),
     INVALID, "`key` of an overwrite_payload is not supported"),
    ("delete_vectors without names", "points", "DeleteVectors", pb.DeletePointVectors(
        collection_name=N, points_selector=pb.PointsSelector(points=pb.PointsIdsList(ids=[_pid(1)]))),
     INVALID, "must specify vector names to delete"),
    ("update_vectors without vectors", "points", "UpdateVectors", pb.UpdatePointVectors(
        collection_name=N, points=[pb.PointVectors(id=_pid(1))]), INVALID, "missing field `vector`"),
    ("empty batch operation", "points", "UpdateBatch", pb.UpdateBatchPoints(
        collection_name=P, operations=[pb.PointsUpdateOperation()]), INVALID, "holds no operation"),
    ("invalid operation in a batch", "points", "UpdateBatch", pb.UpdateBatchPoints(
        collection_name=P, operations=[pb.PointsUpdateOperation(upsert=pb.PointsUpdateOperation.PointStructList(
            points=[_point(1, (0.1,))]))]), INVALID, "Vector dimension error: expected dim: 3, got 1"),
    ("timeout 0", "points", "Upsert", pb.UpsertPoints(collection_name=P, points=[_point(1)], wait=True, timeout=0),
     INVALID, "[timeout: value 0 invalid, must be 1 or larger]"),
    ("field index without a type", "points", "CreateFieldIndex", pb.CreateFieldIndexCollection(
        collection_name=P, field_name="color"), INVALID, "field_schema: unknown variant"),
    ("scroll limit 0", "points", "Scroll", pb.ScrollPoints(collection_name=P, limit=0), INVALID,
     "[limit: value 0 invalid, must be 1 or larger]"),
    ("search limit 0", "points", "Search", pb.SearchPoints(collection_name=P, vector=[1, 2, 3]), INVALID,
     "[limit: value 0 invalid, must be 1 or larger]"),
    ("scroll order_by without an index", "points", "Scroll", pb.ScrollPoints(collection_name=P,
                                                                             order_by=pb.OrderBy(key="n")),
     INVALID, "No range index for `order_by` key found"),
    ("sparse search", "points", "Search", pb.SearchPoints(collection_name=P, vector=[1, 2, 3], limit=3,
                                                          sparse_indices=pb.SparseIndices(data=[1, 2, 3])),
     INVALID, "`sparse_indices` of SearchPoints is not supported by pointlog"),
    ("prefetch without a query", "points", "Query", pb.QueryPoints(collection_name=P, prefetch=[pb.PrefetchQuery()]),
     INVALID, "A query is needed to merge the prefetches"),
    ("discover query with a missing target", "points", "Query", pb.QueryPoints(collection_name=P, query=pb.Query(
        discover=pb.DiscoverInput(target=pb.VectorInput(id=_pid(999))))), NOT_FOUND, "No point with id 999 found"),
    ("query a missing point", "points", "Query", pb.QueryPoints(collection_name=P, query=pb.Query(
        nearest=pb.VectorInput(id=_pid(999)))), NOT_FOUND, "No point with id 999 found"),
    ("lookup_from a missing collection", "points", "Query", pb.QueryPoints(collection_name=P, query=pb.Query(
        nearest=pb.VectorInput(id=_pid(1))), lookup_from=pb.LookupLocation(collection_name="nope")), NOT_FOUND,
     "Collection `nope` doesn't exist!"),
    ("existing collection", "collections", "Create", pb.CreateCollection(
        collection_name=P, vectors_config=pb.VectorsConfig(params=pb.VectorParams(size=3, distance=pb.Distance.Dot))),
     EXISTS, "Wrong input: Collection `plain_bad` already exists!"),
    ("collection without size", "collections", "Create", pb.CreateCollection(
        collection_name="fresh", vectors_config=pb.VectorsConfig(params=pb.VectorParams(distance=pb.Distance.Dot))),
     INVALID, "[vectors.size: value 0 invalid, must be from 1 to 65536]"),
    ("name with a colon", "collections", "Create", pb.CreateCollection(
        collection_name="a:b", vectors_config=pb.VectorsConfig(params=pb.VectorParams(size=3, distance=pb.Distance.Dot))),
     INVALID, 'collection name cannot contain ":" char'),
    ("custom sharding", "collections", "Create", pb.CreateCollection(
        collection_name="fresh", sharding_method=pb.ShardingMethod.Custom,
        vectors_config=pb.VectorsConfig(params=pb.VectorParams(size=3, distance=pb.Distance.Dot))),
     INVALID, "custom sharding is not supported"),
    ("strict mode rate limit", "collections", "Create", pb.CreateCollection(
        collection_name="fresh", strict_mode_config=pb.StrictModeConfig(enabled=True, read_rate_limit=5),
        vectors_config=pb.VectorsConfig(params=pb.VectorParams(size=3, distance=pb.Distance.Dot))),
     INVALID, "`strict_mode_config.read_rate_limit` is not supported by pointlog"),
    ("alias of a missing collection", "collections", "UpdateAliases", pb.ChangeAliases(actions=[pb.AliasOperations(
        create_alias=pb.CreateAlias(collection_name="nope", alias_name="a"))]), NOT_FOUND,
     "Collection `nope` doesn't exist!"),
    ("recommend without examples", "points", "Recommend", pb.RecommendPoints(collection_name=P, limit=3), INVALID,
     "No positive examples given with 'average_vector' strategy"),
    ("a new vector name", "points", "CreateVectorName", pb.CreateVectorNameRequest(collection_name=P),
     UNIMPLEMENTED, "is not implemented by pointlog"),
    ("facet without an index", "points", "Facet", pb.FacetCounts(collection_name=P, key="color"), INVALID,
     "Index required but not found for \"color\""),
]


@pytest.fixture(scope="module")
def bad_node(module_server):
    g = grpc_client(module_server)
    g.create_collection(P, vectors_config=PLAIN)
    g.create_collection(N, vectors_config={"image": models.VectorParams(size=4, distance=models.Distance.COSINE),
                                           "text": models.VectorParams(size=8, distance=models.Distance.DOT)})
    g.upsert(P, points=[models.PointStruct(id=1, vector=[0.1, 0.2, 0.3], payload={"color": "red"})], wait=True)
    module_server.wait_caught_up()
    return module_server


def test_bad_requests_get_qdrant_status_codes_and_publish_nothing(bad_node, broker):
    channel, points, collections, _ = _stubs(bad_node)
    stubs = {"points": points, "collections": collections}
    before = end_offsets(broker.bootstrap, bad_node.topic)
    failures = []
    for name, service, method, request, code, message in BAD:
        for wait in ((True, False) if hasattr(request, "wait") and service == "points" else (None,)):
            if wait is not None and code != UNIMPLEMENTED:
                request.wait = wait
            try:
                getattr(stubs[service], method)(request, timeout=30)
                failures.append(f"{name}: accepted")
            except grpc.RpcError as exc:
                if exc.code() != code or message not in (exc.details() or ""):
                    failures.append(f"{name}: want {code.name} '{message}', got {exc.code().name} '{exc.details()}'")
    channel.close()
    assert not failures, "\n".join(failures)
    assert end_offsets(broker.bootstrap, bad_node.topic) == before


def test_errors_found_while_applying_reach_the_waiter(bad_node):
    g = grpc_client(bad_node)
    with pytest.raises(grpc.RpcError) as raised:
        g.set_payload(P, payload={"k": 1}, points=[1, 12345], wait=True)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "Not found: No point with id 12345 found"
    assert g.retrieve(P, [1])[0].payload == {"color": "red", "k": 1}


def test_newer_features_answer_the_same_over_grpc_and_rest(module_server):
    """Sparse and multivectors, hybrid queries, lookup_from, aliases, collection updates,
    facets and order_by travel the same conversion: gRPC answers what REST answers."""
    g, r = grpc_client(module_server), rest_client(module_server)
    name = "newer_features"
    g.create_collection(name, vectors_config={"d": models.VectorParams(size=3, distance=models.Distance.COSINE),
                                              "m": models.VectorParams(size=2, distance=models.Distance.DOT,
                                                                       multivector_config=models.MultiVectorConfig(
                                                                           comparator=models.MultiVectorComparator.MAX_SIM))},
                        sparse_vectors_config={"s": models.SparseVectorParams(modifier=models.Modifier.IDF)},
                        metadata={"team": "search"})
    rng = np.random.default_rng(2)
    g.upsert(name, points=[models.PointStruct(
        id=i, payload={"color": ["red", "blue", "green"][i % 3], "n": int(i * 7 % 50)},
        vector={"d": rng.standard_normal(3).tolist(), "m": rng.standard_normal((1 + i % 3, 2)).tolist(),
                "s": models.SparseVector(indices=[i % 5, 5 + i % 7], values=[1.0, 0.5])}) for i in range(40)])
    g.create_payload_index(name, "color", models.PayloadSchemaType.KEYWORD)
    g.create_payload_index(name, "n", models.PayloadSchemaType.INTEGER)
    g.update_collection(name, metadata={"tier": 2})
    g.update_collection_aliases([models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name=name, alias_name="newer_alias"))])

    def both(call):
        got, want = call(g), call(r)
        assert got == want
        return got

    assert both(lambda c: c.get_collection(name).config.metadata) == {"team": "search", "tier": 2}
    assert both(lambda c: [(a.alias_name, a.collection_name) for a in c.get_aliases().aliases]) == \
        [("newer_alias", name)]
    prefetch = [models.Prefetch(query=models.SparseVector(indices=[1, 6], values=[1.0, 1.0]), using="s", limit=10),
                models.Prefetch(query=[1.0, 0.0, 0.0], using="d", limit=10)]
    both(lambda c: [(p.id, round(p.score, 5)) for p in c.query_points(
        "newer_alias", prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=5).points])
    both(lambda c: [(p.id, round(p.score, 5)) for p in c.query_points(
        name, prefetch=prefetch, query=[[1.0, 0.5]], using="m", limit=5).points])
    both(lambda c: [p.id for p in c.query_points(name, query=3, using="d", limit=4,
                                                 lookup_from=models.LookupLocation(collection="newer_alias")).points])
    both(lambda c: [(h.value, h.count) for h in c.facet(name, "color").hits])
    both(lambda c: [(p.id, p.order_value) for p in c.scroll(
        name, order_by=models.OrderBy(key="n", direction=models.Direction.DESC), limit=6)[0]])
    got = g.retrieve(name, [4], with_vectors=True)[0].vector
    assert got["s"].indices == [4, 9] and len(got["m"]) == 2
