"""``qdrant.Points``: point writes publish the same operations as REST; reads answer
from this node's state with the same readers."""
import time

from qdrant_client import grpc as pb
from qdrant_client.grpc import points_service_pb2_grpc

from api import service
from api import shards as sharded
from api.grpc import convert
from api.grpc.errors import rpc, unimplemented_methods
from api.rest import bodies
from storage import operations as ops
from storage.vectors import matrix as distance_matrix
from storage.vectors.search import SearchRequest
from streams.node import Node


class Points(points_service_pb2_grpc.PointsServicer):
    def __init__(self, node: Node):
        self.node = node

    # ---- writes: message -> REST body -> operation; checks in REST's order -------

    async def _submit(self, request, op: ops.Operation) -> dict:
        timeout = service.wait_timeout(convert.timeout(request), "request")
        col = service.check_write(self.node, request.collection_name, op, timeout)
        return await service.submit(self.node, col.name, op, convert.wait(request), timeout)

    async def _write(self, request, op_class, to_body) -> pb.PointsOperationResponse:
        started = time.perf_counter()
        result = await self._submit(request, bodies.parse(op_class, to_body(request)))
        return pb.PointsOperationResponse(result=convert.update_result(result), time=convert.elapsed(started))

    @rpc
    async def Upsert(self, request, context):
        return await self._write(request, ops.Upsert, convert.upsert)

    @rpc
    async def Delete(self, request, context):
        return await self._write(request, ops.DeletePoints, convert.delete_points)

    @rpc
    async def UpdateVectors(self, request, context):
        return await self._write(request, ops.UpdateVectors, convert.update_vectors)

    @rpc
    async def DeleteVectors(self, request, context):
        return await self._write(request, ops.DeleteVectors, convert.delete_vectors)

    @rpc
    async def SetPayload(self, request, context):
        return await self._write(request, ops.SetPayload, convert.set_payload)

    @rpc
    async def OverwritePayload(self, request, context):
        return await self._write(request, ops.OverwritePayload, convert.overwrite_payload)

    @rpc
    async def DeletePayload(self, request, context):
        return await self._write(request, ops.DeletePayload, convert.delete_payload)

    @rpc
    async def ClearPayload(self, request, context):
        return await self._write(request, ops.ClearPayload, convert.clear_payload)

    @rpc
    async def CreateFieldIndex(self, request, context):
        return await self._write(request, ops.CreateFieldIndex, convert.create_field_index)

    @rpc
    async def DeleteFieldIndex(self, request, context):
        return await self._write(request, ops.DeleteFieldIndex, convert.delete_field_index)

    @rpc
    async def UpdateBatch(self, request, context):
        started = time.perf_counter()
        op = bodies.parse(ops.Batch, convert.batch(request))
        result = convert.update_result(await self._submit(request, op))
        return pb.UpdateBatchResponse(result=[result] * len(op.operations), time=convert.elapsed(started))

    # ---- reads ---------------------------------------------------------------------

    @rpc
    async def Get(self, request, context):
        started = time.perf_counter()
        body = convert.get(request)
        col = service.collection(self.node, request.collection_name, sharded=True)
        found = await service.retrieve(self.node, col, body["ids"], body)
        return pb.GetResponse(result=[convert.record(r) for r in found], time=convert.elapsed(started))

    @rpc
    async def Scroll(self, request, context):
        started = time.perf_counter()
        body = convert.scroll(request)
        col = service.collection(self.node, request.collection_name, sharded=True)
        service.check_read(col, "scroll", body, _timeout(request))
        page = await service.scroll_page(self.node, col, body)
        nxt = page["next_page_offset"]
        return pb.ScrollResponse(result=[convert.record(r) for r in page["points"]],
                                 next_page_offset=None if nxt is None else convert.point_id_message(nxt),
                                 time=convert.elapsed(started))

    @rpc
    async def Count(self, request, context):
        started = time.perf_counter()
        body = convert.count(request)
        col = service.collection(self.node, request.collection_name, sharded=True)
        service.check_read(col, "count", body, _timeout(request))
        return pb.CountResponse(result=pb.CountResult(count=await service.count(self.node, col, body)),
                                time=convert.elapsed(started))

    @rpc
    async def QueryGroups(self, request, context):
        started = time.perf_counter()
        found = await service.query_groups(self.node, request.collection_name, convert.query_groups(request),
                                     _timeout(request))
        return pb.QueryGroupsResponse(result=convert.groups_result(found), time=convert.elapsed(started))

    @rpc
    async def Facet(self, request, context):
        started = time.perf_counter()
        body = convert.facet(request)
        col = service.collection(self.node, request.collection_name, sharded=True)
        service.check_read(col, "facet", body, _timeout(request))
        return pb.FacetResponse(hits=convert.facet_hits(await service.facet_of(self.node, col, body)),
                                time=convert.elapsed(started))

    @rpc
    async def Search(self, request, context):
        started = time.perf_counter()
        body = convert.search(request)
        req = SearchRequest.from_search(body)
        col = service.collection(self.node, request.collection_name, sharded=True)
        service.check_read(col, "search", body, _timeout(request))
        found, = await service.search_all(self.node, col, "search", [body], [req])
        return pb.SearchResponse(result=[convert.scored(r) for r in found], time=convert.elapsed(started))

    @rpc
    async def SearchBatch(self, request, context):
        started = time.perf_counter()
        convert.check_fields(request)
        searches = [convert.search(s) for s in request.search_points]
        reqs = [SearchRequest.from_search(s) for s in searches]
        col = service.collection(self.node, request.collection_name, sharded=True)
        service.check_batch(col, searches, _timeout(request))
        found = await service.search_all(self.node, col, "search", searches, reqs)
        return pb.SearchBatchResponse(result=[pb.BatchResult(result=[convert.scored(r) for r in f]) for f in found],
                                      time=convert.elapsed(started))

    @rpc
    async def Query(self, request, context):
        started = time.perf_counter()
        body = convert.query(request)
        req = SearchRequest.from_query(body)
        col = service.collection(self.node, request.collection_name, sharded=True)
        service.check_read(col, "search", body, _timeout(request))
        found, = await service.search_all(self.node, col, "query", [body], [req])
        return pb.QueryResponse(result=[convert.scored(r) for r in found], time=convert.elapsed(started))

    @rpc
    async def QueryBatch(self, request, context):
        started = time.perf_counter()
        convert.check_fields(request)
        searches = [convert.query(q) for q in request.query_points]
        reqs = [SearchRequest.from_query(q) for q in searches]
        col = service.collection(self.node, request.collection_name, sharded=True)
        service.check_batch(col, searches, _timeout(request))
        found = await service.search_all(self.node, col, "query", searches, reqs)
        return pb.QueryBatchResponse(result=[pb.BatchResult(result=[convert.scored(r) for r in f]) for f in found],
                                     time=convert.elapsed(started))

    # ---- legacy read RPCs: the REST legacy bodies, read by the same parsers -------------

    async def _legacy(self, request, to_body, form: str) -> list:
        body = to_body(request)
        req = sharded.FORMS[form](body)
        col = service.collection(self.node, request.collection_name, sharded=True)
        service.check_read(col, "search", body, _timeout(request))
        found, = await service.search_all(self.node, col, form, [body], [req])
        return [convert.scored(r) for r in found]

    async def _legacy_batch(self, request, items, to_body, form: str) -> list:
        convert.check_fields(request)
        bodies = [to_body(item) for item in items]
        reqs = [sharded.FORMS[form](body) for body in bodies]
        col = service.collection(self.node, request.collection_name, sharded=True)
        service.check_batch(col, bodies, _timeout(request))
        found = await service.search_all(self.node, col, form, bodies, reqs)
        return [pb.BatchResult(result=[convert.scored(r) for r in f]) for f in found]

    @rpc
    async def Discover(self, request, context):
        started = time.perf_counter()
        found = await self._legacy(request, convert.discover, "discover")
        return pb.DiscoverResponse(result=found, time=convert.elapsed(started))

    @rpc
    async def DiscoverBatch(self, request, context):
        started = time.perf_counter()
        found = await self._legacy_batch(request, request.discover_points, convert.discover, "discover")
        return pb.DiscoverBatchResponse(result=found, time=convert.elapsed(started))

    @rpc
    async def Recommend(self, request, context):
        started = time.perf_counter()
        found = await self._legacy(request, convert.recommend, "recommend")
        return pb.RecommendResponse(result=found, time=convert.elapsed(started))

    @rpc
    async def RecommendBatch(self, request, context):
        started = time.perf_counter()
        found = await self._legacy_batch(request, request.recommend_points, convert.recommend,
                                         "recommend")
        return pb.RecommendBatchResponse(result=found, time=convert.elapsed(started))

    @rpc
    async def RecommendGroups(self, request, context):
        started = time.perf_counter()
        body = convert.recommend_groups(request)
        found = await service.query_groups(self.node, request.collection_name, service.recommend_groups_query(body))
        return pb.RecommendGroupsResponse(result=convert.groups_result(found), time=convert.elapsed(started))

    @rpc
    async def SearchGroups(self, request, context):
        started = time.perf_counter()
        body = convert.search_groups(request)
        found = await service.query_groups(self.node, request.collection_name, service.search_groups_query(body))
        return pb.SearchGroupsResponse(result=convert.groups_result(found), time=convert.elapsed(started))

    @rpc
    async def SearchMatrixPairs(self, request, context):
        started = time.perf_counter()
        found = distance_matrix.pairs(*await service.matrix(self.node, request.collection_name, convert.matrix(request)))
        return pb.SearchMatrixPairsResponse(result=convert.matrix_pairs(found), time=convert.elapsed(started))

    @rpc
    async def SearchMatrixOffsets(self, request, context):
        started = time.perf_counter()
        found = distance_matrix.offsets(*await service.matrix(self.node, request.collection_name, convert.matrix(request)))
        return pb.SearchMatrixOffsetsResponse(result=convert.matrix_offsets(found), time=convert.elapsed(started))


def _timeout(request) -> int | None:
    """A read's ``timeout`` (seconds), for strict mode's ``max_timeout``; not every
    read message has one."""
    try:
        return convert.timeout(request)
    except ValueError:
        return None


unimplemented_methods(Points, {
    "CreateVectorName": "vector names are fixed when a collection is created",
    "DeleteVectorName": "vector names are fixed when a collection is created",
})
