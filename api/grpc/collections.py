"""``qdrant.Collections``: the collection calls REST serves, through api/service.py."""
import time

from qdrant_client import grpc as pb
from qdrant_client.conversions.conversion import RestToGrpc
from qdrant_client.http import models as rest
from qdrant_client.grpc import collections_service_pb2_grpc

from api import service
from api.grpc import convert
from api.grpc.errors import rpc, unimplemented_methods
from api.rest import bodies
from storage import operations as ops
from streams.node import Node


class Collections(collections_service_pb2_grpc.CollectionsServicer):
    def __init__(self, node: Node):
        self.node = node

    @rpc
    async def Get(self, request, context):
        started = time.perf_counter()
        info = await service.collection_info_of(self.node, service.collection(self.node, request.collection_name,
                                                                               sharded=True))
        return pb.GetCollectionInfoResponse(result=convert.collection_info(info), time=convert.elapsed(started))

    @rpc
    async def List(self, request, context):
        started = time.perf_counter()
        names = service.list_collections(self.node)
        return pb.ListCollectionsResponse(collections=[pb.CollectionDescription(name=n) for n in names],
                                          time=convert.elapsed(started))

    @rpc
    async def CollectionExists(self, request, context):
        started = time.perf_counter()
        exists = service.exists(self.node, request.collection_name)
        return pb.CollectionExistsResponse(result=pb.CollectionExists(exists=exists), time=convert.elapsed(started))

    @rpc
    async def Create(self, request, context):
        started = time.perf_counter()
        op = bodies.parse(ops.CreateCollection, convert.create_collection(request))
        timeout = service.wait_timeout(convert.timeout(request), "request")
        done = await service.create_collection(self.node, request.collection_name, op, timeout)
        return pb.CollectionOperationResponse(result=done, time=convert.elapsed(started))

    @rpc
    async def Update(self, request, context):
        started = time.perf_counter()
        op = bodies.parse(ops.UpdateCollection, convert.update_collection(request))
        timeout = service.wait_timeout(convert.timeout(request), "request")
        done = await service.update_collection(self.node, request.collection_name, op, timeout)
        return pb.CollectionOperationResponse(result=done, time=convert.elapsed(started))

    @rpc
    async def UpdateAliases(self, request, context):
        started = time.perf_counter()
        op = bodies.parse(ops.UpdateAliases, convert.change_aliases(request))
        timeout = service.wait_timeout(convert.timeout(request), "request")
        done = await service.update_aliases(self.node, op, timeout)
        return pb.CollectionOperationResponse(result=done, time=convert.elapsed(started))

    @rpc
    async def ListAliases(self, request, context):
        started = time.perf_counter()
        return pb.ListAliasesResponse(aliases=_aliases(service.list_aliases(self.node)), time=convert.elapsed(started))

    @rpc
    async def ListCollectionAliases(self, request, context):
        started = time.perf_counter()
        found = service.list_aliases(self.node, request.collection_name)
        return pb.ListAliasesResponse(aliases=_aliases(found), time=convert.elapsed(started))

    @rpc
    async def CollectionClusterInfo(self, request, context):
        started = time.perf_counter()
        info = service.collection_cluster(self.node, request.collection_name)
        reply = RestToGrpc.convert_collection_cluster_info(rest.CollectionClusterInfo.model_validate(info))
        reply.time = convert.elapsed(started)
        return reply

    @rpc
    async def Delete(self, request, context):
        started = time.perf_counter()
        convert.check_fields(request)
        timeout = service.wait_timeout(convert.timeout(request), "request")
        done = await service.delete_collection(self.node, request.collection_name, timeout)
        return pb.CollectionOperationResponse(result=done, time=convert.elapsed(started))


def _aliases(found: dict) -> list:
    return [pb.AliasDescription(alias_name=a["alias_name"], collection_name=a["collection_name"])
            for a in found["aliases"]]


_ONE_SHARD = "every pointlog collection has a single shard, served by this node"
unimplemented_methods(Collections, {
    "UpdateCollectionClusterSetup": _ONE_SHARD,
    "CreateShardKey": _ONE_SHARD, "DeleteShardKey": _ONE_SHARD, "ListShardKeys": _ONE_SHARD,
})
