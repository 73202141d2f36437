"""The Annoy index manager and the indexed search path, in process (no Kafka).

State is changed with the real ``apply`` over a real rocksdict state in a temp dir;
builds run in the real spawned builder process.
"""
import os

import numpy as np
import pytest

from api.rest.bodies import parse
from storage import operations as ops
from storage.vectors.annoy_index import IndexParams, index_status
from storage.vectors.search import SearchRequest, search
from streams.indexer import IndexManager
from tests.unit.statelog import StateLog

DIM = 16
PARAMS = IndexParams()  # what searches here are run with


def clustered(rng, n: int, dim: int = DIM, clusters: int = 20) -> np.ndarray:
    centers = rng.standard_normal((clusters, dim)) * 3
    return (centers[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def upsert(log: StateLog, ids, vectors, payloads=None, collection: str = "c") -> None:
    points = [{"id": int(i), "vector": v.tolist(), "payload": (payloads[k] if payloads else {})}
              for k, (i, v) in enumerate(zip(ids, vectors))]
    log.do(parse(ops.Upsert, {"points": points}), collection)


def query(col, vector, limit=10, exact=False, flt=None, ef=None, **extra) -> list:
    body = {"query": np.asarray(vector).tolist(), "limit": limit, "params": {"exact": exact},
            "with_payload": False, **extra}
    if ef:
        body["params"]["hnsw_ef"] = ef
    if flt is not None:
        body["filter"] = flt
    return [(p["id"], p["score"]) for p in search(col, SearchRequest.from_query(body), PARAMS)]


@pytest.fixture
def low_threshold(monkeypatch):
    monkeypatch.setattr(PARAMS, "threshold", 100)


@pytest.fixture
def manager(log, tmp_path):
    mgr = IndexManager(str(tmp_path / "indexes"), log.state, IndexParams(threshold=100, delta=10**9,
                                                                         interval=3600, trees=16, busy_delta=1))
    yield mgr
    mgr.close()


def create(log: StateLog, distance: str = "Cosine", name: str = "c") -> None:
    log.do(parse(ops.CreateCollection, {"vectors": {"size": DIM, "distance": distance}}), name)


@pytest.mark.parametrize("distance", ["Cosine", "Dot", "Euclid", "Manhattan"])
async def test_indexed_search_matches_exact_and_scores_are_identical(log, manager, low_threshold, distance):
    rng = np.random.default_rng(1)
    create(log, distance)
    vectors = clustered(rng, 3000)
    upsert(log, range(3000), vectors)
    assert await manager.maintain() == 1
    col = log.col()
    assert index_status(col) == (3000, False)
    hits = total = 0
    for q in clustered(rng, 40):
        exact = query(col, q, exact=True)
        approx = query(col, q, ef=200)
        exact_scores = dict(exact)
        total += len(exact)
        hits += sum(1 for pid, _ in approx if pid in exact_scores)
        for pid, score in approx:
            if pid in exact_scores:
                assert score == exact_scores[pid]  # same kernel, same bits
        assert len(approx) == 10
    assert hits / total >= 0.95


async def test_delta_is_exact_and_deleted_or_moved_points_never_come_back(log, manager, low_threshold):
    rng = np.random.default_rng(2)
    create(log)
    vectors = clustered(rng, 2000)
    upsert(log, range(2000), vectors)
    await manager.maintain()
    col = log.col()
    index = col.vectors[""].index
    # New points after the snapshot are found at once.
    fresh = clustered(rng, 50)
    upsert(log, range(5000, 5050), fresh)
    for i, v in enumerate(fresh):
        assert query(col, v, limit=1)[0][0] == 5000 + i
    # Deleted points are gone even though Annoy still holds them.
    log.do(parse(ops.DeletePoints, {"points": list(range(100))}), "c")
    for i in range(100):
        assert i not in {pid for pid, _ in query(col, vectors[i], limit=5)}
    # A freed slot reused by another point does not resurrect the old one.
    upsert(log, [7000], vectors[:1])  # the slot of a deleted point, the vector of point 0
    assert query(col, vectors[0], limit=1)[0][0] == 7000
    # A moved vector is found where it is now, not where the index saw it.
    upsert(log, [500], -vectors[500:501])
    assert query(col, -vectors[500], limit=1) == [(500, pytest.approx(1.0, abs=1e-6))]
    assert 500 not in {pid for pid, _ in query(col, vectors[500], limit=10)}
    assert col.vectors[""].index is index  # all of that without a rebuild


async def test_rebuild_swaps_and_removes_the_old_file(log, manager, low_threshold):
    rng = np.random.default_rng(3)
    create(log)
    upsert(log, range(500), clustered(rng, 500))
    await manager.maintain()
    store = log.col().vectors[""]
    first = store.index.build
    upsert(log, range(500, 600), clustered(rng, 100))
    assert await manager.maintain() == 0  # neither the delta size nor the interval is due
    manager.params.delta = 50
    assert await manager.maintain() == 1
    assert store.index.build != first and len(store.index) == 600
    assert len(store.changed_since(store.index.generation)) == 0
    files = os.listdir(os.path.join(manager.root, f"c{log.col().cid}", "v_"))
    assert sorted(files) == sorted(["current", store.index.build + ".ann", store.index.build + ".keys"])


async def test_restart_loads_the_index_and_restores_the_delta_from_versions(log, manager, low_threshold, tmp_path):
    rng = np.random.default_rng(4)
    create(log)
    vectors = clustered(rng, 1500)
    upsert(log, range(1500), vectors)
    await manager.maintain()
    build = log.col().vectors[""].index.build
    # Changes after the snapshot, then a restart.
    moved = clustered(rng, 20)
    upsert(log, range(20), moved)
    upsert(log, range(9000, 9010), clustered(rng, 10))
    log.do(parse(ops.DeletePoints, {"points": list(range(100, 120))}), "c")
    manager.close()
    log.reopen()
    again = IndexManager(manager.root, log.state, manager.params)
    try:
        assert again.load() == 1
        store = log.col().vectors[""]
        assert store.index.build == build and again.builds == 0
        delta = {store.keys[s] for s in store.changed_since(store.index.generation)}
        from storage.ids import encode_id
        assert delta == {encode_id(i) for i in [*range(20), *range(9000, 9010)]}
        for i in range(20):
            assert query(log.col(), moved[i], limit=1)[0][0] == i
        for i in range(100, 120):
            assert i not in {pid for pid, _ in query(log.col(), vectors[i], limit=5)}
        assert await again.maintain() == 0  # nothing due: loaded, not rebuilt
    finally:
        again.close()


async def test_filtered_search_returns_limit_whenever_enough_points_match(log, manager, low_threshold):
    rng = np.random.default_rng(5)
    create(log)
    n = 4000
    vectors = clustered(rng, n)
    payloads = [{"m10": i % 10, "m100": i % 100, "m1000": i % 1000} for i in range(n)]
    upsert(log, range(n), vectors, payloads)
    await manager.maintain()
    col = log.col()
    for flt, matching in [({"must": [{"key": "m10", "match": {"value": 3}}]}, n // 10),
                          ({"must": [{"key": "m100", "match": {"value": 7}}]}, n // 100),
                          ({"must": [{"key": "m1000", "match": {"value": 1}}]}, n // 1000),
                          ({"must_not": [{"key": "m10", "match": {"value": 3}}]}, n - n // 10)]:
        for q in clustered(rng, 5):
            for limit, ef in ((5, None), (30, None), (5, 8)):  # a small ef keeps more of them on Annoy
                got = query(col, q, limit=limit, flt=flt, ef=ef)
                exact = query(col, q, limit=limit, flt=flt, exact=True)
                assert len(got) == min(limit, matching) == len(exact)
                # Everything returned matches, and the top result is the true one.
                assert got[0] == exact[0]


async def test_filter_correlated_with_the_query_still_fills_the_limit(log, manager, low_threshold):
    """The matching points all lie far from the query: Annoy's first candidates
    hold none of them, so the search must widen (or fall back) until it has them."""
    rng = np.random.default_rng(6)
    create(log, "Euclid")
    near = rng.standard_normal((2000, DIM)).astype(np.float32)
    far = (rng.standard_normal((300, DIM)) + 50).astype(np.float32)
    upsert(log, range(2000), near, [{"far": False}] * 2000)
    upsert(log, range(2000, 2300), far, [{"far": True}] * 300)
    await manager.maintain()
    col = log.col()
    flt = {"must": [{"key": "far", "match": {"value": True}}]}
    for ef in (None, 1):  # 1: start from as few candidates as the limit allows
        got = query(col, np.zeros(DIM), limit=20, flt=flt, ef=ef)
        assert got == query(col, np.zeros(DIM), limit=20, flt=flt, exact=True)


async def test_due_policy_and_small_collections_stay_exact(log, manager, low_threshold):
    rng = np.random.default_rng(7)
    create(log)
    upsert(log, range(50), clustered(rng, 50))
    assert await manager.maintain() == 0  # below the threshold: never indexed
    assert index_status(log.col()) == (0, False)
    upsert(log, range(50, 150), clustered(rng, 100))
    assert await manager.maintain() == 1
    upsert(log, [1], clustered(rng, 1))
    assert await manager.maintain() == 0
    manager.params.interval = 0
    assert await manager.maintain() == 1  # the interval passed with a change pending
    assert await manager.maintain() == 0  # and nothing changed since


async def test_a_store_still_being_written_waits_for_busy_delta_changes_or_the_interval(log, manager, low_threshold):
    """A bulk load is not indexed piece by piece: while a store changes between passes
    its build waits until busy_delta changes (or the interval) have come; once it is
    quiet, the ordinary rule applies."""
    rng = np.random.default_rng(8)
    manager.params.busy_delta, manager.params.delta = 400, 100
    create(log)
    assert await manager.maintain() == 0
    upsert(log, range(150), clustered(rng, 150))
    assert await manager.maintain() == 0  # written since the last pass: waits
    upsert(log, range(150, 300), clustered(rng, 150))
    assert await manager.maintain() == 0
    assert await manager.maintain() == 1  # quiet for a pass: built, from the 300 there are
    upsert(log, range(300, 500), clustered(rng, 200))
    assert await manager.maintain() == 0  # 200 changes, busy: waits
    upsert(log, range(500, 700), clustered(rng, 200))
    assert await manager.maintain() == 1  # 400 changes: built even while busy
    assert len(log.col().vectors[""].index) == 700
    upsert(log, range(700, 750), clustered(rng, 50))
    manager.params.interval = 0
    assert await manager.maintain() == 1  # busy, but waiting longer than the interval is not allowed


async def test_dropped_collection_loses_its_files_and_a_recreated_one_starts_over(log, manager, low_threshold):
    rng = np.random.default_rng(8)
    create(log)
    upsert(log, range(200), clustered(rng, 200))
    await manager.maintain()
    old_dir = os.path.join(manager.root, f"c{log.col().cid}")
    assert os.path.isdir(old_dir)
    log.do(ops.DeleteCollection(), "c")
    create(log)
    upsert(log, range(150), clustered(rng, 150))
    assert await manager.maintain() == 1
    assert not os.path.exists(old_dir)
    assert len(log.col().vectors[""].index) == 150


async def test_named_vectors_get_one_index_each(log, manager, low_threshold):
    rng = np.random.default_rng(9)
    log.do(parse(ops.CreateCollection, {"vectors": {"a": {"size": DIM, "distance": "Dot"},
                                                            "b": {"size": 4, "distance": "Manhattan"}}}), "c")
    a, b = clustered(rng, 300), clustered(rng, 300, dim=4)
    log.do(parse(ops.Upsert, {"points": [
        {"id": i, "vector": {"a": a[i].tolist(), **({"b": b[i].tolist()} if i % 2 else {})}} for i in range(300)]}), "c")
    assert await manager.maintain() == 2
    col = log.col()
    assert index_status(col) == (450, False)
    body = {"query": b[7].tolist(), "using": "b", "limit": 1}
    assert search(col, SearchRequest.from_query(body), PARAMS)[0]["id"] == 7


def test_builder_is_a_spawned_process(log, manager):
    assert manager._builder()._mp_context.get_start_method() == "spawn"


def test_vector_store_stamps_changes_and_reused_slots():
    from storage.vectors.store import VectorStore
    store = VectorStore(2, "Euclid", capacity=2)
    for i in range(3):  # grows past the initial capacity
        store.put(bytes([i]), np.array([i, i], dtype=np.float32))
    snapshot = store.generation
    assert list(store.changed_since(snapshot)) == []
    store.remove(b"\x01")
    store.put(b"\x09", np.array([9, 9], dtype=np.float32))  # takes the freed slot 1
    assert store.slot_of[b"\x09"] == 1
    assert list(store.changed_since(snapshot)) == [1]
    assert store.changes_since(snapshot, 0) == 2
    store.mark_changed([b"\x00", b"missing"])
    assert list(store.changed_since(snapshot)) == [0, 1]
    assert list(store.alive_slots()) == [0, 1, 2]


def test_gathered_rows_of_a_cached_filter_are_reused_until_the_next_write():
    from storage.vectors.store import VectorStore
    store = VectorStore(3, "Dot")
    for i in range(64):
        store.put(i.to_bytes(9, "big"), np.full(3, i, dtype=np.float32))
    slots = store.cached(("filter", "group=3"), lambda: np.arange(3, 64, 10))
    rows = store.rows(slots)
    assert store.rows(slots) is rows and np.array_equal(rows, store.matrix[slots])
    narrowed = slots[slots != 13]  # not an array the cache holds: gathered afresh each time
    assert store.rows(narrowed) is not store.rows(narrowed)
    store.put((13).to_bytes(9, "big"), np.full(3, -1, dtype=np.float32))  # a write to a cached row
    again = store.cached(("filter", "group=3"), lambda: np.arange(3, 64, 10))
    assert again is not slots and len(store._cache) == 1  # the old generation's entries are gone
    assert store.rows(again)[1].tolist() == [-1, -1, -1]


def test_default_candidates_grow_with_the_index_and_hnsw_ef_is_taken_as_given():
    params = IndexParams(ef=64, ef_reference=100_000)
    assert [params.default_ef(n) for n in (0, 50_000, 100_000, 1_000_000, 10_000_000)] == [64, 64, 64, 128, 255]


async def test_a_search_asks_the_index_for_the_scaled_default_or_for_hnsw_ef(log, manager, low_threshold, monkeypatch):
    rng = np.random.default_rng(4)
    create(log)
    upsert(log, range(3000), clustered(rng, 3000))
    assert await manager.maintain() == 1
    col = log.col()
    index = col.vectors[""].index
    asked = []
    real = type(index).candidates
    monkeypatch.setattr(type(index), "candidates", lambda self, store, q, n: asked.append(n) or real(self, store, q, n))
    monkeypatch.setattr(PARAMS, "ef_reference", 300)  # 3000 indexed: ten times the reference
    query(col, rng.standard_normal(DIM))
    query(col, rng.standard_normal(DIM), ef=40)
    assert asked == [PARAMS.default_ef(3000), 40] and PARAMS.default_ef(3000) == 2 * PARAMS.ef


async def test_a_snapshot_covers_versions_up_to_the_newest_given_and_a_restart_knows_it(log, manager, low_threshold):
    """The index's offset is the collection's newest version when the snapshot was
    taken (payload-only changes and removed points count); a vector changed in place
    after it is in the delta after a restart."""
    from storage.ids import encode_id
    rng = np.random.default_rng(9)
    create(log)
    vectors = clustered(rng, 300)
    upsert(log, range(300), vectors)
    log.do(parse(ops.SetPayload, {"payload": {"a": 1}, "points": [5]}), "c")
    newest = log.col().newest_version
    assert newest == log.col().points[encode_id(5)].version == max(p.version for p in log.col().points.values())
    log.do(parse(ops.DeletePoints, {"points": [5]}), "c")
    assert log.col().newest_version == newest > max(p.version for p in log.col().points.values())
    await manager.maintain()
    assert log.col().vectors[""].index.offset == newest
    log.do(parse(ops.UpdateVectors, {"points": [{"id": 7, "vector": (-vectors[7]).tolist()}]}), "c")
    manager.close()
    log.reopen()
    assert log.col().newest_version == log.col().points[encode_id(7)].version > newest
    again = IndexManager(manager.root, log.state, manager.params)
    try:
        assert again.load() == 1
        store = log.col().vectors[""]
        assert {store.keys[s] for s in store.changed_since(store.index.generation)} == {encode_id(7)}
        assert query(log.col(), -vectors[7], limit=1)[0][0] == 7
    finally:
        again.close()
