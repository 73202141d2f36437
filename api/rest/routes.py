"""Qdrant's REST routes for collections and points.

Write handlers parse and validate the body into an operation, publish it, and
answer with an UpdateResult; nothing is published when validation fails. Read
handlers answer from the node's local state.
"""
import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from api import service
from api import shards as sharded
from api.rest import bodies, fields, vector_json
from api.rest.metrics import scrape
from api.rest.responses import JSON, bool_param, error, json_body, ok, ordering_param, timeout_param
from storage import operations as ops
from storage import reads, shards
from storage.collection import Collection
from storage.errors import BadRequest, NotFound, QdrantError
from storage.ids import encode_id, parse_id
from storage.vectors import matrix as distance_matrix
from storage.vectors.search import SearchRequest
from streams.node import Node

VERSION = "1.20.0"
TITLE = "pointlog - Qdrant-compatible event-sourced vector points service"


def handler(fn):
    """Wrap a route: envelope, timing, and Qdrant errors instead of 500s."""
    async def endpoint(request: Request):
        started = time.perf_counter()
        try:
            result = await fn(request, request.app.state.node)
        except QdrantError as exc:
            return error(exc, started)
        if isinstance(result, Response):  # JSON of its own, a file
            return result
        return ok(result, started)
    endpoint.__name__ = fn.__name__
    return endpoint


def _collection(request: Request, node: Node, sharded: bool = False) -> Collection:
    """The collection of the path; a sharded one only for the routes that read it
    through api/shards.py (``sharded``), so no other reads its empty catalog entry."""
    return service.collection(node, request.path_params["collection"], sharded)


# ---- service and collections --------------------------------------------------

async def root(request: Request) -> JSON:
    return JSON({"title": TITLE,
                 "version": VERSION, "commit": None})


async def healthz(request: Request):
    """Liveness, as Qdrant answers it (``/healthz`` and ``/livez``)."""
    return PlainTextResponse("healthz check passed")


async def readyz(request: Request):
    reason = service.not_ready(request.app.state.node)
    if reason is not None:
        return PlainTextResponse(f"not ready: {reason}", status_code=503)
    return PlainTextResponse("all shards are ready")


@handler
async def take_checkpoint(request: Request, node: Node):
    """Admin: checkpoint this node (``{"path": "/abs/dir"}``, default under its data dir)."""
    body = await json_body(request, required=False)
    path = body.get("path") if isinstance(body, dict) else None
    return await node.checkpoint(path)


@handler
async def list_collections(request: Request, node: Node):
    return {"collections": [{"name": name} for name in service.list_collections(node)]}


@handler
async def collection_exists(request: Request, node: Node):
    return {"exists": service.exists(node, request.path_params["collection"])}


@handler
async def get_collection(request: Request, node: Node):
    return await service.collection_info_of(node, _collection(request, node, sharded=True))


@handler
async def create_collection(request: Request, node: Node):
    op = bodies.parse(ops.CreateCollection, await json_body(request))
    ordering_param(request)
    return await service.create_collection(node, request.path_params["collection"], op, timeout_param(request))


@handler
async def update_collection(request: Request, node: Node):
    op = bodies.parse(ops.UpdateCollection, await json_body(request, required=False))
    return await service.update_collection(node, request.path_params["collection"], op, timeout_param(request))


@handler
async def update_aliases(request: Request, node: Node):
    op = bodies.parse(ops.UpdateAliases, await json_body(request))
    return await service.update_aliases(node, op, timeout_param(request))


@handler
async def list_aliases(request: Request, node: Node):
    return service.list_aliases(node)


@handler
async def collection_aliases(request: Request, node: Node):
    return service.list_aliases(node, request.path_params["collection"])


@handler
async def delete_collection(request: Request, node: Node):
    ordering_param(request)
    return await service.delete_collection(node, request.path_params["collection"], timeout_param(request))


# ---- point writes --------------------------------------------------------------

