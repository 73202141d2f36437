"""Column segments (storage/segments.py): a state loaded from segments plus the
journal after them is the state loaded point by point from RocksDB, whatever ran
between the capture, the write and the restart; a segment that cannot be trusted is
refused and the collection loads from RocksDB."""
import os
import shutil

import pytest

from storage import segments
from storage.apply import apply
from storage.digest import digest
from storage.errors import QdrantError
from storage.state import State
from streams.codec import decode, encode
from tests.unit.test_apply import TOPIC, _random_log, cmd, view


class Replayer:
    """Applies a log in commits of a few commands, like the applier."""

    def __init__(self, path: str, log: list):
        self.path, self.log, self.at = path, log, 0
        self.state = State(path)

    def run(self, n: int, group: int = 3) -> None:
        end = min(self.at + n, len(self.log))
        while self.at < end:
            txn = self.state.transaction(TOPIC)
            for _ in range(min(group, end - self.at)):
                c, kind, body = self.log[self.at]
                try:
                    apply(self.state, decode(*encode(cmd(c, kind, **body), binary=True)), self.at)
                except QdrantError:
                    pass
                txn.set_offset(0, self.at)
                self.at += 1
            txn.commit()

    def captures(self) -> list:
        return [self.state.capture_segment(col) for col in self.state.collections.values()]

    def write(self, caps: list) -> None:
        for cap in caps:
            cap.write(self.state.path)
            self.state.segment_written(cap)

    def reopen(self) -> State:
        self.state.close()
        self.state = State(self.path)
        return self.state


def reference(tmp_path, log: list, upto: int) -> tuple:
    """View and digest of the same log applied without any segment."""
    r = Replayer(str(tmp_path / "reference"), log)
    r.run(upto)
    state = r.reopen()
    try:
        assert set(state.loaded_from.values()) <= {"points"}
        return view(state), digest(state)
    finally:
        state.close()


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_segments_written_while_applying_reload_the_same_state(tmp_path, seed):
    log = _random_log(seed=seed, n=400)
    r = Replayer(str(tmp_path / "s"), log)
    r.run(120)
    r.write(r.captures())  # written as captured
    r.run(60)
    caps = r.captures()
    r.run(90)  # captured, then more commits, then written: the file reads later changes
    r.write(caps)
    r.run(40)
    total = r.at
    state = r.reopen()
    # "p" was recreated (at offset ~202) after the second capture: its file was dropped
    assert state.loaded_from == {"p": "points", "q": "segment"}
    assert (view(state), digest(state)) == reference(tmp_path, log, total)
    r.write(r.captures())
    r.run(len(log))  # and it goes on from there
    final = r.reopen()
    try:
        assert set(final.loaded_from.values()) == {"segment"}
        assert (view(final), digest(final)) == reference(tmp_path / "again", log, len(log))
    finally:
        final.close()


def test_a_recreated_collection_never_reads_the_segment_of_the_old_one(tmp_path):
    log = _random_log(seed=5, n=200)  # deletes and recreates "p" in the middle
    r = Replayer(str(tmp_path / "s"), log)
    r.run(90)
    r.write(r.captures())
    r.run(len(log))
    state = r.reopen()
    try:
        assert state.loaded_from["p"] == "points" and state.loaded_from["q"] == "segment"
        assert (view(state), digest(state)) == reference(tmp_path, log, len(log))
        assert not os.path.exists(segments.seg_path(state.path, 1))  # the old "p": removed at load
    finally:
        state.close()


def _segmented(tmp_path, name: str = "s") -> Replayer:
    log = _random_log(seed=9, n=150)
    r = Replayer(str(tmp_path / name), log)
    r.run(100)
    r.write(r.captures())
    r.run(50)
    return r


def test_a_truncated_segment_is_refused(tmp_path):
    r = _segmented(tmp_path)
    state = r.reopen()
    expected = view(state), digest(state)
    cid = state.collections["q"].cid
    state.close()
    path = segments.seg_path(r.path, cid)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    state = State(r.path)
    try:
        assert state.loaded_from["q"] == "points"
        assert (view(state), digest(state)) == expected
    finally:
        state.close()


