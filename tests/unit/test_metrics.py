"""/metrics in process (no Kafka): the node collectors over a real state and index
scheduler, and request metrics through the real app and routes.

The producer is never started: only reads and rejected writes are sent here."""
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.rest.app import build_app
from api.rest.bodies import parse
from api.rest.metrics import UNMATCHED, route_template
from storage import operations as ops
from storage.vectors.annoy_index import IndexParams
from streams.indexer import IndexManager
from streams.node import Node
from streams.producer import Producer
from streams.settings import Settings

TOPIC = "wal"


def samples(text: str) -> dict:
    """{(sample name, sorted label items): value} of a Prometheus text scrape."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def node(log, tmp_path):
    settings = Settings(topic=TOPIC, data_dir=str(tmp_path))
    return Node(settings, log.state, Producer("127.0.0.1:1", TOPIC))


def commit_offsets(node, offsets: dict) -> None:
    """Applied offsets as the applier leaves them: committed in a transaction."""
    txn = node.state.transaction(TOPIC)
    for partition, offset in offsets.items():
        txn.set_offset(partition, offset)
    txn.commit()


def client(app) -> httpx.AsyncClient:
    # raise_app_exceptions=False: a 500 is answered as a server would, not raised here.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://t")


async def scrape(node, log_ends=None) -> dict:
    async with client(build_app(node, log_ends)) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


async def test_applied_offsets_lag_and_dead_letters(node):
    commit_offsets(node, {0: 41, 2: 9})
    node.partitions = 3  # partition 1 has nothing applied yet
    node.state.dead_letters = 3
    # partition 1: nothing applied yet; 2: the high water is older than what is
    # applied; 3: not reported yet (left out).
    got = await scrape(node, lambda: {0: 50, 1: 4, 2: 5})
    assert got[("pointlog_applied_offset", (("partition", "0"), ("topic", TOPIC)))] == 41
    assert got[("pointlog_applied_offset", (("partition", "1"), ("topic", TOPIC)))] == -1
    assert got[("pointlog_log_end_offset", (("partition", "0"), ("topic", TOPIC)))] == 50
    lag = {dict(labels)["partition"]: v for (name, labels), v in got.items() if name == "pointlog_applier_lag_records"}
    assert lag == {"0": 8, "1": 4}
    assert got[("pointlog_dead_letters_total", ())] == 3


async def test_lag_is_absent_without_log_ends(node):
    commit_offsets(node, {0: 5})
    got = await scrape(node)
    assert ("pointlog_applied_offset", (("partition", "0"), ("topic", TOPIC))) in got
    assert not any(name == "pointlog_applier_lag_records" for name, _ in got)


async def test_points_vectors_and_index_state(node, log, tmp_path):
    log.do(parse(ops.CreateCollection, {"vectors": {"a": {"size": 4, "distance": "Dot"},
                                                       "b": {"size": 2, "distance": "Cosine"}}}), "c")
    rng = np.random.default_rng(0)
    points = [{"id": i, "vector": {"a": rng.standard_normal(4).tolist(), "b": [1.0, float(i)]}}
              for i in range(120)]
    log.do(parse(ops.Upsert, {"points": points}), "c")
    log.do(parse(ops.Upsert, {"points": [{"id": 500, "vector": {"a": [1, 2, 3, 4]}}]}), "c")
    indexes = IndexManager(str(tmp_path / "indexes"), log.state,
                           IndexParams(threshold=100, delta=10**9, interval=3600, trees=4))
    try:
        got = await scrape(node)
        assert got[("pointlog_points", (("collection", "c"),))] == 121
        assert not any(name.startswith("pointlog_index_builds") for name, _ in got)  # no scheduler yet

        node.indexes = indexes
        assert await indexes.maintain() == 2
        log.state.collections["c"].vectors["b"].building = True  # as during a rebuild
        got = await scrape(node)
    finally:
        indexes.close()
    a, b = (("collection", "c"), ("vector", "a")), (("collection", "c"), ("vector", "b"))
    assert got[("pointlog_vectors", a)] == 121 and got[("pointlog_vectors", b)] == 120
    assert got[("pointlog_index_vectors", a)] == 121 and got[("pointlog_index_vectors", b)] == 120
    assert got[("pointlog_index_building", a)] == 0 and got[("pointlog_index_building", b)] == 1
    assert got[("pointlog_index_builds_total", ())] == 2
    last = indexes.last_build
    key = ("pointlog_index_last_build_seconds", (("collection", "c"), ("vector", last["vector"])))
    assert got[key] == pytest.approx(last["total_s"])


async def test_requests_by_route_template_and_status(node, log):
    log.do(parse(ops.CreateCollection, {"vectors": {"size": 2, "distance": "Dot"}}), "c")
    search = "/collections/c/points/search"
    async with client(build_app(node)) as c:
        for _ in range(2):
            assert (await c.post(search, json={"vector": [1, 0], "limit": 1})).status_code == 200
        assert (await c.post("/collections/nope/points/search", json={"vector": [1, 0]})).status_code == 404
        assert (await c.post(search, json={"limit": 1})).status_code == 400
        assert (await c.delete(search)).status_code == 405
        assert (await c.get("/no/such/path/42")).status_code == 404
        assert (await c.request("BREW", "/collections")).status_code == 405
        got = samples((await c.get("/metrics")).text)

    route = "/collections/{collection}/points/search"

    def count(method, path, status):
        return got.get(("pointlog_http_requests_total",
                        (("method", method), ("route", path), ("status", status))))

    assert count("POST", route, "200") == 2
    assert count("POST", route, "404") == 1
    assert count("POST", route, "400") == 1
    assert count("DELETE", route, "405") == 1
    assert count("GET", "unmatched", "404") == 1
    assert count("other", "/collections", "405") == 1
    # No series is labelled with a raw path.
    assert not any("nope" in dict(labels).get("route", "") or "/no/such" in dict(labels).get("route", "")
                   for _, labels in got)
    hist = (("method", "POST"), ("route", route), ("status", "200"))
    assert got[("pointlog_http_request_duration_seconds_count", hist)] == 2
    assert got[("pointlog_http_request_duration_seconds_bucket", tuple(sorted(hist + (("le", "+Inf"),))))] == 2
    assert got[("pointlog_http_request_duration_seconds_sum", hist)] > 0


async def test_an_unexpected_error_is_counted_as_500(node, log, monkeypatch):
    def boom(col):
        raise RuntimeError("boom")

    log.do(parse(ops.CreateCollection, {"vectors": {"size": 2, "distance": "Dot"}}), "c")
    monkeypatch.setattr("api.service.collection_info", boom)
    async with client(build_app(node)) as c:
        assert (await c.get("/collections/c")).status_code == 500
        got = samples((await c.get("/metrics")).text)
    assert got[("pointlog_http_requests_total",
                (("method", "GET"), ("route", "/collections/{collection}"), ("status", "500")))] == 1


@pytest.mark.parametrize("method, path, template", [
    ("POST", "/collections/x/points/search", "/collections/{collection}/points/search"),
    ("DELETE", "/collections/x/points/search", "/collections/{collection}/points/search"),  # a 405
    ("GET", "/collections/x/points/7", "/collections/{collection}/points/{point_id}"),
    ("GET", "/nothing/here", UNMATCHED),
])
def test_route_template_without_the_route_in_scope(node, method, path, template):
    # What an older Starlette router leaves in the scope: no "route".
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "app": build_app(node)}
    assert route_template(scope) == template
