"""The log as the source of truth, against real brokers and real server processes:
SIGKILLs and broker restarts lose nothing acknowledged, poison records end in the DLQ,
replicas agree, rebuild / restore / checkpoint / produce work from the command line."""
import asyncio
import os
import random
import re
import subprocess
import sys
import threading
import time

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support import Server, end_offsets, free_port, metric

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- helpers ----------------------------------------------------------------------------

def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"pointlog {' '.join(args)} exited {out.returncode}: {out.stderr}")
    return out


def put(node: Server, path: str, body, wait: bool = True, http=httpx) -> dict:
    r = http.put(f"{node.url}{path}?wait={'true' if wait else 'false'}", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def post(node: Server, path: str, body, wait: bool = True) -> dict:
    r = httpx.post(f"{node.url}{path}?wait={'true' if wait else 'false'}", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def create(node: Server, name: str, size: int = 4, distance: str = "Dot") -> None:
    put(node, f"/collections/{name}", {"vectors": {"size": size, "distance": distance}})


def scroll(node: Server, name: str, **body) -> list:
    r = httpx.post(f"{node.url}/collections/{name}/points/scroll",
                   json={"limit": 1_000_000, "with_vector": True, **body}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["result"]["points"]


def rebuild_digest(broker_bootstrap: str, topic: str, data_dir: str) -> tuple:
    """``pointlog rebuild`` into a fresh dir and its ``pointlog digest``; plus the rebuild's report."""
    out = cli("rebuild", "--bootstrap", broker_bootstrap, "--topic", topic, "--data-dir", data_dir)
    return cli("digest", "--data-dir", data_dir).stdout, out.stderr


def raw_produce(bootstrap: str, topic: str, records: list) -> list:
    """Write (key, value, headers) records straight to the topic; returns their offsets."""
    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            return [(await (await producer.send(topic, key=k, value=v, headers=h))).offset for k, v, h in records]
        finally:
            await producer.stop()
    return asyncio.run(run())


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list:
    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            out, deadline = [], time.monotonic() + timeout
            while len(out) < count and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(messages)
            return out
        finally:
            await consumer.stop()
    return asyncio.run(run())


class Ingest:
    """Writers hammering a node with upserts (unique ids) and payload updates; records
    what the server acknowledged (HTTP 200) and every other outcome."""

    def __init__(self, node: Server, collection: str, writers: int = 2, dim: int = 8):
        self.node, self.collection, self.dim = node, collection, dim
        self.acked: dict = {}  # id -> payload
        self.touched: set = set()  # (writer, n) whose points an acknowledged set_payload marked
        self.outcomes: dict = {}  # status or exception name -> count
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(writers)]

    def __enter__(self) -> "Ingest":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _count(self, outcome) -> None:
        with self._lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def _run(self, writer: int) -> None:
        n = 0
        url = f"{self.node.url}/collections/{self.collection}/points"
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                ids = [writer * 10**9 + n * 20 + j for j in range(20)]
                wait = "true" if n % 3 == 0 else "false"
                body = {"points": [{"id": i, "vector": [float((i + k) % 97) for k in range(self.dim)],
                                    "payload": {"w": writer, "n": n}} for i in ids]}
                try:
                    if n % 5 == 4:  # payload updates in the mix, for the digest
                        r = http.post(f"{url}/payload?wait={wait}",
                                      json={"payload": {"touched": n}, "filter": {"must": [
                                          {"key": "n", "match": {"value": n - 1}}]}})
                        ids = []
                        if r.status_code == 200:
                            with self._lock:
                                self.touched.add((writer, n - 1))
                    else:
                        r = http.put(f"{url}?wait={wait}", json=body)
                except httpx.HTTPError as exc:
                    self._count(type(exc).__name__)
                    time.sleep(0.05)
                    continue
                self._count(r.status_code)
                if r.status_code != 200:
                    time.sleep(0.05)  # refused (503): do not spin while Kafka is away
                    continue
                with self._lock:
                    self.acked.update({i: {"w": writer, "n": n} for i in ids})
                n += 1


# ---- (a) crash safety -------------------------------------------------------------------

def test_sigkill_during_concurrent_ingest_loses_nothing(servers, topic, broker, tmp_path):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    node = servers(topic)
    create(node, "crash", size=8, distance="Euclid")
    began = time.monotonic()
    restarts = []
    with Ingest(node, "crash") as ingest:
        for _ in range(10):
            time.sleep(rng.uniform(0.2, 1.5))
            node.kill()
            t = time.monotonic()
            node.start()
            restarts.append(time.monotonic() - t)
        time.sleep(0.5)
    # A barrier: once this wait=true write completes, everything before it is applied.
    put(node, "/collections/crash/points", {"points": [{"id": 10**15, "vector": [0.0] * 8}]})
    present = {p["id"]: p["payload"] for p in scroll(node, "crash", with_vector=False)}
    missing = [i for i in ingest.acked if i not in present]
    assert not missing, f"seed {seed}: {len(missing)} acknowledged points lost, e.g. {missing[:5]}"
    assert all(present[i]["n"] == p["n"] for i, p in ingest.acked.items())
    for i, p in ingest.acked.items():
        if (p["w"], p["n"]) in ingest.touched:
            assert present[i].get("touched") == p["n"] + 1, (seed, i, present[i])
    assert len(ingest.acked) > 1000 and ingest.outcomes.get(500, 0) == 0, ingest.outcomes
    node.stop()
    clean, _ = rebuild_digest(broker.bootstrap, topic, str(tmp_path / "clean"))
    assert node.digest() == clean
    print(f"\ncrash test: 10 SIGKILLs, {len(ingest.acked)} points acknowledged, outcomes {ingest.outcomes}, "
          f"restart {min(restarts):.2f}-{max(restarts):.2f}s (mean {sum(restarts) / len(restarts):.2f}s), "
          f"total {time.monotonic() - began:.1f}s, seed {seed}")


# ---- (b) broker restart -----------------------------------------------------------------


def test_broker_restart_loses_nothing_acknowledged_and_answers_503(own_broker, topic, tmp_path):
    node = Server(own_broker.bootstrap, topic, str(tmp_path / "node"), free_port())
    node.start()
    try:
        create(node, "outage", size=8)
        with Ingest(node, "outage", writers=2) as ingest:
            time.sleep(1.0)
            own_broker.stop()
            # During the outage a write is refused, clearly, and nothing is acknowledged.
            t = time.monotonic()
            r = httpx.put(f"{node.url}/collections/outage/points?wait=true", timeout=30,
                          json={"points": [{"id": 10**15 + 7, "vector": [1.0] * 8}]})
            refused_after = time.monotonic() - t
            assert r.status_code == 503, r.text
            assert "Kafka" in r.json()["status"]["error"]
            time.sleep(1.0)
            own_broker.start()
            deadline = time.monotonic() + 30
            acked_before = len(ingest.acked)
            while len(ingest.acked) <= acked_before and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)
        assert len(ingest.acked) > acked_before, f"writes did not resume: {ingest.outcomes}"
        assert ingest.outcomes.get(503, 0) > 0 and ingest.outcomes.get(500, 0) == 0, ingest.outcomes
        put(node, "/collections/outage/points", {"points": [{"id": 10**15, "vector": [0.0] * 8}]})
        present = {p["id"] for p in scroll(node, "outage", with_vector=False)}
        assert set(ingest.acked) <= present
        print(f"\nbroker restart: first refusal after {refused_after:.2f}s, outcomes {ingest.outcomes}")
        node.stop()
        clean, _ = rebuild_digest(own_broker.bootstrap, topic, str(tmp_path / "clean"))
        assert node.digest() == clean
    finally:
        node.kill()


# ---- (c) dead letters -------------------------------------------------------------------

def test_poison_records_end_in_the_dlq_and_the_log_goes_on(server, broker):
    create(server, "p", size=2)
    json_ct = [("content-type", b"application/json")]
    poison = [
        (b"p", b"\x93\x00\xc1 garbage", [("content-type", b"application/msgpack")], "undecodable"),
        (b"p", orjson.dumps({"op": "upsert", "pionts": [{"id": 1}]}), json_ct, "expected `points` or `batch`"),
        (b"p", orjson.dumps({"op": "teleport", "points": [1]}), json_ct, "unknown operation kind"),
        (b"p", orjson.dumps({"op": "upsert", "points": [{"id": 1, "vector": [1, 2, 3]}]}), [],
         "Vector dimension error: expected dim: 2, got 3"),
        (None, orjson.dumps({"op": "delete_collection"}), json_ct, "no key"),
    ]
    offsets = raw_produce(broker.bootstrap, server.topic, [(k, v, h) for k, v, h, _ in poison])
    # A hand-written JSON record without headers is a valid operation.
    raw_produce(broker.bootstrap, server.topic,
                [(b"p", orjson.dumps({"op": "upsert", "points": [{"id": 5, "vector": [0.5, 2]}]}), [])])
    assert put(server, "/collections/p/points", {"points": [{"id": 6, "vector": [1, 1]}]})["status"] == "completed"
    assert sorted(p["id"] for p in scroll(server, "p")) == [5, 6]
    assert metric(server, "pointlog_dead_letters_total") == len(poison)

    dead = read_topic(broker.bootstrap, server.topic + ".dlq", len(poison))
    assert len(dead) == len(poison)
    for record, (key, value, _, reason), offset in zip(dead, poison, offsets):
        headers = dict(record.headers)
        assert record.key in (key, b"") and record.value == value
        assert headers["pointlog-source-offset"] == str(offset).encode()
        assert headers["pointlog-source-partition"] == b"0"
        assert reason in headers["pointlog-dlq-reason"].decode(), headers


def test_offsets_without_records_are_read_past_not_stalled_on(server, broker):
    """A transactional producer's commit markers take offsets that hold no record: the
    node sees a gap, reads it from the broker, finds nothing there and goes on."""
    create(server, "tx", size=2)

    async def transactional():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"tx-{server.topic}")
        await producer.start()
        try:
            for i in range(3):
                async with producer.transaction():
                    await producer.send(server.topic, key=b"tx", value=orjson.dumps(
                        {"op": "upsert", "points": [{"id": i, "vector": [1, i]}]}))
        finally:
            await producer.stop()

    asyncio.run(transactional())
    assert put(server, "/collections/tx/points", {"points": [{"id": 9, "vector": [1, 1]}]})["status"] == "completed"
    assert sorted(p["id"] for p in scroll(server, "tx")) == [0, 1, 2, 9]
    assert "expected offset" in server.tail_log()


