"""API keys on the REST API (api/access.py says how keys are checked). Qdrant leaves
``/`` and the health endpoints open; everything else needs a key once one is set, and
the read-only key may only read."""
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.access import Keys, QdrantError
from api.rest.metrics import route_template

OPEN = {"/", "/healthz", "/livez", "/readyz"}
_C = "/collections/{collection}"
# POST endpoints that only read (every other POST, PUT, PATCH or DELETE writes).
READING_POSTS = {_C + suffix for suffix in (
    "/points", "/points/scroll", "/points/count", "/points/query", "/points/query/batch", "/points/query/groups",
    "/points/search", "/points/search/batch", "/points/recommend", "/points/recommend/batch", "/facet",
    "/points/discover", "/points/discover/batch", "/points/search/matrix/pairs", "/points/search/matrix/offsets",
    "/points/search/groups", "/points/recommend/groups")}


class KeyCheck:
    def __init__(self, app: ASGIApp, keys: Keys):
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled or scope["path"] in OPEN:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        writes = method not in ("GET", "HEAD") and not (method == "POST" and route_template(scope) in READING_POSTS)
        try:
            self.keys.check(headers.get("api-key"), headers.get("authorization"), writes)
        except QdrantError as exc:
            await PlainTextResponse(exc.message, status_code=exc.status_code)(scope, receive, send)
            return
        await self.app(scope, receive, send)
