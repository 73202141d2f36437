"""``qdrant.Qdrant`` (the health check) and ``qdrant.Snapshots``: collection and full
snapshots through the same service calls as REST (streams/snapshots.py)."""
import time

from qdrant_client import grpc as pb
from qdrant_client.conversions.conversion import RestToGrpc
from qdrant_client.grpc import qdrant_pb2_grpc, snapshots_service_pb2_grpc
from qdrant_client.http import models as rest

from api import service
from api.grpc import convert
from api.grpc.errors import rpc
from api.rest.routes import TITLE, VERSION
from streams import snapshots
from streams.node import Node


class Qdrant(qdrant_pb2_grpc.QdrantServicer):
    @rpc
    async def HealthCheck(self, request, context):
        return pb.HealthCheckReply(title=TITLE, version=VERSION)


def _description(found: dict) -> pb.SnapshotDescription:
    return RestToGrpc.convert_snapshot_description(rest.SnapshotDescription.model_validate(found))


class Snapshots(snapshots_service_pb2_grpc.SnapshotsServicer):
    def __init__(self, node: Node):
        self.node = node

    @rpc
    async def Create(self, request, context):
        started = time.perf_counter()
        found = await service.create_snapshot(self.node, request.collection_name)
        return pb.CreateSnapshotResponse(snapshot_description=_description(found), time=convert.elapsed(started))

    @rpc
    async def List(self, request, context):
        started = time.perf_counter()
        found = service.list_snapshots(self.node, request.collection_name)
        return pb.ListSnapshotsResponse(snapshot_descriptions=[_description(s) for s in found],
                                        time=convert.elapsed(started))

    @rpc
    async def Delete(self, request, context):
        started = time.perf_counter()
        service.delete_snapshot(self.node, request.collection_name, request.snapshot_name)
        return pb.DeleteSnapshotResponse(time=convert.elapsed(started))

    @rpc
    async def CreateFull(self, request, context):
        started = time.perf_counter()
        found = await snapshots.create_full_snapshot(self.node)
        return pb.CreateSnapshotResponse(snapshot_description=_description(found), time=convert.elapsed(started))

    @rpc
    async def ListFull(self, request, context):
        started = time.perf_counter()
        found = snapshots.listing(snapshots.full_dir(self.node.settings.data_dir))
        return pb.ListSnapshotsResponse(snapshot_descriptions=[_description(s) for s in found],
                                        time=convert.elapsed(started))

    @rpc
    async def DeleteFull(self, request, context):
        started = time.perf_counter()
        snapshots.delete(snapshots.full_dir(self.node.settings.data_dir), request.snapshot_name)
        return pb.DeleteSnapshotResponse(time=convert.elapsed(started))
