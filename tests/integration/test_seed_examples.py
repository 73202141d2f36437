"""Every example of the seed "Points" page, run against a real pointlog server.

The HTTP examples are extracted from the markdown at test time (a copy of the page
lives next to this file), so an example added to the page is a test that fails until
it is classified below. Each one runs twice (``?wait=true`` and the default, which
answers ``acknowledged``); each Python example runs through the unmodified
``qdrant-client``. Every run starts from a fresh collection holding the points the
example assumes, and is checked three ways:

- the answer has the right shape (UpdateResult, list of Records, scroll page, count);
- the state it leaves is what the example implies (hand-written checks per example);
- the state and the answer equal what the reference implementation, qdrant-client's
  local mode, gives for the same request on the same collection.
"""
import ast
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from qdrant_client import QdrantClient, models


PAGE = Path(__file__).with_name("seed_points.md")


# ---- the page ----------------------------------------------------------------------

@dataclass
class Example:
    line: int  # where the ```http block starts, 1-based
    heading: str
    method: str
    path: str  # with {collection_name} (and {point_id}) placeholders
    body: dict | None
    python: list = field(default_factory=list)  # source of the Python equivalents

    @property
    def suffix(self) -> str:
        return self.path.split("{collection_name}", 1)[1]

    def __str__(self) -> str:
        return f"line {self.line}: {self.method} {self.suffix}"


def _fenced_blocks(text: str):
    """(language, first line number, source) of each fenced block outside HTML comments."""
    lines = text.split("\n")
    in_comment = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<!--" in line:
            in_comment = True
        if in_comment and "-->" in line:
            in_comment = False
        if line.startswith("```") and line[3:].strip():
            start = i
            i += 1
            while not lines[i].startswith("```"):
                i += 1
            if not in_comment:
                yield line[3:].strip(), start + 1, "\n".join(lines[start + 1:i])
        i += 1


def load_examples() -> list:
    text = PAGE.read_text()
    headings = [(n + 1, line) for n, line in enumerate(text.split("\n")) if line.startswith("#")]
    examples = []
    for lang, line, source in _fenced_blocks(text):
        if lang == "http":
            first, _, rest = source.partition("\n")
            method, path = first.split()
            heading = [h for n, h in headings if n < line][-1].lstrip("# ")
            examples.append(Example(line, heading, method, path, json.loads(rest) if rest.strip() else None))
        elif lang == "python" and source.strip() and examples:
            # A Python block is the equivalent of the HTTP example it follows.
            examples[-1].python.append(source)
    return examples


EXAMPLES = load_examples()


# ---- the collections the examples assume --------------------------------------------

RED_UUID = "550e8400-e29b-41d4-a716-446655440000"
DOC_UUID = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"


def _plain_point(pid, color, price, vector):
    payload = {"color": color, "price": price} if color else {"size": "L"}
    return {"id": pid, "vector": vector, "payload": payload}


def _named_point(pid, color, k):
    return {"id": pid, "payload": {"color": color, "price": k},
            "vector": {"image": [k + 1.0, 1.0, 0.5, 0.25], "text": [float(k + j) for j in range(8)]}}


WORLDS = {
    # 3-dim unnamed vectors: most examples. Points 0, 3, 100 (and 10, for the Python
    # variants) exist, as the payload examples assume; three points are red.
    "plain": ({"vectors": {"size": 3, "distance": "Dot"}}, [
        _plain_point(0, "red", 10, [0.1, 0.2, 0.3]),
        _plain_point(3, "red", 30, [0.3, 0.2, 0.1]),
        _plain_point(10, "blue", 100, [1.0, 0.0, 0.0]),
        _plain_point(42, None, None, [0.0, 1.0, 0.0]),
        _plain_point(100, "green", 1000, [0.0, 0.0, 1.0]),
        _plain_point(RED_UUID, "red", 5, [0.5, 0.5, 0.5]),
    ]),
    # Named vectors `image` (4, Cosine) and `text` (8, Dot), as the multi-vector examples use.
    "named": ({"vectors": {"image": {"size": 4, "distance": "Cosine"}, "text": {"size": 8, "distance": "Dot"}}}, [
        _named_point(0, "red", 0), _named_point(1, "red", 1), _named_point(2, "blue", 2),
        _named_point(3, "red", 3), _named_point(100, "green", 100),
    ]),
    # 4-dim unnamed vectors: the batch example.
    "wide": ({"vectors": {"size": 4, "distance": "Euclid"}}, [
        {"id": 2, "vector": [1.0, 1.0, 1.0, 1.0], "payload": {"color": "blue"}},
    ]),
}


