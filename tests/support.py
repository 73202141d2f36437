"""Helpers shared by tests and benchmarks: a pointlog server subprocess, topic offsets."""
import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import httpx


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KAFKA_SCRIPT = os.path.join(ROOT, "infra", "kafka", "kafka")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_pair() -> int:
    """A port whose successor (the controller port) is free too."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


class Broker:
    """A real Kafka broker (or, with ``brokers=3``, a cluster of three on consecutive
    port pairs) started with the project's infra script, on free ports."""

    def __init__(self, extra_config: str = "", brokers: int = 1, port: int | None = None):
        self.dir = tempfile.mkdtemp(prefix="pointlog-kafka-")
        self.brokers = brokers
        self.port = port or _free_pair()
        self.ports = [self.port + 2 * i for i in range(brokers)]
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        self.env = dict(os.environ, KAFKA_PORT=str(self.port), KAFKA_DIR=self.dir,
                        KAFKA_EXTRA_CONFIG=extra_config)

    def _run(self, action: str, *args: str) -> None:
        subprocess.run([KAFKA_SCRIPT, action, *args], env=self.env, check=True, stdout=sys.stderr)

    def start(self) -> None:
        """Start the broker, or every node of the cluster not running (one killed comes back)."""
        if self.brokers > 1:
            self._run("start", "--brokers", str(self.brokers))
        else:
            self._run("start")

    def stop(self) -> None:
        self._run("stop")

    def pid(self, node_id: int) -> int:
        """The process of a cluster node (node ids 1..brokers)."""
        with open(os.path.join(self.dir, f"broker{node_id}", "kafka.pid")) as f:
            return int(f.read())

    def kill(self, node_id: int) -> None:
        """SIGKILL one node of the cluster, as a machine failure would end it."""
        pid = self.pid(node_id)
        os.kill(pid, signal.SIGKILL)
        while os.path.exists(f"/proc/{pid}") and not _zombie(pid):
            time.sleep(0.01)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not open after {timeout}s")


class Server:
    """``pointlog serve`` as a real process, as an operator would run it."""

    def __init__(self, bootstrap: str, topic: str, data_dir: str, port: int, env: dict | None = None,
                 grpc_port: int | None = None, ca: str | None = None, args: list | None = None):
        """``ca``: the server serves TLS (its certificate in env) and this CA file verifies it.
        ``args``: more ``pointlog serve`` flags (e.g. ``["--cluster", "c1"]``)."""
        self.bootstrap, self.topic, self.data_dir, self.port = bootstrap, topic, data_dir, port
        # Its own free port even when unused, so parallel servers never collide on 6334.
        self.grpc_port = free_port() if grpc_port is None else grpc_port
        self.ca = ca
        self.verify = ssl.create_default_context(cafile=ca) if ca else True
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
        self.extra_env = env or {}
        self.args = list(args or [])
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(data_dir + ".log")

    def start(self, timeout: float = 60.0) -> None:
        os.makedirs(os.path.dirname(self.log_path) or ".", exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--bootstrap", self.bootstrap, "--topic", self.topic,
             "--data-dir", self.data_dir, "--port", str(self.port), "--grpc-port", str(self.grpc_port),
             "--loglevel", "warning", *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **self.extra_env),
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.tail_log()}")
            try:
                if httpx.get(self.url + "/", timeout=1.0, verify=self.verify).status_code == 200:
                    if self.grpc_port:  # faust starts the gRPC server right after the HTTP one
                        wait_for_port(self.grpc_port, max(deadline - time.monotonic(), 1.0))
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not answering after {timeout}s: {self.tail_log()}")

    def tail_log(self, n: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def restart(self) -> None:
        self.kill()
        self.start()

    def applied(self) -> dict:
        """{partition: last applied offset} from the node's /metrics."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        out = {}
        for line in text.splitlines():
            if line.startswith("pointlog_applied_offset{"):
                labels, value = line.rsplit(" ", 1)
                out[int(labels.split('partition="')[1].split('"')[0])] = _integer(value)
        return out

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Until this node has applied everything in its topic right now."""
        ends = end_offsets(self.bootstrap, self.topic)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            applied = self.applied()
            if all(applied.get(p, -1) >= end - 1 for p, end in ends.items()):
                return
            time.sleep(0.05)
        raise TimeoutError(f"node did not reach {ends}; applied {self.applied()}")

    def digest(self) -> str:
        """``pointlog digest`` of this node's data dir (the node must be stopped)."""
        out = subprocess.run([sys.executable, "-m", "api.cli", "digest", "--data-dir", self.data_dir],
                             check=True, capture_output=True, text=True,
                             cwd=ROOT)
        return out.stdout


def rebuilt_digest(bootstrap: str, topic: str, data_dir: str) -> str:
    """``pointlog digest`` of a clean rebuild of the topic into a fresh ``data_dir``."""
    subprocess.run([sys.executable, "-m", "api.cli", "rebuild", "--bootstrap", bootstrap, "--topic", topic,
                    "--data-dir", data_dir, "--no-indexes"], check=True, cwd=ROOT, capture_output=True)
    return subprocess.run([sys.executable, "-m", "api.cli", "digest", "--data-dir", data_dir],
                          check=True, capture_output=True, text=True, cwd=ROOT).stdout


def _integer(value: str) -> int:
    """A Prometheus sample that must be a whole number (the client writes ``3.0``)."""
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"expected a whole number, got {value}")
    return int(number)


def metric(node: "Server", name: str) -> float:
    """An unlabelled sample of the node's /metrics."""
    text = httpx.get(node.url + "/metrics", timeout=5).text
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def same_scored(got: list, want: list, tol: float = 1e-4) -> None:
    """Scored points in the same order with the same scores (to float32 rounding)."""
    import math
    assert [p.id for p in got] == [p.id for p in want]
    assert all(math.isclose(g.score, w.score, rel_tol=tol, abs_tol=tol) for g, w in zip(got, want))


def end_offsets(bootstrap: str, topic: str) -> dict:
    """The topic's end offset per partition, read with a real consumer."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            ends = await consumer.end_offsets(tps)
            return {tp.partition: off for tp, off in ends.items()}
        finally:
            await consumer.stop()

    return asyncio.run(read())


def same_up_to_ties(got: list, want: list, tol: float = 1e-4) -> None:
    """Same scores in the same order, and the same ids within each run of equal scores
    except the last (cut by the limit): Qdrant does not define the order of equal
    scores (sparse examples leave many points at 0; rounded data ties distances)."""
    import math
    assert len(got) == len(want)
    assert all(math.isclose(g.score, w.score, rel_tol=tol, abs_tol=tol) for g, w in zip(got, want))
    runs: list = []
    for g, w in zip(got, want):
        if runs and math.isclose(runs[-1][2], w.score, rel_tol=tol, abs_tol=tol):
            runs[-1][0].add(g.id)
            runs[-1][1].add(w.id)
        else:
            runs.append(({g.id}, {w.id}, w.score))
    for got_ids, want_ids, _ in runs[:-1]:
        assert got_ids == want_ids
