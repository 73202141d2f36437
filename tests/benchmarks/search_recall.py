"""Search recall and speed on clustered vectors: Annoy + exact delta vs the exact scan.

    python -m tests.benchmarks.search_recall            # 100k x 128, in process and over HTTP
    python -m tests.benchmarks.search_recall --no-http  # in process only

In process (real apply into a real state, real spawned builder): build time,
recall@10 of the default search against the exact search, queries/s of both, an
``hnsw_ef`` sweep, filtered recall, recall with an unindexed delta, and a restart
(state reopen + index load, no rebuild). Over HTTP (own Kafka broker and
``pointlog serve``, default settings): upload, background index build, recall and
queries/s through the API, then a SIGKILL restart timed to the first answer.
Not collected by pytest; prints figures, progress on stderr.
"""
import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import orjson

from api.rest.bodies import parse
from storage import operations as ops
from storage.apply import apply
from storage.state import State
from storage.vectors.search import EF_SCALE, SearchRequest, search
from streams.indexer import IndexManager
from streams.settings import Settings

PARAMS = Settings().index  # what `pointlog serve` would use (POINTLOG_INDEX_* apply)

K = 10


def progress(msg: str) -> None:
    print(f"[search_recall] {msg}", file=sys.stderr, flush=True)


def figure(name: str, value) -> None:
    print(f"{name:<48} {value}", flush=True)


def clustered(rng, n: int, dim: int, centers: np.ndarray, spread: float) -> np.ndarray:
    labels = rng.integers(0, len(centers), n)
    return (centers[labels] + spread * rng.standard_normal((n, dim))).astype(np.float32)


def recall(found: list, truth: list) -> float:
    return float(np.mean([len(set(f[:K]) & set(t[:K])) / K for f, t in zip(found, truth)]))


def run_queries(col, queries: np.ndarray, **extra) -> tuple:
    """(ids per query, queries per second) through storage.vectors.search."""
    out = []
    started = time.perf_counter()
    for q in queries:
        body = {"query": q.tolist(), "limit": K, **extra}
        out.append([p["id"] for p in search(col, SearchRequest.from_query(body), PARAMS)])
    return out, len(queries) / (time.perf_counter() - started)


# ---- in process ---------------------------------------------------------------------

def commit_apply(state: State, command: ops.Command, offset: int) -> None:
    txn = state.transaction("bench")
    apply(state, command, offset)
    txn.set_offset(0, offset)
    txn.commit()


