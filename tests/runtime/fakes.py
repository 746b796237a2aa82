"""A fake :class:`~hardpoint_runtime._control.PlatformControl` for management API and CLI tests.

It holds a small platform in memory, follows the managed-node transition table
for ``change_state`` (refusing the others with ``ValueError``, as the daemon
does) and keeps an event log that tests can append to while a follower waits.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from hardpoint_runtime._control import (
    EventRecord,
    ModuleStatus,
    PlatformControl,
    PlatformHealth,
    TopicInfo,
    UnmetRequirement,
    UpdateOffer,
    UpdateProgress,
    UpdateRecord,
)

if TYPE_CHECKING:
    from hardpoint_runtime._management import ManagementServer

__all__ = [
    "FakeControl",
    "FakeUpdateControl",
    "TlsSet",
    "make_tls",
    "management_server",
    "sample_modules",
    "wait_until",
]

_TRANSITIONS = {
    ("unconfigured", "configure"): "inactive",
    ("inactive", "activate"): "active",
    ("active", "deactivate"): "inactive",
    ("inactive", "cleanup"): "unconfigured",
    ("unconfigured", "shutdown"): "finalized",
    ("inactive", "shutdown"): "finalized",
    ("active", "shutdown"): "finalized",
}


def sample_modules() -> list[ModuleStatus]:
    """Three modules: an active provider, an active consumer with counters, one blocked by resolution."""
    return [
        ModuleStatus(
            name="nav-gnss",
            version="1.2.0",
            supplier="acme",
            node="node-a",
            state="active",
            target_state="active",
            health="ok",
            reason="",
            pid=4242,
            restarts=1,
            provides=("hardpoint.nav.v1.NavState",),
            requires=(),
            counters={"tx_samples": 1200},
            heartbeat_age_s=0.4,
        ),
        ModuleStatus(
            name="tracker",
            version="0.9.1",
            supplier="globex",
            node="node-a",
            state="active",
            target_state="active",
            health="degraded",
            reason="radar input stale",
            pid=4243,
            restarts=0,
            provides=("hardpoint.track.v1.Track",),
            requires=("hardpoint.nav.v1.NavState",),
            counters={"rx_samples": 1190, "rx_sequence_gaps": 2},
            heartbeat_age_s=0.2,
        ),
        ModuleStatus(
            name="alerter",
            version="2.0.0",
            supplier="initech",
            node="node-b",
            state="not_started",
            target_state="active",
            health="unknown",
            reason="unmet requirement",
            pid=0,
            restarts=0,
            provides=("hardpoint.alert.v1.Alert",),
            requires=("hardpoint.tasking.v1.Task",),
            unmet=(
                UnmetRequirement(
                    interface="hardpoint.tasking.v1.Task", major=1, reason="no module on the platform provides it"
                ),
            ),
            local=False,
        ),
    ]


def wait_until(predicate: Callable[[], bool], what: str, limit_s: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``limit_s`` (a hang guard, not a timing check)."""
    import pytest

    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


