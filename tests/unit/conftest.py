"""Fixtures of the pure tests: a real RocksDB state in a temp dir, no broker."""
import pytest

from tests.unit.statelog import StateLog


@pytest.fixture
def log(tmp_path):
    """A state plus the offsets an applier would give its operations."""
    lg = StateLog(str(tmp_path / "state"))
    yield lg
    lg.state.close()