async def _parse_write(request: Request, node: Node, op_class, body=None):
    """Checks in Qdrant's order: the body, the query string, the collection, then
    what needs the collection's config. Nothing is published unless all pass."""
    op = bodies.parse(op_class, await json_body(request) if body is None else body)
    wait = bool_param(request, "wait")
    timeout = timeout_param(request)
    ordering_param(request)
    col = service.check_write(node, request.path_params["collection"], op, timeout)
    return col, op, wait, timeout


# Writes whose bodies carry dense vectors: decoded by simdjson when plain.
_VECTOR_BODIES = (ops.Upsert, ops.UpdateVectors)


def write_handler(op_class):
    @handler
    async def write(request: Request, node: Node):
        body = vector_json.loads(await request.body()) if op_class in _VECTOR_BODIES else None
        col, op, wait, timeout = await _parse_write(request, node, op_class, body)
        return await service.submit(node, col.name, op, wait, timeout)
    write.__name__ = f"write_{op_class.kind}"
    return write


@handler
async def batch_update(request: Request, node: Node):
    col, op, wait, timeout = await _parse_write(request, node, ops.Batch)
    result = await service.submit(node, col.name, op, wait, timeout)
    return [result for _ in op.operations]


@handler
async def delete_field_index(request: Request, node: Node):
    body = {"field_name": request.path_params["field_name"]}  # the path is the whole request
    col, op, wait, timeout = await _parse_write(request, node, ops.DeleteFieldIndex, body)
    return await service.submit(node, col.name, op, wait, timeout)


# ---- point reads ---------------------------------------------------------------

@handler
async def retrieve_points(request: Request, node: Node):
    body = await _read_body(request)
    col = _collection(request, node, sharded=True)
    fields.only(body, "retrieve")
    if body.get("ids") is None:
        raise BadRequest("Format error in JSON body: missing field `ids`")
    if not isinstance(body["ids"], list):
        raise BadRequest("Format error in JSON body: ids must be a list of point ids")
    return await service.retrieve(node, col, body["ids"], body)


@handler
async def get_point(request: Request, node: Node):
    col = _collection(request, node, sharded=True)
    raw = request.path_params["point_id"]
    try:
        pid = parse_id(int(raw) if raw.isascii() and raw.isdigit() else raw)
    except BadRequest:
        raise BadRequest(f"Deserialize error in path parameters: value {raw} is not a valid point ID, "
                         "valid values are either an unsigned integer or a UUID") from None
    if shards.is_sharded(col):
        return await sharded.get_point(node, col, pid)
    point = col.get(encode_id(pid))
    if point is None:
        raise NotFound(f"Not found: No point with id {pid} found")
    return reads.Shape(True, True).record(col, point)


@handler
async def scroll_points(request: Request, node: Node):
    body = await _read_body(request, required=False)
    col = _collection(request, node, sharded=True)
    fields.only(body, "scroll")
    service.check_read(col, "scroll", body, timeout_param(request))
    return await service.scroll_page(node, col, body)


@handler
async def count_points(request: Request, node: Node):
    body = await _read_body(request, required=False)
    col = _collection(request, node, sharded=True)
    fields.only(body, "count")
    service.check_read(col, "count", body, timeout_param(request))
    return {"count": await service.count(node, col, body)}


@handler
async def facet_counts(request: Request, node: Node):
    body = await _read_body(request)
    col = _collection(request, node, sharded=True)
    fields.only(body, "facet")
    service.check_read(col, "facet", body, timeout_param(request))
    return await service.facet_of(node, col, body)


def _query(body) -> SearchRequest:
    body = _object(body)
    req = SearchRequest.from_query(body)
    _only_search_fields(body, "query")
    return req


def _search(body) -> SearchRequest:
    body = _object(body)
    req = SearchRequest.from_search(body)
    _only_search_fields(body, "search")
    return req


def _only_search_fields(body: dict, kind: str) -> None:
    fields.only(body, kind)
    fields.only(body.get("params"), "params", "params.")
    fields.only(body.get("lookup_from"), "lookup_from", "lookup_from.")