# ---- what each example implies ------------------------------------------------------
# `state` maps id -> normalized record ({id, payload, vector}) after the example;
# `seed` is the same for the collection before it; `answer` is the HTTP result.

def _unit(v):
    n = sum(x * x for x in v) ** 0.5
    return [round(x / n, 5) for x in v]


def _vec(v):
    return [round(float(x), 5) for x in v]


def _reds(seed):
    return [pid for pid, r in seed.items() if r["payload"].get("color") == "red"]


def check_uuid_upsert(state, seed, answer):
    assert state[DOC_UUID] == {"id": DOC_UUID, "payload": {"color": "red"}, "vector": _vec([0.9, 0.1, 0.1])}
    assert len(state) == len(seed) + 1


def check_int_upsert(state, seed, answer):
    assert state[1] == {"id": 1, "payload": {"color": "red"}, "vector": _vec([0.9, 0.1, 0.1])}
    assert len(state) == len(seed) + 1


def check_three_upserted(state, seed, answer):
    # Point 3 existed (red, with a price): an upsert replaces the whole point.
    assert state[1] == {"id": 1, "payload": {"color": "red"}, "vector": _vec([0.9, 0.1, 0.1])}
    assert state[2] == {"id": 2, "payload": {"color": "green"}, "vector": _vec([0.1, 0.9, 0.1])}
    assert state[3] == {"id": 3, "payload": {"color": "blue"}, "vector": _vec([0.1, 0.1, 0.9])}
    assert len(state) == len(seed) + 2


def check_named_upsert(state, seed, answer):
    # Both points existed with payloads: the upsert drops them (no payload given).
    assert state[1] == {"id": 1, "payload": {}, "vector": {
        "image": _unit([0.9, 0.1, 0.1, 0.2]), "text": _vec([0.4, 0.7, 0.1, 0.8, 0.1, 0.1, 0.9, 0.2])}}
    assert state[2] == {"id": 2, "payload": {}, "vector": {
        "image": _unit([0.2, 0.1, 0.3, 0.9]), "text": _vec([0.5, 0.2, 0.7, 0.4, 0.7, 0.2, 0.3, 0.9])}}
    assert len(state) == len(seed)


def check_update_vectors(state, seed, answer):
    assert state[1]["vector"] == {"image": _unit([0.1, 0.2, 0.3, 0.4]), "text": seed[1]["vector"]["text"]}
    assert state[2]["vector"] == {"image": seed[2]["vector"]["image"],
                                  "text": _vec([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])}
    assert state[1]["payload"] == seed[1]["payload"] and state[2]["payload"] == seed[2]["payload"]
    assert {k: v for k, v in state.items() if k not in (1, 2)} == {k: v for k, v in seed.items() if k not in (1, 2)}


def check_delete_vectors(state, seed, answer):
    for pid in (0, 3, 100):  # the points stay, without vectors
        assert state[pid] == {**seed[pid], "vector": {}}
    assert state[1] == seed[1] and state[2] == seed[2]


def _payload_changed(state, seed, ids, change):
    assert set(state) == set(seed)
    for pid, record in seed.items():
        want = change(dict(record["payload"])) if pid in ids else record["payload"]
        assert state[pid] == {**record, "payload": want}, pid


PROPS = {"property1": "string", "property2": "string"}


