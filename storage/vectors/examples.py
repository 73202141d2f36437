"""Queries scored against examples rather than one query vector: recommend
(storage/vectors/recommend.py), discover and context (discover.py) and relevance
feedback (feedback.py). They share:

- examples given as a vector or as a point id, whose stored vector is looked up
  (``resolve``); ids of the searched collection are left out of the answer;
- the similarity Qdrant uses inside the engine, where bigger is always better
  (``Space.similarity``): for dense vectors dot products (with unit-length vectors
  for Cosine), the negated squared Euclidean and the negated Manhattan distance; for
  sparse vectors the dot product over shared indices (IDF-weighted where configured),
  0 when they share none; for multivectors the sum over the example's rows of the best
  of those similarities to the point's rows;
- an exact scan of every point that matches the filter and holds the vector
  (``run``), ranked by the query's own score, ties in id order.

Each query class has ``resolve(vector_of) -> (query, ids it named)``, ``vectors()``
(every example vector, for the kind check), ``check()`` (Qdrant's refusals that need
no collection) and ``scores(space) -> float32 array``; a recommend with
``average_vector`` also has ``nearest(kind)``, the single vector it searches for.
"""
import heapq
from dataclasses import replace

import numpy as np

from storage.collection import Collection
from storage.errors import BadRequest
from storage.filters import merge_filters
from storage.ids import encode_id, parse_id
from storage.reads import holds
from storage.values import parse_vector
from storage.vectors.annoy_index import IndexParams
from storage.vectors.elements import COSINE_RAW, EPSILON, cosine_raw  # noqa: F401 (EPSILON: discover's)
from storage.vectors.multi import MultiStore, max_sim_raw
from storage.vectors.sparse import SparseStore, SparseVector
from storage.vectors.store import VectorStore

def example(value, where: str):
    """A vector (dense, sparse or multi) or ("id", point id) until resolved."""
    if isinstance(value, (list, dict)):
        return parse_vector(value, where)
    return "id", parse_id(value)


def resolve_one(item, vector_of, ids: list):
    if isinstance(item, tuple):
        ids.append(item[1])
        vec = vector_of(item[1])
        return vec if isinstance(vec, SparseVector) else np.asarray(vec, dtype=np.float32)
    return item


