"""Sparse vectors (BM25/SPLADE-style): the value, its store and its inverted index.

A sparse vector is sorted by index once, when it is read, so every comparison and
every answer sees the same order (Qdrant returns them sorted too). Scores are dot
products over the indices a point shares with the query; a point that shares none
is not an answer. With ``modifier: idf`` each query value is first weighted by the
index's inverse document frequency over the points that have this vector now:
``ln((n - df + 0.5) / (df + 0.5) + 1)``, as Qdrant (and qdrant-client's local mode)
compute it.

The inverted index (index -> {point key: value}) is derived from the points like
the payload index: rebuilt on load, never a second source of truth. A query reads
only the postings of its own indices, never every document.
"""
import math

import numpy as np

from storage.errors import BadRequest, Unprocessable

_U32_MAX = 2**32 - 1


class SparseVector:
    __slots__ = ("indices", "values")

    def __init__(self, indices: np.ndarray, values: np.ndarray):
        self.indices = indices  # uint32, ascending, unique
        self.values = values  # float32

    def __len__(self) -> int:
        return len(self.indices)

    def __eq__(self, other) -> bool:
        return (isinstance(other, SparseVector) and np.array_equal(self.indices, other.indices)
                and np.array_equal(self.values, other.values))

    def to_json(self) -> dict:
        return {"indices": self.indices.tolist(), "values": self.values.tolist()}

    def to_response(self) -> dict:
        """For the response encoder, which writes float32 arrays in their shortest form
        (0.2, not 0.20000000298023224), as Qdrant does."""
        return {"indices": self.indices.tolist(), "values": self.values}

    def to_bytes(self) -> bytes:
        """Its exact content, for the state and the digest."""
        return (len(self.indices).to_bytes(4, "big") + self.indices.astype("<u4").tobytes()
                + self.values.astype("<f4").tobytes())

    @staticmethod
    def from_bytes(raw: bytes) -> "SparseVector":
        n = int.from_bytes(raw[:4], "big")
        return SparseVector(np.frombuffer(raw, dtype="<u4", count=n, offset=4).astype(np.uint32),
                            np.frombuffer(raw, dtype="<f4", count=n, offset=4 + 4 * n).astype(np.float32))


def is_sparse(value) -> bool:
    """A JSON value written as a sparse vector."""
    return isinstance(value, dict) and ("indices" in value or "values" in value)


def parse_sparse(value, where: str) -> SparseVector:
    indices, values = value.get("indices"), value.get("values")
    for name, raw in (("indices", indices), ("values", values)):
        if not isinstance(raw, list):
            raise BadRequest(f"Format error in JSON body: {where}: missing field `{name}`" if raw is None else
                             f"Format error in JSON body: {where}.{name} must be a list")
    extra = set(value) - {"indices", "values"}
    if extra:
        raise BadRequest(f"Format error in JSON body: {where}: unknown field `{sorted(extra)[0]}`")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in indices):
        raise BadRequest(f"Format error in JSON body: {where}.indices must be a list of unsigned integers")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise BadRequest(f"Format error in JSON body: {where}.values must be a list of numbers")
    if indices and (min(indices) < 0 or max(indices) > _U32_MAX):
        raise BadRequest(f"Format error in JSON body: {where}.indices: invalid value, expected u32")
    if len(indices) != len(values):
        raise Unprocessable(f"Validation error in JSON body: [{where}: must be the same length as indices]")
    if len(set(indices)) != len(indices):
        raise Unprocessable(f"Validation error in JSON body: [{where}: must be unique]")
    idx = np.asarray(indices, dtype=np.uint32)
    with np.errstate(over="ignore"):
        vals = np.asarray(values, dtype=np.float64).astype(np.float32)
    if not np.isfinite(vals).all():
        raise BadRequest(f"Format error in JSON body: {where}.values has a value out of float32 range")
    order = np.argsort(idx, kind="stable")
    return SparseVector(idx[order], vals[order])


def idf(df: int, n: int) -> float:
    return math.log((n - df + 0.5) / (df + 0.5) + 1.0)


class SparseStore:
    """The sparse vectors of one collection and vector name, with their inverted index.

    Postings are kept per index as {slot: value} (cheap to change) and compiled on
    first use into numpy arrays (cheap to score), recompiled only after a change to
    that index; a query adds the compiled postings of its indices with one bincount.
    """

    def __init__(self, modifier: str = "none"):
        self.modifier = modifier
        self.vectors: dict = {}  # point key -> SparseVector
        self.slot_of: dict = {}  # point key -> slot
        self.keys: list = []  # slot -> point key, None when free
        self._free: list = []
        self.postings: dict = {}  # index -> {slot: value}
        self._compiled: dict = {}  # index -> (slots int64, values float64), dropped on change

    def __len__(self) -> int:
        return len(self.vectors)

    def __contains__(self, key: bytes) -> bool:
        return key in self.vectors

    def get(self, key: bytes) -> SparseVector | None:
        return self.vectors.get(key)

    def prepare(self, vec: SparseVector) -> SparseVector:
        return vec  # stored as read: sorted, float32

    def put(self, key: bytes, vec: SparseVector) -> None:
        self.remove(key)
        self.vectors[key] = vec
        if self._free:
            slot = self._free.pop()
            self.keys[slot] = key
        else:
            slot = len(self.keys)
            self.keys.append(key)
        self.slot_of[key] = slot
        postings, compiled = self.postings, self._compiled
        for i, v in zip(vec.indices.tolist(), vec.values.tolist()):
            posting = postings.get(i)
            if posting is None:
                postings[i] = {slot: v}
            else:
                posting[slot] = v
                compiled.pop(i, None)

    def remove(self, key: bytes) -> None:
        old = self.vectors.pop(key, None)
        if old is None:
            return
        slot = self.slot_of.pop(key)
        self.keys[slot] = None
        self._free.append(slot)
        for i in old.indices.tolist():
            posting = self.postings[i]
            del posting[slot]
            self._compiled.pop(i, None)
            if not posting:
                del self.postings[i]

    def _posting(self, index: int) -> tuple | None:
        found = self._compiled.get(index)
        if found is None:
            posting = self.postings.get(index)
            if not posting:
                return None
            found = self._compiled[index] = (np.fromiter(posting.keys(), dtype=np.int64, count=len(posting)),
                                             np.fromiter(posting.values(), dtype=np.float64, count=len(posting)))
        return found

    def score_slots(self, query: SparseVector) -> tuple:
        """(slots, scores) of the points sharing an index with the query, slots ascending.
        Each point's terms are added in ascending index order (the order a merge of two
        sorted vectors takes), in float64 like the merge."""
        n = len(self.vectors)
        parts, weights = [], []
        for i, q in zip(query.indices.tolist(), query.values.tolist()):
            found = self._posting(i)
            if found is None:
                continue
            slots, values = found
            parts.append(slots)
            weights.append(values * (q * idf(len(slots), n) if self.modifier == "idf" else q))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        slots = np.concatenate(parts)
        size = len(self.keys)
        touched = np.flatnonzero(np.bincount(slots, minlength=size))
        totals = np.bincount(slots, weights=np.concatenate(weights), minlength=size)
        return touched, totals[touched]

    def scores(self, query: SparseVector, exclude: bytes | None = None) -> dict:
        """{point key: score} of the points sharing an index with the query."""
        slots, totals = self.score_slots(query)
        keys = self.keys
        out = dict(zip((keys[s] for s in slots.tolist()), totals.tolist()))
        out.pop(exclude, None)
        return out
