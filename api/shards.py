"""Requests on a sharded collection (``shard_number > 1``), from any node.

Writes are produced straight to the log: an operation by point ids is split by shard
(storage/shards.py) and each part goes to its shard's partition; any other (by filter,
a batch, a payload index, settings) goes to the WAL, and a barrier naming its WAL
offset to every shard, which applies it there in WAL order. ``wait=true`` waits for
every shard the operation reached, on the nodes that hold them.

Reads go to the nodes holding the shards (the group assignment says which, see
streams/shard_worker.py), run there with the same readers as an unsharded
collection, and are merged here: nearest points by score, scroll pages in id order,
counts and facet counts summed, retrieved points in request order. A shard whose
holder does not answer (it died, the group is rebalancing) is asked again once the
assignment changes, until the request's deadline: during a takeover reads are slower,
not wrong.
"""
import asyncio
import logging
import secrets
import time
from dataclasses import replace

import httpx
import numpy as np
import orjson

from storage import operations as ops
from storage import reads, shards
from storage.collection import Collection
from storage.errors import BadRequest, NotFound, QdrantError, Unavailable
from storage.filters import merge_filters
from storage.ids import encode_id, parse_id
from storage.vectors import groups as groups_query
from storage.vectors import mmr, query
from storage.vectors.sparse import SparseVector
from storage.vectors.search import SearchRequest
from storage.vectors.annoy_index import index_status
from streams.codec import encode
from streams.shard_applier import control_scope
from streams.topics import ensure_topics

log = logging.getLogger(__name__)
INTERNAL = "/__pointlog"  # the routes nodes use to ask each other (api/rest/internal.py)
READ_DEADLINE = 60.0  # seconds a read may wait for a shard to have a holder
SHARD_HEADER = "pointlog-shard"

_clients: dict = {}


def _client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None),
                                                    limits=httpx.Limits(max_keepalive_connections=32))
    return client


def topic_of(node, col: Collection) -> str:
    return shards.shard_topic(node.settings.topic, shards.incarnation(col))


# ---- writes ---------------------------------------------------------------------------

async def submit(node, col: Collection, op: ops.Operation, wait: bool, timeout: float | None) -> dict:
    count = shards.shard_count(col.config)
    topic = topic_of(node, col)
    node.check_writable()
    await ensure_topic(node, col)
    parts = shards.split(op, count)
    control = None
    if parts is None:
        # One WAL record, then a barrier in every shard: the same place in each.
        partition, control = await node.producer.publish(ops.Command(col.name, op))
        barrier = ops.ShardBarrier(upto=control, partition=partition)
        parts = {shard: barrier for shard in range(count)}
    sent = await asyncio.gather(*(_produce(node, col.name, topic, shard, count, part)
                                  for shard, part in parts.items()))
    operation_id = control if control is not None else sent[0][1]
    if not wait:
        return {"operation_id": operation_id, "status": "acknowledged"}
    deadline = None if timeout is None else time.monotonic() + timeout
    outcomes = await asyncio.gather(*(wait_shard(node, topic, shard, offset, control, deadline)
                                      for shard, offset in sent))
    if any(o is None for o in outcomes):
        return {"operation_id": operation_id, "status": "wait_timeout"}
    failures = [o for o in outcomes if o]
    if failures:
        raise QdrantError.from_dict(failures[0])
    return {"operation_id": operation_id, "status": "completed"}


async def _produce(node, name: str, topic: str, shard: int, count: int, op: ops.Operation) -> tuple:
    key, value, headers = encode(ops.Command(name, op))
    headers = headers + [(SHARD_HEADER, f"{shard}/{count}".encode())]
    _partition, offset = await node.producer.publish_raw(key, value, headers, topic=topic, partition=shard)
    return shard, offset


async def wait_shard(node, topic: str, shard: int, offset: int, control: int | None, deadline) -> dict | None:
    """Until every holder of the shard applied ``offset``: {} when done, the failure's
    error dict if the operation failed there, None on timeout."""
    worker = node.shards
    while True:
        generation = worker.generation
        holders = worker.holders(topic, shard)
        if holders:
            try:
                outcomes = await asyncio.gather(*(_wait_at(node, name, url, topic, shard, offset, control, deadline)
                                                  for name, url in holders))
                if any(o is None for o in outcomes):
                    return None
                return next((o for o in outcomes if o), {})
            except Moved:
                pass
        left = _left(deadline)
        if left is not None and left <= 0:
            return None
        await worker.assignment_changed(generation, min(left or 1.0, 1.0))


class Moved(Exception):
    """The node asked does not hold the shard (any more), or cannot be reached."""


