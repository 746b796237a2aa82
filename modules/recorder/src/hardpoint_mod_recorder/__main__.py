"""Command line: ``python -m hardpoint_mod_recorder {replay,info,recover} ...``.

* ``replay FILE [--speed 1.0] [--topics T ...] [--include-health] [--domain-id N] [--dds-config XML]``
  publishes a recording onto the Cyclone DDS bus, keeping its relative timing;
* ``info FILE`` lists the channels of a recording (topic, interface, source, messages) and its time span;
* ``recover FILE.part OUT.mcap`` rewrites what survives of a crashed recording as a valid file.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hardpoint_mod_recorder", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="publish a recording onto the bus, keeping its relative timing")
    r.add_argument("file", type=Path)
    r.add_argument("--speed", type=float, default=1.0, help="time factor: 2 = twice as fast, 0 = no pacing")
    r.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics or interface names")
    r.add_argument(
        "--include-health", action="store_true", help="also replay module heartbeats (hardpoint.core.v1.ModuleHealth)"
    )
    r.add_argument("--source", default="replay", help="module name stamped on the replayed samples (default: replay)")
    r.add_argument("--domain-id", type=int, default=0, help="DDS domain id (default 0)")
    r.add_argument("--dds-config", help="Cyclone DDS XML configuration (default: the SDK's loopback configuration)")
    r.add_argument("--linger", type=float, default=1.0, help="seconds to stay on the bus after the last message")
    i = sub.add_parser("info", help="list the channels and time span of a recording")
    i.add_argument("file", type=Path)
    c = sub.add_parser("recover", help="rewrite what survives of a crashed recording (FILE.part) as a valid file")
    c.add_argument("part", type=Path)
    c.add_argument("out", type=Path)
    return p


def _replay(args: argparse.Namespace) -> int:
    import hardpoint
    from hardpoint_mod_recorder._replay import DEFAULT_EXCLUDE, replay

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    transport = hardpoint.CycloneTransport(domain_id=args.domain_id, config=args.dds_config)
    try:
        bus = hardpoint.Bus(transport, module=args.source, requires=())

        def sleep(seconds: float) -> None:
            stopping.wait(seconds)

        stats = replay(
            args.file,
            bus,
            speed=args.speed,
            topics=args.topics,
            exclude=() if args.include_health else DEFAULT_EXCLUDE,
            sleep=sleep,
            stop=stopping.is_set,
        )
        bus.flush()
        stopping.wait(args.linger)  # let reliable readers take the last samples before the writers go
        bus.close()
    finally:
        transport.close()
    for topic, n in sorted(stats.published.items()):
        print(f"{n:8d}  {topic}")
    for reason, n in sorted(stats.skipped.items()):
        print(f"{n:8d}  skipped: {reason}")
    print(
        f"replayed {stats.total} message(s) covering {stats.span_ns / 1e9:.1f} s"
        + (" (interrupted)" * stopping.is_set())
    )
    return 130 if stopping.is_set() else 0


def _info(args: argparse.Namespace) -> int:
    from hardpoint_mod_recorder._mcap import metadata, read

    counts: Counter[tuple[str, str, str]] = Counter()
    first = last = None
    for rec in read(args.file):
        counts[(rec.topic, rec.interface, rec.source)] += 1
        first = rec.log_time_ns if first is None else min(first, rec.log_time_ns)
        last = rec.log_time_ns if last is None else max(last, rec.log_time_ns)
    for name, data in metadata(args.file).items():
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in sorted(data.items())))
    for (topic, interface, source), n in sorted(counts.items()):
        print(f"{n:8d}  {topic}  {interface}  from {source or '?'}")
    span = (last - first) / 1e9 if first is not None and last is not None else 0.0
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first / 1e9)) if first is not None else "-"
    print(f"{sum(counts.values())} message(s), {span:.1f} s from {start}")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from hardpoint_mod_recorder._mcap import recover

    n = recover(args.part, args.out)
    print(f"recovered {n} message(s) into {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    from mcap.exceptions import McapError

    try:
        if args.command == "replay":
            return _replay(args)
        if args.command == "info":
            return _info(args)
        return _recover(args)
    except (OSError, McapError) as e:
        print(f"hardpoint_mod_recorder {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
