"""Recommendation queries (``query: {"recommend": {positive, negative, strategy}}``) over
dense, sparse and multivectors, with Qdrant's three strategies:

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
from storage.reads import holds
from storage.vectors.elements import COSINE_RAW, cosine_raw
from storage.vectors.multi import max_sim_raw
from storage.vectors.sparse import SparseVector
from storage.vectors.store import VectorStore

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
        return [parse_vector(x, f"{where}query.recommend.{name}[{i}]") if isinstance(x, (list, dict))
                else ("id", parse_id(x))
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
                vec = vector_of(item[1])
                out.append(vec if isinstance(vec, SparseVector) else np.asarray(vec, dtype=np.float32))
            else:
                out.append(item)
        return out

    return Recommend(as_vectors(rec.positive), as_vectors(rec.negative), rec.strategy), ids


def run(col: Collection, req, params: IndexParams, search, exact_slots, records) -> list:
    """``search``, ``exact_slots`` and ``records`` are storage.vectors.search's (which
    imports this module)."""
    col.config.check_name(req.using)
    rec, mentioned = resolve(req.recommend, lambda pid: col.stored_vector(pid, req.using))
    kind = _SPARSE if req.using in col.config.sparse else _MULTI if req.using in col.multi else _DENSE
    for vec in rec.positive + rec.negative:
        kind.check(col, req.using, vec)
    flt = merge_filters(req.filter, {"must_not": [{"has_id": mentioned}]}) if mentioned else req.filter
    if rec.strategy == "average_vector":
        if not rec.positive:
            raise BadRequest("Bad request: No positive examples given with 'average_vector' strategy")
        vector = kind.average(rec.positive, rec.negative)
        return search(col, replace(req, vector=vector, recommend=None, filter=flt), params)
    if not rec.positive and not rec.negative:
        raise BadRequest("Bad request: No positive or negative examples given")
    keys, similarity = kind.candidates(col, req.using, col.compile_filter(flt), exact_slots)
    pos = [similarity(v) for v in rec.positive]
    neg = [similarity(v) for v in rec.negative]
    if rec.strategy == "best_score":
        best_pos = np.max(pos, axis=0) if pos else np.full(len(keys), -np.inf, dtype=np.float32)
        best_neg = np.max(neg, axis=0) if neg else np.full(len(keys), -np.inf, dtype=np.float32)
        scores = np.where(best_pos > best_neg, _scaled_sigmoid(best_pos), -_scaled_sigmoid(best_neg))
    else:
        scores = (np.sum(pos, axis=0) if pos else 0) - (np.sum(neg, axis=0) if neg else 0)
    scores = np.broadcast_to(np.asarray(scores, dtype=np.float32), (len(keys),))
    keep = np.ones(len(keys), dtype=bool) if req.score_threshold is None else scores > req.score_threshold
    ranked = sorted(((scores[i], keys[i]) for i in np.flatnonzero(keep).tolist()),
                    key=lambda item: (-item[0], item[1]))
    return records(col, req, ranked)


def _dimension_error(expected: int, got: int) -> BadRequest:
    return BadRequest(f"Wrong input: Vector dimension error: expected dim: {expected}, got {got}")


def _conversion_error(name: str) -> BadRequest:
    return BadRequest(f"Wrong input: Conversion between sparse and regular vectors failed for vector: {name}")


class _DENSE:
    @staticmethod
    def check(col: Collection, name: str, vec) -> None:
        if isinstance(vec, SparseVector) or vec.ndim != 1:
            raise _conversion_error(name)
        if vec.shape[0] != col.vectors[name].dim:
            raise _dimension_error(col.vectors[name].dim, vec.shape[0])

    @staticmethod
    def average(positive: list, negative: list):
        mean = np.mean(np.stack(positive), axis=0)
        vector = mean + mean - np.mean(np.stack(negative), axis=0) if negative else mean
        return vector.astype(np.float32)

    @staticmethod
    def candidates(col: Collection, name: str, flt, exact_slots) -> tuple:
        store: VectorStore = col.vectors[name]
        plan = None if flt is None else col.payload_index.plan(flt)
        slots = exact_slots(col, store, flt, plan, None)
        rows = store.matrix[slots]
        return [store.keys[s] for s in slots.tolist()], lambda example: _similarity(store, rows, example)


class _SPARSE:
    """Sparse examples: the average merges indices (a missing index counts as 0); a
    point sharing no index with an example has similarity 0 to it (not "no answer",
    as in a plain sparse search), and with ``modifier: idf`` examples are weighted
    like queries."""

    @staticmethod
    def check(col: Collection, name: str, vec) -> None:
        if not isinstance(vec, SparseVector):
            raise _conversion_error(name)

    @staticmethod
    def average(positive: list, negative: list) -> SparseVector:
        mean = _sparse_mean(positive)
        if not negative:
            return mean
        neg = _sparse_mean(negative)
        indices = np.union1d(mean.indices, neg.indices)
        return SparseVector(indices, 2 * _dense_at(mean, indices) - _dense_at(neg, indices))

    @staticmethod
    def candidates(col: Collection, name: str, flt, exact_slots) -> tuple:
        store = col.sparse[name]
        keys = sorted(store.vectors)
        if flt is not None and not flt.matches_all:
            keep = holds(col, flt)
            keys = [key for key in keys if keep(key)]

        def similarity(example: SparseVector) -> np.ndarray:
            found = store.scores(example)
            return np.array([found.get(key, 0.0) for key in keys], dtype=np.float32)
        return keys, similarity


def _sparse_mean(vectors: list) -> SparseVector:
    indices = np.unique(np.concatenate([v.indices for v in vectors]))
    total = np.zeros(len(indices), dtype=np.float64)
    for v in vectors:
        total[np.searchsorted(indices, v.indices)] += v.values
    return SparseVector(indices, total / len(vectors))


def _dense_at(vec: SparseVector, indices: np.ndarray) -> np.ndarray:
    out = np.zeros(len(indices), dtype=np.float64)
    out[np.searchsorted(indices, vec.indices)] = vec.values
    return out


class _MULTI:
    """Multivector examples: the average is one query matrix of every positive row and
    every negative row negated; similarities are MaxSim's before a distance's
    postprocessing, like the dense ones."""

    @staticmethod
    def check(col: Collection, name: str, vec) -> None:
        if isinstance(vec, SparseVector) or vec.ndim != 2:
            raise _conversion_error(name)
        if vec.shape[1] != col.multi[name].dim:
            raise _dimension_error(col.multi[name].dim, vec.shape[1])

    @staticmethod
    def average(positive: list, negative: list) -> np.ndarray:
        return np.concatenate(positive + [-m for m in negative]).astype(np.float32)

    @staticmethod
    def candidates(col: Collection, name: str, flt, exact_slots) -> tuple:
        store = col.multi[name]
        keys = sorted(store.vectors)
        if flt is not None and not flt.matches_all:
            keep = holds(col, flt)
            keys = [key for key in keys if keep(key)]

        def similarity(example: np.ndarray) -> np.ndarray:
            example = store.prepare(example)
            return np.array([max_sim_raw(example, store.vectors[key], store.kernel) for key in keys],
                            dtype=np.float32)
        return keys, similarity


def _similarity(store: VectorStore, rows: np.ndarray, example: np.ndarray) -> np.ndarray:
    """Qdrant's raw similarity (before a distance's postprocessing) of an example,
    converted like a query (storage/vectors/elements.py), with each row."""
    example = store.prepare(example)
    if store.kernel == COSINE_RAW:
        return cosine_raw(rows, example)
    if store.distance in ("Cosine", "Dot"):
        return np.einsum("ij,j->i", rows, example)
    diff = rows - example
    if store.distance == "Euclid":
        return -np.einsum("ij,ij->i", diff, diff)
    return -np.abs(diff).sum(axis=1)


def _scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (x / (1.0 + np.abs(x)) + 1.0)
