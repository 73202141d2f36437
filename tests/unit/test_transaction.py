"""State transactions: the applied offsets move only on commit, an uncommitted
transaction leaves nothing behind, dead letters wait in the outbox until published."""
import asyncio

import orjson
import pytest

from storage.digest import digest
from storage.state import State
from streams.applier import Applier
from streams.outbox import OutboxPublisher
from streams.progress import Progress
from tests.unit.test_applier import POISON, TOPIC, raw, rec, sample_log


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "s")


@pytest.fixture
def state(path):
    s = State(path)
    yield s
    s.close()


def committed_rocks_of(state: State) -> dict:
    return {"meta": dict(state.meta.items()), "points": dict(state.points_cf.items())}


def committed_rocks(path: str) -> dict:
    s = State(path)
    try:
        return committed_rocks_of(s)
    finally:
        s.close()


def with_poison() -> list:
    log = sample_log(12)
    poison = [r for r, _ in POISON[:3] + POISON[4:5]]  # dead letters whatever the collections
    return log + [raw(len(log) + i, r.key, r.value, r.headers) for i, r in enumerate(poison)]


def test_the_applied_offset_moves_only_on_commit(state):
    applier = Applier(state, TOPIC)
    applier.apply_and_commit(sample_log(5))
    result = applier.apply_records(sample_log(12)[5:])
    assert result.txn.applied_offset(0) == 11  # the transaction sees its own progress
    assert state.applied_offset(TOPIC, 0) == applier.applied(0) == 4
    assert state.applied_offsets(TOPIC) == {0: 4}
    applier.commit(result)
    assert state.applied_offset(TOPIC, 0) == applier.applied(0) == 11


def test_a_transaction_that_is_not_committed_leaves_disk_and_offsets_unchanged(path):
    state = State(path)
    applier = Applier(state, TOPIC)
    applier.apply_and_commit(sample_log(6))
    before, dead_before = committed_rocks_of(state), state.dead_letters
    uncommitted = applier.apply_records(with_poison()[6:])
    assert uncommitted.records > 0 and uncommitted.dead
    assert state.applied_offset(TOPIC, 0) == 5 and state.dead_letters == dead_before
    assert state.outbox() == []
    state.close()  # the process dies before the commit
    assert committed_rocks(path) == before
    reopened = State(path)
    try:
        assert reopened.applied_offset(TOPIC, 0) == 5 and reopened.dead_letters == dead_before
    finally:
        reopened.close()


def test_state_writes_need_an_open_transaction_and_only_one(state):
    from storage import operations as ops
    from storage.apply import apply
    from streams.codec import from_wire
    with pytest.raises(RuntimeError, match="open transaction"):
        apply(state, ops.Command("c", from_wire({"op": "create_collection",
                                                     "vectors": {"size": 2, "distance": "Dot"}})), 0)
    state.transaction(TOPIC)
    with pytest.raises(RuntimeError, match="already open"):
        state.transaction(TOPIC)


def test_dead_letters_are_in_the_outbox_after_commit_until_published(path):
    state = State(path)
    applier = Applier(state, TOPIC)
    log = with_poison()
    result = applier.apply_and_commit(log)
    poison = log[-4:]
    assert [d.record.offset for d in result.dead] == [r.offset for r in poison]
    state.close()
    state = State(path)  # committed, so a crash right after the commit keeps them
    try:
        pending = state.outbox()
        assert [(d.partition, d.offset) for d in pending] == [(0, r.offset) for r in poison]
        assert [(d.key, d.value, d.headers) for d in pending] == [(r.key, r.value, r.headers) for r in poison]
        assert "undecodable" in pending[0].reason
        assert state.dead_letters == 4
        state.published(pending[0])
        state.published(pending[1])
        assert [d.offset for d in state.outbox()] == [r.offset for r in poison[2:]]
        for d in state.outbox():
            state.published(d)
        assert state.outbox() == []
    finally:
        state.close()
    reopened = State(path)
    try:
        assert reopened.outbox() == [] and reopened.dead_letters == 4
    finally:
        reopened.close()


def test_the_same_log_yields_the_same_digest_in_one_group_or_many(tmp_path):
    log = with_poison()
    seen = []
    for size in (len(log), 1, 3):
        state = State(str(tmp_path / f"g{size}"))
        try:
            applier = Applier(state, TOPIC)
            for start in range(0, len(log), size):
                applier.apply_and_commit(log[start:start + size])
            seen.append((digest(state), state.applied_offsets(TOPIC), state.dead_letters,
                         state.outbox(), committed_rocks_of(state)))
        finally:
            state.close()
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][1] == {0: len(log) - 1} and seen[0][2] == 4


