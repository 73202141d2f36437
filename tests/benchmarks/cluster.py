"""``make bench ARGS=--cluster``: one collection of 6 shards on 1, 2 and 3 nodes of one
``--cluster`` (issue 16).

For each node count: a fresh topic and fresh nodes on one broker, the collection
created with ``shard_number: 6`` (and the payload index of the workload), then
- ingest: the workload of ``workload.py`` (128-d clustered vectors as ``json.dumps``
  writes them, 3 payload fields, columnar batches of 256) over REST with wait=false
  from 4 keep-alive clients spread over the nodes, timed until every point is applied
  (the merged count reaches the total);
- each node's RSS after ingest and index builds, and its growth since the node started
  (its share of the data): that share should fall roughly as 1/nodes;
- search: nearest top-10 over REST from 4 clients spread over the nodes (every query
  fans out to the shards' holders and is merged), QPS, latency and recall@10.

Writes tests/benchmarks/RESULTS-cluster.md (unless ``--quick``) and ends with one JSON
line. All nodes, the broker and the clients share this machine's cores: more nodes add
no CPU here, so throughput figures show the cost of fanning out, not a scale-out.
"""
import asyncio
import datetime
import json
import os
import platform
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import orjson

from tests.benchmarks import loadgen
from tests.benchmarks.run import bodies, cpu_s, progress, recall, rss_mb, write_results
from tests.benchmarks.workload import BATCH, DIM, INDEXED_FIELD, dumps, percentile, queries, vectors
from tests.support import Broker, Server, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
SHARDS = 6
CLIENTS = 4
NODE_COUNTS = (1, 2, 3)
# Each shard of the 100k run holds ~16.7k points: below the default index threshold
# (20k) it would be scanned exactly, unlike the single-node bench's collection. 10k
# indexes every shard with Annoy, as one node indexes its 100k.
INDEX_THRESHOLD = 10_000


def _share(items: list, weights: list) -> list:
    """``items`` cut into consecutive parts proportional to ``weights``."""
    out, start, total = [], 0, sum(weights)
    for i, w in enumerate(weights):
        end = len(items) if i == len(weights) - 1 else start + len(items) * w // total
        out.append(items[start:end])
        start = end
    return out


async def _spread(nodes: list, reqs: list, on_response=None) -> tuple:
    """The requests over CLIENTS connections, client i to node i mod len(nodes); returns
    (seconds, latencies, responses in request order)."""
    per_node = [sum(1 for c in range(CLIENTS) if c % len(nodes) == i) for i in range(len(nodes))]
    idx = _share(list(range(len(reqs))), per_node)
    t0 = time.perf_counter()
    runs = await asyncio.gather(*(loadgen.run(n.url, [reqs[i] for i in part], clients, on_response)
                                  for n, part, clients in zip(nodes, idx, per_node)))
    seconds = time.perf_counter() - t0
    responses: list = [None] * len(reqs)
    latencies: list = []
    for part, (_s, lat, resp) in zip(idx, runs):
        latencies += lat
        for i, r in zip(part, resp):
            responses[i] = r
    return seconds, latencies, responses


def _cpu(nodes: list) -> float:
    """CPU seconds all the nodes have used (their index builders excluded): on a shared
    machine this moves far less than the wall-clock figures."""
    return sum(cpu_s(n.proc.pid) for n in nodes)


def _count(node: Server) -> int:
    r = httpx.post(f"{node.url}/collections/bench/points/count", json={"exact": True}, timeout=120)
    r.raise_for_status()
    return r.json()["result"]["count"]


