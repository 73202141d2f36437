"""``pointlog serve``: the Faust worker and the Starlette app on one event loop."""
import asyncio
import gc
import logging
import sys
import time

from faust.contrib.asgi import serve_asgi

from api.grpc.server import grpc_service
from api.rest.app import build_app
from storage.state import State
from streams.indexer import IndexManager
from streams.node import Node
from streams.node_metrics import consumer_log_ends
from streams.producer import Producer
from streams.replay import LogReader
from streams.shard_worker import shard_service
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


# Generation-0 collections every this many container allocations (CPython: 700).
# A 256-point batch allocates ~1,000 containers (a list per vector, a dict per
# payload) that live only until the request is parsed; at 700 nearly every
# collection finds them alive, walks them and promotes them to older generations
# to be walked again (a sixth of the server's CPU under ingest). At this threshold
# most request temporaries are freed by reference counting before any collection.
# Reference cycles are rare in pointlog's data; the collector still finds them, only
# later (garbage in cycles, such as exceptions with their frames, lives a little longer).
GC_THRESHOLD = (100_000, 20, 20)


# How long a thread may hold the GIL while another waits for it (CPython: 5 ms).
# The server's background threads (column segments, index snapshots, faust's
# consumer) run Python in long stretches; at 5 ms every request arriving meanwhile
# waited up to that long for the event loop's thread to get the GIL back. Measured
# right after a bulk ingest (four A/B pairs): wait=true p99 14.7/13.4/12.9/5.4 ms at
# 5 ms, 10.3/9.1/9.8/9.4 ms at 1 ms; ingest speed and idle latency unchanged.
SWITCH_INTERVAL_S = 0.001


def tune_interpreter() -> None:
    """The collector's schedule (tune_gc) and the GIL's switch interval."""
    tune_gc()
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def tune_gc() -> None:
    """Collect less often, and never walk what startup loaded (state, indexes,
    modules): gc.freeze() moves it out of the generations a collection visits. A
    frozen object is still freed by reference counting; only one caught in a cycle
    would stay, and the state's objects (points, payloads, stores, collections) hold
    no references back to their owners. No collection first: it would walk every
    loaded point and payload on each start (0.2 s at a million) for the little
    startup garbage it could free."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def serve(settings: Settings) -> None:
    ends = asyncio.run(_log_ends(settings))
    partitions = len(ends)
    started = time.perf_counter()
    state = State(settings.state_dir)
    segmented = sum(1 for how in state.loaded_from.values() if how == "segment")
    print(f"pointlog: state loaded in {time.perf_counter() - started:.2f}s "
          f"({sum(len(c) for c in state.collections.values())} points; {segmented} of {len(state.collections)} "
          "collections from column segments)", flush=True)
    node = Node(settings, state, Producer(settings.kafka, settings.topic, linger_ms=settings.linger_ms),
                partitions)
    node.ready_at = ends  # /readyz: ready once the log as it was at start is applied
    # Persisted vector indexes are mmapped now, so the first search needs no rebuild.
    indexes = IndexManager(settings.index_dir, state, settings.index)
    indexes.load()
    node.indexes = indexes
    app = build_faust_app(node)
    app.task(indexes.run)
    from streams.segments import SegmentWriter
    app.task(SegmentWriter(state).run)  # column segments: what makes the next start fast
    http = build_app(node, log_ends=consumer_log_ends(app, settings.topic))
    tls = {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key} if settings.tls else {}
    # httptools parses HTTP in C; uvicorn's default (h11) parses it in Python.
    # No proxy-headers middleware: pointlog never reads the client's address.
    serve_asgi(app, http, host=settings.host, port=settings.port, access_log=False, http="httptools",
               proxy_headers=False, **tls)
    if settings.grpc_port:
        app.service(grpc_service(node, settings.host, settings.grpc_port))
    app.service(shard_service(node))
    worker = BoundedWorker(app, loglevel=settings.loglevel, quiet=True, node=node, grace=settings.stop_grace)
    print(f"pointlog: applying {settings.topic}@{settings.kafka} into {settings.data_dir}; "
          f"HTTP on {'https' if settings.tls else 'http'}://{settings.host}:{settings.port}"
          + (f", gRPC{' (TLS)' if settings.tls else ''} on {settings.host}:{settings.grpc_port}"
             if settings.grpc_port else ""), flush=True)
    tune_interpreter()
    try:
        worker.execute_from_commandline()
    finally:
        indexes.close()
        state.close()
