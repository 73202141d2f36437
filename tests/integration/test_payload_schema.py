"""Declared payload indexes: logged like every write, reported in payload_schema."""
from qdrant_client import QdrantClient, models


def test_client_declares_and_drops_payload_indexes(server):
    c = QdrantClient(url=server.url, prefer_grpc=False, timeout=30)
    c.create_collection("shop", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    c.upsert("shop", points=[models.PointStruct(id=i, vector=[1.0, i], payload={"meta": {"color": f"c{i % 3}"}})
                             for i in range(10)] + [models.PointStruct(id=99, vector=[0.0, 1.0])])
    r = c.create_payload_index("shop", "meta.color", models.PayloadSchemaType.KEYWORD)
    assert r.status == models.UpdateStatus.COMPLETED
    c.create_payload_index("shop", "price", models.IntegerIndexParams(type="integer", lookup=True, range=True))
    schema = c.get_collection("shop").payload_schema
    assert schema["meta.color"].data_type == models.PayloadSchemaType.KEYWORD
    assert schema["meta.color"].points == 10
    assert schema["price"].data_type == models.PayloadSchemaType.INTEGER and schema["price"].points == 0

    server.restart()  # the declaration is state like any other
    c = QdrantClient(url=server.url, prefer_grpc=False, timeout=30)
    assert set(c.get_collection("shop").payload_schema) == {"meta.color", "price"}
    c.delete_payload_index("shop", "price")
    assert set(c.get_collection("shop").payload_schema) == {"meta.color"}
    hits = c.count("shop", count_filter=models.Filter(must=[
        models.FieldCondition(key="meta.color", match=models.MatchValue(value="c1"))]))
    assert hits.count == 3
