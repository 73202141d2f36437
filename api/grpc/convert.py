"""Qdrant gRPC messages <-> what the REST API works with.

A request message becomes the JSON body the REST API would get for the same
request; the REST parsers (api/rest/bodies.py, storage/vectors/search.py,
storage/reads.py) then build the operation or read request from it. So a gRPC
request is validated by the same code, in the same order, with the same messages,
and writes the same WAL record as its REST twin.

Filters, config diffs and index params go through qdrant-client's own GrpcToRest
conversion; payloads, vectors, ids and selectors are converted here because the
pydantic round trip of the models drops what ``exclude_none`` drops (a ``null``
inside a payload) and is slow for vectors.

Nothing is ignored silently: every request message lists the fields pointlog
takes (``_TAKEN``); a set field outside that list is refused, naming it.
"""
import time

from google.protobuf.message import Message
from pydantic import BaseModel, ValidationError
from qdrant_client import grpc as pb
from qdrant_client.conversions.conversion import (GrpcToRest, RestToGrpc, grpc_field_type_to_payload_schema,
                                                  grpc_to_payload, payload_to_grpc)
from qdrant_client.http.models import models as rest

from api.rest.bodies import reject_shard_key
from storage.errors import BadRequest

# Per request message: the fields pointlog implements. ``timeout``, ``ordering`` and
# ``read_consistency`` are taken as REST takes them: a wait bound, and hints that
# change nothing on a single-replica collection.
_WRITE = {"collection_name", "wait", "ordering", "timeout"}
_TAKEN = {
    "UpsertPoints": _WRITE | {"points", "update_filter", "update_mode"},
    "DeletePoints": _WRITE | {"points"},
    "UpdatePointVectors": _WRITE | {"points", "update_filter"},
    "DeletePointVectors": _WRITE | {"points_selector", "vectors"},
    "SetPayloadPoints": _WRITE | {"payload", "points_selector", "key"},
    "DeletePayloadPoints": _WRITE | {"keys", "points_selector"},
    "ClearPayloadPoints": _WRITE | {"points"},
    "CreateFieldIndexCollection": _WRITE | {"field_name", "field_type", "field_index_params"},
    "DeleteFieldIndexCollection": _WRITE | {"field_name"},
    "UpdateBatchPoints": _WRITE | {"operations"},
    "PointStructList": {"points", "update_filter", "update_mode"},
    "SetPayload": {"payload", "points_selector", "key"},
    "OverwritePayload": {"payload", "points_selector"},
    "DeletePayload": {"keys", "points_selector"},
    "UpdateVectors": {"points", "update_filter"},
    "DeleteVectors": {"points_selector", "vectors"},
    "ClearPayload": {"points"},
    "GetPoints": {"collection_name", "ids", "with_payload", "with_vectors", "read_consistency", "timeout"},
    "ScrollPoints": {"collection_name", "filter", "offset", "limit", "with_payload", "with_vectors",
                     "read_consistency", "timeout", "order_by"},
    "CountPoints": {"collection_name", "filter", "exact", "read_consistency", "timeout"},
    "SearchPoints": {"collection_name", "vector", "filter", "limit", "with_payload", "params", "score_threshold",
                     "offset", "vector_name", "with_vectors", "read_consistency", "timeout"},
    "SearchBatchPoints": {"collection_name", "search_points", "read_consistency", "timeout"},
    "QueryPoints": {"collection_name", "prefetch", "query", "using", "filter", "params", "score_threshold", "limit",
                    "offset", "with_vectors", "with_payload", "read_consistency", "timeout", "lookup_from"},
    "QueryPointGroups": {"collection_name", "prefetch", "query", "using", "filter", "params", "score_threshold",
                         "with_payload", "with_vectors", "lookup_from", "limit", "group_size", "group_by",
                         "read_consistency", "with_lookup", "timeout"},
    "FacetCounts": {"collection_name", "key", "filter", "limit", "exact", "timeout", "read_consistency"},
    "UpdateCollection": {"collection_name", "optimizers_config", "timeout", "params", "hnsw_config", "vectors_config",
                         "quantization_config", "sparse_vectors_config", "strict_mode_config", "metadata"},
    "ChangeAliases": {"actions", "timeout"},
    "DiscoverPoints": {"collection_name", "target", "context", "filter", "limit", "with_payload", "params", "offset",
                       "using", "with_vectors", "lookup_from", "read_consistency", "timeout"},
    "DiscoverBatchPoints": {"collection_name", "discover_points", "read_consistency", "timeout"},
    "RecommendPoints": {"collection_name", "positive", "negative", "filter", "limit", "with_payload", "params",
                        "score_threshold", "offset", "using", "with_vectors", "lookup_from", "read_consistency",
                        "strategy", "positive_vectors", "negative_vectors", "timeout"},
    "RecommendBatchPoints": {"collection_name", "recommend_points", "read_consistency", "timeout"},
    "RecommendPointGroups": {"collection_name", "positive", "negative", "filter", "limit", "with_payload", "params",
                             "score_threshold", "using", "with_vectors", "lookup_from", "group_by", "group_size",
                             "read_consistency", "with_lookup", "strategy", "positive_vectors", "negative_vectors",
                             "timeout"},
    "SearchPointGroups": {"collection_name", "vector", "filter", "limit", "with_payload", "params", "score_threshold",
                          "vector_name", "with_vectors", "group_by", "group_size", "read_consistency", "with_lookup",
                          "timeout", "sparse_indices"},
    "SearchMatrixPoints": {"collection_name", "filter", "sample", "limit", "using", "timeout", "read_consistency"},
    "QueryBatchPoints": {"collection_name", "query_points", "read_consistency", "timeout"},
    "CreateCollection": {"collection_name", "hnsw_config", "wal_config", "optimizers_config", "shard_number",
                         "on_disk_payload", "timeout", "vectors_config", "replication_factor",
                         "write_consistency_factor", "quantization_config", "sharding_method",
                         "sparse_vectors_config", "metadata", "strict_mode_config"},
    "DeleteCollection": {"collection_name", "timeout"},
}


