"""Snapshots in Qdrant's shapes, built on the log and on checkpoints.

The log stays the source of truth, so the two kinds of snapshot restore in the two
ways that keep a node consistent with it:

- A **collection snapshot** holds the records that rebuild the collection as it was
  at one log position (``create_collection`` with its config, its payload indexes,
  then its points in upserts), plus that position. It is read from a RocksDB
  checkpoint taken between two commits, so it is the state after exactly the offsets
  it names. Recovering one (``PUT .../snapshots/recover``, ``POST .../snapshots/upload``)
  publishes those records through the log under the target name, after a
  ``delete_collection`` if the name exists: every replica of the log (and any node
  started later) applies the same records and ends in the same state, and the
  collection keeps taking writes after them. Point versions become the offsets of
  the recovery records. This also moves a collection between deployments (topics).
- A **full snapshot** is a node checkpoint (state, index files and the applied
  offsets) as one file. ``pointlog recover-snapshot FILE --data-dir DIR`` unpacks it
  into a fresh data dir; a node started there resumes the log at the offsets after
  the snapshot, as from any checkpoint, so it reaches the same state (digest) as the
  node it was taken from. Like Qdrant, full snapshots are not recovered over the API.

Files are tar archives named as Qdrant names them (``<collection>-<peer>-<time>.snapshot``,
``full-snapshot-<time>.snapshot``), with a ``.checksum`` (sha256) beside each, kept
per node under ``DATA_DIR/snapshots``. A ``file://`` location must lie in that
directory (Qdrant's rule against reading arbitrary files); ``http(s)://`` locations are
fetched, e.g. a snapshot served by another node.
"""
import asyncio
import datetime as dt
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request

import msgpack
import orjson
from rocksdict import AccessType, Checkpoint, Options, Rdict

from storage import operations as ops
from storage.config import CollectionConfig
from storage.errors import BadRequest, NotFound
from storage.ids import decode_id
from storage.state import _META, _POINTS, decode_point
from streams import checkpoint
from streams.codec import from_wire, to_wire

SNAPSHOTS_DIR = "snapshots"
SUFFIX = ".snapshot"
INFO = "snapshot.json"
RECORDS = "records.msgpack"
FORMAT = 1
CHUNK = 256  # points per upsert record of a collection snapshot


def root(data_dir: str) -> str:
    return os.path.join(os.path.abspath(data_dir), SNAPSHOTS_DIR)


def collection_dir(data_dir: str, name: str) -> str:
    return os.path.join(root(data_dir), "collections", name)


def full_dir(data_dir: str) -> str:
    return os.path.join(root(data_dir), "full")


def _stamp() -> str:
    # Qdrant's %Y-%m-%d-%H-%M-%S, with microseconds so two snapshots never collide.
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S-%f")


# ---- listing, reading, deleting ---------------------------------------------------

def describe(path: str) -> dict:
    """SnapshotDescription."""
    stat = os.stat(path)
    created = dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc).replace(tzinfo=None)
    try:
        with open(path + ".checksum") as f:
            checksum = f.read().strip() or None
    except FileNotFoundError:
        checksum = None
    return {"name": os.path.basename(path), "creation_time": created.isoformat(timespec="seconds"),
            "size": stat.st_size, "checksum": checksum}


def listing(directory: str) -> list:
    if not os.path.isdir(directory):
        return []
    return [describe(os.path.join(directory, n)) for n in sorted(os.listdir(directory)) if n.endswith(SUFFIX)]


def snapshot_path(directory: str, name: str) -> str:
    """The file of a snapshot by name; 404 for a name that is not one of them."""
    if "/" in name or "\\" in name or name in ("", ".", "..") or not name.endswith(SUFFIX):
        raise NotFound(f"Not found: Snapshot {name} not found")
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise NotFound(f"Not found: Snapshot {name} not found")
    return path


def delete(directory: str, name: str) -> bool:
    path = snapshot_path(directory, name)
    os.remove(path)
    try:
        os.remove(path + ".checksum")
    except FileNotFoundError:
        pass
    return True