def _searches(body: dict) -> list:
    fields.only(body, "batch_searches")
    if body.get("searches") is None:
        raise BadRequest("Format error in JSON body: missing field `searches`")
    if not isinstance(body["searches"], list):
        raise BadRequest("Format error in JSON body: searches must be a list")
    return body["searches"]


def _searched(request: Request, node: Node, body: dict, sharded: bool = False) -> Collection:
    """The collection a search-like body reads, once the body passes its strict mode."""
    col = _collection(request, node, sharded)
    service.check_read(col, "search", body, timeout_param(request))
    return col


def _batch(request: Request, node: Node, searches: list, sharded: bool = False) -> Collection:
    col = _collection(request, node, sharded)
    service.check_batch(col, searches, timeout_param(request))
    return col


@handler
async def query_points(request: Request, node: Node):
    body = await _read_body(request)
    req = _query(body)
    col = _searched(request, node, body, sharded=True)
    return {"points": (await service.search_all(node, col, "query", [body], [req]))[0]}


@handler
async def query_groups(request: Request, node: Node):
    body = await _read_body(request)
    _only_search_fields(body, "groups")
    return await service.query_groups(node, request.path_params["collection"], body, timeout_param(request))


@handler
async def query_batch(request: Request, node: Node):
    searches = _searches(await _read_body(request))
    reqs = [_query(s) for s in searches]
    col = _batch(request, node, searches, sharded=True)
    return [{"points": found} for found in await service.search_all(node, col, "query", searches, reqs)]


@handler
async def search_points(request: Request, node: Node):
    body = await _read_body(request)
    req = _search(body)
    col = _searched(request, node, body, sharded=True)
    return (await service.search_all(node, col, "search", [body], [req]))[0]


def _recommend(body) -> SearchRequest:
    body = _object(body)
    req = SearchRequest.from_recommend(body)
    _only_search_fields(body, "recommend")
    return req


@handler
async def recommend_points(request: Request, node: Node):
    """The legacy endpoint: the answer is the list of points, as /points/search gives."""
    body = await _read_body(request)
    req = _recommend(body)
    col = _searched(request, node, body, sharded=True)
    return (await service.search_all(node, col, "recommend", [body], [req]))[0]


@handler
async def recommend_batch(request: Request, node: Node):
    searches = _searches(await _read_body(request))
    reqs = [_recommend(s) for s in searches]
    col = _batch(request, node, searches, sharded=True)
    return await service.search_all(node, col, "recommend", searches, reqs)


@handler
async def search_batch(request: Request, node: Node):
    searches = _searches(await _read_body(request))
    reqs = [_search(s) for s in searches]
    col = _batch(request, node, searches, sharded=True)
    return await service.search_all(node, col, "search", searches, reqs)


@handler
async def search_groups(request: Request, node: Node):
    body = await _read_body(request)
    _only_search_fields(body, "search_groups")
    return await service.query_groups(node, request.path_params["collection"], service.search_groups_query(body))


@handler
async def recommend_groups(request: Request, node: Node):
    body = await _read_body(request)
    _only_search_fields(body, "recommend_groups")
    return await service.query_groups(node, request.path_params["collection"], service.recommend_groups_query(body))


def _discover(body) -> SearchRequest:
    body = _object(body)
    req = SearchRequest.from_discover(body)
    _only_search_fields(body, "discover")
    return req


@handler
async def discover_points(request: Request, node: Node):
    """The legacy endpoint: the answer is the list of points, as /points/search gives."""
    body = await _read_body(request)
    req = _discover(body)
    col = _searched(request, node, body, sharded=True)
    return (await service.search_all(node, col, "discover", [body], [req]))[0]


@handler
async def discover_batch(request: Request, node: Node):
    searches = _searches(await _read_body(request))
    reqs = [_discover(s) for s in searches]
    col = _batch(request, node, searches, sharded=True)
    return await service.search_all(node, col, "discover", searches, reqs)


async def _matrix(request: Request, node: Node) -> tuple:
    body = await _read_body(request, required=False)
    fields.only(body, "matrix")
    return await service.matrix(node, request.path_params["collection"], body)