def check_set_payload_ids(state, seed, answer):
    _payload_changed(state, seed, {0, 3, 100}, lambda p: {**p, **PROPS})


def check_set_payload_filter(state, seed, answer):
    _payload_changed(state, seed, set(_reds(seed)), lambda p: {**p, **PROPS})


def check_overwrite_payload(state, seed, answer):
    _payload_changed(state, seed, {0, 3, 100}, lambda p: dict(PROPS))


def _without_color_and_price(p):
    p.pop("color", None)
    p.pop("price", None)
    return p


def check_delete_payload_ids(state, seed, answer):
    _payload_changed(state, seed, {0, 3, 100}, _without_color_and_price)


def check_delete_payload_filter(state, seed, answer):
    _payload_changed(state, seed, set(_reds(seed)), _without_color_and_price)


def check_clear_payload(state, seed, answer):
    _payload_changed(state, seed, {0, 3, 100}, lambda p: {})


def check_delete_points_ids(state, seed, answer):
    assert state == {k: v for k, v in seed.items() if k not in (0, 3, 100)}


def check_delete_points_filter(state, seed, answer):
    assert state == {k: v for k, v in seed.items() if k not in _reds(seed)}


def check_retrieve(state, seed, answer):
    # Payload by default, no vector key; in the order asked.
    assert answer == [{"id": pid, "payload": seed[pid]["payload"]} for pid in (0, 3, 100)]
    assert state == seed


def check_get_point(state, seed, answer):
    assert _norm(answer) == seed[3]
    assert state == seed


def check_scroll(state, seed, answer):
    reds = sorted(_reds(seed), key=_scroll_key)
    assert answer == {"points": [{"id": reds[0], "payload": seed[reds[0]]["payload"]}], "next_page_offset": reds[1]}


def check_count(state, seed, answer):
    assert answer == {"count": len(_reds(seed))}


def check_batch(state, seed, answer):
    # Upserted, then every later operation touches it, and the last deletes it.
    assert 1 not in state
    assert state == seed


@dataclass
class Expect:
    method: str
    suffix: str
    world: str
    check: object


# In page order; test_every_example_is_classified keeps this in step with the page.
EXPECTED = [
    Expect("PUT", "/points", "plain", check_uuid_upsert),
    Expect("PUT", "/points", "plain", check_int_upsert),
    Expect("PUT", "/points", "plain", check_three_upserted),
    Expect("PUT", "/points", "plain", check_three_upserted),
    Expect("PUT", "/points", "named", check_named_upsert),
    Expect("PUT", "/points/vectors", "named", check_update_vectors),
    Expect("POST", "/points/vectors/delete", "named", check_delete_vectors),
    Expect("POST", "/points/payload", "plain", check_set_payload_ids),
    Expect("POST", "/points/payload", "plain", check_set_payload_filter),
    Expect("PUT", "/points/payload", "plain", check_overwrite_payload),
    Expect("POST", "/points/payload/delete", "plain", check_delete_payload_ids),
    Expect("POST", "/points/payload/delete", "plain", check_delete_payload_filter),
    Expect("POST", "/points/payload/clear", "plain", check_clear_payload),
    Expect("POST", "/points/delete", "plain", check_delete_points_ids),
    Expect("POST", "/points/delete", "plain", check_delete_points_filter),
    Expect("POST", "/points", "plain", check_retrieve),
    Expect("GET", "/points/{point_id}", "plain", check_get_point),
    Expect("POST", "/points/scroll", "plain", check_scroll),
    Expect("POST", "/points/count", "plain", check_count),
    Expect("POST", "/points/batch", "wide", check_batch),
]

# Examples pointlog cannot serve, with the reason and the 4xx status they must get
# instead (never a 500). Every example of the seed page is supported, so it is empty;
# features of newer Qdrant versions that pointlog lacks are covered by
# test_unsupported_features_answer_a_clear_4xx below.
UNSUPPORTED: dict = {}  # example line -> (status, message part, reason)