def _seal(tmp_file: str, dest: str) -> dict:
    """Checksum a finished archive and move it into place (``.checksum`` first, so a
    listed snapshot always has one)."""
    h = hashlib.sha256()
    with open(tmp_file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    with open(dest + ".checksum", "w") as f:
        f.write(h.hexdigest())
    os.replace(tmp_file, dest)
    return describe(dest)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(dt.datetime.now().timestamp())
    tar.addfile(info, io.BytesIO(data))


# ---- collection snapshots ----------------------------------------------------------

async def create_collection_snapshot(node, name: str, peer_id: int) -> dict:
    """Snapshot one collection of a running node, at the offsets it has applied."""
    directory = collection_dir(node.settings.data_dir, name)
    os.makedirs(directory, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=directory)
    try:
        # No await between the checkpoint and the offsets: the applier commits on this
        # loop, so both describe the same commit.
        if node.state.in_transaction:
            raise RuntimeError("snapshot during a state transaction")
        Checkpoint(node.state.db).create_checkpoint(os.path.join(tmp, "state"))
        info = {"format": FORMAT, "kind": "collection", "collection": name, "topic": node.settings.topic,
                "applied": {str(p): o for p, o in sorted(node.applied().items())},
                "created": dt.datetime.now(dt.timezone.utc).isoformat()}
        dest = os.path.join(directory, f"{name}-{peer_id}-{_stamp()}{SUFFIX}")
        return await asyncio.to_thread(_write_collection, tmp, name, dest, info)
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)


def _open_read_only(state_dir: str) -> Rdict:
    cfs = {_META: Options(raw_mode=True), _POINTS: Options(raw_mode=True)}
    return Rdict(state_dir, options=Options(raw_mode=True), column_families=cfs,
                 access_type=AccessType.read_only(False))


def _write_collection(tmp: str, name: str, dest: str, info: dict) -> dict:
    db = _open_read_only(os.path.join(tmp, "state"))
    records = os.path.join(tmp, RECORDS)
    try:
        meta, points = db.get_column_family(_META), db.get_column_family(_POINTS)
        raw = meta.get(b"collection/" + name.encode())
        if raw is None:
            raise NotFound(f"Not found: Collection `{name}` doesn't exist!")
        entry = msgpack.unpackb(raw)
        count = 0
        with open(records, "wb") as out:
            def put(op):
                out.write(msgpack.packb(to_wire(op, binary=True)))

            put(ops.CreateCollection(CollectionConfig.from_body(entry["config"])))
            for field, schema in sorted(entry.get("payload_schema", {}).items()):
                put(ops.CreateFieldIndex(field, schema))
            prefix = entry["cid"].to_bytes(4, "big")
            chunk = []
            for key, value in points.items(from_key=prefix):
                if key[:4] != prefix:
                    break
                _version, payload, vectors = decode_point(value)
                chunk.append(ops.PointStruct(decode_id(key[4:]), vectors, payload or None))
                count += 1
                if len(chunk) == CHUNK:
                    put(ops.Upsert(chunk))
                    chunk = []
            if chunk:
                put(ops.Upsert(chunk))
        meta.close()
        points.close()
    finally:
        db.close()
    info = {**info, "points": count}
    archive = os.path.join(tmp, "archive.tar")
    with tarfile.open(archive, "w") as tar:
        _add_bytes(tar, INFO, orjson.dumps(info, option=orjson.OPT_INDENT_2))
        tar.add(records, RECORDS)
    return _seal(archive, dest)


