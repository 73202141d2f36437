"""The request size limit, as Qdrant's ``service.max_request_size_mb`` (32 MB by
default): a larger body is answered 413 before it is parsed, so nothing is published.

A declared ``content-length`` over the limit is refused before the body is read; a
body sent without one (chunked) is counted as it arrives and refused once it passes
the limit, without holding more than the limit in memory.
"""
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.rest.responses import JSON
from storage.errors import QdrantError


class PayloadTooLarge(QdrantError):
    status_code = 413


def too_large(limit: int, size: int | None = None) -> PayloadTooLarge:
    got = f"({size} bytes) " if size is not None else ""
    return PayloadTooLarge(f"Payload too large: the request body {got}is larger than allowed (limit: {limit} "
                           "bytes, max_request_size_mb)")


class RequestSizeLimit:
    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _refuse(too_large(self.limit, int(declared)), scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise too_large(self.limit)  # the route's handler answers it (api/rest/routes.handler)
            return message

        await self.app(scope, counted, send)


async def _refuse(exc: QdrantError, scope: Scope, receive: Receive, send: Send) -> None:
    await JSON({"status": {"error": exc.message}, "time": 0.0}, exc.status_code)(scope, receive, send)
