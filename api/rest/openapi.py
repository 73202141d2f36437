"""``GET /openapi.json``: the REST API pointlog serves, generated, never hand-kept.

The paths and methods are the routes (api/rest/routes.py); each request body is the
pinned qdrant-client's pydantic model for it (the models users send) cut down to the
fields pointlog takes (api/rest/fields.py's ACCEPTED), with nothing else allowed. The
legacy search and recommend bodies, for which the client has no model any more, are
built from the ACCEPTED table and the query model's field schemas. A route that takes
a body and has no entry below fails the generation (and its test), so the document
cannot fall behind the routes.
"""
import copy
from functools import lru_cache

from qdrant_client.http import models

from api.rest.access import need_of
from api.rest.fields import ACCEPTED
from api.rest.routes import ROUTES, TITLE, VERSION

_REF = "#/components/schemas/{model}"
_C = "/collections/{collection}"

# The client model of each body (or nested object) and the ACCEPTED kind that says
# which of its fields pointlog takes.
MODEL_KINDS = {
    "CreateCollection": "create_collection", "UpdateCollection": "update_collection",
    "VectorParamsDiff": "vector_diff", "CreateFieldIndex": "create_field_index",
    "PointsList": "upsert", "PointsBatch": "upsert", "PointStruct": "point", "Batch": "batch_columns",
    "UpdateVectors": "update_vectors", "PointVectors": "point_vectors", "DeleteVectors": "delete_vectors",
    "SetPayload": "set_payload", "DeletePayload": "delete_payload", "PointIdsList": "delete",
    "FilterSelector": "delete", "UpdateOperations": "batch", "ChangeAliasesOperation": "update_aliases",
    "PointRequest": "retrieve", "ScrollRequest": "scroll", "CountRequest": "count", "FacetRequest": "facet",
    "QueryRequest": "query", "QueryRequestBatch": "batch_searches", "QueryGroupsRequest": "groups",
    "SearchParams": "params", "LookupLocation": "lookup_from",
}
# Names pointlog also takes for a model's field (Qdrant's body aliases).
ALIASES = {"with_vectors": "with_vector", "vectors": "vector"}

# (method, route) -> the body: a model, models (any of), (model, kind) for a model
# used with another kind's fields, or a legacy kind; and whether it may be left out.
BODIES = {
    ("PUT", _C): ("CreateCollection", False),
    ("PATCH", _C): ("UpdateCollection", True),
    ("PUT", _C + "/index"): ("CreateFieldIndex", False),
    ("PUT", _C + "/points"): (["PointsList", "PointsBatch"], False),
    ("POST", _C + "/points"): ("PointRequest", False),
    ("POST", _C + "/points/batch"): ("UpdateOperations", False),
    ("PUT", _C + "/points/vectors"): ("UpdateVectors", False),
    ("POST", _C + "/points/vectors/delete"): ("DeleteVectors", False),
    ("POST", _C + "/points/payload"): ("SetPayload", False),
    ("PUT", _C + "/points/payload"): (("SetPayload", "overwrite_payload"), False),
    ("POST", _C + "/points/payload/delete"): ("DeletePayload", False),
    ("POST", _C + "/points/payload/clear"): (["PointIdsList", "FilterSelector"], False),
    ("POST", _C + "/points/delete"): (["PointIdsList", "FilterSelector"], False),
    ("POST", _C + "/points/scroll"): ("ScrollRequest", True),
    ("POST", _C + "/points/count"): ("CountRequest", True),
    ("POST", _C + "/facet"): ("FacetRequest", False),
    ("POST", _C + "/points/query"): ("QueryRequest", False),
    ("POST", _C + "/points/query/batch"): ("QueryRequestBatch", False),
    ("POST", _C + "/points/query/groups"): ("QueryGroupsRequest", False),
    ("POST", _C + "/points/search"): ("search", False),
    ("POST", _C + "/points/search/batch"): ("search[]", False),
    ("POST", _C + "/points/recommend"): ("recommend", False),
    ("POST", _C + "/points/recommend/batch"): ("recommend[]", False),
    ("POST", _C + "/points/search/groups"): ("search_groups", False),
    ("POST", _C + "/points/recommend/groups"): ("recommend_groups", False),
    ("POST", _C + "/points/discover"): ("discover", False),
    ("POST", _C + "/points/discover/batch"): ("discover[]", False),
    ("POST", _C + "/points/search/matrix/pairs"): ("matrix", False),
    ("POST", _C + "/points/search/matrix/offsets"): ("matrix", False),
    ("POST", "/collections/aliases"): ("ChangeAliasesOperation", False),
    ("POST", "/pointlog/checkpoint"): ("checkpoint", True),
}
_LEGACY = {"search", "recommend", "search_groups", "recommend_groups", "discover", "matrix"}
_REQUIRED = {"search": ["vector"], "search_groups": ["vector", "group_by", "limit", "group_size"],
             "recommend_groups": ["group_by", "limit", "group_size"], "discover": ["limit"]}