def check_fields(msg: Message) -> None:
    """Refuse every set field pointlog does not implement, naming it."""
    name = msg.DESCRIPTOR.name
    taken = _TAKEN[name]
    for field, value in msg.ListFields():
        if field.name in taken:
            continue
        if field.name == "shard_key_selector":
            reject_shard_key({"shard_key": _dump(library(GrpcToRest.convert_shard_key_selector, value))})
        raise BadRequest(f"Bad request: `{field.name}` of {name} is not supported by pointlog")


def _dump(model) -> object:
    """A qdrant-client REST model as the JSON the REST API would receive."""
    if isinstance(model, BaseModel):
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(model, dict):
        return {k: _dump(v) for k, v in model.items()}
    if isinstance(model, list):
        return [_dump(v) for v in model]
    return model


def library(convert, model):
    """A GrpcToRest conversion; what it cannot read is a bad request, not a crash."""
    try:
        return convert(model)
    except (ValueError, ValidationError, TypeError) as exc:
        raise BadRequest(f"Format error in request: {exc}") from None


# ---- values ----------------------------------------------------------------------

def point_id(pid: pb.PointId):
    kind = pid.WhichOneof("point_id_options")
    if kind is None:
        raise BadRequest("Format error in request: a point id must be `num` or `uuid`")
    return getattr(pid, kind)


def point_ids(ids) -> list:
    return [point_id(i) for i in ids]


def payload(entries) -> dict:
    return grpc_to_payload(entries)


def vector(vec) -> object:
    """A Vector as REST JSON: dense as a list; sparse and multi-dense in their REST
    shapes, so the shared vector reader refuses them with its messages."""
    value = library(GrpcToRest.convert_vector, vec)
    if isinstance(value, rest.SparseVector):
        return {"indices": list(value.indices), "values": list(value.values)}
    if isinstance(value, (BaseModel, Message)):
        raise BadRequest("Bad request: inference inputs (document, image, object) are not supported by "
                         "pointlog: send dense vectors")
    return list(value)


def vectors(vecs: pb.Vectors):
    kind = vecs.WhichOneof("vectors_options")
    if kind == "vector":
        return vector(vecs.vector)
    if kind == "vectors":
        return {name: vector(v) for name, v in vecs.vectors.vectors.items()}
    return None


def filter_json(flt: pb.Filter) -> dict:
    return _drop_empty_clauses(_dump(library(GrpcToRest.convert_filter, flt)))


