"""A restart loads large collections from column segments (storage/segments.py) and
the journal after them: after a SIGKILL, with writes made after the last segment,
the node serves exactly what it served before, and its digest equals a rebuild's."""
import os
import re
import time

import httpx

from tests.support import rebuilt_digest

N = 3000  # above streams.segments.MIN_POINTS


def put(node, path: str, body, wait: bool = True) -> None:
    r = httpx.put(f"{node.url}{path}?wait={'true' if wait else 'false'}", json=body, timeout=30)
    assert r.status_code == 200, r.text


def post(node, path: str, body) -> dict:
    r = httpx.post(f"{node.url}{path}?wait=true", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def served(node) -> tuple:
    """Every point (id, payload, vectors) in scroll order, and every point's version."""
    points = post(node, "/collections/s/points/scroll", {"limit": 100_000, "with_vector": True,
                                                         "with_payload": True})["points"]
    ranked = post(node, "/collections/s/points/query", {"query": [1.0] * 8, "using": "a", "limit": 100_000,
                                                        "params": {"exact": True}})["points"]
    return points, sorted((p["id"], p["version"]) for p in ranked)


def wait_for_segment(node, timeout: float = 30) -> str:
    path = os.path.join(node.data_dir, "state", "columns", "c1.seg")
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "no column segment written"
        time.sleep(0.2)
    return path


def test_restart_from_segments_and_journal_equals_a_rebuild(servers, topic, broker, tmp_path):
    node = servers(topic)
    put(node, "/collections/s", {"vectors": {"a": {"size": 8, "distance": "Cosine"},
                                             "b": {"size": 2, "distance": "Euclid"}}})
    for start in range(0, N, 500):
        put(node, "/collections/s/points", {"points": [
            {"id": i, "vector": {"a": [float((i * k) % 11) + 0.5 for k in range(8)],
                                 **({"b": [i / 7, -i / 3]} if i % 3 else {})},
             "payload": {"n": i % 10, "s": f"p{i}"}} for i in range(start, start + 500)]}, wait=False)
    node.wait_caught_up()
    segment = wait_for_segment(node)
    written = os.path.getmtime(segment)
    # After the segment: new points, a replaced point, payload and vector changes, deletes.
    put(node, "/collections/s/points", {"points": [
        {"id": i, "vector": {"a": [1.0] * 7 + [float(i)]}, "payload": {"late": True}} for i in (5, N + 1, N + 2)]})
    post(node, "/collections/s/points/payload", {"payload": {"tag": "x"}, "filter": {"must": [{"key": "n", "match": {"value": 3}}]}})
    put(node, "/collections/s/points/vectors", {"points": [{"id": 7, "vector": {"b": [9.0, 9.0]}}]})
    post(node, "/collections/s/points/vectors/delete", {"points": [8], "vector": ["b"]})
    post(node, "/collections/s/points/delete", {"filter": {"must": [{"key": "n", "match": {"value": 9}}]}})
    before = served(node)
    assert len(before[0]) == N + 2 - N // 10

    node.kill()  # SIGKILL, right after the writes: the segment is older than them
    assert os.path.getmtime(segment) == written
    node.start()
    assert re.search(r"state loaded in [\d.]+s \(\d+ points; 1 of 1 collections from column segments\)",
                     node.tail_log()), node.tail_log()
    assert served(node) == before
    node.stop()
    assert node.digest() == rebuilt_digest(broker.bootstrap, topic, str(tmp_path / "rebuilt"))