async def _wait_at(node, name: str, url: str, topic: str, shard: int, offset: int, control, deadline):
    if name == node.shards.name:
        return await wait_local(node, topic, shard, offset, control, _left(deadline))
    body = {"topic": topic, "shard": shard, "offset": offset, "control": control, "timeout": _left(deadline)}
    left = _left(deadline)
    answer = await _call(node, url, "wait", body, None if left is None else left + 5.0)
    return (answer.get("failure") or {}) if answer.get("done") else None


async def wait_local(node, topic: str, shard: int, offset: int, control, timeout) -> dict | None:
    worker = node.shards
    if not worker.holds(topic, shard):
        raise Moved()
    if not await worker.progress(topic).wait(shard, offset, timeout):
        return None
    if not worker.holds(topic, shard):
        raise Moved()
    state = node.state
    failure = worker.progress(topic).failure(shard, offset) or state.failure(shard, offset, topic.encode())
    if failure is None and control is not None:
        failure = state.failure(shard, control, control_scope(topic))
    return failure or {}


def _left(deadline) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


async def _call(node, url: str, what: str, body: dict, timeout: float | None):
    """POST to another node's internal route; ``timeout`` bounds the wait for its answer
    (a node that hangs is treated as one that is gone: ``Moved``)."""
    headers = {"content-type": "application/json"}
    key = node.settings.api_key
    if key is not None:
        headers["api-key"] = key.get_secret_value()
    try:
        response = await _client().post(f"{url}{INTERNAL}/{what}",
                                        content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                                        headers=headers, timeout=httpx.Timeout(10.0, read=timeout))
    except httpx.HTTPError as exc:
        log.info("node %s did not answer (%s); waiting for the shards to move", url, type(exc).__name__)
        raise Moved() from None
    payload = orjson.loads(response.content)
    if response.status_code == 409:
        raise Moved()
    if response.status_code != 200:
        raise QdrantError.from_dict(payload["status"]) if isinstance(payload.get("status"), dict) else \
            Unavailable(f"Service unavailable: node {url} answered {response.status_code}")
    return payload["result"]


# ---- reads ----------------------------------------------------------------------------

def check_search(req: SearchRequest) -> None:
    """A search-like request the merge here answers exactly, or a 400 naming what it is not."""
    if req.mmr is not None and (req.prefetch or req.examples is not None):
        raise refused("mmr with prefetch")
    if (req.sample or req.order_by is not None) and req.prefetch:
        raise refused("sample or order_by with prefetch")
    for inner in req.prefetch or ():
        check_search(inner)
        for attr, what in (("mmr", "mmr"), ("sample", "sample"), ("order_by", "order_by"), ("point_id", "a point id"),
                           ("examples", "examples"), ("lookup_from", "lookup_from")):
            if getattr(inner, attr) not in (None, False):
                raise refused(f"a prefetch with {what}")


def refused(what: str) -> BadRequest:
    return BadRequest(f"Bad request: {what} is not supported by pointlog on a sharded collection "
                      "(shard_number > 1) yet")


async def read(node, col: Collection, kind: str, body: dict, timeout: float | None = None) -> list:
    """Run ``kind`` on every shard (``body["shards"]`` narrows it) and return the
    per-shard answers, in shard order."""
    count = shards.shard_count(col.config)
    wanted = body.pop("_shards", None) or list(range(count))
    topic = topic_of(node, col)
    deadline = time.monotonic() + (timeout or READ_DEADLINE)
    answers: dict = {}
    worker = node.shards
    failed: set = set()  # nodes that did not answer this request: their replicas are asked at once
    while True:
        generation = worker.generation
        missing = [s for s in wanted if s not in answers]
        by_node: dict = {}
        for shard in missing:
            holders = [h for h in worker.holders(topic, shard) if h[0] not in failed]
            if holders:
                mine = [h for h in holders if h[0] == worker.name]
                by_node.setdefault((mine or holders)[0], []).append(shard)
        results = await asyncio.gather(*(_read_at(node, name, url, col, topic, kind, body, group, deadline)
                                         for (name, url), group in by_node.items()), return_exceptions=True)
        for (name, _url), got in zip(by_node, results):
            if isinstance(got, Moved):
                failed.add(name)
                continue
            if isinstance(got, BaseException):
                raise got
            answers.update(got)
        if all(s in answers for s in wanted):
            return [answers[s] for s in wanted]
        untried = any(h[0] not in failed for s in wanted if s not in answers for h in worker.holders(topic, s))
        if untried:
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unavailable(f"Service unavailable: shards {sorted(set(wanted) - set(answers))} of collection "
                              f"`{col.name}` have no node that answers")
        await worker.assignment_changed(generation, min(left, 0.5))
        failed.clear()  # a new plan, or half a second later: every holder may be asked again


