"""The seed page's 18 Rust examples, run through the Rust ``qdrant-client`` (1.6.0, the
newest that compiles the page's code) against a real pointlog server's gRPC port.

The examples live in tests/rust_examples/src/main.rs, one function each, copied from
the page with the few edits listed in MENDS (test_rust_source_is_the_page checks
that). The binary is built once per session with cargo, into a target directory
outside the checkout so that later runs only relink; each example then runs against
a fresh collection holding the points it assumes, and what it leaves (read over REST)
and what it returns (printed by the binary as JSON) are checked against the page.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.test_seed_examples import (
    DOC_UUID, PAGE, PROPS, WORLDS, _fenced_blocks, _named_point, _payload_changed, _vec, check_batch,
    check_clear_payload, check_count, check_delete_payload_filter, check_delete_payload_ids,
    check_delete_points_filter, check_delete_points_ids, check_named_upsert, check_scroll,
    check_set_payload_filter, check_three_upserted, check_update_vectors, dump_pointlog,
)


CRATE = Path(__file__).resolve().parents[1] / "rust_examples"
BINARY_NAME = "seed-rust-examples"


def _target_dir() -> Path:
    # Outside the checkout, so worktrees, repeated runs and CI caches share one build.
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pointlog" / "rust-target"


# ---- building the binary ---------------------------------------------------------------

@pytest.fixture(scope="session")
def rust_build(pytestconfig):
    """(path of the binary, None) or (None, why it could not be built). A failed build
    is reported by each test rather than raised here, so that it counts as a failure
    of the tests, not as an error of their setup."""
    cargo = shutil.which("cargo")
    if cargo is None:
        return None, ("cargo is not on PATH: the seed page's Rust examples need a Rust toolchain "
                      "(https://rustup.rs); this test fails rather than skips without one")
    target = _target_dir()
    command = [cargo, "build", "--locked", "--manifest-path", str(CRATE / "Cargo.toml")]
    tail = deque(maxlen=60)
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    # Shown even under pytest's capture: a cold build takes a while and should not look hung.
    with capture.global_and_fixture_disabled():
        print(f"\n[rust examples] {' '.join(command)} (CARGO_TARGET_DIR={target})", file=sys.stderr, flush=True)
        started = time.monotonic()
        proc = subprocess.Popen(command, env=dict(os.environ, CARGO_TARGET_DIR=str(target)),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            tail.append(line)
            print(f"[rust examples] {line}", end="", file=sys.stderr, flush=True)
        try:
            code = proc.wait(timeout=1200)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "timeout"
        print(f"[rust examples] cargo build: {code} after {time.monotonic() - started:.1f}s", file=sys.stderr,
              flush=True)
    if code != 0:
        return None, f"cargo build failed ({code}):\n{''.join(tail)}"
    binary = target / "debug" / BINARY_NAME
    if not binary.exists():
        return None, f"cargo build succeeded but {binary} is missing"
    return binary, None


def _binary(rust_build) -> Path:
    binary, problem = rust_build
    if problem:
        pytest.fail(problem, pytrace=False)
    return binary


def run_rust(binary: Path, node, collection: str, example: str):
    """Run one example against the node's gRPC port; return what it printed."""
    proc = subprocess.run([str(binary), f"http://127.0.0.1:{node.grpc_port}", collection, example],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{example} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}"
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [line["example"] for line in lines] == [example], proc.stdout
    return lines[0]["answer"]


# ---- the page's Rust blocks and the edits made to them ---------------------------------

def page_rust_blocks() -> list:
    return [source for lang, _line, source in _fenced_blocks(PAGE.read_text()) if lang == "rust"]


MENDS_EVERYWHERE = [
    # A placeholder on the page; the binary takes the name as an argument.
    ('"{collection_name}"', "collection_name"),
    # The page discards what the call returns; the binary prints it.
    ("\nclient\n", "\nlet response = client\n"),
]
FOUR_D = ("vec![0.05, 0.61, 0.76, 0.74]", "vec![0.05, 0.61, 0.76]")
# (block index, text on the page, text in main.rs, why)
MENDS = [
    (0, 'QdrantClient::from_url("http://localhost:6334")', "QdrantClient::from_url(url)",
     "the test server's gRPC port is a free one, given on the command line"),
    (0, *FOUR_D, "a 4-d vector in the section whose collection (and HTTP/Python twins) are 3-d"),
    (1, "\n        1,\n", "\n        collection_name,\n", "the page passes `1` as the collection name"),
    (1, *FOUR_D, "a 4-d vector in the section whose collection (and HTTP/Python twins) are 3-d"),
]


def mended(index: int, source: str) -> str:
    source = "\n" + source + "\n"
    for old, new in MENDS_EVERYWHERE:
        source = source.replace(old, new)
    for block, old, new, _why in MENDS:
        if block == index:
            assert old in source, f"Rust block {index}: the page no longer has {old!r}"
            source = source.replace(old, new)
    return source.strip("\n")


def main_rs_examples() -> dict:
    """{function name: body} of each example function in main.rs, dedented, comments
    dropped, without the final line that returns the answer."""
    lines = (CRATE / "src" / "main.rs").read_text().split("\n")
    bodies, name, body = {}, None, []
    for line in lines:
        if line.startswith("async fn "):
            name, body = line[len("async fn "):].split("(")[0], []
        elif name and line == "    Ok(response.to_answer())":
            bodies[name] = "\n".join(body).strip("\n")
            name = None
        elif name and not line.strip().startswith("//"):
            body.append(line[4:])
    return bodies


