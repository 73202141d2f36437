"""gRPC messages -> REST JSON: nothing dropped on the way.

Each REST value is converted to protobuf by qdrant-client (what a gRPC client
sends) and back by api/grpc/convert.py; the REST JSON must come back whole.
"""
from datetime import datetime, timezone

import pytest
from qdrant_client import grpc as pb
from qdrant_client import models
from qdrant_client.conversions.conversion import RestToGrpc

from api.grpc import convert
from storage.errors import BadRequest
from storage.filters import compile_filter

F = models.FieldCondition
CONDITIONS = [
    F(key="a", match=models.MatchValue(value="x")),
    F(key="a", match=models.MatchValue(value=7)),
    F(key="a", match=models.MatchValue(value=True)),
    F(key="a", match=models.MatchAny(any=["x", "y"])),
    F(key="a", match=models.MatchAny(any=[1, 2])),
    F(key="a", match=models.MatchExcept(**{"except": ["x"]})),
    F(key="a", match=models.MatchExcept(**{"except": [3]})),
    F(key="t", match=models.MatchText(text="hello world")),
    F(key="t", match=models.MatchTextAny(text_any="hello world")),
    F(key="t", match=models.MatchPhrase(phrase="hello world")),
    F(key="n", range=models.Range(gt=1.5, lte=9.0)),
    F(key="d", range=models.DatetimeRange(gte=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc))),
    F(key="g", geo_radius=models.GeoRadius(center=models.GeoPoint(lon=1.0, lat=2.0), radius=10.0)),
    F(key="g", geo_bounding_box=models.GeoBoundingBox(top_left=models.GeoPoint(lon=0.0, lat=1.0),
                                                     bottom_right=models.GeoPoint(lon=1.0, lat=0.0))),
    F(key="g", geo_polygon=models.GeoPolygon(exterior=models.GeoLineString(points=[
        models.GeoPoint(lon=0.0, lat=0.0), models.GeoPoint(lon=1.0, lat=0.0), models.GeoPoint(lon=0.0, lat=1.0),
        models.GeoPoint(lon=0.0, lat=0.0)]))),
    F(key="arr", values_count=models.ValuesCount(gte=1, lt=3)),
    models.IsEmptyCondition(is_empty=models.PayloadField(key="e")),
    models.IsNullCondition(is_null=models.PayloadField(key="e")),
    models.HasIdCondition(has_id=[1, "3f1c6b5a-2b1e-4d7a-9c3e-0a1b2c3d4e5f"]),
    models.HasVectorCondition(has_vector="image"),
    models.NestedCondition(nested=models.Nested(key="arr", filter=models.Filter(must=[
        F(key="x", match=models.MatchValue(value=1))]))),
    models.Filter(should=[F(key="a", match=models.MatchValue(value="x"))]),
]


def _rest_json(model) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.mark.parametrize("condition", CONDITIONS, ids=lambda c: type(c).__name__)
def test_every_condition_survives_the_round_trip(condition):
    flt = models.Filter(must=[condition], must_not=[condition],
                        min_should=models.MinShould(conditions=[condition], min_count=1))
    got = convert.filter_json(RestToGrpc.convert_filter(flt))
    assert got == _rest_json(flt)
    compile_filter(got)  # and the REST filter reader takes it


def test_empty_clauses_are_absent_ones():
    assert convert.filter_json(pb.Filter()) == {}


def test_payload_keeps_nulls_and_number_kinds():
    payload = {"i": 1, "f": 1.0, "none": None, "list": [1, "a", None, {"x": False}], "obj": {}}
    point = RestToGrpc.convert_point_struct(models.PointStruct(id=1, vector=[0.5], payload=payload))
    assert convert._point(point) == {"id": 1, "vector": [0.5], "payload": payload}


def test_unimplemented_fields_are_refused_by_name():
    with pytest.raises(BadRequest, match="`sparse_indices` of SearchPoints is not supported"):
        convert.search(pb.SearchPoints(collection_name="c", vector=[1.0], limit=1,
                                       sparse_indices=pb.SparseIndices(data=[1])))
    with pytest.raises(BadRequest, match="shard keys are not supported"):
        convert.count(pb.CountPoints(collection_name="c", shard_key_selector=pb.ShardKeySelector(
            shard_keys=[pb.ShardKey(number=1)])))
    # hints REST takes and ignores too
    assert convert.count(pb.CountPoints(collection_name="c", exact=True, timeout=3)) == {}


def test_create_collection_body_matches_rest():
    req = pb.CreateCollection(
        collection_name="c", shard_number=2, on_disk_payload=True,
        vectors_config=RestToGrpc.convert_vectors_config(
            {"a": models.VectorParams(size=3, distance=models.Distance.DOT)}),
        hnsw_config=RestToGrpc.convert_hnsw_config_diff(models.HnswConfigDiff(m=8)),
        optimizers_config=RestToGrpc.convert_optimizers_config_diff(
            models.OptimizersConfigDiff(indexing_threshold=100)))
    body = convert.create_collection(req)
    assert body["vectors"] == {"a": {"size": 3, "distance": "Dot"}}
    assert body["shard_number"] == 2 and body["on_disk_payload"] is True
    assert body["hnsw_config"] == {"m": 8} and body["optimizers_config"] == {"indexing_threshold": 100}


_READS = {"DiscoverPoints": convert.discover, "RecommendPoints": convert.recommend,
          "RecommendPointGroups": convert.recommend_groups, "SearchPointGroups": convert.search_groups,
          "SearchMatrixPoints": convert.matrix, "SearchPoints": convert.search, "QueryPoints": convert.query,
          "QueryPointGroups": convert.query_groups}


def _set_any(msg, field) -> None:
    if field.name == "shard_key_selector":
        msg.shard_key_selector.shard_keys.add(number=1)
    elif field.message_type:  # the only others not taken are single messages (sparse_indices)
        getattr(msg, field.name).SetInParent()
    else:
        setattr(msg, field.name, type(field.default_value)(1) if field.type != field.TYPE_STRING else "x")


@pytest.mark.parametrize("name", sorted(_READS))
def test_every_field_of_a_read_message_is_taken_or_refused_by_name(name):
    """The gRPC side of the no-silent-fields rule: a field missing from ``_TAKEN`` is refused."""
    cls = getattr(pb, name)
    for field in cls.DESCRIPTOR.fields:
        if field.name in convert._TAKEN[name]:
            continue
        msg = cls(collection_name="c")
        _set_any(msg, field)
        with pytest.raises(BadRequest, match=f"`{field.name}` of {name}|shard keys are not supported"):
            _READS[name](msg)


def test_every_points_rpc_is_served_or_says_why_not():
    from qdrant_client.grpc import points_service_pb2
    from api.grpc.points import Points
    from qdrant_client.grpc.points_service_pb2_grpc import PointsServicer
    for method in points_service_pb2.DESCRIPTOR.services_by_name["Points"].methods:
        assert getattr(Points, method.name) is not getattr(PointsServicer, method.name), method.name
        if method.input_type.name in convert._TAKEN:
            continue
        assert method.name in ("CreateVectorName", "DeleteVectorName"), method.name
