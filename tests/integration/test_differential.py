"""pointlog against qdrant-client's local mode, operation by operation.

The official client drives a real pointlog server over REST and the client's
in-memory local mode (a pure-Python rendering of the server's semantics) with the
same seeded random sequence of writes: ids in every spelling, unnamed and named
vectors, all four distances, every point update, batches, and operations that must
fail. Both sides must agree on whether each write succeeds, and every few writes on
what retrieve, scroll (every page), count and exact search return.

Where local mode is known to differ from the Qdrant server, the server wins and the
comparison says so at the place it adapts (search for "DEVIATION"):
- scored points from local mode always carry ``version: 0``; the server reports the
  offset of the last write to the point, so versions are not compared here (see
  tests/unit/test_apply.py for them);
- local mode's retrieve returns a point once per occurrence of its id in the request;
  the server looks ids up in a map and returns each point once, in first-occurrence
  order (QDRANT_API.md), so local results are de-duplicated before comparing;
- for Cosine, local mode re-normalizes the stored vectors (in place) at every search,
  so a stored vector shorter than f32::EPSILON, which the server keeps unnormalized
  and scores as it is, scores differently there: tests/opgen.py generates no such
  vector (zero vectors behave the same on both sides and are generated);
- ``with_vectors`` naming a vector the collection does not have is not sent: local
  mode ignores the name, and what the server answers is not verified here.

The same run goes through Qdrant's gRPC API too (``prefer_grpc=True``). There
qdrant-client's own conversion of results blurs one thing the server sends exactly:
an empty payload and no payload (records always come back with ``{}``, scored points
with ``None``), so a gRPC run compares empty payloads as absent ones. And gRPC's
payload ``Value`` holds integers as int64: the client cannot send a u64 payload value
(Qdrant's gRPC API has the same limit), so a gRPC run sends both sides such values
as the int64 maximum.

Knobs for a longer hunt: POINTLOG_DIFF_SEED, POINTLOG_DIFF_OPS.
"""
from __future__ import annotations

import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
from pydantic import BaseModel
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.opgen import SPECS, Call, Ids, OpGen

SEED = int(os.environ.get("POINTLOG_DIFF_SEED", "20250611"))
WRITES = int(os.environ.get("POINTLOG_DIFF_OPS", "2200"))
CHECK_RATE = 0.3  # share of writes followed by a full read comparison of that collection
SNAPSHOT_EVERY = 250  # writes between whole-collection comparisons of every collection
MAX_DIFFS = 15
SCORE_TOL = 1e-4


# ---------------------------------------------------------------------------- comparing