def _drop_empty_clauses(value):
    # An empty repeated field is an absent one in protobuf: Qdrant reads an empty
    # `should` as no clause, so it must not reach the REST parser as `should: []`.
    if isinstance(value, dict):
        return {k: _drop_empty_clauses(v) for k, v in value.items()
                if not (k in ("must", "should", "must_not") and v == [])}
    if isinstance(value, list):
        return [_drop_empty_clauses(v) for v in value]
    return value


def _opt(msg: Message, field: str):
    return getattr(msg, field) if msg.HasField(field) else None


def _shape_fields(body: dict, msg: Message, vectors_key: str = "with_vector") -> dict:
    if msg.HasField("with_payload"):
        body["with_payload"] = with_payload(msg.with_payload)
    if msg.HasField("with_vectors"):
        body[vectors_key] = with_vectors(msg.with_vectors)
    return body


def with_payload(sel: pb.WithPayloadSelector):
    kind = sel.WhichOneof("selector_options")
    if kind == "enable":
        return sel.enable
    if kind == "include":
        return {"include": list(sel.include.fields)}
    if kind == "exclude":
        return {"exclude": list(sel.exclude.fields)}
    return False


def with_vectors(sel: pb.WithVectorsSelector):
    kind = sel.WhichOneof("selector_options")
    if kind == "enable":
        return sel.enable
    if kind == "include":
        return list(sel.include.names)
    return False


def selector(sel: pb.PointsSelector | None) -> dict:
    """A PointsSelector as the REST body's ``points`` or ``filter``."""
    if sel is None:
        return {}
    kind = sel.WhichOneof("points_selector_one_of")
    if kind == "points":
        return {"points": point_ids(sel.points.ids)}
    if kind == "filter":
        return {"filter": filter_json(sel.filter)}
    return {}


# ---- write requests -> REST bodies ------------------------------------------------

def _point(p: pb.PointStruct) -> dict:
    out = {"id": point_id(p.id)}
    if p.HasField("vectors"):
        out["vector"] = vectors(p.vectors)
    if len(p.payload):  # an empty map is an absent payload: protobuf cannot tell them apart
        out["payload"] = payload(p.payload)
    return out


_UPDATE_MODES = {pb.UpdateMode.Upsert: "upsert", pb.UpdateMode.InsertOnly: "insert_only",
                 pb.UpdateMode.UpdateOnly: "update_only"}


def _update_mode(mode: int) -> str:
    if mode not in _UPDATE_MODES:
        raise BadRequest(f"Format error in request: update_mode: unknown value {mode}")
    return _UPDATE_MODES[mode]


def upsert(req) -> dict:
    check_fields(req)
    body = {"points": [_point(p) for p in req.points]}
    if req.HasField("update_filter"):
        body["update_filter"] = filter_json(req.update_filter)
    if req.HasField("update_mode"):
        body["update_mode"] = _update_mode(req.update_mode)
    return body


def update_vectors(req) -> dict:
    check_fields(req)
    points = []
    for p in req.points:
        points.append({"id": point_id(p.id), "vector": (vectors(p.vectors) if p.HasField("vectors") else None)})
    body = {"points": points}
    if req.HasField("update_filter"):
        body["update_filter"] = filter_json(req.update_filter)
    return body


def delete_vectors(req) -> dict:
    check_fields(req)
    return {**selector(_opt(req, "points_selector")), "vector": list(req.vectors.names)}


def set_payload(req) -> dict:
    check_fields(req)
    body = {**selector(_opt(req, "points_selector")), "payload": payload(req.payload)}
    if req.HasField("key"):
        body["key"] = req.key
    return body


def overwrite_payload(req) -> dict:
    check_fields(req)
    if isinstance(req, pb.SetPayloadPoints) and req.HasField("key"):
        # The OverwritePayload RPC shares SetPayloadPoints with SetPayload; REST's
        # overwrite (and pointlog's operation) has no key.
        raise BadRequest("Bad request: `key` of an overwrite_payload is not supported by pointlog")
    return {**selector(_opt(req, "points_selector")), "payload": payload(req.payload)}


def delete_payload(req) -> dict:
    check_fields(req)
    return {**selector(_opt(req, "points_selector")), "keys": list(req.keys)}


def clear_payload(req) -> dict:
    check_fields(req)
    return selector(_opt(req, "points"))


