"""/metrics: one registry per node, HTTP request metrics, and the scrape endpoint.

Requests are labelled with the matched route's path template, never the raw path,
and unknown methods share one label value: clients choose paths and methods, and
must not be able to grow the number of series.
"""
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streams.node_metrics import LogEnds, register_node

UNMATCHED = "unmatched"
METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}
# From a cached read (~1 ms) to a wait=true write that times out (default 30 s).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def node_registry(node, log_ends: LogEnds | None = None) -> CollectorRegistry:
    """A registry of this node's own: several nodes (or apps, in tests) in one
    process must not share or collide in the global default registry."""
    registry = CollectorRegistry()
    register_node(registry, node, log_ends)
    return registry


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by method, route template
    and status. It sits inside Starlette's server-error middleware, so an exception
    reaching it becomes the 500 recorded here."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry):
        self.app = app
        labels = ["method", "route", "status"]
        self.requests = Counter("pointlog_http_requests", "HTTP requests answered", labels, registry=registry)
        self.latency = Histogram("pointlog_http_request_duration_seconds",
                                 "Time from receiving an HTTP request to the end of its response", labels,
                                 registry=registry, buckets=BUCKETS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            labels = (_method(scope), route_template(scope), str(status))
            self.requests.labels(*labels).inc()
            self.latency.labels(*labels).observe(time.perf_counter() - started)


def _method(scope: Scope) -> str:
    method = scope["method"]
    return method if method in METHODS else "other"


def route_template(scope: Scope) -> str:
    """The path template of the route that handled the request (a 405 counts as
    its path's route), or UNMATCHED."""
    route = scope.get("route")  # recorded by recent Starlette routers
    if route is None:
        route = _match(scope)
    return getattr(route, "path", None) or UNMATCHED


def _match(scope: Scope):
    # Older Starlette routers record no route: match again, in the router's order.
    app = scope.get("app")
    partial = None
    for route in getattr(app, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return partial


async def scrape(request: Request) -> Response:
    """The node's metrics, in the format the scraper asks for (Prometheus text or
    OpenMetrics)."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(request.app.state.metrics), headers={"Content-Type": content_type})
