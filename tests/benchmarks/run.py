"""``make bench``: pointlog beside its peer (qdrant-client local mode) on one workload.

Starts its own broker and server like the tests do, prints each figure with the
peer's and the ratio, writes tests/benchmarks/RESULTS.md, and ends with one JSON
line. ``--quick`` is a reduced run (< 2 minutes); ``--large`` searches 1M points.
``--cluster`` measures a collection of 6 shards on 1, 2 and 3 nodes instead
(tests/benchmarks/cluster.py, tests/benchmarks/RESULTS-cluster.md).
"""
import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np
import orjson

from tests.benchmarks import grpc_load, hybrid, loadgen
from tests.benchmarks.workload import (BATCH, DELETE_FILTER, DIM, INDEXED_FIELD, SEARCH_FILTER, SET_FILTER, batch_body,
                                       dumps, exact_top, isotropic, payload, percentile, queries, search_mask, vectors)
from tests.support import Broker, Server, free_port

HERE = os.path.dirname(os.path.abspath(__file__))


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_results(path: str, text: str) -> None:
    """Replace a results file's figures with ``text``, keeping its hand-written
    ``## Notes`` section."""
    notes = ""
    if os.path.exists(path):
        old = open(path).read()
        notes = old[old.index("## Notes"):] if "## Notes" in old else ""
    with open(path, "w") as f:
        f.write(text + ("\n" + notes if notes else ""))


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used: on a machine
    shared with other work this moves far less than wall-clock figures, so A/B
    comparisons read it beside them."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create(url: str, name: str, index: bool = True) -> None:
    r = httpx.put(f"{url}/collections/{name}", json={"vectors": {"size": DIM, "distance": "Cosine"}}, timeout=30)
    r.raise_for_status()
    if index:  # declared up front, as users of a filtered field do
        httpx.put(f"{url}/collections/{name}/index?wait=true", json=INDEXED_FIELD, timeout=30).raise_for_status()


def bodies(data: np.ndarray, start: int, n: int) -> list:
    """Request bodies encoded before the clock starts: we time the server, not the client."""
    return [batch_body(data, start, list(range(s, min(start + n, s + BATCH)))) for s in range(start, start + n, BATCH)]


async def send_all(url: str, payloads: list, clients: int, wait: bool, label: str) -> float:
    base, name = url.split("/collections/")
    reqs = [("PUT", f"/collections/{name}/points?wait={'true' if wait else 'false'}", body) for body in payloads]

    def tick(i: int) -> None:
        if i % 50 == 49:
            progress(f"{label}: {i + 1}/{len(reqs)} batches")

    seconds, _, _ = await loadgen.run(base, reqs, clients, tick)
    return seconds


def ingest(server: Server, data: np.ndarray, clients: int, wait: bool, name: str) -> float:
    create(server.url, name)
    payloads = bodies(data, 0, len(data))
    t0 = time.perf_counter()
    asyncio.run(send_all(f"{server.url}/collections/{name}", payloads, clients, wait, f"ingest {name}"))
    server.wait_caught_up(timeout=600)  # acknowledged is not enough: count until applied
    return len(data) / (time.perf_counter() - t0)


def ingest_producer(server: Server, data: np.ndarray, name: str) -> float:
    """Operations published straight to Kafka, as a producing service would."""
    from storage import operations as ops
    from streams.producer import Producer

    create(server.url, name)

    async def run():
        producer = Producer(server.bootstrap, server.topic, linger_ms=5)
        await producer.start()
        pending = []
        for s in range(0, len(data), BATCH):
            ids = list(range(s, min(len(data), s + BATCH)))
            op = ops.Upsert([ops.PointStruct(i, {"": data[i]}, payload(i)) for i in ids])
            pending.append(asyncio.ensure_future(producer.publish(ops.Command(name, op))))
        await asyncio.gather(*pending)
        await producer.stop()

    t0 = time.perf_counter()
    asyncio.run(run())
    server.wait_caught_up(timeout=600)
    return len(data) / (time.perf_counter() - t0)


