"""No field is accepted and ignored: every field of the pinned client's request models,
for every endpoint pointlog serves, either is one pointlog honours (api/rest/fields.py,
each tested where its feature is) or is refused with a 400 naming it, publishing nothing."""
import uuid

import httpx
import pytest
from qdrant_client.http import models

from api.rest.fields import ACCEPTED
from storage.vectors import discover, feedback, formula, mmr
from tests.support import end_offsets

# kind -> (client model, method, path under the collection, a body that is valid without the field)
ENDPOINTS = {
    "create_collection": (models.CreateCollection, "PUT", None, {"vectors": {"size": 2, "distance": "Dot"}}),
    "update_collection": (models.UpdateCollection, "PATCH", "", {}),
    "vector_diff": (models.VectorParamsDiff, "PATCH", "", {"vectors": {"": {}}}),
    "create_field_index": (models.CreateFieldIndex, "PUT", "/index", {"field_name": "k", "field_schema": "keyword"}),
    "upsert": (models.PointsList, "PUT", "/points", {"points": [{"id": 1, "vector": [1, 2]}]}),
    "update_vectors": (models.UpdateVectors, "PUT", "/points/vectors", {"points": [{"id": 1, "vector": [1, 2]}]}),
    "delete_vectors": (models.DeleteVectors, "POST", "/points/vectors/delete", {"points": [1], "vector": [""]}),
    "set_payload": (models.SetPayload, "POST", "/points/payload", {"points": [1], "payload": {"a": 1}}),
    "overwrite_payload": (models.SetPayload, "PUT", "/points/payload", {"points": [1], "payload": {"a": 1}}),
    "delete_payload": (models.DeletePayload, "POST", "/points/payload/delete", {"points": [1], "keys": ["a"]}),
    "clear_payload": (models.PointIdsList, "POST", "/points/payload/clear", {"points": [1]}),
    "delete": (models.FilterSelector, "POST", "/points/delete", {"filter": {"must": []}}),
    "batch": (models.UpdateOperations, "POST", "/points/batch", {"operations": []}),
    "retrieve": (models.PointRequest, "POST", "/points", {"ids": [1]}),
    "scroll": (models.ScrollRequest, "POST", "/points/scroll", {}),
    "count": (models.CountRequest, "POST", "/points/count", {}),
    "facet": (models.FacetRequest, "POST", "/facet", {"key": "k"}),
    "query": (models.QueryRequest, "POST", "/points/query", {"query": [1, 2]}),
    "batch_searches": (models.QueryRequestBatch, "POST", "/points/query/batch", {"searches": []}),
    "groups": (models.QueryGroupsRequest, "POST", "/points/query/groups", {"query": [1, 2], "group_by": "k"}),
    "params": (models.SearchParams, "POST", "/points/query", {"query": [1, 2], "params": {}}),
    "lookup_from": (models.LookupLocation, "POST", "/points/query", {"query": 1, "lookup_from": {"collection": None}}),
    "point": (models.PointStruct, "PUT", "/points", {"points": [{"id": 1, "vector": [1, 2]}]}),
    "batch_columns": (models.Batch, "PUT", "/points", {"batch": {"ids": [1], "vectors": [[1, 2]]}}),
    "point_vectors": (models.PointVectors, "PUT", "/points/vectors", {"points": [{"id": 1, "vector": [1, 2]}]}),
    "update_aliases": (models.ChangeAliasesOperation, "POST", None, {"actions": []}),
    "matrix": (models.SearchMatrixRequest, "POST", "/points/search/matrix/pairs", {}),
}
# Names pointlog takes beside the model's own: Qdrant's body aliases.
ALIASES = {"vectors", "with_vectors"}


def where(kind: str, body: dict, field: str) -> dict:
    """``body`` with ``field`` set, at the place the kind describes."""
    body = {k: (dict(v) if isinstance(v, dict) else v) for k, v in body.items()}
    if kind == "params":
        body["params"] = {field: {}}
    elif kind == "lookup_from":
        body["lookup_from"] = {"collection": COLLECTION, field: "x"}
    elif kind in ("point", "point_vectors"):
        body["points"] = [{**body["points"][0], field: {}}]
    elif kind == "vector_diff":
        body["vectors"] = {"": {field: {}}}
    elif kind == "batch_columns":
        body["batch"] = {**body["batch"], field: {}}
    else:
        body[field] = {"anything": 1}
    return body


COLLECTION = f"fields_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def node(module_server):
    r = httpx.put(f"{module_server.url}/collections/{COLLECTION}", json={"vectors": {"size": 2, "distance": "Dot"}})
    assert r.status_code == 200, r.text
    assert r.status_code == 200, r.text
    r = httpx.put(f"{module_server.url}/collections/{COLLECTION}/points?wait=true",
                  json={"points": [{"id": 1, "vector": [1, 2]}]})
    assert r.status_code == 200, r.text
    return module_server


