"""The ``pointlog`` command: serve, and the operator tools that work on the log.

    pointlog serve                      run the applier and the Qdrant REST API
    pointlog digest                     deterministic digest of a node's state (read-only)
    pointlog produce FILE.jsonl         publish operations, one JSON object per line
    pointlog rebuild --data-dir DIR     a fresh data dir from offset 0 to the end of the log
    pointlog restore C --as NEW --until-offset N | --until-time ISO8601
                                        write C as it was back through the log as NEW
    pointlog checkpoint --to DIR2       a data dir to restart from with only the log tail
    pointlog recover-snapshot FILE --data-dir DIR
                                        a full snapshot unpacked into a fresh data dir
"""
import argparse
import asyncio
import datetime as dt
import os
import sys

from tqdm import tqdm

from streams.settings import DATA, INDEX, LOG, NODE, TOPICS, Settings, add_flags, from_args


def _bar(label: str, unit: str = "records") -> tqdm:
    """Progress on stderr; redrawn in place on a terminal, every few seconds in logs."""
    return tqdm(desc=label, unit=" " + unit, total=0, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.1 if sys.stderr.isatty() else 2.0)


def _follow(bar: tqdm, done: int, total: int, **postfix) -> None:
    if bar.total != total:
        bar.total = total
    bar.update(done - bar.n)
    if postfix:
        bar.set_postfix(postfix, refresh=False)


def _replay_progress(bar: tqdm):
    return lambda done, total, stats: _follow(bar, done, total, points=stats.points)


def _fail(message: str) -> int:
    print(f"pointlog: error: {message}", file=sys.stderr)
    return 1


# ---- commands --------------------------------------------------------------------------

def cmd_serve(settings: Settings, args) -> int:
    from api.server import serve
    serve(settings)
    return 0


def cmd_digest(settings: Settings, args) -> int:
    from storage.digest import digest_dir
    state_dir = settings.state_dir
    if not os.path.isdir(state_dir):
        return _fail(f"no state in {settings.data_dir}")
    # Read-only: cheap, and safe beside a running node (it sees its last commit).
    for name, value in digest_dir(state_dir).items():
        print(f"{name}\t{value}")
    return 0


def cmd_produce(settings: Settings, args) -> int:
    from storage.errors import QdrantError
    from streams.produce import ProduceError, produce_file
    from streams.topics import ensure_topics

    bar = _bar("produce", "operations")
    try:
        asyncio.run(ensure_topics(settings.kafka, settings.topic, settings.partitions,
                                  settings.topic_replication, settings.topic_min_insync))
        report = asyncio.run(produce_file(args.file, settings.kafka, settings.topic,
                                          progress=lambda n, total: _follow(bar, n, total)))
    except ProduceError as exc:
        bar.close()
        return _fail(f"{exc.message}; {len(exc.acknowledged)} operations before it were acknowledged")
    except (QdrantError, OSError) as exc:
        bar.close()
        return _fail(getattr(exc, "message", str(exc)))
    _follow(bar, report.operations, report.operations)
    bar.close()
    secs = max(report.seconds, 1e-9)
    where = f"; offsets {report.first[1]}..{report.last[1]}" if report.first else ""
    print(f"produced {report.operations} operations ({report.points} points) to {settings.topic} in "
          f"{report.seconds:.2f}s: {report.operations / secs:,.0f} ops/s, {report.points / secs:,.0f} points/s{where}",
          file=sys.stderr)
    return 0


def cmd_rebuild(settings: Settings, args) -> int:
    from streams.replay import LogError, rebuild

    bar = _bar("rebuild")
    try:
        report = asyncio.run(rebuild(settings, force=args.force, progress=_replay_progress(bar),
                                     indexes=not args.no_indexes))
    except (FileExistsError, LogError, RuntimeError) as exc:
        bar.close()
        return _fail(str(exc))
    s = report.stats
    total = sum(end - start for start, end in s.offsets.values())
    _follow(bar, total, total, points=s.points)
    bar.close()
    print(f"rebuilt {report.data_dir} from {settings.topic}: {s.applied} records ({s.dead} dead letters), "
          f"{s.points} points in {s.seconds:.2f}s: {s.points_per_second:,.0f} points/s, "
          f"{s.applied / max(s.seconds, 1e-9):,.0f} records/s", file=sys.stderr)
    for name, count in report.collections.items():
        print(f"  {name}: {count} points", file=sys.stderr)
    if report.indexes:
        print(f"built {report.indexes} vector indexes in {report.index_seconds:.2f}s", file=sys.stderr)
    print(f"start it with: pointlog serve --data-dir {report.data_dir} --topic {settings.topic}", file=sys.stderr)
    return 0


def parse_time(text: str) -> int:
    """ISO 8601 to epoch milliseconds; a time without an offset is local time."""
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.astimezone()
    return int(when.timestamp() * 1000)


def cmd_restore(settings: Settings, args) -> int:
    from streams.replay import LogError, restore

    until_time = None
    if args.until_time is not None:
        try:
            until_time = parse_time(args.until_time)
        except ValueError as exc:
            return _fail(f"--until-time: {exc}")
    bar = _bar("restore")
    try:
        report = asyncio.run(restore(settings.kafka, settings.topic, args.collection, args.new,
                                     until_offset=args.until_offset, until_time_ms=until_time,
                                     chunk=args.chunk, progress=_replay_progress(bar)))
    except (FileExistsError, LookupError, ValueError, LogError) as exc:
        bar.close()
        return _fail(str(exc).strip("'\""))
    bar.close()
    bound = ", ".join(f"partition {p} before offset {o}" if o is not None else f"partition {p} to its end"
                      for p, o in sorted(report.bound.items()))
    print(f"restored {report.points} points of `{report.collection}` ({bound}) as `{report.new}`: "
          f"operations {report.published[0]}..{report.published[1]} in {settings.topic}", file=sys.stderr)
    return 0


