"""Queries scored against examples rather than one query vector: recommend
(storage/vectors/recommend.py), discover and context (discover.py) and relevance
feedback (feedback.py). They share:

- examples given as a vector or as a point id, whose stored vector is looked up
  (``resolve``); ids of the searched collection are left out of the answer;
- the similarity Qdrant uses inside the engine, where bigger is always better: dot
  products (with unit-length vectors for Cosine), the negated squared Euclidean and
  the negated Manhattan distance (``similarity``);
- an exact scan of every point matching the filter, ranked by the query's own score
  (``run``), ties in id order. Only dense vectors are served.

Each query class has ``resolve(vector_of) -> (query, ids it named)``, ``vectors()``
(every example vector, for the dimension check), ``check()`` (Qdrant's refusals
that need no collection) and ``scores(store, rows) -> float32 array``; a recommend
with ``average_vector`` also has ``nearest()``, the single vector it searches for.
"""
from dataclasses import replace

import numpy as np

from storage.collection import Collection
from storage.errors import BadRequest
from storage.filters import compile_filter, merge_filters
from storage.ids import parse_id
from storage.values import parse_vector
from storage.vectors.annoy_index import IndexParams
from storage.vectors.store import EPSILON, VectorStore, normalize


def example(value, where: str):
    """A vector (float32 array) or ("id", point id) until resolved."""
    if isinstance(value, list):
        return parse_vector(value, where)
    return "id", parse_id(value)


def resolve_one(item, vector_of, ids: list):
    if isinstance(item, tuple):
        ids.append(item[1])
        return np.asarray(vector_of(item[1]), dtype=np.float32)
    return item


def similarity(store: VectorStore, rows: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Qdrant's internal similarity of each row to ``vec`` (bigger is better)."""
    if store.distance == "Cosine":
        return np.einsum("ij,j->i", rows, normalize(vec))
    if store.distance == "Dot":
        return np.einsum("ij,j->i", rows, vec.astype(np.float32))
    diff = rows - vec.astype(np.float32)
    if store.distance == "Euclid":
        return -np.einsum("ij,ij->i", diff, diff)
    return -np.abs(diff).sum(axis=1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Qdrant's fast sigmoid, x / (1 + |x|), in (-1, 1)."""
    return x / (np.float32(1.0) + np.abs(x))


def scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    """The fast sigmoid scaled into (0, 1)."""
    return np.float32(0.5) * (sigmoid(x) + np.float32(1.0))


def dense_store(col: Collection, using: str, kind: str) -> VectorStore:
    if using in col.config.sparse or using in col.multi:
        raise BadRequest(f"Bad request: {kind} queries over `{using}` are not supported by pointlog: "
                         "only over dense vectors")
    store = col.vectors.get(using)
    if store is None:
        raise BadRequest(f"Wrong input: Not existing vector name error: {using}")
    return store


def run(col: Collection, req, params: IndexParams, search, exact_slots, records) -> list:
    """``search``, ``exact_slots`` and ``records`` are storage.vectors.search's (which
    imports this module)."""
    query = req.examples
    store = dense_store(col, req.using, query.kind)
    query, mentioned = query.resolve(lambda pid: col.stored_vector(pid, req.using))
    for vec in query.vectors():
        if vec.ndim != 1 or vec.shape[0] != store.dim:
            raise BadRequest(f"Wrong input: Vector dimension error: expected dim: {store.dim}, got {vec.shape[-1]}")
    query.check()
    flt = merge_filters(req.filter, {"must_not": [{"has_id": mentioned}]}) if mentioned else req.filter
    nearest = getattr(query, "nearest", None)
    if nearest is not None:
        vector = nearest()
        if vector is not None:
            return search(col, replace(req, vector=vector, examples=None, filter=flt), params)
    compiled = compile_filter(flt)
    plan = None if compiled is None else col.payload_index.plan(compiled)
    slots = exact_slots(col, store, compiled, plan, None)
    scores = np.asarray(query.scores(store, store.matrix[slots]), dtype=np.float32)
    keep = np.ones(len(slots), dtype=bool) if req.score_threshold is None else scores > req.score_threshold
    ranked = sorted(((scores[i], store.keys[slots[i]]) for i in np.flatnonzero(keep).tolist()),
                    key=lambda item: (-item[0], item[1]))
    return records(col, req, ranked)
