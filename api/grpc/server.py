"""The gRPC server (grpcio asyncio) on the faust worker's event loop, next to the
HTTP API and the applier, so every front door reads the same in-memory state."""
import grpc
import mode
from qdrant_client.grpc import (collections_service_pb2_grpc, points_service_pb2_grpc, qdrant_pb2_grpc,
                                snapshots_service_pb2_grpc)

from api import service
from api.access import MANAGE, READ, WRITE, Access, Keys, Need, acting_as
from api.grpc.collections import Collections
from api.grpc.errors import status_code
from api.grpc.points import Points
from api.grpc.root import Qdrant, Snapshots
from storage.errors import QdrantError
from streams.node import Node

# Answers may be as large as Qdrant's (a big scroll); requests are bounded by
# max_request_size_mb, as Qdrant bounds them (RESOURCE_EXHAUSTED beyond it).
MAX_ANSWER = 64 * 1024 * 1024
OPEN = {"/qdrant.Qdrant/HealthCheck"}
READS = {"/qdrant.Collections/" + m for m in ("Get", "List", "CollectionExists", "ListAliases",
                                              "ListCollectionAliases")} | \
        {"/qdrant.Points/" + m for m in ("Get", "Scroll", "Count", "Search", "SearchBatch", "Query", "QueryBatch",
                                         "QueryGroups", "Facet", "Discover", "DiscoverBatch", "Recommend",
                                         "RecommendBatch", "RecommendGroups", "SearchGroups", "SearchMatrixPairs",
                                         "SearchMatrixOffsets")}
# What a call needs beyond reading or writing its request's collection (as on REST,
# api/rest/access.py): collection listings show only what the caller may see.
NEEDS = {
    "/qdrant.Collections/Create": (MANAGE, False),
    "/qdrant.Collections/Update": (MANAGE, True),
    "/qdrant.Collections/Delete": (MANAGE, True),
    "/qdrant.Collections/UpdateAliases": (MANAGE, False),
    "/qdrant.Collections/List": (READ, None),
    "/qdrant.Collections/ListAliases": (READ, None),
}


def need_of(method: str) -> tuple[Need, bool | None]:
    """(need, own): own True = of the request's collection, False = of all, None = none."""
    if method in NEEDS:
        return NEEDS[method]
    return (READ if method in READS else WRITE), True


class KeyCheck(grpc.aio.ServerInterceptor):
    """Keys and tokens on the gRPC API: metadata ``api-key`` or ``authorization: Bearer``.
    A call that passes runs with the caller's access (api.access.caller)."""

    def __init__(self, keys: Keys):
        self.keys = keys

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        if details.method in OPEN:
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        try:
            access = self.keys.check(metadata.get("api-key"), metadata.get("authorization"))
        except QdrantError as exc:
            return _refusal(status_code(exc), exc.message)
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler  # an unknown method: grpc answers UNIMPLEMENTED
        need, own = need_of(details.method)
        return _checked(handler, access, need, own)


def _checked(handler: grpc.RpcMethodHandler, access: Access, need: Need, own: bool | None) -> grpc.RpcMethodHandler:
    """The handler, behind the access check of its request (the collection named in
    the message is only known here, once it is decoded)."""
    behaviour = handler.unary_unary

    async def checked(request, context):
        if own is not None:
            try:
                access.require(getattr(request, "collection_name", None) if own else None, need)
            except QdrantError as exc:
                await context.abort(status_code(exc), exc.message)
        token = acting_as(access)
        try:
            return await behaviour(request, context)
        finally:
            token.var.reset(token)

    return grpc.unary_unary_rpc_method_handler(checked, request_deserializer=handler.request_deserializer,
                                               response_serializer=handler.response_serializer)


def _refusal(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def refuse(request, context):
        await context.abort(code, message)
    return grpc.unary_unary_rpc_method_handler(refuse)


def build_server(node: Node, host: str, port: int) -> grpc.aio.Server:
    """Must be called on the loop that will run it."""
    keys = service.keys(node)
    limit = node.settings.max_request_size_mb * 1024 * 1024
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                      ("grpc.max_send_message_length", max(MAX_ANSWER, limit))],
                             interceptors=[KeyCheck(keys)] if keys.enabled else [])
    qdrant_pb2_grpc.add_QdrantServicer_to_server(Qdrant(), server)
    collections_service_pb2_grpc.add_CollectionsServicer_to_server(Collections(node), server)
    points_service_pb2_grpc.add_PointsServicer_to_server(Points(node), server)
    snapshots_service_pb2_grpc.add_SnapshotsServicer_to_server(Snapshots(node), server)
    if node.settings.tls:
        with open(node.settings.tls_key, "rb") as key, open(node.settings.tls_cert, "rb") as cert:
            server.add_secure_port(f"{host}:{port}", grpc.ssl_server_credentials([(key.read(), cert.read())]))
    else:
        server.add_insecure_port(f"{host}:{port}")
    return server


def grpc_service(node: Node, host: str, port: int) -> type:
    """A mode service for ``app.service``: faust starts it with the app, after the
    HTTP server (so after recovery), on the worker's loop, and stops it on shutdown."""
    class GrpcServer(mode.Service):
        server: grpc.aio.Server | None = None

        async def on_start(self) -> None:
            self.server = build_server(node, host, port)
            await self.server.start()

        async def on_stop(self) -> None:
            if self.server is not None:
                await self.server.stop(grace=1.0)

    return GrpcServer
