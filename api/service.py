"""What every front door does with a request once it is translated: find the
collection, check the operation against it, publish it, answer. REST
(api/rest) and gRPC call these, so both give the same answer to the same request.
"""
import asyncio
import os
import secrets
import uuid

from api import shards as sharded_api
from api.access import READ, Keys, caller
from storage import aliases
from storage import operations as ops
from storage import reads, shards, strict_mode
from storage.apply import collection_not_found
from storage.collection import Collection
from storage.errors import BadRequest, Conflict, NotFound, Unprocessable
from storage.ids import encode_id, parse_id
from storage.paths import compile_getter, parse_path
from storage.vectors import groups, query
from storage.vectors import matrix as distance_matrix
from storage.vectors.annoy_index import index_status
from storage.vectors.search import SearchRequest, vector_of
from streams import snapshots
from streams.node import Node
from streams.shard_worker import node_name

# Characters Qdrant refuses in a collection name (they are unsafe in file names).
_FORBIDDEN_IN_NAMES = '<>:"/\\|?*\0\x1f'


def collection(node: Node, name: str, sharded: bool = False) -> Collection:
    """The collection a name or alias means. A sharded one's entry here holds no points
    (its shards do): only callers that go through api/shards.py ask with ``sharded``;
    any other read of it is refused rather than answered from the empty entry."""
    if len(name) > 255:  # Qdrant validates the path before looking: 422, not 404
        check_new_name(name)
    col = node.state.collections.get(node.state.resolve(name))
    if col is None:
        raise collection_not_found(name)
    if not sharded and shards.is_sharded(col):
        raise sharded_api.refused("this request")
    return col


def keys(node: Node) -> Keys:
    """The keys and tokens this node accepts (api/access.py)."""
    s = node.settings
    return Keys(s.api_key, s.read_only_api_key, s.jwt_rbac, lambda name, flt: _value_exists(node, name, flt))


def _value_exists(node: Node, name: str, raw_filter: dict) -> bool | None:
    """A JWT's ``value_exists``: does a point of ``name`` match? None: no such collection."""
    try:
        col = collection(node, name)
    except NotFound:
        return None
    return reads.count(col, raw_filter) > 0


def readable(name: str) -> None:
    """A request that reads another collection than its own (``lookup_from``,
    ``with_lookup``) needs read access to that one too."""
    caller().require(name, READ)


def list_collections(node: Node) -> list:
    """The collections the caller may see, by name."""
    access = caller()
    return [name for name in sorted(node.state.collections) if not shards.is_shard(name) and access.sees(name)]


def exists(node: Node, name: str) -> bool:
    """A collection by that name or alias."""
    return node.state.resolve(name) in node.state.collections


def check_new_name(name: str) -> None:
    if not 1 <= len(name) <= 255:
        raise Unprocessable(f"Validation error in path parameters: [name: value {name} invalid, "
                            "must be from 1 to 255 characters]")
    for char in _FORBIDDEN_IN_NAMES:
        if char in name:
            raise Unprocessable(f"Validation error in path parameters: [name: collection name cannot contain "
                                f"\"{char}\" char]")


async def create_collection(node: Node, name: str, op: ops.CreateCollection, timeout: float | None) -> bool:
    check_new_name(name)
    if name in node.state.collections:
        raise Conflict(f"Wrong input: Collection `{name}` already exists!")
    aliases.check_new_collection_name(node.state.aliases, name)
    await node.submit(ops.Command(name, op), True, timeout)
    if shards.shard_count(op.config) > 1:
        await sharded_api.shards_placed(node, node.state.collections.get(name), timeout)
    return True


async def update_collection(node: Node, name: str, op: ops.UpdateCollection, timeout: float | None) -> bool:
    col = check_write(node, name, op)
    await submit(node, col.name, op, True, timeout)
    return True


async def delete_collection(node: Node, name: str, timeout: float | None) -> bool:
    if name not in node.state.collections:
        return False
    await node.submit(ops.Command(name, ops.DeleteCollection()), True, timeout)
    return True


async def update_aliases(node: Node, op: ops.UpdateAliases, timeout: float | None) -> bool:
    """One record for the whole action list, so a switch is atomic for every reader."""
    aliases.after_actions(node.state.collections, node.state.aliases, op.actions)  # refuse before publishing
    await node.submit(ops.Command(ops.CATALOG, op), True, timeout)
    return True