async def _read_at(node, name: str, url: str, col: Collection, topic: str, kind: str, body: dict, group: list,
                   deadline: float):
    if name == node.shards.name:
        return await read_local(node, topic, kind, body, group, max(0.0, deadline - time.monotonic()))
    payload = {"collection": col.name, "topic": topic, "kind": kind, "body": body, "shards": group}
    answer = await _call(node, url, "read", payload, max(1.0, deadline - time.monotonic()))
    return {int(s): v for s, v in answer.items()}


async def read_local(node, topic: str, kind: str, body: dict, group: list, timeout: float = READ_DEADLINE) -> dict:
    worker = node.shards
    out = {}
    deadline = time.monotonic() + timeout
    for shard in group:
        if not worker.holds(topic, shard):
            raise Moved()
        if not await worker.caught_up(topic, shard, max(0.0, deadline - time.monotonic())):
            raise Unavailable(f"Service unavailable: shard {shard} is still being rebuilt here")
        if not worker.holds(topic, shard):
            raise Moved()
    which = shards.topic_incarnation(node.settings.topic, topic)
    for shard in group:
        held = node.state.collections.get(shards.shard_name(which, shard))
        out[shard] = _LOCAL[kind](node, held, body) if held is not None else _EMPTY[kind]
    return out


def _retrieve_local(col: Collection, body: dict) -> list:
    found = reads.retrieve(col, body["ids"], reads.Shape.from_body(body))
    if body.get("_versions"):  # a fused query's points carry their versions, as scored points do
        for rec in found:
            rec["version"] = col.points[encode_id(parse_id(rec["id"]))].version
    return found


def _stored_vectors(node, col: Collection, body: dict) -> dict:
    out = {}
    for raw in body["ids"]:
        pid = parse_id(raw)
        if encode_id(pid) not in col.points:
            continue
        try:
            vec = col.stored_vector(pid, body["using"])
        except QdrantError as exc:
            out[encode_id(pid).hex()] = {"error": exc.to_dict()}
            continue
        out[encode_id(pid).hex()] = {"vector": vec.to_json() if isinstance(vec, SparseVector) else vec.tolist()}
    return out


# The dialects of search-like bodies, by the endpoint family they come from.
FORMS = {"query": SearchRequest.from_query, "search": SearchRequest.from_search,
         "recommend": SearchRequest.from_recommend, "discover": SearchRequest.from_discover}


def _groups_local(node, col: Collection, body: dict):
    item = body["query"]
    req = SearchRequest.from_query({k: v for k, v in item.items() if k not in ("_examples", "_exclude")})
    _resolve_examples(req, item)
    return groups_query.query_groups(col, req, body["group_by"], body["group_size"], body["limit"],
                                     node.settings.index)


def _resolve_examples(req: SearchRequest, item: dict) -> None:
    if item.get("_examples"):
        table = {encode_id(parse_id(pid)): _vector_from_json(vec) for pid, vec in item["_examples"]}
        req.examples, mentioned = req.examples.resolve(lambda pid: table[encode_id(pid)])
        if item.get("_exclude", True):
            req.filter = merge_filters(req.filter, {"must_not": [{"has_id": mentioned}]})


def _matrix_candidates(col: Collection, body: dict) -> list:
    store = col.store(body["using"])
    if store is None:
        raise BadRequest(f"Wrong input: Not existing vector name error: {body['using']}")
    return [key for key in reads.scroll_keys(col, col.compile_filter(body.get("filter")), None, len(col))
            if key in store]


def _matrix_sample_local(node, col: Collection, body: dict) -> list:
    """This shard's share of a matrix's sample: ids and stored vectors."""
    shard = col.name.rsplit("/", 1)[1]
    keys = _matrix_candidates(col, body)
    share = body["shares"][shard]
    picks = np.random.default_rng(body["seeds"][shard]).choice(len(keys), share, replace=False) \
        if share < len(keys) else range(len(keys))
    store = col.store(body["using"])
    out = []
    for i in sorted(int(p) for p in picks):
        vec = store.get(keys[i])
        out.append([col.points[keys[i]].id, vec.to_json() if isinstance(vec, SparseVector) else vec.tolist()])
    return out


def _sample_local(node, col: Collection, body: dict) -> list:
    shard = col.name.rsplit("/", 1)[1]
    req = SearchRequest.from_query({**body["query"], "limit": body["shares"][shard]})
    req.seed = body["seeds"][shard]
    return query.run(col, req, node.settings.index)


