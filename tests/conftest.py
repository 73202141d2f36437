"""Fixtures: one real Kafka broker per test session (started with the same infra
script as ``make run``, on free ports), and pointlog servers as real subprocesses."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid

import pytest

from tests.support import Server, wait_for_port

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
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pointlog-kafka-")
        self.port = _free_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ, KAFKA_PORT=str(self.port), KAFKA_DIR=self.dir)

    def _run(self, action: str) -> None:
        subprocess.run([KAFKA_SCRIPT, action], env=self.env, check=True, stdout=sys.stderr)

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


@pytest.fixture(scope="session")
def broker():
    b = Broker()
    b.start()
    yield b
    b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)


@pytest.fixture
def topic() -> str:
    """A fresh WAL topic per test, so tests sharing the broker never see each other."""
    return f"pointlog.test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def servers(broker, tmp_path):
    """Factory for pointlog servers; all are killed at the end of the test."""
    started = []

    def start(topic: str, data_dir: str | None = None, **kwargs) -> Server:
        data_dir = data_dir or str(tmp_path / f"node{len(started)}")
        server = Server(broker.bootstrap, topic, data_dir, free_port(), **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def server(servers, topic):
    return servers(topic)
