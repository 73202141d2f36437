"""Nearest-neighbour search: request parsing shared by /query and /search, and
exact numpy scoring with Qdrant's score definitions.

Cosine vectors are stored normalized, so a Cosine score is a dot product with the
normalized query. Euclid and Manhattan scores are distances: smaller is better.
"""
from dataclasses import dataclass

import numpy as np

from storage.collection import Collection
from storage.config import DEFAULT_VECTOR
from storage.errors import BadRequest, NotFound
from storage.filters import compile_filter
from storage.ids import encode_id, parse_id
from storage.operations import parse_vector
from storage.reads import Shape, _limit
from storage.vectors import VectorStore, normalize

SMALLER_IS_BETTER = {"Euclid", "Manhattan"}


@dataclass
class SearchRequest:
    vector: np.ndarray | None  # the query vector, or None when querying by point id
    point_id: object | None
    using: str
    filter: dict | None
    limit: int
    offset: int
    score_threshold: float | None
    exact: bool
    shape: Shape

    @staticmethod
    def from_query(body: dict) -> "SearchRequest":
        """A /points/query body."""
        query = body.get("query", body.get("nearest"))
        if isinstance(query, dict):
            if "nearest" not in query:
                raise BadRequest("Format error in JSON body: only `nearest` queries (or a vector / point id) "
                                 "are supported")
            query = query["nearest"]
        vector, point_id = None, None
        if isinstance(query, list):
            vector = _query_vector(query)
        elif query is None:
            raise BadRequest("Format error in JSON body: `query` is required")
        else:
            point_id = parse_id(query)
        return SearchRequest._build(body, vector, point_id, _using(body.get("using")),
                                    body.get("with_payload", False), body.get("with_vector", False))

    @staticmethod
    def from_search(body: dict) -> "SearchRequest":
        """A legacy /points/search body: ``vector`` is a list or {name, vector}."""
        raw = body.get("vector")
        using = DEFAULT_VECTOR
        if isinstance(raw, dict):
            using = _using(raw.get("name"))
            raw = raw.get("vector")
        if not isinstance(raw, list):
            raise BadRequest("Format error in JSON body: `vector` must be a list of numbers or {name, vector}")
        return SearchRequest._build(body, _query_vector(raw), None, using,
                                    body.get("with_payload", False),
                                    body.get("with_vector", body.get("with_vectors", False)))

    @staticmethod
    def _build(body, vector, point_id, using, with_payload, with_vector) -> "SearchRequest":
        flt = body.get("filter")
        compile_filter(flt)
        offset = body.get("offset") or 0
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise BadRequest("Format error in JSON body: offset must be a non-negative integer")
        threshold = body.get("score_threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise BadRequest("Format error in JSON body: score_threshold must be a number")
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise BadRequest("Format error in JSON body: params must be an object")
        return SearchRequest(vector, point_id, using, flt, _limit(body.get("limit"), 10), offset,
                             threshold, bool(params.get("exact", False)), Shape(with_payload, with_vector))


def _using(value) -> str:
    if value is None:
        return DEFAULT_VECTOR
    if not isinstance(value, str):
        raise BadRequest("Format error in JSON body: `using` must be a vector name")
    return value


def _query_vector(raw: list) -> np.ndarray:
    return parse_vector(raw, "query")


def scores(store: VectorStore, query: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Qdrant scores of the given slots against an already prepared query."""
    rows = store.matrix[slots]
    if store.distance in ("Cosine", "Dot"):
        return rows @ query
    diff = rows - query
    if store.distance == "Euclid":
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return np.abs(diff).sum(axis=1)


def prepare_query(store: VectorStore, query: np.ndarray) -> np.ndarray:
    return normalize(query) if store.distance == "Cosine" else query.astype(np.float32)


def search(col: Collection, req: SearchRequest) -> list:
    params = col.config.vectors.get(req.using)
    if params is None:
        raise BadRequest(f"Wrong input: Not existing vector name error: {req.using}")
    store = col.vectors[req.using]
    exclude = None
    if req.point_id is not None:
        exclude = encode_id(req.point_id)
        if exclude not in col.points:
            raise NotFound(f"Not found: No point with id {req.point_id} found")
        query = store.get(exclude)
        if query is None:
            raise BadRequest(f"Wrong input: Point {req.point_id} has no vector `{req.using}`")
        query = np.array(query)
    else:
        query = req.vector
        if query.shape[0] != params.size:
            raise BadRequest(f"Wrong input: Vector dimension error: expected dim: {params.size}, "
                             f"got {query.shape[0]}")
    query = prepare_query(store, query)
    slots = np.flatnonzero(store.alive[: store.used])
    flt = compile_filter(req.filter)
    if flt is not None or exclude is not None:
        keep = []
        for slot in slots:
            key = store.keys[slot]
            if key == exclude:
                continue
            point = col.points[key]
            if flt is None or flt.matches(point.id, point.payload, col.vector_names(key)):
                keep.append(slot)
        slots = np.asarray(keep, dtype=np.int64)
    return rank(col, store, req, slots, scores(store, query, slots))


def rank(col: Collection, store: VectorStore, req: SearchRequest, slots: np.ndarray, found: np.ndarray) -> list:
    """Order candidates best first, apply threshold, offset and limit, shape the output."""
    smaller = store.distance in SMALLER_IS_BETTER
    if req.score_threshold is not None:
        keep = found <= req.score_threshold if smaller else found >= req.score_threshold
        slots, found = slots[keep], found[keep]
    want = req.offset + req.limit
    order = np.argsort(found if smaller else -found, kind="stable")[:want]
    out = []
    for i in order[req.offset:]:
        point = col.points[store.keys[slots[i]]]
        rec = req.shape.record(col, point)
        rec["score"] = float(found[i])
        rec["version"] = point.version
        out.append(rec)
    return out