def list_aliases(node: Node, name: str | None = None) -> dict:
    target = None if name is None else collection(node, name).name
    access = caller()
    return {"aliases": [a for a in aliases.describe(node.state.aliases, target)
                        if access.sees(a["collection_name"])]}


_LONGEST_WAIT = 7 * 24 * 3600  # an event loop cannot sleep for u64 seconds (the poll timeout overflows)


def wait_timeout(seconds: int | None, where: str) -> float | None:
    """How long a ``wait=true`` write waits: whole seconds, at least 1, as in Qdrant."""
    if seconds is None:
        return None
    if seconds < 1:
        raise Unprocessable(f"Validation error in {where}: [timeout: value {seconds} invalid, must be 1 or larger]")
    return float(min(seconds, _LONGEST_WAIT))


def check_write(node: Node, name: str, op: ops.Operation, timeout: float | None = None) -> Collection:
    """The checks of a write that need its collection (its config, its strict mode);
    nothing is published unless they pass."""
    col = collection(node, name, sharded=True)
    op.validate_against(col.config)
    limits = strict_mode.active(col)
    # Collection updates and index drops stay possible: they are how limits are lifted.
    if limits is not None and not isinstance(op, (ops.UpdateCollection, ops.DeleteFieldIndex)):
        if shards.is_sharded(col):
            # These limits count the collection's contents, which live in its shards.
            for size_limit in _CONTENT_LIMITS:
                if limits.get(size_limit) is not None:
                    raise sharded_api.refused(f"strict_mode_config.{size_limit}")
        strict_mode.check_timeout(limits, timeout)
        strict_mode.check_write(limits, col, op)
    return col


_CONTENT_LIMITS = ("max_points_count", "max_collection_vector_size_bytes", "max_collection_payload_size_bytes")
_READ_CHECKS = {"search": strict_mode.check_search, "scroll": strict_mode.check_scroll,
                "count": strict_mode.check_count, "facet": strict_mode.check_facet,
                "groups": strict_mode.check_groups}


def check_read(col: Collection, kind: str, body: dict, timeout: float | None = None) -> None:
    """A read against the collection's strict mode limits (nothing to check without one)."""
    limits = strict_mode.active(col)
    if limits is not None:
        strict_mode.check_timeout(limits, timeout)
        _READ_CHECKS[kind](limits, col, body)


def check_batch(col: Collection, searches: list, timeout: float | None = None) -> None:
    """A batch of search-like bodies: the batch size, then each one."""
    limits = strict_mode.active(col)
    if limits is not None:
        strict_mode.check_timeout(limits, timeout)
        strict_mode.check_search_batch(limits, len(searches))
        for body in searches:
            strict_mode.check_search(limits, col, body)


async def submit(node: Node, name: str, op: ops.Operation, wait: bool, timeout: float | None) -> dict:
    """An UpdateResult: ``operation_id`` (the record's offset) and ``status``."""
    col = node.state.collections.get(name)
    if shards.is_sharded(col):
        return await sharded_api.submit(node, col, op, wait, timeout)
    return await node.submit(ops.Command(name, op), wait, timeout)


def search(node: Node, col: Collection, req: SearchRequest) -> list:
    """Nearest neighbours (or a listing, for a query without one). A point id whose
    vector lives in another collection (``lookup_from``) is resolved here, because
    storage searches one collection at a time."""
    _resolve_lookups(node, col, req)
    return query.run(col, req, node.settings.index)


async def matrix(node: Node, name: str, body: dict) -> tuple:
    """The distance matrix of a random sample (storage/vectors/matrix.py): (ids, rows)."""
    request = distance_matrix.parse(body)
    col = collection(node, name, sharded=True)
    if shards.is_sharded(col):
        return await sharded_api.matrix(node, col, request)
    return distance_matrix.matrix(col, request, secrets.randbits(64), node.settings.index)


