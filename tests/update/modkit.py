"""Real module wheels for the update tests: a tiny module ``beacon`` whose behaviour is chosen at build time.

``build_module_wheel(tmp_dir, name="beacon", version="1.0", behaviour="ok")`` builds a real pure-Python
wheel with ``python -m build --wheel --no-isolation``. The module publishes
``hardpoint.nav.v1.NavState`` (keyed by its own name) at the contract rate, 10 Hz, and reports
its health in the SDK heartbeat. The manifest travels in the wheel as
``<package>/hardpoint-manifest.json`` (the rule of ``hardpoint_runtime.update._wheel``) and the module
object builds its :class:`hardpoint.Manifest` from that same file.

Behaviours (what a bad release does, for the rollback tests):

- ``ok``: healthy and publishing from activation on;
- ``crash_at_start``: the worker process dies (``os._exit``) when activated;
- ``never_healthy``: publishes, but its health stays ``degraded``;
- ``stop_publishing_after_s:<n>``: healthy, but stops publishing NavState ``n`` seconds after activation
  (the heartbeat keeps going, so only the interface falls silent);
- ``crash_after_s:<n>``: healthy and publishing, then the process dies ``n`` seconds after activation;
- ``gnss``: a real navigation module: it asks for the ``gnss`` adapter (its manifest's ``adapters``) and
  publishes the receiver's solution for the platform ``own``, like the reference ``nav``; so it
  interoperates with the reference sensors and passes the conformance suite in certified mode (the
  evidence-gate tests certify it). A platform that runs it binds ``gnss`` (the other behaviours publish
  a fixed position under their own name, which no sensor can use).

``extra_provides`` adds interfaces the version also provides (a "new capability");
supported: ``hardpoint.track.v1.FusedTrack`` and ``hardpoint.track.v1.SensorTrack``, published at their
nominal rates.

Builds are slow (~1-2 s each), so results are cached per (name, version, behaviour, extras, supplier,
requires) for the whole test session, in memory and on disk under ``tmp_dir``.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

__all__ = [
    "BEHAVIOURS",
    "EXTRA_INTERFACES",
    "MODULE",
    "PRIMARY_INTERFACE",
    "SUPPLIER",
    "Domain",
    "allocate_domain",
    "build_module_wheel",
    "NavWatcher",
    "module_manifest",
    "preinstall",
    "publish_repo",
    "wait_for",
    "worker_pids",
    "write_platform",
]

MODULE: Final = "beacon"
SUPPLIER: Final = "acme"
PRIMARY_INTERFACE: Final = "hardpoint.nav.v1.NavState"
EXTRA_INTERFACES: Final = ("hardpoint.track.v1.FusedTrack", "hardpoint.track.v1.SensorTrack")
BEHAVIOURS: Final = (
    "ok",
    "crash_at_start",
    "never_healthy",
    "stop_publishing_after_s:<n>",
    "crash_after_s:<n>",
    "gnss",
)
#: The behaviour whose module reads the ``gnss`` adapter.
GNSS: Final = "gnss"

_STOP_RE: Final = re.compile(r"^stop_publishing_after_s:(\d+(?:\.\d+)?)$")
_CRASH_RE: Final = re.compile(r"^crash_after_s:(\d+(?:\.\d+)?)$")
_cache: dict[tuple[Any, ...], Path] = {}
_lock = threading.Lock()


def _check_behaviour(behaviour: str) -> None:
    if (
        behaviour in ("ok", "crash_at_start", "never_healthy", GNSS)
        or _STOP_RE.match(behaviour)
        or _CRASH_RE.match(behaviour)
    ):
        return
    raise ValueError(f"unknown module behaviour {behaviour!r}; expected one of {BEHAVIOURS}")


def module_manifest(
    version: str,
    *,
    name: str = MODULE,
    supplier: str = SUPPLIER,
    extra_provides: Sequence[str] = (),
    requires: Sequence[str] = (),
    primary: bool = True,
    adapters: Sequence[str] = (),
) -> dict[str, Any]:
    """The manifest the built wheel embeds (and the module loads); ``primary=False`` drops NavState."""
    unknown = [i for i in extra_provides if i not in EXTRA_INTERFACES]
    if unknown:
        raise ValueError(f"extra_provides {unknown} not supported; choose from {EXTRA_INTERFACES}")
    manifest = {
        "name": name,
        "version": version,
        "supplier": supplier,
        "provides": [PRIMARY_INTERFACE, *extra_provides] if primary else list(extra_provides),
        "requires": list(requires),
        "description": "update test module: NavState beacon",
    }
    if adapters:
        manifest["adapters"] = list(adapters)
    return manifest


_TEMPLATE: Final = '''\
"""Update test module {name} {version} (behaviour {behaviour!r})."""

import json
import math
import os
import time
from importlib.resources import files

from hardpoint import Manifest, hookimpl
from hardpoint.core.v1 import geo_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.track.v1 import track_pb2

_DATA = json.loads(files(__package__).joinpath("hardpoint-manifest.json").read_text())
BEHAVIOUR = {behaviour!r}
STOP_AFTER_S = {stop_after!r}
CRASH_AFTER_S = {crash_after!r}


def _wrap(angle):
    return math.atan2(math.sin(angle), math.cos(angle))


class Beacon:
    manifest = Manifest.load(_DATA, origin=__package__)

    def __init__(self):
        self._timers = []
        self._started = 0.0
        self._seq = 0

    @hookimpl
    def on_configure(self, ctx):
        self.ctx = ctx
        provides = set(self.manifest.provides)
        self.nav = ctx.bus.publisher(nav_pb2.NavState) if "hardpoint.nav.v1.NavState" in provides else None
        self.fused = ctx.bus.publisher(track_pb2.FusedTrack) if "hardpoint.track.v1.FusedTrack" in provides else None
        self.sensor = ctx.bus.publisher(track_pb2.SensorTrack) if "hardpoint.track.v1.SensorTrack" in provides else None
        self.gnss = ctx.adapters["gnss"] if BEHAVIOUR == "gnss" else None

    @hookimpl
    def on_activate(self, ctx):
        if BEHAVIOUR == "crash_at_start":
            os._exit(70)  # a real crash: the worker process is gone
        self._started = time.monotonic()
        self._timers.append(ctx.every(0.1, self.tick_nav))  # also reports health
        if self.fused is not None:
            self._timers.append(ctx.every(0.5, self.tick_fused))
        if self.sensor is not None:
            self._timers.append(ctx.every(0.1, self.tick_sensor))
        self._health()

    @hookimpl
    def on_deactivate(self, ctx):
        for timer in self._timers:
            timer.cancel()
        self._timers = []

    def _health(self):
        if BEHAVIOUR == "never_healthy":
            self.ctx.set_health("degraded", "{name} {version} never becomes healthy (test behaviour)")
        else:
            self.ctx.set_health("ok")

    def tick_nav(self):
        if CRASH_AFTER_S is not None and time.monotonic() - self._started > CRASH_AFTER_S:
            os._exit(71)  # a real crash, some time after a good start
        self._health()
        if self.nav is None or (STOP_AFTER_S is not None and time.monotonic() - self._started > STOP_AFTER_S):
            return
        self._seq += 1
        if self.gnss is not None:
            self._publish_fix()
            return
        msg = nav_pb2.NavState(
            platform_id=self.ctx.name,
            position=geo_pb2.GeoPosition(latitude_deg=52.0, longitude_deg=4.0, height_hae_m=float(self._seq)),
            fix_quality=nav_pb2.FIX_QUALITY_3D,
            satellites_used=9,
        )
        self.nav.publish(msg)

    def _publish_fix(self):
        """The receiver's solution, as the reference nav publishes it (behaviour gnss), for the platform "own"
        (the reference modules' default platform_id: a sensor geo-references with its own platform's state)."""
        fix = self.gnss.read()
        if fix is None:
            msg = nav_pb2.NavState(
                platform_id="own",
                position=geo_pb2.GeoPosition(latitude_deg=0.0, longitude_deg=0.0),
                fix_quality=nav_pb2.FIX_QUALITY_NONE,
            )
            self.nav.publish(msg)
            return
        msg = nav_pb2.NavState(
            platform_id="own",
            position=geo_pb2.GeoPosition(
                latitude_deg=fix.latitude_deg, longitude_deg=fix.longitude_deg, height_hae_m=fix.height_m
            ),
            velocity=geo_pb2.VelocityNed(north_mps=fix.north_mps, east_mps=fix.east_mps, down_mps=fix.down_mps),
            attitude=geo_pb2.Attitude(
                roll_rad=_wrap(fix.roll_rad),
                pitch_rad=max(-math.pi / 2, min(math.pi / 2, fix.pitch_rad)),
                yaw_rad=_wrap(fix.yaw_rad),
            ),
            fix_quality=nav_pb2.FIX_QUALITY_3D,
            satellites_used=max(0, min(255, fix.satellites)),
        )
        self.nav.publish(msg, time_of_validity_ns=fix.time_ns)

    def tick_fused(self):
        now = self.ctx.now_ns()
        msg = track_pb2.FusedTrack(
            track_id=self.ctx.name + "-1",
            lifecycle=track_pb2.TRACK_LIFECYCLE_UPDATED,
            position=geo_pb2.GeoPosition(latitude_deg=52.0, longitude_deg=4.0),
            last_update_time_ns=now,
        )
        self.fused.publish(msg)

    def tick_sensor(self):
        now = self.ctx.now_ns()
        msg = track_pb2.SensorTrack(
            sensor_id=self.ctx.name,
            track_id="1",
            measurement_time_ns=now,
            lifecycle=track_pb2.TRACK_LIFECYCLE_UPDATED,
        )
        self.sensor.publish(msg)
'''


def _cache_key(
    name: str,
    version: str,
    behaviour: str,
    *,
    extras: tuple[str, ...],
    supplier: str,
    requires: tuple[str, ...],
    primary: bool = True,
) -> str:
    flag = "" if primary else "-noprimary"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{name}-{version}-{behaviour}-{'+'.join(extras)}-{supplier}{flag}")
    return safe + ("-req-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", "+".join(requires)) if requires else "")


def build_module_wheel(
    tmp_dir: Path,
    *,
    name: str = MODULE,
    version: str = "1.0",
    behaviour: str = "ok",
    extra_provides: Sequence[str] = (),
    supplier: str = SUPPLIER,
    requires: Sequence[str] = (),
    primary: bool = True,
) -> Path:
    """Build (or reuse) the wheel of module ``name`` at ``version`` that behaves as ``behaviour``.

    ``primary=False`` builds a version that does not provide NavState (only ``extra_provides``).

    Pass a session-scoped directory as ``tmp_dir`` so the cache lasts the whole session.
    """
    _check_behaviour(behaviour)
    extras, reqs = tuple(extra_provides), tuple(requires)
    key = (str(tmp_dir), name, version, behaviour, extras, supplier, reqs, primary)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.exists():
            return cached
        wheel = _build(
            tmp_dir, name, version, behaviour, extras=extras, supplier=supplier, requires=reqs, primary=primary
        )
        _cache[key] = wheel
        return wheel


def _build(
    tmp_dir: Path,
    name: str,
    version: str,
    behaviour: str,
    *,
    extras: tuple[str, ...],
    supplier: str,
    requires: tuple[str, ...],
    primary: bool = True,
) -> Path:
    work = tmp_dir / _cache_key(
        name, version, behaviour, extras=extras, supplier=supplier, requires=requires, primary=primary
    )
    out = work / "dist"
    package = "hp_mk_" + name.replace("-", "_")
    dist = package.replace("_", "-")
    existing = sorted(out.glob(f"{package}-{version}-*.whl")) if out.exists() else []
    if existing:
        return existing[0]
    project = work / "src"
    (project / package).mkdir(parents=True, exist_ok=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "{version}"
            dependencies = ["hardpoint"]

            [project.entry-points."hardpoint.modules"]
            {name} = "{package}:Beacon"

            [tool.setuptools]
            packages = ["{package}"]

            [tool.setuptools.package-data]
            {package} = ["hardpoint-manifest.json"]
            """
        )
    )
    stop, crash = _STOP_RE.match(behaviour), _CRASH_RE.match(behaviour)
    source = _TEMPLATE.format(
        name=name,
        version=version,
        behaviour=behaviour,
        stop_after=float(stop.group(1)) if stop else None,
        crash_after=float(crash.group(1)) if crash else None,
    )
    (project / package / "__init__.py").write_text(source)
    manifest = module_manifest(
        version,
        name=name,
        supplier=supplier,
        extra_provides=extras,
        requires=requires,
        primary=primary,
        adapters=("gnss",) if behaviour == GNSS else (),
    )
    (project / package / "hardpoint-manifest.json").write_text(json.dumps(manifest, indent=2))
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(project)],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building {name} {version} ({behaviour}) failed:\n{done.stdout}\n{done.stderr}")
    (wheel,) = out.glob(f"{package}-{version}-*.whl")
    return wheel