WRITES = {"/points", "/points/vectors", "/points/vectors/delete", "/points/payload", "/points/payload/delete",
          "/points/payload/clear", "/points/delete", "/points/batch"}


def _is_write(example: Example) -> bool:
    return example.suffix in WRITES and not (example.method == "POST" and example.suffix == "/points")


# ---- normalizing what pointlog and the reference return ------------------------------

def _scroll_key(pid):
    return (0, pid, "") if isinstance(pid, int) else (1, 0, uuid.UUID(pid).bytes)


def _norm_vector(v):
    if v is None:
        return None
    if isinstance(v, dict):
        return {name: _vec(x) for name, x in v.items()}
    return _vec(v)


def _norm(record) -> dict:
    """{id, payload, vector} of a REST record dict or a client Record / PointStruct."""
    if not isinstance(record, dict):
        record = record.model_dump()
    return {"id": record["id"], "payload": record.get("payload"),
            "vector": _norm_vector(record.get("vector"))}


def _norm_answer(value):
    """A client call's return value (remote or local) in a comparable form."""
    if isinstance(value, models.UpdateResult):
        return {"status": value.status.value}
    if isinstance(value, list):
        return [_norm_answer(v) for v in value]
    if isinstance(value, tuple):  # scroll: (records, next_page_offset)
        return [_norm_answer(v) for v in value[0]], value[1]
    if isinstance(value, models.CountResult):
        return {"count": value.count}
    if isinstance(value, (models.Record, models.PointStruct)):
        return _norm(value)
    return value


# ---- the reference: the same HTTP request against qdrant-client's local mode ---------

def _selector(body: dict):
    if body.get("points") is not None:
        return models.PointIdsList(points=body["points"])
    return models.FilterSelector(filter=models.Filter.model_validate(body["filter"]))


def _filter(body: dict):
    return models.Filter.model_validate(body["filter"]) if body.get("filter") else None


def reference_http(local: QdrantClient, name: str, method: str, suffix: str, body: dict | None, point_id=None):
    """What Qdrant answers to this request, as qdrant-client's local mode computes it."""
    body = body or {}
    route = (method, suffix)
    if route == ("PUT", "/points"):
        if "batch" in body:
            return local.upsert(name, points=models.Batch.model_validate(body["batch"]))
        return local.upsert(name, points=[models.PointStruct.model_validate(p) for p in body["points"]])
    if route == ("PUT", "/points/vectors"):
        return local.update_vectors(name, points=[models.PointVectors.model_validate(p) for p in body["points"]])
    if route == ("POST", "/points/vectors/delete"):
        return local.delete_vectors(name, vectors=body.get("vector", body.get("vectors")), points=_selector(body))
    if route == ("POST", "/points/payload"):
        return local.set_payload(name, payload=body["payload"], points=_selector(body), key=body.get("key"))
    if route == ("PUT", "/points/payload"):
        return local.overwrite_payload(name, payload=body["payload"], points=_selector(body))
    if route == ("POST", "/points/payload/delete"):
        return local.delete_payload(name, keys=body["keys"], points=_selector(body))
    if route == ("POST", "/points/payload/clear"):
        return local.clear_payload(name, points_selector=_selector(body))
    if route == ("POST", "/points/delete"):
        return local.delete(name, points_selector=_selector(body))
    if route == ("POST", "/points/batch"):
        return local.batch_update_points(name, models.UpdateOperations.model_validate(body).operations)
    if route == ("POST", "/points"):
        return local.retrieve(name, body["ids"], with_payload=body.get("with_payload", True),
                              with_vectors=body.get("with_vector", False))
    if route == ("GET", "/points/{point_id}"):
        return local.retrieve(name, [point_id], with_payload=True, with_vectors=True)[0]
    if route == ("POST", "/points/scroll"):
        return local.scroll(name, scroll_filter=_filter(body), limit=body.get("limit", 10),
                            with_payload=body.get("with_payload", True), with_vectors=body.get("with_vector", False))
    if route == ("POST", "/points/count"):
        return local.count(name, count_filter=_filter(body), exact=body.get("exact", True))
    raise AssertionError(f"no reference for {route}")


