"""The WAL record format without a broker: the JSON Schema agrees with the operation
classes, JSON and msgpack records mean the same, JSONL files are validated like HTTP."""
import json
import os

import orjson
import pytest

from storage import operations as ops
from storage.errors import BadRequest
from streams.codec import decode, encode, to_wire
from streams.produce import LineError, command, command_from_json, read_jsonl

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "streams", "record.schema.json")

BODIES = {
    "create_collection": {"vectors": {"size": 3, "distance": "Cosine"}, "hnsw_config": {"m": 8},
                          "sparse_vectors": {"text": {"modifier": "idf"}}},
    "delete_collection": {},
    "shard_barrier": {"upto": 41, "partition": 0},
    "create_field_index": {"field_name": "meta.color", "field_schema": "keyword"},
    "delete_field_index": {"field_name": "meta.color"},
    "upsert": {"points": [{"id": 1, "vector": [1.0, 2.0, 3.0], "payload": {"a": [1, {"b": None}]}},
                          {"id": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "vector": [0.0, 0.5, 1.0]},
                          {"id": 2, "vector": {"": [1.0, 1.0, 1.0], "text": {"indices": [7, 3], "values": [0.5, 1.5]}}}]},
    "update_vectors": {"points": [{"id": 1, "vector": [3.0, 2.0, 1.0]}, {"id": 2, "vector": {"m": [[1.0, 2.0], [3.0, 4.0]]}}]},
    "delete_vectors": {"points": [1], "vector": [""]},
    "set_payload": {"filter": {"must": [{"key": "a", "match": {"value": 1}}]}, "payload": {"x": 1}, "key": "y"},
    "overwrite_payload": {"points": [1], "payload": {"x": 2}},
    "delete_payload": {"points": [1], "keys": ["x"]},
    "clear_payload": {"points": [1]},
    "delete": {"filter": {"must_not": [{"has_id": [1]}]}},
    "update_collection": {"params": {"replication_factor": 2}, "metadata": {"team": "search", "v": None},
                          "optimizers_config": {"indexing_threshold": 0}},
    "update_aliases": {"actions": [{"create_alias": {"collection_name": "c", "alias_name": "a"}},
                                   {"rename_alias": {"old_alias_name": "a", "new_alias_name": "b"}},
                                   {"delete_alias": {"alias_name": "b"}}]},
    "batch": {"operations": [{"upsert": {"points": [{"id": 2, "vector": [1.0, 1.0, 1.0]}]}},
                             {"delete": {"points": [2]}}]},
}


def schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def test_schema_names_every_operation_kind():
    s = schema()
    assert set(s["properties"]["op"]["enum"]) == set(ops.KINDS) | set(ops.ALIASES)
    branches = {ref["$ref"].rsplit("/", 1)[1] for ref in s["oneOf"]}
    assert branches == set(ops.KINDS)
    batchable = set(s["$defs"]["batch"]["properties"]["operations"]["items"]["properties"])
    assert batchable == set(ops.BATCHABLE)
    assert set(BODIES) == branches


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_json_records_of_every_kind_validate_against_the_schema(kind):
    jsonschema = pytest.importorskip("jsonschema")
    cmd = command("c", kind, BODIES[kind])
    _, value, _ = encode(cmd, binary=False)
    jsonschema.validate(orjson.loads(value), schema())


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_json_and_msgpack_records_decode_to_the_same_operation(kind):
    cmd = command("c", kind, BODIES[kind])
    as_json = decode(*encode(cmd, binary=False))
    as_msgpack = decode(*encode(cmd, binary=True))
    assert as_json.collection == as_msgpack.collection == "c"
    assert to_wire(as_json.op) == to_wire(as_msgpack.op) == to_wire(cmd.op)


def test_a_hand_written_record_without_headers_is_json():
    cmd = decode(b"items", b'{"op": "upsert", "points": [{"id": 3, "vector": [1, 2]}]}', [])
    assert cmd.collection == "items" and cmd.op.points[0].id == 3


def test_producer_bodies_are_validated_like_http_bodies():
    with pytest.raises(BadRequest, match="not a valid point ID"):
        command("c", "upsert", {"points": [{"id": -1, "vector": [1]}]})
    with pytest.raises(BadRequest, match="unknown operation kind"):
        command("c", "upsert_all", {})
    with pytest.raises(BadRequest, match="collection"):
        command_from_json({"op": "delete_collection"})
    cmd = command_from_json({"collection": "c", "op": "delete", "points": [1]})
    assert isinstance(cmd.op, ops.DeletePoints)


def test_jsonl_lines_are_checked_against_collections_created_in_the_file(tmp_path):
    path = tmp_path / "ops.jsonl"
    lines = [
        {"collection": "c", "op": "create_collection", "vectors": {"size": 2, "distance": "Dot"}},
        {"collection": "c", "op": "upsert", "points": [{"id": 1, "vector": [1, 2]}]},
        {"collection": "other", "op": "upsert", "points": [{"id": 1, "vector": [1, 2, 3]}]},  # unknown config
    ]
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n\n# a comment\n")
    assert [c.collection for c in read_jsonl(str(path))] == ["c", "c", "other"]
    lines.append({"collection": "c", "op": "upsert", "points": [{"id": 2, "vector": [1, 2, 3]}]})
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    with pytest.raises(LineError, match="line 4: .*Vector dimension error"):
        list(read_jsonl(str(path)))
    path.write_bytes(b'{"collection": "c", "op": "delete_collection"}\n{"collection": "c",\n')
    with pytest.raises(LineError, match="line 2: not JSON"):
        list(read_jsonl(str(path)))