# ----- platform helpers for the update tests (DDS domains shared with the integration suites' lock folder)


class Domain:
    """A DDS domain id held (by a lock file) until :meth:`release`."""

    def __init__(self, domain_id: int, lock: Any) -> None:
        self.id = domain_id
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


_domain_counter = itertools.count()


def allocate_domain() -> Domain:
    """A DDS domain id (1..230) no other test holds now: the lock folder of ``tests/runtime_integration``."""
    lock_dir = Path(tempfile.gettempdir()) / "hardpoint-it-domains"
    lock_dir.mkdir(exist_ok=True)
    start = os.getpid() * 41 + next(_domain_counter) * 11 + 5
    for i in range(230):
        domain_id = 1 + (start + i) % 230
        lock = open(lock_dir / f"{domain_id}.lock", "w")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return Domain(domain_id, lock)
    raise RuntimeError("every DDS domain id of the integration tests is in use on this machine")


def worker_pids(domain_id: int, module: str | None = None) -> list[int]:
    """Live module worker processes of ``domain_id`` (by the JSON spec in their command line)."""
    marker = f'"domain_id": {domain_id},'
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "stat").read_text()
        except OSError:
            continue
        if ") Z " in status or "hardpoint_runtime._worker" not in line or marker not in line:
            continue
        if module is not None and f'"module": "{module}"' not in line:
            continue
        found.append(int(entry.name))
    return sorted(found)