def _search_local(node, col: Collection, body: dict):
    parse = FORMS[body["form"]]
    out = []
    for item in body["searches"]:
        req = parse({k: v for k, v in item.items() if k not in ("_examples", "_exclude")})
        _resolve_examples(req, item)
        out.append(query.run(col, req, node.settings.index))
    return out


_LOCAL = {
    "retrieve": lambda node, col, body: _retrieve_local(col, body),
    "scroll": lambda node, col, body: reads.scroll(col, body.get("offset"), body.get("limit"), body.get("filter"),
                                                   reads.Shape.from_body(body))["points"],
    "scroll_by_value": lambda node, col, body: reads.scroll_by_value(
        col, body["order_by"], body.get("filter"), body.get("limit"), reads.Shape.from_body(body))["points"],
    "count": lambda node, col, body: reads.count(col, body.get("filter")),
    "facet": lambda node, col, body: reads.facet(col, body["key"], body.get("filter"), 2**31)["hits"],
    "search": _search_local,
    "info": lambda node, col, body: {"points": len(col), "indexed": _indexed(col)},
    "vectors": _stored_vectors,
    "groups": _groups_local,
    "sample": _sample_local,
    "matrix_count": lambda node, col, body: len(_matrix_candidates(col, body)),
    "matrix_sample": _matrix_sample_local,
    "formula": lambda node, col, body: _formula_local(node, col, body),
}
_EMPTY = {"retrieve": [], "scroll": [], "scroll_by_value": [], "groups": [], "sample": [], "formula": [],
          "matrix_count": 0, "matrix_sample": [], "count": 0, "facet": [], "search": None, "vectors": {},
          "info": {"points": 0, "indexed": 0}}


def _indexed(col: Collection) -> int:
    indexed, _building = index_status(col)
    return indexed + sum(len(store) for store in col.sparse.values())


# ---- merging ----------------------------------------------------------------------------

async def retrieve(node, col: Collection, ids: list, body: dict) -> list:
    reads.Shape.from_body(body).check(col)
    wanted = list(dict.fromkeys(parse_id(i) for i in ids))
    count = shards.shard_count(col.config)
    by_shard = sorted({shards.shard_of(pid, count) for pid in wanted})
    if not by_shard:
        return []
    answers = await read(node, col, "retrieve", {**body, "ids": wanted, "_shards": by_shard})
    found = {encode_id(parse_id(r["id"])): r for answer in answers for r in answer}
    return [found[encode_id(pid)] for pid in wanted if encode_id(pid) in found]


async def get_point(node, col: Collection, pid) -> dict:
    got = await retrieve(node, col, [pid], {"with_payload": True, "with_vector": True})
    if not got:
        raise NotFound(f"Not found: No point with id {pid} found")
    return got[0]


async def scroll(node, col: Collection, body: dict) -> dict:
    reads.Shape.from_body(body).check(col)
    if body.get("order_by") is not None:
        return await _scroll_by_value(node, col, body)
    col.compile_filter(body.get("filter"))
    limit = reads.positive(body.get("limit"), "limit", 10)
    if body.get("offset") is not None:
        parse_id(body["offset"])
    answers = await read(node, col, "scroll", {**body, "limit": limit + 1})
    merged = sorted((r for answer in answers for r in answer), key=lambda r: encode_id(parse_id(r["id"])))
    page = merged[:limit]
    return {"points": page, "next_page_offset": merged[limit]["id"] if len(merged) > limit else None}


async def groups(node, col: Collection, body: dict, req: SearchRequest, group_by: str, group_size: int,
                 limit: int) -> list:
    """Grouped queries in two rounds, both exact. First every shard's best ``limit``
    groups with their best hit: a group among the best ``limit`` overall has its best hit
    in some shard, where fewer than ``limit`` groups beat it, so the merge of those lists
    (best hits in score order) names the best groups. Then every shard's hits of just
    those groups (a filter on their values, every group it has), merged per group in
    score order: each group's best ``group_size`` hits."""
    check_search(req)
    if req.prefetch:
        raise refused("grouped queries with prefetch")
    item = dict(body)
    order = _score_order(col, req, await _examples(node, col, item, req))
    first = await read(node, col, "groups", {"query": item, "group_by": group_by, "group_size": 1, "limit": limit})
    best = sorted(((g["hits"][0], g["id"]) for answer in first for g in answer), key=lambda hg: order(hg[0]))
    chosen = list(dict.fromkeys(gid for _hit, gid in best))[:limit]
    if not chosen:
        return []
    by_type = [[g for g in chosen if isinstance(g, int)], [g for g in chosen if isinstance(g, str)]]
    only = {"should": [{"key": group_by, "match": {"any": values}} for values in by_type if values]}
    narrowed = {**item, "filter": merge_filters(item.get("filter"), {"must": [only]})}
    second = await read(node, col, "groups", {"query": narrowed, "group_by": group_by, "group_size": group_size,
                                              "limit": 2**31})
    members: dict = {}
    for answer in second:
        for g in answer:
            members.setdefault(_group_key(g["id"]), []).extend(g["hits"])
    out = []
    for gid in chosen:
        hits = sorted(members.get(_group_key(gid), []), key=order)[:group_size]
        out.append({"id": gid, "hits": hits})
    return out


