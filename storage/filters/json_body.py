"""Reading a filter out of a parsed JSON body, with the errors the Qdrant server gives.

The server splits bad input in two: a body that does not have the right shape is a
400 ``Format error in JSON body: ...`` (serde refused it); a well-formed value its
validator refuses is a 422 ``Validation error in JSON body: [...]``
(``format_error`` and ``validation_error``; the readers here only raise the first).
``where`` is always the location of the value in the request, as the server names
it, so that a client sees the same message from both.
"""
from __future__ import annotations

from typing import Any

from storage.errors import BadRequest, Unprocessable
from storage.paths import InvalidPath, Path, parse_path


def format_error(where: str, detail: str) -> BadRequest:
    return BadRequest(f"Format error in JSON body: {where}: {detail}")


def validation_error(where: str, detail: str) -> Unprocessable:
    return Unprocessable(f"Validation error in JSON body: [{where}: {detail}]")


def invalid_type(where: str, value: Any, expected: str) -> BadRequest:
    return format_error(where, f"invalid type: {describe(value)}, expected {expected}")


def describe(value: Any) -> str:
    """A JSON value as serde names it in its messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean `true`" if value else "boolean `false`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, list):
        return "a sequence"
    return "a map"


def expect_object(raw: Any, where: str, what: str) -> dict:
    if not isinstance(raw, dict):
        raise invalid_type(where, raw, what)
    return raw


def check_fields(raw: dict, allowed: tuple[str, ...], where: str) -> None:
    for name in raw:
        if name not in allowed:
            expected = ", ".join(f"`{a}`" for a in allowed)
            raise format_error(where, f"unknown field `{name}`, expected one of {expected}")


def require(raw: dict, name: str, where: str) -> Any:
    value = raw.get(name)
    if value is None:
        raise format_error(where, f"missing field `{name}`")
    return value


def integer(raw: Any, where: str, *, minimum: int | None = None) -> int:
    if type(raw) is not int:
        raise invalid_type(where, raw, "an integer")
    if minimum is not None and raw < minimum:
        raise format_error(where, f"invalid value: {describe(raw)}, expected an unsigned integer")
    return raw


def key_path(raw: Any, where: str) -> Path:
    if not isinstance(raw, str):
        raise invalid_type(where, raw, "a payload key")
    try:
        return parse_path(raw)
    except InvalidPath:
        raise format_error(where, f"Invalid json path: '{raw}'") from None
