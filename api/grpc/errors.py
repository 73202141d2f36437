"""Qdrant errors as gRPC statuses, in one place.

Qdrant's gRPC server answers with the same message texts as its REST API and maps
its error kinds to codes: bad input (REST 400/422) is INVALID_ARGUMENT, a missing
collection or point NOT_FOUND, an existing collection ALREADY_EXISTS, an
unreachable log (REST 503) UNAVAILABLE.
"""
import functools
import logging

import grpc

from storage.errors import QdrantError

log = logging.getLogger(__name__)

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_code(exc: QdrantError) -> grpc.StatusCode:
    return _CODES.get(exc.status_code, grpc.StatusCode.INTERNAL)


def rpc(method):
    """Wrap a servicer method: Qdrant errors become their status, anything else
    INTERNAL with the same text REST gives a 500 (never a bare UNKNOWN)."""
    @functools.wraps(method)
    async def call(self, request, context: grpc.aio.ServicerContext):
        try:
            return await method(self, request, context)
        except QdrantError as exc:
            await context.abort(status_code(exc), exc.message)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            log.exception("gRPC %s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"Service internal error: {type(exc).__name__}: {exc}")
    return call


def unimplemented_methods(servicer: type, reasons: dict) -> None:
    """Give each RPC pointlog does not serve an UNIMPLEMENTED answer that says why
    (the generated default only says "Method not implemented!")."""
    for name, why in reasons.items():
        setattr(servicer, name, _unimplemented(name, why))


def _unimplemented(name: str, why: str):
    async def method(self, request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented by pointlog: {why}")
    method.__name__ = name
    return method
