"""A stop ends within seconds, with the broker up or down, and loses nothing: the
node restarted on the same data dir holds every acknowledged write."""
import signal
import time

import httpx
import pytest

from tests.support import Server, free_port

GRACE = 3.0


def stop_seconds(server: Server) -> float:
    started = time.perf_counter()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=60)
    return time.perf_counter() - started


@pytest.mark.parametrize("kafka", ["own_broker", "own_cluster"])
def test_a_stop_is_bounded_with_the_broker_up_or_down(kafka, request, tmp_path):
    own_broker = request.getfixturevalue(kafka)  # one broker, or a cluster of three (all stopped)
    env = {"POINTLOG_STOP_GRACE": str(GRACE)}
    server = Server(own_broker.bootstrap, "stop.test", str(tmp_path / "node"), free_port(), env=env)
    server.start()
    try:
        url = f"{server.url}/collections/s"
        assert httpx.put(url, json={"vectors": {"size": 2, "distance": "Dot"}}).status_code == 200
        r = httpx.put(url + "/points?wait=true", json={"points": [{"id": i, "vector": [1.0, i]} for i in range(50)]})
        assert r.json()["result"]["status"] == "completed"
        up = stop_seconds(server)
        assert server.proc.returncode == 0

        server.start()
        httpx.put(url + "/points?wait=true", json={"points": [{"id": 50, "vector": [1.0, 50.0]}]}).raise_for_status()
        own_broker.stop()
        time.sleep(1.0)
        down = stop_seconds(server)
        print(f"\nstop ({own_broker.brokers} brokers): {up:.2f}s with the broker up, {down:.2f}s with it down")
        assert up < GRACE + 2 and down < GRACE + 2

        own_broker.start()
        server.start()  # resumes from its committed offsets: nothing acknowledged is missing
        count = httpx.post(url + "/points/count", json={}).json()["result"]["count"]
        assert count == 51
    finally:
        server.kill()
