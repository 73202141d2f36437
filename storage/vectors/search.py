"""Nearest-neighbour search: request parsing shared by /query and /search, and
scoring with Qdrant's score definitions.

Cosine vectors are stored normalized, so a Cosine score is a dot product with the
normalized query. Euclid and Manhattan scores are distances: smaller is better.

Which points get scored (storage/vectors/annoy_index.py explains the index):
- exact (``params.exact``, a store below the indexing threshold, or no index yet):
  every vector, or every vector whose point matches the filter;
- indexed: Annoy candidates still valid since the index snapshot, plus the delta
  (vectors put since), scanned exactly. A filter is estimated on a sample of the
  points first: a selective one is answered exactly over the matching points,
  else Annoy over-fetches by the inverse of the matching share and widens until
  ``limit`` matching points are found (or falls back to the exact scan).
- A filter the payload index can answer (storage/filters/payload_index.py) first narrows
  the points to its candidates, so a filtered exact scan costs the candidates, not
  the collection. Few enough candidates are then always scanned exactly, as
  Qdrant's planner does with its payload index cardinality: scoring that many rows
  costs about one Annoy query (the same bound as a small store, ``IndexParams.threshold``).
Either way every candidate is scored by the same row-wise numpy code, so a point
gets the same score, bit for bit, whichever path found it.
"""
import itertools
from dataclasses import dataclass

import numpy as np

from storage.collection import Collection
from storage.config import DEFAULT_VECTOR
from storage.errors import BadRequest, NotFound, Unprocessable, only_fields
from storage.filters import Filter, compile_filter
from storage.ids import encode_id, parse_id
from storage.vectors.annoy_index import AnnIndex, IndexParams, indexing
from storage.values import parse_vector
from storage.filters.payload_index import Plan
from storage.reads import (Shape, _limit, check_order_index, holds, parse_order_by, scroll_by_value,
                           scroll_keys)
from storage.vectors import discover, examples, feedback, formula, mmr, recommend
from storage.vectors.multi import max_sim
from storage.vectors.sparse import SparseVector, is_sparse
from storage.vectors.elements import COSINE_RAW, cosine_raw
from storage.vectors.store import VectorStore

SMALLER_IS_BETTER = {"Euclid", "Manhattan"}
SCORE_CHUNK = 16384  # rows per step of a Euclid/Manhattan scan: bounded temporaries
SAMPLE = 256  # points a filter is tried on to estimate its selectivity
# A filtered search goes exact when Annoy would have to fetch more than this share
# of the index to find ``limit`` matching points.
EXACT_SHARE = 0.125
# Evaluating a filter on a point costs about this many row scores of the exact scan:
# a plan whose candidates still need the filter counts them this much heavier.
FILTER_COST = 8
# Annoy's dot metric (mapped onto angular with an extra dimension) needs about twice
# the candidates of the others for the same recall (tests/benchmarks/search_recall.py).
EF_SCALE = {"Dot": 2}