class FakeControl(PlatformControl):
    """In-memory platform. Thread-safe: the gRPC server calls it from several threads."""

    def __init__(self, modules: list[ModuleStatus] | None = None) -> None:
        self._lock = threading.Condition()
        self.modules: dict[str, ModuleStatus] = {m.name: m for m in (modules or sample_modules())}
        self._events: list[EventRecord] = []
        self.topics_list: list[TopicInfo] = [
            TopicInfo(
                topic="hp/nav/v1/state",
                interface="hardpoint.nav.v1.NavState",
                qos="state",
                publishers=("nav-gnss",),
                rate_hz=9.8,
                nominal_rate_hz=10.0,
            ),
            TopicInfo(
                topic="hp/track/v1/track",
                interface="hardpoint.track.v1.Track",
                qos="event",
                publishers=("tracker",),
                rate_hz=0.0,
                nominal_rate_hz=0.0,
            ),
        ]
        #: What the next reload returns; an Exception instance is raised instead.
        self.reload_result: list[str] | Exception = ["started alerter"]
        #: Follow iterators currently open (to check that cancelled streams let go of the control).
        self.open_followers = 0
        self.append_event("module_started", module="nav-gnss", detail={"pid": "4242"})
        self.append_event("module_restarted", severity="warning", module="nav-gnss", detail={"cause": "SIGKILL"})

    # -- test helpers ---------------------------------------------------------------------------

    def append_event(
        self, kind: str, *, severity: str = "info", module: str = "", detail: dict[str, str] | None = None
    ) -> EventRecord:
        """Log an event and wake the followers."""
        with self._lock:
            record = EventRecord(
                id=len(self._events) + 1,
                time_ns=time.time_ns(),
                kind=kind,
                severity=severity,
                module=module,
                detail=dict(detail or {}),
            )
            self._events.append(record)
            self._lock.notify_all()
            return record

    # -- PlatformControl ------------------------------------------------------------------------

    def list_modules(self) -> list[ModuleStatus]:
        with self._lock:
            return list(self.modules.values())

    def get_module(self, name: str) -> ModuleStatus:
        with self._lock:
            return self.modules[name]

    def change_state(self, name: str, transition: str) -> ModuleStatus:
        with self._lock:
            module = self.modules[name]
            if transition == "restart":
                new = replace(module, restarts=module.restarts + 1, pid=module.pid + 100)
            else:
                target = _TRANSITIONS.get((module.state, transition))
                if target is None:
                    raise ValueError(f"module {name!r} cannot {transition} from state {module.state}")
                new = replace(module, state=target, target_state=target)
            self.modules[name] = new
        self.append_event("state_changed", module=name, detail={"from": module.state, "to": new.state})
        return new

    def health(self) -> PlatformHealth:
        with self._lock:
            modules = list(self.modules.values())
        active = sum(m.state == "active" for m in modules)
        reasons = tuple(f"{m.name}: {m.state}" for m in modules if m.state != m.target_state)
        return PlatformHealth(
            status="degraded" if reasons else "ok",
            reasons=reasons,
            platform="demo-platform",
            node="node-a",
            modules_total=len(modules),
            modules_active=active,
        )

    def events(
        self, since_id: int = 0, *, follow: bool = False, timeout_s: float | None = None
    ) -> Iterator[EventRecord]:
        if not follow:
            with self._lock:
                pending = [e for e in self._events if e.id > since_id]
            yield from pending
            return
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            self.open_followers += 1
        try:
            last = since_id
            while True:
                with self._lock:
                    pending = [e for e in self._events if e.id > last]
                    if not pending:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            return
                        self._lock.wait(remaining)
                        continue
                for record in pending:
                    last = record.id
                    yield record
        finally:
            with self._lock:
                self.open_followers -= 1

    def topics(self) -> list[TopicInfo]:
        with self._lock:
            return list(self.topics_list)

    def reload(self) -> list[str]:
        if isinstance(self.reload_result, Exception):
            raise self.reload_result
        return list(self.reload_result)


