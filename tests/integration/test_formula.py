"""Score-boosting formulas over prefetches against qdrant-client's local mode: a fixed
set covering every operator, randomly generated expressions, defaults, and Qdrant's
refusals, over REST and gRPC."""
import os
import random
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models

from tests.support import same_scored

SEED = int(os.environ.get("POINTLOG_TEST_SEED", "0"))
TAGS = ["red", "green", "blue"]


@pytest.fixture(scope="module")
def setup(module_server):
    remote = QdrantClient(url=module_server.url, timeout=30)
    grpc_client = QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True,
                               timeout=30)
    local = QdrantClient(":memory:")
    name = f"fo{uuid.uuid4().hex[:8]}"
    rng = random.Random(1000 + SEED)
    points = []
    for i in range(120):
        payload = {"n": rng.randint(-5, 20), "tag": rng.choice(TAGS),
                   "loc": {"lon": round(rng.uniform(-10, 30), 4), "lat": round(rng.uniform(35, 60), 4)},
                   "ts": f"2025-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T1{rng.randint(0, 9)}:00:00Z",
                   "nested": {"w": round(rng.uniform(0.1, 3), 3)}}
        if i % 5:
            payload["a"] = round(rng.uniform(0.5, 10), 3)
        points.append(models.PointStruct(id=i, vector={"d": [rng.gauss(0, 1) for _ in range(4)],
                                                       "e": [rng.gauss(0, 1) for _ in range(4)]}, payload=payload))
    for client in (remote, local):
        client.create_collection(name, vectors_config={
            "d": models.VectorParams(size=4, distance=models.Distance.COSINE),
            "e": models.VectorParams(size=4, distance=models.Distance.DOT)})
        client.upsert(name, points=points)
    return module_server, name, remote, grpc_client, local, rng


def _prefetch(rng):
    return [models.Prefetch(query=[rng.gauss(0, 1) for _ in range(4)], using="d", limit=30),
            models.Prefetch(query=[rng.gauss(0, 1) for _ in range(4)], using="e", limit=30)]


FIXED = [
    ({"sum": ["$score", {"mult": [0.5, "a"]}]}, {"a": 1.0}),
    ({"sum": ["$score[0]", "$score[1]", {"key": "tag", "match": {"value": "red"}}]}, {}),
    ({"mult": ["$score", {"sum": [1, {"mult": [0.2, {"key": "n", "range": {"gte": 5}}]}]}]}, {}),
    ({"sum": ["$score", {"exp_decay": {"x": "n", "target": 10, "scale": 5, "midpoint": 0.3}}]}, {}),
    ({"sum": ["$score", {"gauss_decay": {"x": {"geo_distance": {"origin": {"lon": 10, "lat": 50}, "to": "loc"}},
                                         "scale": 500000}}]}, {}),
    ({"sum": ["$score", {"lin_decay": {"x": {"datetime_key": "ts"}, "target": {"datetime": "2025-05-15T00:00:00Z"},
                                       "scale": 8640000, "midpoint": 0.2}}]}, {}),
    ({"sum": [{"pow": {"base": "nested.w", "exponent": 2}}, {"sqrt": {"abs": "n"}}, {"neg": "$score[1]"}]}, {}),
    ({"sum": [{"ln": {"sum": [2, "$score"]}}, {"log10": "nested.w"}, {"exp": {"neg": "nested.w"}}]}, {}),
    ({"div": {"left": "$score", "right": {"sum": ["n", -3]}, "by_zero_default": 42}}, {}),
    ({"max": ["$score[0]", "$score[1]", {"min": [0.1, "a"]}]}, {"a": 0, "$score[1]": -1}),
    ({"mult": [{"has_id": [1, 2, 3, 4, 6, 7, 8, 9, 11, 12]}, "a"]}, {}),  # stops at a zero: no default needed
    ({"acosh": {"sum": [1, {"abs": "$score"}]}}, {}),
    ({"sum": [{"must_not": [{"key": "tag", "match": {"any": ["red", "blue"]}}]}, "$score"]}, {}),
    ({"sum": [{"has_vector": "d"}, {"is_empty": {"key": "a"}}, "$score"]}, {}),
]