@dataclass
class SearchRequest:
    vector: np.ndarray | None  # the query vector, or None when querying by point id
    point_id: object | None
    using: str
    filter: dict | None
    limit: int
    offset: int
    score_threshold: float | None
    exact: bool
    shape: Shape
    ef: int | None = None  # params.hnsw_ef: Annoy candidates to examine
    # ``lookup_from``: (collection, vector name or None) the query's point id refers to;
    # the front door resolves it into ``vector`` (storage sees one collection at a time).
    lookup_from: tuple | None = None
    exclude_id: object | None = None  # a point never returned (the query's own, looked up by vector)
    # The universal query's composition (storage/vectors/query.py): candidates from
    # ``prefetch`` requests, fused (``fusion``: ("rrf", k, weights) or ("dbsf",)) or
    # rescored by this request's own query.
    prefetch: list | None = None
    fusion: tuple | None = None
    # A query scored against examples (storage/vectors/examples.py): recommend, discover,
    # context or relevance feedback.
    examples: object | None = None
    mmr: object | None = None  # storage.vectors.mmr.Mmr: re-rank the nearest candidates for diversity
    sample: bool = False  # ``sample: random``: matching points in a random order (``seed``'s)
    seed: int = 0  # chosen by the front door, so storage itself stays deterministic
    formula: object | None = None  # storage.vectors.formula.Formula: rescore the prefetches' candidates
    order_by: object | None = None  # ``order_by``: points in the order of a payload value, as a scroll

    @property
    def is_listing(self) -> bool:
        """A query without ``query``: points in id order, as a scroll would give them."""
        return (self.vector is None and self.point_id is None and self.examples is None and not self.sample
                and self.formula is None and self.order_by is None)

    @staticmethod
    def from_query(body: dict, where: str = "") -> "SearchRequest":
        """A /points/query body (or one of its prefetches, ``where`` naming it)."""
        prefetch = _prefetches(body.get("prefetch"), where)
        query, parts = _query_kinds(body.get("query", body.get("nearest")), prefetch, where)
        vector, point_id = None, None
        if isinstance(query, list) or is_sparse(query):
            vector = _query_vector(query)
        elif query is not None:
            point_id = parse_id(query)
        elif prefetch and not parts:
            raise BadRequest("Bad request: A query is needed to merge the prefetches.")
        req = SearchRequest._build(body, vector, point_id, _using(body.get("using")),
                                   body.get("with_payload", False), body.get("with_vector", False))
        req.lookup_from = _lookup_from(body.get("lookup_from"))
        req.prefetch = prefetch
        for name, value in parts.items():
            setattr(req, name, value)
        return req

    @staticmethod
    def from_search(body: dict) -> "SearchRequest":
        """A legacy /points/search body: ``vector`` is a list or {name, vector}."""
        raw = body.get("vector")
        using = DEFAULT_VECTOR
        if isinstance(raw, dict) and not is_sparse(raw):
            using = _using(raw.get("name"))
            raw = raw.get("vector")
        if not isinstance(raw, list) and not is_sparse(raw):
            raise BadRequest("Format error in JSON body: `vector` must be a list of numbers or {name, vector}")
        return SearchRequest._build(body, _query_vector(raw), None, using,
                                    body.get("with_payload", False),
                                    body.get("with_vector", body.get("with_vectors", False)))

    @staticmethod
    def from_recommend(body: dict) -> "SearchRequest":
        """A legacy /points/recommend body: the examples and strategy at the top level."""
        raw = {k: body[k] for k in ("positive", "negative", "strategy") if body.get(k) is not None}
        req = SearchRequest._build(body, None, None, _using(body.get("using")), body.get("with_payload", False),
                                   body.get("with_vector", body.get("with_vectors", False)))
        req.examples = recommend.parse(raw, "")
        req.lookup_from = _lookup_from(body.get("lookup_from"))
        return req

    @staticmethod
    def from_discover(body: dict) -> "SearchRequest":
        """A legacy /points/discover body: ``target`` (optional: context only) and
        ``context`` pairs at the top level."""
        req = SearchRequest._build(body, None, None, _using(body.get("using")), body.get("with_payload", False),
                                   body.get("with_vector", body.get("with_vectors", False)))
        target, context = body.get("target"), body.get("context")
        pairs = [] if context is None else discover.parse_pairs(context, "context")
        req.examples = discover.Discover(None if target is None else examples.example(target, "target"), pairs)
        req.lookup_from = _lookup_from(body.get("lookup_from"))
        return req

    @staticmethod
    def _build(body, vector, point_id, using, with_payload, with_vector) -> "SearchRequest":
        flt = body.get("filter")
        compile_filter(flt)
        offset = body.get("offset") or 0
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise BadRequest("Format error in JSON body: offset must be a non-negative integer")
        threshold = body.get("score_threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise BadRequest("Format error in JSON body: score_threshold must be a number")
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise BadRequest("Format error in JSON body: params must be an object")
        ef = params.get("hnsw_ef")
        if ef is not None and (isinstance(ef, bool) or not isinstance(ef, int) or ef < 0):
            raise BadRequest("Format error in JSON body: params.hnsw_ef must be a non-negative integer")
        if ef == 0:
            raise Unprocessable("Validation error in JSON body: [params.hnsw_ef: value 0 invalid, "
                                "must be 1 or larger]")
        return SearchRequest(vector, point_id, using, flt, _limit(body.get("limit"), 10), offset,
                             threshold, bool(params.get("exact", False)), Shape(with_payload, with_vector),
                             ef or None)


def _query_kinds(query, prefetch, where: str) -> tuple:
    """(the nearest query's vector or point id, else None; the request fields another
    kind of query sets: ``examples``, ``mmr``, ``sample``, ``order_by``, ``formula``, ``fusion``)."""
    if not isinstance(query, dict) or is_sparse(query):
        return query, {}
    kind = next(iter(query), "{}")
    if kind in _EXAMPLE_QUERIES or kind in ("sample", "order_by"):
        for extra in query:
            if extra != kind:
                raise BadRequest(f"Bad request: `{where}query.{extra}` is not supported by pointlog beside `{kind}`")
    if kind in _EXAMPLE_QUERIES:
        return None, {"examples": _EXAMPLE_QUERIES[kind](query[kind], where)}
    if kind == "order_by":
        parse_order_by(query["order_by"])
        return None, {"order_by": query["order_by"]}
    if kind == "sample":
        if query["sample"] != "random":
            raise BadRequest(f"Format error in JSON body: {where}query.sample: unknown variant "
                             f"`{query['sample']}`, expected `random`")
        return None, {"sample": True}
    if "formula" in query:
        only_fields(query, formula.FIELDS, f"{where}query")
        parsed = formula.parse(query["formula"], query.get("defaults"), where)
        if not prefetch:
            raise BadRequest(f"Bad request: {where}a formula query needs `prefetch` to rescore")
        return None, {"formula": parsed}
    fusion = _fusion(query, where)
    if fusion is not None:
        if not prefetch:
            raise BadRequest(f"Bad request: {where}a fusion query needs `prefetch` to fuse")
        return None, {"fusion": fusion}
    if "nearest" not in query:
        raise BadRequest(f"Bad request: `{kind}` queries are not supported by pointlog: only `nearest` "
                         "(with `mmr`), `recommend`, `discover`, `context`, `relevance_feedback`, `order_by`, "
                         "`sample`, `formula` and `fusion` / `rrf` queries, and queries without `query`")
    for option in query:
        if option not in ("nearest", "mmr"):  # refused, never ignored
            raise BadRequest(f"Bad request: `{where}query.{option}` is not supported by pointlog")
    return query["nearest"], ({"mmr": mmr.parse(query["mmr"], where)} if query.get("mmr") is not None else {})


_EXAMPLE_QUERIES = {"recommend": recommend.parse, "discover": discover.parse_discover,
                    "context": discover.parse_context, "relevance_feedback": feedback.parse}


def _prefetches(raw, where: str) -> list | None:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"Format error in JSON body: {where}prefetch[{i}] must be an object")
        for key in item:
            if key not in _PREFETCH_FIELDS and item[key] is not None:
                raise BadRequest(f"Bad request: `{where}prefetch[{i}].{key}` is not supported by pointlog")
        out.append(SearchRequest.from_query(item, f"{where}prefetch[{i}]."))
    return out or None