class FakeUpdateControl(FakeControl):
    """:class:`FakeControl` plus a scripted update side, for the update RPCs and ``hardpoint update``.

    What each ``update_*`` call returns is an attribute the test sets; an ``Exception`` instance
    there is raised instead. Calls for a module the platform does not have raise ``KeyError``.
    """

    def __init__(
        self,
        modules: list[ModuleStatus] | None = None,
        *,
        offers: list[UpdateOffer],
        script: list[UpdateProgress],
        apply_result: UpdateRecord,
        history: list[UpdateRecord],
        status: list[UpdateRecord],
        rollback_result: UpdateRecord,
    ) -> None:
        super().__init__(modules)
        self.offers: list[UpdateOffer] | Exception = offers
        #: Progress reports update_apply sends, in order; then it returns ``apply_result`` (or raises it).
        self.script = script
        self.apply_result: UpdateRecord | Exception = apply_result
        #: When set, update_apply waits for it after the first report (to test a client leaving mid-update).
        self.hold: threading.Event | None = None
        #: ``(module, version)`` of every update_apply call, in order.
        self.applied: list[tuple[str, str | None]] = []
        #: Set when an update_apply call ends (returned or raised).
        self.finished = threading.Event()
        self.history = history
        #: ``(module, limit)`` of every update_history call.
        self.history_calls: list[tuple[str | None, int]] = []
        self.status = status
        self.rollback_result: UpdateRecord | Exception = rollback_result

    def _known(self, module: str) -> None:
        with self._lock:
            if module not in self.modules:
                raise KeyError(module)

    def update_check(self) -> list[UpdateOffer]:
        if isinstance(self.offers, Exception):
            raise self.offers
        return list(self.offers)

    def update_apply(
        self, module: str, version: str | None = None, *, progress: Callable[[UpdateProgress], None] | None = None
    ) -> UpdateRecord:
        with self._lock:
            self.applied.append((module, version))
        try:
            self._known(module)
            for i, report in enumerate(self.script):
                if progress is not None:
                    progress(report)
                if i == 0 and self.hold is not None:
                    assert self.hold.wait(60), "the test never released the update"
            if isinstance(self.apply_result, Exception):
                raise self.apply_result
            return self.apply_result
        finally:
            self.finished.set()

    def update_status(self) -> list[UpdateRecord]:
        return list(self.status)

    def update_history(self, module: str | None = None, limit: int = 100) -> list[UpdateRecord]:
        with self._lock:
            self.history_calls.append((module, limit))
        return [r for r in self.history if module is None or r.module == module][:limit]

    def update_rollback(self, module: str) -> UpdateRecord:
        self._known(module)
        if isinstance(self.rollback_result, Exception):
            raise self.rollback_result
        return self.rollback_result


@contextlib.contextmanager
def management_server(control: PlatformControl, directory: Path) -> Iterator[ManagementServer]:
    """The real management gRPC server over ``control`` on a Unix socket in ``directory``, stopped on exit."""
    from hardpoint_runtime._management import serve

    server = serve(control, socket_path=directory / "hardpointd.sock")
    try:
        yield server
    finally:
        server.stop(1.0).wait()


# --------------------------------------------------------------------------- throwaway TLS material


@dataclass(frozen=True)
class TlsSet:
    """PEM files of a throwaway PKI: a CA, a server certificate for 127.0.0.1/localhost, a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: A client certificate signed by a different CA (must be refused).
    rogue_cert: Path
    rogue_key: Path


def make_tls(directory: Path) -> TlsSet:
    """Generate the PKI of :class:`TlsSet` into ``directory`` (EC P-256 keys, valid for one day)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def builder(subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        cert = (
            builder(cn, name(cn), k.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(k, hashes.SHA256())
        )
        return k, cert

    def leaf(
        cn: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], *, server: bool
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        b = builder(cn, issuer[1].subject, k.public_key()).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return k, b.sign(issuer[0], hashes.SHA256())

    def write(stem: str, pair: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> tuple[Path, Path]:
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(pair[1].public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            pair[0].private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        return cert_path, key_path

    directory.mkdir(parents=True, exist_ok=True)
    authority = ca("hardpoint test CA")
    rogue_authority = ca("rogue CA")
    ca_path, _ = write("ca", authority)
    server_cert, server_key = write("server", leaf("hardpointd", authority, server=True))
    client_cert, client_key = write("client", leaf("operator", authority, server=False))
    rogue_cert, rogue_key = write("rogue", leaf("operator", rogue_authority, server=False))
    return TlsSet(
        ca=ca_path,
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        rogue_cert=rogue_cert,
        rogue_key=rogue_key,
    )