async def query_groups(node: Node, name: str, body: dict, timeout: float | None = None) -> dict:
    """A grouped query (a query body plus ``group_by``, ``group_size``, ``with_lookup``);
    ``with_lookup`` adds each group's point (id = the group id) from another collection."""
    body = dict(body)
    grouping = {k: body.pop(k) for k in ("group_by", "group_size", "with_lookup") if k in body}
    req = SearchRequest.from_query(body)
    col = collection(node, name, sharded=True)
    check_read(col, "groups", {**body, **grouping}, timeout)
    group_by = grouping.get("group_by")
    if not isinstance(group_by, str):
        raise BadRequest("Format error in JSON body: missing field `group_by`")
    group_size = reads.positive(grouping.get("group_size"), "group_size", 3)
    limit = reads.positive(body.get("limit"), "limit", 10)
    if shards.is_sharded(col):
        found = await sharded_api.groups(node, col, body, req, group_by, group_size, limit)
    else:
        _resolve_lookups(node, col, req)
        found = groups.query_groups(col, req, group_by, group_size, limit, node.settings.index)
    lookup = grouping.get("with_lookup")
    if lookup is not None:
        if isinstance(lookup, str):
            lookup = {"collection": lookup}
        if not isinstance(lookup, dict) or not isinstance(lookup.get("collection"), str):
            raise BadRequest("Format error in JSON body: with_lookup must be a collection name or {collection, "
                             "with_payload, with_vectors}")
        readable(lookup["collection"])
        source = collection(node, lookup["collection"], sharded=True)
        shape = {"with_payload": lookup.get("with_payload", True), "with_vector": lookup.get("with_vectors", False)}
        ids = [group["id"] for group in found if _is_point_id(group["id"])]
        got = {encode_id(parse_id(r["id"])): r for r in await retrieve(node, source, ids, shape)}
        for group in found:
            key = encode_id(parse_id(group["id"])) if _is_point_id(group["id"]) else None
            group["lookup"] = got.get(key)
    return {"groups": found}


_GROUPED = ("filter", "params", "with_payload", "score_threshold", "group_by", "group_size", "limit", "with_lookup")


def _with_vector(body: dict, out: dict) -> None:
    value = body.get("with_vector", body.get("with_vectors"))
    if value is not None:
        out["with_vector"] = value


def search_groups_query(body: dict) -> dict:
    """A legacy /points/search/groups body as the grouped query it is."""
    raw = body.get("vector")
    out = {k: body[k] for k in _GROUPED if k in body}
    _with_vector(body, out)
    if isinstance(raw, dict) and "name" in raw:
        out["using"], raw = raw["name"], raw.get("vector")
    if raw is None:
        raise BadRequest("Format error in JSON body: missing field `vector`")
    out["query"] = raw
    return out


def recommend_groups_query(body: dict) -> dict:
    """A legacy /points/recommend/groups body as the grouped query it is."""
    out = {k: body[k] for k in _GROUPED + ("using", "lookup_from") if k in body}
    _with_vector(body, out)
    out["query"] = {"recommend": {k: body[k] for k in ("positive", "negative", "strategy") if body.get(k) is not None}}
    return out


def _is_point_id(value) -> bool:
    try:
        parse_id(value)
        return True
    except BadRequest:
        return False


def _resolve_lookups(node: Node, col: Collection, req: SearchRequest) -> None:
    """Also draws the seed of a random sample: storage stays deterministic."""
    for inner in req.prefetch or ():
        _resolve_lookups(node, col, inner)
    if req.sample:
        req.seed = secrets.randbits(64)
    if req.lookup_from is not None:
        name, vector = req.lookup_from
        readable(name)
        source = collection(node, name)
        if req.examples is not None and source is not col:
            # Examples named by id come from the other collection, and are not left out here.
            req.examples, _ids = req.examples.resolve(lambda pid: vector_of(source, pid, vector or req.using))
        if req.point_id is not None:
            req.vector = vector_of(source, req.point_id, vector or req.using)
            # Only an id of the searched collection itself is left out of the answer.
            req.exclude_id = req.point_id if source is col else None
            req.point_id = None


# ---- reads of any collection: sharded ones through api/shards.py ----------------------

async def retrieve(node: Node, col: Collection, ids: list, body: dict) -> list:
    if shards.is_sharded(col):
        return await sharded_api.retrieve(node, col, ids, body)
    return reads.retrieve(col, ids, reads.Shape.from_body(body))


