"""A deterministic digest of the state, per collection, for tests and operators.

It hashes what a client can observe (ids, versions, payloads, vector bytes, the
collection config), in key order, independent of how RocksDB laid it out.
"""
import hashlib

import orjson

from storage.state import State


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
                h.update(vname.encode() + b"\0" + vec.astype("<f4").tobytes())
        out[name] = f"{len(col.points)} points {h.hexdigest()}"
    return out