def _group_key(gid) -> tuple:
    return (type(gid).__name__, gid)


async def _scroll_by_value(node, col: Collection, body: dict) -> dict:
    """Each shard's first ``limit`` entries by value, merged as one node orders them:
    by value, equal values in id order."""
    from api.service import check_order_by
    check_order_by(col, body["order_by"], body.get("offset"))
    _key, descending, _start = reads.parse_order_by(body["order_by"])
    col.compile_filter(body.get("filter"))
    limit = reads.positive(body.get("limit"), "limit", 10)
    answers = await read(node, col, "scroll_by_value", {**body, "limit": limit})
    merged = sorted((r for answer in answers for r in answer),
                    key=lambda r: ((-r["order_value"] if descending else r["order_value"]),
                                   encode_id(parse_id(r["id"]))))
    return {"points": merged[:limit], "next_page_offset": None}


async def count(node, col: Collection, body: dict) -> int:
    col.compile_filter(body.get("filter"))
    return sum(await read(node, col, "count", {"filter": body.get("filter")}))


async def facet(node, col: Collection, body: dict) -> dict:
    col.compile_filter(body.get("filter"))
    limit = reads.positive(body.get("limit"), "limit", 10)
    answers = await read(node, col, "facet", {"key": body["key"], "filter": body.get("filter")})
    totals: dict = {}
    for answer in answers:
        for hit in answer:
            tagged = (reads.facet_rank(hit["value"]), hit["value"])
            totals[tagged] = totals.get(tagged, 0) + hit["count"]
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return {"hits": [{"value": value, "count": n} for (_tag, value), n in ranked]}


async def search(node, col: Collection, form: str, items: list, reqs: list) -> list:
    """``form``: a key of ``FORMS`` (the body's dialect); one answer per request, as the
    unsharded reader gives it. Plain nearest queries go to the shards in one round
    trip; queries with prefetches are composed here, as ``storage/vectors/query.py``
    composes them on one node: each prefetch's merged top-k, then fusion (RRF, DBSF)
    or a rescoring query over the union of their candidates."""
    for req in reqs:
        check_search(req)
    plain = [i for i, req in enumerate(reqs) if not req.prefetch]
    out: list = [None] * len(reqs)
    if plain:
        for i, found in zip(plain, await _nearest(node, col, form, [items[i] for i in plain], [reqs[i] for i in plain])):
            out[i] = found
    composed = [i for i, req in enumerate(reqs) if req.prefetch]
    for i, found in zip(composed, await asyncio.gather(*(_composed(node, col, items[i], reqs[i]) for i in composed))):
        out[i] = found
    return out


async def _nearest(node, col: Collection, form: str, items: list, reqs: list) -> list:
    if any(req.mmr is not None or req.sample for req in reqs):
        return [await _mmr(node, col, form, item, req) if req.mmr is not None
                else await _sample(node, col, item, req) if req.sample
                else (await _nearest(node, col, form, [item], [req]))[0] for item, req in zip(items, reqs)]
    asked = [{**item, "limit": req.offset + req.limit, "offset": 0} for item, req in zip(items, reqs)]
    orders = []
    for item, req in zip(asked, reqs):
        orders.append(_score_order(col, req, await _examples(node, col, item, req)))
    answers = await read(node, col, "search", {"form": form, "searches": asked})
    out = []
    for i, req in enumerate(reqs):
        found = [r for answer in answers if answer is not None for r in answer[i]]
        found.sort(key=orders[i])
        out.append(found[req.offset:req.offset + req.limit])
    return out


