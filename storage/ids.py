"""Point ids: parsing every spelling Qdrant accepts, and the ordered key encoding.

Keys are ``0x00 + u64 big-endian`` for integers and ``0x01 + 16 bytes`` for UUIDs,
so byte order of keys is Qdrant's scroll order (integers ascending, then UUIDs).
"""
import uuid

from storage.errors import BadRequest

PointId = int | str  # int, or a lowercase hyphenated UUID string

_U64_MAX = 2**64 - 1
_INT_TAG = b"\x00"
_UUID_TAG = b"\x01"


def parse_id(value) -> PointId:
    """Normalize a point id from JSON; raise 400 for anything Qdrant rejects."""
    if isinstance(value, bool):
        raise _invalid(value)
    if isinstance(value, int):
        if 0 <= value <= _U64_MAX:
            return value
        raise _invalid(value)
    if isinstance(value, str):
        if value.isdigit() or not value:
            raise _invalid(value)
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise _invalid(value) from None
    raise _invalid(value)


def _invalid(value) -> BadRequest:
    shown = value if isinstance(value, str) else repr(value)
    return BadRequest(f"Unable to parse point id: {shown} is not a valid point ID, "
                      "valid values are either an unsigned integer or a UUID")


def encode_id(pid: PointId) -> bytes:
    if isinstance(pid, int):
        return _INT_TAG + pid.to_bytes(8, "big")
    return _UUID_TAG + uuid.UUID(pid).bytes


def decode_id(key: bytes) -> PointId:
    if key[:1] == _INT_TAG:
        return int.from_bytes(key[1:9], "big")
    return str(uuid.UUID(bytes=bytes(key[1:17])))


def key_of(value) -> bytes:
    """Parse an id from JSON and return its key in one step."""
    return encode_id(parse_id(value))
