"""Maximal marginal relevance (``query: {"nearest": v, "mmr": {diversity, candidates_limit}}``):
the ``candidates_limit`` nearest points (default ``limit``) re-ranked for diversity.

The most relevant candidate comes first; then, again and again, the candidate with
the best ``(1 - diversity) * sim(query) - diversity * max sim(already chosen)``.
Similarities are the engine's (storage/vectors/examples.py), for dense, sparse and
multivectors; the points keep their nearest-search scores. Ties are broken as Qdrant's core breaks them, which
qdrant-client's local mode reproduces: the pending candidates are an ordered set
whose chosen entry is swap-removed (the last one takes its place), and of equal
scores the last one wins. ``offset`` applies to the re-ranked list.
"""
from dataclasses import dataclass, replace

import numpy as np

from storage.collection import Collection
from storage.errors import BadRequest, Unprocessable, only_fields
from storage.ids import encode_id
from storage.vectors.annoy_index import IndexParams
from storage.vectors.examples import multi_similarity, similarity, sparse_dot
from storage.vectors.multi import MultiStore
from storage.vectors.sparse import SparseStore

DEFAULT_DIVERSITY = 0.5
MAX_CANDIDATES = 16_384  # Qdrant's bound, "to avoid too expensive query"
FIELDS = ("diversity", "candidates_limit")  # Qdrant's Mmr


@dataclass
class Mmr:
    diversity: float
    candidates_limit: int | None


def parse(raw, where: str) -> Mmr:
    if not isinstance(raw, dict):
        raise BadRequest(f"Format error in JSON body: {where}query.mmr must be {{diversity, candidates_limit}}")
    only_fields(raw, FIELDS, f"{where}query.mmr")
    diversity = raw.get("diversity")
    if diversity is None:
        diversity = DEFAULT_DIVERSITY
    if isinstance(diversity, bool) or not isinstance(diversity, (int, float)):
        raise BadRequest(f"Format error in JSON body: {where}query.mmr.diversity must be a number")
    if not 0.0 <= diversity <= 1.0:
        raise Unprocessable(f"Validation error in JSON body: [{where}query.mmr.diversity: value {diversity} "
                            "invalid, must be from 0.0 to 1.0]")
    limit = raw.get("candidates_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise BadRequest(f"Format error in JSON body: {where}query.mmr.candidates_limit must be a "
                         "non-negative integer")
    if limit is not None and limit > MAX_CANDIDATES:
        raise Unprocessable(f"Validation error in JSON body: [{where}query.mmr.candidates_limit: value {limit} "
                            f"invalid, must be {MAX_CANDIDATES} or smaller]")
    return Mmr(float(diversity), limit)


def run(col: Collection, req, params: IndexParams, search) -> list:
    store = col.store(req.using)
    if store is None:
        raise BadRequest(f"Wrong input: Not existing vector name error: {req.using}")
    query = req.vector if req.point_id is None else col.stored_vector(req.point_id, req.using)
    candidates = search(col, replace(req, mmr=None, offset=0, limit=req.mmr.candidates_limit
                                     if req.mmr.candidates_limit is not None else req.limit), params)
    if not candidates:
        return []
    return rerank(store, query, candidates, [store.get(encode_id(hit["id"])) for hit in candidates], req)


def rerank(store, query, candidates: list, vectors: list, req) -> list:
    """The candidates (nearest first, with their stored vectors) in MMR order, from
    ``offset``; ``store`` gives the kind of vector and its similarity (a sharded
    collection's merge passes an empty store of the same config)."""
    want = req.offset + req.limit
    relevance, between = (np.asarray(m, dtype=np.float64) for m in _similarities(store, query, vectors))
    lam = 1.0 - req.mmr.diversity
    pending = list(range(len(candidates)))
    selected = [_swap_remove(pending, _last_argmax(relevance[pending]))]
    # Each candidate's best similarity to the chosen ones, kept up to date as they are chosen.
    closest = between[:, selected[0]].copy()
    while len(selected) < want and pending:
        scores = lam * relevance[pending] - (1.0 - lam) * closest[pending]
        if np.all(scores == -np.inf):
            break
        chosen = _swap_remove(pending, _last_argmax(scores))
        selected.append(chosen)
        np.maximum(closest, between[:, chosen], out=closest)
    return [candidates[i] for i in selected][req.offset:]


def _similarities(store, query, vectors: list) -> tuple:
    """(similarity of the query to each candidate, of each candidate to each other),
    with the engine's similarities; sparse ones are plain dot products (0 for no
    shared index), without IDF, as Qdrant compares candidates."""
    if isinstance(store, SparseStore):
        return ([sparse_dot(query, v) for v in vectors],
                [[sparse_dot(a, b) for b in vectors] for a in vectors])
    if isinstance(store, MultiStore):
        query = store.prepare(query if query.ndim == 2 else query[np.newaxis, :])
        return ([multi_similarity(store.kernel, query, v) for v in vectors],
                [[multi_similarity(store.kernel, a, b) for b in vectors] for a in vectors])
    rows = np.stack(vectors)
    relevance = similarity(store, rows, np.asarray(query, dtype=np.float32))
    if store.distance in ("Cosine", "Dot"):  # stored Cosine rows are unit-length already
        return relevance, rows @ rows.T
    return relevance, np.stack([similarity(store, rows, row) for row in rows])


def _last_argmax(values: np.ndarray) -> int:
    """Rust's ``max_by_key``: of equal maxima, the last."""
    return len(values) - 1 - int(np.argmax(values[::-1]))


def _swap_remove(items: list, position: int) -> int:
    """IndexSet's ``swap_remove``: the last item moves into the freed place."""
    value = items[position]
    items[position] = items[-1]
    items.pop()
    return value