async def matrix(node, col: Collection, request) -> tuple:
    """The distance matrix: a uniform sample of the points holding the vector (split
    over the shards as ``sample`` is), then each sampled point's nearest among the
    others, one merged search each, as one node computes them. (ids in id order, rows)."""
    req = request.search
    body = {"filter": req.filter, "using": req.using}
    counts = await read(node, col, "matrix_count", dict(body))
    want = min(request.sample, sum(counts))
    if want < 2:
        return [], []
    rng = np.random.default_rng(secrets.randbits(64))
    shares = rng.multivariate_hypergeometric(counts, want).tolist()
    wanted = [s for s, k in enumerate(shares) if k > 0]
    answers = await read(node, col, "matrix_sample", {**body, "shares": {str(s): shares[s] for s in wanted},
                                                      "seeds": {str(s): secrets.randbits(63) for s in wanted},
                                                      "_shards": wanted})
    sampled = sorted((row for answer in answers for row in answer), key=lambda row: encode_id(parse_id(row[0])))
    ids = [row[0] for row in sampled]
    items, reqs = [], []
    for i, (_pid, vector) in enumerate(sampled):
        flt = merge_filters(req.filter, {"must": [{"has_id": ids[:i] + ids[i + 1:]}]})
        item = {"query": vector, "using": req.using, "filter": flt, "limit": req.limit, "params": {"exact": True}}
        items.append(item)
        reqs.append(SearchRequest.from_query(item))
    rows = await _nearest(node, col, "query", items, reqs)
    return ids, [[(hit["id"], hit["score"]) for hit in row] for row in rows]


async def _sample(node, col: Collection, item: dict, req: SearchRequest) -> list:
    """``sample: random`` over every shard, uniform as on one node: how many of the
    ``limit`` points each shard gives is a multivariate hypergeometric draw over the
    shards' matching counts, each shard draws its share at random, and the union is
    shuffled."""
    rng = np.random.default_rng(secrets.randbits(64))
    counts = await read(node, col, "count", {"filter": item.get("filter")})
    want = min(req.limit, sum(counts))
    if want == 0:
        return []
    shares = rng.multivariate_hypergeometric(counts, want).tolist()
    wanted = [s for s, k in enumerate(shares) if k > 0]
    answers = await read(node, col, "sample", {"query": item, "shares": {str(s): shares[s] for s in wanted},
                                               "seeds": {str(s): secrets.randbits(63) for s in wanted},
                                               "_shards": wanted})
    found = [r for answer in answers for r in answer]
    return [found[i] for i in rng.permutation(len(found)).tolist()]


async def _mmr(node, col: Collection, form: str, item: dict, req: SearchRequest) -> list:
    """MMR over the merged nearest candidates, with their stored vectors from the
    shards, as one node re-ranks its own candidates."""
    nearest = item["query"]["nearest"]
    query_vector = req.vector
    if req.point_id is not None:
        query_vector = _vector_from_json((await _vectors_of(node, col, [req.point_id], req.using))[0])
    limit = req.mmr.candidates_limit if req.mmr.candidates_limit is not None else req.limit
    plain = replace(req, mmr=None, offset=0, limit=limit)
    candidates, = await _nearest(node, col, form, [{**item, "query": nearest, "limit": limit, "offset": 0}], [plain])
    if not candidates:
        return []
    vectors = [_vector_from_json(v) for v in await _vectors_of(node, col, [c["id"] for c in candidates], req.using)]
    return mmr.rerank(col.store(req.using), query_vector, candidates, vectors, req)


def _prefetch_items(body: dict) -> list:
    raw = body.get("prefetch")
    return raw if isinstance(raw, list) else [raw]


async def _candidates(node, col: Collection, body: dict, req: SearchRequest, outer: dict | None) -> list:
    """A prefetch's candidates (ids and scores, best first) over every shard."""
    flt = merge_filters(outer, req.filter)
    if req.prefetch:
        sources = await asyncio.gather(*(_candidates(node, col, b, r, flt)
                                         for b, r in zip(_prefetch_items(body), req.prefetch)))
        return await _merge(node, col, {**body, "filter": flt}, replace(req, filter=flt, offset=0), sources,
                            shaped=False)
    leaf = {k: v for k, v in body.items() if k != "prefetch"}
    leaf.update(filter=flt, offset=0, with_payload=False, with_vector=False)
    found, = await _nearest(node, col, "query", [leaf], [replace(req, filter=flt, offset=0)])
    return found


async def _composed(node, col: Collection, body: dict, req: SearchRequest) -> list:
    sources = await asyncio.gather(*(_candidates(node, col, b, r, req.filter)
                                     for b, r in zip(_prefetch_items(body), req.prefetch)))
    return await _merge(node, col, body, req, sources, shaped=True)