# Qdrant's Prefetch fields; `params` takes the same search params as the query.
_PREFETCH_FIELDS = ("prefetch", "query", "using", "filter", "params", "score_threshold", "limit", "lookup_from")


def _fusion(query: dict, where: str) -> tuple | None:
    """``{"fusion": "rrf" | "dbsf"}`` or ``{"rrf": {"k": .., "weights": [..]}}``."""
    if "fusion" in query:
        if len(query) != 1 or query["fusion"] not in ("rrf", "dbsf"):
            raise BadRequest(f"Format error in JSON body: {where}query.fusion: unknown variant "
                             f"`{query.get('fusion')}`, expected `rrf` or `dbsf`")
        return ("rrf", None, None) if query["fusion"] == "rrf" else ("dbsf",)
    if "rrf" in query:
        rrf = query["rrf"] if query["rrf"] is not None else {}
        if len(query) != 1 or not isinstance(rrf, dict) or set(rrf) - {"k", "weights"}:
            raise BadRequest(f"Format error in JSON body: {where}query.rrf must be {{k, weights}}")
        k, weights = rrf.get("k"), rrf.get("weights")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise BadRequest(f"Format error in JSON body: {where}query.rrf.k must be a positive integer")
        if weights is not None and (not isinstance(weights, list) or
                                    not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)):
            raise BadRequest(f"Format error in JSON body: {where}query.rrf.weights must be a list of numbers")
        return ("rrf", k, weights)
    return None


