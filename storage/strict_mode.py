"""Strict mode: a collection's ``strict_mode_config`` and the limits it puts on requests.

The config is part of the collection's logged configuration (create and PATCH), so
every node enforces the same limits. The limits are admission checks at the door, as
in Qdrant (lib/collection/src/operations/verification): a request over a limit is
refused before anything is published, with Qdrant's message. They apply only while
``enabled`` is true. A record written straight to Kafka by a producer bypasses them,
as it bypasses every other door check.

Enforced: ``max_query_limit``, ``max_timeout``, ``unindexed_filtering_retrieve`` and
``unindexed_filtering_update`` (an index of a kind that serves each condition, as
Qdrant's unindexed-field extractor decides), ``search_max_hnsw_ef``,
``search_allow_exact`` (with the full-scan check of vectors with ``hnsw_config.m``
0), ``search_max_oversampling``, ``search_max_batchsize``, ``upsert_max_batchsize``,
``max_points_count``, ``max_collection_vector_size_bytes`` and
``max_collection_payload_size_bytes`` (sizes estimated from the vectors' float32
bytes and the payloads' JSON bytes: Qdrant measures its own storage, so the point at
which a limit trips differs), ``filter_max_conditions``, ``condition_max_size``,
``multivector_config`` (max_vectors), ``sparse_config`` (max_length) and
``max_payload_index_count``.

Refused with a 400 naming them: ``read_rate_limit`` and ``write_rate_limit`` (Qdrant's
per-request token costs are not reproduced) and ``max_resident_memory_percent``
(deprecated in Qdrant; process memory is not a collection limit).
"""
from __future__ import annotations

import numpy as np
import orjson

from storage import operations as ops
from storage.errors import BadRequest
from storage.ids import parse_id
from storage.vectors.sparse import SparseVector


def active(col) -> dict | None:
    """The collection's strict mode config when it is enabled."""
    config = col.config.extra.get("strict_mode_config")
    return config if config and config.get("enabled") is True else None


# ---- errors and generic limits ------------------------------------------------------

def _refused(error: str, solution: str) -> BadRequest:
    return BadRequest(f"Bad request: {error}. Help: {solution}")