def read_collection_snapshot(path: str) -> tuple:
    """(info, operations) of a collection snapshot file; 400 for anything else."""
    try:
        with tarfile.open(path, "r") as tar:
            info = orjson.loads(tar.extractfile(INFO).read())
            if info.get("kind") != "collection" or info.get("format") != FORMAT:
                raise BadRequest("Bad request: not a pointlog collection snapshot (a full snapshot is recovered "
                                 "with `pointlog recover-snapshot`)")
            stream = tar.extractfile(RECORDS)
            found = [from_wire(wire) for wire in msgpack.Unpacker(stream, raw=False)]
    except (tarfile.TarError, KeyError, orjson.JSONDecodeError, ValueError, msgpack.UnpackException) as exc:
        raise BadRequest(f"Bad request: invalid snapshot file: {type(exc).__name__}: {exc}") from None
    if not found or not isinstance(found[0], ops.CreateCollection):
        raise BadRequest("Bad request: invalid snapshot file: it does not start with the collection's config")
    return info, found


async def fetch(location: str, data_dir: str, api_key: str | None = None) -> tuple:
    """(local path, temporary?) of a snapshot location: a file in this node's snapshot
    directory, or an http(s) URL downloaded to a temporary file."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme == "file":
        path = os.path.realpath(urllib.parse.unquote(parsed.path))
        allowed = os.path.realpath(root(data_dir))
        if os.path.commonpath([path, allowed]) != allowed:
            raise BadRequest(f"Bad request: Snapshot file {path} must be in the snapshots directory {allowed}")
        if not os.path.isfile(path):
            raise NotFound(f"Not found: Snapshot file {path} does not exist")
        return path, False
    if parsed.scheme not in ("http", "https"):
        raise BadRequest(f"Bad request: snapshot location must be a file:// or http(s):// URL, got {location!r}")
    os.makedirs(root(data_dir), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=SUFFIX, dir=root(data_dir))
    os.close(fd)

    def download():
        request = urllib.request.Request(location, headers={"api-key": api_key} if api_key else {})
        with urllib.request.urlopen(request, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)

    try:
        await asyncio.to_thread(download)
    except Exception as exc:
        os.remove(tmp)
        raise BadRequest(f"Bad request: failed to download snapshot from {location}: {exc}") from None
    return tmp, True


def checksum_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- full snapshots ----------------------------------------------------------------

async def create_full_snapshot(node) -> dict:
    directory = full_dir(node.settings.data_dir)
    os.makedirs(directory, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".tmp-", dir=directory)
    try:
        ckpt = os.path.join(work, "node")
        info = await node.checkpoint(ckpt)
        dest = os.path.join(directory, f"full-snapshot-{_stamp()}{SUFFIX}")
        meta = {"format": FORMAT, "kind": "full", "topic": info["topic"], "applied": info["applied"],
                "created": info["created"], "collections": info["collections"]}
        return await asyncio.to_thread(_write_full, work, ckpt, dest, meta)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


def _write_full(work: str, ckpt: str, dest: str, info: dict) -> dict:
    archive = os.path.join(work, "archive.tar")
    with tarfile.open(archive, "w") as tar:
        _add_bytes(tar, INFO, orjson.dumps(info, option=orjson.OPT_INDENT_2))
        tar.add(ckpt, "node")
    return _seal(archive, dest)


def recover_full(path: str, data_dir: str) -> dict:
    """Unpack a full snapshot into a fresh data dir; a node started there resumes the
    log after the snapshot's offsets."""
    data_dir = os.path.abspath(data_dir)
    if os.path.exists(data_dir) and os.listdir(data_dir):
        raise FileExistsError(f"{data_dir} is not empty: recover a full snapshot into a fresh data dir")
    parent = os.path.dirname(data_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".recover-", dir=parent)
    try:
        with tarfile.open(path, "r") as tar:
            info = orjson.loads(tar.extractfile(INFO).read())
            if info.get("kind") != "full":
                raise ValueError("not a full snapshot (a collection snapshot is recovered through the API)")
            tar.extractall(tmp, filter="data")
        if not os.path.exists(os.path.join(tmp, "node", checkpoint.INFO_FILE)):
            raise ValueError("invalid full snapshot: no checkpoint inside")
        if os.path.exists(data_dir):
            os.rmdir(data_dir)
        os.rename(os.path.join(tmp, "node"), data_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info