def delete_points(req) -> dict:
    check_fields(req)
    return selector(_opt(req, "points"))


def create_field_index(req: pb.CreateFieldIndexCollection) -> dict:
    check_fields(req)
    body = {"field_name": req.field_name}
    if req.HasField("field_index_params"):
        params = _dump(library(GrpcToRest.convert_payload_schema_params, req.field_index_params))
        body["field_schema"] = params
    elif req.HasField("field_type"):
        body["field_schema"] = _field_type(req.field_type)
    return body


def _field_type(value: int) -> str:
    def convert(v):
        return GrpcToRest.convert_payload_schema_type(grpc_field_type_to_payload_schema(v)).value
    return library(convert, value)


def delete_field_index(req: pb.DeleteFieldIndexCollection) -> dict:
    check_fields(req)
    return {"field_name": req.field_name}


def batch(req: pb.UpdateBatchPoints) -> dict:
    """The REST ``/points/batch`` body: one operation key per entry."""
    check_fields(req)
    operations = []
    for i, op in enumerate(req.operations):
        kind = op.WhichOneof("operation")
        if kind is None:
            raise BadRequest(f"Format error in request: operations[{i}] holds no operation")
        inner = getattr(op, kind)
        if kind == "upsert":
            entry = {"upsert": upsert(inner)}
        elif kind == "delete_deprecated":
            entry = {"delete": selector(inner)}
        elif kind == "clear_payload_deprecated":
            entry = {"clear_payload": selector(inner)}
        elif kind == "delete_points":
            entry = {"delete": delete_points(inner)}
        elif kind == "set_payload":
            entry = {"set_payload": set_payload(inner)}
        elif kind == "overwrite_payload":
            entry = {"overwrite_payload": overwrite_payload(inner)}
        elif kind == "delete_payload":
            entry = {"delete_payload": delete_payload(inner)}
        elif kind == "clear_payload":
            entry = {"clear_payload": clear_payload(inner)}
        elif kind == "update_vectors":
            entry = {"update_vectors": update_vectors(inner)}
        elif kind == "delete_vectors":
            entry = {"delete_vectors": delete_vectors(inner)}
        else:
            raise BadRequest(f"Bad request: `{kind}` in a batch is not supported by pointlog")
        operations.append(entry)
    return {"operations": operations}


def wait(req) -> bool:
    return req.wait if req.HasField("wait") else False


def timeout(req) -> int | None:
    return req.timeout if req.HasField("timeout") else None


# ---- collections -------------------------------------------------------------------

_COLLECTION_FIELDS = {
    "hnsw_config": GrpcToRest.convert_hnsw_config_diff,
    "wal_config": GrpcToRest.convert_wal_config_diff,
    "optimizers_config": GrpcToRest.convert_optimizers_config_diff,
    "quantization_config": GrpcToRest.convert_quantization_config,
    "sharding_method": GrpcToRest.convert_sharding_method,
    "sparse_vectors_config": GrpcToRest.convert_sparse_vector_config,
}


_REST_NAMES = {"sparse_vectors_config": "sparse_vectors"}


def create_collection(req: pb.CreateCollection) -> dict:
    """The REST create-collection body."""
    check_fields(req)
    body: dict = {}
    if req.HasField("vectors_config"):
        body["vectors"] = _dump(library(GrpcToRest.convert_vectors_config, req.vectors_config))
    for field, convert in _COLLECTION_FIELDS.items():
        if req.HasField(field):
            body[_REST_NAMES.get(field, field)] = _dump(library(convert, getattr(req, field)))
    for field in ("shard_number", "on_disk_payload", "replication_factor", "write_consistency_factor"):
        if req.HasField(field):
            body[field] = getattr(req, field)
    if len(req.metadata):
        body["metadata"] = payload(req.metadata)
    if req.HasField("strict_mode_config"):
        body["strict_mode_config"] = _dump(library(GrpcToRest.convert_strict_mode_config, req.strict_mode_config))
    return body


def update_collection(req: pb.UpdateCollection) -> dict:
    """The REST PATCH body: GrpcToRest's own conversion, metadata as payload values."""
    check_fields(req)
    body = _dump(library(GrpcToRest.convert_update_collection, req))
    body.pop("metadata", None)
    if len(req.metadata):
        body["metadata"] = payload(req.metadata)
    return body