# ---- the examples ----------------------------------------------------------------------

RUST_WORLDS = {
    **WORLDS,
    # delete_vectors names point 10, which the HTTP example's named world lacks.
    "named": (WORLDS["named"][0], WORLDS["named"][1] + [_named_point(10, "blue", 10)]),
}


def check_uuid_upsert(state, seed, answer):
    assert state[DOC_UUID] == {"id": DOC_UUID, "payload": {"color": "Red"}, "vector": _vec([0.05, 0.61, 0.76])}
    assert {k: v for k, v in state.items() if k != DOC_UUID} == seed


def check_delete_vectors(state, seed, answer):
    for pid in seed:  # the points stay; 0, 3 and 10 without their vectors
        assert state[pid] == ({**seed[pid], "vector": {}} if pid in (0, 3, 10) else seed[pid])
    assert set(state) == set(seed)


def check_set_payload_ids(state, seed, answer):
    _payload_changed(state, seed, {0, 3, 10}, lambda p: {**p, **PROPS})


def check_overwrite_payload(state, seed, answer):
    _payload_changed(state, seed, {0, 3, 10}, lambda p: dict(PROPS))


def check_get_points(state, seed, answer):
    # 30 does not exist; with_vectors and with_payload are both false.
    assert answer == [{"id": 0, "payload": {}}, {"id": 100, "payload": {}}]
    assert state == seed


def _completed(answer):
    assert set(answer) == {"operation_id", "status"} and isinstance(answer["operation_id"], int), answer
    assert answer["status"] == "completed"


def answers_update(answer):
    _completed(answer)


def answers_batch(answer):
    assert isinstance(answer, list) and len(answer) == 8, answer
    for one in answer:
        _completed(one)


def answers_read(answer):
    pass  # checked with the state by the example's check


@dataclass
class RustExample:
    name: str  # the function in main.rs
    world: str
    answers: object
    check: object


# In page order; test_rust_source_is_the_page keeps this in step with the page.
RUST_EXAMPLES = [
    RustExample("upsert_uuid", "plain", answers_update, check_uuid_upsert),
    RustExample("upsert_uuid_again", "plain", answers_update, check_uuid_upsert),
    RustExample("upsert_batch", "plain", answers_update, check_three_upserted),
    RustExample("upsert_named", "named", answers_update, check_named_upsert),
    RustExample("update_vectors", "named", answers_update, check_update_vectors),
    RustExample("delete_vectors", "named", answers_update, check_delete_vectors),
    RustExample("set_payload", "plain", answers_update, check_set_payload_ids),
    RustExample("set_payload_filter", "plain", answers_update, check_set_payload_filter),
    RustExample("overwrite_payload", "plain", answers_update, check_overwrite_payload),
    RustExample("delete_payload", "plain", answers_update, check_delete_payload_ids),
    RustExample("delete_payload_filter", "plain", answers_update, check_delete_payload_filter),
    RustExample("clear_payload", "plain", answers_update, check_clear_payload),
    RustExample("delete_points", "plain", answers_update, check_delete_points_ids),
    RustExample("delete_points_filter", "plain", answers_update, check_delete_points_filter),
    RustExample("get_points", "plain", answers_read, check_get_points),
    RustExample("scroll", "plain", answers_read, check_scroll),
    RustExample("count", "plain", answers_read, check_count),
    RustExample("batch_updates", "wide", answers_batch, check_batch),
]


@pytest.fixture(scope="module")
def node(module_server):
    return module_server


@pytest.fixture(scope="module")
def http(node):
    with httpx.Client(base_url=node.url, timeout=30) as client:
        yield client


def create(http: httpx.Client, world: str) -> str:
    config, points = RUST_WORLDS[world]
    name = f"rust_{uuid.uuid4().hex[:10]}"
    r = http.put(f"/collections/{name}", json=config)
    assert r.status_code == 200 and r.json()["result"] is True, r.text
    r = http.put(f"/collections/{name}/points?wait=true", json={"points": points})
    assert r.status_code == 200 and r.json()["result"]["status"] == "completed", r.text
    return name


# ---- the tests ---------------------------------------------------------------------------

def test_rust_source_is_the_page():
    """Every Rust block of the page is in main.rs, in order, with only the MENDS."""
    blocks = page_rust_blocks()
    assert len(blocks) == 18, "the seed page changed: update main.rs and RUST_EXAMPLES"
    functions = main_rs_examples()
    assert list(functions) == [e.name for e in RUST_EXAMPLES]
    for index, (source, example) in enumerate(zip(blocks, RUST_EXAMPLES)):
        assert functions[example.name] == mended(index, source), example.name


@pytest.mark.parametrize("example", RUST_EXAMPLES, ids=[e.name for e in RUST_EXAMPLES])
def test_rust_example(rust_build, node, http, example):
    binary = _binary(rust_build)
    name = create(http, example.world)
    seed = dump_pointlog(http, name)
    answer = run_rust(binary, node, name, example.name)
    example.answers(answer)
    # The examples call the *_blocking variants (wait=true): their effect is visible now.
    example.check(dump_pointlog(http, name), seed, answer)