# ----- a platform with the daemon in this process, taking updates from a directory repository


def publish_repo(work: Path, wheels: Sequence[Path], *, supplier: str = SUPPLIER) -> Path:
    """A TUF repository (one supplier) with ``wheels`` published; returns its directory (root: ``root.json`` beside)."""
    from hardpoint_runtime.update import UpdateRepository

    repo = UpdateRepository.create(work / "repo", keys_dir=work / "keys", root_keys_dir=work / "root-keys")
    repo.add_supplier(supplier, keys_dir=work / f"{supplier}-keys", threshold=1, key_count=1)
    for wheel in wheels:
        repo.publish(supplier, wheel)
    (work / "root.json").write_bytes(repo.root_bytes())
    return work / "repo"


def write_platform(
    root: Path,
    domain_id: int,
    repo: Path,
    *,
    module: str = MODULE,
    gate_timeout_s: float = 10.0,
    probation_s: float = 3.0,
    extra: str = "",
) -> Path:
    """``root/platform.toml``: one module, updates from the directory ``repo`` (trusted root beside it)."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "platform.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [platform]
            name = "upd"
            domain_id = {domain_id}
            state_dir = "state"

            [supervision]
            heartbeat_deadline_s = 6.0

            [update]
            directory = "{repo}"
            trusted_root = "{repo.parent / "root.json"}"
            gate_timeout_s = {gate_timeout_s}
            probation_s = {probation_s}

            [[modules]]
            name = "{module}"
            """
        )
        + extra
    )
    return config