def test_waiters_are_resolved_by_the_commit_not_the_apply(state):
    applier = Applier(state, TOPIC)
    progress = Progress(state, TOPIC)

    async def scenario():
        waiter = asyncio.ensure_future(progress.wait(0, 3, timeout=5))
        await asyncio.sleep(0)
        result = applier.apply_records(sample_log(6))
        progress.committed(result.offsets)  # too early: nothing committed yet
        await asyncio.sleep(0.01)
        assert not waiter.done()
        applier.commit(result)
        progress.committed(result.offsets)
        return await waiter

    assert asyncio.run(scenario()) is True


def test_progress_keeps_a_bounded_record_of_failures(state):
    progress = Progress(state, TOPIC, failures_kept=3)
    for offset in range(5):
        progress.record_failure(0, offset, {"status": 404, "offset": offset})
    assert [progress.failure(0, o) is not None for o in range(5)] == [False, False, True, True, True]


class FlakyProducer:
    """Stands in for the Kafka producer in a unit test of the publisher (no broker).

    Like an idempotent producer, it acknowledges the records of one burst in order,
    and once one fails every later one of that burst fails too. Send number
    ``fail_at`` (0-based, counting every send) fails; what it acknowledged is kept."""

    def __init__(self, fail_at: int):
        self.fail_at = fail_at
        self.sends = 0
        self.acked = []
        self._burst = []

    async def send_raw(self, key, value, headers=None, topic=None):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not self._burst:
            loop.call_soon(self._deliver)
        self._burst.append((fut, self.sends, (topic, key, value, dict(headers))))
        self.sends += 1
        return fut

    def _deliver(self):
        burst, self._burst = self._burst, []
        failed = False
        for fut, n, record in burst:
            failed = failed or n == self.fail_at
            if failed:
                fut.set_exception(ConnectionError("broker away"))
            else:
                self.acked.append(record)
                fut.set_result(None)


def test_the_publisher_sends_the_outbox_in_order_retries_and_empties_it(state):
    applier = Applier(state, TOPIC)
    log = with_poison() + [raw(16, b"c", orjson.dumps({"op": "explode"}), [("x-trace", b"1")])]
    applier.apply_and_commit(log)
    producer = FlakyProducer(fail_at=2)
    publisher = OutboxPublisher(state, producer, TOPIC + ".dlq", max_backoff=0.05)
    asyncio.run(publisher.publish_pending())
    assert state.outbox() == []
    offsets = [int(h["pointlog-source-offset"]) for _, _, _, h in producer.acked]
    # Acknowledged ones are dropped from the outbox at once: the retry resends only the rest.
    assert offsets == [12, 13, 14, 15, 16] and producer.sends == 8
    topic, key, value, headers = producer.acked[-1]
    assert topic == TOPIC + ".dlq"
    assert (key, value) == (b"c", orjson.dumps({"op": "explode"}))
    assert headers["x-trace"] == b"1" and headers["pointlog-source-partition"] == b"0"
    assert "unknown operation kind" in headers["pointlog-dlq-reason"].decode()
    assert producer.acked[3][1] == b""  # the record without a key


def test_applied_offsets_are_per_topic(state):
    a = Applier(state, TOPIC)
    a.apply_and_commit([rec(0, "x", "create_collection", vectors={"size": 2, "distance": "Dot"})])
    assert state.applied_offsets(TOPIC) == {0: 0}
    assert state.applied_offsets("other") == {} and state.applied_offset("other", 0) == -1


class _FullDisk:
    """RocksDB as a full disk leaves it: every write refused, reads fine (the
    integration test tests/integration/test_disk_full.py fills a real tmpfs)."""

    def __init__(self, db):
        self._db = db

    def write(self, batch):
        raise Exception("IO error: No space left on device: While appending to file: 000004.log")

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_a_refused_commit_puts_memory_back_as_the_disk_has_it(path):
    from storage.transaction import StateWriteError

    log = sample_log(12)
    state = State(path)
    applier = Applier(state, TOPIC)
    applier.apply_and_commit(log[:6])
    before = digest(state)
    state.db = _FullDisk(state.db)
    with pytest.raises(StateWriteError, match="No space left"):
        applier.apply_and_commit(log[6:])
    assert state.applied_offset(TOPIC, 0) == 5 and state.failed
    assert digest(state) == before  # the group's in-memory changes are gone
    with pytest.raises(StateWriteError):  # no further transaction: the applier has stopped
        state.transaction(TOPIC)
    state.db = state.db._db
    state.close()

    state = State(path)  # the restart, once the disk has room: resumes after offset 5
    applier = Applier(state, TOPIC)
    assert applier.applied(0) == 5 and digest(state) == before
    applier.apply_and_commit(log)
    resumed = digest(state)
    state.close()
    fresh = State(path + "-fresh")
    Applier(fresh, TOPIC).apply_and_commit(log)
    assert digest(fresh) == resumed
    fresh.close()
