"""The gRPC lines of ``make bench``: ingest and search through qdrant-client with
``prefer_grpc=True``, as a Rust, Go, Java or .NET client would talk to port 6334.
Several clients, each its own channel; the messages are built by the client library
from the same vectors and payloads as the REST lines."""
import asyncio
import time

import numpy as np
from qdrant_client import AsyncQdrantClient, models

from tests.benchmarks.workload import BATCH, payload


def _client(server) -> AsyncQdrantClient:
    return AsyncQdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=True, timeout=120)


async def _drain(work: list, clients: int, call, server) -> list:
    """Run ``call(client, item)`` over ``work`` with ``clients`` concurrent clients;
    returns (item index, seconds) per call."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in enumerate(work):
        queue.put_nowait(item)
    latencies: list = []

    async def worker():
        client = _client(server)
        try:
            while not queue.empty():
                i, item = queue.get_nowait()
                t = time.perf_counter()
                await call(client, item)
                latencies.append((i, time.perf_counter() - t))
        finally:
            await client.close()

    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


def ingest(server, data: np.ndarray, clients: int, name: str, create) -> float:
    """Points/s until every point is applied (acknowledged is not enough)."""
    create(server.url, name)
    batches = [(list(range(s, min(len(data), s + BATCH))), data[s:s + BATCH].tolist())
               for s in range(0, len(data), BATCH)]

    async def upsert(client, batch):
        ids, vectors = batch
        await client.upsert(name, points=models.Batch(ids=ids, vectors=vectors, payloads=[payload(i) for i in ids]),
                            wait=False)

    t0 = time.perf_counter()
    asyncio.run(_drain(batches, clients, upsert, server))
    server.wait_caught_up(timeout=600)
    return len(data) / (time.perf_counter() - t0)


def search(server, name: str, qs: np.ndarray, clients: int) -> tuple:
    """(QPS, latencies in ms) of nearest queries, limit 10."""
    queries = [q.tolist() for q in qs]

    async def query(client, q):
        await client.query_points(name, query=q, limit=10)

    asyncio.run(_drain(queries[:50], clients, query, server))  # warm up channels and caches
    t0 = time.perf_counter()
    lat = asyncio.run(_drain(queries, clients, query, server))
    seconds = time.perf_counter() - t0
    return len(queries) / seconds, [s * 1000 for _, s in lat]