def write_latency(server: Server, data: np.ndarray, name: str, samples: int) -> tuple:
    """Single-point upserts from one keep-alive client, one after the other."""
    def body(pid: int, i: int, with_payload: bool) -> bytes:
        point = {"id": pid, "vector": data[i % len(data)].astype(np.float64).tolist()}
        return dumps({"points": [{**point, "payload": payload(i)} if with_payload else point]})

    lat, vis = [], []
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=30) as http:
        for i in range(samples):
            content = body(10_000_000 + i, i, True)
            t = time.perf_counter()
            http.put(f"{server.url}/collections/{name}/points?wait=true", content=content,
                     headers=headers).raise_for_status()
            lat.append((time.perf_counter() - t) * 1000)
        for i in range(samples // 3):
            pid = 20_000_000 + i
            content = body(pid, i, False)
            t = time.perf_counter()
            http.put(f"{server.url}/collections/{name}/points", content=content, headers=headers).raise_for_status()
            while not http.post(f"{server.url}/collections/{name}/points", json={"ids": [pid]}).json()["result"]:
                pass
            vis.append((time.perf_counter() - t) * 1000)
    return lat, vis


async def search_load(url: str, qs: np.ndarray, clients: int, flt: dict | None, exact: bool = False) -> tuple:
    base, path = url.split("/collections/")
    reqs = [("POST", f"/collections/{path}/points/query",
             dumps({"query": q.astype(np.float64).tolist(), "limit": 10, "filter": flt, "params": {"exact": exact}}))
            for q in qs]
    seconds, lat, responses = await loadgen.run(base, reqs, clients)
    results = [[p["id"] for p in orjson.loads(r)["result"]["points"]] for r in responses]
    return len(qs) / seconds, lat, results


def recall(data: np.ndarray, qs: np.ndarray, results: list, mask=None) -> float:
    hits = sum(len(set(res) & set(int(i) for i in exact_top(data, q, 10, mask))) for q, res in zip(qs, results))
    return hits / (10 * len(qs))


def filter_writes(server: Server, name: str) -> tuple:
    """Writes whose selector is a filter over the whole collection (60% and 10% of it)."""
    url = f"{server.url}/collections/{name}/points"
    t0 = time.perf_counter()
    httpx.post(f"{url}/payload?wait=true", json={"payload": {"label": "sale"}, "filter": SET_FILTER},
               timeout=600).raise_for_status()
    set_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    httpx.post(f"{url}/delete?wait=true", json={"filter": DELETE_FILTER}, timeout=600).raise_for_status()
    return set_s, time.perf_counter() - t0


def wait_indexed(server: Server, name: str, timeout: float) -> float:
    """Let a background index build finish, so search is measured on the index;
    returns the seconds it took."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = httpx.get(f"{server.url}/collections/{name}", timeout=30).json()["result"]
        if info["status"] == "green" and info.get("indexed_vectors_count", 0) >= info["points_count"] * 0.9:
            return time.perf_counter() - t0
        time.sleep(0.2)
    progress(f"index of {name} not complete after {timeout}s; measuring anyway")
    return float("nan")


class Profiler:
    """``--profile DIR``: py-spy samples the server (native frames too) during a phase,
    written as collapsed stacks (DIR/<phase>.txt) and a top-frames summary
    (DIR/<phase>.top.txt)."""

    def __init__(self, out_dir: str | None):
        self.out_dir, self.proc, self.phase = out_dir, None, None

    def start(self, phase: str, pid: int) -> None:
        if not self.out_dir:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        self.phase = phase
        self.proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--pid",
                                      str(pid), "--native", "--subprocesses", "--rate", "200", "--format", "raw",
                                      "--output", os.path.join(self.out_dir, f"{phase}.txt")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the phase starts

    def stop(self) -> None:
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)
        self.proc = None
        from tests.benchmarks.profile_top import summarize
        path = os.path.join(self.out_dir, f"{self.phase}.txt")
        with open(os.path.join(self.out_dir, f"{self.phase}.top.txt"), "w") as f:
            f.write(summarize(path))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--isotropic", action="store_true",
                    help="the adversarial dataset: isotropic noise around cluster centers")
    ap.add_argument("--profile", metavar="DIR", help="py-spy profiles of ingest, wait=true and search into DIR")
    ap.add_argument("--no-peer", action="store_true", help="skip the peer (for A/B runs of pointlog alone)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    ap.add_argument("--cluster", action="store_true",
                    help="6 shards on 1, 2 and 3 nodes of one --cluster: ingest, search, RSS per node")
    args = ap.parse_args()
    if args.cluster:
        from tests.benchmarks import cluster
        cluster.main(args)
        return
    n = 20_000 if args.quick else 100_000
    n_search = 1_000_000 if args.large else n
    n_queries = 300 if args.quick else 2000
    clients = 4
    ours: dict = {}
    prof = Profiler(args.profile)

    broker = Broker()
    broker.start()
    tmp = tempfile.mkdtemp(prefix="pointlog-bench-")
    server = Server(broker.bootstrap, "pointlog.bench", os.path.join(tmp, "node"), free_port())
    try:
        server.start()
        base_rss = rss_mb(server.proc.pid)
        data = (isotropic if args.isotropic else vectors)(n_search)
        progress(f"ingest over REST, wait=false, {clients} clients, batches of {BATCH}")
        prof.start("ingest", server.proc.pid)
        cpu0 = cpu_s(server.proc.pid)
        ours["ingest_points_per_s"] = ingest(server, data, clients, False, "bench")
        ours["ingest_cpu_ms_per_1k_points"] = (cpu_s(server.proc.pid) - cpu0) * 1e6 / len(data)
        prof.stop()
        ours["index_ready_s"] = wait_indexed(server, "bench", 600)
        ours["rss_mb_per_100k"] = (rss_mb(server.proc.pid) - base_rss) * 100_000 / len(data)
        progress("ingest over REST, wait=true")
        ours["ingest_wait_true_points_per_s"] = ingest(server, data[: n // 5], clients, True, "bench_wait")
        progress("ingest through the direct producer")
        ours["producer_points_per_s"] = ingest_producer(server, data[: n // 2], "bench_producer")
        progress("write latency")
        prof.start("wait_true", server.proc.pid)
        cpu0 = cpu_s(server.proc.pid)
        lat, vis = write_latency(server, data, "bench_wait", 100 if args.quick else 400)
        ours["wait_true_cpu_ms_per_write"] = (cpu_s(server.proc.pid) - cpu0) * 1e3 / (len(lat) + len(vis))
        prof.stop()
        ours["wait_true_p50_ms"], ours["wait_true_p99_ms"] = percentile(lat, 50), percentile(lat, 99)
        ours["visibility_p50_ms"] = percentile(vis, 50)

        progress("search")
        wait_indexed(server, "bench", 300)
        qs = queries(n_queries, isotropic_data=args.isotropic)
        url = f"{server.url}/collections/bench"
        asyncio.run(search_load(url, qs[:50], clients, None))  # warm up
        prof.start("search", server.proc.pid)
        cpu0 = cpu_s(server.proc.pid)
        qps, lat, res = asyncio.run(search_load(url, qs, clients, None))
        ours["search_cpu_us_per_query"] = (cpu_s(server.proc.pid) - cpu0) * 1e6 / len(qs)
        prof.stop()
        ours.update(search_qps=qps, search_p50_ms=percentile(lat, 50), search_p99_ms=percentile(lat, 99),
                    recall_at_10=recall(data, qs, res))
        qps, lat, res = asyncio.run(search_load(url, qs[: n_queries // 2], 1, None))
        ours.update(search_1_qps=qps, search_1_p50_ms=percentile(lat, 50), search_1_p99_ms=percentile(lat, 99))
        mask = search_mask(len(data))
        cpu0 = cpu_s(server.proc.pid)
        qps, lat, res = asyncio.run(search_load(url, qs[: n_queries // 2], clients, SEARCH_FILTER))
        ours["filtered_search_cpu_us_per_query"] = (cpu_s(server.proc.pid) - cpu0) * 1e6 / (n_queries // 2)
        ours.update(filtered_search_qps=qps, filtered_search_p99_ms=percentile(lat, 99),
                    filtered_recall_at_10=recall(data, qs[: n_queries // 2], res, mask))

        progress(f"gRPC: search, {clients} clients")
        qps, lat = grpc_load.search(server, "bench", qs, clients)
        ours.update(grpc_search_qps=qps, grpc_search_p50_ms=percentile(lat, 50), grpc_search_p99_ms=percentile(lat, 99))
        progress(f"gRPC: ingest, wait=false, {clients} clients")
        ours["grpc_ingest_points_per_s"] = grpc_load.ingest(server, data[: n // 2], clients, "bench_grpc", create)

        progress("payload update and delete by filter, wait=true")
        ours["set_payload_by_filter_s"], ours["delete_by_filter_s"] = filter_writes(server, "bench")

        progress("replay: pointlog rebuild from offset 0, indexes included")
        points_in_log = len(data) + n // 5 + n // 2 + n // 2
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "api.cli", "rebuild", "--bootstrap", broker.bootstrap,
                        "--topic", server.topic, "--data-dir", os.path.join(tmp, "rebuilt")], check=True)
        ours["replay_points_per_s"] = points_in_log / (time.perf_counter() - t0)

        progress("restart to first answer")
        server.stop()
        t0 = time.perf_counter()
        server.start()
        httpx.post(f"{url}/points/query", json={"query": qs[0].tolist(), "limit": 10}, timeout=120).raise_for_status()
        ours["restart_to_first_answer_s"] = time.perf_counter() - t0

        progress("hybrid: a dense and a sparse prefetch fused with RRF")
        figures, hybrid_answers = hybrid.run(server, n, n_queries // 2, clients)
        ours.update(figures)
    finally:
        if prof.proc:
            prof.proc.kill()
        server.kill()
        broker.stop()

    peer = {}
    if not args.no_peer:
        progress("peer: qdrant-client local mode")
        peer = json.loads(subprocess.run([sys.executable, "-m", "tests.benchmarks.peer", str(n), str(n_queries // 4)],
                                         check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        progress("peer: hybrid queries in local mode")
        n_peer_hybrid = 10
        peer_hybrid = json.loads(subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.hybrid", "peer", str(n), str(n_peer_hybrid)],
            check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        ours["hybrid_agreement"] = hybrid.agreement(hybrid_answers[:n_peer_hybrid],
                                                    peer_hybrid.pop("peer_hybrid_answers"))
        peer.update(peer_hybrid)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(ours, f, indent=1)
    report(ours, peer, n, n_search, args)


LINES = [  # (label, our key, peer key, higher is better)
    ("ingest REST wait=false (points/s)", "ingest_points_per_s", "peer_ingest_points_per_s", True),
    ("ingest REST wait=true (points/s)", "ingest_wait_true_points_per_s", "peer_ingest_points_per_s", True),
    ("ingest direct producer (points/s)", "producer_points_per_s", "peer_ingest_points_per_s", True),
    ("wait=true single point p50 (ms)", "wait_true_p50_ms", "peer_wait_true_p50_ms", False),
    ("wait=true single point p99 (ms)", "wait_true_p99_ms", "peer_wait_true_p99_ms", False),
    ("wait=false visibility p50 (ms)", "visibility_p50_ms", None, False),
    ("ingest gRPC wait=false (points/s)", "grpc_ingest_points_per_s", "peer_ingest_points_per_s", True),
    ("search QPS, 4 clients", "search_qps", "peer_search_qps", True),
    ("search QPS, 1 client", "search_1_qps", "peer_search_qps", True),
    ("search p50, 1 client (ms)", "search_1_p50_ms", "peer_search_p50_ms", False),
    ("search p99, 1 client (ms)", "search_1_p99_ms", "peer_search_p99_ms", False),
    ("search QPS over gRPC", "grpc_search_qps", "peer_search_qps", True),
    ("search p50 over gRPC (ms)", "grpc_search_p50_ms", "peer_search_p50_ms", False),
    ("search p99 over gRPC (ms)", "grpc_search_p99_ms", "peer_search_p99_ms", False),
    ("search p50, 4 clients (ms)", "search_p50_ms", None, False),
    ("search p99, 4 clients (ms)", "search_p99_ms", None, False),
    ("search recall@10", "recall_at_10", "peer_recall_at_10", True),
    ("filtered search (10% match), 4 clients (QPS)", "filtered_search_qps", "peer_filtered_search_qps", True),
    ("filtered search p99 (ms)", "filtered_search_p99_ms", None, False),
    ("filtered search recall@10", "filtered_recall_at_10", None, True),
    ("set_payload by filter, 60% of points (s)", "set_payload_by_filter_s", "peer_set_payload_by_filter_s", False),
    ("delete by filter, 10% of points (s)", "delete_by_filter_s", "peer_delete_by_filter_s", False),
    ("replay (points/s)", "replay_points_per_s", "peer_replay_points_per_s", True),
    ("index ready after ingest (s)", "index_ready_s", None, False),
    ("restart to first answer (s)", "restart_to_first_answer_s", None, False),
    ("server CPU per 1k points ingested (ms)", "ingest_cpu_ms_per_1k_points", None, False),
    ("server CPU per wait=true write (ms)", "wait_true_cpu_ms_per_write", None, False),
    ("server CPU per search (us)", "search_cpu_us_per_query", None, False),
    ("server CPU per filtered search (us)", "filtered_search_cpu_us_per_query", None, False),
    ("RSS per 100k points (MB)", "rss_mb_per_100k", "peer_rss_mb_per_100k", False),
    ("hybrid ingest, dense + sparse (points/s)", "hybrid_ingest_points_per_s", "peer_hybrid_ingest_points_per_s", True),
    ("hybrid query QPS (dense+sparse, RRF)", "hybrid_qps", "peer_hybrid_qps", True),
    ("hybrid query p50 (ms)", "hybrid_p50_ms", None, False),
    ("hybrid query p99 (ms)", "hybrid_p99_ms", "peer_hybrid_p99_ms", False),
    ("hybrid top-10 agreement with local mode", "hybrid_agreement", None, True),
]


def report(ours: dict, peer: dict, n: int, n_search: int, args) -> None:
    rows = []
    for label, key, peer_key, higher in LINES:
        a, b = ours.get(key), peer.get(peer_key) if peer_key else None
        ratio = (a / b if higher else b / a) if a and b else None
        rows.append((label, a, b, ratio))
        print(f"{label:38s} pointlog {a if a is not None else float('nan'):>12.2f}   peer {b if b is not None else float('nan'):>12.2f}   "
              f"ratio {ratio if ratio else float('nan'):6.2f}x", flush=True)
    mode = "quick" if args.quick else ("large" if args.large else "default")
    mode += ", isotropic data" if args.isotropic else ""
    header = (f"# Benchmark results\n\n{datetime.date.today()} on {platform.node()} "
              f"({os.cpu_count()} cores, Python {platform.python_version()}), mode {mode}: "
              f"{n_search} points ingested and searched ({n // 5 + n // 2} more for the wait=true and producer lines), peer at {n} points, {DIM}-d, Cosine, "
              "vectors as `json.dumps` writes them (full-precision floats), 3 payload fields (int, float, short string), "
              "a payload index on the filtered int field, columnar batches of 256, 4 keep-alive clients.\n"
              "Peer: qdrant-client local mode (on-disk for ingest/latency/replay, in-memory for search).\n"
              "Ratio > 1 means pointlog is ahead.\n\n"
              "| line | pointlog | peer | ratio |\n|---|---:|---:|---:|\n")
    table = "".join(f"| {label} | {'' if a is None else f'{a:.2f}'} | {'' if b is None else f'{b:.2f}'} | "
                    f"{'' if r is None else f'{r:.2f}x'} |\n" for label, a, b, r in rows)
    if not args.quick and not args.isotropic:
        write_results(os.path.join(HERE, "RESULTS-large.md" if args.large else "RESULTS.md"), header + table)
    print(json.dumps({**ours, **peer}))


if __name__ == "__main__":
    main()
