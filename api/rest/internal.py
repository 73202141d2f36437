"""The routes pointlog nodes of one cluster call on each other (api/shards.py):
wait until a shard applied an offset, and run a read on the shards held here. They
need full (manage) access when keys are set; nodes call them with their API key."""
from starlette.requests import Request
from starlette.routing import Route

from api import shards as sharded
from api.rest.responses import JSON, error, json_body, ok
from storage.errors import QdrantError

import time


def _internal(fn):
    async def endpoint(request: Request):
        started = time.perf_counter()
        try:
            result = await fn(request.app.state.node, await json_body(request))
        except sharded.Moved:
            # Not held here (any more): the caller asks the shard's new holder.
            return JSON({"status": {"error": "Conflict: the shard is not held by this node"}, "time": 0.0}, 409)
        except QdrantError as exc:
            return error(exc, started)
        return ok(result, started)
    endpoint.__name__ = fn.__name__
    return endpoint


@_internal
async def wait(node, body: dict):
    failure = await sharded.wait_local(node, body["topic"], body["shard"], body["offset"], body.get("control"),
                                       body.get("timeout"))
    return {"done": failure is not None, "failure": failure or None}


@_internal
async def read(node, body: dict):
    answers = await sharded.read_local(node, body["topic"], body["kind"], body["body"], body["shards"])
    return {str(shard): answer for shard, answer in answers.items()}


ROUTES = [Route(sharded.INTERNAL + "/wait", wait, methods=["POST"]),
          Route(sharded.INTERNAL + "/read", read, methods=["POST"])]