def _reference_answer(value):
    """The local-mode result as the REST answer pointlog gives, normalized."""
    value = _norm_answer(value)
    if isinstance(value, tuple):
        return {"points": value[0], "next_page_offset": value[1]}
    return value


def _rest_answer(result, example: Example):
    """pointlog's REST result, normalized like _reference_answer."""
    route = (example.method, example.suffix)
    if route == ("POST", "/points"):
        return [_norm(r) for r in result]
    if route == ("GET", "/points/{point_id}"):
        return _norm(result)
    if route == ("POST", "/points/scroll"):
        return {"points": [_norm(r) for r in result["points"]], "next_page_offset": result["next_page_offset"]}
    # Write results: their shape and status were checked already; local mode always
    # completes, so only "it is an UpdateResult" is compared here.
    if isinstance(result, list):
        return [{"status": "completed"} for _ in result]
    if isinstance(result, dict) and "operation_id" in result:
        return {"status": "completed"}
    return result


# ---- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def node(module_server):
    """One server for the whole module; every test works in its own collection."""
    return module_server


@pytest.fixture(scope="module")
def http(node):
    with httpx.Client(base_url=node.url, timeout=30) as client:
        yield client


def _collection_name() -> str:
    return f"seed_{uuid.uuid4().hex[:10]}"


def prepare(http: httpx.Client, world: str) -> tuple:
    """A pointlog collection and a local-mode twin, both holding the world's points."""
    config, points = WORLDS[world]
    name = _collection_name()
    r = http.put(f"/collections/{name}", json=config)
    assert r.status_code == 200 and r.json()["result"] is True, r.text
    r = http.put(f"/collections/{name}/points?wait=true", json={"points": points})
    assert r.status_code == 200 and r.json()["result"]["status"] == "completed", r.text
    local = QdrantClient(":memory:")
    create = models.CreateCollection.model_validate(config)
    local.create_collection(name, vectors_config=create.vectors)
    local.upsert(name, points=[models.PointStruct.model_validate(p) for p in points])
    return name, local


def dump_pointlog(http: httpx.Client, name: str) -> dict:
    everything = {"limit": 10000, "with_payload": True, "with_vector": True}
    r = http.post(f"/collections/{name}/points/scroll", json=everything)
    assert r.status_code == 200, r.text
    page = r.json()["result"]
    assert page["next_page_offset"] is None
    return {rec["id"]: _norm(rec) for rec in page["points"]}


def dump_reference(local: QdrantClient, name: str) -> dict:
    records, offset = local.scroll(name, limit=10000, with_payload=True, with_vectors=True)
    assert offset is None
    return {rec.id: _norm(rec) for rec in records}


# ---- the tests -------------------------------------------------------------------------

def test_every_example_is_classified():
    """The page's HTTP examples, in order, are exactly the ones this module expects."""
    found = [(e.method, e.suffix) for e in EXAMPLES]
    assert found == [(x.method, x.suffix) for x in EXPECTED], "the seed page changed: classify its examples"
    assert len(EXAMPLES) == 20
    # Every example has its Python equivalent, except the single-point GET (none on the page).
    assert [len(e.python) for e in EXAMPLES] == [1] * 16 + [0] + [1] * 3


def _example_id(param) -> str:
    return f"L{param.line}-{param.method}{param.suffix.replace('/', '_')}"


