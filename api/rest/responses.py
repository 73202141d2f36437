"""Qdrant's response envelope, encoded with orjson (numpy vectors included)."""
import time

import orjson
from starlette.requests import Request
from starlette.responses import Response

from api.service import wait_timeout
from storage.errors import BadRequest, QdrantError

_OPTS = orjson.OPT_SERIALIZE_NUMPY


class JSON(Response):
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content, option=_OPTS)


def ok(result, started: float, status_code: int = 200) -> JSON:
    return JSON({"result": result, "status": "ok", "time": time.perf_counter() - started}, status_code)


def error(exc: QdrantError, started: float) -> JSON:
    return JSON({"status": {"error": exc.message}, "time": time.perf_counter() - started}, exc.status_code)


async def json_body(request: Request, required: bool = True):
    raw = await request.body()
    if not raw.strip():
        if required:
            raise BadRequest("Format error in JSON body: EOF while parsing a value at line 1 column 0")
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Format error in JSON body: {exc}") from None


# Query strings are parsed like Qdrant's (serde_urlencoded behind actix-web-validator).
_QUERY_ERROR = "Deserialize error in query parameters: "


def bool_param(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw in ("true", "false"):
        return raw == "true"
    raise BadRequest(_QUERY_ERROR + "provided string was not `true` or `false`")


def timeout_param(request: Request) -> float | None:
    """Seconds to wait for a ``wait=true`` write, a positive integer as in Qdrant."""
    raw = request.query_params.get("timeout")
    if raw is None:
        return None
    if not raw:
        raise BadRequest(_QUERY_ERROR + "cannot parse integer from empty string")
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(_QUERY_ERROR + "invalid digit found in string")
    seconds = int(raw)
    if seconds > 2**64 - 1:
        raise BadRequest(_QUERY_ERROR + "number too large to fit in target type")
    return wait_timeout(seconds, "query parameters")


def ordering_param(request: Request) -> None:
    raw = request.query_params.get("ordering")
    if raw is not None and raw not in ("weak", "medium", "strong"):
        raise BadRequest(_QUERY_ERROR + f"unknown variant `{raw}`, expected one of `weak`, `medium`, `strong`")
