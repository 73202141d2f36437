"""Recommendation queries (``query: {"recommend": {positive, negative, strategy}}``) over
dense vectors, with Qdrant's three strategies:

- ``average_vector``: a nearest search for ``avg(positive) + avg(positive) - avg(negative)``
  (or ``avg(positive)`` alone);
- ``best_score``: each point scored by its best similarity to a positive and to a
  negative example; ``sigmoid(best positive)`` if that is the larger, else
  ``-sigmoid(best negative)``;
- ``sum_scores``: the similarities to the positives summed, minus those to the negatives.

Similarities are the ones Qdrant uses inside the engine (dot products, with unit-length
vectors for Cosine; the negated squared Euclidean and negated Manhattan distance), so
bigger is better whatever the distance. Examples given by id are left out of the answer.
"""
from dataclasses import dataclass, replace

import numpy as np

from storage.collection import Collection
from storage.errors import BadRequest
from storage.filters import merge_filters
from storage.ids import parse_id
from storage.values import parse_vector
from storage.vectors.annoy_index import IndexParams
from storage.vectors.store import VectorStore, normalize

STRATEGIES = ("average_vector", "best_score", "sum_scores")


@dataclass
class Recommend:
    positive: list  # float32 vectors, or ("id", point id) until resolved
    negative: list
    strategy: str


def parse(raw, where: str) -> Recommend:
    if not isinstance(raw, dict) or set(raw) - {"positive", "negative", "strategy"}:
        raise BadRequest(f"Format error in JSON body: {where}query.recommend must be {{positive, negative, strategy}}")
    strategy = raw.get("strategy") or "average_vector"
    if strategy not in STRATEGIES:
        raise BadRequest(f"Format error in JSON body: {where}query.recommend.strategy: unknown variant `{strategy}`, "
                         "expected one of `average_vector`, `best_score`, `sum_scores`")

    def examples(name: str) -> list:
        items = raw.get(name) or []
        if not isinstance(items, list):
            raise BadRequest(f"Format error in JSON body: {where}query.recommend.{name} must be a list")
        return [parse_vector(x, f"{where}query.recommend.{name}[{i}]") if isinstance(x, list) else ("id", parse_id(x))
                for i, x in enumerate(items)]

    return Recommend(examples("positive"), examples("negative"), strategy)


def resolve(rec: Recommend, vector_of) -> tuple:
    """(Recommend with vectors only, ids named as examples). ``vector_of(pid)`` gives a
    point's stored vector."""
    ids = []

    def as_vectors(items: list) -> list:
        out = []
        for item in items:
            if isinstance(item, tuple):
                ids.append(item[1])
                out.append(np.asarray(vector_of(item[1]), dtype=np.float32))
            else:
                out.append(item)
        return out

    return Recommend(as_vectors(rec.positive), as_vectors(rec.negative), rec.strategy), ids


def run(col: Collection, req, params: IndexParams, search, exact_slots, records) -> list:
    """``search``, ``exact_slots`` and ``records`` are storage.vectors.search's (which
    imports this module)."""
    if req.using in col.config.sparse or req.using in col.multi:
        raise BadRequest(f"Bad request: recommend queries over `{req.using}` are not supported by pointlog: "
                         "only over dense vectors")
    store: VectorStore = col.vectors[req.using] if req.using in col.vectors else None
    if store is None:
        raise BadRequest(f"Wrong input: Not existing vector name error: {req.using}")
    rec, mentioned = resolve(req.recommend, lambda pid: col.stored_vector(pid, req.using))
    for vec in rec.positive + rec.negative:
        if vec.ndim != 1 or vec.shape[0] != store.dim:
            raise BadRequest(f"Wrong input: Vector dimension error: expected dim: {store.dim}, got {vec.shape[-1]}")
    flt = merge_filters(req.filter, {"must_not": [{"has_id": mentioned}]}) if mentioned else req.filter
    if rec.strategy == "average_vector":
        if not rec.positive:
            raise BadRequest("Bad request: No positive examples given with 'average_vector' strategy")
        mean = np.mean(np.stack(rec.positive), axis=0)
        vector = mean + mean - np.mean(np.stack(rec.negative), axis=0) if rec.negative else mean
        return search(col, replace(req, vector=vector.astype(np.float32), recommend=None, filter=flt), params)
    if not rec.positive and not rec.negative:
        raise BadRequest("Bad request: No positive or negative examples given")
    compiled = col.compile_filter(flt)
    plan = None if compiled is None else col.payload_index.plan(compiled)
    slots = exact_slots(col, store, compiled, plan, None)
    rows = store.matrix[slots]
    pos = [_similarity(store, rows, v) for v in rec.positive]
    neg = [_similarity(store, rows, v) for v in rec.negative]
    if rec.strategy == "best_score":
        best_pos = np.max(pos, axis=0) if pos else np.full(len(slots), -np.inf, dtype=np.float32)
        best_neg = np.max(neg, axis=0) if neg else np.full(len(slots), -np.inf, dtype=np.float32)
        scores = np.where(best_pos > best_neg, _scaled_sigmoid(best_pos), -_scaled_sigmoid(best_neg))
    else:
        scores = (np.sum(pos, axis=0) if pos else 0) - (np.sum(neg, axis=0) if neg else 0)
    scores = np.asarray(scores, dtype=np.float32)
    keep = np.ones(len(slots), dtype=bool) if req.score_threshold is None else scores > req.score_threshold
    ranked = sorted(((scores[i], store.keys[slots[i]]) for i in np.flatnonzero(keep).tolist()),
                    key=lambda item: (-item[0], item[1]))
    return records(col, req, ranked)


def _similarity(store: VectorStore, rows: np.ndarray, example: np.ndarray) -> np.ndarray:
    if store.distance == "Cosine":
        return np.einsum("ij,j->i", rows, normalize(example))
    if store.distance == "Dot":
        return np.einsum("ij,j->i", rows, example)
    diff = rows - example
    if store.distance == "Euclid":
        return -np.einsum("ij,ij->i", diff, diff)
    return -np.abs(diff).sum(axis=1)


def _scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (x / (1.0 + np.abs(x)) + 1.0)
