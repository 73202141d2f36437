"""Point-write bodies decoded by simdjson (api/rest/vector_json.py) mean exactly
what orjson makes of them, vectors as float32; any other shape falls back."""
import json

import numpy as np
import orjson
import pytest

from api.rest import bodies, vector_json
from storage import operations as ops
from storage.errors import BadRequest


def same(fast, slow) -> bool:
    if isinstance(fast, np.ndarray):
        with np.errstate(over="ignore"):  # 1e39 becomes inf either way
            want = np.asarray(slow, dtype=np.float64).astype(np.float32)
        return fast.dtype == np.float32 and np.array_equal(fast, want)
    if isinstance(fast, dict):
        return isinstance(slow, dict) and list(fast) == list(slow) and all(same(fast[k], slow[k]) for k in fast)
    if isinstance(fast, list):
        return isinstance(slow, list) and len(fast) == len(slow) and all(map(same, fast, slow))
    return type(fast) is type(slow) and fast == slow


PLAIN = [
    {"batch": {"ids": [1, 2], "vectors": [[0.1, 0.2, 0.30000001192092896], [1, -2, 3e-5]],
               "payloads": [{"group": 3, "price": 9.5, "label": "item-1", "nested": [1, {"x": None}]}, None]}},
    {"batch": {"ids": [1, "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"], "vectors": {"a": [[1, 2], [3, 4]]}}},
    {"points": [{"id": 18446744073709551615, "vector": [0.5, -0.0, 1e-400], "payload": {"k": "v", "b": True}}]},
    {"points": [{"id": 1, "vector": {"img": [1.5, 2.5], "txt": [3, 4]}}], "shard_key": None},
    {"points": [{"id": 1, "vector": [1e39, 2.0]}]},  # beyond float32: the parser refuses it, as before
    {"points": [{"id": 1, "vector": [1, 2], "payload": {"a[0]": "[x]", "l": [[1], []]}}]},  # brackets elsewhere
]

FALLBACK = [
    b'{"batch": {"ids": [1, 2], "vectors": [[1, 2], [3]]}}',  # ragged
    b'{"batch": {"ids": [1, 2], "vectors": [[1, true], [3, 4]]}}',  # a bool among numbers
    b'{"batch": {"ids": [1], "vectors": {"s": [{"indices": [1], "values": [0.5]}]}}}',  # sparse
    b'{"points": [{"id": 1, "vector": {"m": [[1, 2], [3, 4]]}}]}',  # a multivector
    b'{"points": [{"id": 1, "vector": [[1], [2]]}]}',  # flattens to as many numbers as it has items
    b'{"points": [{"id": 1, "vector": [1, [2]]}]}',
    b'{"batch": {"ids": [1, 2], "vectors": [[1, 2], [[3], [4]]]}}',
    b'{"batch": {"ids": [1, 2], "vectors": [[1, [], [2]], [3, 4, 5]]}}',
    b'{"points": [{"id": 1, "vector": [1, 2], "payload": {"a": "\\u005b"}}]}',  # an escaped bracket
    b'{"points": [{"id": 1, "vector": []}]}',
    b'{"points": [{"id": 1, "vector": [1, 2]}], "points": []}',  # a duplicated key
    b'\xef\xbb\xbf{"points": []}',  # a byte order mark, which orjson refuses
    b'{"points": [{"id": 1, "vector": [1, 2], "payload": {"a": "\\ud800"}}]}',
    b'{"points": [{"id": 1, "vector": [1, 2], "payload": {"a": 123456789012345678901234567890}}]}',
    b'{"points": [{"id": 1, "vector": [1, 2]}]} x',
    b'[1, 2]',
]


@pytest.mark.parametrize("body", PLAIN)
def test_plain_bodies_decode_like_orjson_with_float32_vectors(body):
    raw = json.dumps(body).encode()
    fast = vector_json.loads(raw)
    assert fast is not None
    assert same(fast, orjson.loads(raw))


@pytest.mark.parametrize("raw", FALLBACK)
def test_other_shapes_fall_back(raw):
    assert vector_json.loads(raw) is None


def test_a_batch_parses_to_the_same_operation_either_way():
    rng = np.random.default_rng(1)
    body = {"batch": {"ids": list(range(64)), "vectors": rng.normal(size=(64, 16)).tolist(),
                      "payloads": [{"group": i % 10} for i in range(64)]}}
    raw = json.dumps(body).encode()
    fast, slow = bodies.parse(ops.Upsert, vector_json.loads(raw)), bodies.parse(ops.Upsert, orjson.loads(raw))
    assert [(p.id, p.payload) for p in fast.points] == [(p.id, p.payload) for p in slow.points]
    assert all(np.array_equal(a.vectors[""], b.vectors[""]) and a.vectors[""].dtype == np.float32
               for a, b in zip(fast.points, slow.points))


def test_out_of_range_values_get_the_same_error_either_way():
    raw = b'{"batch": {"ids": [1, 2], "vectors": [[1, 2], [1e39, 2]]}}'
    messages = []
    for body in (vector_json.loads(raw), orjson.loads(raw)):
        with pytest.raises(BadRequest) as err:
            bodies.parse(ops.Upsert, body)
        messages.append(err.value.message)
    assert messages[0] == messages[1] and "batch.vectors[1]" in messages[0]
