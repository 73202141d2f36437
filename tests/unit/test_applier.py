"""The applier without a broker: duplicates, gaps, dead letters, determinism, crashes
between apply and commit. Records are built exactly as producers write them."""
import msgpack
import numpy as np
import orjson
import pytest

from storage import operations as ops
from storage.digest import digest, digest_dir
from storage.state import State
from streams.applier import Applier, Record
from streams.codec import encode, from_wire

TOPIC = "pointlog.ops"


def rec(offset: int, collection: str, op: str, partition: int = 0, binary: bool = True, **body) -> Record:
    key, value, headers = encode(ops.Command(collection, from_wire({"op": op, **body})), binary)
    return Record(partition, offset, key, value, headers)


def raw(offset: int, key, value, headers=(), partition: int = 0) -> Record:
    return Record(partition, offset, key, value, list(headers))


def sample_log(n: int = 30) -> list:
    """A log touching every kind of write, with failures (404) in it."""
    rng = np.random.default_rng(7)
    out = [rec(0, "a", "create_collection", vectors={"size": 3, "distance": "Cosine"}),
           rec(1, "b", "create_collection", vectors={"x": {"size": 2, "distance": "Dot"}})]
    for i in range(2, n):
        kind = i % 6
        if kind == 0:
            out.append(rec(i, "a", "upsert", points=[
                {"id": i * 10 + j, "vector": rng.random(3).tolist(), "payload": {"i": i, "j": j}} for j in range(4)]))
        elif kind == 1:
            out.append(rec(i, "b", "upsert", binary=False, points=[{"id": i, "vector": {"x": [1.0, float(i)]}}]))
        elif kind == 2:
            out.append(rec(i, "a", "set_payload", payload={"seen": i}, filter={"must": [{"key": "j", "match": {"value": 1}}]}))
        elif kind == 3:
            out.append(rec(i, "a", "delete", points=[(i - 3) * 10]))
        elif kind == 4:
            out.append(rec(i, "b", "set_payload", payload={"x": 1}, points=[123456]))  # 404: a failure, not dead
        else:
            out.append(rec(i, "a", "batch", operations=[
                {"upsert": {"points": [{"id": 10**6 + i, "vector": [1, 2, 3]}]}},
                {"overwrite_payload": {"points": [10**6 + i], "payload": {"k": i}}}]))
    return out


def apply_in_groups(state: State, records: list, size: int) -> Applier:
    applier = Applier(state, TOPIC)
    for start in range(0, len(records), size):
        result = applier.apply_records(records[start:start + size])
        assert result.gap is None
        applier.commit(result)
    return applier


@pytest.fixture
def new_state(tmp_path):
    opened = []

    def make(name: str = "s") -> State:
        state = State(str(tmp_path / name))
        opened.append(state)
        return state

    yield make
    for state in opened:
        try:
            state.close()
        except Exception:
            pass


def test_same_log_same_state_whatever_the_grouping(new_state):
    log = sample_log()
    digests = set()
    for i, size in enumerate((1, 7, 500)):
        state = new_state(f"g{i}")
        apply_in_groups(state, log, size)
        digests.add(tuple(sorted(digest(state).items())))
    assert len(digests) == 1
    (only,) = digests
    assert dict(only)["a"].split()[0] != "0"


def test_duplicates_are_skipped(new_state):
    log = sample_log()
    once = new_state("once")
    apply_in_groups(once, log, 50)
    twice = new_state("twice")
    applier = apply_in_groups(twice, log[:20], 6)
    # A redelivery overlapping what was applied (a crash after the commit, before
    # the group offset was committed): only the new records count.
    result = applier.apply_records(log[10:])
    assert result.records == len(log) - 20 and result.gap is None
    applier.commit(result)
    assert applier.apply_records(log).records == 0
    assert digest(twice) == digest(once)
    assert twice.applied_offset(TOPIC, 0) == len(log) - 1


def test_uncommitted_work_is_redone_after_a_crash(new_state, tmp_path):
    log = sample_log()
    state = new_state("crash")
    applier = apply_in_groups(state, log[:10], 10)
    applier.apply_records(log[10:20])  # applied in memory, never committed: the process dies
    state.close()
    reopened = State(str(tmp_path / "crash"))
    try:
        assert reopened.applied_offset(TOPIC, 0) == 9
        apply_in_groups(reopened, log, 4)  # the consumer resumes, redelivering from offset 0
        clean = new_state("clean")
        apply_in_groups(clean, log, 100)
        assert digest(reopened) == digest(clean)
    finally:
        reopened.close()


def test_a_gap_stops_application_until_the_missing_offsets_are_read(new_state):
    log = sample_log(12)
    state = new_state()
    applier = Applier(state, TOPIC)
    delivered = log[:5] + log[8:]  # offsets 5..7 skipped by the consumer
    result = applier.apply_records(delivered)
    assert (result.gap.partition, result.gap.expected, result.gap.got) == (0, 5, 8)
    assert [r.offset for r in result.rest] == [r.offset for r in log[8:]]
    assert result.offsets == {0: 4}
    applier.commit(result)
    assert state.applied_offset(TOPIC, 0) == 4
    # What the broker returns for 5..8, read from a known position: applied as is.
    filled = applier.apply_records(log[5:9], contiguous=False)
    applier.commit(filled)
    again = applier.apply_records(result.rest)
    applier.commit(again)
    assert again.gap is None and state.applied_offset(TOPIC, 0) == 11
    clean = new_state("clean")
    apply_in_groups(clean, log, 100)
    assert digest(state) == digest(clean)


