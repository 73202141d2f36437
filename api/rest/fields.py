"""The fields each REST request body may carry; any other field with a value is
refused with a 400 that names it, so nothing a client sends is silently ignored.

A field listed here either has its Qdrant effect or is refused by the code that
reads it with a message of its own (``shard_key`` other than null, ``prefetch``,
``order_by``, sparse vectors, custom sharding). Storage hints that cannot change an
answer (``on_disk_payload``, ``wal_config``, ``quantization``, ``indexed_only``, ...)
are accepted and stored or left alone, as Qdrant does where they do not apply.
Objects inside a query (``mmr``, ``discover``, context pairs, ``relevance_feedback``,
formula parameters, ...) are checked the same way by their parsers in storage/vectors/
(``storage.errors.only_fields``). tests/integration/test_no_silent_fields.py walks the
pinned client's request models against this table and those parsers.
"""
from storage.errors import BadRequest

_SELECTOR = {"points", "filter", "shard_key"}

ACCEPTED = {
    "create_collection": {"vectors", "shard_number", "sharding_method", "replication_factor",
                          "write_consistency_factor", "on_disk_payload", "hnsw_config", "wal_config",
                          "optimizers_config", "quantization_config", "sparse_vectors", "strict_mode_config",
                          "metadata"},
    "update_collection": {"vectors", "params", "hnsw_config", "optimizers_config", "quantization_config",
                          "sparse_vectors", "strict_mode_config", "metadata"},
    "vector_diff": {"hnsw_config", "quantization_config", "on_disk", "memory"},
    "create_field_index": {"field_name", "field_schema"},
    "delete_field_index": {"field_name"},
    "upsert": {"points", "batch", "shard_key", "update_filter", "update_mode"},
    "point": {"id", "vector", "vectors", "payload"},
    "batch_columns": {"ids", "vectors", "payloads"},
    "update_vectors": {"points", "shard_key", "update_filter"},
    "point_vectors": {"id", "vector", "vectors"},
    "delete_vectors": _SELECTOR | {"vector", "vectors"},
    "set_payload": _SELECTOR | {"payload", "key"},
    "overwrite_payload": _SELECTOR | {"payload"},
    "delete_payload": _SELECTOR | {"keys"},
    "clear_payload": _SELECTOR,
    "delete": _SELECTOR,
    "batch": {"operations"},
    "update_aliases": {"actions"},
    "retrieve": {"shard_key", "ids", "with_payload", "with_vector", "with_vectors"},
    "scroll": {"shard_key", "offset", "limit", "filter", "with_payload", "with_vector", "with_vectors", "order_by"},
    # Counts are always exact: `exact: false` allows an estimate, and the exact count is one.
    "count": {"shard_key", "filter", "exact"},
    "facet": {"shard_key", "key", "limit", "filter", "exact"},  # counts are always exact
    "query": {"shard_key", "prefetch", "query", "using", "filter", "params", "score_threshold", "limit", "offset",
              "with_vector", "with_payload", "lookup_from"},
    "search": {"shard_key", "vector", "filter", "params", "limit", "offset", "with_payload", "with_vector",
               "with_vectors", "score_threshold"},
    "batch_searches": {"searches"},
    # The legacy recommend endpoint: Qdrant's RecommendRequest.
    "recommend": {"shard_key", "positive", "negative", "strategy", "filter", "params", "limit", "offset",
                  "with_payload", "with_vector", "with_vectors", "score_threshold", "using", "lookup_from"},
    # The legacy discover endpoint: Qdrant's DiscoverRequest (no score_threshold).
    "discover": {"shard_key", "target", "context", "filter", "params", "limit", "offset", "with_payload",
                 "with_vector", "with_vectors", "using", "lookup_from"},
    "matrix": {"shard_key", "filter", "sample", "limit", "using"},

    # No quantization, no HNSW graph: these change nothing in pointlog, as in a Qdrant
    # collection without quantization or with every segment indexed.
    "params": {"hnsw_ef", "exact", "quantization", "indexed_only", "acorn"},
    "lookup_from": {"collection", "vector"},
}

# A grouped query: a query's fields (but `offset`: groups are not paged) and the grouping.
_GROUPING = {"group_by", "group_size", "with_lookup"}
ACCEPTED["groups"] = (ACCEPTED["query"] - {"offset"}) | _GROUPING
# The legacy grouped endpoints: Qdrant's SearchGroupsRequest and RecommendGroupsRequest.
ACCEPTED["search_groups"] = (ACCEPTED["search"] - {"offset"}) | _GROUPING
ACCEPTED["recommend_groups"] = (ACCEPTED["recommend"] - {"offset"}) | _GROUPING


def only(body, kind: str, where: str = "") -> None:
    """Refuse the fields of ``body`` that ``kind`` does not take (null counts as absent)."""
    if not isinstance(body, dict):
        return
    accepted = ACCEPTED[kind]
    for key, value in body.items():
        if value is not None and key not in accepted:
            raise BadRequest(f"Bad request: `{where}{key}` is not supported by pointlog")