@pytest.mark.parametrize("wait", [True, False], ids=["wait", "nowait"])
@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=[_example_id(e) for e in EXAMPLES])
def test_http_example(node, http, index, wait):
    example, expect = EXAMPLES[index], EXPECTED[index]
    name, local = prepare(http, expect.world)
    seed = dump_pointlog(http, name)
    assert seed == dump_reference(local, name) and len(seed) == len(WORLDS[expect.world][1])

    path = example.path.replace("{collection_name}", name)
    point_id = None
    if "{point_id}" in path:
        point_id = 3
        path = path.replace("{point_id}", str(point_id))
    if wait:
        # Reads take no `wait`; like Qdrant, they ignore it.
        path += "?wait=true"
    response = http.request(example.method, path, json=example.body) if example.body is not None \
        else http.request(example.method, path)

    if example.line in UNSUPPORTED:
        status, message, _reason = UNSUPPORTED[example.line]
        assert response.status_code == status, response.text
        assert message in response.json()["status"]["error"]
        return

    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["status"] == "ok" and isinstance(envelope["time"], float)
    result = envelope["result"]
    if _is_write(example):
        status = "completed" if wait else "acknowledged"
        results = result if isinstance(result, list) else [result]
        if example.suffix == "/points/batch":
            assert isinstance(result, list) and len(result) == len(example.body["operations"])
        for one in results:
            assert set(one) == {"operation_id", "status"} and isinstance(one["operation_id"], int), one
            assert one["status"] == status
        if not wait:
            node.wait_caught_up()

    state = dump_pointlog(http, name)
    expect.check(state, seed, result)

    reference = reference_http(local, name, example.method, example.suffix, example.body, point_id)
    assert _rest_answer(result, example) == _reference_answer(reference)
    reference_state = dump_reference(local, name)
    assert state == reference_state
    assert list(state) == list(reference_state)  # the same scroll order, too


def test_batch_example_applies_every_operation_in_order(http):
    """The batch example ends by deleting its point; without that last operation,
    what remains shows each earlier one ran, in order."""
    example = next(e for e in EXAMPLES if e.suffix == "/points/batch")
    body = {"operations": example.body["operations"][:-1]}
    name, local = prepare(http, "wide")
    r = http.post(f"/collections/{name}/points/batch?wait=true", json=body)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["result"]] == ["completed"] * 7
    state = dump_pointlog(http, name)
    # upsert, update_vectors, delete_vectors "" -> no vector; overwrite, set, delete key,
    # then clear -> empty payload.
    assert state[1] == {"id": 1, "payload": {}, "vector": {}}
    reference_http(local, name, "POST", "/points/batch", body)
    assert state == dump_reference(local, name)
    # The same without the clear: the payload the set/delete steps leave.
    name, local = prepare(http, "wide")
    body = {"operations": example.body["operations"][:-2]}
    r = http.post(f"/collections/{name}/points/batch?wait=true", json=body)
    assert r.status_code == 200, r.text
    assert dump_pointlog(http, name)[1]["payload"] == {"test_payload": "1", "test_payload_3": "3"}


PYTHON = [(i, j) for i, e in enumerate(EXAMPLES) for j in range(len(e.python))]

# Snippets that qdrant-client 1.20 itself rejects before sending anything, and the
# smallest edit that makes them mean what the page means:
# (call in the snippet, text, replacement, reason).
PYTHON_FIXES = [
    ("client.update_vectors(", "models.PointStruct(", "models.PointVectors(",
     "the client validates update_vectors points as PointVectors (pydantic ValidationError)"),
    ("client.delete_vectors(", "points_selector=", "points=",
     "the client's delete_vectors names its selector argument `points` (TypeError)"),
]


def _python_source(source: str, name: str) -> str:
    # The page connects to localhost:6333; the test provides `client` instead.
    source = "\n".join(line for line in source.split("\n") if not re.match(r"\s*client\s*=\s*QdrantClient\(", line))
    for call, old, new, _reason in PYTHON_FIXES:
        if call in source:
            assert old in source, f"{call}: the page no longer needs this fix"
            source = source.replace(old, new)
    return source.replace('"{collection_name}"', repr(name))