async def scroll_page(node: Node, col: Collection, body: dict) -> dict:
    if shards.is_sharded(col):
        return await sharded_api.scroll(node, col, body)
    return scroll(col, body)


async def count(node: Node, col: Collection, body: dict) -> int:
    if shards.is_sharded(col):
        return await sharded_api.count(node, col, body)
    return reads.count(col, body.get("filter"))


async def facet_of(node: Node, col: Collection, body: dict) -> dict:
    if shards.is_sharded(col):
        facet_index(col, body)
        return await sharded_api.facet(node, col, body)
    return facet(col, body)


async def search_all(node: Node, col: Collection, form: str, bodies: list, reqs: list) -> list:
    """Answers to search-like requests (``form``: "query" or "search", their bodies'
    dialect), one list of scored points each."""
    if shards.is_sharded(col):
        return await sharded_api.search(node, col, form, bodies, reqs)
    return [search(node, col, req) for req in reqs]


def scroll(col: Collection, body: dict) -> dict:
    """A scroll page: in id order from ``offset``, or in the order of a payload value."""
    shape = reads.Shape.from_body(body)
    order_by = body.get("order_by")
    if order_by is not None:
        check_order_by(col, order_by, body.get("offset"))
        return reads.scroll_by_value(col, order_by, body.get("filter"), body.get("limit"), shape)
    return reads.scroll(col, body.get("offset"), body.get("limit"), body.get("filter"), shape)


def check_order_by(col: Collection, order_by, offset) -> None:
    """Scroll ``order_by`` needs a payload index with range lookups on its key, as in Qdrant."""
    reads.parse_order_by(order_by)
    if offset is not None:
        raise BadRequest("Bad request: Offset is not supported in conjunction with `order_by` scroll parameter")
    reads.check_order_index(col, order_by)


def not_ready(node: Node) -> str | None:
    """Why the node is not ready to serve reads that reflect the log, or None."""
    if node.failure:
        return node.failure
    applied = node.applied()
    behind = {p: end for p, end in node.ready_at.items() if applied.get(p, -1) < end - 1}
    if behind:
        return f"applying the log: partitions {sorted(behind)} not yet at the offsets seen at start"
    return None


_FACET_INDEXES = ("keyword", "integer", "uuid", "bool")


def facet(col: Collection, body: dict) -> dict:
    """Facet counts need a payload index on the key that looks values up, as in Qdrant."""
    facet_index(col, body)
    return reads.facet(col, body["key"], body.get("filter"), body.get("limit"))


def facet_index(col: Collection, body: dict) -> None:
    key = body.get("key")
    if not isinstance(key, str):
        raise BadRequest("Format error in JSON body: missing field `key`")
    if ops.field_type(col.payload_schema.get(key)) not in _FACET_INDEXES:
        raise BadRequest(f"Bad request: Index required but not found for \"{key}\" of one of the following "
                         f"types: [{', '.join(_FACET_INDEXES)}]. Help: Create an index for this key or use a "
                         "different filter.")


def node_id(node: Node) -> uuid.UUID:
    """A stable id per data dir (a node's identity is its state)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "pointlog:" + os.path.abspath(node.settings.data_dir))


def peer_id(node: Node) -> int:
    """This node's peer id, as the other nodes of its cluster name it (api/shards.py)."""
    return sharded_api.peer_of(node_name(node.settings))


def collection_cluster(node: Node, name: str) -> dict:
    """CollectionClusterInfo: an unsharded collection is one active shard every node
    holds whole (Kafka, not a Qdrant cluster, replicates it); a sharded one's shards
    are where the cluster's group assignment put them."""
    col = collection(node, name, sharded=True)
    if shards.is_sharded(col):
        return sharded_api.cluster_info(node, col)
    return {"peer_id": peer_id(node), "shard_count": 1, "local_shards": [{"shard_id": 0, "points_count": len(col), "state": "Active"}],
            "remote_shards": [], "shard_transfers": []}


async def collection_info_of(node: Node, col: Collection) -> dict:
    """CollectionInfo; a sharded collection's counts are its shards' summed."""
    info = collection_info(col)
    if shards.is_sharded(col):
        counts = await sharded_api.points_count(node, col)
        info["points_count"], info["indexed_vectors_count"] = counts["points"], counts["indexed"]
    return info


