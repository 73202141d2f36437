"""Filters and payload paths, checked differentially against qdrant-client's local mode.

Local mode (``QdrantClient(":memory:")``) is a pure-Python reference implementation of
Qdrant's filter semantics. The same raw JSON filter goes to our evaluator and, parsed
with ``models.Filter.model_validate``, to local mode; the matched id sets must be equal.
Everything is seeded, so a failure reproduces exactly.
"""
import random
import uuid

import pytest
from qdrant_client import QdrantClient, models

from storage import paths
from storage.errors import BadRequest, Unprocessable
from storage.filters import compile_filter, parse_datetime
from storage.ids import parse_id

SEED = 20240607
N_POINTS = 360
N_RANDOM_FILTERS = 900

WORDS = ["the", "quick", "Brown", "fox", "jumps", "över", "lazy", "dog", "Fox's", "x_y", "42",
         "DOG", "brown-fox"]
STRINGS = ["red", "green", "blue", "Red", "dark-blue", "x_y", "", "1", "true"]
DATETIMES = [
    "2024-03-05T12:00:00Z", "2024-03-05T12:00:00+02:00", "2024-03-05T12:00:00", "2024-03-05",
    "2024-03-05 12:00:00", "2024-03-05T11:59:59.999999Z", "2024-03-05T12:00:00.5-01:30",
    "2023-12-31T23:59:59Z", "2024-03-06", "2024-03-05T12:00", "2024-03-05T12:00:00.123456789Z",
    "2024-03-05 12:00:00 +01:00", "2024-03-05T12:00:00+01", "2024-03-05t10:00:00z",
    "not a date", "2024-13-01", "2024-03-05T12:00Z", "", "2024-02-30",
]
DATETIME_BOUNDS = ["2024-03-05T12:00:00Z", "2024-03-05", "2024-03-05T12:00:00+02:00",
                   "2024-03-05T12:00:00", "2024-01-01T00:00:00Z", "2024-03-06T00:00:00-05:00"]


# =========================================================================== dataset

def _geo(rng):
    return {"lon": round(rng.uniform(0, 10), 4), "lat": round(rng.uniform(40, 50), 4)}


def _sentence(rng):
    words = [rng.choice(WORDS) for _ in range(rng.randint(0, 6))]
    return rng.choice([" ", ", ", "  ", ". "]).join(words)


def _scalar(rng):
    return rng.choice([
        rng.randint(-3, 3), rng.choice([-1.5, 0.0, 1.0, 2.0, 2.5]), rng.random() < 0.5,
        rng.choice(STRINGS), None,
    ])


