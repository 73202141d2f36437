"""Fixtures: one real Kafka broker per test session (started with the same infra
script as ``make run``, on free ports), and pointlog servers as real subprocesses."""
import random
import shutil
import socket
import uuid

import pytest

from tests.support import Broker, Server, free_port


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


@pytest.fixture(scope="module")
def module_server(broker, tmp_path_factory):
    """One server on its own topic for a whole test module (tests use their own collections)."""
    topic = f"pointlog.test.{uuid.uuid4().hex[:12]}"
    server = Server(broker.bootstrap, topic, str(tmp_path_factory.mktemp("module") / "node"), free_port())
    server.start()
    yield server
    server.kill()


def port_pair_outside_ephemeral_range(pairs: int = 1) -> int:
    """While a broker is down, any outgoing connection on the machine may be handed its
    port (or its controller's, port + 1) as a local port, and the restart then fails
    to bind. Ports below the ephemeral range are never handed out that way. ``pairs``
    consecutive pairs, for a cluster."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low - 2 * pairs)
        try:
            for p in range(port, port + 2 * pairs):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair below the ephemeral range")


def own_kafka(brokers: int, extra_config: str = ""):
    b = Broker(extra_config, brokers=brokers, port=port_pair_outside_ephemeral_range(brokers))
    b.start()
    yield b
    b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)


@pytest.fixture
def own_broker():
    """A broker of this test's own, which it may stop and start."""
    yield from own_kafka(1)


@pytest.fixture
def own_cluster():
    """Three brokers of this test's own (KRaft, each also a controller voter), which it
    may kill and start one by one."""
    yield from own_kafka(3)
