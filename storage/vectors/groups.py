"""Grouped queries (``/points/query/groups``): the best hits per value of a payload
key, groups in the order of their best hit.

The query runs as it would ungrouped but without a limit (prefetches too), so a group
gets its hits in score order; a point joins one group per distinct value it holds at
``group_by``; a point holding a value that cannot be a group id (not an integer or a
string) joins none, as in Qdrant, whose aggregator drops such a point whole.
"""
import copy
from dataclasses import replace

from storage.collection import Collection
from storage.paths import compile_getter, leaf_values, parse_path
from storage.vectors.annoy_index import IndexParams
from storage.vectors.query import run
from storage.vectors.search import SearchRequest


def group_ids(values: list) -> list | None:
    flat = leaf_values(values)
    if not flat or any(type(v) not in (int, str) for v in flat):
        return None
    return list(dict.fromkeys(flat))


def query_groups(col: Collection, req: SearchRequest, group_by: str, group_size: int, limit: int,
                 params: IndexParams) -> list:
    getter = compile_getter(parse_path(group_by))
    wanted_payload = req.shape.payload
    shape = copy.copy(req.shape)
    shape.payload = lambda payload: payload  # the group values are read from it; trimmed below
    everything = max(len(col), 1)
    hits = run(col, _unbounded(replace(req, shape=shape, offset=0), everything), params)
    groups: dict = {}
    for hit in hits:
        ids = group_ids(getter(hit["payload"]))
        if ids is None:
            continue
        if wanted_payload is None:
            hit.pop("payload")
        else:
            hit["payload"] = wanted_payload(hit["payload"])
        for gid in ids:
            members = groups.setdefault(gid, [])
            if len(members) < group_size:
                members.append(hit)
    return [{"id": gid, "hits": members} for gid, members in list(groups.items())[:limit]]


def _unbounded(req: SearchRequest, limit: int) -> SearchRequest:
    prefetch = [_unbounded(p, limit) for p in req.prefetch] if req.prefetch else req.prefetch
    return replace(req, limit=limit, prefetch=prefetch)
