"""Point ids: parsing every spelling Qdrant accepts, and the ordered key encoding.

Keys are ``0x00 + u64 big-endian`` for integers and ``0x01 + 16 bytes`` for UUIDs,
so byte order of keys is Qdrant's scroll order (integers ascending, then UUIDs).
"""
import json
import re
import uuid

from storage.errors import BadRequest

PointId = int | str  # int, or a lowercase hyphenated UUID string

_U64_MAX = 2**64 - 1
_INT_TAG = b"\x00"
_UUID_TAG = b"\x01"
_HYPHENATED = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# simple (32 hex digits), hyphenated, braced, or URN: what Qdrant's uuid parser accepts.
_UUID_SPELLINGS = re.compile(rf"[0-9a-fA-F]{{32}}|{_HYPHENATED}|\{{{_HYPHENATED}\}}|urn:uuid:{_HYPHENATED}")


def parse_id(value) -> PointId:
    """Normalize a point id from JSON; raise 400 for anything Qdrant rejects."""
    if isinstance(value, bool):
        raise _invalid(value)
    if isinstance(value, int):
        if 0 <= value <= _U64_MAX:
            return value
        raise _invalid(value)
    if isinstance(value, str):
        # Python's uuid.UUID is laxer than Qdrant (hyphens anywhere, non-ASCII digits).
        if not _UUID_SPELLINGS.fullmatch(value):
            raise _invalid(value)
        return str(uuid.UUID(value))
    raise _invalid(value)


def _invalid(value) -> BadRequest:
    # Qdrant's own wording: serde reports it as a format error of the body.
    shown = value if isinstance(value, str) else json.dumps(value, default=repr)
    return BadRequest(f"Format error in JSON body: value {shown} is not a valid point ID, "
                      "valid values are either an unsigned integer or a UUID")


def encode_id(pid: PointId) -> bytes:
    if isinstance(pid, int):
        return _INT_TAG + pid.to_bytes(8, "big")
    return _UUID_TAG + uuid.UUID(pid).bytes


def decode_id(key: bytes) -> PointId:
    if key[:1] == _INT_TAG:
        return int.from_bytes(key[1:9], "big")
    return str(uuid.UUID(bytes=bytes(key[1:17])))