def _wait_spread(nodes: list, shards: int, timeout: float = 60.0) -> dict:
    """Until every node holds its even share of the shards (a node that joined the group
    after the collection's topic appeared gets its share at the next rebalance)."""
    deadline = time.monotonic() + timeout
    while True:
        held = {}
        for n in nodes:
            info = httpx.get(f"{n.url}/collections/bench/cluster", timeout=10).json()["result"]
            held[n.url] = sorted(s["shard_id"] for s in info["local_shards"])
        if sorted(s for v in held.values() for s in v) == list(range(shards)) and \
                all(len(v) >= shards // len(nodes) for v in held.values()):
            return held
        if time.monotonic() > deadline:
            raise TimeoutError(f"shards not spread: {held}")
        time.sleep(0.2)


def _wait_indexed(node: Server, total: int, timeout: float) -> float:
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = httpx.get(f"{node.url}/collections/bench", timeout=60).json()["result"]
        if info["status"] == "green" and info.get("indexed_vectors_count", 0) >= total * 0.9:
            return time.perf_counter() - t0
        time.sleep(0.2)
    progress(f"indexes not complete after {timeout}s; measuring anyway")
    return float("nan")


def one_setup(broker: Broker, tmp: str, k: int, data: np.ndarray, qs: np.ndarray, shard_number: int = SHARDS) -> dict:
    topic = f"pointlog.bench.cluster{k}.{shard_number}"
    nodes = [Server(broker.bootstrap, topic, os.path.join(tmp, f"c{k}s{shard_number}n{i}"), free_port(),
                    args=["--cluster", f"bench{k}", "--index-threshold", str(INDEX_THRESHOLD)]) for i in range(k)]
    out: dict = {"nodes": k, "shard_number": shard_number}
    who = f"{k} node(s)" if shard_number > 1 else "1 node, unsharded"
    try:
        progress(f"{who}: starting")
        with ThreadPoolExecutor(k) as pool:
            for f in [pool.submit(n.start, 120.0) for n in nodes]:
                f.result()
        base = [rss_mb(n.proc.pid) for n in nodes]
        r = httpx.put(f"{nodes[0].url}/collections/bench",
                      json={"vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": shard_number}, timeout=60)
        r.raise_for_status()
        httpx.put(f"{nodes[0].url}/collections/bench/index?wait=true", json=INDEXED_FIELD,
                  timeout=60).raise_for_status()
        held = _wait_spread(nodes, shard_number)
        out["shards_per_node"] = [len(v) for v in held.values()]
        progress(f"{who}: shards held {list(held.values())}")

        reqs = [("PUT", "/collections/bench/points?wait=false", body) for body in bodies(data, 0, len(data))]
        done = [0]

        def tick(_i: int) -> None:
            done[0] += 1
            if done[0] % 100 == 0:
                progress(f"{who}: ingest {done[0]}/{len(reqs)} batches")

        progress(f"{who}: ingest of {len(data)} points, {CLIENTS} clients")
        t0 = time.perf_counter()
        cpu0 = _cpu(nodes)
        acked_s, _, _ = asyncio.run(_spread(nodes, reqs, tick))
        while (applied := _count(nodes[-1])) < len(data):
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        out["ingest_cpu_ms_per_1k_points"] = (_cpu(nodes) - cpu0) * 1e6 / len(data)
        out.update(ingest_points_per_s=len(data) / seconds, ingest_acked_points_per_s=len(data) / acked_s,
                   points=applied)
        progress(f"{who}: {out['ingest_points_per_s']:.0f} points/s applied; waiting for the indexes")
        if len(data) / shard_number >= INDEX_THRESHOLD:
            out["index_ready_s"] = _wait_indexed(nodes[0], len(data), 600)
        else:  # shards this small are scanned exactly: no index to wait for
            out["index_ready_s"] = 0.0
        time.sleep(1.0)  # the index processes' files swapped in and loaded
        rss = [rss_mb(n.proc.pid) for n in nodes]
        out["rss_mb"] = rss
        out["rss_growth_mb"] = [after - before for after, before in zip(rss, base)]
        out["points_per_node"] = []
        for n in nodes:
            info = httpx.get(f"{n.url}/collections/bench/cluster", timeout=10).json()["result"]
            out["points_per_node"].append(sum(s["points_count"] for s in info["local_shards"]))

        search = [("POST", "/collections/bench/points/query",
                   dumps({"query": q.astype(np.float64).tolist(), "limit": 10})) for q in qs]
        progress(f"{who}: search, {len(qs)} queries, {CLIENTS} clients")
        asyncio.run(_spread(nodes, search[:50]))  # warm up connections
        cpu0 = _cpu(nodes)
        seconds, lat, responses = asyncio.run(_spread(nodes, search))
        out["search_cpu_us_per_query"] = (_cpu(nodes) - cpu0) * 1e6 / len(qs)
        found = [[p["id"] for p in orjson.loads(r)["result"]["points"]] for r in responses]
        out.update(search_qps=len(qs) / seconds, search_p50_ms=percentile(lat, 50),
                   search_p99_ms=percentile(lat, 99), recall_at_10=recall(data, qs, found))
        progress(f"{who}: {out['search_qps']:.0f} QPS, recall@10 {out['recall_at_10']:.3f}, "
                 f"RSS {', '.join(f'{x:.0f}' for x in rss)} MB")
    finally:
        for n in nodes:
            n.kill()
    return out


def main(args) -> None:
    # Ended from outside (a timeout, Ctrl-C): still stop the nodes and the broker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n = 20_000 if args.quick else 100_000
    n_queries = 300 if args.quick else 2000
    data, qs = vectors(n), queries(n_queries)
    broker = Broker()
    broker.start()
    tmp = tempfile.mkdtemp(prefix="pointlog-bench-cluster-")
    rows = []
    load_before = os.getloadavg()[0]
    try:
        # The baseline: today's unsharded collection on one node, on this machine now.
        rows.append(one_setup(broker, tmp, 1, data, qs, shard_number=1))
        for k in NODE_COUNTS:
            rows.append(one_setup(broker, tmp, k, data, qs))
    finally:
        broker.stop()
    report(rows, n, n_queries, args, (load_before, os.getloadavg()[0]))


def report(rows: list, n: int, n_queries: int, args, load: tuple) -> None:
    def mb(values: list) -> str:
        return " / ".join(f"{v:.0f}" for v in values)

    one = next((r["rss_growth_mb"][0] for r in rows if r["nodes"] == 1 and r["shard_number"] > 1), float("nan"))
    lines = []
    for r in rows:
        growth = r["rss_growth_mb"]
        label = f"{r['nodes']}" if r["shard_number"] > 1 else "1, unsharded"
        lines.append((label, f"{r['ingest_points_per_s']:.0f}", f"{r['search_qps']:.0f}",
                      f"{r['search_p50_ms']:.2f}", f"{r['search_p99_ms']:.2f}", f"{r['recall_at_10']:.3f}",
                      f"{r['ingest_cpu_ms_per_1k_points']:.0f}", f"{r['search_cpu_us_per_query']:.0f}",
                      mb(r["rss_mb"]), mb(growth), f"{max(growth) / one:.2f}" if one else "",
                      " / ".join(str(p) for p in r["points_per_node"])))
    head = ("nodes", "ingest (points/s)", "search QPS", "search p50 (ms)", "search p99 (ms)", "recall@10",
            "CPU per 1k points ingested (ms)", "CPU per query (us)",
            "RSS per node (MB)", "RSS growth per node (MB)", "largest growth / 1 node", "points per node")
    widths = [max(len(h), 12) for h in head[:8]]
    print("  ".join(f"{h:>{w}s}" for h, w in zip(head, widths)) + "  " + "  ".join(head[8:]), flush=True)
    for line in lines:
        print("  ".join(f"{str(x):>{w}s}" for x, w in zip(line, widths)) + "  " + "  ".join(str(x) for x in line[8:]),
              flush=True)
    mode = "quick" if args.quick else "default"
    header = (f"# Cluster benchmark results (issue 16)\n\n{datetime.date.today()} on {platform.node()} "
              f"({os.cpu_count()} cores, Python {platform.python_version()}), mode {mode}: `make bench ARGS=--cluster`. "
              f"One collection with `shard_number: {SHARDS}` on 1, 2 and 3 nodes of one `--cluster` (one Kafka "
              f"broker, every node on this machine), {n} points of the `make bench` workload ({DIM}-d, Cosine, "
              "vectors as `json.dumps` writes them, 3 payload fields, a payload index, columnar batches of "
              f"{BATCH}) ingested over REST with wait=false from {CLIENTS} keep-alive clients spread over the "
              "nodes, timed until the merged count shows every point applied; then "
              f"{n_queries} nearest top-10 queries from {CLIENTS} clients spread over the nodes (each fans out to "
              f"the shards' holders and is merged). Index threshold {INDEX_THRESHOLD}, so every shard is "
              "Annoy-indexed. RSS is measured after ingest and index builds; its growth is since the node "
              "started (the node's share of the data), the figure that should fall as 1/nodes. The first row is "
              "the same workload on today's unsharded collection (`shard_number: 1`) on one node, measured in the "
              "same run as the baseline; the ratio column compares with the 1-node sharded row. CPU columns: "
              "CPU time of all the nodes together (user + system, index builders excluded) per unit of work, "
              "which moves far less than wall-clock figures on a shared machine. Load average of the machine "
              f"(1 min) at the start {load[0]:.1f}, at the end {load[1]:.1f}.\n\n")
    table = "| " + " | ".join(head) + " |\n|" + "---:|" * len(head) + "\n"
    table += "".join("| " + " | ".join(str(x) for x in line) + " |\n" for line in lines)
    if not args.quick:
        write_results(os.path.join(HERE, "RESULTS-cluster.md"), header + table)
    print(json.dumps({"cluster": rows}))
