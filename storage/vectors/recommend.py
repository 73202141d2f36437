"""Recommendation queries (``query: {"recommend": {positive, negative, strategy}}``) over
dense vectors, with Qdrant's three strategies:

- ``average_vector``: a nearest search for ``avg(positive) + avg(positive) - avg(negative)``
  (or ``avg(positive)`` alone);
- ``best_score``: each point scored by its best similarity to a positive and to a
  negative example; ``sigmoid(best positive)`` if that is the larger, else
  ``-sigmoid(best negative)``;
- ``sum_scores``: the similarities to the positives summed, minus those to the negatives.

Similarities and the scan are storage/vectors/examples.py's; examples may be dense,
sparse or multivectors, as the vector ``using`` names.
"""
from dataclasses import dataclass

import numpy as np

from storage.errors import BadRequest, only_fields
from storage.vectors.examples import example, resolve_one, scaled_sigmoid
from storage.vectors.sparse import SparseVector

STRATEGIES = ("average_vector", "best_score", "sum_scores")


@dataclass
class Recommend:
    positive: list  # float32 vectors, or ("id", point id) until resolved
    negative: list
    strategy: str

    def resolve(self, vector_of) -> tuple:
        """(Recommend with vectors only, ids named as examples). ``vector_of(pid)`` gives a
        point's stored vector."""
        ids: list = []
        return Recommend([resolve_one(x, vector_of, ids) for x in self.positive],
                         [resolve_one(x, vector_of, ids) for x in self.negative], self.strategy), ids

    def checked(self, space) -> "Recommend":
        return Recommend([space.check(v) for v in self.positive], [space.check(v) for v in self.negative],
                         self.strategy)

    def check(self) -> None:
        if self.strategy == "average_vector" and not self.positive:
            raise BadRequest("Bad request: No positive examples given with 'average_vector' strategy")
        if not self.positive and not self.negative:
            raise BadRequest("Bad request: No positive or negative examples given")

    def nearest(self, kind: str):
        """The vector an ``average_vector`` recommendation searches for: the mean of the
        positives, pushed away from the mean of the negatives (sparse: over the union of
        indices; multivectors: every positive row and every negated negative row)."""
        if self.strategy != "average_vector":
            return None
        if kind == "multi":
            return np.concatenate(self.positive + [-m for m in self.negative]).astype(np.float32)
        if kind == "sparse":
            mean = _sparse_mean(self.positive)
            return _sparse_combine(mean, _sparse_mean(self.negative)) if self.negative else mean
        mean = np.mean(np.stack(self.positive), axis=0)
        vector = mean + mean - np.mean(np.stack(self.negative), axis=0) if self.negative else mean
        return vector.astype(np.float32)

    def scores(self, space) -> np.ndarray:
        pos = [space.similarity(v) for v in self.positive]
        neg = [space.similarity(v) for v in self.negative]
        n = len(space)
        if self.strategy == "best_score":
            best_pos = np.max(pos, axis=0) if pos else np.full(n, -np.inf, dtype=np.float32)
            best_neg = np.max(neg, axis=0) if neg else np.full(n, -np.inf, dtype=np.float32)
            return np.where(best_pos > best_neg, scaled_sigmoid(best_pos), -scaled_sigmoid(best_neg))
        return (np.sum(pos, axis=0) if pos else 0) - (np.sum(neg, axis=0) if neg else 0)


def _sparse_mean(vectors: list) -> SparseVector:
    """Values summed per index over the union of indices, divided by the count."""
    indices = np.unique(np.concatenate([v.indices for v in vectors])) if vectors else np.zeros(0, np.uint32)
    total = np.zeros(len(indices), dtype=np.float64)
    for v in vectors:
        total[np.searchsorted(indices, v.indices)] += v.values
    return SparseVector(indices.astype(np.uint32), (total / max(len(vectors), 1)).astype(np.float32))


def _sparse_combine(pos: SparseVector, neg: SparseVector) -> SparseVector:
    """pos + pos - neg over the union of indices (a missing value is 0)."""
    indices = np.union1d(pos.indices, neg.indices)
    out = np.zeros(len(indices), dtype=np.float64)
    out[np.searchsorted(indices, pos.indices)] += 2.0 * pos.values
    out[np.searchsorted(indices, neg.indices)] -= neg.values
    return SparseVector(indices.astype(np.uint32), out.astype(np.float32))


def parse(raw, where: str) -> Recommend:
    if not isinstance(raw, dict):
        raise BadRequest(f"Format error in JSON body: {where}query.recommend must be {{positive, negative, strategy}}")
    only_fields(raw, ("positive", "negative", "strategy"), f"{where}query.recommend")
    strategy = raw.get("strategy") or "average_vector"
    if strategy not in STRATEGIES:
        raise BadRequest(f"Format error in JSON body: {where}query.recommend.strategy: unknown variant `{strategy}`, "
                         "expected one of `average_vector`, `best_score`, `sum_scores`")

    def examples(name: str) -> list:
        items = raw.get(name) or []
        if not isinstance(items, list):
            raise BadRequest(f"Format error in JSON body: {where}query.recommend.{name} must be a list")
        return [example(x, f"{where}query.recommend.{name}[{i}]") for i, x in enumerate(items)]

    return Recommend(examples("positive"), examples("negative"), strategy)
