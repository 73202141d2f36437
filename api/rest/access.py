"""Access control on the REST API (api/access.py says how keys and tokens are checked).
Qdrant leaves ``/`` and the health endpoints open; every other route needs a key once
one is set, and what it needs (read, write, manage; of its collection or of all) is
the table below. A refused request never reaches its handler, so nothing is published."""
from starlette.responses import PlainTextResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api.access import MANAGE, READ, WRITE, Forbidden, Keys, Need, QdrantError, acting_as
from api.rest.responses import JSON

OPEN = {"/", "/healthz", "/livez", "/readyz"}
_C = "/collections/{collection}"
# POST endpoints that only read (every other POST, PUT, PATCH or DELETE writes).
READING_POSTS = {_C + suffix for suffix in (
    "/points", "/points/scroll", "/points/count", "/points/query", "/points/query/batch", "/points/query/groups",
    "/points/search", "/points/search/batch", "/points/recommend", "/points/recommend/batch", "/facet",
    "/points/discover", "/points/discover/batch", "/points/search/matrix/pairs", "/points/search/matrix/offsets",
    "/points/search/groups", "/points/recommend/groups")}
# (method, route) -> (need, of the path's collection (True), of all (False), or none
# (None: the listings, which show only what the caller may see)). Routes not listed
# read or write their collection (by method).
NEEDS = {
    ("GET", "/collections"): (READ, None),
    ("GET", "/aliases"): (READ, None),
    ("PUT", _C): (MANAGE, False),  # a new collection: Qdrant asks for global manage access
    ("PATCH", _C): (MANAGE, True),
    ("DELETE", _C): (MANAGE, True),
    ("POST", "/collections/aliases"): (MANAGE, False),
    ("POST", "/pointlog/checkpoint"): (MANAGE, False),
    ("POST", "/__pointlog/wait"): (MANAGE, False),  # api/rest/internal.py: node to node
    ("POST", "/__pointlog/read"): (MANAGE, False),
    ("GET", "/metrics"): (READ, False),
    ("GET", "/openapi.json"): (READ, False),
}


def need_of(method: str, template: str | None) -> tuple[Need, bool | None]:
    if (method, template) in NEEDS:
        return NEEDS[(method, template)]
    reads = method in ("GET", "HEAD") or (method == "POST" and template in READING_POSTS)
    return (READ if reads else WRITE), True


def _route(scope: Scope) -> tuple[str | None, dict]:
    """The template and path parameters of the route the router will pick."""
    for route in getattr(scope.get("app"), "routes", ()):
        match, child = route.matches(scope)
        if match == Match.FULL:
            return route.path, child.get("path_params", {})
    return None, {}


class KeyCheck:
    def __init__(self, app: ASGIApp, keys: Keys):
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled or scope["path"] in OPEN:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            access = self.keys.check(headers.get("api-key"), headers.get("authorization"))
        except QdrantError as exc:  # Qdrant's auth middleware answers in plain text
            await PlainTextResponse(exc.message, status_code=exc.status_code)(scope, receive, send)
            return
        template, params = _route(scope)
        need, own = need_of(scope["method"], template)
        if template is not None and own is not None:  # unknown paths get their 404 / 405 from the router
            try:
                access.require(params.get("collection") if own else None, need)
            except Forbidden as exc:  # Qdrant's handlers answer with the JSON envelope
                await JSON({"status": {"error": exc.message}, "time": 0.0}, 403)(scope, receive, send)
                return
        token = acting_as(access)
        try:
            await self.app(scope, receive, send)
        finally:
            token.var.reset(token)
