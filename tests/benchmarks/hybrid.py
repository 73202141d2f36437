"""The hybrid line of ``make bench``: documents with a 128-d dense vector and a sparse
vector of ~100 non-zeros over a 30k vocabulary (Zipf-distributed terms, positive
weights, as BM25/SPLADE encoders produce), queried by a dense prefetch and a sparse
(idf) prefetch fused with RRF, over HTTP by 4 clients, beside qdrant-client's local
mode on the same documents and queries.

Bodies are written with ``json.dumps`` (full-precision floats), as Python clients do.
``python -m tests.benchmarks.hybrid peer N_DOCS N_QUERIES`` prints the peer's figures
as one JSON object (run as a subprocess so its memory is its own).
"""
import asyncio
import json
import sys
import time

import httpx
import numpy as np

from tests.benchmarks import loadgen
from tests.benchmarks.workload import BATCH, DIM, percentile, vectors

VOCAB = 30_000
DOC_TERMS = 100
QUERY_TERMS = 32
PREFETCH = 20
COLLECTION = "hybrid"
MAX_QUERIES = 4096


def progress(msg: str) -> None:
    print(f"[hybrid] {msg}", file=sys.stderr, flush=True)


def _terms(rng: np.random.Generator, count: int, size: int) -> list:
    """``count`` sparse vectors of about ``size`` distinct terms each, Zipf-distributed."""
    weights = 1.0 / (np.arange(VOCAB) + 10.0)
    weights /= weights.sum()
    out = []
    for _ in range(count):
        idx = np.unique(rng.choice(VOCAB, size=size, p=weights))
        out.append({"indices": idx.tolist(), "values": rng.gamma(2.0, 0.5, size=len(idx)).tolist()})
    return out


def documents(n: int, seed: int = 5) -> tuple:
    rng = np.random.default_rng(seed)
    return vectors(n, seed=seed), _terms(rng, n, DOC_TERMS)


def queries(n: int, seed: int = 17) -> list:
    """The first ``n`` of one fixed list, so the peer's few queries are pointlog's first ones."""
    rng = np.random.default_rng(seed)
    dense = vectors(MAX_QUERIES, seed=seed)[:n]
    sparse = _terms(rng, n, QUERY_TERMS)
    return [{"prefetch": [{"query": dense[i].tolist(), "using": "dense", "limit": PREFETCH},
                          {"query": sparse[i], "using": "text", "limit": PREFETCH}],
             "query": {"fusion": "rrf"}, "limit": 10} for i in range(n)]


CONFIG = {"vectors": {"dense": {"size": DIM, "distance": "Cosine"}},
          "sparse_vectors": {"text": {"modifier": "idf"}}}


def bodies(dense: np.ndarray, sparse: list) -> list:
    out = []
    for s in range(0, len(dense), BATCH):
        ids = list(range(s, min(len(dense), s + BATCH)))
        out.append(json.dumps({"batch": {"ids": ids, "vectors": {"dense": dense[s:s + len(ids)].tolist(),
                                                                 "text": sparse[s:s + len(ids)]},
                                         "payloads": [{"doc": i % 97} for i in ids]}}).encode())
    return out


def run(server, n: int, n_queries: int, clients: int) -> tuple:
    """Ingest the documents into ``server`` and run the queries; (figures, answers)."""
    httpx.put(f"{server.url}/collections/{COLLECTION}", json=CONFIG, timeout=30).raise_for_status()
    dense, sparse = documents(n)
    payloads = bodies(dense, sparse)
    path = f"/collections/{COLLECTION}/points?wait=false"
    progress(f"ingest {n} documents, {clients} clients")
    t0 = time.perf_counter()
    asyncio.run(loadgen.run(server.url, [("PUT", path, b) for b in payloads], clients))
    server.wait_caught_up(timeout=900)
    out = {"hybrid_ingest_points_per_s": n / (time.perf_counter() - t0)}
    qs = queries(n_queries)
    reqs = [("POST", f"/collections/{COLLECTION}/points/query", json.dumps(q).encode()) for q in qs]
    asyncio.run(loadgen.run(server.url, reqs[:20], clients))  # warm up
    progress(f"{n_queries} hybrid queries, {clients} clients")
    seconds, lat, responses = asyncio.run(loadgen.run(server.url, reqs, clients))
    out.update(hybrid_qps=n_queries / seconds, hybrid_p50_ms=percentile(lat, 50),
               hybrid_p99_ms=percentile(lat, 99))
    answers = [[p["id"] for p in json.loads(r)["result"]["points"]] for r in responses]
    return out, answers


def peer(n: int, n_queries: int) -> dict:
    """Local mode, in memory, one caller (it has no server): the same documents and the
    first ``n_queries`` queries; its answers are returned for the agreement figure."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection(COLLECTION, vectors_config={"dense": models.VectorParams(size=DIM, distance="Cosine")},
                             sparse_vectors_config={"text": models.SparseVectorParams(modifier=models.Modifier.IDF)})
    dense, sparse = documents(n)
    t0 = time.perf_counter()
    for s in range(0, n, BATCH):
        ids = list(range(s, min(n, s + BATCH)))
        client.upsert(COLLECTION, points=models.Batch(ids=ids, vectors={
            "dense": dense[s:s + len(ids)].tolist(),
            "text": [models.SparseVector(**v) for v in sparse[s:s + len(ids)]]},
            payloads=[{"doc": i % 97} for i in ids]))
    out = {"peer_hybrid_ingest_points_per_s": n / (time.perf_counter() - t0)}
    lat, answers = [], []
    for q in queries(n_queries):
        prefetch = [models.Prefetch(query=p["query"] if p["using"] == "dense" else models.SparseVector(**p["query"]),
                                    using=p["using"], limit=p["limit"]) for p in q["prefetch"]]
        t = time.perf_counter()
        points = client.query_points(COLLECTION, prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF),
                                     limit=10).points
        lat.append((time.perf_counter() - t) * 1000)
        answers.append([p.id for p in points])
    out.update(peer_hybrid_qps=len(lat) / (sum(lat) / 1000), peer_hybrid_p99_ms=percentile(lat, 99),
               peer_hybrid_answers=answers)
    return out


def agreement(ours: list, theirs: list) -> float:
    """Share of the peer's top-10 ids that pointlog returns too (the dense prefetch is
    approximate in pointlog above the index threshold, exact in local mode)."""
    hits = sum(len(set(a) & set(b)) for a, b in zip(ours, theirs))
    return hits / max(1, sum(len(b) for b in theirs))


if __name__ == "__main__":
    if sys.argv[1] == "peer":
        print(json.dumps(peer(int(sys.argv[2]), int(sys.argv[3]))))