def test_the_table_names_only_fields_the_client_knows():
    # Legacy endpoints the pinned client has no request model for any more.
    assert set(ENDPOINTS) | {"search", "recommend", "delete_field_index", "discover", "search_groups",
                             "recommend_groups"} == set(ACCEPTED)
    for kind, (model, *_rest) in ENDPOINTS.items():
        unknown = ACCEPTED[kind] - set(model.model_fields) - ALIASES
        if kind == "upsert":
            unknown -= set(models.PointsBatch.model_fields)
        if kind in ("clear_payload", "delete"):
            unknown -= set(models.PointIdsList.model_fields) | set(models.FilterSelector.model_fields)
        assert not unknown, (kind, unknown)


CASES = [(kind, field) for kind, (model, *_rest) in ENDPOINTS.items()
         for field in sorted(model.model_fields) if field not in ACCEPTED[kind]]


@pytest.mark.parametrize("kind,field", CASES, ids=[f"{k}.{f}" for k, f in CASES])
def test_a_field_pointlog_does_not_honour_is_refused_by_name(node, broker, kind, field):
    _model, method, suffix, body = ENDPOINTS[kind]
    if kind == "update_aliases":
        path = "/collections/aliases"
    elif suffix is None:
        path = f"/collections/new_{uuid.uuid4().hex[:8]}"
    else:
        path = f"/collections/{COLLECTION}{suffix}"
    before = end_offsets(broker.bootstrap, node.topic)
    r = httpx.request(method, node.url + path + "?wait=true", json=where(kind, body, field), timeout=30)
    assert r.status_code == 400, (kind, field, r.text)
    assert f"{field}`" in r.json()["status"]["error"], r.text
    assert end_offsets(broker.bootstrap, node.topic) == before


# Objects inside a query: every field of the client's model is one the parser takes
# (each tested against local mode where its feature is), and any other is refused by name.
_Q = "/points/query"
_PREFETCH = {"prefetch": {"query": [1, 2]}}
NESTED = [
    (models.Mmr, mmr.FIELDS, {"query": {"nearest": [1, 2], "mmr": {}}}, ("query", "mmr"), "query.mmr"),
    (models.DiscoverInput, discover.DISCOVER_FIELDS, {"query": {"discover": {"target": 1, "context": []}}},
     ("query", "discover"), "query.discover"),
    (models.ContextPair, discover.PAIR_FIELDS, {"query": {"context": [{"positive": 1, "negative": [1, 1]}]}},
     ("query", "context", 0), "query.context[0]"),
    (models.RelevanceFeedbackInput, feedback.FIELDS, {"query": {"relevance_feedback": {
        "target": 1, "feedback": [{"example": [1, 1], "score": 1}], "strategy": {"naive": {"a": 1, "b": 1, "c": 1}}}}},
     ("query", "relevance_feedback"), "query.relevance_feedback"),
    (models.FeedbackItem, feedback.ITEM_FIELDS, {"query": {"relevance_feedback": {
        "target": 1, "feedback": [{"example": [1, 1], "score": 1}], "strategy": {"naive": {"a": 1, "b": 1, "c": 1}}}}},
     ("query", "relevance_feedback", "feedback", 0), "query.relevance_feedback.feedback[0]"),
    (models.NaiveFeedbackStrategyParams, feedback.NAIVE_FIELDS, {"query": {"relevance_feedback": {
        "target": 1, "feedback": [], "strategy": {"naive": {"a": 1, "b": 1, "c": 1}}}}},
     ("query", "relevance_feedback", "strategy", "naive"), "query.relevance_feedback.strategy.naive"),
    (models.FormulaQuery, formula.FIELDS, {**_PREFETCH, "query": {"formula": "$score"}}, ("query",), "query"),
    (models.DecayParamsExpression, formula.DECAY_FIELDS, {**_PREFETCH, "query": {"formula": {"exp_decay": {"x": 1}}}},
     ("query", "formula", "exp_decay"), "query.formula.exp_decay"),
    (models.DivParams, formula.DIV_FIELDS, {**_PREFETCH, "query": {"formula": {"div": {"left": 1, "right": 2}}}},
     ("query", "formula", "div"), "query.formula.div"),
    (models.PowParams, formula.POW_FIELDS, {**_PREFETCH, "query": {"formula": {"pow": {"base": 1, "exponent": 2}}}},
     ("query", "formula", "pow"), "query.formula.pow"),
    (models.GeoDistanceParams, formula.GEO_FIELDS, {**_PREFETCH, "query": {"formula": {"geo_distance": {
        "origin": {"lon": 1, "lat": 2}, "to": "loc"}}}}, ("query", "formula", "geo_distance"),
     "query.formula.geo_distance"),
]


@pytest.mark.parametrize("model,taken,body,at,name", NESTED, ids=[n[0].__name__ for n in NESTED])
def test_objects_inside_a_query_take_their_model_s_fields_and_refuse_others(node, broker, model, taken, body, at,
                                                                           name):
    import copy
    assert set(taken) == set(model.model_fields)
    body = copy.deepcopy(body)
    target = body
    for step in at:
        target = target[step]
    target["bogus"] = 1
    before = end_offsets(broker.bootstrap, node.topic)
    r = httpx.post(f"{node.url}/collections/{COLLECTION}{_Q}", json=body, timeout=30)
    assert r.status_code == 400 and f"`{name}.bogus` is not supported" in r.text, r.text
    assert end_offsets(broker.bootstrap, node.topic) == before