def _compare(setup, formula: dict, defaults: dict, rng, limit=10, **kwargs):
    _server, name, remote, grpc_client, local, _rng = setup
    query = models.FormulaQuery.model_validate({"formula": formula, "defaults": defaults})
    prefetch = _prefetch(rng)
    want = local.query_points(name, prefetch=prefetch, query=query, limit=limit, **kwargs).points
    same_scored(remote.query_points(name, prefetch=prefetch, query=query, limit=limit, **kwargs).points, want)
    same_scored(grpc_client.query_points(name, prefetch=prefetch, query=query, limit=limit, **kwargs).points, want)
    return want


@pytest.mark.parametrize("n", range(len(FIXED)))
def test_each_operator_answers_like_local_mode(setup, n):
    formula, defaults = FIXED[n]
    rng = random.Random(n + SEED)
    assert _compare(setup, formula, defaults, rng)
    _compare(setup, formula, defaults, rng, limit=5, offset=3, with_payload=True)
    _compare(setup, formula, defaults, rng, query_filter=models.Filter(must=[models.FieldCondition(
        key="tag", match=models.MatchValue(value="green"))]))


def _random_expression(rng, depth=0):
    leaves = [lambda: round(rng.uniform(-2, 2), 3), lambda: "$score", lambda: "$score[1]", lambda: "n",
              lambda: "nested.w", lambda: {"key": "tag", "match": {"value": rng.choice(TAGS)}},
              lambda: {"key": "n", "range": {"lt": rng.randint(0, 15)}}]
    if depth >= 3 or rng.random() < 0.3:
        return rng.choice(leaves)()
    kind = rng.choice(["sum", "mult", "max", "min", "neg", "abs", "exp_decay", "gauss_decay", "lin_decay"])
    if kind in ("sum", "mult", "max", "min"):
        return {kind: [_random_expression(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if kind in ("neg", "abs"):
        return {kind: _random_expression(rng, depth + 1)}
    return {kind: {"x": _random_expression(rng, depth + 1), "target": round(rng.uniform(-1, 1), 2),
                   "scale": round(rng.uniform(0.5, 5), 2), "midpoint": round(rng.uniform(0.1, 0.9), 2)}}


def test_random_expressions_answer_like_local_mode(setup):
    rng = random.Random(77 + SEED)
    for _ in range(40):
        _compare(setup, _random_expression(rng), {"$score[1]": round(rng.uniform(-1, 1), 2)}, rng,
                 limit=rng.randint(1, 20))


def test_formula_errors_as_qdrant(setup):
    server, name, *_ = setup
    url = f"{server.url}/collections/{name}/points/query"
    prefetch = {"query": [0.1, 0.2, 0.3, 0.4], "using": "d", "limit": 50}
    for formula, defaults, words in (
            ({"sum": ["$score", "a"]}, {}, "No value found for a in the payload nor the formula defaults"),
            ({"sum": ["$score", "tag"]}, {}, "Expected number value for tag"),
            ({"div": {"left": 1, "right": {"mult": [0, "n"]}}}, {}, "produced a non-finite number"),
            ({"sqrt": -1}, {}, "produced a non-finite number"),
            ({"sum": ["$score[x]"]}, {}, "Invalid score pattern: $score[x]"),
            ({"exp_decay": {"x": "n", "midpoint": 1.5}}, {}, "Decay midpoint should be in the range (0.0, 1.0)"),
            ({"lin_decay": {"x": "n", "scale": 0}}, {}, "Scale must be non-zero positive"),
            ({"max": []}, {}, "`max` needs at least one operand"),
            ({"datetime": "yesterday"}, {}, "Expected datetime in supported format"),
            ({"geo_distance": {"origin": {"lon": 1, "lat": 2}, "to": "tag"}}, {}, "Expected geo point for tag")):
        r = httpx.post(url, json={"prefetch": prefetch, "query": {"formula": formula, "defaults": defaults}})
        assert r.status_code == 400 and words in r.json()["status"]["error"], (formula, r.text)
    r = httpx.post(url, json={"query": {"formula": "$score"}})
    assert r.status_code == 400 and "needs `prefetch`" in r.text
    r = httpx.post(url, json={"prefetch": prefetch, "query": {"formula": "$score", "weights": [1]}})
    assert r.status_code == 400 and "`query.weights` is not supported" in r.text