def change_aliases(req: pb.ChangeAliases) -> dict:
    check_fields(req)
    return {"actions": [_dump(library(GrpcToRest.convert_alias_operations, a)) for a in req.actions]}


def facet(req: pb.FacetCounts) -> dict:
    check_fields(req)
    body = {"key": req.key}
    if req.HasField("filter"):
        body["filter"] = filter_json(req.filter)
    if req.HasField("limit"):
        body["limit"] = req.limit
    return body


def facet_hits(result: dict) -> list:
    return [pb.FacetHit(value=_facet_value(h["value"]), count=h["count"]) for h in result["hits"]]


def _facet_value(value) -> pb.FacetValue:
    if isinstance(value, bool):
        return pb.FacetValue(bool_value=value)
    if isinstance(value, int):
        return pb.FacetValue(integer_value=value)
    return pb.FacetValue(string_value=value)


def collection_info(info: dict) -> pb.CollectionInfo:
    return RestToGrpc.convert_collection_info(rest.CollectionInfo.model_validate(info))


# ---- read requests -> REST bodies -----------------------------------------------

def get(req: pb.GetPoints) -> dict:
    check_fields(req)
    return _shape_fields({"ids": point_ids(req.ids)}, req)


def scroll(req: pb.ScrollPoints) -> dict:
    check_fields(req)
    body = _shape_fields({}, req)
    if req.HasField("filter"):
        body["filter"] = filter_json(req.filter)
    if req.HasField("offset"):
        body["offset"] = point_id(req.offset)
    if req.HasField("limit"):
        body["limit"] = req.limit
    if req.HasField("order_by"):
        body["order_by"] = _dump(library(GrpcToRest.convert_order_by, req.order_by))
    return body


def count(req: pb.CountPoints) -> dict:
    check_fields(req)
    return {"filter": filter_json(req.filter)} if req.HasField("filter") else {}


def _search_params(params: pb.SearchParams) -> dict:
    out = {}
    if params.HasField("hnsw_ef"):
        out["hnsw_ef"] = params.hnsw_ef
    if params.HasField("exact"):
        out["exact"] = params.exact
    # quantization, indexed_only, acorn, idf: hints for index kinds pointlog does not
    # have; REST takes and ignores them the same way.
    return out


def _read_common(req, body: dict) -> dict:
    """filter, params, score_threshold, offset and the shape, those of them the message has."""
    has = req.DESCRIPTOR.fields_by_name
    if req.HasField("filter"):
        body["filter"] = filter_json(req.filter)
    if req.HasField("params"):
        body["params"] = _search_params(req.params)
    if "score_threshold" in has and req.HasField("score_threshold"):
        body["score_threshold"] = req.score_threshold
    if "offset" in has and req.HasField("offset"):
        body["offset"] = req.offset
    return _shape_fields(body, req)


def search(req: pb.SearchPoints) -> dict:
    """The REST ``/points/search`` body. ``limit`` is not optional in the message:
    0 reaches the REST validator, as Qdrant's gRPC validator refuses it too."""
    check_fields(req)
    vec = list(req.vector)
    body = {"vector": {"name": req.vector_name, "vector": vec} if req.HasField("vector_name") else vec,
            "limit": req.limit}
    return _read_common(req, body)


def query(req: pb.QueryPoints) -> dict:
    """The REST ``/points/query`` body, prefetches, fusion and lookups included:
    GrpcToRest's conversion of the whole request, so no query field is dropped on the
    way; the shared query reader refuses what pointlog does not serve, naming it."""
    check_fields(req)
    body = _dump(library(GrpcToRest.convert_query_points, req))
    for key in ("collection_name", "shard_key", "consistency", "read_consistency", "timeout"):
        body.pop(key, None)
    return _clean_filters(body)


_SHARED_WITH_QUERY = ("prefetch", "query", "using", "filter", "params", "score_threshold", "with_payload",
                      "with_vectors", "lookup_from", "limit")


