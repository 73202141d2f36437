"""/telemetry, /cluster and a collection's cluster info in Qdrant's shapes (parsed by the
pinned client's own models), and GET /collections/{c} reporting the configuration as
created and updated."""
import uuid

import httpx
from qdrant_client import QdrantClient, models


def test_telemetry_reports_collections_and_requests(module_server):
    client = QdrantClient(url=module_server.url)
    name = f"t{uuid.uuid4().hex[:8]}"
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.upsert(name, points=[models.PointStruct(id=i, vector=[1, i]) for i in range(3)])
    client.get_collection(name)
    telemetry = client.http.service_api.telemetry().result  # validated against Qdrant's TelemetryData
    assert telemetry.app.name == "pointlog" and telemetry.app.version
    mine = [c for c in telemetry.collections.collections if c.params.vectors.size == 2]
    assert telemetry.collections.number_of_collections >= 1 and any(c.vectors == 3 for c in mine)
    got = telemetry.requests.rest.responses["GET /collections/{collection}"]["200"]
    assert got.count >= 1 and got.avg_duration_micros > 0
    assert telemetry.id == client.http.service_api.telemetry().result.id  # stable


def test_cluster_info_over_rest_and_grpc(module_server):
    name = f"t{uuid.uuid4().hex[:8]}"
    rest = QdrantClient(url=module_server.url)
    rest.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    rest.upsert(name, points=[models.PointStruct(id=i, vector=[1, i]) for i in range(4)])
    info = rest.http.distributed_api.collection_cluster_info(name).result
    assert info.shard_count == 1 and info.remote_shards == [] and info.shard_transfers == []
    assert [(s.shard_id, s.points_count, s.state) for s in info.local_shards] == [(0, 4, models.ReplicaState.ACTIVE)]
    assert httpx.get(f"{module_server.url}/cluster").json()["result"] == {"status": "disabled"}
    assert httpx.get(f"{module_server.url}/collections/nope/cluster").status_code == 404
    grpc = QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True)
    from qdrant_client import grpc as pb
    reply = grpc.grpc_collections.CollectionClusterInfo(pb.CollectionClusterInfoRequest(collection_name=name))
    assert reply.peer_id == info.peer_id and reply.local_shards[0].points_count == 4


def test_collection_info_reports_the_config_as_created_and_updated(module_server):
    name = f"t{uuid.uuid4().hex[:8]}"
    client = QdrantClient(url=module_server.url)
    quantization = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8))
    client.create_collection(name, vectors_config={"a": models.VectorParams(
        size=4, distance=models.Distance.COSINE, on_disk=True, hnsw_config=models.HnswConfigDiff(m=8),
        quantization_config=quantization)}, on_disk_payload=False,
        optimizers_config=models.OptimizersConfigDiff(indexing_threshold=5000),
        strict_mode_config=models.StrictModeConfig(enabled=True, max_query_limit=50))
    client.create_payload_index(name, "title", field_schema=models.TextIndexParams(
        type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.PREFIX, min_token_len=2), wait=True)
    client.update_collection(name, vectors_config={"a": models.VectorParamsDiff(hnsw_config=models.HnswConfigDiff(
        ef_construct=200))}, strict_mode_config=models.StrictModeConfig(max_query_limit=60))
    for reader in (client, QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True)):
        info = reader.get_collection(name)
        vector = info.config.params.vectors["a"]
        assert vector.on_disk is True and vector.hnsw_config.m == 8 and vector.hnsw_config.ef_construct == 200
        assert vector.quantization_config.scalar.type == models.ScalarType.INT8
        assert info.config.params.on_disk_payload is False
        assert info.config.optimizer_config.indexing_threshold == 5000
        assert info.config.strict_mode_config.enabled and info.config.strict_mode_config.max_query_limit == 60
        schema = info.payload_schema["title"]
        assert schema.data_type == models.PayloadSchemaType.TEXT
        assert schema.params.tokenizer == models.TokenizerType.PREFIX and schema.params.min_token_len == 2
