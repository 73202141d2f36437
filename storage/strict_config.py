"""A collection's ``strict_mode_config``: validated when a collection is created or
patched, merged as Qdrant merges it. What it limits is in ``storage.strict_mode``."""
from storage.errors import BadRequest, Unprocessable

_BOOLS = ("enabled", "unindexed_filtering_retrieve", "unindexed_filtering_update", "search_allow_exact")
_COUNTS = ("max_query_limit", "max_timeout", "search_max_hnsw_ef", "upsert_max_batchsize", "search_max_batchsize",
           "max_collection_vector_size_bytes", "max_collection_payload_size_bytes", "max_points_count",
           "filter_max_conditions", "condition_max_size", "max_payload_index_count")
_AT_LEAST_ONE = ("max_query_limit", "max_timeout", "max_points_count", "read_rate_limit", "write_rate_limit")
_NOT_SUPPORTED = ("read_rate_limit", "write_rate_limit", "max_resident_memory_percent")
FIELDS = (*_BOOLS, *_COUNTS, "search_max_oversampling", "multivector_config", "sparse_config", *_NOT_SUPPORTED)


def check_config(raw, where: str = "strict_mode_config") -> dict:
    """A validated strict_mode_config (null fields dropped)."""
    if not isinstance(raw, dict):
        raise BadRequest(f"Format error in JSON body: {where} must be an object")
    out = {}
    for name, value in raw.items():
        if name not in FIELDS:
            raise BadRequest(f"Format error in JSON body: {where}: unknown field `{name}`")
        if value is None:
            continue
        at = f"{where}.{name}"
        if name in _NOT_SUPPORTED:
            raise BadRequest(f"Bad request: `{at}` is not supported by pointlog")
        if name in _BOOLS:
            if type(value) is not bool:
                raise BadRequest(f"Format error in JSON body: {at}: invalid type, expected a boolean")
        elif name in _COUNTS:
            _count(value, at, 1 if name in _AT_LEAST_ONE else 0)
        elif name == "search_max_oversampling":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequest(f"Format error in JSON body: {at}: invalid type, expected a number")
        else:  # multivector_config / sparse_config: {vector name: {max_vectors | max_length}}
            inner = "max_vectors" if name == "multivector_config" else "max_length"
            if not isinstance(value, dict):
                raise BadRequest(f"Format error in JSON body: {at} must be an object")
            for vector, limits in value.items():
                if not isinstance(limits, dict) or set(limits) - {inner}:
                    raise BadRequest(f"Format error in JSON body: {at}.{vector}: expected {{\"{inner}\": ...}}")
                _count(limits.get(inner), f"{at}.{vector}.{inner}", 1)
        out[name] = value
    return out


def _count(value, where: str, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"Format error in JSON body: {where}: invalid value: `{value}`, expected usize")
    if value < minimum:
        raise Unprocessable(f"Validation error in JSON body: [{where}: value {value} invalid, "
                            f"must be {minimum} or larger]")


def merged(old: dict | None, diff: dict) -> dict:
    """A PATCH of strict mode: given fields replace the stored ones; a null leaves one
    as it is (Qdrant cannot unset a limit either)."""
    return {**(old or {}), **check_config(diff)}
