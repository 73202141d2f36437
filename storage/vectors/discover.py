"""Discovery and context queries, scored as Qdrant scores them (and qdrant-client's
local mode reproduces):

- ``discover: {target, context: [{positive, negative}, ...]}``: a point's rank is, over
  the context pairs, +1 for each pair whose positive it is more similar to than the
  negative, -1 for each the other way round (0 on a tie); its score is that rank plus
  ``scaled_sigmoid(similarity to the target)``, so the rank decides and the target
  orders points of equal rank.
- ``context: [{positive, negative}, ...]``: no target; each pair adds
  ``sigmoid(min(sim(positive) - sim(negative) - EPSILON, 0))``, a loss that is 0 once a
  point is on the positive side of every pair (ties among those are in id order).

Similarities and the scan are storage/vectors/examples.py's.
"""
from dataclasses import dataclass

import numpy as np

from storage.errors import BadRequest, only_fields
from storage.vectors.examples import EPSILON, example, resolve_one, scaled_sigmoid, sigmoid

DISCOVER_FIELDS = ("target", "context")  # Qdrant's DiscoverInput
PAIR_FIELDS = ("positive", "negative")  # Qdrant's ContextPair


@dataclass
class Discover:
    target: object | None  # None for a context query
    pairs: list  # [(positive, negative)]; vectors, or ("id", point id) until resolved

    def resolve(self, vector_of) -> tuple:
        ids: list = []
        target = None if self.target is None else resolve_one(self.target, vector_of, ids)
        pairs = [(resolve_one(p, vector_of, ids), resolve_one(n, vector_of, ids)) for p, n in self.pairs]
        return Discover(target, pairs), ids

    def checked(self, space) -> "Discover":
        return Discover(None if self.target is None else space.check(self.target),
                        [(space.check(p), space.check(n)) for p, n in self.pairs])

    def check(self) -> None:
        if self.target is None and not self.pairs:
            raise BadRequest("Bad request: No target or context given")

    def scores(self, space) -> np.ndarray:
        if self.target is not None:
            rank = np.zeros(len(space), dtype=np.int32)
            for pos, neg in self.pairs:
                rank += np.sign(space.similarity(pos) - space.similarity(neg)).astype(np.int32)
            return rank + scaled_sigmoid(space.similarity(self.target))
        loss = np.zeros(len(space), dtype=np.float32)
        for pos, neg in self.pairs:
            difference = space.similarity(pos) - space.similarity(neg) - EPSILON
            loss += sigmoid(np.minimum(difference, np.float32(0.0)))
        return loss


def parse_pairs(raw, where: str) -> list:
    """One pair or a list of them."""
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise BadRequest(f"Format error in JSON body: {where} must be a list of {{positive, negative}} pairs")
    pairs = []
    for i, pair in enumerate(items):
        if not isinstance(pair, dict):
            raise BadRequest(f"Format error in JSON body: {where}[{i}] must be {{positive, negative}}")
        only_fields(pair, PAIR_FIELDS, f"{where}[{i}]")
        for field in ("positive", "negative"):
            if pair.get(field) is None:
                raise BadRequest(f"Format error in JSON body: {where}[{i}]: missing field `{field}`")
        pairs.append((example(pair["positive"], f"{where}[{i}].positive"),
                      example(pair["negative"], f"{where}[{i}].negative")))
    return pairs


def parse_discover(raw, where: str) -> Discover:
    if not isinstance(raw, dict):
        raise BadRequest(f"Format error in JSON body: {where}query.discover must be {{target, context}}")
    only_fields(raw, DISCOVER_FIELDS, f"{where}query.discover")
    if raw.get("target") is None:
        raise BadRequest(f"Format error in JSON body: {where}query.discover: missing field `target`")
    context = raw.get("context")  # optional: a discovery without context ranks by the target alone
    return Discover(example(raw["target"], f"{where}query.discover.target"),
                    [] if context is None else parse_pairs(context, f"{where}query.discover.context"))


def parse_context(raw, where: str) -> Discover:
    if raw is None:
        raise BadRequest(f"Format error in JSON body: {where}query.context must be {{positive, negative}} pairs")
    return Discover(None, parse_pairs(raw, f"{where}query.context"))
