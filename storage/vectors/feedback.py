"""Relevance feedback queries (``query: {"relevance_feedback": {target, feedback,
strategy}}``), with Qdrant's one strategy, ``naive: {a, b, c}``:

    score = a * sim(target) + sum over ordered feedback pairs (i, j) with
            confidence = score_i - score_j > 0 of  c * confidence^b * (sim(i) - sim(j))

Every pair of feedback examples whose scores differ becomes a context pair weighted
by how confident the feedback is about it. Similarities and the scan are
storage/vectors/examples.py's.
"""
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from storage.errors import BadRequest, only_fields
from storage.vectors.examples import example, resolve_one

CONFIDENCE_MARGIN = 0.0  # a pair counts only if its confidence is above this
# Qdrant's RelevanceFeedbackInput, FeedbackItem, NaiveFeedbackStrategy and its params
FIELDS = ("target", "feedback", "strategy")
ITEM_FIELDS = ("example", "score")
STRATEGY_FIELDS = ("naive",)
NAIVE_FIELDS = ("a", "b", "c")


@dataclass
class Feedback:
    target: object
    feedback: list  # [(example, score)]
    a: float
    b: float
    c: float

    def resolve(self, vector_of) -> tuple:
        ids: list = []
        target = resolve_one(self.target, vector_of, ids)
        items = [(resolve_one(x, vector_of, ids), score) for x, score in self.feedback]
        return Feedback(target, items, self.a, self.b, self.c), ids

    def checked(self, space) -> "Feedback":
        return Feedback(space.check(self.target), [(space.check(x), score) for x, score in self.feedback],
                        self.a, self.b, self.c)

    def check(self) -> None:
        pass

    def scores(self, space) -> np.ndarray:
        total = self.a * space.similarity(self.target).astype(np.float64)
        for (pos, pos_score), (neg, neg_score) in permutations(self.feedback, 2):
            confidence = pos_score - neg_score
            if confidence <= CONFIDENCE_MARGIN:
                continue
            weight = confidence ** self.b * self.c
            total = total + weight * (space.similarity(pos) - space.similarity(neg)).astype(np.float64)
        return total.astype(np.float32)


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"Format error in JSON body: {where} must be a number")
    return float(value)


def parse(raw, where: str) -> Feedback:
    where = f"{where}query.relevance_feedback"
    if not isinstance(raw, dict):
        raise BadRequest(f"Format error in JSON body: {where} must be {{target, feedback, strategy}}")
    only_fields(raw, FIELDS, where)
    for field in ("target", "feedback", "strategy"):
        if raw.get(field) is None:
            raise BadRequest(f"Format error in JSON body: {where}: missing field `{field}`")
    if not isinstance(raw["feedback"], list):
        raise BadRequest(f"Format error in JSON body: {where}.feedback must be a list")
    items = []
    for i, item in enumerate(raw["feedback"]):
        if not isinstance(item, dict) or item.get("example") is None or item.get("score") is None:
            raise BadRequest(f"Format error in JSON body: {where}.feedback[{i}] must be {{example, score}}")
        only_fields(item, ITEM_FIELDS, f"{where}.feedback[{i}]")
        items.append((example(item["example"], f"{where}.feedback[{i}].example"),
                      _number(item["score"], f"{where}.feedback[{i}].score")))
    strategy = raw["strategy"]
    naive = strategy.get("naive") if isinstance(strategy, dict) else None
    if not isinstance(naive, dict) or any(naive.get(k) is None for k in ("a", "b", "c")):
        raise BadRequest(f"Format error in JSON body: {where}.strategy must be {{\"naive\": {{a, b, c}}}}")
    only_fields(strategy, STRATEGY_FIELDS, f"{where}.strategy")
    only_fields(naive, NAIVE_FIELDS, f"{where}.strategy.naive")
    return Feedback(example(raw["target"], f"{where}.target"), items,
                    *(_number(naive[k], f"{where}.strategy.naive.{k}") for k in ("a", "b", "c")))
