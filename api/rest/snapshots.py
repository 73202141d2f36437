"""Qdrant's snapshot endpoints (collection and full snapshots); what a snapshot holds
and how it is recovered is in streams/snapshots.py."""
import os
import tempfile

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from api import service
from api.rest.responses import bool_param, json_body, timeout_param
from api.rest.routes import handler
from storage.errors import BadRequest
from streams import snapshots
from streams.node import Node

_C = "/collections/{collection}/snapshots"


@handler
async def create(request: Request, node: Node):
    bool_param(request, "wait", True)  # the snapshot is written before the answer either way
    return await service.create_snapshot(node, request.path_params["collection"])


@handler
async def listing(request: Request, node: Node):
    return service.list_snapshots(node, request.path_params["collection"])


@handler
async def download(request: Request, node: Node):
    return _file(snapshots.snapshot_path(service.snapshot_dir(node, request.path_params["collection"]),
                                         request.path_params["name"]))


@handler
async def delete(request: Request, node: Node):
    bool_param(request, "wait", True)
    return service.delete_snapshot(node, request.path_params["collection"], request.path_params["name"])


@handler
async def recover(request: Request, node: Node):
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("location"), str):
        raise BadRequest("Format error in JSON body: missing field `location`")
    unknown = set(body) - {"location", "priority", "checksum", "api_key"}
    if unknown:
        raise BadRequest(f"Format error in JSON body: unknown field `{sorted(unknown)[0]}`")
    wait, timeout = bool_param(request, "wait", True), timeout_param(request)
    path, temporary = await snapshots.fetch(body["location"], node.settings.data_dir, body.get("api_key"))
    try:
        return await service.recover_snapshot(node, request.path_params["collection"], path, body.get("priority"),
                                              body.get("checksum"), wait, timeout)
    finally:
        if temporary:
            os.remove(path)


@handler
async def upload(request: Request, node: Node):
    wait, timeout = bool_param(request, "wait", True), timeout_param(request)
    form = await request.form()
    part = form.get("snapshot")
    if part is None or isinstance(part, str):
        raise BadRequest("Bad request: the multipart form needs the snapshot file as field `snapshot`")
    directory = snapshots.root(node.settings.data_dir)
    os.makedirs(directory, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=".upload-", suffix=snapshots.SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await part.read(1 << 20):
                out.write(chunk)
        return await service.recover_snapshot(node, request.path_params["collection"], path,
                                              request.query_params.get("priority"),
                                              request.query_params.get("checksum"), wait, timeout)
    finally:
        os.remove(path)


@handler
async def create_full(request: Request, node: Node):
    bool_param(request, "wait", True)
    return await snapshots.create_full_snapshot(node)


@handler
async def list_full(request: Request, node: Node):
    return snapshots.listing(snapshots.full_dir(node.settings.data_dir))


@handler
async def download_full(request: Request, node: Node):
    return _file(snapshots.snapshot_path(snapshots.full_dir(node.settings.data_dir), request.path_params["name"]))


@handler
async def delete_full(request: Request, node: Node):
    bool_param(request, "wait", True)
    return snapshots.delete(snapshots.full_dir(node.settings.data_dir), request.path_params["name"])


def _file(path: str) -> FileResponse:
    return FileResponse(path, media_type="application/octet-stream", filename=os.path.basename(path))


ROUTES = [
    Route(_C, create, methods=["POST"]),
    Route(_C, listing, methods=["GET"]),
    Route(_C + "/recover", recover, methods=["PUT"]),
    Route(_C + "/upload", upload, methods=["POST"]),
    Route(_C + "/{name}", download, methods=["GET"]),
    Route(_C + "/{name}", delete, methods=["DELETE"]),
    Route("/snapshots", create_full, methods=["POST"]),
    Route("/snapshots", list_full, methods=["GET"]),
    Route("/snapshots/{name}", download_full, methods=["GET"]),
    Route("/snapshots/{name}", delete_full, methods=["DELETE"]),
]