def run_python(source: str, client: QdrantClient, name: str):
    """Exec a page snippet with `client`, `models` and `collection_name` bound; return
    the value of its last expression (the client call)."""
    tree = ast.parse(_python_source(source, name))
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    scope = {"client": client, "models": models, "collection_name": name}
    exec(compile(tree, "<seed page>", "exec"), scope)
    if last is None:
        return None
    return eval(compile(ast.Expression(last.value), "<seed page>", "eval"), scope)


@pytest.mark.parametrize("index,which", PYTHON, ids=[f"{_example_id(EXAMPLES[i])}-py{j}" for i, j in PYTHON])
def test_python_example(node, http, index, which):
    example, expect = EXAMPLES[index], EXPECTED[index]
    source = example.python[which]
    name, local = prepare(http, expect.world)
    remote = QdrantClient(url=node.url, prefer_grpc=False, timeout=30)
    try:
        got = run_python(source, remote, name)
    finally:
        remote.close()
    want = run_python(source, local, name)
    if _is_write(example):
        results = got if isinstance(got, list) else [got]
        assert results and all(r.status == models.UpdateStatus.COMPLETED for r in results), got
    assert _norm_answer(got) == _norm_answer(want)
    assert dump_pointlog(http, name) == dump_reference(local, name)


# ---- what pointlog cannot do ----------------------------------------------------------

# Features of Qdrant (none of them on the seed page) that pointlog does not implement:
# each must be refused with a clear Qdrant-style 4xx, never a 500, and publish nothing.
# (name, method, path suffix, body, status, message part, reason)
UNSUPPORTED_FEATURES = [
    ("sparse-point", "PUT", "/points", {"points": [{"id": 1, "vector": {"s": {"indices": [1], "values": [0.5]}}}]},
     400, "Not existing vector name error: s", "the collection has no sparse vector `s`"),
    ("multivector-point", "PUT", "/points", {"points": [{"id": 1, "vector": [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]}]},
     400, "Conversion between multi and regular vectors failed", "the vector is not a multivector"),
    ("custom-sharding", "PUT", "", {"vectors": {"size": 3, "distance": "Dot"}, "sharding_method": "custom"},
     400, "custom sharding is not supported", "one shard per collection"),
    ("shard-key", "PUT", "/points", {"points": [{"id": 1, "vector": [0.1, 0.2, 0.3]}], "shard_key": "tenant-a"},
     400, "shard keys are not supported", "one shard per collection; only `shard_key: null` is accepted"),
    ("order-by", "POST", "/points/scroll", {"order_by": "price"},
     400, "No range index for `order_by` key found", "no payload indexes, and Qdrant needs one for order_by"),
    ("fusion without prefetch", "POST", "/points/query", {"query": {"fusion": "rrf"}},
     400, "needs `prefetch`", "a fusion has nothing to fuse without prefetches"),
    ("inference", "POST", "/points/query", {"query": {"text": "a red car", "model": "any/model"}},
     400, "`text` queries are not supported by pointlog", "no embedding models: send vectors"),
]


@pytest.mark.parametrize("method,suffix,body,status,message,reason", [case[1:] for case in UNSUPPORTED_FEATURES],
                         ids=[case[0] for case in UNSUPPORTED_FEATURES])
