"""Datetime strings as Qdrant reads them, for datetime ranges in filters.

``parse_datetime(text)`` gives microseconds since the epoch (UTC), so that a range
compares instants: strings without an offset are UTC, a bare date is midnight UTC.
``datetime_micros`` is the same for a str, memoized because a scan parses the same
payload strings again for every query.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from storage.filters.memo import first_n_memo

# The formats Qdrant core accepts for datetime payloads and range bounds (what the
# server's DateTimeWrapper parses, and what local mode lists). A missing offset means
# UTC. Parsing goes through strptime so that its exact leniencies (single-digit
# fields, case-insensitive 'T', "+0100" offsets...) are the same as local mode's.
_DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
    # core reads back its own Display output, which has a space before the offset
    "%Y-%m-%dT%H:%M:%S %z", "%Y-%m-%dT%H:%M:%S.%f %z", "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M:%S.%f %z",
)
# The usual RFC 3339 spellings, parsed by the much faster datetime.fromisoformat. The
# pattern only admits strings one of the formats above also accepts (an offset needs
# seconds, as there), on which both parsers agree; whatever fromisoformat then refuses
# still goes through the full list.
_COMMON_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:[0-5]\d)?)?)?",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def parse_datetime(text: str) -> int | None:
    """Microseconds since the epoch (UTC) of a datetime string Qdrant accepts, else None."""
    return datetime_micros(text) if isinstance(text, str) else None


def _parse_datetime_micros(text: str) -> int | None:
    text = _normalize_datetime(text)
    parsed = _fast_datetime(text) or _strptime_any(text)
    if parsed is None:
        # strptime's %z wants minutes; core also takes an hour-only offset ("+01")
        tail = text[-3:]
        if len(tail) == 3 and tail[0] in "+-" and tail[1:].isdigit():
            parsed = _strptime_any(text + ":00")
    if parsed is None:
        return None
    try:
        return (parsed - _EPOCH) // _MICROSECOND
    except OverflowError:
        return None


datetime_micros = first_n_memo(_parse_datetime_micros, capacity=1 << 17, max_len=64)


def _normalize_datetime(text: str) -> str:
    # Leniencies of core's parser that strptime lacks: leading whitespace, a lowercase
    # "z", chrono's " UTC" suffix, and fractions finer than microseconds (truncated).
    text = text.lstrip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    elif text.endswith("z"):
        text = text[:-1] + "Z"
    dot = text.find(".")  # the first dot only, whatever follows it
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        if end - dot > 7:
            text = text[:dot + 7] + text[end:]
    return text


def _fast_datetime(text: str) -> datetime | None:
    if _COMMON_DATETIME.fullmatch(text) is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _strptime_any(text: str) -> datetime | None:
    for fmt in _DATETIME_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    return None
