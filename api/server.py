"""``pointlog serve``: the Faust worker and the Starlette app on one event loop."""
import asyncio
import logging

import faust
from faust.contrib.asgi import serve_asgi

from api.grpc.server import grpc_service
from api.rest.app import build_app
from storage.state import State
from streams.indexer import IndexManager
from streams.node import Node
from streams.producer import Producer
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker import build_faust_app

log = logging.getLogger("pointlog")


def serve(settings: Settings) -> None:
    # The topic must exist before the consumer subscribes; broker auto-create is off.
    partitions = asyncio.run(ensure_topics(settings.kafka_bootstrap, settings.topic, settings.partitions))
    state = State(settings.state_dir)
    node = Node(settings, state, Producer(settings.kafka_bootstrap, settings.topic, linger_ms=settings.linger_ms))
    for partition in range(partitions):
        node.progress.applied[partition] = state.applied_offset(settings.topic, partition)
    # Persisted vector indexes are mmapped now, so the first search needs no rebuild.
    indexes = IndexManager(settings.index_dir, state, settings.index)
    indexes.load()
    app = build_faust_app(node)
    app.task(indexes.run)
    serve_asgi(app, build_app(node), host=settings.host, port=settings.port, access_log=False)
    if settings.grpc_port:
        app.service(grpc_service(node, settings.host, settings.grpc_port))
    worker = faust.Worker(app, loglevel=settings.loglevel, quiet=True)
    print(f"pointlog: applying {settings.topic}@{settings.kafka_bootstrap} into {settings.data_dir}; "
          f"HTTP on http://{settings.host}:{settings.port}"
          + (f", gRPC on {settings.host}:{settings.grpc_port}" if settings.grpc_port else ""), flush=True)
    try:
        worker.execute_from_commandline()
    finally:
        indexes.close()
        state.close()
