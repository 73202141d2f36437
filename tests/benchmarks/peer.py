"""The peer a user would pick instead: qdrant-client's local mode, measured on the
same workload. Run as a subprocess so its memory is measured on its own:
``python -m tests.benchmarks.peer N_POINTS N_QUERIES`` prints one JSON object."""
import json
import sys
import tempfile
import time

from qdrant_client import QdrantClient, models

from tests.benchmarks.workload import (BATCH, DELETE_FILTER, DIM, INDEXED_FIELD, SEARCH_FILTER, SET_FILTER, exact_top,
                                       payload, percentile, queries, vectors)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def progress(msg: str) -> None:
    print(f"[peer] {msg}", file=sys.stderr, flush=True)


def main(n: int, n_queries: int) -> dict:
    data = vectors(n)
    out = {}
    params = models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    base_rss = rss_mb()

    # Ingest on disk: local mode persists each upsert to its sqlite file.
    path = tempfile.mkdtemp(prefix="peer-")
    disk = QdrantClient(path=path)
    disk.create_collection("bench", vectors_config=params)
    disk.create_payload_index("bench", INDEXED_FIELD["field_name"], INDEXED_FIELD["field_schema"])
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        ids = list(range(start, min(n, start + BATCH)))
        disk.upsert("bench", points=models.Batch(ids=ids, vectors=data[start:start + len(ids)].tolist(),
                                                   payloads=[payload(i) for i in ids]))
        if start % (BATCH * 40) == 0:
            progress(f"ingest {start}/{n}")
    out["peer_ingest_points_per_s"] = n / (time.perf_counter() - t0)

    lat = []
    for i in range(200):
        t = time.perf_counter()
        disk.upsert("bench", points=[models.PointStruct(id=n + i, vector=data[i].tolist(), payload=payload(i))])
        lat.append((time.perf_counter() - t) * 1000)
    out["peer_wait_true_p50_ms"] = percentile(lat, 50)
    out["peer_wait_true_p99_ms"] = percentile(lat, 99)
    disk.close()

    # "Replay": reopening the on-disk collection loads every point again.
    t0 = time.perf_counter()
    disk = QdrantClient(path=path)
    disk.count("bench")
    out["peer_replay_points_per_s"] = n / (time.perf_counter() - t0)
    disk.close()

    # Search in memory (local mode is exact: recall 1.0).
    mem = QdrantClient(":memory:")
    mem.create_collection("bench", vectors_config=params)
    for start in range(0, n, 4096):
        ids = list(range(start, min(n, start + 4096)))
        mem.upsert("bench", points=models.Batch(ids=ids, vectors=data[start:start + len(ids)].tolist(),
                                                  payloads=[payload(i) for i in ids]))
    out["peer_rss_mb_per_100k"] = (rss_mb() - base_rss) * 100_000 / n
    qs = queries(n_queries)
    lat, hits = [], 0
    t0 = time.perf_counter()
    for q in qs:
        t = time.perf_counter()
        res = mem.query_points("bench", query=q.tolist(), limit=10).points
        lat.append((time.perf_counter() - t) * 1000)
        hits += len({p.id for p in res} & set(exact_top(data, q, 10)))
    out["peer_search_qps"] = len(qs) / (time.perf_counter() - t0)
    out["peer_search_p50_ms"] = percentile(lat, 50)
    out["peer_search_p99_ms"] = percentile(lat, 99)
    out["peer_recall_at_10"] = hits / (10 * len(qs))
    flt = models.Filter.model_validate(SEARCH_FILTER)
    t0 = time.perf_counter()
    for q in qs[: max(1, len(qs) // 2)]:
        mem.query_points("bench", query=q.tolist(), limit=10, query_filter=flt)
    out["peer_filtered_search_qps"] = max(1, len(qs) // 2) / (time.perf_counter() - t0)

    # Filter-selected writes on the durable (on-disk) collection.
    disk = QdrantClient(path=path)
    t0 = time.perf_counter()
    disk.set_payload("bench", {"label": "sale"}, points=models.Filter.model_validate(SET_FILTER))
    out["peer_set_payload_by_filter_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    disk.delete("bench", points_selector=models.FilterSelector(filter=models.Filter.model_validate(DELETE_FILTER)))
    out["peer_delete_by_filter_s"] = time.perf_counter() - t0
    disk.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