def _lookup_from(raw) -> tuple | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("collection"), str):
        raise BadRequest("Format error in JSON body: lookup_from: missing field `collection`")
    vector = raw.get("vector")
    if vector is not None and not isinstance(vector, str):
        raise BadRequest("Format error in JSON body: lookup_from.vector must be a vector name")
    return raw["collection"], vector


def _using(value) -> str:
    if value is None:
        return DEFAULT_VECTOR
    if not isinstance(value, str):
        raise BadRequest("Format error in JSON body: `using` must be a vector name")
    return value


def _query_vector(raw):
    return parse_vector(raw, "query")


def score_rows(rows: np.ndarray, query: np.ndarray, distance: str) -> np.ndarray:
    """Qdrant scores of rows against a prepared query; ``distance`` is the store's
    scoring kernel (its distance, or COSINE_RAW for uint8 Cosine rows).

    Row-wise kernels only (einsum, per-row sums): a row's score never depends on
    which other rows are scored with it. BLAS gemv does not give that guarantee.
    """
    if distance in ("Cosine", "Dot"):
        return np.einsum("ij,j->i", rows, query)
    if distance == COSINE_RAW:
        return cosine_raw(rows, query)
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), SCORE_CHUNK):
        diff = rows[start:start + SCORE_CHUNK] - query
        if distance == "Euclid":
            out[start:start + SCORE_CHUNK] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        else:
            np.abs(diff, out=diff)
            out[start:start + SCORE_CHUNK] = diff.sum(axis=1)
    return out


