"""Publish/subscribe benchmark: hardpoint's SDK against the engines underneath, in one run.

    python bench/pubsub.py --json            # full run (~3.5 min), one JSON object on stdout
    python bench/pubsub.py --quick --json    # ~30 s, what CI runs
    python bench/pubsub.py                   # full run, a table instead of JSON

Two worker processes (``rx``: subscribers and ping responders; ``tx``: publishers
and ping initiators; see ``_pubsub_worker.py``) carry the same protobuf messages
(``_pubsub_messages.py``: exactly 80 B, 1 KiB and 64 KiB) for every contender:

* ``sdk_event``: hardpoint ``Bus`` on a reliable event interface (``Alert``);
* ``sdk_state``: hardpoint ``Bus`` on a keyed state interface (``ModuleHealth``, 8 keys);
* ``sdk_stream``: hardpoint ``Bus`` on a best-effort stream interface (``SensorTrack``);
* ``raw``: plain cyclonedds-python through its public API (``DataWriter.write`` /
  ``DataReader.take``, the library's own serializer), one sample per message, in
  an ``IdlStruct`` envelope with the same members, reliable keep-all, no
  hardpoint code: what issue 2 calls "raw cyclonedds-python";
* ``raw_shim``: the same envelope and QoS through the private-API bytes shim the
  SDK's transport uses (``hardpoint._dds._bytes``): hardpoint's transport minus
  the Bus, a stricter baseline;
* ``zenoh``: zenoh-python in peer mode on 127.0.0.1, scouting off.

Throughput is counted at the receiver: messages received *and parsed* per second
over a fixed window after a warm-up, while the publisher publishes as fast as it
can (reliable contenders are flow controlled). Before a window the sender
publishes numbered probes until the receiver has one, so the receiver knows what
it must receive: ``lost = sent - probes it missed - received`` after a drain.
Round trips are a ping-pong (``Alert`` out, ``AlertAck`` of the same size back),
each pong sending the next ping from the receive callback. Contenders are
interleaved within each repetition; throughput is the median of the
repetitions, latency percentiles are taken over the round trips of all of them.

The ratios issue 2 names (``throughput_ratio_*``, ``latency_p50_ratio``,
``latency_p99_ratio``, ``latency_ratio_by_size``, judged in ``targets``) are SDK
event / ``raw``, the public-API baseline the issue defines ("Raw
cyclonedds-python pays a fixed cost of about 16-20 us per sample in Python").
The same ratios against ``raw_shim`` are kept under ``*_vs_shim`` keys
(``throughput_ratio_1k_vs_shim``, ``latency_p99_ratio_vs_shim``, ...), outside
``targets``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

import _pubsub_messages as messages
import _pubsub_worker as worker

SIZES = (80, 1024, 65536)
#: Sizes at which the stream interface and zenoh are measured by default.
STREAM_SIZES = (80, 1024)
#: The baseline of the issue's ratios (plain cyclonedds-python) and the stricter one (hardpoint's shim).
BASELINE = "raw"
SHIM_BASELINE = "raw_shim"
RELIABLE = ("sdk_event", BASELINE, SHIM_BASELINE)
#: Time the publisher goes on after the receiver's window closes, seconds.
TAIL_S = 0.3

_RUN_FIELDS = (
    "msgs_per_s",
    "in_window",
    "sent",
    "received",
    "lost",
    "rx_cpu_us_per_msg",
    "rx_cpu_load",
    "tx_cpu_us_per_msg",
    "tx_cpu_load",
    "udp_rcvbuf_errors",
)

TARGETS = {
    "throughput_ratio_1k": (">=", 0.9),
    "throughput_ratio_64k": (">=", 0.9),
    "latency_p99_ratio": ("<=", 1.25),
    "stream_vs_zenoh_1k": (">=", 1.0),
    "stream_vs_zenoh_80b": (">=", 1.0),
    "lost_reliable": ("==", 0),
}


def _label(size: int) -> str:
    return {80: "80b", 1024: "1k", 65536: "64k"}.get(size, f"{size}b")


class Workers:
    """The two worker processes and their command pipes."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.procs: dict[str, Any] = {}
        self.conns: dict[str, Connection] = {}
        for name in ("rx", "tx"):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker.serve, args=(child, name, cfg), name=f"bench-{name}", daemon=True)
            proc.start()
            child.close()
            self.procs[name] = proc
            self.conns[name] = parent

    def send(self, name: str, *cmd: Any) -> None:
        self.conns[name].send(cmd)

    def reply(self, name: str, timeout: float, what: str) -> Any:
        conn = self.conns[name]
        if not conn.poll(timeout):
            raise RuntimeError(f"{what}: worker {name} did not answer within {timeout:.0f} s")
        status, value = conn.recv()
        if status != "ok":
            raise RuntimeError(f"{what}: worker {name} failed:\n{value}")
        return value

    def call(self, name: str, *cmd: Any, timeout: float = 30.0) -> Any:
        self.send(name, *cmd)
        return self.reply(name, timeout, f"{cmd[0]} {cmd[1:]}")

    def close(self) -> None:
        for name, proc in self.procs.items():
            if proc.is_alive():
                with contextlib.suppress(RuntimeError, OSError, EOFError):
                    self.call(name, "quit", timeout=10)
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def throughput(w: Workers, kind: str, size: int, warmup: float, window: float) -> dict[str, Any]:
    what = f"throughput {kind} {size} B"
    w.call("rx", "rx_open", kind, size)
    w.call("tx", "tx_open", kind, size)
    try:
        w.send("tx", "tx_probe", warmup + window + TAIL_S)
        w.call("rx", "rx_wait_first", 10.0, timeout=15)
        w.send("tx", "go")
        rate = w.call("rx", "rx_measure", warmup, window, timeout=warmup + window + 30)
        sent = w.reply("tx", warmup + window + 60, what)
        final = w.call("rx", "rx_drain", sent["sent"], kind in RELIABLE, 20.0, timeout=60)
    finally:
        w.call("tx", "tx_close")
        w.call("rx", "rx_close")
    return {**rate, **sent, **final}