def similarity(store: VectorStore, rows: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Qdrant's internal similarity of each dense row to ``vec`` (bigger is better); the
    example is converted like a query (storage/vectors/elements.py)."""
    vec = store.prepare(vec)
    if store.kernel == COSINE_RAW:
        return cosine_raw(rows, vec)
    if store.distance in ("Cosine", "Dot"):
        return np.einsum("ij,j->i", rows, vec)
    diff = rows - vec
    if store.distance == "Euclid":
        return -np.einsum("ij,ij->i", diff, diff)
    return -np.abs(diff).sum(axis=1)


def multi_similarity(kernel: str, example: np.ndarray, doc: np.ndarray) -> float:
    """MaxSim with the internal similarity: per example row the best over the point's
    rows, summed; ``kernel`` is the store's (storage/vectors/elements.py)."""
    return max_sim_raw(example, doc, kernel)


def sparse_dot(a: SparseVector, b: SparseVector) -> float:
    """The plain dot product over shared indices (0 when none are shared)."""
    _common, ia, ib = np.intersect1d(a.indices, b.indices, assume_unique=True, return_indices=True)
    return float(np.dot(a.values[ia].astype(np.float64), b.values[ib].astype(np.float64)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Qdrant's fast sigmoid, x / (1 + |x|), in (-1, 1)."""
    return x / (np.float32(1.0) + np.abs(x))


def scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    """The fast sigmoid scaled into (0, 1)."""
    return np.float32(0.5) * (sigmoid(x) + np.float32(1.0))


class Space:
    """The points a query scores over one vector name, and each one's similarity to an
    example. Cheap until ``scan``: an ``average_vector`` recommendation only needs its kind."""

    def __init__(self, col: Collection, using: str):
        self.store = col.store(using)
        if self.store is None:
            raise BadRequest(f"Wrong input: Not existing vector name error: {using}")
        self.using = using
        self.kind = "sparse" if isinstance(self.store, SparseStore) else \
            "multi" if isinstance(self.store, MultiStore) else "dense"
        self.keys: list = []  # sparse and multi: the keys scanned, in id order
        self.slots = None  # dense: the slots scanned
        self.rows = None

    def scan(self, col: Collection, flt, exact_slots, leave_out: set) -> None:
        """Every point matching ``flt`` that holds the vector, but the keys in ``leave_out``
        (the examples named by id): in slot order (dense) or id order."""
        if self.kind == "dense":
            plan = None if flt is None else col.payload_index.plan(flt)
            slots = exact_slots(col, self.store, flt, plan, None)
            gone = [self.store.slot_of[k] for k in leave_out if k in self.store.slot_of]
            self.slots = slots[~np.isin(slots, gone)] if gone else slots
            self.rows = self.store.matrix[self.slots]
        else:
            keep = holds(col, flt) if flt is not None and not flt.matches_all else None
            self.keys = sorted(k for k in self.store.vectors if k not in leave_out and (keep is None or keep(k)))

    def check(self, vec):
        """The example as this space compares it; Qdrant's errors for one that does not fit."""
        if (self.kind == "sparse") != isinstance(vec, SparseVector) or (self.kind == "dense" and vec.ndim != 1):
            raise BadRequest("Wrong input: Conversion between sparse and regular vectors failed for vector: "
                             f"{self.using}")
        if self.kind == "sparse":
            return vec
        dim = self.store.dim
        if self.kind == "multi":
            vec = vec if vec.ndim == 2 else vec[np.newaxis, :]
            if vec.shape[1] != dim:
                raise BadRequest(f"Wrong input: Vector dimension error: expected dim: {dim}, got {vec.shape[1]}")
            return self.store.prepare(vec)
        if vec.ndim != 1 or vec.shape[0] != dim:
            raise BadRequest(f"Wrong input: Vector dimension error: expected dim: {dim}, got {vec.shape[-1]}")
        return vec

    def similarity(self, vec) -> np.ndarray:
        if self.kind == "dense":
            return similarity(self.store, self.rows, vec)
        if self.kind == "sparse":
            found = self.store.scores(vec)
            return np.asarray([found.get(k, 0.0) for k in self.keys], dtype=np.float32)
        kernel = self.store.kernel
        return np.asarray([multi_similarity(kernel, vec, self.store.vectors[k]) for k in self.keys],
                          dtype=np.float32)

    def key(self, i: int) -> bytes:
        return self.store.keys[self.slots[i]] if self.slots is not None else self.keys[i]

    def __len__(self) -> int:
        return len(self.slots) if self.slots is not None else len(self.keys)


def run(col: Collection, req, params: IndexParams, search, exact_slots, records) -> list:
    """``search``, ``exact_slots`` and ``records`` are storage.vectors.search's (which
    imports this module)."""
    space = Space(col, req.using)
    query, mentioned = req.examples.resolve(lambda pid: col.stored_vector(pid, req.using))
    query = query.checked(space)
    query.check()
    nearest = getattr(query, "nearest", None)
    if nearest is not None:
        vector = nearest(space.kind)
        if vector is not None:
            flt = merge_filters(req.filter, {"must_not": [{"has_id": mentioned}]}) if mentioned else req.filter
            return search(col, replace(req, vector=vector, examples=None, filter=flt), params)
    space.scan(col, col.compile_filter(req.filter), exact_slots, {encode_id(pid) for pid in mentioned})
    scores = np.asarray(query.scores(space), dtype=np.float32)
    found = np.arange(len(scores)) if req.score_threshold is None else np.flatnonzero(scores > req.score_threshold)
    return records(col, req, _best(space, scores, found, req.offset + req.limit))


def _best(space: Space, scores: np.ndarray, found: np.ndarray, want: int) -> list:
    """[(score, key)] of the best ``want`` of ``found``, best first, ties in id order."""
    if len(found) <= want:
        return sorted(((scores[i], space.key(i)) for i in found.tolist()), key=lambda item: (-item[0], item[1]))
    cut = np.partition(scores[found], len(found) - want)[len(found) - want]
    above = found[scores[found] > cut]
    ranked = sorted(((scores[i], space.key(i)) for i in above.tolist()), key=lambda item: (-item[0], item[1]))
    # Of the points tying at the cut, the smallest ids fill the remaining places.
    tied = heapq.nsmallest(want - len(above), (space.key(i) for i in found[scores[found] == cut].tolist()))
    return ranked + [(cut, key) for key in tied]
