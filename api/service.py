"""What every front door does with a request once it is translated: find the
collection, check the operation against it, publish it, answer. REST
(api/rest) and gRPC call these, so both give the same answer to the same request.
"""
from storage import operations as ops
from storage.apply import collection_not_found
from storage.collection import Collection
from storage.errors import Conflict, Unprocessable
from storage.paths import compile_getter, parse_path
from storage.vectors.annoy_index import index_status
from streams.node import Node

# Characters Qdrant refuses in a collection name (they are unsafe in file names).
_FORBIDDEN_IN_NAMES = '<>:"/\\|?*\0\x1f'


def collection(node: Node, name: str) -> Collection:
    col = node.state.collections.get(name)
    if col is None:
        raise collection_not_found(name)
    return col


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
    await node.submit(ops.Command(name, op), True, timeout)
    return True


async def delete_collection(node: Node, name: str, timeout: float | None) -> bool:
    if name not in node.state.collections:
        return False
    await node.submit(ops.Command(name, ops.DeleteCollection()), True, timeout)
    return True


_LONGEST_WAIT = 7 * 24 * 3600  # an event loop cannot sleep for u64 seconds (the poll timeout overflows)


def wait_timeout(seconds: int | None, where: str) -> float | None:
    """How long a ``wait=true`` write waits: whole seconds, at least 1, as in Qdrant."""
    if seconds is None:
        return None
    if seconds < 1:
        raise Unprocessable(f"Validation error in {where}: [timeout: value {seconds} invalid, must be 1 or larger]")
    return float(min(seconds, _LONGEST_WAIT))


def check_write(node: Node, name: str, op: ops.Operation) -> Collection:
    """The checks of a write that need its collection; nothing is published unless they pass."""
    col = collection(node, name)
    op.validate_against(col.config)
    return col


async def submit(node: Node, name: str, op: ops.Operation, wait: bool, timeout: float | None) -> dict:
    """An UpdateResult: ``operation_id`` (the record's offset) and ``status``."""
    return await node.submit(ops.Command(name, op), wait, timeout)


def collection_info(col: Collection) -> dict:
    extra = col.config.extra
    hnsw = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0,
            "on_disk": False, **(extra.get("hnsw_config") or {})}
    optimizer = {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
                 "max_segment_size": None, "memmap_threshold": None, "indexing_threshold": 10000,
                 "flush_interval_sec": 5, "max_optimization_threads": None,
                 **(extra.get("optimizers_config") or {})}
    indexed, building = index_status(col)
    return {
        "status": "yellow" if building else "green",
        "optimizer_status": "ok",
        "indexed_vectors_count": indexed,
        "points_count": len(col),
        "segments_count": 1,
        "config": {
            "params": {"vectors": col.config.vectors_json(), "shard_number": extra.get("shard_number", 1),
                       "replication_factor": extra.get("replication_factor", 1),
                       "write_consistency_factor": extra.get("write_consistency_factor", 1),
                       "on_disk_payload": extra.get("on_disk_payload", True)},
            "hnsw_config": hnsw,
            "optimizer_config": optimizer,
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": None,
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