def cmd_checkpoint(settings: Settings, args) -> int:
    if args.url:
        return _checkpoint_remote(args.url, args.to)
    from storage.state import State
    from streams import checkpoint
    from streams.replay import state_in_use

    if not args.to:
        return _fail("--to DIR is required for a stopped node")
    state_dir = settings.state_dir
    if not os.path.isdir(state_dir):
        return _fail(f"no state in {settings.data_dir}")
    if state_in_use(state_dir):
        return _fail(f"a running node holds {settings.data_dir}: use --url http://HOST:PORT "
                     "(the node checkpoints itself, POST /pointlog/checkpoint)")
    state = State(state_dir)
    try:
        partitions = list(state.applied_offsets(settings.topic))
        info = checkpoint.create(state, settings.data_dir, args.to, settings.topic, partitions)
    except FileExistsError as exc:
        return _fail(str(exc))
    finally:
        state.close()
    print(f"checkpoint {info['path']}: applied offsets {info['applied']}", file=sys.stderr)
    return 0


def _checkpoint_remote(url: str, to: str | None) -> int:
    import json
    import urllib.error
    import urllib.request

    body = json.dumps({"path": os.path.abspath(to)} if to else {}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/pointlog/checkpoint", data=body, method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            info = json.loads(resp.read())["result"]
    except urllib.error.HTTPError as exc:
        return _fail(f"{exc.code}: {exc.read().decode(errors='replace')}")
    except OSError as exc:
        return _fail(str(exc))
    print(f"checkpoint {info['path']}: applied offsets {info['applied']}", file=sys.stderr)
    return 0


def cmd_recover_snapshot(settings: Settings, args) -> int:
    from streams import snapshots
    try:
        info = snapshots.recover_full(args.file, settings.data_dir)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    print(f"recovered {args.file} into {os.path.abspath(settings.data_dir)}: `pointlog serve` there resumes the "
          f"log after offsets {info['applied']}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pointlog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the applier and the Qdrant REST API")
    add_flags(p, NODE)
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("digest", help="print a deterministic digest of the state per collection")
    add_flags(p, DATA)
    p.set_defaults(fn=cmd_digest)

    p = sub.add_parser("produce", help="publish the operations of a JSON Lines file to the log",
                       description="Each line is a WAL record value plus its collection, e.g. "
                                   '{"collection": "items", "op": "upsert", "points": [...]} '
                                   "(streams/record.schema.json). Every line is validated "
                                   "before anything is published.")
    add_flags(p, LOG + TOPICS)
    p.add_argument("file", help="JSON Lines file, one operation per line")
    p.set_defaults(fn=cmd_produce)

    p = sub.add_parser("rebuild", help="build a fresh data dir from offset 0 to the end of the log")
    add_flags(p, LOG + DATA + INDEX)
    p.add_argument("--force", action="store_true", help="replace a non-empty data dir (node stopped)")
    p.add_argument("--no-indexes", action="store_true",
                   help="skip building vector indexes (the node builds them in the background)")
    p.set_defaults(fn=cmd_rebuild)

    p = sub.add_parser("restore", help="write a collection as it was back through the log as a new one")
    add_flags(p, LOG)
    p.add_argument("collection")
    p.add_argument("--as", dest="new", required=True, help="name of the new collection")
    bound = p.add_mutually_exclusive_group(required=True)
    bound.add_argument("--until-offset", type=int, metavar="N",
                       help="apply operations before operation_id N (pass the id of the mistake)")
    bound.add_argument("--until-time", metavar="ISO8601",
                       help="apply operations written before this time (no offset: local time)")
    p.add_argument("--chunk", type=int, default=256, help="points per upsert written back")
    p.set_defaults(fn=cmd_restore)

    p = sub.add_parser("checkpoint", help="checkpoint a node's data dir (state, indexes, offsets)")
    add_flags(p, LOG + DATA)
    p.add_argument("--to", metavar="DIR2", help="where to write it (a new directory)")
    p.add_argument("--url", help="checkpoint a running node through its API instead")
    p.set_defaults(fn=cmd_checkpoint)

    p = sub.add_parser("recover-snapshot", help="unpack a full snapshot into a fresh data dir to serve from")
    add_flags(p, DATA)
    p.add_argument("file", help="a full snapshot file (POST /snapshots, GET /snapshots/{name})")
    p.set_defaults(fn=cmd_recover_snapshot)

    args = parser.parse_args(argv)
    try:
        settings = from_args(args)
    except ValueError as exc:  # pydantic's ValidationError names the setting and the rule
        return _fail(str(exc))
    from aiokafka.errors import KafkaConnectionError
    try:
        return args.fn(settings, args)
    except KafkaConnectionError as exc:
        # aiokafka logs the broker's reason (say, SaslAuthenticationFailed) just above.
        hint = (f"; check the user and password ({settings.kafka.describe()})" if settings.kafka.sasl
                else "; is it running, and does it expect TLS or SASL (--kafka-security-protocol)?")
        return _fail(f"cannot connect to Kafka at {settings.kafka_bootstrap}: {exc}{hint}")


if __name__ == "__main__":
    sys.exit(main())
