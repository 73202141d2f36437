"""A deterministic digest of the state, per collection, for tests and operators.

It hashes what a client can observe (ids, versions, payloads, vector bytes, the
collection config), in key order, independent of how RocksDB laid it out.
"""
import hashlib

import orjson

from storage.state import State
from storage.vectors import multi
from storage.vectors.sparse import SparseVector


def digest(state: State) -> dict:
    out = {}
    for name in sorted(state.collections):
        col = state.collections[name]
        h = hashlib.sha256()
        h.update(orjson.dumps(col.config.to_json(), option=orjson.OPT_SORT_KEYS))
        for key in col.order:
            point = col.points[key]
            h.update(key)
            h.update(point.version.to_bytes(8, "big"))
            h.update(orjson.dumps(point.payload, option=orjson.OPT_SORT_KEYS))
            for vname, vec in sorted(col.point_vectors(key).items()):
                h.update(vname.encode() + b"\0" + vector_bytes(vec))
        out[name] = f"{len(col.points)} points {h.hexdigest()}"
    return out


def vector_bytes(vec) -> bytes:
    if isinstance(vec, SparseVector):
        return vec.to_bytes()
    return multi.to_bytes(vec) if vec.ndim == 2 else vec.astype("<f4").tobytes()


def digest_dir(state_dir: str) -> dict:
    """``digest`` read straight from RocksDB, read-only: nothing is loaded into memory
    (cheap on a big state), and it works beside a running node, whose commits are
    atomic, so it sees the state as of one of them."""
    import msgpack
    from rocksdict import AccessType, Options, Rdict

    from storage.config import CollectionConfig
    from storage.state import _META, _POINTS, decode_point

    cfs = {_META: Options(raw_mode=True), _POINTS: Options(raw_mode=True)}
    db = Rdict(state_dir, options=Options(raw_mode=True), column_families=cfs,
               access_type=AccessType.read_only(False))
    try:
        meta, points = db.get_column_family(_META), db.get_column_family(_POINTS)
        by_cid, counts = {}, {}
        for key, value in meta.items(from_key=b"collection/"):
            if not key.startswith(b"collection/"):
                break
            entry = msgpack.unpackb(value)
            h = hashlib.sha256()
            h.update(orjson.dumps(CollectionConfig.from_body(entry["config"]).to_json(), option=orjson.OPT_SORT_KEYS))
            by_cid[entry["cid"]] = (entry["name"], h)
            counts[entry["name"]] = 0
        for key, value in points.items():
            owner = by_cid.get(int.from_bytes(key[:4], "big"))
            if owner is None:
                continue
            name, h = owner
            version, payload, vectors = decode_point(value)
            h.update(bytes(key[4:]))
            h.update(version.to_bytes(8, "big"))
            h.update(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
            for vname, vec in sorted(vectors.items()):
                h.update(vname.encode() + b"\0" + vector_bytes(vec))
            counts[name] += 1
        out = {name: f"{counts[name]} points {h.hexdigest()}" for name, h in by_cid.values()}
        meta.close()
        points.close()
    finally:
        db.close()
    return dict(sorted(out.items()))