def test_unsupported_features_answer_a_clear_4xx(node, http, method, suffix, body, status, message, reason):
    name, _local = prepare(http, "plain")
    if suffix == "":
        name = _collection_name()  # creating a collection: use a fresh name
    before = node.applied()
    r = http.request(method, f"/collections/{name}{suffix}?wait=true", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["status"]["error"], r.text
    assert node.applied() == before  # refused before the log
    if suffix == "":
        assert http.get(f"/collections/{name}/exists").json()["result"] == {"exists": False}


def test_shard_key_null_is_accepted(http):
    """What some clients send when no shard key is meant: the same as leaving it out."""
    name, _local = prepare(http, "plain")
    bodies = [
        ("PUT", "/points", {"points": [{"id": 7, "vector": [1.0, 2.0, 3.0]}], "shard_key": None}),
        ("POST", "/points/payload", {"payload": {"k": 1}, "points": [7], "shard_key": None}),
        ("POST", "/points/delete", {"points": [7], "shard_key": None}),
    ]
    for method, suffix, body in bodies:
        r = http.request(method, f"/collections/{name}{suffix}?wait=true", json=body)
        assert r.status_code == 200 and r.json()["result"]["status"] == "completed", r.text


CONDITIONAL_WRITES = [
    # Existing points are replaced only where the filter holds; new points always land.
    ("PUT", "/points", {"points": [{"id": 0, "vector": [1.0, 1.0, 1.0], "payload": {"v": 2}},
                                   {"id": 10, "vector": [1.0, 1.0, 1.0], "payload": {"v": 2}},
                                   {"id": 555, "vector": [1.0, 1.0, 1.0], "payload": {"v": 2}}],
                        "update_filter": {"must": [{"key": "color", "match": {"value": "red"}}]}}),
    ("PUT", "/points", {"batch": {"ids": [3, 556], "vectors": [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]},
                        "update_mode": "insert_only"}),
    ("PUT", "/points", {"points": [{"id": 100, "vector": [3.0, 3.0, 3.0]}, {"id": 557, "vector": [3.0, 3.0, 3.0]}],
                        "update_mode": "update_only"}),
    ("PUT", "/points/vectors", {"points": [{"id": 0, "vector": [4.0, 4.0, 4.0]}, {"id": 10, "vector": [4.0, 4.0, 4.0]}],
                                "update_filter": {"must_not": [{"key": "color", "match": {"value": "red"}}]}}),
]


@pytest.mark.parametrize("method,suffix,body", CONDITIONAL_WRITES,
                         ids=["update_filter", "insert_only", "update_only", "update_vectors_filter"])
def test_conditional_writes_match_the_reference(http, method, suffix, body):
    """`update_filter` / `update_mode` (newer than the seed page, sent by qdrant-client
    1.20) are applied, not ignored: the result equals the reference implementation's."""
    name, local = prepare(http, "plain")
    r = http.request(method, f"/collections/{name}{suffix}?wait=true", json=body)
    assert r.status_code == 200 and r.json()["result"]["status"] == "completed", r.text
    extra = {}
    if body.get("update_filter"):
        extra["update_filter"] = models.Filter.model_validate(body["update_filter"])
    if suffix == "/points/vectors":
        local.update_vectors(name, [models.PointVectors.model_validate(p) for p in body["points"]], **extra)
    else:
        points = (models.Batch.model_validate(body["batch"]) if "batch" in body
                  else [models.PointStruct.model_validate(p) for p in body["points"]])
        if body.get("update_mode"):
            extra["update_mode"] = models.UpdateMode(body["update_mode"])
        local.upsert(name, points, **extra)
    assert dump_pointlog(http, name) == dump_reference(local, name)


def test_client_sends_conditional_upserts(node, http):
    """The same through qdrant-client, which sends the fields in its own shape."""
    name, local = prepare(http, "plain")
    red = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))])
    points = [models.PointStruct(id=i, vector=[0.5, 0.5, 0.5], payload={"new": True}) for i in (0, 10, 999)]
    remote = QdrantClient(url=node.url, prefer_grpc=False, timeout=30)
    try:
        remote.upsert(name, points, update_filter=red)
        remote.upsert(name, [models.PointStruct(id=42, vector=[9.0, 9.0, 9.0])],
                      update_mode=models.UpdateMode.INSERT_ONLY)
    finally:
        remote.close()
    local.upsert(name, points, update_filter=red)
    local.upsert(name, [models.PointStruct(id=42, vector=[9.0, 9.0, 9.0])], update_mode=models.UpdateMode.INSERT_ONLY)
    state = dump_pointlog(http, name)
    assert state == dump_reference(local, name)
    assert state[0]["payload"] == {"new": True} and state[10]["payload"]["color"] == "blue"
    assert 999 in state and state[42]["vector"] == [0.0, 1.0, 0.0]
