"""The gRPC server (grpcio asyncio) on the faust worker's event loop, next to the
HTTP API and the applier, so every front door reads the same in-memory state."""
import grpc
import mode
from qdrant_client.grpc import (collections_service_pb2_grpc, points_service_pb2_grpc, qdrant_pb2_grpc,
                                snapshots_service_pb2_grpc)

from api.access import Keys
from api.grpc.collections import Collections
from api.grpc.errors import status_code
from api.grpc.points import Points
from api.grpc.root import Qdrant, Snapshots
from storage.errors import QdrantError
from streams.node import Node

# Qdrant's own server limit: a large upsert fits in one message.
MAX_MESSAGE = 64 * 1024 * 1024
OPEN = {"/qdrant.Qdrant/HealthCheck"}
READS = {"/qdrant.Collections/" + m for m in ("Get", "List", "CollectionExists", "ListAliases",
                                              "ListCollectionAliases")} | \
        {"/qdrant.Points/" + m for m in ("Get", "Scroll", "Count", "Search", "SearchBatch", "Query", "QueryBatch",
                                         "QueryGroups", "Facet", "Discover", "DiscoverBatch", "Recommend",
                                         "RecommendBatch", "RecommendGroups", "SearchGroups", "SearchMatrixPairs",
                                         "SearchMatrixOffsets")}


class KeyCheck(grpc.aio.ServerInterceptor):
    """API keys on the gRPC API: metadata ``api-key`` or ``authorization: Bearer``."""

    def __init__(self, keys: Keys):
        self.keys = keys

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        if details.method in OPEN:
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        try:
            self.keys.check(metadata.get("api-key"), metadata.get("authorization"), details.method not in READS)
        except QdrantError as exc:
            return _refusal(status_code(exc), exc.message)
        return await continuation(details)


def _refusal(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def refuse(request, context):
        await context.abort(code, message)
    return grpc.unary_unary_rpc_method_handler(refuse)


def build_server(node: Node, host: str, port: int) -> grpc.aio.Server:
    """Must be called on the loop that will run it."""
    keys = Keys(node.settings.api_key, node.settings.read_only_api_key)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                      ("grpc.max_send_message_length", MAX_MESSAGE)],
                             interceptors=[KeyCheck(keys)] if keys.enabled else [])
    qdrant_pb2_grpc.add_QdrantServicer_to_server(Qdrant(), server)
    collections_service_pb2_grpc.add_CollectionsServicer_to_server(Collections(node), server)
    points_service_pb2_grpc.add_PointsServicer_to_server(Points(node), server)
    snapshots_service_pb2_grpc.add_SnapshotsServicer_to_server(Snapshots(), server)
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
