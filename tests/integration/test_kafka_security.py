"""pointlog against a broker that only speaks SASL (the infra script's ``start --sasl``):
the node (producer, faust consumer, admin and log readers) and the operator tools
(produce, rebuild) connect with SCRAM, a write with wait=true is applied and read
back, and a wrong password fails at once with a message that says so."""
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from qdrant_client import QdrantClient, models

from tests.support import ROOT, Broker, Server, free_port

USER, PASSWORD = "pointlog-test", "pw-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def sasl_broker():
    b = Broker()
    b.env.update(KAFKA_SASL="1", KAFKA_SASL_USER=USER, KAFKA_SASL_PASSWORD=PASSWORD)
    b.start()
    yield b
    b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)


def security(mechanism: str, password: str = PASSWORD) -> dict:
    return {"POINTLOG_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "POINTLOG_KAFKA_SASL_MECHANISM": mechanism,
            "POINTLOG_KAFKA_SASL_USERNAME": USER, "POINTLOG_KAFKA_SASL_PASSWORD": password}


def cli(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=dict(os.environ, **env))


def test_node_and_tools_over_scram(sasl_broker, tmp_path):
    topic = f"pointlog.test.{uuid.uuid4().hex[:12]}"
    env = security("SCRAM-SHA-512")
    node = Server(sasl_broker.bootstrap, topic, str(tmp_path / "node"), free_port(), env=env)
    node.start()
    try:
        client = QdrantClient(url=node.url, timeout=30)
        client.create_collection("s", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        result = client.upsert("s", points=[models.PointStruct(id=1, vector=[1.0, 2.0], payload={"k": 1})],
                               wait=True)
        assert result.status == models.UpdateStatus.COMPLETED
        assert client.retrieve("s", [1])[0].payload == {"k": 1}
        # The producer tool, with SCRAM-SHA-256 this time.
        ops = tmp_path / "ops.jsonl"
        ops.write_text(json.dumps({"collection": "s", "op": "upsert",
                                   "points": [{"id": 2, "vector": [2.0, 1.0], "payload": {"k": 2}}]}) + "\n")
        out = cli(security("SCRAM-SHA-256"), "produce", "--bootstrap", sasl_broker.bootstrap, "--topic", topic,
                  str(ops))
        assert out.returncode == 0, out.stderr
        deadline = time.monotonic() + 30
        while client.count("s").count < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.query_points("s", query=[1.0, 0.0]).points[0].id == 2
        # A rebuild from the log gives the node's state.
        out = cli(env, "rebuild", "--bootstrap", sasl_broker.bootstrap, "--topic", topic, "--data-dir",
                  str(tmp_path / "rebuilt"), "--no-indexes")
        assert out.returncode == 0, out.stderr
        digest = cli({}, "digest", "--data-dir", str(tmp_path / "rebuilt")).stdout
        assert digest and digest == cli({}, "digest", "--data-dir", node.data_dir).stdout
        assert PASSWORD not in node.tail_log(100_000)
    finally:
        node.kill()


def test_a_wrong_password_fails_clearly(sasl_broker, tmp_path):
    topic = f"pointlog.test.{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    out = cli(security("SCRAM-SHA-256", "wrong"), "serve", "--bootstrap", sasl_broker.bootstrap, "--topic", topic,
              "--data-dir", str(tmp_path / "node"), "--port", str(free_port()), "--grpc-port", "0", timeout=120)
    assert out.returncode != 0
    assert time.monotonic() - started < 60
    said = out.stdout + out.stderr
    assert "cannot connect to Kafka" in said and "check the user and password" in said, said
    assert "invalid credentials" in said, said  # the broker's reason, as aiokafka logs it
    assert "Traceback" not in said
    # Without SASL at all: the same clear failure, pointing at the protocol.
    out = cli({}, "produce", "--bootstrap", sasl_broker.bootstrap, "--topic", topic, os.devnull, timeout=120)
    assert out.returncode != 0 and "cannot connect to Kafka" in out.stderr, out.stderr
