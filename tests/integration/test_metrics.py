"""/metrics of a real node over a real broker: applied offsets and lag against the
topic's true end, request counts and latencies by route template, index state."""
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import end_offsets

SEARCH = "/collections/{collection}/points/search"


def scrape(server) -> dict:
    """{(sample name, frozenset of label items): value}."""
    text = httpx.get(server.url + "/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(got: dict, name: str, **labels):
    return got.get((name, frozenset(labels.items())))


def test_metrics_after_writes_searches_and_bad_requests(servers, topic):
    # A low threshold so the collection gets an Annoy index while the test runs.
    server = servers(topic, env={"POINTLOG_INDEX_THRESHOLD": "50", "POINTLOG_INDEX_INTERVAL": "0"})
    url = server.url
    assert httpx.put(f"{url}/collections/m", json={"vectors": {"size": 4, "distance": "Dot"}}).status_code == 200
    for start in (0, 60):
        points = [{"id": i, "vector": [1.0, float(i), 0.5, -1.0]} for i in range(start, start + 60)]
        r = httpx.put(f"{url}/collections/m/points?wait=true", json={"points": points}, timeout=30)
        assert r.json()["result"]["status"] == "completed", r.text
    for _ in range(3):
        assert httpx.post(f"{url}/collections/m/points/search", json={"vector": [1, 2, 3, 4], "limit": 3}
                          ).status_code == 200
    assert httpx.post(f"{url}/collections/m/points/search", json={"limit": 3}).status_code == 400
    assert httpx.post(f"{url}/collections/gone/points/search", json={"vector": [1, 2, 3, 4]}).status_code == 404
    assert httpx.get(f"{url}/collections/m/no/such/thing").status_code == 404

    server.wait_caught_up()
    ends = end_offsets(server.bootstrap, topic)
    assert ends == {0: 3}  # the collection and two upserts
    part = dict(topic=topic, partition="0")
    col = dict(collection="m", vector="")
    # The lag needs a fetch answer after the last record, the index a build: poll.
    deadline = time.monotonic() + 60
    while True:
        got = scrape(server)
        if (value(got, "pointlog_applier_lag_records", **part) == 0
                and value(got, "pointlog_index_vectors", **col) == 120) or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    assert value(got, "pointlog_applied_offset", **part) == ends[0] - 1
    assert value(got, "pointlog_log_end_offset", **part) == ends[0]
    assert value(got, "pointlog_applier_lag_records", **part) == 0
    assert value(got, "pointlog_dead_letters_total") == 0
    assert server.applied() == {0: 2}  # the test helper still reads the offsets as ints

    search = dict(method="POST", route=SEARCH)
    assert value(got, "pointlog_http_requests_total", **search, status="200") == 3
    assert value(got, "pointlog_http_requests_total", **search, status="400") == 1
    assert value(got, "pointlog_http_requests_total", **search, status="404") == 1
    assert value(got, "pointlog_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(got, "pointlog_http_request_duration_seconds_count", **search, status="200") == 3
    assert value(got, "pointlog_http_request_duration_seconds_bucket", **search, status="200", le="+Inf") == 3
    assert value(got, "pointlog_http_request_duration_seconds_count", **search, status="400") == 1
    assert value(got, "pointlog_http_request_duration_seconds_sum", **search, status="200") > 0
    assert not any("gone" in dict(labels).get("route", "") for _, labels in got), "raw paths as labels"

    assert value(got, "pointlog_points", collection="m") == 120
    assert value(got, "pointlog_vectors", **col) == 120
    assert value(got, "pointlog_index_vectors", **col) == 120
    assert value(got, "pointlog_index_building", **col) == 0
    assert value(got, "pointlog_index_builds_total") >= 1
    assert value(got, "pointlog_index_last_build_seconds", **col) > 0