def round_trips(w: Workers, kind: str, size: int, total: int) -> list[int]:
    w.call("rx", "pong_open", kind, size)
    try:
        return w.call("tx", "ping", kind, size, total, 60.0, timeout=120)
    finally:
        w.call("rx", "pong_close")


def _percentile(sorted_values: list[int], q: float) -> float:
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[i])


#: DDS domain ids a run may take; a lock file per id (shared with the integration tests and
#: bench/startup.py) keeps concurrent runs on this machine out of each other's domains.
DOMAIN_IDS = range(1, 231)
DOMAIN_LOCKS = Path(tempfile.gettempdir()) / "hardpoint-it-domains"


def _lock_domains(n: int, first: int | None) -> tuple[list[int], list[IO[str]]]:
    """``n`` DDS domain ids that no other run holds (from ``first`` on when given), and their held locks."""
    DOMAIN_LOCKS.mkdir(exist_ok=True)
    if first is not None:
        start = first - DOMAIN_IDS.start
    else:
        start = (os.getpid() * 37 + time.monotonic_ns()) % len(DOMAIN_IDS)
    ids: list[int] = []
    locks: list[IO[str]] = []
    for i in range(len(DOMAIN_IDS)):
        domain_id = DOMAIN_IDS[(start + i) % len(DOMAIN_IDS)]
        lock = (DOMAIN_LOCKS / f"{domain_id}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        ids.append(domain_id)
        locks.append(lock)
        if len(ids) == n:
            return ids, locks
    for lock in locks:
        lock.close()
    raise RuntimeError(f"fewer than {n} DDS domain ids in {DOMAIN_LOCKS} are free")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("hardpoint", "cyclonedds", "protobuf", "eclipse-zenoh"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    from google.protobuf.internal import api_implementation

    out["protobuf_backend"] = api_implementation.Type()
    return out


def _machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
        "versions": _versions(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object (and nothing else) on stdout")
    p.add_argument("--quick", action="store_true", help="short run (~30 s): 0.5 s windows, one repetition")
    p.add_argument("--seconds", type=float, help="throughput window per run, s (default 2.0; quick 0.5)")
    p.add_argument("--warmup", type=float, help="warm-up before each window, s (default 0.5; quick 0.25)")
    p.add_argument("--reps", type=int, help="repetitions of everything (default 3; quick 1)")
    p.add_argument("--round-trips", type=int, help="round trips per latency run (default 2000; quick 300)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="message sizes, bytes (default 80,1024,65536)")
    p.add_argument("--stream-sizes", default=",".join(map(str, STREAM_SIZES)), help="sizes for stream and zenoh")
    p.add_argument(
        "--stream-history",
        type=int,
        help="frames an SDK stream subscription keeps (Bus.subscribe(history_depth=N)); default: the contract's",
    )
    p.add_argument("--no-latency", action="store_true", help="skip the round trips")
    p.add_argument("--no-throughput", action="store_true", help="skip the throughput runs")
    p.add_argument(
        "--kinds",
        help="only these contenders (comma separated: sdk_event, raw, raw_shim, sdk_state, sdk_stream, zenoh),\n"
        "for investigations; a ratio whose contenders were not run is null",
    )
    p.add_argument("--domain", type=int, help="first DDS domain id to try (default: a free one, locked for the run)")
    p.add_argument("-v", "--verbose", action="store_true", help="progress on stderr (default without --json)")
    args = p.parse_args(argv)
    quick = args.quick
    args.seconds = args.seconds if args.seconds is not None else (0.5 if quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.25 if quick else 0.5)
    args.reps = args.reps if args.reps is not None else (1 if quick else 3)
    args.round_trips = args.round_trips if args.round_trips is not None else (300 if quick else 2000)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.kinds = None if args.kinds is None else set(args.kinds.split(","))
    args.stream_sizes = [s for s in (int(x) for x in args.stream_sizes.split(",") if x) if s in args.sizes]
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if (args.verbose or not args.json) else (lambda *a: None)
    messages.check_sizes(args.sizes)
    (sdk_domain, raw_domain), domain_locks = _lock_domains(2, args.domain)
    cfg = {
        "sdk_domain": sdk_domain,
        "raw_domain": raw_domain,
        "zenoh_ports": {"rx": _free_port(), "tx": _free_port()},
        "stream_history": args.stream_history,
    }
    machine = _machine()

    def kinds_at(size: int) -> list[str]:
        kinds = ["sdk_event", BASELINE, SHIM_BASELINE, "sdk_state"]
        if size in args.stream_sizes:
            kinds += ["sdk_stream", "zenoh"]
        if args.no_throughput:
            return []
        return [k for k in kinds if args.kinds is None or k in args.kinds]

    lat_kinds = [k for k in ("sdk_event", BASELINE, SHIM_BASELINE, "zenoh") if args.kinds is None or k in args.kinds]
    all_kinds = sorted({k for s in args.sizes for k in kinds_at(s)} | set(lat_kinds))
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    rtts: dict[str, dict[str, list[int]]] = {}
    rtt_runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    w = Workers(cfg)
    try:
        w.call("rx", "warm", all_kinds, timeout=60)
        w.call("tx", "warm", all_kinds, timeout=60)
        for rep in range(args.reps):
            for size in args.sizes:
                for kind in kinds_at(size):
                    r = throughput(w, kind, size, args.warmup, args.seconds)
                    runs.setdefault(kind, {}).setdefault(str(size), []).append(r)
                    log(
                        f"rep {rep + 1} {kind:>10} {size:>6} B  {r['msgs_per_s']:>10.0f} msg/s  lost {r['lost']:<6}"
                        f" cpu/msg rx {r['rx_cpu_us_per_msg']:.2f} us ({r['rx_cpu_load']:.0%})"
                        f" tx {r['tx_cpu_us_per_msg']:.2f} us ({r['tx_cpu_load']:.0%})"
                        f" udp drops {r['udp_rcvbuf_errors']}"
                    )
            if args.no_latency:
                continue
            warm = max(10, args.round_trips // 10)
            for size in args.sizes:
                for kind in lat_kinds:
                    got = round_trips(w, kind, size, args.round_trips + warm)[warm:]
                    rtts.setdefault(kind, {}).setdefault(str(size), []).extend(got)
                    s = sorted(got)
                    one = {"p50_us": _percentile(s, 0.5) / 1e3, "p99_us": _percentile(s, 0.99) / 1e3}
                    rtt_runs.setdefault(kind, {}).setdefault(str(size), []).append(one)
                    log(
                        f"rep {rep + 1} {kind:>10} {size:>6} B  rtt p50 {one['p50_us']:.0f} us  p99 {one['p99_us']:.0f}"
                    )
    finally:
        w.close()
        for lock in domain_locks:
            lock.close()
    return summarize(
        args,
        cfg=cfg,
        machine=machine,
        runs=runs,
        rtts=rtts,
        rtt_runs=rtt_runs,
        duration=time.monotonic() - started,
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def sdk_event_ratios(
    tput: dict[str, dict[str, float]],
    latency: dict[str, dict[str, dict[str, float]]],
    sizes: list[int],
    baseline: str,
    suffix: str,
) -> dict[str, Any]:
    """SDK event / ``baseline``: throughput per size, and round trip p50 / p99 (headline: worst size).

    Every key ends in ``suffix`` (``""`` for the issue's baseline, ``"_vs_shim"`` for the shim).
    """
    out: dict[str, Any] = {}
    for size in SIZES:
        sdk, raw = tput.get("sdk_event", {}).get(str(size)), tput.get(baseline, {}).get(str(size))
        out[f"throughput_ratio_{_label(size)}{suffix}"] = _ratio(sdk, raw)
    by_size: dict[str, dict[str, float | None]] = {}
    for size in sizes:
        sdk_rtt, raw_rtt = latency.get("sdk_event", {}).get(str(size)), latency.get(baseline, {}).get(str(size))
        if sdk_rtt and raw_rtt:
            by_size[_label(size)] = {
                "p50": _ratio(sdk_rtt["p50_us"], raw_rtt["p50_us"]),
                "p99": _ratio(sdk_rtt["p99_us"], raw_rtt["p99_us"]),
            }
    for q in ("p50", "p99"):
        values = [r[q] for r in by_size.values() if r[q] is not None]
        out[f"latency_{q}_ratio{suffix}"] = max(values) if values else None
    out[f"latency_ratio_by_size{suffix}"] = by_size
    return out


def summarize(
    args: argparse.Namespace,
    *,
    cfg: dict[str, Any],
    machine: dict[str, Any],
    runs: dict[str, dict[str, list[dict[str, Any]]]],
    rtts: dict[str, dict[str, list[int]]],
    rtt_runs: dict[str, dict[str, list[dict[str, float]]]],
    duration: float,
) -> dict[str, Any]:
    tput = {k: {s: statistics.median(r["msgs_per_s"] for r in rs) for s, rs in by.items()} for k, by in runs.items()}
    lost = {k: {s: sum(r["lost"] for r in rs) for s, rs in by.items()} for k, by in runs.items()}
    latency: dict[str, dict[str, dict[str, float]]] = {}
    for k, by in rtts.items():
        for s, values in by.items():
            v = sorted(values)
            latency.setdefault(k, {})[s] = {
                "p50_us": _percentile(v, 0.5) / 1e3,
                "p99_us": _percentile(v, 0.99) / 1e3,
                "mean_us": statistics.fmean(v) / 1e3,
                "n": len(v),
            }

    def at(table: dict[str, dict[str, Any]], kind: str, size: int) -> Any:
        return table.get(kind, {}).get(str(size))

    out: dict[str, Any] = {}
    for baseline, suffix in ((BASELINE, ""), (SHIM_BASELINE, "_vs_shim")):
        out.update(sdk_event_ratios(tput, latency, args.sizes, baseline, suffix))
    for size in STREAM_SIZES:
        out[f"stream_vs_zenoh_{_label(size)}"] = _ratio(at(tput, "sdk_stream", size), at(tput, "zenoh", size))
    reliable_runs = [r for k in RELIABLE for rs in runs.get(k, {}).values() for r in rs]
    out["lost_reliable"] = sum(max(0, r["lost"]) for r in reliable_runs)
    out["extra_reliable"] = sum(max(0, -r["lost"]) for r in reliable_runs)
    sdk_counters = [r["sdk"] for k in ("sdk_event",) for rs in runs.get(k, {}).values() for r in rs]
    out["sdk_event_counters"] = {
        name: sum(c.get(name, 0) for c in sdk_counters)
        for name in ("lost", "duplicates", "undecodable", "wrong_interface", "schema_mismatch", "callback_errors")
    }
    targets = {}
    for name, (op, limit) in TARGETS.items():
        value = out.get(name)
        met = None
        if value is not None:
            met = {">=": value >= limit, "<=": value <= limit, "==": value == limit}[op]
        targets[name] = {"value": value, "target": f"{op} {limit}", "met": met}
    out["targets"] = targets
    out["all_targets_met"] = all(t["met"] for t in targets.values())
    out["throughput_msgs_per_s"] = tput
    out["latency_us"] = latency
    out["lost"] = lost
    out["state_superseded"] = {s: sum(r["lost"] for r in rs) for s, rs in runs.get("sdk_state", {}).items()}
    out["stream_dropped"] = {
        k: {s: sum(r["lost"] for r in rs) for s, rs in runs.get(k, {}).items()} for k in ("sdk_stream", "zenoh")
    }
    out["runs"] = {
        "throughput": {
            k: {s: [{x: r[x] for x in _RUN_FIELDS} for r in rs] for s, rs in by.items()} for k, by in runs.items()
        },
        "latency": rtt_runs,
    }
    out["config"] = {
        "quick": args.quick,
        "window_s": args.seconds,
        "warmup_s": args.warmup,
        "reps": args.reps,
        "round_trips": args.round_trips,
        "sizes": args.sizes,
        "stream_sizes": args.stream_sizes,
        "stream_history": args.stream_history,
        "sdk_domain": cfg["sdk_domain"],
        "raw_domain": cfg["raw_domain"],
        "raw": "plain cyclonedds-python (the issue's baseline of the ratios): public DataWriter.write / "
        "DataReader.take(256) on a WaitSet, the library's serializer, IdlStruct envelope with the SDK's members, "
        "payload sequence[uint8] read/written as bytes by the library's BytesMachine; one sample per message, "
        "reliable keep-all (1024 samples), hardpoint's loopback.xml (read as data); no hardpoint code",
        "raw_shim": "the same envelope and QoS written/taken/decoded with hardpoint._dds._bytes (the SDK's private "
        "bytes shim: struct-built XCDR1, dds_write through ctypes, ddspy_take), no hardpoint Bus; ratios *_vs_shim",
        "messages": {
            "event": "hardpoint.alert.v1.Alert (pong: AlertAck)",
            "state": f"hardpoint.core.v1.ModuleHealth, {messages.STATE_KEYS} keys",
            "stream": "hardpoint.track.v1.SensorTrack (zenoh carries the same bytes)",
        },
    }
    machine["loadavg_end"] = list(os.getloadavg())
    out["machine"] = machine
    out["duration_s"] = round(duration, 1)
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["throughput, messages/s (median of runs)"]
    tput = result["throughput_msgs_per_s"]
    sizes = sorted({int(s) for by in tput.values() for s in by})
    lines.append(f"{'contender':<12}" + "".join(f"{s:>12}" for s in sizes))
    for k, by in tput.items():
        lines.append(f"{k:<12}" + "".join(f"{by.get(str(s), float('nan')):>12.0f}" for s in sizes))
    if result["latency_us"]:
        lines.append("\nround trip, us (p50 / p99)")
        for k, by in result["latency_us"].items():
            cells = "".join(
                f"{by[str(s)]['p50_us']:>8.0f} /{by[str(s)]['p99_us']:>6.0f}" for s in sizes if str(s) in by
            )
            lines.append(f"{k:<12}{cells}")
    lines.append("\ntargets")
    for name, t in result["targets"].items():
        v = t["value"]
        shown = "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(
            f"  {name:<22} {shown:>8}  ({t['target']})  {'met' if t['met'] else 'MISSED' if t['met'] is False else ''}"
        )
    lines.append(f"\nthe same ratios against {SHIM_BASELINE} (not judged)")
    for name, v in result.items():
        if name.endswith("_vs_shim") and not isinstance(v, dict):
            lines.append(f"  {name:<30} {'n/a' if v is None else f'{v:.3f}':>8}")
    lines.append(f"\nduration {result['duration_s']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