def query_groups(req: pb.QueryPointGroups) -> dict:
    """The REST ``/points/query/groups`` body: the query part through the query
    conversion, the grouping fields beside it."""
    check_fields(req)
    plain = pb.QueryPoints(collection_name=req.collection_name)
    for field in _SHARED_WITH_QUERY:
        if field == "prefetch":
            plain.prefetch.extend(req.prefetch)
        elif req.HasField(field):
            value = getattr(req, field)
            if isinstance(value, Message):
                getattr(plain, field).CopyFrom(value)
            else:
                setattr(plain, field, value)
    body = query(plain)
    body["group_by"] = req.group_by
    # Required (no presence) in the legacy messages: 0 reaches the validator, as in Qdrant.
    if not req.DESCRIPTOR.fields_by_name["group_size"].has_presence or req.HasField("group_size"):
        body["group_size"] = req.group_size
    if req.HasField("with_lookup"):
        lookup = {"collection": req.with_lookup.collection}
        if req.with_lookup.HasField("with_payload"):
            lookup["with_payload"] = with_payload(req.with_lookup.with_payload)
        if req.with_lookup.HasField("with_vectors"):
            lookup["with_vectors"] = with_vectors(req.with_lookup.with_vectors)
        body["with_lookup"] = lookup
    return body


def _example(ex: pb.VectorExample):
    kind = ex.WhichOneof("example")
    if kind == "id":
        return point_id(ex.id)
    if kind == "vector":
        return vector(ex.vector)
    raise BadRequest("Format error in request: an example must be `id` or `vector`")


def _lookup_location(loc: pb.LookupLocation) -> dict:
    if loc.HasField("shard_key_selector"):
        reject_shard_key({"shard_key": _dump(library(GrpcToRest.convert_shard_key_selector, loc.shard_key_selector))})
    out = {"collection": loc.collection_name}
    if loc.HasField("vector_name"):
        out["vector"] = loc.vector_name
    return out


def _legacy_read(req, body: dict) -> dict:
    """The fields the legacy search-like RPCs share, in their REST spelling."""
    if req.HasField("using"):
        body["using"] = req.using
    if req.HasField("lookup_from"):
        body["lookup_from"] = _lookup_location(req.lookup_from)
    return _read_common(req, body)


def discover(req: pb.DiscoverPoints) -> dict:
    """The REST ``/points/discover`` body."""
    check_fields(req)
    body = {"limit": req.limit,
            "context": [{"positive": _example(p.positive), "negative": _example(p.negative)} for p in req.context]}
    if req.HasField("target"):
        body["target"] = _example(req.target.single)
    return _legacy_read(req, body)


def _recommend_examples(req) -> dict:
    out = {"positive": point_ids(req.positive) + [vector(v) for v in req.positive_vectors],
           "negative": point_ids(req.negative) + [vector(v) for v in req.negative_vectors]}
    if req.HasField("strategy"):
        out["strategy"] = library(GrpcToRest.convert_recommend_strategy, req.strategy).value
    return out


def recommend(req: pb.RecommendPoints) -> dict:
    """The REST ``/points/recommend`` body."""
    check_fields(req)
    return _legacy_read(req, {"limit": req.limit, **_recommend_examples(req)})


def _grouping(req, body: dict) -> dict:
    body["group_by"] = req.group_by
    # Required (no presence) in the legacy messages: 0 reaches the validator, as in Qdrant.
    if not req.DESCRIPTOR.fields_by_name["group_size"].has_presence or req.HasField("group_size"):
        body["group_size"] = req.group_size
    if req.HasField("with_lookup"):
        lookup = {"collection": req.with_lookup.collection}
        if req.with_lookup.HasField("with_payload"):
            lookup["with_payload"] = with_payload(req.with_lookup.with_payload)
        if req.with_lookup.HasField("with_vectors"):
            lookup["with_vectors"] = with_vectors(req.with_lookup.with_vectors)
        body["with_lookup"] = lookup
    return body


def recommend_groups(req: pb.RecommendPointGroups) -> dict:
    """The REST ``/points/recommend/groups`` body."""
    check_fields(req)
    return _grouping(req, _legacy_read(req, {"limit": req.limit, **_recommend_examples(req)}))


def search_groups(req: pb.SearchPointGroups) -> dict:
    """The REST ``/points/search/groups`` body; ``sparse_indices`` make the vector sparse."""
    check_fields(req)
    values = list(req.vector)
    vec = {"indices": list(req.sparse_indices.data), "values": values} if req.HasField("sparse_indices") else values
    body = {"vector": {"name": req.vector_name, "vector": vec} if req.HasField("vector_name") else vec,
            "limit": req.limit}
    return _grouping(req, _read_common(req, body))