@handler
async def matrix_pairs(request: Request, node: Node):
    return distance_matrix.pairs(*await _matrix(request, node))


@handler
async def matrix_offsets(request: Request, node: Node):
    return distance_matrix.offsets(*await _matrix(request, node))


async def _read_body(request: Request, required: bool = True) -> dict:
    """A read request's JSON object; shard keys are refused like in writes."""
    return _object(await json_body(request, required=required))


def _object(value) -> dict:
    if not isinstance(value, dict):
        raise BadRequest("Format error in JSON body: expected a JSON object")
    bodies.reject_shard_key(value)
    return value


_C = "/collections/{collection}"

ROUTES = [
    Route("/", root),
    Route("/metrics", scrape),
    Route("/healthz", healthz),
    Route("/livez", healthz),
    Route("/readyz", readyz),
    Route("/pointlog/checkpoint", take_checkpoint, methods=["POST"]),
    Route("/collections", list_collections),
    Route("/collections/aliases", update_aliases, methods=["POST"]),
    Route("/aliases", list_aliases, methods=["GET"]),
    Route(_C + "/aliases", collection_aliases, methods=["GET"]),
    Route(_C + "/exists", collection_exists),
    Route(_C, get_collection, methods=["GET"]),
    Route(_C, create_collection, methods=["PUT"]),
    Route(_C, delete_collection, methods=["DELETE"]),
    Route(_C, update_collection, methods=["PATCH"]),
    Route(_C + "/index", write_handler(ops.CreateFieldIndex), methods=["PUT"]),
    Route(_C + "/index/{field_name}", delete_field_index, methods=["DELETE"]),
    Route(_C + "/points", write_handler(ops.Upsert), methods=["PUT"]),
    Route(_C + "/points", retrieve_points, methods=["POST"]),
    Route(_C + "/points/batch", batch_update, methods=["POST"]),
    Route(_C + "/points/vectors", write_handler(ops.UpdateVectors), methods=["PUT"]),
    Route(_C + "/points/vectors/delete", write_handler(ops.DeleteVectors), methods=["POST"]),
    Route(_C + "/points/payload", write_handler(ops.SetPayload), methods=["POST"]),
    Route(_C + "/points/payload", write_handler(ops.OverwritePayload), methods=["PUT"]),
    Route(_C + "/points/payload/delete", write_handler(ops.DeletePayload), methods=["POST"]),
    Route(_C + "/points/payload/clear", write_handler(ops.ClearPayload), methods=["POST"]),
    Route(_C + "/points/delete", write_handler(ops.DeletePoints), methods=["POST"]),
    Route(_C + "/points/scroll", scroll_points, methods=["POST"]),
    Route(_C + "/facet", facet_counts, methods=["POST"]),
    Route(_C + "/points/count", count_points, methods=["POST"]),
    Route(_C + "/points/query", query_points, methods=["POST"]),
    Route(_C + "/points/query/batch", query_batch, methods=["POST"]),
    Route(_C + "/points/query/groups", query_groups, methods=["POST"]),
    Route(_C + "/points/search", search_points, methods=["POST"]),
    Route(_C + "/points/search/batch", search_batch, methods=["POST"]),
    Route(_C + "/points/recommend", recommend_points, methods=["POST"]),
    Route(_C + "/points/recommend/batch", recommend_batch, methods=["POST"]),
    Route(_C + "/points/search/groups", search_groups, methods=["POST"]),
    Route(_C + "/points/recommend/groups", recommend_groups, methods=["POST"]),
    Route(_C + "/points/discover", discover_points, methods=["POST"]),
    Route(_C + "/points/discover/batch", discover_batch, methods=["POST"]),
    Route(_C + "/points/search/matrix/pairs", matrix_pairs, methods=["POST"]),
    Route(_C + "/points/search/matrix/offsets", matrix_offsets, methods=["POST"]),
    Route(_C + "/points/{point_id}", get_point, methods=["GET"]),
]
