"""The Starlette application over a node."""
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.responses import JSON
from api.routes import ROUTES
from streams.node import Node


async def _http_error(request: Request, exc: HTTPException) -> JSON:
    # Unknown paths and wrong methods keep Qdrant's error envelope.
    return JSON({"status": {"error": exc.detail}, "time": 0.0}, exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSON:
    return JSON({"status": {"error": f"Service internal error: {type(exc).__name__}: {exc}"}, "time": 0.0}, 500)


def build_app(node: Node) -> Starlette:
    app = Starlette(routes=ROUTES, exception_handlers={HTTPException: _http_error, Exception: _unexpected})
    app.state.node = node
    return app