async def _merge(node, col: Collection, body: dict, req: SearchRequest, sources: list, shaped: bool) -> list:
    if req.formula is not None:
        return await _shaped(node, col, body, await _formula(node, col, body, req, sources), shaped)
    if req.fusion is None:
        # Rescoring: this level's own query over the union of the candidates.
        ids = list(dict.fromkeys(hit["id"] for source in sources for hit in source))
        if not ids:
            return []
        own = {k: v for k, v in body.items() if k != "prefetch"}
        own["filter"] = merge_filters(req.filter, {"must": [{"has_id": ids}]})
        if not shaped:
            own.update(with_payload=False, with_vector=False)
        found, = await _nearest(node, col, "query", [own], [replace(req, prefetch=None, filter=own["filter"])])
        return found
    want = req.offset + req.limit
    fused = query.rrf(sources, want, req.fusion[1], req.fusion[2]) if req.fusion[0] == "rrf" \
        else query.dbsf(sources, want)
    if req.score_threshold is not None:
        fused = [(pid, score) for pid, score in fused if score >= req.score_threshold]
    return await _shaped(node, col, body, fused[req.offset:], shaped)


async def _formula(node, col: Collection, body: dict, req: SearchRequest, sources: list) -> list:
    """A formula's score of a candidate depends on the point and its prefetch scores
    only: each shard scores the candidates it holds, and they are ranked here as one
    node ranks them (best first, ties in the prefetches' order)."""
    ids = list(dict.fromkeys(hit["id"] for source in sources for hit in source))
    if not ids:
        return []
    count = shards.shard_count(col.config)
    by_shard = sorted({shards.shard_of(parse_id(pid), count) for pid in ids})
    item = {k: v for k, v in body.items() if k not in ("_examples", "_exclude")}
    answers = await read(node, col, "formula", {"query": item, "sources": sources, "_shards": by_shard})
    scored = {encode_id(parse_id(pid)): score for answer in answers for pid, score in answer}
    ranked = [(pid, scored[encode_id(parse_id(pid))]) for pid in ids if encode_id(parse_id(pid)) in scored]
    ranked.sort(key=lambda item: item[1], reverse=True)
    ranked = ranked[:req.offset + req.limit]
    if req.score_threshold is not None:
        ranked = [(pid, score) for pid, score in ranked if score >= req.score_threshold]
    return ranked[req.offset:]


def _formula_local(node, col: Collection, body: dict) -> list:
    req = SearchRequest.from_query(body["query"])
    held = [[hit for hit in source if encode_id(parse_id(hit["id"])) in col.points] for source in body["sources"]]
    return req.formula.rescore(col, held, 2**31)


async def _shaped(node, col: Collection, body: dict, fused: list, shaped: bool) -> list:
    """Ranked (id, score) as scored points: with the body's payload and vectors and
    their versions (fetched from their shards), or as bare candidates."""
    if not shaped:
        return [{"id": pid, "score": score} for pid, score in fused]
    shape = {"with_payload": body.get("with_payload", False), "with_vector": body.get("with_vector", False)}
    records = await retrieve(node, col, [pid for pid, _ in fused], {**shape, "_versions": True})
    by_key = {encode_id(parse_id(r["id"])): r for r in records}
    out = []
    for pid, score in fused:
        rec = by_key.get(encode_id(pid))
        if rec is not None:  # deleted between the prefetch and the fetch: gone, as on one node after the fact
            out.append({**rec, "score": score})
    return out


async def _examples(node, col: Collection, item: dict, req: SearchRequest) -> bool:
    """Points a query names by id (a query by point id, examples), in this collection
    or in ``lookup_from``'s: their stored vectors come from the shards that hold them
    and travel with the query, the point queried by in place of its id, examples in
    ``_examples``, which each shard resolves as it would its own points. Points of the
    searched collection itself are left out of the answer, as on one node. Returns
    whether the query ranks by distance (by one vector, or a recommend that searches
    its average)."""
    source, using = col, req.using
    if req.lookup_from is not None:
        from api.service import collection, readable
        name, vector = req.lookup_from
        readable(name)
        source, using = collection(node, name, sharded=True), vector or req.using
        item.pop("lookup_from", None)
    itself = source is col
    if req.point_id is not None:
        vector, = await _vectors_of(node, source, [req.point_id], using)
        item.pop("nearest", None)
        item["query"] = vector
        if itself:
            item["filter"] = merge_filters(item.get("filter"), {"must_not": [{"has_id": [req.point_id]}]})
        return True
    if req.examples is None:
        return req.vector is not None
    mentioned = []
    query, _ = req.examples.resolve(lambda pid: mentioned.append(pid) or _PLACEHOLDER)
    if mentioned:
        wanted = list(dict.fromkeys(mentioned))
        item["_examples"] = [[pid, vec] for pid, vec in zip(wanted, await _vectors_of(node, source, wanted, using))]
        item["_exclude"] = itself
    params = col.config.vectors.get(req.using)
    return (getattr(query, "strategy", None) == "average_vector" and params is not None
            and not params.multivector)


