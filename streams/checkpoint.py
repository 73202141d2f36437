"""Checkpoints: a copy of a node's data dir from which a node restarts with only the
tail of the log to replay.

A checkpoint is a data dir: ``state/`` is a RocksDB checkpoint (hard links where the
filesystem allows), taken between two commits, so it holds the applied offsets that
match its contents; the index files are copied BEFORE it, so they never describe a
later state than the one beside them (the index manager treats points changed
since an index snapshot as its delta). ``CHECKPOINT.json`` says what it holds.
``pointlog serve --data-dir <checkpoint>`` resumes from it.
"""
import datetime as dt
import os
import shutil
import tempfile

import orjson
from rocksdict import Checkpoint

from storage.state import State

INFO_FILE = "CHECKPOINT.json"
CHECKPOINTS_DIR = "checkpoints"
# Not copied: the state (checkpointed by RocksDB), faust's scratch dir, other checkpoints.
_SKIP = {"state", "faust", CHECKPOINTS_DIR, "snapshots"}
_SCRATCH = (".tmp", ".rows")


def default_path(data_dir: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return os.path.join(data_dir, CHECKPOINTS_DIR, stamp)


def prepare(data_dir: str, dest: str) -> str:
    """Make a temporary directory beside ``dest`` holding copies of the index files;
    this is the slow part, safe to run in a thread while the node keeps applying."""
    dest = os.path.abspath(dest)
    if os.path.exists(dest):
        raise FileExistsError(f"{dest} already exists")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(dest) + ".tmp-", dir=os.path.dirname(dest))
    try:
        for name in sorted(os.listdir(data_dir)):
            src = os.path.join(data_dir, name)
            if name not in _SKIP and os.path.abspath(src) != dest:
                _copy_derived(src, os.path.join(tmp, name))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _copy_derived(src: str, dst: str) -> None:
    """Copy index files while the index manager may be swapping builds: a file that
    vanishes is skipped (the manager rebuilds an index whose files are missing), and
    scratch files (``*.tmp`` being written, ``*.rows`` build input) are left out."""
    if not os.path.isdir(src):
        _copy_file(src, dst)
        return
    for root, _dirs, files in os.walk(src, onerror=lambda err: None):
        target = os.path.join(dst, os.path.relpath(root, src))
        os.makedirs(target, exist_ok=True)
        for name in files:
            if not name.endswith(_SCRATCH):
                _copy_file(os.path.join(root, name), os.path.join(target, name))


def _copy_file(src: str, dst: str) -> None:
    try:
        shutil.copy2(src, dst)
    except FileNotFoundError:
        pass


def finish(state: State, tmp: str, dest: str, topic: str, partitions) -> dict:
    """Checkpoint the state into ``tmp`` and rename it to ``dest``. Must run between two
    commits (on the applier's event loop, or on a stopped node): RocksDB checkpoints
    only committed writes, which always carry their applied offsets."""
    if state.in_transaction:
        raise RuntimeError("checkpoint during a state transaction: its info would describe uncommitted changes")
    try:
        Checkpoint(state.db).create_checkpoint(os.path.join(tmp, "state"))
        offsets = {p: state.applied_offset(topic, p) for p in sorted(partitions)}
        info = {"topic": topic, "applied": {str(p): o for p, o in offsets.items()},
                "created": dt.datetime.now(dt.timezone.utc).isoformat(),
                "collections": {name: len(col) for name, col in sorted(state.collections.items())}}
        with open(os.path.join(tmp, INFO_FILE), "wb") as f:
            f.write(orjson.dumps(info, option=orjson.OPT_INDENT_2))
        os.rename(tmp, os.path.abspath(dest))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"path": os.path.abspath(dest), **info}


def create(state: State, data_dir: str, dest: str, topic: str, partitions) -> dict:
    """A checkpoint of a node that is not applying (the CLI on a stopped node)."""
    return finish(state, prepare(data_dir, dest), dest, topic, partitions)


def prune(data_dir: str, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints under ``<data_dir>/checkpoints``."""
    root = os.path.join(data_dir, CHECKPOINTS_DIR)
    if not os.path.isdir(root):
        return
    done = sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, INFO_FILE)))
    for name in done[:-keep] if keep > 0 else done:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
