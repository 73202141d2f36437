"""``qdrant.Qdrant`` (the health check) and ``qdrant.Snapshots``, which pointlog
answers with UNIMPLEMENTED: its log and checkpoints take the place of snapshots."""
from qdrant_client import grpc as pb
from qdrant_client.grpc import qdrant_pb2_grpc, snapshots_service_pb2_grpc

from api.grpc.errors import rpc, unimplemented_methods
from api.rest.routes import TITLE, VERSION


class Qdrant(qdrant_pb2_grpc.QdrantServicer):
    @rpc
    async def HealthCheck(self, request, context):
        return pb.HealthCheckReply(title=TITLE, version=VERSION)


class Snapshots(snapshots_service_pb2_grpc.SnapshotsServicer):
    pass


_SNAPSHOTS = "the Kafka log is the backup; use `pointlog checkpoint` and `pointlog restore`"
unimplemented_methods(Snapshots, {name: _SNAPSHOTS for name in ("Create", "List", "Delete", "CreateFull", "ListFull",
                                                                "DeleteFull")})
