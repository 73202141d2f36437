"""The gRPC server (grpcio asyncio) on the faust worker's event loop, next to the
HTTP API and the applier, so every front door reads the same in-memory state."""
import grpc
import mode
from qdrant_client.grpc import (collections_service_pb2_grpc, points_service_pb2_grpc, qdrant_pb2_grpc,
                                snapshots_service_pb2_grpc)

from api.grpc.collections import Collections
from api.grpc.points import Points
from api.grpc.root import Qdrant, Snapshots
from streams.node import Node

# Qdrant's own server limit: a large upsert fits in one message.
MAX_MESSAGE = 64 * 1024 * 1024


def build_server(node: Node, host: str, port: int) -> grpc.aio.Server:
    """Must be called on the loop that will run it."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                      ("grpc.max_send_message_length", MAX_MESSAGE)])
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