def scores(store: VectorStore, query: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Qdrant scores of the given slots against an already prepared query."""
    if len(slots) > store.used // 2:
        # Most of the store: scan the matrix in place rather than copying rows out.
        return score_rows(store.matrix[: store.used], query, store.kernel)[slots]
    return score_rows(store.rows(slots), query, store.kernel)


def prepare_query(store: VectorStore, query: np.ndarray) -> np.ndarray:
    return store.prepare(query)


def search(col: Collection, req: SearchRequest, params: IndexParams) -> list:
    req.shape.check(col)
    if req.is_listing:
        return listing(col, req)
    if req.sample:
        return sample(col, req)
    if req.order_by is not None:
        return ordered(col, req)
    if req.examples is not None:
        return examples.run(col, req, params, search, exact_slots, _records)
    if req.mmr is not None:
        return mmr.run(col, req, params, search)
    if req.using in col.config.sparse:
        return sparse_search(col, req)
    if req.using in col.multi:
        return multi_search(col, req)
    vector_params = col.config.vectors.get(req.using)
    if vector_params is None:
        raise BadRequest(f"Wrong input: Not existing vector name error: {req.using}")
    if isinstance(req.vector, SparseVector) or (req.vector is not None and req.vector.ndim != 1):
        raise _conversion_error(req.using)
    store = col.vectors[req.using]
    exclude = None
    if req.exclude_id is not None:
        exclude = store.slot_of.get(encode_id(req.exclude_id))
    if req.point_id is not None:
        key = encode_id(req.point_id)
        if key not in col.points:
            raise NotFound(f"Not found: No point with id {req.point_id} found")
        exclude = store.slot_of.get(key)
        if exclude is None:
            raise BadRequest(f"Wrong input: Point {req.point_id} has no vector `{req.using}`")
        query = np.array(store.matrix[exclude])
    else:
        query = req.vector
        if query.shape[0] != vector_params.size:
            raise BadRequest(f"Wrong input: Vector dimension error: expected dim: {vector_params.size}, "
                             f"got {query.shape[0]}")
    query = prepare_query(store, query)
    flt = col.compile_filter(req.filter)
    if flt is not None and flt.matches_all:
        flt = None
    plan = None if flt is None else col.payload_index.plan(flt)
    slots = candidates(col, store, query, flt, plan, exclude, req.offset + req.limit, params, req.exact, req.ef)
    return rank(col, store, req, slots, scores(store, query, slots))


def listing(col: Collection, req: SearchRequest) -> list:
    """A query without a query: matching points in id order, score 1 (as Qdrant's)."""
    keys = scroll_keys(col, col.compile_filter(req.filter), None, req.offset + req.limit)
    return _unscored(col, req, itertools.islice(keys, req.offset, req.offset + req.limit))


def _unscored(col: Collection, req: SearchRequest, keys) -> list:
    """Records of these points with score 1, as Qdrant scores queries that rank nothing."""
    out = []
    for key in keys:
        point = col.points[key]
        rec = req.shape.record(col, point)
        rec["score"] = 1.0
        rec["version"] = point.version
        out.append(rec)
    return out


def sample(col: Collection, req: SearchRequest) -> list:
    """``sample: random``: ``limit`` matching points in a random order, score 1 (as
    Qdrant's). The order comes from ``req.seed``, which the front door draws per request."""
    flt = col.compile_filter(req.filter)
    keys = list(scroll_keys(col, flt, None, len(col)))
    picks = np.random.default_rng(req.seed).permutation(len(keys))[:req.limit]
    return _unscored(col, req, (keys[i] for i in picks.tolist()))


def ordered(col: Collection, req: SearchRequest) -> list:
    """``order_by`` inside a query: a scroll page by payload value (its ``order_value``
    kept), score 1 as in Qdrant's local mode; ``offset`` skips into it."""
    check_order_index(col, req.order_by)
    page = scroll_by_value(col, req.order_by, req.filter, req.offset + req.limit, req.shape)["points"]
    out = []
    for rec in page[req.offset:]:
        rec["score"] = 1.0
        rec["version"] = col.points[encode_id(rec["id"])].version
        out.append(rec)
    return out


def vector_of(col: Collection, pid, name: str):
    """A point's stored vector, for a query that names it by id (``lookup_from``); a
    copy of a dense one, whose slot may be rewritten."""
    vec = col.stored_vector(pid, name)
    return vec if isinstance(vec, SparseVector) else np.array(vec)


def _conversion_error(name: str) -> BadRequest:
    return BadRequest(f"Wrong input: Conversion between sparse and regular vectors failed for vector: {name}")


def multi_search(col: Collection, req: SearchRequest) -> list:
    """MaxSim against every point holding this multivector (those matching the filter)."""
    store = col.multi[req.using]
    size = col.config.vectors[req.using].size
    exclude, query = _by_point(col, req)
    if query is None:
        if isinstance(req.vector, SparseVector):
            raise _conversion_error(req.using)
        query = req.vector if req.vector.ndim == 2 else req.vector[np.newaxis, :]
        if query.shape[1] != size:
            raise BadRequest(f"Wrong input: Vector dimension error: expected dim: {size}, got {query.shape[1]}")
        query = store.prepare(query)
    keys = [key for key in store.vectors if key != exclude]
    flt = col.compile_filter(req.filter)
    if flt is not None and not flt.matches_all:
        keep = holds(col, flt)
        keys = [key for key in keys if keep(key)]
    smaller = store.distance in SMALLER_IS_BETTER
    scored = [(np.float32(max_sim(query, store.vectors[key], store.kernel)), key) for key in keys]
    if req.score_threshold is not None:
        scored = [(s, k) for s, k in scored if (s <= req.score_threshold if smaller else s >= req.score_threshold)]
    scored.sort(key=lambda item: (item[0] if smaller else -item[0], item[1]))
    return _records(col, req, scored)


def _by_point(col: Collection, req: SearchRequest) -> tuple:
    """(key left out of the answer, the stored vector of a query by point id, else None)."""
    if req.point_id is None:
        return (None if req.exclude_id is None else encode_id(req.exclude_id)), None
    return encode_id(req.point_id), col.stored_vector(req.point_id, req.using)


def _records(col: Collection, req: SearchRequest, ranked: list) -> list:
    out = []
    for score, key in ranked[req.offset:req.offset + req.limit]:
        point = col.points[key]
        rec = req.shape.record(col, point)
        rec["score"] = float(score)
        rec["version"] = point.version
        out.append(rec)
    return out


def sparse_search(col: Collection, req: SearchRequest) -> list:
    """Dot products over the inverted index: only points sharing an index with the
    query are scored, then filtered, thresholded and ranked (ties by id order)."""
    store = col.sparse[req.using]
    exclude, query = _by_point(col, req)
    if query is None:
        if not isinstance(req.vector, SparseVector):
            raise _conversion_error(req.using)
        query = req.vector
    slots, totals = store.score_slots(query)
    found = totals.astype(np.float32)
    if exclude is not None and exclude in store.slot_of:
        keep_slot = slots != store.slot_of[exclude]
        slots, found = slots[keep_slot], found[keep_slot]
    if req.score_threshold is not None:
        above = found >= req.score_threshold
        slots, found = slots[above], found[above]
    flt = col.compile_filter(req.filter)
    keep = holds(col, flt) if flt is not None and not flt.matches_all else None
    want = req.offset + req.limit
    ranked = _best(found, slots, store.keys, keep, want, 4 * want + 64)
    if ranked is None:  # the filter left too few among the best: rank them all
        ranked = _best(found, slots, store.keys, keep, want, len(found))
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return _records(col, req, ranked)


def _best(found: np.ndarray, slots: np.ndarray, keys: list, keep, want: int, among: int) -> list | None:
    """(score, key) of the ``want`` best-scored points ``keep`` accepts, and every
    point tied with the last of them, looking only at the ``among`` best scores (and
    their ties); None if those were not enough."""
    order = np.arange(len(found))
    if among < len(found):
        cut = np.partition(-found, among - 1)[among - 1]
        order = np.flatnonzero(-found <= cut)
    order = order[np.argsort(-found[order], kind="stable")]
    ranked = []
    for i in order.tolist():
        # Past the answer's size only points tied with its last score can still enter it.
        if len(ranked) >= want and found[i] != ranked[-1][0]:
            return ranked
        key = keys[slots[i]]
        if keep is None or keep(key):
            ranked.append((found[i], key))
    # Everything outside ``order`` scores below all of it.
    return ranked if len(order) == len(found) or len(ranked) >= want else None


def candidates(col: Collection, store: VectorStore, query: np.ndarray, flt: Filter | None, plan: Plan | None,
               exclude: int | None, want: int, params: IndexParams, exact: bool = False,
               ef: int | None = None) -> np.ndarray:
    """Slots to score: all matching ones (exact), or Annoy's valid ones plus the delta.
    ``plan`` is the payload index's answer for ``flt`` (None if it has none)."""
    index: AnnIndex | None = store.index
    if exact or index is None or not indexing(col, store, params) or len(index) == 0:
        return exact_slots(col, store, flt, plan, exclude)
    share = 1.0
    if flt is not None:
        if flt.candidate_ids is not None:
            return exact_slots(col, store, flt, plan, exclude)
        if plan is not None and len(plan.keys) * (1 if plan.exact else FILTER_COST) <= params.threshold:
            return exact_slots(col, store, flt, plan, exclude)
        share = _matching_share(col, store, flt, plan)
    # A filtered search looks for neighbours among the matching share of the index,
    # so its default is that of an index of their number (then widened by 1/share).
    ef = max(ef or params.default_ef(len(index) * share) * EF_SCALE.get(store.distance, 1), want)
    if flt is not None and (share == 0.0 or ef / share > EXACT_SHARE * len(index)):
        return exact_slots(col, store, flt, plan, exclude)
    found = indexed_slots(col, store, index, query, flt, plan, exclude, want, ef, share)
    return exact_slots(col, store, flt, plan, exclude) if found is None else found


def exact_slots(col: Collection, store: VectorStore, flt: Filter | None, plan: Plan | None,
                exclude: int | None) -> np.ndarray:
    if flt is None:
        slots = store.alive_slots()
    elif plan is not None:
        # Look the candidates up instead of scanning (has_id conditions are in the
        # plan too). A store's keys are a subset of the points': when it is as large,
        # every candidate has a vector here.
        def lookup() -> np.ndarray:
            with_vector = plan.keys if len(store) == len(col) else store.slot_of.keys() & plan.keys
            found = np.sort(np.fromiter(map(store.slot_of.__getitem__, with_vector), dtype=np.int64,
                                        count=len(with_vector)))
            return found if plan.exact else filter_slots(col, store, flt, found)

        # Mapping thousands of keys to slots dominates a selective search; the same
        # filter on an unchanged collection (the common case: a tenant, a category)
        # reuses the result until the next write.
        slots = store.cached(("filter", flt.fingerprint, col.payload_revision), lookup)
    else:
        slots = filter_slots(col, store, flt, store.alive_slots())
    if exclude is not None:
        slots = slots[slots != exclude]
    return slots


def indexed_slots(col: Collection, store: VectorStore, index: AnnIndex, query: np.ndarray, flt: Filter | None,
                  plan: Plan | None, exclude: int | None, want: int, ef: int, share: float) -> np.ndarray | None:
    """Annoy candidates (widened until ``want`` of them are valid and match) plus the
    delta; None when even the whole index cannot supply them (scan exactly then)."""
    delta = store.changed_since(index.generation)
    if flt is not None:
        delta = filter_slots(col, store, flt, delta, plan)
    if exclude is not None:
        delta = delta[delta != exclude]
    as_list = query.tolist()
    n = min(len(index), max(int(ef / share), want + (exclude is not None)))
    while True:
        found = index.candidates(store, as_list, n)
        if exclude is not None:
            found = found[found != exclude]
        if flt is not None:
            found = filter_slots(col, store, flt, found, plan)
        if len(found) >= want:
            break
        if n >= len(index):
            # Annoy had its chance at every item; the delta holds the rest.
            if len(found) + len(delta) >= want:
                break
            return None
        n = min(len(index), n * 4)
    # Disjoint: Annoy's valid slots are stamped before the snapshot, the delta after.
    return np.concatenate([found, delta])


def _matching_share(col: Collection, store: VectorStore, flt: Filter, plan: Plan | None) -> float:
    """Share of points matching the filter: counted when the plan is exact, else
    from a sample. Random positions, not a stride: payloads that follow the ids
    (``i % 10``) would alias with a stride. The seed is fixed so the same state
    always takes the same path."""
    if plan is not None and plan.exact:
        return len(plan.keys) / len(col) if len(col) else 0.0
    alive = store.alive_slots()
    if len(alive) == 0:
        return 0.0
    picks = np.random.default_rng(len(alive)).integers(0, len(alive), min(SAMPLE, len(alive)))
    sample = alive[np.unique(picks)]
    return len(filter_slots(col, store, flt, sample, plan)) / len(sample)


def filter_slots(col: Collection, store: VectorStore, flt: Filter, slots: np.ndarray,
                 plan: Plan | None = None) -> np.ndarray:
    """The slots whose points match the filter, in the given order. With a plan only
    its candidates are evaluated (none at all when it is exact)."""
    keys = store.keys
    if plan is not None and plan.exact:
        found = plan.keys
        return np.asarray([slot for slot in slots.tolist() if keys[slot] in found], dtype=np.int64)
    found = None if plan is None else plan.keys
    points, names = col.points, col.vector_names_view()
    matches = flt.matches
    keep = []
    append = keep.append
    for slot in slots.tolist():
        key = keys[slot]
        if found is not None and key not in found:
            continue
        point = points[key]
        names.key = key
        if matches(point.id, point.payload, names):
            append(slot)
    return np.asarray(keep, dtype=np.int64)


def rank(col: Collection, store: VectorStore, req: SearchRequest, slots: np.ndarray, found: np.ndarray) -> list:
    """Order candidates best first, apply threshold, offset and limit, shape the output.
    Ties are broken by slot, so the order does not depend on how candidates were found."""
    smaller = store.distance in SMALLER_IS_BETTER
    if req.score_threshold is not None:
        keep = found <= req.score_threshold if smaller else found >= req.score_threshold
        slots, found = slots[keep], found[keep]
    want = req.offset + req.limit
    key = found if smaller else -found
    if len(key) > 4 * want + 64:
        top = np.argpartition(key, want - 1)[:want]
        # Every slot scoring exactly like the cut-off one competes for its place.
        cut = key[top].max()
        top = np.flatnonzero(key <= cut) if not np.isnan(cut) else np.arange(len(key))
    else:
        top = np.arange(len(key))
    order = top[np.lexsort((slots[top], key[top]))][:want]
    out = []
    for i in order[req.offset:]:
        point = col.points[store.keys[slots[i]]]
        rec = req.shape.record(col, point)
        rec["score"] = float(found[i])
        rec["version"] = point.version
        out.append(rec)
    return out