# ---- (d) replicas -----------------------------------------------------------------------

def test_two_nodes_on_one_topic_end_with_equal_digests(servers, topic):
    a, b = servers(topic), servers(topic)
    for node, name in ((a, "left"), (b, "right")):
        create(node, name, size=3, distance="Cosine")
    for i in range(40):
        node = (a, b)[i % 2]
        put(node, f"/collections/{('left', 'right')[i % 3 % 2]}/points",
            {"points": [{"id": i, "vector": [1.0, i, 2.0], "payload": {"i": i}}]}, wait=bool(i % 4 == 0))
    post(a, "/collections/left/points/delete", {"filter": {"must": [{"key": "i", "range": {"lt": 10}}]}})
    post(b, "/collections/right/points/payload", {"payload": {"x": 1}, "points": [1, 4, 7]})
    a.wait_caught_up()
    b.wait_caught_up()
    a.stop()
    b.stop()
    digest = a.digest()
    assert digest == b.digest()
    assert "left\t" in digest and "right\t" in digest


# ---- (e) restore --------------------------------------------------------------------------

def test_restore_brings_back_points_deleted_by_filter(server, broker):
    create(server, "docs", size=4)
    points = [{"id": i, "vector": [float(i), 1.0, -2.0, 0.5], "payload": {"color": ("red", "blue")[i % 2], "i": i}}
              for i in range(300)]
    for start in range(0, 300, 100):
        put(server, "/collections/docs/points", {"points": points[start:start + 100]})
    put(server, "/collections/docs/points/vectors", {"points": [{"id": 0, "vector": [9.0, 9.0, 9.0, 9.0]}]})
    points[0]["vector"] = [9.0, 9.0, 9.0, 9.0]
    time.sleep(0.05)
    now = time.time()  # one reading: seconds and milliseconds of two readings can straddle a second
    before_mistake = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
    time.sleep(0.05)
    mistake = post(server, "/collections/docs/points/delete",
                   {"filter": {"must": [{"key": "color", "match": {"value": "red"}}]}})["operation_id"]
    put(server, "/collections/docs/points", {"points": [{"id": 1000, "vector": [1, 1, 1, 1]}]})
    assert len(scroll(server, "docs")) == 151

    out = cli("restore", "--bootstrap", broker.bootstrap, "--topic", server.topic, "docs", "--as", "docs_back",
              "--until-offset", str(mistake))
    assert "restored 300 points" in out.stderr, out.stderr
    cli("restore", "--bootstrap", broker.bootstrap, "--topic", server.topic, "docs", "--as", "docs_then",
        "--until-time", before_mistake)
    server.wait_caught_up()
    expected = [{"id": p["id"], "payload": p["payload"], "vector": p["vector"]} for p in points]
    for name in ("docs_back", "docs_then"):
        assert httpx.get(f"{server.url}/collections/{name}").json()["result"]["config"]["params"]["vectors"] == \
            {"size": 4, "distance": "Dot"}
        assert scroll(server, name) == expected, name
    assert len(scroll(server, "docs")) == 151  # the original is untouched

    again = cli("restore", "--bootstrap", broker.bootstrap, "--topic", server.topic, "docs", "--as", "docs_back",
                "--until-offset", str(mistake), check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    never = cli("restore", "--bootstrap", broker.bootstrap, "--topic", server.topic, "docs", "--as", "x",
                "--until-offset", "0", check=False)
    assert never.returncode == 1 and "did not exist" in never.stderr


# ---- (f) rebuild -------------------------------------------------------------------------

def test_rebuild_equals_the_live_node_and_can_be_served(servers, topic, broker, tmp_path):
    node = servers(topic)
    create(node, "a", size=16, distance="Cosine")
    put(node, "/collections/b", {"vectors": {"x": {"size": 2, "distance": "Euclid"}, "y": {"size": 3, "distance": "Dot"}}})
    for n in range(20):
        put(node, "/collections/a/points", {"points": [
            {"id": n * 100 + j, "vector": [float((n * j + k) % 7) for k in range(16)], "payload": {"n": n}}
            for j in range(100)]}, wait=False)
    put(node, "/collections/b/points", {"points": [{"id": 1, "vector": {"x": [1, 2]}}, {"id": 2, "vector": {"y": [1, 2, 3]}}]})
    post(node, "/collections/a/points/payload", {"payload": {"tag": 1}, "filter": {"must": [{"key": "n", "range": {"gte": 15}}]}})
    post(node, "/collections/a/points/delete", {"points": list(range(0, 2000, 3))})
    put(node, "/collections/gone", {"vectors": {"size": 2, "distance": "Dot"}})
    httpx.delete(f"{node.url}/collections/gone?wait=true", timeout=30)
    node.wait_caught_up()
    node.stop()
    live = node.digest()

    rebuilt_dir = str(tmp_path / "rebuilt")
    digest, report = rebuild_digest(broker.bootstrap, topic, rebuilt_dir)
    assert digest == live
    assert re.search(r"[\d,]+ points/s", report), report
    refused = cli("rebuild", "--bootstrap", broker.bootstrap, "--topic", topic, "--data-dir", rebuilt_dir, check=False)
    assert refused.returncode == 1 and "not empty" in refused.stderr
    assert not [n for n in os.listdir(tmp_path) if ".rebuild-" in n]  # no half state left behind

    ends = end_offsets(broker.bootstrap, topic)
    served = Server(broker.bootstrap, topic, rebuilt_dir, free_port())
    served.start()
    try:
        assert f"resumes at offset {ends[0]}" in served.tail_log()  # nothing to replay
        assert httpx.post(f"{served.url}/collections/a/points/count", json={}).json()["result"]["count"] == 1333
    finally:
        served.kill()


# ---- (g) produce -------------------------------------------------------------------------

def test_produce_publishes_what_the_http_api_publishes(server, broker, tmp_path):
    create(server, "web", size=3)
    body = {"points": [{"id": 1, "vector": [1.0, 2.0, 3.0], "payload": {"k": "v"}},
                       {"id": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "vector": [0.5, 0.25, 0.0]}]}
    put(server, "/collections/web/points", body)
    lines = [{"collection": "web", "op": "upsert", **body},
             {"collection": "filed", "op": "create_collection", "vectors": {"size": 2, "distance": "Euclid"}}]
    lines += [{"collection": "filed", "op": "upsert", "points": [{"id": i, "vector": [i, 1], "payload": {"i": i}}]}
              for i in range(500)]
    lines.append({"collection": "filed", "op": "batch", "operations": [
        {"delete": {"points": [0, 1]}}, {"set_payload": {"points": [2], "payload": {"batch": True}}}]})
    path = tmp_path / "ops.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    out = cli("produce", "--bootstrap", broker.bootstrap, "--topic", server.topic, str(path))
    assert re.search(r"produced 503 operations \(502 points\)", out.stderr), out.stderr
    assert "ops/s" in out.stderr

    server.wait_caught_up()
    assert len(scroll(server, "filed")) == 498
    assert httpx.get(f"{server.url}/collections/filed/points/2").json()["result"]["payload"] == {"i": 2, "batch": True}
    records = read_topic(broker.bootstrap, server.topic, 3)
    http_record, produced_record = records[1], records[2]
    assert (produced_record.key, produced_record.value, produced_record.headers) == \
        (http_record.key, http_record.value, http_record.headers)

    # A bad line anywhere publishes nothing.
    before = end_offsets(broker.bootstrap, server.topic)
    path.write_bytes(orjson.dumps(lines[0]) + b"\n" + orjson.dumps(
        {"collection": "filed", "op": "upsert", "points": [{"id": -1, "vector": [1, 2]}]}) + b"\n")
    bad = cli("produce", "--bootstrap", broker.bootstrap, "--topic", server.topic, str(path), check=False)
    assert bad.returncode == 1 and "line 2" in bad.stderr
    assert end_offsets(broker.bootstrap, server.topic) == before


# ---- checkpoints -------------------------------------------------------------------------

def test_a_node_started_on_a_checkpoint_replays_only_the_tail(servers, topic, broker, tmp_path):
    node = servers(topic, env={"POINTLOG_CHECKPOINT_EVERY": "0.5", "POINTLOG_INDEX_THRESHOLD": "50",
                               "POINTLOG_INDEX_INTERVAL": "0"})
    create(node, "cp", size=4)
    for n in range(10):
        put(node, "/collections/cp/points", {"points": [{"id": n * 10 + j, "vector": [n, j, 1, 2]} for j in range(10)]})
    deadline = time.monotonic() + 30
    while httpx.get(f"{node.url}/collections/cp").json()["result"]["indexed_vectors_count"] < 100:
        assert time.monotonic() < deadline, "no vector index was built"
        time.sleep(0.1)
    cp_dir = str(tmp_path / "cp1")
    r = httpx.post(f"{node.url}/pointlog/checkpoint", json={"path": cp_dir}, timeout=60)
    assert r.status_code == 200, r.text
    at = r.json()["result"]["applied"]["0"]
    assert at == 10 and os.path.isdir(os.path.join(cp_dir, "state"))
    index_files = [f for _, _, files in os.walk(os.path.join(cp_dir, "indexes")) for f in files]
    assert "current" in index_files and any(f.endswith(".ann") for f in index_files), index_files
    for n in range(10, 15):
        put(node, "/collections/cp/points", {"points": [{"id": n * 10, "vector": [n, 0, 1, 2]}]})
    # The CLI refuses to open a running node's state and says what to do instead.
    busy = cli("checkpoint", "--data-dir", node.data_dir, "--to", str(tmp_path / "x"), check=False)
    assert busy.returncode == 1 and "--url" in busy.stderr
    cli("checkpoint", "--url", node.url, "--to", str(tmp_path / "cp2"))
    node.stop()
    offline = str(tmp_path / "cp3")
    cli("checkpoint", "--data-dir", node.data_dir, "--topic", topic, "--to", offline)

    resumed = Server(broker.bootstrap, topic, cp_dir, free_port())
    resumed.start()
    try:
        assert f"resumes at offset {at + 1}" in resumed.tail_log()
        resumed.wait_caught_up()
        assert httpx.post(f"{resumed.url}/collections/cp/points/count", json={}).json()["result"]["count"] == 105
    finally:
        resumed.stop()
    digest = node.digest()
    assert resumed.digest() == digest
    assert cli("digest", "--data-dir", offline).stdout == digest
    assert cli("digest", "--data-dir", str(tmp_path / "cp2")).stdout == digest
    # The automatic ones (every 0.5 s while something was applied), the newest two kept.
    automatic = sorted(os.listdir(os.path.join(node.data_dir, "checkpoints")))
    assert 1 <= len(automatic) <= 2, automatic
    newest = os.path.join(node.data_dir, "checkpoints", automatic[-1])
    assert orjson.loads(open(os.path.join(newest, "CHECKPOINT.json"), "rb").read())["applied"]["0"] <= at + 5