def _number(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def check_limit(value, limit, name: str) -> None:
    if value is None or limit is None or value <= limit:
        return
    raise _refused(f"Limit exceeded {_number(value)} > {_number(limit)} for \"{name}\"",
                   f"Reduce the \"{name}\" parameter to or below {_number(limit)}.")


def check_timeout(cfg: dict, timeout) -> None:
    check_limit(None if timeout is None else int(timeout), cfg.get("max_timeout"), "timeout")


def check_search_batch(cfg: dict, size: int) -> None:
    check_limit(size, cfg.get("search_max_batchsize"), "search batch size")


# ---- filters ---------------------------------------------------------------------

_CLAUSES = ("must", "should", "must_not")


def _conditions(flt: dict):
    """The filter's conditions, its sub-filters' included (not nested ones')."""
    for clause in _CLAUSES:
        found = flt.get(clause)
        if found is None:
            continue
        for cond in found if isinstance(found, list) else [found]:
            yield cond
    min_should = flt.get("min_should")
    if isinstance(min_should, dict):
        yield from min_should.get("conditions") or []


def _is_filter(cond: dict) -> bool:
    return "key" not in cond and not any(k in cond for k in _ONE_KEY)


_ONE_KEY = ("has_id", "has_vector", "is_empty", "is_null", "nested", "slice")


def conditions_count(flt: dict) -> int:
    """Leaf conditions, counted through sub-filters and nested filters."""
    total = 0
    for cond in _conditions(flt):
        if _is_filter(cond):
            total += conditions_count(cond)
        elif "nested" in cond:
            total += conditions_count(cond["nested"].get("filter") or {})
        else:
            total += 1
    return total


def _condition_size(cond: dict) -> int:
    if "has_id" in cond:
        return len(cond["has_id"])
    match = cond.get("match") or {}
    for kind in ("any", "except"):
        if isinstance(match.get(kind), list):
            return len(match[kind])
    polygon = cond.get("geo_polygon")
    if isinstance(polygon, dict):
        return len(polygon.get("exterior", {}).get("points", [])) + sum(
            len(ring.get("points", [])) for ring in polygon.get("interiors") or [])
    return 1


def max_condition_size(flt: dict) -> int:
    size = 0
    for cond in _conditions(flt):
        if _is_filter(cond):
            size = max(size, max_condition_size(cond))
        elif "nested" in cond:
            size = max(size, max_condition_size(cond["nested"].get("filter") or {}))
        else:
            size = max(size, _condition_size(cond))
    return size


# What each kind of index can serve, as Qdrant's `schema_capabilities`.
def _capabilities(schema) -> set:
    kind = schema.get("type") if isinstance(schema, dict) else schema
    params = schema if isinstance(schema, dict) else {}
    if kind == "keyword":
        return {"keyword"} | ({"keyword_prefix"} if params.get("prefix") else set())
    if kind == "integer":
        return ({"int_match"} if params.get("lookup", True) is not False else set()) | (
            {"int_range"} if params.get("range", True) is not False else set())
    if kind == "text":
        return {"text"} | ({"text_phrase"} if params.get("phrase_matching") else set())
    return {{"uuid": "uuid", "bool": "bool", "float": "float_range", "geo": "geo",
             "datetime": "datetime_range"}.get(kind, kind)}


_ALL = ("int_match", "int_range", "keyword", "keyword_prefix", "float_range", "text", "text_phrase", "bool",
        "uuid", "datetime_range", "geo")
# How a missing capability is named in the message (Qdrant prints the schema it suggests).
_SCHEMA_NAMES = {"int_match": "integer", "int_range": "integer", "keyword": "keyword",
                 "keyword_prefix": '{"type":"keyword","prefix":true}', "float_range": "float", "text": "text",
                 "text_phrase": '{"type":"text","phrase_matching":true}', "bool": "bool", "uuid": "uuid",
                 "datetime_range": "datetime", "geo": "geo"}


def _is_uuid(value) -> bool:
    try:
        return isinstance(parse_id(value), str)
    except BadRequest:
        return False


def _required(cond: dict) -> list:
    """The capabilities one of which an index on the condition's key needs."""
    need = []
    match = cond.get("match")
    if isinstance(match, dict) and match:
        ((kind, value),) = list(match.items())[:1]
        if kind == "value":
            if type(value) is bool:
                need += ["bool"]
            elif type(value) is int:
                need += ["int_match"]
            else:
                need += (["uuid"] if _is_uuid(value) else []) + ["keyword"]
        elif kind in ("any", "except"):
            if value:  # an empty list is a no-op that needs no index
                if all(type(v) is int for v in value):
                    need += ["int_match"]
                else:
                    need += (["uuid"] if all(_is_uuid(v) for v in value) else []) + ["keyword"]
        elif kind in ("text", "text_any"):
            need += ["text"]
        elif kind == "phrase":
            need += ["text_phrase"]
        elif kind == "prefix":
            need += ["keyword_prefix"]
        elif kind == "substring":
            need += ["keyword"]
    ranged = cond.get("range")
    if isinstance(ranged, dict):
        bounds = [v for v in ranged.values() if v is not None]
        if any(isinstance(v, str) for v in bounds):
            need += ["datetime_range"]
        elif any(isinstance(v, float) for v in bounds):
            need += ["float_range", "int_range"]
        else:
            need += ["int_range"]
    if any(cond.get(k) is not None for k in ("geo_bounding_box", "geo_radius", "geo_polygon")):
        need += ["geo"]
    if any(cond.get(k) is not None for k in ("values_count", "is_empty", "is_null")):
        need += list(_ALL)
    return need


def _unindexed(schema: dict, flt: dict, prefix: str | None = None):
    """(key, suggested schemas) of the first condition whose key lacks a serving index."""
    for cond in _conditions(flt):
        if _is_filter(cond):
            found = _unindexed(schema, cond, prefix)
        elif "nested" in cond:
            nested = cond["nested"]
            key = nested.get("key", "")
            key = key if key.endswith("[]") else key + "[]"
            found = _unindexed(schema, nested.get("filter") or {}, key if prefix is None else f"{prefix}.{key}")
        else:
            if "key" in cond:
                key, need = cond["key"], _required(cond)
            elif "is_empty" in cond or "is_null" in cond:
                key, need = (cond.get("is_empty") or cond.get("is_null")).get("key"), list(_ALL)
            else:
                continue  # has_id, has_vector, slice need no index
            if not need:
                continue
            full = key if prefix is None else f"{prefix}.{key}"
            held = schema.get(full)
            found = None
            if held is None or not _capabilities(held) & set(need):
                found = (full, need)
        if found is not None:
            return found
    return None


def check_filter(cfg: dict, col, flt, write: bool) -> None:
    if flt is None:
        return
    limit = cfg.get("filter_max_conditions")
    if limit is not None:
        count = conditions_count(flt)
        if count > limit:
            raise _refused(f"Filter condition limit reached ({count} > {limit})",
                           "Reduce the amount of conditions of your filter.")
    limit = cfg.get("condition_max_size")
    if limit is not None:
        size = max_condition_size(flt)
        if size > limit:
            raise _refused(f"Condition size limit reached ({size} > {limit})", "Reduce the size of your condition.")
    if cfg.get("unindexed_filtering_update" if write else "unindexed_filtering_retrieve") is False:
        found = _unindexed(col.payload_schema, flt)
        if found is not None:
            key, need = found
            names = ", ".join(sorted({_SCHEMA_NAMES[n] for n in need}))
            raise _refused(f"Index required but not found for \"{key}\" of one of the following types: [{names}]",
                           "Create an index for this key or use a different filter.")


# ---- reads -------------------------------------------------------------------------

def check_search(cfg: dict, col, body: dict, limit_default: int = 10, top: bool = True) -> None:
    """A search, query (with its prefetches) or recommend body."""
    params = body.get("params") or {}
    prefetch = body.get("prefetch")
    prefetches = [] if prefetch is None else prefetch if isinstance(prefetch, list) else [prefetch]
    for inner in prefetches:
        check_search(cfg, col, inner, top=False)
    if body.get("query") is not None and (not top or not prefetches):
        _check_fullscan(cfg, col, body)
    limit = body.get("limit")
    check_limit(limit_default if limit is None else limit, cfg.get("max_query_limit"), "limit")
    check_filter(cfg, col, body.get("filter"), write=False)
    if cfg.get("search_allow_exact") is False and params.get("exact"):
        raise _refused("Exact search disabled!", "Set exact=false.")
    quantization = params.get("quantization") or {}
    check_limit(quantization.get("oversampling"), cfg.get("search_max_oversampling"), "oversampling")
    check_limit(params.get("hnsw_ef"), cfg.get("search_max_hnsw_ef"), "hnsw_ef")


def _check_fullscan(cfg: dict, col, body: dict) -> None:
    """With exact search refused, a vector query on a vector without an HNSW graph
    (``m`` = 0) would be a full scan: Qdrant refuses it unless a tenant filter applies."""
    query = body["query"]
    if cfg.get("search_allow_exact") is not False or (isinstance(query, dict) and (
            {"fusion", "rrf", "order_by", "formula", "sample"} & set(query))):
        return
    using = body.get("using") or ""
    if using in col.config.sparse or using not in col.config.vectors:
        return
    collection_hnsw = col.config.extra.get("hnsw_config") or {}
    vector_hnsw = col.config.vectors[using].hints.get("hnsw_config") or {}
    m = vector_hnsw.get("m", collection_hnsw.get("m", 16))
    payload_m = vector_hnsw.get("payload_m", collection_hnsw.get("payload_m", m))
    if m > 0:
        return
    label = "" if using == "" else f" on '{using}'"
    flt = body.get("filter")
    tenant = flt is not None and any(
        isinstance(col.payload_schema.get(c.get("key")), dict) and col.payload_schema[c["key"]].get("is_tenant")
        for c in _conditions(flt) if isinstance(c, dict) and "key" in c)
    if not tenant:
        raise _refused(f"Request is forbidden{label} because global vector indexing is disabled (hnsw_config.m = 0)",
                       "Use tenant-specific filter, enable global vector indexing or enable strict mode "
                       "`search_allow_exact` option")
    if payload_m == 0:
        raise _refused(f"Request is forbidden{label} because vector indexing is disabled (hnsw_config.m = 0 and "
                       "hnsw_config.payload_m = 0)",
                       "Enable vector indexing, use a prefetch query with indexed vectors or enable strict mode "
                       "`search_allow_exact` option")


def check_groups(cfg: dict, col, body: dict) -> None:
    limit = body.get("limit") or 10
    group_size = body.get("group_size") or 3
    check_search(cfg, col, {**body, "limit": limit * group_size})
    group_by = body.get("group_by")
    if cfg.get("unindexed_filtering_retrieve") is False and isinstance(group_by, str):
        schema = col.payload_schema.get(group_by)
        if schema is None:
            raise _refused(f"Index required but not found for \"{group_by}\"",
                           "Create an index supporting `match` for this key.")
        if not _capabilities(schema) & {"keyword", "int_match", "uuid", "bool"}:
            kind = ops.field_type(schema)
            raise _refused(f"Index of type \"{kind.capitalize()}\" found for \"{group_by}\"",
                           "Create an index supporting `match` for this key.")


def check_scroll(cfg: dict, col, body: dict) -> None:
    limit = body.get("limit")
    check_limit(10 if limit is None else limit, cfg.get("max_query_limit"), "limit")
    check_filter(cfg, col, body.get("filter"), write=False)


def check_count(cfg: dict, col, body: dict) -> None:
    check_filter(cfg, col, body.get("filter"), write=False)


def check_facet(cfg: dict, col, body: dict) -> None:
    limit = body.get("limit")
    check_limit(10 if limit is None else limit, cfg.get("max_query_limit"), "limit")
    check_filter(cfg, col, body.get("filter"), write=False)


# ---- writes ------------------------------------------------------------------------

def check_write(cfg: dict, col, op: ops.Operation) -> None:
    if isinstance(op, ops.Batch):
        for inner in op.operations:
            check_write(cfg, col, inner)
        return
    if isinstance(op, ops.CreateFieldIndex):
        limit = cfg.get("max_payload_index_count")
        if limit is not None and len(col.payload_schema) >= limit:
            raise _refused(f"Collection already has the maximum number of payload indices ({limit})",
                           "Please delete an existing index before creating a new one.")
        return
    if isinstance(op, (ops.Upsert, ops.UpdateVectors)):
        check_limit(len(op.points), cfg.get("upsert_max_batchsize"),
                    "upsert limit" if isinstance(op, ops.Upsert) else "update limit")
        _check_sizes(cfg, col)
        _check_vector_limits(cfg, op.points)
        return
    selector = getattr(op, "selector", None)
    if selector is not None:
        check_filter(cfg, col, selector.filter, write=True)
    if isinstance(op, (ops.SetPayload, ops.OverwritePayload)):
        limit = cfg.get("max_collection_payload_size_bytes")
        if limit is not None:
            _check_payload_size(col, limit)


def _check_sizes(cfg: dict, col) -> None:
    limit = cfg.get("max_collection_vector_size_bytes")
    if limit is not None and vector_bytes(col) >= limit:
        raise BadRequest(f"Bad request: Max vector storage size limit of {_megabytes(limit)}MB reached!")
    limit = cfg.get("max_collection_payload_size_bytes")
    if limit is not None:
        _check_payload_size(col, limit)
    limit = cfg.get("max_points_count")
    if limit is not None and len(col) >= limit:
        raise BadRequest(f"Bad request: Max points count limit of {limit} reached!")


def _check_payload_size(col, limit: int) -> None:
    if payload_bytes(col) >= limit:
        raise BadRequest(f"Bad request: Max payload storage size limit of {_megabytes(limit)}MB reached!")


def _megabytes(size: int) -> str:
    # Qdrant prints an f32 with Rust's shortest round-trip formatting
    value = np.float32(size / (1024.0 * 1024.0))
    return str(int(value)) if float(value).is_integer() else str(value)


def vector_bytes(col) -> int:
    """The collection's vectors as float32 bytes (sparse: an index and a value each)."""
    total = sum(len(store) * store.dim * 4 for store in col.vectors.values())
    for store in col.multi.values():
        total += sum(m.shape[0] for m in store.vectors.values()) * store.dim * 4
    for store in col.sparse.values():
        total += sum(len(v.indices) for v in store.vectors.values()) * 8
    return total


def payload_bytes(col) -> int:
    return sum(len(orjson.dumps(p.payload)) for p in col.points.values() if p.payload)


def _check_vector_limits(cfg: dict, points: list) -> None:
    multi = {n: c.get("max_vectors") for n, c in (cfg.get("multivector_config") or {}).items()}
    sparse = {n: c.get("max_length") for n, c in (cfg.get("sparse_config") or {}).items()}
    if not multi and not sparse:
        return
    for point in points:
        for name, vec in point.vectors.items():
            if isinstance(vec, SparseVector):
                limit = sparse.get(name)
                if limit is not None and len(vec.indices) > limit:
                    raise BadRequest(f"Bad request: Sparse vector '{name}' has a limit of {limit} indices, "
                                     f"but {len(vec.indices)} were provided!")
            elif getattr(vec, "ndim", 1) == 2:
                limit = multi.get(name)
                if limit is not None and vec.shape[0] > limit:
                    raise BadRequest(f"Bad request: Multivector '{name}' has a limit of {limit} vectors, "
                                     f"but {vec.shape[0]} were provided!")