# Query parameters pointlog reads, by route kind.
_WRITE_PARAMS = ("wait", "ordering", "timeout")
_PARAMS = {
    "wait": {"type": "boolean"},
    "ordering": {"type": "string", "enum": ["weak", "medium", "strong"]},
    "timeout": {"type": "integer", "minimum": 1},
}


def _restrict(schema: dict, kind: str) -> dict:
    """The model's schema with only the fields ``kind`` takes (its aliases included)."""
    accepted = ACCEPTED[kind]
    props = schema.get("properties", {})
    kept = {name: s for name, s in props.items() if name in accepted}
    for alias, field in ALIASES.items():
        if alias in accepted and alias not in kept and field in props:
            kept[alias] = props[field]
    out = {**schema, "properties": kept, "additionalProperties": False}
    if "required" in schema:
        out["required"] = [name for name in schema["required"] if name in kept]
    return out


def _model_schema(name: str, components: dict) -> dict:
    """A $ref to ``name``; its schema and those it uses go into ``components``."""
    model = getattr(models, name)
    schema = model.model_json_schema(ref_template=_REF)
    for dep, dep_schema in schema.pop("$defs", {}).items():
        components.setdefault(dep, _restrict(dep_schema, MODEL_KINDS[dep]) if dep in MODEL_KINDS else dep_schema)
    components[name] = _restrict(schema, MODEL_KINDS[name]) if name in MODEL_KINDS else schema
    return {"$ref": _REF.format(model=name)}


def _legacy(kind: str, components: dict) -> dict:
    """Search and recommend bodies: the ACCEPTED fields, typed as the query model types
    the same names (any JSON value where it has none)."""
    _model_schema("QueryRequest", components)
    donor = components["QueryRequest"]["properties"]
    query = getattr(models, "QueryRequest").model_json_schema(ref_template=_REF)["properties"]
    props = {}
    for name in sorted(ACCEPTED[kind]):
        props[name] = copy.deepcopy(donor.get(name) or query.get(ALIASES.get(name, name)) or {})
    required = [name for name in _REQUIRED.get(kind, []) if name in props]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _body(spec, components: dict) -> dict:
    if isinstance(spec, list):
        return {"anyOf": [_model_schema(name, components) for name in spec]}
    if isinstance(spec, tuple):  # a model with another kind's fields, inline
        name, kind = spec
        _model_schema(name, components)
        schema = copy.deepcopy(getattr(models, name).model_json_schema(ref_template=_REF))
        schema.pop("$defs", None)
        return _restrict(schema, kind)
    if spec == "checkpoint":
        return {"type": "object", "properties": {"path": {"type": "string"}}, "additionalProperties": False}
    if spec.endswith("[]"):
        one = _legacy(spec[:-2], components)
        return {"type": "object", "properties": {"searches": {"type": "array", "items": one}},
                "required": ["searches"], "additionalProperties": False}
    if spec in _LEGACY:
        return _legacy(spec, components)
    return _model_schema(spec, components)


def _path_parameter(name: str) -> dict:
    if name == "point_id":
        schema = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "format": "uuid"}]}
    else:
        schema = {"type": "string", "minLength": 1, "maxLength": 255}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_parameters(method: str, path: str) -> list:
    """wait/ordering/timeout where a route publishes: point writes take all three,
    collection and alias changes the timeout (and creation and deletion ordering)."""
    need, _own = need_of(method, path)
    if not need.write or path == "/pointlog/checkpoint":
        names = ()
    elif path.startswith(_C + "/"):
        names = _WRITE_PARAMS
    elif path == _C and method in ("PUT", "DELETE"):
        names = ("ordering", "timeout")
    else:
        names = ("timeout",)
    return [{"name": n, "in": "query", "required": False, "schema": _PARAMS[n]} for n in names]


_RESPONSES = {
    "200": {"description": "Qdrant's envelope: result, status, time",
            "content": {"application/json": {"schema": {"type": "object"}}}},
    "default": {"description": "Qdrant's error envelope: status.error names the problem",
                "content": {"application/json": {"schema": {"type": "object"}}}},
}


@lru_cache(maxsize=1)
def document() -> dict:
    components: dict = {}
    paths: dict = {}
    for route in ROUTES:
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        for method in methods:
            params = [_path_parameter(name) for name in route.param_convertors]
            op = {"operationId": f"{method.lower()}_{route.name}", "parameters": params + _query_parameters(
                method, route.path), "responses": _RESPONSES}
            if method in ("POST", "PUT", "PATCH"):
                if (method, route.path) not in BODIES:
                    raise LookupError(f"no request body described for {method} {route.path} (api/rest/openapi.py)")
                spec, optional = BODIES[(method, route.path)]
                op["requestBody"] = {"required": not optional,
                                     "content": {"application/json": {"schema": _body(spec, components)}}}
            paths.setdefault(route.path, {})[method.lower()] = op
    paths["/openapi.json"] = {"get": {"operationId": "get_openapi", "responses": _RESPONSES}}
    return {"openapi": "3.1.0", "info": {"title": TITLE, "version": VERSION}, "paths": paths,
            "components": {"schemas": dict(sorted(components.items()))}}
