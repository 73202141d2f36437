"""The distance matrix (``/points/search/matrix/pairs`` and ``/offsets``): a random
sample of ``sample`` points that match the filter and hold the vector ``using``, in
id order; for each, its ``limit`` nearest among the other sampled points, with the
search's scores. When the filter matches at most ``sample`` such points they are all
taken, and the answer is exactly Qdrant's; otherwise which points are sampled is
random (``seed``, drawn by the front door per request), as it is in Qdrant.
"""
from dataclasses import dataclass, replace

import numpy as np

from storage.collection import Collection
from storage.errors import BadRequest, Unprocessable
from storage.filters import compile_filter, merge_filters
from storage.config import DEFAULT_VECTOR
from storage.reads import Shape, scroll_keys
from storage.vectors.annoy_index import IndexParams
from storage.vectors.search import SearchRequest, search

DEFAULT_SAMPLE = 10
DEFAULT_LIMIT = 3


@dataclass
class MatrixRequest:
    search: SearchRequest  # ``limit`` neighbours over ``using`` among points matching ``filter``
    sample: int


def parse(body: dict) -> MatrixRequest:
    flt = body.get("filter")
    compile_filter(flt)
    using = body.get("using")
    if using is not None and not isinstance(using, str):
        raise BadRequest("Format error in JSON body: `using` must be a vector name")
    sample = _count(body.get("sample"), "sample", DEFAULT_SAMPLE, 2)
    limit = _count(body.get("limit"), "limit", DEFAULT_LIMIT, 1)
    return MatrixRequest(SearchRequest(None, None, using or DEFAULT_VECTOR, flt, limit, 0, None, True,
                                       Shape(False, False)), sample)


def _count(value, name: str, default: int, least: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"Format error in JSON body: {name} must be a non-negative integer")
    if value < least:
        raise Unprocessable(f"Validation error in JSON body: [{name}: value {value} invalid, "
                            f"must be {least} or larger]")
    return value


def matrix(col: Collection, request: MatrixRequest, seed: int, params: IndexParams) -> tuple:
    """(sampled ids in id order, for each its [(neighbour id, score)] best first)."""
    req = request.search
    store = col.store(req.using)
    if store is None:
        raise BadRequest(f"Wrong input: Not existing vector name error: {req.using}")
    flt = col.compile_filter(req.filter)
    keys = [key for key in scroll_keys(col, flt, None, len(col)) if key in store]
    if len(keys) > request.sample:
        picks = np.random.default_rng(seed).choice(len(keys), request.sample, replace=False)
        keys = [keys[i] for i in sorted(picks.tolist())]
    if len(keys) < 2:
        return [], []
    ids = [col.points[key].id for key in keys]
    rows = []
    for i, key in enumerate(keys):
        others = ids[:i] + ids[i + 1:]
        vector = store.get(key)
        one = replace(req, vector=np.array(vector) if isinstance(vector, np.ndarray) else vector,
                      filter=merge_filters(req.filter, {"must": [{"has_id": others}]}))
        rows.append([(hit["id"], hit["score"]) for hit in search(col, one, params)])
    return ids, rows


def pairs(ids: list, rows: list) -> dict:
    return {"pairs": [{"a": a, "b": b, "score": score} for a, row in zip(ids, rows) for b, score in row]}


def offsets(ids: list, rows: list) -> dict:
    at = {pid: n for n, pid in enumerate(ids)}
    return {"offsets_row": [n for n, row in enumerate(rows) for _ in row],
            "offsets_col": [at[b] for row in rows for b, _score in row],
            "scores": [score for row in rows for _b, score in row],
            "ids": ids}