def test_a_segment_of_another_state_is_refused(tmp_path):
    a, b = _segmented(tmp_path, "a"), _segmented(tmp_path, "b")
    b.run(1000)
    sb = b.reopen()
    expected = view(sb), digest(sb)
    cid = sb.collections["q"].cid
    sb.close()
    a.state.close()
    shutil.copy(segments.seg_path(a.path, cid), segments.seg_path(b.path, cid))  # same cid, other state
    state = State(b.path)
    try:
        assert state.loaded_from["q"] == "points"
        assert (view(state), digest(state)) == expected
    finally:
        state.close()


def test_a_segment_older_than_the_pruned_journal_is_refused(tmp_path):
    """A copy of an older segment (say, copied into a checkpoint before a newer one
    pruned the journal) lacks changes the journal no longer has."""
    r = _segmented(tmp_path)
    cid = r.state.collections["q"].cid
    old = str(tmp_path / "old.seg")
    shutil.copy(segments.seg_path(r.path, cid), old)
    r.run(1000)
    r.write(r.captures())
    state = r.reopen()
    expected = view(state), digest(state)
    state.close()
    shutil.copy(old, segments.seg_path(r.path, cid))
    state = State(r.path)
    try:
        assert state.loaded_from["q"] == "points"
        assert (view(state), digest(state)) == expected
    finally:
        state.close()


def test_a_segment_ahead_of_the_state_is_refused(tmp_path):
    """A state restored from an older copy (a checkpoint) beside a newer segment."""
    r = _segmented(tmp_path)
    r.state.close()
    backup = str(tmp_path / "backup")
    shutil.copytree(r.path, backup)
    r.state = State(r.path)
    r.run(1000)
    r.write(r.captures())
    r.state.close()
    shutil.rmtree(os.path.join(backup, segments.DIR))
    shutil.copytree(os.path.join(r.path, segments.DIR), os.path.join(backup, segments.DIR))
    state = State(backup)
    try:
        assert "segment" not in state.loaded_from.values()
    finally:
        state.close()


def test_segments_need_the_journal_only_since_their_capture(tmp_path):
    r = _segmented(tmp_path)
    caps = r.captures()
    r.write(caps)
    for cap in caps:  # the journal holds nothing at or before the segment
        prefix = cap.cid.to_bytes(4, "big")
        seqs = [int.from_bytes(k[4:12], "big") for k, _ in r.state.journal_cf.items(from_key=prefix)
                if k[:4] == prefix]
        assert all(s > cap.seq for s in seqs)
    r.state.close()


def test_segments_in_many_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(segments, "CHUNK", 3)  # keys, payloads and rows in chunks of 3 points
    log = _random_log(seed=31, n=300)
    r = Replayer(str(tmp_path / "s"), log)
    r.run(len(log))
    r.write(r.captures())
    state = r.reopen()
    try:
        assert set(state.loaded_from.values()) == {"segment"}
        assert (view(state), digest(state)) == reference(tmp_path, log, len(log))
    finally:
        state.close()


def test_the_bulk_load_of_a_store_equals_puts_one_by_one():
    import numpy as np

    from storage.vectors.store import VectorStore
    keys = [bytes([0]) + i.to_bytes(8, "big") for i in range(3000)]
    rows = np.random.default_rng(1).normal(size=(3000, 4)).astype(np.float32)
    one, bulk = VectorStore(4, "Dot"), VectorStore(4, "Dot")
    for k, row in zip(keys, rows):
        one.put(k, row)
    bulk.load(keys, rows)
    for attr in ("slot_of", "keys", "generation", "removals", "used"):
        assert getattr(one, attr) == getattr(bulk, attr), attr
    for attr in ("matrix", "alive", "stamp"):
        assert np.array_equal(getattr(one, attr), getattr(bulk, attr)), attr
    bulk.put(keys[0], rows[1])  # and it goes on like the other
    one.put(keys[0], rows[1])
    assert np.array_equal(one.matrix, bulk.matrix) and one.generation == bulk.generation