def preinstall(root: Path, wheel: Path, version: str, *, module: str = MODULE) -> Path:
    """Install ``wheel`` into the platform's module store the way the daemon does."""
    from hardpoint_runtime.update._install import install_wheel

    return install_wheel(wheel, root / "state" / "modules", module, version)


def wait_for(probe: Any, *, timeout: float, what: str, period: float = 0.05) -> Any:
    """Poll ``probe()`` until it returns something true; raise AssertionError naming ``what`` at the timeout."""
    import time

    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = probe()
        if last:
            return last
        time.sleep(period)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


class NavWatcher:
    """A subscriber (its own DDS participant) counting ``NavState`` samples of one module, with arrival times."""

    def __init__(self, domain_id: int, module: str = MODULE) -> None:
        import time

        import hardpoint
        from hardpoint.nav.v1 import nav_pb2

        self.module = module
        self.times: list[float] = []
        self._lock = threading.Lock()
        self.transport = hardpoint.CycloneTransport(domain_id=domain_id)
        self.bus = hardpoint.Bus(self.transport, module="update-test-watcher")

        def on_sample(msg: Any) -> None:
            if msg.platform_id == module:
                with self._lock:
                    self.times.append(time.monotonic())

        self.bus.subscribe(nav_pb2.NavState, on_sample)

    def count_since(self, t: float) -> int:
        with self._lock:
            return sum(1 for x in self.times if x >= t)

    def close(self) -> None:
        self.transport.close()