def test_offsets_the_broker_confirms_empty_are_skipped(new_state):
    # A transactional producer's commit markers occupy offsets that hold no record.
    log = sample_log(6)
    holes = [log[0], log[1], Record(0, 4, log[2].key, log[2].value, log[2].headers)]
    state = new_state()
    applier = Applier(state, TOPIC)
    stopped = applier.apply_records(holes)
    assert stopped.gap.expected == 2 and stopped.records == 2
    applier.commit(stopped)
    result = applier.apply_records(holes, contiguous=False)
    applier.commit(result)
    assert state.applied_offset(TOPIC, 0) == 4 and result.records == 1


def test_partitions_are_independent(new_state):
    state = new_state()
    applier = Applier(state, TOPIC)
    records = [rec(0, "a", "create_collection", partition=0, vectors={"size": 2, "distance": "Dot"}),
               rec(0, "b", "create_collection", partition=1, vectors={"size": 2, "distance": "Dot"}),
               rec(1, "b", "upsert", partition=1, points=[{"id": 1, "vector": [1, 2]}])]
    result = applier.apply_records(records)
    applier.commit(result)
    assert result.offsets == {0: 0, 1: 1}
    assert state.applied_offset(TOPIC, 0) == 0 and state.applied_offset(TOPIC, 1) == 1
    assert len(state.collections["b"]) == 1


POISON = [
    (raw(1, b"c", b"\x00\xff garbage \x13"), "undecodable"),
    (raw(2, b"c", orjson.dumps({"op": "upsert", "pointz": []})), "expected `points` or `batch`"),
    (raw(3, b"c", orjson.dumps({"op": "explode"})), "unknown operation kind"),
    (raw(4, b"c", orjson.dumps({"op": "upsert", "points": [{"id": 1, "vector": [1, 2, 3]}]})),
     "Vector dimension error"),
    (raw(5, None, orjson.dumps({"op": "delete_collection"})), "no key"),
    (raw(6, b"c", orjson.dumps([1, 2, 3])), "must be a JSON object"),
    (raw(7, b"c", msgpack.packb({"op": "set_payload", "points": [1], "payload": {"k": b"\x00"}}),
         [("content-type", b"application/msgpack")]), "payload is not JSON"),
    (raw(8, b"c", b"{}", [("pointlog-format", b"2")]), "unsupported pointlog-format"),
    (raw(9, b"c", b"{}", [("content-type", b"text/csv")]), "unsupported content-type"),
    (raw(10, b"c", orjson.dumps({"op": "upsert", "points": [{"id": -5, "vector": [1, 2]}]})), "not a valid point ID"),
    (raw(11, b"\xff\xfe", orjson.dumps({"op": "delete_collection"})), "not UTF-8"),
]


def test_poison_records_become_dead_letters_and_the_log_goes_on(new_state):
    state = new_state()
    applier = Applier(state, TOPIC)
    records = [rec(0, "c", "create_collection", vectors={"size": 2, "distance": "Euclid"})]
    records += [r for r, _ in POISON]
    valid = raw(12, b"c", orjson.dumps({"op": "upsert", "points": [{"id": 7, "vector": [0.5, 1]}]}),
                [("content-type", b"application/json; charset=utf-8")])
    result = applier.apply_records(records + [valid])
    applier.commit(result)
    reasons = {d.record.offset: d.reason for d in result.dead}
    for r, expected in POISON:
        assert expected in reasons.get(r.offset, ""), (r.offset, reasons.get(r.offset))
    assert len(result.dead) == len(POISON) == state.dead_letters
    # Each is also a recorded failure, so a waiter on that offset gets a 400.
    assert state.failure(0, 4)["status"] == 400
    assert state.applied_offset(TOPIC, 0) == 12
    assert [p.id for p in state.collections["c"].points.values()] == [7]


def test_dead_letters_are_deterministic(new_state):
    log = [rec(0, "c", "create_collection", vectors={"size": 2, "distance": "Euclid"})] + [r for r, _ in POISON]
    runs = []
    for name in ("one", "two"):
        state = new_state(name)
        applier = Applier(state, TOPIC)
        result = applier.apply_records(log)
        applier.commit(result)
        runs.append(([(d.record.offset, d.reason) for d in result.dead], digest(state), state.dead_letters))
    assert runs[0] == runs[1]


def test_application_failures_are_not_dead_letters(new_state):
    state = new_state()
    applier = Applier(state, TOPIC)
    result = applier.apply_records([
        rec(0, "c", "create_collection", vectors={"size": 2, "distance": "Dot"}),
        rec(1, "c", "create_collection", vectors={"size": 2, "distance": "Dot"}),  # 409
        rec(2, "nope", "delete", points=[1]),  # 404 collection
    ])
    applier.commit(result)
    assert result.dead == [] and state.dead_letters == 0
    assert [(o, e["status"]) for _, o, e in result.failures] == [(1, 409), (2, 404)]


def test_throughput_counters(new_state):
    state = new_state()
    applier = Applier(state, TOPIC)
    result = applier.apply_records(sample_log(14))
    # upserts at 6 and 12: 4 points each; at 7 and 13: 1 each; batches at 5 and 11: 1 each.
    assert result.points == 4 + 4 + 1 + 1 + 1 + 1 and result.records == 14


def test_the_cli_digest_reads_the_same_digest_straight_from_rocksdb(new_state, tmp_path):
    state = new_state("d")
    apply_in_groups(state, sample_log(), 5)
    expected = digest(state)
    assert digest_dir(str(tmp_path / "d")) == expected  # read-only, beside the open state
    state.close()
    assert digest_dir(str(tmp_path / "d")) == expected
