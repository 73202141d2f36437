"""CPU time of the ingest hot path in one process, without HTTP or Kafka: the bench
workload's batch bodies decoded and parsed as the REST door does, encoded as WAL
records, then decoded, applied and committed as the applier does.

Process CPU time, not wall time: on a machine shared with other work this is the
figure that stays put, so A/B comparisons of two trees run it in each, interleaved:
``python -m tests.benchmarks.hotpath [--points N] [--gc-defaults]``.
"""
import argparse
import gc
import tempfile
import time

import orjson

from api.rest import bodies
from storage import operations as ops
from storage.state import State
from streams.applier import Applier, Record
from streams.codec import encode
from tests.benchmarks.workload import BATCH, INDEXED_FIELD, batch_body, vectors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=40_000)
    ap.add_argument("--gc-defaults", action="store_true", help="keep CPython's collector settings")
    args = ap.parse_args()
    try:
        from api.rest import vector_json
    except ImportError:  # a tree from before it
        vector_json = None
    if not args.gc_defaults:
        try:
            from api.server import tune_gc
            tune_gc()
        except ImportError:
            pass
    n = args.points
    data = vectors(n)
    raw_bodies = [batch_body(data, 0, list(range(s, min(n, s + BATCH)))) for s in range(0, n, BATCH)]
    applier = Applier(State(tempfile.mkdtemp(prefix="pointlog-hotpath-")), "hotpath")
    setup = [bodies.parse(ops.CreateCollection, {"vectors": {"size": data.shape[1], "distance": "Cosine"}}),
             bodies.parse(ops.CreateFieldIndex, INDEXED_FIELD)]
    for offset, op in enumerate(setup):
        applier.apply_and_commit([Record(0, offset, *encode(ops.Command("c", op)))])
    offset = len(setup)
    parse = apply = 0.0
    for raw in raw_bodies:
        t0 = time.process_time()
        body = vector_json.loads(raw) if vector_json else None
        op = bodies.parse(ops.Upsert, orjson.loads(raw) if body is None else body)
        key, value, headers = encode(ops.Command("c", op))
        t1 = time.process_time()
        applier.apply_and_commit([Record(0, offset, key, value, headers)])
        apply += time.process_time() - t1
        parse += t1 - t0
        offset += 1
    per = 1e6 / n
    print(f"decode+parse+encode {parse * per:6.1f} us/point   decode+apply+commit {apply * per:6.1f} us/point   "
          f"total {(parse + apply) * per:6.1f} us/point   (gc {gc.get_threshold()})")


if __name__ == "__main__":
    main()