def load_state(path: str, data: np.ndarray, distance: str, batch: int = 1000) -> tuple:
    state = State(path)
    commit_apply(state, ops.Command("bench", parse(ops.CreateCollection, 
        {"vectors": {"size": data.shape[1], "distance": distance}})), 0)
    offset = 1
    started = time.perf_counter()
    for start in range(0, len(data), batch):
        points = [{"id": i, "vector": data[i].astype("<f4").tobytes(), "payload": {"g": i % 10}}
                  for i in range(start, min(start + batch, len(data)))]
        commit_apply(state, ops.Command("bench", parse(ops.Upsert, {"points": points})), offset)
        offset += 1
        if (start // batch) % 20 == 0:
            progress(f"applied {start + len(points)}/{len(data)}")
    return state, offset, time.perf_counter() - started


async def rebuild_watching_the_loop(manager: IndexManager, col) -> float:
    """Rebuild while a task measures how late its 5 ms sleeps wake up: what a
    request waiting on the loop would feel."""
    stalls, building = [0.0], True

    async def watch():
        while building:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            stalls.append(time.perf_counter() - t - 0.005)

    watcher = asyncio.create_task(watch())
    await manager.rebuild(col, "")
    building = False
    await watcher
    return max(stalls)


def in_process(args, data: np.ndarray, queries: np.ndarray, tmp: str) -> None:
    progress("loading the state through apply")
    state, offset, took = load_state(os.path.join(tmp, "state"), data, args.distance)
    figure("in-process: apply of all points (s)", f"{took:.1f}")
    col = state.collections["bench"]
    manager = IndexManager(os.path.join(tmp, "indexes"), state, PARAMS)
    progress(f"building the index ({PARAMS.trees} trees) in the spawned builder")
    asyncio.run(manager.rebuild(col, ""))
    b = manager.last_build
    figure("build: snapshot rows + keys to files (s)", f"{b['snapshot_s']:.2f}")
    figure("build: add_item / build / save in builder (s)", f"{b['add_s']:.2f} / {b['build_s']:.2f} / {b['save_s']:.2f}")
    figure("build: total incl. process start and swap (s)", f"{b['total_s']:.2f}")

    progress("rebuilding again while timing the event loop")
    stall = asyncio.run(rebuild_watching_the_loop(manager, col))
    figure("rebuild: longest event-loop stall (ms)", f"{stall * 1000:.1f}")

    progress("exact ground truth")
    truth, exact_qps = run_queries(col, queries, params={"exact": True})
    figure("exact search, queries/s (1 thread)", f"{exact_qps:.0f}")
    found, qps = run_queries(col, queries)
    ef = PARAMS.ef * EF_SCALE.get(args.distance, 1)
    figure(f"default search (ef={ef}): recall@{K}", f"{recall(found, truth):.4f}")
    figure(f"default search (ef={ef}): queries/s (1 thread)", f"{qps:.0f}")
    for ef in (16, 32, 128, 256):
        found, qps = run_queries(col, queries, params={"hnsw_ef": ef})
        figure(f"  hnsw_ef={ef}: recall@{K} / queries/s", f"{recall(found, truth):.4f} / {qps:.0f}")

    flt = {"must": [{"key": "g", "match": {"value": 3}}]}
    ftruth, fexact_qps = run_queries(col, queries[:200], filter=flt, params={"exact": True})
    found, fqps = run_queries(col, queries[:200], filter=flt)
    figure("filtered 10% (g == 3): recall@10 / queries/s", f"{recall(found, ftruth):.4f} / {fqps:.0f} "
           f"(exact {fexact_qps:.0f}/s)")

    progress("adding an unindexed delta of 5% of the points")
    rng = np.random.default_rng(99)
    extra = (data[rng.integers(0, len(data), len(data) // 20)]
             + 0.1 * rng.standard_normal((len(data) // 20, data.shape[1]))).astype(np.float32)
    base = len(data)
    for start in range(0, len(extra), 1000):
        points = [{"id": base + i, "vector": extra[i].astype("<f4").tobytes()}
                  for i in range(start, min(start + 1000, len(extra)))]
        commit_apply(state, ops.Command("bench", parse(ops.Upsert, {"points": points})), offset)
        offset += 1
    truth, _ = run_queries(col, queries, params={"exact": True})
    found, qps = run_queries(col, queries)
    figure(f"with a {len(extra)}-point delta: recall@{K} / queries/s", f"{recall(found, truth):.4f} / {qps:.0f}")

    progress("restart in process: reopen the state, load the index")
    manager.close()
    state.close()
    started = time.perf_counter()
    state = State(os.path.join(tmp, "state"))
    opened = time.perf_counter()
    again = IndexManager(os.path.join(tmp, "indexes"), state, PARAMS)
    loaded = again.load()
    ready = time.perf_counter()
    col = state.collections["bench"]
    first = run_queries(col, queries[:1])[0]
    answered = time.perf_counter()
    figure("restart: state reopen (s)", f"{opened - started:.2f}")
    figure("restart: index load, mmap + delta from versions (s)", f"{ready - opened:.3f} ({loaded} loaded, "
           f"{again.builds} built)")
    figure("restart: first answer after start (s)", f"{answered - started:.2f}")
    assert first[0][:1] == truth[0][:1]
    state.close()


# ---- over HTTP ----------------------------------------------------------------------

def over_http(args, data: np.ndarray, queries: np.ndarray, tmp: str) -> None:
    from tests.support import Broker, Server, free_port
    progress("starting a Kafka broker")
    broker = Broker()
    broker.start()
    server = None
    try:
        server = Server(broker.bootstrap, "bench.search", os.path.join(tmp, "node"), free_port())
        server.start()
        url = server.url + "/collections/bench"
        http = httpx.Client(timeout=120)
        http.put(url, json={"vectors": {"size": data.shape[1], "distance": args.distance}}).raise_for_status()
        started = time.perf_counter()
        for start in range(0, len(data), 1000):
            ids = list(range(start, min(start + 1000, len(data))))
            body = orjson.dumps({"batch": {"ids": ids, "vectors": data[start:start + 1000]}},
                                option=orjson.OPT_SERIALIZE_NUMPY)
            r = http.put(url + "/points?wait=true", content=body, headers={"content-type": "application/json"})
            r.raise_for_status()
            if (start // 1000) % 20 == 0:
                progress(f"uploaded {start + len(ids)}/{len(data)}")
        uploaded = time.perf_counter()
        figure("http: upload, wait=true batches of 1000 (s)", f"{uploaded - started:.1f}")
        while True:
            info = http.get(url).json()["result"]
            if info["indexed_vectors_count"] == len(data) and info["status"] == "green":
                break
            time.sleep(0.2)
        figure("http: index ready after the last upload (s)", f"{time.perf_counter() - uploaded:.1f}")

        def ask(q, **extra):
            body = orjson.dumps({"query": q, "limit": K, **extra}, option=orjson.OPT_SERIALIZE_NUMPY)
            r = http.post(url + "/points/query", content=body, headers={"content-type": "application/json"})
            return [p["id"] for p in r.json()["result"]["points"]]

        truth = [ask(q, params={"exact": True}) for q in queries[:300]]
        t = time.perf_counter()
        found = [ask(q) for q in queries[:300]]
        qps = 300 / (time.perf_counter() - t)
        figure(f"http: default search recall@{K}", f"{recall(found, truth):.4f}")
        figure("http: default search queries/s (1 client)", f"{qps:.0f}")

        def worker(chunk):
            with httpx.Client(timeout=60) as c:
                for q in chunk:
                    body = orjson.dumps({"query": q, "limit": K}, option=orjson.OPT_SERIALIZE_NUMPY)
                    c.post(url + "/points/query", content=body, headers={"content-type": "application/json"})
        t = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(worker, np.array_split(queries[:400], 4)))
        figure("http: default search queries/s (4 clients)", f"{400 / (time.perf_counter() - t):.0f}")

        index_dir = os.path.join(server.data_dir, "indexes")
        before = sorted(f for _, _, fs in os.walk(index_dir) for f in fs)
        for how, stop in (("SIGTERM", server.stop), ("SIGKILL", server.kill)):
            progress(f"{how} and restart")
            stop()
            t = time.perf_counter()
            server.start(timeout=300)
            up = time.perf_counter()
            first = ask(queries[0])
            answered = time.perf_counter()
            info = http.get(url).json()["result"]
            figure(f"http restart after {how}: start to first answer (s)", f"{answered - t:.2f} "
                   f"(HTTP up after {up - t:.2f}; it opens once Kafka assigns the partition)")
            figure(f"http restart after {how}: indexed count / status",
                   f"{info['indexed_vectors_count']} / {info['status']}")
            assert first == truth[0]
        time.sleep(2)
        after = sorted(f for _, _, fs in os.walk(index_dir) for f in fs)
        figure("http restarts: index files unchanged (no rebuild)", str(before == after))
    finally:
        if server is not None:
            server.kill()
        broker.stop()
        shutil.rmtree(broker.dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--spread", type=float, default=1.0, help="noise around each center (centers ~ N(0, 1))")
    parser.add_argument("--distance", default="Cosine", choices=["Cosine", "Dot", "Euclid", "Manhattan"])
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-local", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(2024)
    centers = rng.standard_normal((args.clusters, args.dim)).astype(np.float32)
    data = clustered(rng, args.n, args.dim, centers, args.spread)
    queries = clustered(rng, args.queries, args.dim, centers, args.spread)
    figure("dataset", f"{args.n} x {args.dim} {args.distance}, {args.clusters} clusters, spread {args.spread}; "
           f"{args.queries} queries; trees {PARAMS.trees}, ef {PARAMS.ef}")
    tmp = tempfile.mkdtemp(prefix="pointlog-search-bench-")
    try:
        if not args.no_local:
            in_process(args, data, queries, tmp)
        if not args.no_http:
            over_http(args, data, queries, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