def _item(rng):
    item = {}
    if rng.random() < 0.9:
        item["k"] = rng.choice(STRINGS[:4] + [1])
    if rng.random() < 0.9:
        item["v"] = rng.choice([rng.randint(0, 5), rng.randint(0, 5) + 0.5, None, [1, 2], True, 1.0])
    if rng.random() < 0.6:
        item["tags"] = [rng.choice(STRINGS[:5]) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.3:
        item["sub"] = [{"x": rng.randint(0, 3)} for _ in range(rng.randint(0, 2))]
    return item


def _obj(rng):
    return {"a": rng.choice([rng.randint(0, 4), None, "a", [1, 2], True, False, 1.0, [True, 0]]),
            "b": rng.choice(STRINGS[:5]),
            "c": {"d": rng.choice([rng.randint(0, 3), [1, 2, 3], None])}}


GENERATORS = {
    "i": lambda r: r.choice([r.randint(-3, 3), r.randint(-3, 3), r.choice([1.0, 2.5, -0.5]), True, False,
                             "2", None, [r.randint(-3, 3) for _ in range(r.randint(0, 3))],
                             [1, None], [], [[1, 2], 3], [True, 1]]),
    "s": lambda r: r.choice([r.choice(STRINGS), r.choice(STRINGS), [r.choice(STRINGS) for _ in range(r.randint(0, 3))],
                             [r.choice(STRINGS), None], 1, None, [["red"]], {"red": 1}]),
    "b": lambda r: r.choice([True, False, [True, False], [False], 0, 1, "true", None]),
    "f": lambda r: r.choice([round(r.uniform(-10, 10), 1), r.randint(-10, 10),
                             [round(r.uniform(-10, 10), 1) for _ in range(2)], "5", None, [], 10**30]),
    "t": lambda r: r.choice([_sentence(r), _sentence(r), [_sentence(r), _sentence(r)], 42, None]),
    "dt": lambda r: r.choice([r.choice(DATETIMES), r.choice(DATETIMES), [r.choice(DATETIMES), r.choice(DATETIMES)],
                              20240305, None]),
    "geo": lambda r: r.choice([_geo(r), _geo(r), [_geo(r), _geo(r)], {"lon": 5.0}, {"lon": "5", "lat": 45},
                               {**_geo(r), "alt": 3}, {"lon": True, "lat": 45}, None, [], {"lon": 5, "lat": 45}]),
    "arr": lambda r: r.choice([[], [None], [1, None], [1, 2, 3], [[1, 2], [3]], "x", [{"a": 1}], None]),
    "obj": lambda r: r.choice([_obj(r), _obj(r), [_obj(r) for _ in range(r.randint(0, 3))], [], 5, None, {}]),
    "items": lambda r: r.choice([[_item(r) for _ in range(r.randint(0, 4))], [_item(r) for _ in range(r.randint(1, 3))],
                                 _item(r), [_item(r), 7, None, [_item(r)]], None, []]),
    "n": lambda r: r.choice([None, [], [None], [1, None], {}, 0, "", [[]], [[None]]]),
    "q.k": lambda r: r.choice(STRINGS[:4]),
}


def make_points(rng):
    points = []
    used = set()
    for n in range(N_POINTS):
        if rng.random() < 0.5:
            pid = rng.randint(0, 10**6)
        else:
            pid = str(uuid.UUID(int=rng.getrandbits(128)))
        pid = parse_id(pid)
        if pid in used:
            continue
        used.add(pid)
        payload = {key: gen(rng) for key, gen in GENERATORS.items() if rng.random() < 0.8}
        vectors = {name: [rng.uniform(-1, 1), rng.uniform(-1, 1)] for name in ("a", "b") if rng.random() < 0.6}
        points.append((pid, payload, vectors))
    return points


@pytest.fixture(scope="module")
def dataset():
    rng = random.Random(SEED)
    points = make_points(rng)
    client = QdrantClient(":memory:")
    client.create_collection("c", vectors_config={
        "a": models.VectorParams(size=2, distance=models.Distance.DOT),
        "b": models.VectorParams(size=2, distance=models.Distance.DOT),
    })
    client.upsert("c", points=[models.PointStruct(id=pid, vector=vec, payload=payload)
                               for pid, payload, vec in points])
    yield client, points
    client.close()


def local_ids(client, raw):
    flt = models.Filter.model_validate(raw)
    records, _ = client.scroll("c", scroll_filter=flt, limit=100_000, with_payload=False, with_vectors=False)
    return {parse_id(r.id) for r in records}


def our_ids(points, raw):
    compiled = compile_filter(raw)
    return {pid for pid, payload, vec in points if compiled.matches(pid, payload, frozenset(vec))}


def assert_same(dataset, raw):
    client, points = dataset
    expected = local_ids(client, raw)
    got = our_ids(points, raw)
    if got != expected:
        payloads = {pid: payload for pid, payload, _ in points}
        extra = sorted(map(str, got - expected))[:3]
        missing = sorted(map(str, expected - got))[:3]
        detail = {"only_ours": {i: payloads.get(parse_id(int(i) if i.isdigit() else i)) for i in extra},
                  "only_local": {i: payloads.get(parse_id(int(i) if i.isdigit() else i)) for i in missing}}
        pytest.fail(f"filter {raw!r}\nmatched {len(got)} vs local {len(expected)}\n{detail}")
    return got


# ================================================================ hand-written cases

def fc(key, **cond):
    return {"key": key, **cond}


def ring(*lon_lat):
    return {"points": [{"lon": lon, "lat": lat} for lon, lat in lon_lat]}


HAND_WRITTEN = [
    {},
    {"must": []},
    {"should": []},
    {"must_not": []},
    {"should": [], "must": [fc("i", match={"value": 1})]},
    {"must": fc("i", match={"value": 1})},  # a single condition instead of a list
    {"must": [fc("i", match={"value": 1})]},
    {"must": [fc("i", match={"value": True})]},
    {"must": [fc("i", match={"value": "2"})]},
    {"must": [fc("b", match={"value": False})]},
    {"must": [fc("b", match={"value": 0})]},
    {"must": [fc("s", match={"value": "red"})]},
    {"must": [fc("s", match={"value": ""})]},
    {"must": [fc("s", match={"any": ["red", "blue"]})]},
    {"must": [fc("s", match={"any": []})]},
    {"must": [fc("i", match={"any": [1, 2, 3]})]},
    {"must": [fc("s", match={"except": ["red", "blue"]})]},
    {"must": [fc("i", match={"except": [1]})]},
    {"must": [fc("i", match={"except": []})]},
    {"must": [fc("n", match={"except": [1]})]},
    {"must": [fc("arr", match={"except": [1]})]},
    {"must_not": [fc("s", match={"except": ["red"]})]},
    {"must": [fc("t", match={"text": "fox"})]},
    {"must": [fc("t", match={"text": "Brown FOX"})]},
    {"must": [fc("t", match={"text": ""})]},
    {"must": [fc("t", match={"text": "x_y"})]},
    {"must": [fc("t", match={"text": "över"})]},
    {"must": [fc("t", match={"text_any": "cat dog"})]},
    {"must": [fc("t", match={"text_any": ""})]},
    {"must": [fc("t", match={"phrase": "brown fox"})]},
    {"must": [fc("t", match={"phrase": "quick brown"})]},
    {"must": [fc("t", match={"phrase": ""})]},
    {"must": [fc("s", match={"prefix": "re"})]},
    {"must": [fc("s", match={"prefix": ""})]},
    {"must": [fc("s", match={"substring": "blu"})]},
    {"must": [fc("i", range={"gt": 0})]},
    {"must": [fc("i", range={"gte": 1, "lt": 3})]},
    {"must": [fc("i", range={})]},
    {"must": [fc("f", range={"gt": -2.5, "lte": 2.5})]},
    {"must": [fc("f", range={"gt": 1, "gte": 1})]},
    {"must": [fc("f", range={"lt": 5, "lte": 3})]},
    {"must": [fc("dt", range={"gte": "2024-03-05T12:00:00Z"})]},
    {"must": [fc("dt", range={"gt": "2024-03-05"})]},
    {"must": [fc("dt", range={"lt": "2024-03-05T12:00:00+02:00"})]},
    {"must": [fc("dt", range={"gte": "2024-03-05T12:00:00", "lte": "2024-03-05T12:00:00"})]},
    {"must": [fc("geo", geo_bounding_box={"top_left": {"lon": 2, "lat": 48}, "bottom_right": {"lon": 8, "lat": 42}})]},
    {"must": [fc("geo", geo_bounding_box={"top_left": {"lon": 8, "lat": 48}, "bottom_right": {"lon": 2, "lat": 42}})]},
    {"must": [fc("geo", geo_radius={"center": {"lon": 5, "lat": 45}, "radius": 250_000})]},
    {"must": [fc("geo", geo_radius={"center": {"lon": 5, "lat": 45}, "radius": 0})]},
    {"must": [fc("geo", geo_polygon={"exterior": ring((1, 41), (9, 41), (9, 49), (1, 49), (1, 41)),
        "interiors": [ring((3, 43), (7, 43), (5, 47), (3, 43))]})]},
    {"must": [fc("geo", geo_polygon={"exterior": ring((0, 40), (10, 40), (5, 50), (0, 40))})]},
    # the dataset holds {"lon": 5, "lat": 45} many times: on these edges, never inside
    {"must": [fc("geo", geo_bounding_box={"top_left": {"lon": 4, "lat": 46}, "bottom_right": {"lon": 6, "lat": 45}})]},
    {"must": [fc("geo", geo_bounding_box={"top_left": {"lon": 5, "lat": 46}, "bottom_right": {"lon": 6, "lat": 44}})]},
    {"must": [fc("geo", geo_polygon={"exterior": ring((5, 40), (5, 50), (0, 50), (0, 40), (5, 40))})]},
    {"must": [fc("geo", geo_polygon={"exterior": ring((0, 40), (10, 40), (10, 50), (0, 50), (0, 40)),
        "interiors": [ring((5, 45), (7, 45), (7, 47), (5, 45))]})]},
    {"must": [fc("obj.a", match={"value": 1})]},
    {"must": [fc("obj.a", match={"value": True})]},
    {"must": [fc("items[].v", match={"any": [1, 2]})]},
    {"must": [fc("items[].v", range={"gte": 1})]},
    {"must": [fc("arr", values_count={"gt": 1})]},
    {"must": [fc("arr", values_count={"lt": 1})]},
    {"must": [fc("missing", values_count={"lt": 1})]},
    {"must": [fc("obj", values_count={"gte": 1, "lte": 1})]},
    {"must": [fc("items[].tags", values_count={"gt": 1, "lt": 3})]},
    {"must": [fc("n", values_count={"gte": 1})]},
    {"must": [{"is_empty": {"key": "n"}}]},
    {"must": [{"is_empty": {"key": "arr"}}]},
    {"must": [{"is_empty": {"key": "items[].tags"}}]},
    {"must": [{"is_empty": {"key": "missing"}}]},
    {"must_not": [{"is_empty": {"key": "n"}}]},
    {"must": [{"is_null": {"key": "n"}}]},
    {"must": [{"is_null": {"key": "arr"}}]},
    {"must": [{"is_null": {"key": "items[].v"}}]},
    {"must": [{"is_null": {"key": "missing"}}]},
    {"must": [fc("n", is_empty=True)]},
    {"must": [fc("n", is_empty=False)]},
    {"must": [fc("n", is_null=True)]},
    {"must": [fc("n", is_null=False)]},
    {"must": [fc("missing", is_null=False)]},
    {"must": [fc("obj.a", match={"value": 1})]},
    {"must": [fc("obj.a", match={"any": [1, 2]})]},
    {"must": [fc("obj[].b", match={"value": "red"})]},
    {"must": [fc("obj[0].b", match={"value": "red"})]},
    {"must": [fc("obj.c.d", range={"gte": 1})]},
    {"must": [fc("obj[].c.d", values_count={"gt": 1})]},
    {"must": [fc("items[].k", match={"value": "red"})]},
    {"must": [fc("items[].tags[]", match={"value": "red"})]},
    {"must": [fc("items[].tags", match={"value": "red"})]},
    {"must": [fc("items[1].v", range={"gt": 2})]},
    {"must": [fc("items[].sub[].x", match={"value": 2})]},
    {"must": [fc("arr[]", match={"value": 1})]},
    {"must": [fc("arr[0]", match={"value": 1})]},
    {"must": [fc("arr", match={"value": 1})]},
    {"must": [fc('"q.k"', match={"value": "red"})]},
    {"must": [fc("q", match={"value": "red"})]},
    {"must": [{"has_vector": "a"}]},
    {"must": [{"has_vector": "b"}], "must_not": [{"has_vector": "a"}]},
    {"must": [{"has_vector": "nope"}]},
    {"should": [{"has_vector": "a"}, {"has_vector": "b"}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [fc("k", match={"value": "red"}),
                                                             fc("v", range={"gte": 2})]}}}]},
    {"must": [{"nested": {"key": "items[]", "filter": {"must": [fc("k", match={"value": "red"})]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must_not": [fc("k", match={"value": "red"})]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [{"is_empty": {"key": "tags"}}]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [{"nested": {"key": "sub", "filter": {
        "must": [fc("x", match={"value": 1})]}}}]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must_not": [{"has_id": [1]}]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [{"has_vector": "a"}]}}}]},
    {"must": [{"nested": {"key": "obj", "filter": {"must": [fc("b", match={"value": "red"})]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {}}}]},
    {"min_should": {"conditions": [fc("s", match={"value": "red"}), fc("i", range={"gt": 0}),
                                   {"has_vector": "a"}], "min_count": 2}},
    {"min_should": {"conditions": [fc("s", match={"value": "red"}), {"has_vector": "a"}], "min_count": 3}},
    {"min_should": {"conditions": [], "min_count": 1}},
    {"min_should": {"conditions": [{}], "min_count": 1}},
    {"must_not": [{}]},
    {"should": [{}]},
    {"must": [{"must": [], "should": []}]},
    {"should": [{"must": [fc("s", match={"value": "red"}), {"has_vector": "a"}]},
                {"must_not": [{"is_empty": {"key": "t"}}]}]},
    {"must": [{"slice": {"total": 3, "index": 1}}]},
    {"must": [{"slice": {"total": 1, "index": 0}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [{"slice": {"total": 1, "index": 0}}]}}}]},
]