def collection_info(col: Collection) -> dict:
    extra = col.config.extra
    hnsw = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0,
            "on_disk": False, **(extra.get("hnsw_config") or {})}
    optimizer = {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
                 "max_segment_size": None, "memmap_threshold": None, "indexing_threshold": 10000,
                 "flush_interval_sec": 5, "max_optimization_threads": None,
                 **(extra.get("optimizers_config") or {})}
    indexed, building = index_status(col)
    # Qdrant counts sparse vectors as indexed (an inverted index always holds them all).
    indexed += sum(len(store) for store in col.sparse.values())
    return {
        "status": "yellow" if building else "green",
        "optimizer_status": "ok",
        "indexed_vectors_count": indexed,
        "points_count": len(col),
        "segments_count": 1,
        "config": {
            "params": {"vectors": col.config.vectors_json(), "shard_number": extra.get("shard_number", 1),
                       **({"sparse_vectors": col.config.sparse_json()} if col.config.sparse else {}),
                       "replication_factor": extra.get("replication_factor", 1),
                       "write_consistency_factor": extra.get("write_consistency_factor", 1),
                       "on_disk_payload": extra.get("on_disk_payload", True),
                       **({"read_fan_out_factor": extra["read_fan_out_factor"]}
                          if "read_fan_out_factor" in extra else {})},
            "hnsw_config": hnsw,
            "optimizer_config": optimizer,
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0, **(extra.get("wal_config") or {})},
            # Stored and reported as created; pointlog scores with the original vectors,
            # as Qdrant does when it rescores.
            "quantization_config": extra.get("quantization_config"),
            "metadata": extra.get("metadata"),
            **({"strict_mode_config": extra["strict_mode_config"]} if "strict_mode_config" in extra else {}),
        },
        "payload_schema": {field: _field_info(col, field, schema) for field, schema in col.payload_schema.items()},
    }


def _field_info(col: Collection, field: str, schema) -> dict:
    """PayloadIndexInfo: the declared type and how many points hold a value there."""
    getter = compile_getter(parse_path(field))
    info = {"data_type": ops.field_type(schema),
            "points": sum(1 for p in col.points.values() if any(v is not None for v in getter(p.payload)))}
    if isinstance(schema, dict) and len(schema) > 1:
        info["params"] = schema
    return info


# ---- snapshots (streams/snapshots.py says what they hold and how they restore) ----

async def create_snapshot(node: Node, name: str) -> dict:
    col = collection(node, name)
    return await snapshots.create_collection_snapshot(node, col.name, peer_id(node))


def snapshot_dir(node: Node, name: str) -> str:
    return snapshots.collection_dir(node.settings.data_dir, collection(node, name).name)


def list_snapshots(node: Node, name: str) -> list:
    return snapshots.listing(snapshot_dir(node, name))


def delete_snapshot(node: Node, name: str, snapshot: str) -> bool:
    return snapshots.delete(snapshot_dir(node, name), snapshot)


_PRIORITIES = (None, "snapshot")


async def recover_snapshot(node: Node, name: str, path: str, priority=None, checksum=None, wait: bool = True,
                           timeout: float | None = None) -> bool:
    """Rebuild the collection ``name`` from a collection snapshot, through the log: its
    records are published under that name (after a delete if it exists), so every
    replica applies the same. Answers once this node has applied them (or the timeout)."""
    if priority not in _PRIORITIES:
        raise BadRequest(f"Bad request: snapshot priority `{priority}` is not supported by pointlog: the log is "
                         "the only copy to prefer")
    if checksum is not None:
        actual = await asyncio.to_thread(snapshots.checksum_of, path)
        if actual != checksum:
            raise BadRequest(f"Bad request: Snapshot checksum mismatch: expected {checksum}, got {actual}")
    _info, found = await asyncio.to_thread(snapshots.read_collection_snapshot, path)
    target = node.state.resolve(name)
    check_new_name(target)
    if target in node.state.collections:
        await node.submit(ops.Command(target, ops.DeleteCollection()), False)
    else:
        aliases.check_new_collection_name(node.state.aliases, target)
    for op in found[:-1]:
        await node.submit(ops.Command(target, op), False)
    await node.submit(ops.Command(target, found[-1]), wait, timeout)
    return True
