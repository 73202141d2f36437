"""The ``pointlog`` command: serve, and the operator tools that work on the log."""
import argparse
import asyncio
import logging
import os
import sys

from streams.node import Settings


def _settings(args) -> Settings:
    return Settings(bootstrap=args.bootstrap, topic=args.topic, data_dir=args.data_dir,
                    host=getattr(args, "host", "127.0.0.1"), port=getattr(args, "port", 6333),
                    group=getattr(args, "group", "") or "")


def _common(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--bootstrap", default=env("POINTLOG_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                   help="Kafka bootstrap servers (env POINTLOG_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", default=env("POINTLOG_TOPIC", "pointlog.ops"),
                   help="WAL topic (env POINTLOG_TOPIC)")
    p.add_argument("--data-dir", default=env("POINTLOG_DATA_DIR", "./data"),
                   help="state directory (env POINTLOG_DATA_DIR)")


def cmd_serve(args) -> int:
    from api.server import serve
    serve(_settings(args), loglevel=args.loglevel)
    return 0


def cmd_digest(args) -> int:
    from storage.digest import digest
    from storage.state import State
    state = State(os.path.join(args.data_dir, "state"))
    try:
        for name, value in sorted(digest(state).items()):
            print(f"{name}\t{value}")
    finally:
        state.close()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pointlog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the applier and the Qdrant REST API")
    _common(p)
    p.add_argument("--host", default=os.environ.get("POINTLOG_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("POINTLOG_PORT", "6333")))
    p.add_argument("--group", default=os.environ.get("POINTLOG_GROUP", ""),
                   help="consumer group id (default: derived from the data dir)")
    p.add_argument("--loglevel", default=os.environ.get("POINTLOG_LOGLEVEL", "warning"))
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("digest", help="print a deterministic digest of the state per collection")
    p.add_argument("--data-dir", default=os.environ.get("POINTLOG_DATA_DIR", "./data"))
    p.set_defaults(fn=cmd_digest)

    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