def matrix(req: pb.SearchMatrixPoints) -> dict:
    """The REST ``/points/search/matrix/*`` body."""
    check_fields(req)
    body = {}
    if req.HasField("filter"):
        body["filter"] = filter_json(req.filter)
    for field in ("sample", "limit", "using"):
        if req.HasField(field):
            body[field] = getattr(req, field)
    return body


def matrix_pairs(result: dict) -> pb.SearchMatrixPairs:
    return pb.SearchMatrixPairs(pairs=[pb.SearchMatrixPair(a=point_id_message(p["a"]), b=point_id_message(p["b"]),
                                                           score=p["score"]) for p in result["pairs"]])


def matrix_offsets(result: dict) -> pb.SearchMatrixOffsets:
    return pb.SearchMatrixOffsets(offsets_row=result["offsets_row"], offsets_col=result["offsets_col"],
                                  scores=result["scores"], ids=[point_id_message(i) for i in result["ids"]])


def groups_result(result: dict) -> pb.GroupsResult:
    return pb.GroupsResult(groups=[
        pb.PointGroup(id=RestToGrpc.convert_group_id(g["id"]), hits=[scored(h) for h in g["hits"]],
                      **({"lookup": record(g["lookup"])} if g.get("lookup") else {}))
        for g in result["groups"]])


def _clean_filters(body: dict) -> dict:
    if "filter" in body:
        body["filter"] = _drop_empty_clauses(body["filter"])
    prefetch = body.get("prefetch")
    for inner in prefetch if isinstance(prefetch, list) else [prefetch] if prefetch else []:
        _clean_filters(inner)
    return body


# ---- results -> messages ------------------------------------------------------------

_STATUS = {"acknowledged": pb.UpdateStatus.Acknowledged, "completed": pb.UpdateStatus.Completed,
           "wait_timeout": pb.UpdateStatus.WaitTimeout}


def update_result(result: dict) -> pb.UpdateResult:
    return pb.UpdateResult(operation_id=result["operation_id"], status=_STATUS[result["status"]])


def _vector_output(vec) -> pb.VectorOutput:
    if isinstance(vec, dict):  # sparse, as the REST reader shapes it
        return pb.VectorOutput(sparse=pb.SparseVector(indices=vec["indices"], values=list(vec["values"])))
    if getattr(vec, "ndim", 1) == 2:
        return pb.VectorOutput(multi_dense=pb.MultiDenseVector(vectors=[pb.DenseVector(data=row) for row in vec]))
    return pb.VectorOutput(dense=pb.DenseVector(data=vec))


def _vectors_output(value) -> pb.VectorsOutput:
    out = pb.VectorsOutput()
    if isinstance(value, dict):
        out.vectors.SetInParent()  # an empty set of named vectors is still an answer
        for name, vec in value.items():
            out.vectors.vectors[name].CopyFrom(_vector_output(vec))
    else:
        out.vector.CopyFrom(_vector_output(value))
    return out


def point_id_message(pid) -> pb.PointId:
    return RestToGrpc.convert_extended_point_id(pid)


def _point_fields(rec: dict) -> dict:
    fields = {"id": point_id_message(rec["id"])}
    if rec.get("payload") is not None:
        fields["payload"] = payload_to_grpc(rec["payload"])
    if "vector" in rec:
        fields["vectors"] = _vectors_output(rec["vector"])
    return fields


def record(rec: dict) -> pb.RetrievedPoint:
    fields = _point_fields(rec)
    if "order_value" in rec:
        fields["order_value"] = _order_value(rec["order_value"])
    return pb.RetrievedPoint(**fields)


def _order_value(value) -> pb.OrderValue:
    return pb.OrderValue(int=value) if isinstance(value, int) else pb.OrderValue(float=value)


def scored(rec: dict) -> pb.ScoredPoint:
    fields = _point_fields(rec)
    if "order_value" in rec:
        fields["order_value"] = _order_value(rec["order_value"])
    return pb.ScoredPoint(score=rec["score"], version=rec["version"], **fields)


def elapsed(started: float) -> float:
    return time.perf_counter() - started

