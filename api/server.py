"""``pointlog serve``: the Faust worker and the Starlette app on one event loop."""
import asyncio
import logging

from faust.contrib.asgi import serve_asgi

from api.grpc.server import grpc_service
from api.rest.app import build_app
from storage.state import State
from streams.indexer import IndexManager
from streams.node import Node
from streams.node_metrics import consumer_log_ends
from streams.producer import Producer
from streams.replay import LogReader
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker import BoundedWorker, build_faust_app

log = logging.getLogger("pointlog")


async def _log_ends(settings: Settings) -> dict:
    # The topic must exist before the consumer subscribes; broker auto-create is off.
    await ensure_topics(settings.kafka, settings.topic, settings.partitions, settings.topic_replication,
                        settings.topic_min_insync)
    async with LogReader(settings.kafka, settings.topic) as reader:
        return await reader.end_offsets()


def serve(settings: Settings) -> None:
    ends = asyncio.run(_log_ends(settings))
    partitions = len(ends)
    state = State(settings.state_dir)
    node = Node(settings, state, Producer(settings.kafka, settings.topic, linger_ms=settings.linger_ms),
                partitions)
    node.ready_at = ends  # /readyz: ready once the log as it was at start is applied
    # Persisted vector indexes are mmapped now, so the first search needs no rebuild.
    indexes = IndexManager(settings.index_dir, state, settings.index)
    indexes.load()
    node.indexes = indexes
    app = build_faust_app(node)
    app.task(indexes.run)
    http = build_app(node, log_ends=consumer_log_ends(app, settings.topic))
    tls = {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key} if settings.tls else {}
    serve_asgi(app, http, host=settings.host, port=settings.port, access_log=False, **tls)
    if settings.grpc_port:
        app.service(grpc_service(node, settings.host, settings.grpc_port))
    worker = BoundedWorker(app, loglevel=settings.loglevel, quiet=True, node=node, grace=settings.stop_grace)
    print(f"pointlog: applying {settings.topic}@{settings.kafka} into {settings.data_dir}; "
          f"HTTP on {'https' if settings.tls else 'http'}://{settings.host}:{settings.port}"
          + (f", gRPC{' (TLS)' if settings.tls else ''} on {settings.host}:{settings.grpc_port}"
             if settings.grpc_port else ""), flush=True)
    try:
        worker.execute_from_commandline()
    finally:
        indexes.close()
        state.close()