@pytest.mark.parametrize("raw", HAND_WRITTEN, ids=[str(i) for i in range(len(HAND_WRITTEN))])
def test_hand_written_filters_match_local_mode(dataset, raw):
    assert_same(dataset, raw)


def test_has_id_matches_local_mode(dataset):
    client, points = dataset
    rng = random.Random(SEED + 1)
    for _ in range(20):
        chosen = [pid for pid, _, _ in rng.sample(points, 5)]
        spelled = [pid.upper() if isinstance(pid, str) and rng.random() < 0.5 else pid for pid in chosen]
        spelled.append(10**12)  # not in the collection
        assert assert_same(dataset, {"must": [{"has_id": spelled}]}) == set(chosen)
        assert_same(dataset, {"must_not": [{"has_id": spelled}]})
        assert_same(dataset, {"should": [{"has_id": spelled[:2]}, {"has_id": spelled[2:]}]})


def test_geo_radius_uses_the_mean_earth_radius():
    from qdrant_client.local.geo import geo_distance

    point = {"lon": 1.0, "lat": 0.0}
    distance = geo_distance(0.0, 0.0, 1.0, 0.0)  # ~111195.08 m with R = 6371008.8 m
    for radius, inside in ((distance + 0.01, True), (distance - 0.01, False), (distance, False)):
        raw = {"must": [fc("g", geo_radius={"center": {"lon": 0, "lat": 0}, "radius": radius})]}
        assert compile_filter(raw).matches(1, {"g": point}, ()) is inside


