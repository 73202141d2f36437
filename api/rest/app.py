"""The Starlette application over a node."""
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Match, Route

from api import service
from api.rest.access import KeyCheck
from api.rest.limits import RequestSizeLimit
from api.rest.metrics import RequestMetrics, node_registry
from api.rest.openapi import document
from api.rest.responses import JSON
from api.rest import internal, snapshots, telemetry
from api.rest.routes import ROUTES
from streams.node import Node
from streams.node_metrics import LogEnds


async def _http_error(request: Request, exc: HTTPException) -> JSON:
    # Unknown paths and wrong methods keep Qdrant's error envelope, so clients that
    # read `status.error` get a message instead of failing to parse the body.
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        message = f"Not found: {where} is not an endpoint of this API"
    elif exc.status_code == 405:
        allowed = _allowed_methods(request)
        message = f"Method not allowed: {where}; this path accepts {', '.join(allowed)}"
        return JSON({"status": {"error": message}, "time": 0.0}, 405, headers={"Allow": ", ".join(allowed)})
    else:
        message = str(exc.detail)
    return JSON({"status": {"error": message}, "time": 0.0}, exc.status_code, headers=exc.headers)


def _allowed_methods(request: Request) -> list:
    # Each method of a path is its own Route: collect them all, not just the first's.
    methods = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _openapi(request: Request) -> JSON:
    return JSON(document())


async def _unexpected(request: Request, exc: Exception) -> JSON:
    return JSON({"status": {"error": f"Service internal error: {type(exc).__name__}: {exc}"}, "time": 0.0}, 500)


def build_app(node: Node, log_ends: LogEnds | None = None) -> Starlette:
    """``log_ends``: the log end offsets the applier lag is measured against."""
    registry = node_registry(node, log_ends)
    # Metrics first: refused requests are counted too. Keys before the size limit, as
    # in Qdrant: an unauthorized caller learns nothing about the limit.
    limit = node.settings.max_request_size_mb * 1024 * 1024
    app = Starlette(routes=ROUTES + telemetry.ROUTES + snapshots.ROUTES + internal.ROUTES + [Route("/openapi.json", _openapi, methods=["GET"])], exception_handlers={HTTPException: _http_error, Exception: _unexpected},
                    middleware=[Middleware(RequestMetrics, registry=registry),
                                Middleware(KeyCheck, keys=service.keys(node)),
                                Middleware(RequestSizeLimit, limit=limit)])
    app.state.node = node
    app.state.metrics = registry
    return app
