"""The universal query's composition: prefetch trees, fusion and rescoring.

A request with ``prefetch`` first runs each prefetch (recursively) for candidates;
then either fuses their ranked lists (RRF: ``sum 1 / ((rank + 1) / weight + k - 1)``
with k = 2 by default; DBSF: each list normalised to mean ± 3 standard deviations,
then summed), rescores the union of their candidates with a formula
(storage/vectors/formula.py), or rescores that union with its own query. Each level's filter is merged into the levels
below it, so a prefetch's limit counts only points that pass every filter above it.
This is the server's evaluation order, as qdrant-client's local mode reproduces it.
"""
from dataclasses import replace

from storage.collection import Collection
from storage.errors import BadRequest
from storage.filters import merge_filters
from storage.ids import encode_id
from storage.reads import Shape
from storage.vectors.annoy_index import IndexParams
from storage.vectors.search import SearchRequest, search

DEFAULT_K = 2
_CANDIDATES_ONLY = Shape(False, False)


def run(col: Collection, req: SearchRequest, params: IndexParams) -> list:
    if not req.prefetch:
        return search(col, req, params)
    sources = [_prefetch(col, p, req.filter, params) for p in req.prefetch]
    return _merge(col, sources, req, params)


def _prefetch(col: Collection, req: SearchRequest, outer: dict | None, params: IndexParams) -> list:
    req = replace(req, filter=merge_filters(outer, req.filter), offset=0, shape=_CANDIDATES_ONLY)
    if req.prefetch:
        return _merge(col, [_prefetch(col, p, req.filter, params) for p in req.prefetch], req, params)
    return search(col, req, params)


def _merge(col: Collection, sources: list, req: SearchRequest, params: IndexParams) -> list:
    if req.fusion is not None or req.formula is not None:
        want = req.offset + req.limit
        if req.formula is not None:
            fused = req.formula.rescore(col, sources, want)
        elif req.fusion[0] == "rrf":
            fused = rrf(sources, want, req.fusion[1], req.fusion[2])
        else:
            fused = dbsf(sources, want)
        if req.score_threshold is not None:
            fused = [(pid, score) for pid, score in fused if score >= req.score_threshold]
        out = []
        for pid, score in fused[req.offset:]:
            point = col.points[encode_id(pid)]
            rec = req.shape.record(col, point)
            rec["score"] = score
            rec["version"] = point.version
            out.append(rec)
        return out
    ids = list(dict.fromkeys(hit["id"] for source in sources for hit in source))
    if not ids:
        return []
    return search(col, replace(req, prefetch=None, filter=merge_filters(req.filter, {"must": [{"has_id": ids}]})),
                  params)


def rrf(sources: list, limit: int, k: int | None = None, weights: list | None = None) -> list:
    """[(id, score)] best first; ties keep the order in which points first appeared."""
    if weights is not None and len(weights) != len(sources):
        raise BadRequest("Bad request: rrf.weights must have one weight per prefetch")
    k = DEFAULT_K if k is None else k
    scores: dict = {}
    for n, source in enumerate(sources):
        weight = 1.0 if weights is None else float(weights[n])
        for rank, hit in enumerate(source):
            part = 0.0 if weight <= 0 else 1 / ((rank + 1.0) / weight + k - 1.0)
            scores[hit["id"]] = scores.get(hit["id"], 0.0) + part
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)[:limit]


def dbsf(sources: list, limit: int) -> list:
    scores: dict = {}
    for source in sources:
        if not source:
            continue
        for pid, score in zip((hit["id"] for hit in source), _normalised([hit["score"] for hit in source])):
            scores[pid] = scores.get(pid, 0.0) + score
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)[:limit]


def _normalised(scores: list) -> list:
    if len(scores) == 1:
        return [0.5]
    mean = sum(scores) / len(scores)
    variance = sum((s - mean) ** 2 for s in scores) / (len(scores) - 1)
    if variance == 0:
        return [0.5] * len(scores)
    low, high = mean - 3 * variance ** 0.5, mean + 3 * variance ** 0.5
    return [(s - low) / (high - low) for s in scores]