def test_candidate_ids():
    flt = compile_filter({"must": [{"has_id": [1, 2, 3]}, {"has_id": [2, 3, 4]}, {"key": "a", "match": {"value": 1}}]})
    assert flt.candidate_ids == frozenset({2, 3})
    assert compile_filter({"should": [{"has_id": [1]}]}).candidate_ids is None
    assert compile_filter({}).matches_all
    assert compile_filter({"should": [], "must": [{}]}).matches_all
    assert not compile_filter({"must": [{"has_id": []}]}).matches_all
    assert compile_filter(None) is None


def test_has_vector_unnamed_default_vector():
    client = QdrantClient(":memory:")
    client.create_collection("u", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.upsert("u", points=[models.PointStruct(id=i, vector=[1.0, 0.0]) for i in range(3)])
    for name, expected in (("", 3), ("a", 0)):
        flt = models.Filter.model_validate({"must": [{"has_vector": name}]})
        assert client.count("u", count_filter=flt).count == expected
        ours = compile_filter({"must": [{"has_vector": name}]})
        assert sum(ours.matches(i, {}, frozenset({""})) for i in range(3)) == expected


# ==================================================================== random filters

ITEM_KEYS = ["k", "v", "tags", "tags[]", "sub[].x", "sub", "missing"]
TOP_KEYS = ["i", "s", "b", "f", "t", "dt", "geo", "arr", "arr[]", "arr[0]", "obj", "obj.a", "obj.b", "obj[].a",
            "obj[0].b", "obj.c.d", "obj[].c.d", "items", "items[].k", "items[].v", "items[].tags",
            "items[].tags[]", "items[0].k", "n", "missing", '"q.k"']
# keys whose values suit a kind of condition, so most random conditions select some points
TYPED_KEYS = {
    id(TOP_KEYS): {
        "str": ["s", "obj.b", "obj[].b", "obj[0].b", "items[].k", "items[].tags", "items[].tags[]", '"q.k"'],
        "int": ["i", "arr", "arr[]", "arr[0]", "obj.a", "obj[].a", "obj.c.d", "obj[].c.d", "items[].v", "f"],
        "bool": ["b", "i"],
        "text": ["t", "s", "items[].k"],
        "num": ["i", "f", "obj.a", "obj.c.d", "items[].v", "arr[]"],
        "dt": ["dt"],
        "geo": ["geo"],
    },
    id(ITEM_KEYS): {
        "str": ["k", "tags", "tags[]"], "int": ["v", "sub[].x"], "bool": ["k"], "text": ["k", "tags"],
        "num": ["v", "sub[].x"], "dt": ["k"], "geo": ["k"],
    },
}


def _random_field_condition(rng, keys):
    typed = TYPED_KEYS[id(keys)]

    def pick(kind):
        return rng.choice(typed[kind]) if rng.random() < 0.8 else rng.choice(keys)

    kind = rng.choice(["value", "value", "any", "except", "text", "range", "range", "dt", "geo", "count",
                       "is_empty", "is_null", "field_empty", "field_null", "prefix"])
    if kind == "value":
        value_type = rng.choice(["str", "int", "int", "bool"])
        value = {"str": lambda: rng.choice(STRINGS), "int": lambda: rng.randint(-3, 5),
                 "bool": lambda: rng.random() < 0.5}[value_type]()
        return fc(pick(value_type), match={"value": value})
    if kind in ("any", "except"):
        if rng.random() < 0.5:
            return fc(pick("str"), match={kind: rng.sample(STRINGS, rng.randint(0, 3))})
        return fc(pick("int"), match={kind: rng.sample(range(-3, 6), rng.randint(0, 3))})
    if kind == "text":
        op = rng.choice(["text", "text_any", "phrase"])
        return fc(pick("text"), match={op: " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 2)))})
    if kind == "prefix":
        op = rng.choice(["prefix", "substring"])
        return fc(pick("str"), match={op: rng.choice(["r", "re", "", "blue", "e", "x_"])})
    if kind == "range":
        bounds = {}
        for b in rng.sample(["gt", "gte", "lt", "lte"], rng.randint(0, 2)):
            bounds[b] = rng.choice([rng.randint(-5, 5), round(rng.uniform(-5, 5), 1)])
        return fc(pick("num"), range=bounds)
    if kind == "dt":
        bounds = {b: rng.choice(DATETIME_BOUNDS) for b in rng.sample(["gt", "gte", "lt", "lte"], rng.randint(1, 2))}
        return fc(pick("dt"), range=bounds)
    if kind == "geo":
        lon, lat = rng.uniform(0, 10), rng.uniform(40, 50)
        shape = rng.choice(["box", "radius", "polygon"])
        if shape == "box":
            w, h = rng.uniform(0.5, 6), rng.uniform(0.5, 6)
            cond = {"geo_bounding_box": {"top_left": {"lon": lon - w, "lat": min(lat + h, 90)},
                                         "bottom_right": {"lon": lon + w, "lat": lat - h}}}
        elif shape == "radius":
            cond = {"geo_radius": {"center": {"lon": lon, "lat": lat}, "radius": rng.uniform(1e4, 6e5)}}
        else:
            n = rng.randint(3, 6)
            ring = [{"lon": lon + rng.uniform(-5, 5), "lat": lat + rng.uniform(-5, 5)} for _ in range(n)]
            cond = {"geo_polygon": {"exterior": {"points": ring + [ring[0]]}}}
        return fc(pick("geo"), **cond)
    key = rng.choice(keys)
    if kind == "count":
        bounds = {b: rng.randint(0, 3) for b in rng.sample(["gt", "gte", "lt", "lte"], rng.randint(1, 2))}
        return fc(key, values_count=bounds)
    if kind == "is_empty":
        return {"is_empty": {"key": key}}
    if kind == "is_null":
        return {"is_null": {"key": key}}
    if kind == "field_empty":
        return fc(key, is_empty=rng.random() < 0.5)
    return fc(key, is_null=rng.random() < 0.5)


def _random_condition(rng, depth, keys, ids):
    r = rng.random()
    if depth > 0 and r < 0.15:
        return _random_filter(rng, depth - 1, keys, ids)
    if depth > 0 and r < 0.25 and keys is TOP_KEYS:
        return {"nested": {"key": rng.choice(["items", "items[]", "obj"]),
                           "filter": _random_filter(rng, depth - 1, ITEM_KEYS, ids)}}
    if r < 0.30:
        return {"has_id": rng.sample(ids, rng.randint(0, 200))}
    if r < 0.35:
        return {"has_vector": rng.choice(["a", "b", "x"])}
    if r < 0.37:
        total = rng.randint(1, 4)
        return {"slice": {"total": total, "index": rng.randrange(total)}}
    return _random_field_condition(rng, keys)


def _random_filter(rng, depth, keys, ids):
    raw = {}
    for clause in rng.sample(["must", "should", "must_not", "min_should"], rng.choice([1, 1, 2, 3])):
        conds = [_random_condition(rng, depth, keys, ids) for _ in range(rng.choice([0, 1, 1, 2, 2, 3]))]
        if clause == "min_should":
            raw[clause] = {"conditions": conds, "min_count": rng.randint(1, max(1, len(conds)))}
        elif len(conds) == 1 and rng.random() < 0.3:
            raw[clause] = conds[0]
        else:
            raw[clause] = conds
    return raw


def _random_filters():
    rng = random.Random(SEED + 2)
    ids = [pid for pid, _, _ in make_points(random.Random(SEED))]
    return [_random_filter(rng, 2, TOP_KEYS, ids) for _ in range(N_RANDOM_FILTERS)]


RANDOM_BATCHES = 10


@pytest.mark.parametrize("batch", range(RANDOM_BATCHES))
def test_random_filters_match_local_mode(dataset, batch):
    filters = _random_filters()
    size = len(filters) // RANDOM_BATCHES
    for raw in filters[batch * size:(batch + 1) * size]:
        assert_same(dataset, raw)


def test_random_filters_are_not_trivial(dataset):
    """Guard against a generator that only produces match-all or match-nothing filters."""
    _, points = dataset
    sizes = [len(our_ids(points, raw)) for raw in _random_filters()]
    assert sum(0 < s < len(points) for s in sizes) > len(sizes) / 3


# ============================================================================ errors

BAD_FORMAT = [
    ("not a filter", "expected struct Filter"),
    ({"must": [{"key": "a", "match": {"value": 1}, "foo": 1}]}, "unknown field `foo`"),
    ({"muts": []}, "unknown field `muts`"),
    ({"must": [{"foo": "bar"}]}, "Expected some form of condition"),
    ({"must": ["a"]}, "Expected some form of condition"),
    ({"must": [[{"key": "a", "match": {"value": 1}}]]}, "Expected some form of condition"),
    ({"must": [{"key": 5, "match": {"value": 1}}]}, "expected a payload key"),
    ({"must": [{"key": "a..b", "match": {"value": 1}}]}, "Invalid json path"),
    ({"must": [{"key": "", "match": {"value": 1}}]}, "Invalid json path"),
    ({"must": [{"key": "a", "match": {"value": 1.5}}]}, "filter.must[0].match.value"),
    ({"must": [{"key": "a", "match": {"value": None}}]}, "expected a string, an integer or a boolean"),
    ({"must": [{"key": "a", "match": {"value": 2**63}}]}, "match.value"),
    ({"must": [{"key": "a", "match": {"value": [1]}}]}, "match.value"),
    ({"must": [{"key": "a", "match": {"any": [1, "a"]}}]}, "not mixed"),
    ({"must": [{"key": "a", "match": {"any": [True]}}]}, "not mixed"),
    ({"must": [{"key": "a", "match": {"any": "a"}}]}, "expected a list"),
    ({"must": [{"key": "a", "match": {"except": [1.5]}}]}, "match.except"),
    ({"must": [{"key": "a", "match": {"text": 5}}]}, "expected a string"),
    ({"must": [{"key": "a", "match": {"foo": 5}}]}, "unknown field `foo`"),
    ({"must": [{"key": "a", "match": {"value": 1, "any": [1]}}]}, "exactly one"),
    ({"must": [{"key": "a", "match": {}}]}, "exactly one"),
    ({"must": [{"key": "a", "match": 5}]}, "expected a match condition"),
    ({"must": [{"key": "a", "range": {"gt": "x"}}]}, "invalid datetime"),
    ({"must": [{"key": "a", "range": {"gt": 1, "lt": "2024-01-01"}}]}, "all numbers or all"),
    ({"must": [{"key": "a", "range": {"gt": True}}]}, "all numbers or all"),
    ({"must": [{"key": "a", "range": {"gt": 1, "between": 2}}]}, "unknown field `between`"),
    ({"must": [{"key": "a", "range": [1, 2]}]}, "expected a range"),
    ({"must": [{"key": "a", "values_count": {"gt": -1}}]}, "unsigned"),
    ({"must": [{"key": "a", "values_count": {"gt": 1.5}}]}, "expected an integer"),
    ({"must": [{"key": "a", "is_empty": "yes"}]}, "expected a boolean"),
    ({"must": [{"key": "g", "geo_radius": {"center": {"lon": 1, "lat": 95}, "radius": 1}}]}, "within [-90;90]"),
    ({"must": [{"key": "g", "geo_radius": {"center": {"lon": 1}, "radius": 1}}]}, "missing field `lat`"),
    ({"must": [{"key": "g", "geo_radius": {"center": {"lon": 1, "lat": 2}}}]}, "missing field `radius`"),
    ({"must": [{"key": "g", "geo_radius": {"center": {"lon": "1", "lat": 2}, "radius": 5}}]}, "must be numbers"),
    ({"must": [{"key": "g", "geo_bounding_box": {"top_left": {"lon": 1, "lat": 2}}}]}, "missing field `bottom_right`"),
    ({"must": [{"key": "g", "geo_polygon": {"exterior": {"points": "x"}}}]}, "expected a sequence"),
    ({"must": [{"has_id": 5}]}, "expected a sequence of point ids"),
    ({"must": [{"has_id": [-1]}]}, "not a valid point ID"),
    ({"must": [{"has_id": ["not-a-uuid"]}]}, "not a valid point ID"),
    ({"must": [{"has_id": [1], "key": "a"}]}, "unknown field `has_id`"),
    ({"must": [{"has_vector": 1}]}, "expected a vector name"),
    ({"must": [{"has_vector": "a", "x": 1}]}, "unknown field `x`"),
    ({"must": [{"is_empty": "a"}]}, "expected struct PayloadField"),
    ({"must": [{"is_null": {"key": "a", "x": 1}}]}, "unknown field `x`"),
    ({"must": [{"nested": {"key": "a"}}]}, "missing field `filter`"),
    ({"must": [{"nested": {"key": "a", "filter": {"bad": 1}}}]}, "filter.must[0].nested.filter"),
    ({"min_should": {"conditions": [], "min_count": -1}}, "unsigned"),
    ({"min_should": {"conditions": [], "min_count": "2"}}, "expected an integer"),
    ({"min_should": {"conditions": {}, "min_count": 1}}, "expected a sequence"),
    ({"min_should": {"min_count": 1}}, "missing field `conditions`"),
    ({"min_should": [1]}, "expected struct MinShould"),
    ({"must": [{"slice": {"total": -1, "index": 0}}]}, "unsigned"),
    # Qdrant reads `total` as a NonZeroU32: 0 is a format error (400), not a 422.
    ({"must": [{"slice": {"total": 0, "index": 0}}]}, "expected a nonzero u32"),
    ({"should": [{"must": [{"key": "a", "match": {"value": 1.5}}]}]}, "filter.should[0].must[0].match.value"),
]

BAD_VALIDATION = [
    ({"min_should": {"conditions": [{"has_vector": "a"}], "min_count": 0}}, "must be 1 or larger"),
    ({"must": [{"key": "a"}]}, "At least one field condition must be specified"),
    ({"must": [{"key": "a", "match": None, "range": None}]}, "At least one field condition must be specified"),
    ({"must": [{"key": "g", "geo_polygon": {"exterior": ring((0, 0), (1, 0), (0, 0))}}]}, "at least 4"),
    ({"must": [{"key": "g", "geo_polygon": {"exterior": ring((0, 0), (1, 0), (1, 1), (0, 1))}}]}, "closed line"),
    ({"must": [{"key": "g", "geo_polygon": {"exterior": ring((0, 0), (4, 0), (4, 4), (0, 0)),
        "interiors": [ring((1, 1), (2, 1), (1, 1))]}}]}, "interiors[0]"),
    ({"must": [{"slice": {"total": 2, "index": 2}}]}, "must be in [0;1]"),
]


@pytest.mark.parametrize("raw,fragment", BAD_FORMAT, ids=[str(i) for i in range(len(BAD_FORMAT))])
def test_malformed_filters_are_400(raw, fragment):
    with pytest.raises(BadRequest) as info:
        compile_filter(raw)
    assert info.value.status_code == 400
    assert fragment in info.value.message
    if "point ID" not in fragment:
        assert info.value.message.startswith("Format error in JSON body: ")


@pytest.mark.parametrize("raw,fragment", BAD_VALIDATION, ids=[str(i) for i in range(len(BAD_VALIDATION))])
def test_invalid_values_are_422(raw, fragment):
    with pytest.raises(Unprocessable) as info:
        compile_filter(raw)
    assert info.value.status_code == 422
    assert fragment in info.value.message
    assert info.value.message.startswith("Validation error in JSON body: [filter.")


def test_where_names_the_request_field():
    with pytest.raises(BadRequest) as info:
        compile_filter({"must": [{"key": "a", "match": {"value": 1.5}}]}, where="query_filter")
    assert "query_filter.must[0].match.value" in info.value.message


def test_null_optional_fields_are_absent():
    flt = compile_filter({"must": None, "should": [{"key": "a", "match": {"value": 1}, "range": None,
                                                   "is_empty": None}], "must_not": None, "min_should": None})
    assert flt.matches(1, {"a": 1}, ()) and not flt.matches(1, {"a": 2}, ())


# ========================================================================= datetimes

@pytest.mark.parametrize("text", DATETIMES + [
    " 2024-03-05T12:00:00Z", "2024-03-05 12:00:00 UTC", "2024-3-5", "2024-03-05T12:00:00+0100",
    "2024-03-05T12:00:00.1234567+01:00", "2024-03-05T24:00:00Z", "2024-03-05T12:00:60Z", "2024-03-05T12:00:00+05:60",
    "2024-03-05T12", "2024-03-05 12", "20240305", "2024-03-05T12:00:00.Z",
])
def test_datetime_parsing_matches_local_mode(text):
    from datetime import datetime, timezone

    from qdrant_client.local import datetime_utils

    reference = datetime_utils.parse(text)
    expected = None if reference is None else (reference - datetime(1970, 1, 1, tzinfo=timezone.utc)) // \
        __import__("datetime").timedelta(microseconds=1)
    assert parse_datetime(text) == expected


# ============================================================================= paths

def test_get_values():
    payload = {"a": {"b": [{"c": 1}, {"c": [2, 3]}, {"d": 4}, 5]}, "n": None, "q.k": 7}
    assert paths.get_values(payload, "a.b[].c") == [1, [2, 3]]
    assert paths.get_values(payload, "a.b[].c[]") == [2, 3]
    assert paths.get_values(payload, "a.b[1].c") == [[2, 3]]
    assert paths.get_values(payload, "a.b[9].c") == []
    assert paths.get_values(payload, "a.b.c") == []  # arrays only entered where the path says so
    assert paths.get_values(payload, "n") == [None]
    assert paths.get_values(payload, "missing") == []
    assert paths.get_values(payload, '"q.k"') == [7]


def _random_json(rng, depth=0):
    r = rng.random()
    if depth < 3 and r < 0.3:
        return {rng.choice("abcx"): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if depth < 3 and r < 0.5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice([1, "s", None, True, 2.5])


def _random_path(rng):
    parts = [rng.choice("abcx")]
    for _ in range(rng.randint(0, 3)):
        parts.append(rng.choice([".a", ".b", ".c", "[]", "[0]", "[1]", "[5]"]))
    return "".join(parts)


def test_set_and_delete_payload_match_local_mode():
    rng = random.Random(SEED + 3)
    client = QdrantClient(":memory:")
    client.create_collection("p", vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT))
    for case in range(400):
        payload = {k: _random_json(rng) for k in rng.sample("abcx", rng.randint(0, 4))}
        client.upsert("p", points=[models.PointStruct(id=1, vector=[1.0], payload=payload)])
        ours = paths.clone_json(payload)
        if rng.random() < 0.6:
            key = _random_path(rng) if rng.random() < 0.9 else None
            value = {rng.choice("abz"): rng.choice([1, None, [1], {"y": 2}]) for _ in range(rng.randint(0, 2))}
            client.set_payload("p", payload=value, points=[1], key=key)
            paths.set_at_path(ours, key, value)
            what = f"set_payload key={key!r} value={value!r}"
        else:
            keys = [_random_path(rng) for _ in range(rng.randint(1, 2))]
            client.delete_payload("p", keys=keys, points=[1])
            for key in keys:
                paths.delete_at_path(ours, key)
            what = f"delete_payload keys={keys!r}"
        (record,) = client.retrieve("p", ids=[1])
        assert ours == (record.payload or {}), f"case {case}: {what} on {payload!r}"


def test_set_payload_does_not_share_objects():
    payload = {"arr": [{}, {}]}
    value = {"x": {"y": [1]}}
    paths.set_at_path(payload, "arr[]", value)
    payload["arr"][0]["x"]["y"].append(2)
    assert payload["arr"][1]["x"]["y"] == [1] and value == {"x": {"y": [1]}}


def test_null_in_set_payload_deletes_key():
    payload = {"a": 1, "b": {"c": 1, "d": 2}}
    paths.set_at_path(payload, None, {"a": None})
    paths.set_at_path(payload, "b", {"c": None, "e": 3})
    assert payload == {"b": {"d": 2, "e": 3}}


@pytest.mark.parametrize("key", ["", "a.", ".a", "a[x]", "a b", "[0]", "a..b", "a.[0]", 'a."b', 5])
def test_invalid_paths(key):
    with pytest.raises(BadRequest):
        paths.parse_path(key)


def test_format_path_round_trips():
    for key in ["a", "a.b", "a[].b", "a[0].c", '"q.k".x', "a[1][]", 'a."b c"[0]']:
        assert paths.parse_path(paths.format_path(paths.parse_path(key))) == paths.parse_path(key)