async def _vectors_of(node, source: Collection, ids: list, using: str) -> list:
    """The stored vectors (as JSON) of points of any collection, sharded or not:
    Qdrant's 404 for a missing point, its 400 for one without that vector."""
    if shards.is_sharded(source):
        count = shards.shard_count(source.config)
        by_shard = sorted({shards.shard_of(pid, count) for pid in ids})
        answers = await read(node, source, "vectors", {"ids": ids, "using": using, "_shards": by_shard})
        found = {k: v for answer in answers for k, v in answer.items()}
    else:
        found = _stored_vectors(node, source, {"ids": ids, "using": using})
    out = []
    for pid in ids:
        got = found.get(encode_id(pid).hex())
        if got is None:
            raise NotFound(f"Not found: No point with id {pid} found")
        if "error" in got:
            raise QdrantError.from_dict(got["error"])
        out.append(got["vector"])
    return out


def _vector_from_json(value):
    if isinstance(value, dict):
        return SparseVector(np.asarray(value["indices"], dtype=np.uint32), np.asarray(value["values"], dtype=np.float32))
    return np.asarray(value, dtype=np.float32)


_PLACEHOLDER = np.zeros(1, dtype=np.float32)


def _score_order(col: Collection, req: SearchRequest, by_distance: bool = True):
    """Best first, as one shard ranks: larger scores first, except for distances where
    a smaller one is closer (Euclid, Manhattan) in a query by one vector; ties by id,
    as a scan meets them. Example-scored queries rank similarities: larger is better."""
    if req.order_by is not None:
        # order_by in a query: a scroll by value, equal values in id order.
        _key, descending, _start = reads.parse_order_by(req.order_by)
        return lambda r: ((-r["order_value"] if descending else r["order_value"]), encode_id(parse_id(r["id"])))
    params = col.config.vectors.get(req.using)
    ascending = by_distance and params is not None and params.distance in ("Euclid", "Manhattan")
    sign = 1 if ascending else -1
    return lambda r: (sign * r["score"], encode_id(parse_id(r["id"])))


async def points_count(node, col: Collection) -> dict:
    """{"points", "indexed"} summed over the shards."""
    answers = await read(node, col, "info", {})
    return {k: sum(a[k] for a in answers) for k in ("points", "indexed")}


def cluster_info(node, col: Collection) -> dict:
    """Qdrant's CollectionClusterInfo from the group assignment: shards held here (with
    their points and how far behind their partition's end they are) and elsewhere."""
    worker = node.shards
    topic = topic_of(node, col)
    which = shards.incarnation(col)
    local, remote = [], []
    for shard in range(shards.shard_count(col.config)):
        holders = worker.holders(topic, shard)
        for name, url in holders:
            if name == worker.name:
                held = node.state.collections.get(shards.shard_name(which, shard))
                lag = worker.lag_of(topic, shard)
                local.append({"shard_id": shard, "points_count": len(held) if held is not None else 0,
                              "state": "Active" if lag == 0 else "Partial", "lag": lag})
            else:
                remote.append({"shard_id": shard, "peer_id": peer_of(name), "state": "Active", "uri": url})
        if not holders:
            remote.append({"shard_id": shard, "peer_id": 0, "state": "Dead"})
    return {"peer_id": peer_of(worker.name), "shard_count": shards.shard_count(col.config), "local_shards": local,
            "remote_shards": remote, "shard_transfers": []}


def peer_of(name: str) -> int:
    """A node's peer id as /cluster and other nodes report it (a u64 from its name)."""
    return int(name, 16) & ((1 << 63) - 1)


async def shards_placed(node, col: Collection | None, timeout: float | None) -> None:
    """A new sharded collection: its topic made, and (as Qdrant answers a creation once
    its shards are active) every shard held by a node of the cluster, so the first
    writes and reads need not wait for the group to rebalance. Bounded: past the
    timeout the creation still stands and requests wait for the holders themselves."""
    await ensure_topic(node, col)
    if col is None:
        return
    worker, topic = node.shards, topic_of(node, col)
    deadline = time.monotonic() + (timeout or 30.0)
    while not all(worker.holders(topic, s) for s in range(shards.shard_count(col.config))):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await worker.assignment_changed(worker.generation, min(left, 0.5))


_topics_made: set = set()


async def ensure_topic(node, col: Collection | None) -> None:
    """The collection's shard topic, created with its shard count (idempotent)."""
    if col is None or not shards.is_sharded(col):
        return
    topic = topic_of(node, col)
    if topic in _topics_made:
        return
    s = node.settings
    await ensure_topics(s.kafka, topic, shards.shard_count(col.config), s.topic_replication, s.topic_min_insync,
                        with_dlq=False)
    _topics_made.add(topic)