def _strict_equal(a, b) -> bool:
    """JSON equality that tells 1 from 1.0 and True from 1, as a client would see it."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_strict_equal(x, y) for x, y in zip(a, b))
    return a == b


def _vectors_close(a, b) -> bool:
    # Both sides hold float32; pointlog prints the shortest float32 spelling, local
    # mode the float64 expansion of the same float32, so compare as float32 with a
    # hair of tolerance for a differently rounded normalization.
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(_vectors_close(a[k], b[k]) for k in a))
    if a is None or b is None:
        return a is None and b is None
    x, y = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return x.shape == y.shape and bool(np.allclose(x, y, rtol=1e-5, atol=1e-6))


def _record_diff(server, local) -> str | None:
    if not _strict_equal(server.id, local.id):
        return f"id {server.id!r} != {local.id!r}"
    if not _strict_equal(server.payload, local.payload):
        return f"payload of {server.id}: {server.payload!r} != {local.payload!r}"
    if not _vectors_close(server.vector, local.vector):
        return f"vector of {server.id}: {server.vector!r} != {local.vector!r}"
    return None


def _records_diff(server: list, local: list) -> str | None:
    if len(server) != len(local):
        return (f"{len(server)} records != {len(local)}: server ids {[r.id for r in server]}, "
                f"local ids {[r.id for r in local]}")
    for s, l in zip(server, local):
        diff = _record_diff(s, l)
        if diff:
            return diff
    return None


def _dedupe(records: list) -> list:
    seen, out = set(), []
    for r in records:
        if r.id not in seen:
            seen.add(r.id)
            out.append(r)
    return out


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SCORE_TOL, abs_tol=SCORE_TOL)


def _scored_diff(server: list, local: list) -> str | None:
    """Same scores in the same order; ids may only differ among (nearly) tied scores."""
    if len(server) != len(local):
        return f"{len(server)} hits != {len(local)}: {[(p.id, p.score) for p in server]} vs {[(p.id, p.score) for p in local]}"
    for i, (s, l) in enumerate(zip(server, local)):
        # DEVIATION: local mode's version is always 0; the server's only has to be one.
        if not isinstance(s.version, int) or s.version < 0:
            return f"bad version {s.version!r} for {s.id}"
        if not _close(s.score, l.score):
            return f"hit {i}: score {s.score} != {l.score} (ids {s.id!r}, {l.id!r})"
    by_server, by_local = {p.id: p for p in server}, {p.id: p for p in local}
    for i, (s, l) in enumerate(zip(server, local)):
        # Two points whose scores are equal within the tolerance may come in either
        # order (float32 on one side, float64 on the other), and one of them may be
        # cut off by the limit. Each point still has the same score on both sides.
        for hit in (s, l) if s.id != l.id else (s,):
            mine, theirs = (hit, by_local.get(hit.id)) if hit is s else (by_server.get(hit.id), hit)
            if mine is None or theirs is None:
                continue
            if not _close(mine.score, theirs.score):
                return f"hit {i}: {hit.id!r} scores {mine.score} on the server, {theirs.score} locally"
            diff = _record_diff(mine, theirs)
            if diff:
                return f"hit {i}: {diff}"
    return None


def _outcome(client: QdrantClient, call: Call):
    """(ok, result or error description)."""
    try:
        return True, getattr(client, call.method)(**call.args())
    except UnexpectedResponse as exc:
        return False, f"HTTP {exc.status_code}: {exc.content[:300]!r}"
    except grpc.RpcError as exc:
        return False, f"gRPC {exc.code().name}: {exc.details()}"
    except Exception as exc:  # local mode raises ValueError/KeyError/AssertionError...
        return False, f"{type(exc).__name__}: {exc}"


I64_MAX = 2**63 - 1
_PAYLOAD_FIELDS = ("payload", "payloads", "value", "any", "except_")  # where payload values travel


def _int64_payloads(value, in_payload: bool = False):
    """The call with payload integers beyond int64 capped (see the module's note)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return min(value, I64_MAX) if in_payload else value
    if isinstance(value, dict):
        return {k: _int64_payloads(v, in_payload or k in _PAYLOAD_FIELDS) for k, v in value.items()}
    if isinstance(value, list):
        return [_int64_payloads(v, in_payload) for v in value]
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            setattr(value, name, _int64_payloads(getattr(value, name), in_payload or name in _PAYLOAD_FIELDS))
    return value


def _blur_empty_payloads(result) -> None:
    """An empty payload becomes None (see the module's note on gRPC)."""
    if isinstance(result, tuple):
        result = result[0]
    records = getattr(result, "points", result)
    if isinstance(records, list):
        for r in records:
            if hasattr(r, "payload") and not r.payload:
                r.payload = None


# ---------------------------------------------------------------------------- the run

@dataclass
class Run:
    server: QdrantClient
    local: QdrantClient
    seed: int
    diffs: list = field(default_factory=list)
    writes: Counter = field(default_factory=Counter)  # label -> count
    failed_writes: Counter = field(default_factory=Counter)
    reads: Counter = field(default_factory=Counter)
    calls: int = 0
    last_op: int = -1  # operation_id of the last successful write: they only grow
    grpc: bool = False  # the server side goes through gRPC

    def diff(self, where: str, what: str) -> None:
        self.diffs.append(f"{where}: {what}")

    # -- both sides ---------------------------------------------------------------

    def both(self, call: Call):
        self.calls += 1
        if self.grpc:
            call = Call(call.method, _int64_payloads(call.args()), call.label)
        return _outcome(self.server, call), _outcome(self.local, call)

    def write(self, step: int, call: Call) -> None:
        (s_ok, s_res), (l_ok, l_res) = self.both(call)
        self.writes[call.label] += 1
        if not l_ok:
            self.failed_writes[call.label] += 1
        if s_ok != l_ok:
            self.diff(f"write #{step} {call}", f"server {'ok' if s_ok else s_res} / local {'ok' if l_ok else l_res}")
        elif s_ok:
            # wait=true: applied before the answer; a batch is one log record, one offset
            results = s_res if isinstance(s_res, list) else [s_res]
            ids = {r.operation_id for r in results}
            if any(r.status != "completed" for r in results) or len(ids) != 1 or min(ids) <= self.last_op:
                self.diff(f"write #{step} {call}", f"update results {results} after operation {self.last_op}")
            self.last_op = max(ids)
        else:
            # Local mode raises KeyError(first missing id) where the server answers 404
            # naming that id, and ValueError where the server rejects the input.
            if l_res.startswith("KeyError"):
                missing = l_res.split(": ", 1)[1].strip("'")
                good = (s_res.startswith(("HTTP 404", "gRPC NOT_FOUND"))
                        and f"No point with id {missing} found" in s_res)
            else:
                good = s_res.startswith(("HTTP 400", "HTTP 422", "gRPC INVALID_ARGUMENT"))
            if not good:
                self.diff(f"write #{step} {call}", f"server failed with {s_res}, local with {l_res}")

    def read(self, step: int, call: Call, compare) -> tuple:
        (s_ok, s_res), (l_ok, l_res) = self.both(call)
        self.reads[call.method] += 1
        if s_ok != l_ok:
            self.diff(f"after #{step} {call}", f"server {'ok' if s_ok else s_res} / local {'ok' if l_ok else l_res}")
            return None, None
        if s_ok:
            if self.grpc:
                _blur_empty_payloads(s_res)
                _blur_empty_payloads(l_res)
            what = compare(s_res, l_res)
            if what:
                self.diff(f"after #{step} {call}", what)
        return s_res, l_res

    # -- reads ------------------------------------------------------------------------

    def check(self, step: int, gen: OpGen, full: bool = False) -> None:
        # DEVIATION: local mode repeats a point per occurrence of its id; the server does not.
        self.read(step, gen.retrieve(), lambda s, l: _records_diff(s, _dedupe(l)))
        self.scroll(step, gen, full)
        self.read(step, gen.count(), lambda s, l: None if s.count == l.count else f"count {s.count} != {l.count}")
        for _ in range(2):
            self.read(step, gen.query(), lambda s, l: _scored_diff(s.points, l.points))

    def scroll(self, step: int, gen: OpGen, full: bool) -> None:
        kwargs = gen.scroll_start()
        if full:
            kwargs.update(scroll_filter=None, with_payload=True, with_vectors=True, limit=1000)
            kwargs.pop("offset", None)
        for page in range(200):
            call = Call("scroll", kwargs, f"scroll page {page}")
            s, l = self.read(step, call, lambda s, l: _records_diff(s[0], l[0]) or (
                None if _strict_equal(s[1], l[1]) else f"next_page_offset {s[1]!r} != {l[1]!r}"))
            if s is None or s[1] is None or not _strict_equal(s[1], l[1]):
                return
            kwargs = dict(kwargs, offset=s[1])
        self.diff(f"after #{step} scroll", "more than 200 pages")


def run_differential(server: QdrantClient, local: QdrantClient, seed: int, writes: int, via_grpc: bool = False) -> Run:
    rng = random.Random(seed)
    run = Run(server, local, seed, grpc=via_grpc)
    ids = Ids(rng)

    def existing(name: str):
        def live() -> list:
            return [r.id for r in local.scroll(name, limit=100_000, with_payload=False)[0]]
        return live

    gens = {spec.name: OpGen(rng, spec, ids, existing(spec.name)) for spec in SPECS}

    def create(spec) -> None:
        for client in (server, local):
            client.create_collection(spec.name, vectors_config=spec.vectors_config())

    for spec in SPECS:
        create(spec)

    for step in range(1, writes + 1):
        gen = gens[rng.choice(SPECS).name]
        run.write(step, gen.write())
        if rng.random() < CHECK_RATE:
            run.check(step, gen)
        if step % SNAPSHOT_EVERY == 0:
            for g in gens.values():
                run.check(step, g, full=True)
        if step == writes // 2:
            # A recreated name must not see the points of the collection it replaces.
            spec = SPECS[0]
            for client in (server, local):
                client.delete_collection(spec.name)
            create(spec)
            run.check(step, gens[spec.name], full=True)
        if len(run.diffs) >= MAX_DIFFS:
            break
    for g in gens.values():
        run.check(writes, g, full=True)
    return run


@pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")
@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_pointlog_matches_local_mode(server, transport):
    via_grpc = transport == "grpc"
    remote = QdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=via_grpc, timeout=60)
    local = QdrantClient(":memory:")
    started = time.monotonic()
    run = run_differential(remote, local, SEED, WRITES, via_grpc)
    elapsed = time.monotonic() - started
    total = sum(run.writes.values())
    print(f"\ndifferential over {transport} seed={SEED}: {total} writes ({sum(run.failed_writes.values())} expected failures), "
          f"{sum(run.reads.values())} reads, {run.calls} paired calls in {elapsed:.1f}s")
    mix = Counter()
    for label, n in run.writes.items():
        mix[label.split(" ")[0].split("[")[0]] += n
    print("writes by kind:", dict(sorted(mix.items())), "reads:", dict(run.reads))
    assert not run.diffs, f"{len(run.diffs)} differences (seed {SEED}):\n" + "\n".join(run.diffs)
    if WRITES >= 2000:
        assert total >= 2000
        # The mix really covers what it claims to: failing writes of every kind happened.
        failed = " ".join(run.failed_writes)
        for kind in ("upsert bad vector", "update_vectors", "set_payload", "delete_vectors", "overwrite_payload",
                     "delete_payload", "clear_payload", "batch[", "empty"):
            assert kind in failed, (kind, run.failed_writes)
