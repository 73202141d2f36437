"""The ``slice`` condition: which of ``total`` slices a point falls in.

The server puts a point in slice ``siphash24(id) % total``, with SipHash-2-4 under a
zero key over the id's bytes; reproducing that hash exactly is what lets a client
split a collection into the same slices on pointlog as on Qdrant.
"""
from __future__ import annotations

import uuid
from typing import Any

from storage.ids import PointId
from storage.filters.json_body import check_fields, expect_object, format_error, integer, require, validation_error
from storage.filters.matchers import Matcher
from storage.filters.memo import first_n_memo

_MASK64 = (1 << 64) - 1


def slice_condition(raw: Any, where: str) -> Matcher:
    raw = expect_object(raw, where, "struct Slice")
    check_fields(raw, ("total", "index"), where)
    total = integer(require(raw, "total", where), f"{where}.total", minimum=0)
    index = integer(require(raw, "index", where), f"{where}.index", minimum=0)
    if total < 1:  # a NonZeroU32 for serde: a format error, not a validation error
        raise format_error(f"{where}.total", f"invalid value: integer `{total}`, expected a nonzero u32")
    if index >= total:
        raise validation_error(f"{where}.index", f"value {index} invalid, must be in [0;{total - 1}]")
    # the point id is None inside ``nested``: elements belong to no slice
    if total == 1:
        return lambda p, q, v: p is not None
    return lambda p, q, v: p is not None and _id_hash(p) % total == index


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK64


def _siphash24(data: bytes) -> int:
    """SipHash-2-4 with a zero key: how the server assigns an id to a slice."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _MASK64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    full = len(data) // 8 * 8
    blocks = [int.from_bytes(data[i:i + 8], "little") for i in range(0, full, 8)]
    # last block: the remaining bytes, zero padded, length in the top byte
    blocks.append(int.from_bytes(data[full:].ljust(7, b"\0"), "little") | ((len(data) & 0xFF) << 56))
    for m in blocks:
        v3 ^= m
        rounds(2)
        v0 ^= m
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def _slice_hash(point_id: PointId) -> int:
    # integer ids hash as 8 little-endian bytes, UUIDs as their 16 RFC 4122 bytes
    if isinstance(point_id, int):
        return _siphash24(point_id.to_bytes(8, "little"))
    return _siphash24(uuid.UUID(point_id).bytes)


# the hash is pure Python and slow; a scan asks it for the same ids on every query
_id_hash = first_n_memo(_slice_hash, capacity=1 << 16)
