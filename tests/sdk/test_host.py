"""ModuleHost: hooks through pluggy, lifecycle gating of publishing and timers, error processing."""

from __future__ import annotations

from typing import Any

import pytest

from hardpoint import LifecycleError, Manifest, ManifestError, ModuleContext, ModuleError, ModuleHost, State, hookimpl
from hardpoint.alert.v1 import alert_pb2
from hardpoint.testing import InMemoryTransport

ALERT = "hardpoint.alert.v1.Alert"


class Ticker:
    """Publishes an alert every 0.1 s while active; records hook calls."""

    manifest = Manifest(name="ticker", version="1.0", supplier="tests", provides=(ALERT,))

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.refuse: set[str] = set()
        self.raise_in: set[str] = set()
        self.recover = True
        self.n = 0

    def _hook(self, name: str) -> bool | None:
        self.calls.append(name)
        if name in self.raise_in:
            raise RuntimeError(f"{name} failed")
        return False if name in self.refuse else None

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> bool | None:
        self.pub = ctx.bus.publisher(alert_pb2.Alert, batch=None)
        ctx.every(0.1, self.tick)
        return self._hook("configure")

    @hookimpl
    def on_activate(self, ctx: ModuleContext) -> bool | None:
        return self._hook("activate")

    @hookimpl
    def on_deactivate(self, ctx: ModuleContext) -> bool | None:
        return self._hook("deactivate")

    @hookimpl
    def on_cleanup(self, ctx: ModuleContext) -> bool | None:
        return self._hook("cleanup")

    @hookimpl
    def on_shutdown(self, ctx: ModuleContext) -> bool | None:
        return self._hook("shutdown")

    @hookimpl
    def on_error(self, ctx: ModuleContext, error: BaseException) -> bool | None:
        self.calls.append(f"error:{error}")
        return self.recover

    def tick(self) -> None:
        self.n += 1
        self.pub.publish(alert_pb2.Alert(alert_id=str(self.n)))


@pytest.fixture
def t() -> InMemoryTransport:
    return InMemoryTransport()


def listener(t: InMemoryTransport) -> Any:
    from hardpoint import Bus

    return Bus(t, module="listener").subscribe(alert_pb2.Alert)


def test_full_lifecycle_and_timer_gating(t: InMemoryTransport) -> None:
    m = Ticker()
    sub = listener(t)
    host = ModuleHost(m, t)
    assert host.configure() is State.INACTIVE
    t.advance(1.0)
    assert m.n == 0  # timers do not fire while inactive
    assert host.activate() is State.ACTIVE
    t.advance(1.0)
    assert m.n == 10
    assert len(sub.take()) == 10
    assert host.deactivate() is State.INACTIVE
    t.advance(1.0)
    assert m.n == 10
    assert host.cleanup() is State.UNCONFIGURED
    assert host.shutdown() is State.FINALIZED
    assert m.calls == ["configure", "activate", "deactivate", "cleanup", "shutdown"]


def test_refusal_keeps_the_state(t: InMemoryTransport) -> None:
    m = Ticker()
    m.refuse.add("activate")
    host = ModuleHost(m, t)
    host.configure()
    assert host.activate() is State.INACTIVE
    assert host.bus.active is False


@pytest.mark.parametrize(("recover", "final"), [(True, State.UNCONFIGURED), (False, State.FINALIZED)])
def test_raising_hook_goes_through_on_error(t: InMemoryTransport, recover: bool, final: State) -> None:
    m = Ticker()
    m.recover = recover
    m.raise_in.add("activate")
    host = ModuleHost(m, t)
    host.configure()
    assert host.activate() is final
    assert m.calls[-1] == "error:activate failed"
    assert isinstance(host.last_error, RuntimeError)
    t.advance(1.0)
    assert m.n == 0


def test_transition_not_allowed_raises(t: InMemoryTransport) -> None:
    host = ModuleHost(Ticker(), t)
    with pytest.raises(LifecycleError, match="cannot activate in state unconfigured"):
        host.activate()


def test_module_without_manifest_is_refused(t: InMemoryTransport) -> None:
    class NoManifest:
        pass

    with pytest.raises(ManifestError, match="NoManifest has no 'manifest'"):
        ModuleHost(NoManifest(), t)


def test_dict_manifest_is_validated(t: InMemoryTransport) -> None:
    class Bad:
        manifest: dict[str, Any] = {"name": "bad", "version": "x", "supplier": "s"}  # noqa: RUF012

    with pytest.raises(ManifestError, match="version"):
        ModuleHost(Bad(), t)


def test_hook_with_unknown_argument_is_refused_at_registration(t: InMemoryTransport) -> None:
    class Wrong:
        manifest = Manifest(name="wrong", version="1", supplier="s")

        @hookimpl
        def on_configure(self, ctx: ModuleContext, extra: int) -> None:
            pass

    with pytest.raises(ModuleError, match="wrong"):
        ModuleHost(Wrong(), t)


def test_timer_error_is_reported_not_raised(t: InMemoryTransport) -> None:
    m = Ticker()
    host = ModuleHost(m, t)
    errors: list[BaseException] = []
    host.bus.on_callback_error(lambda _i, e: errors.append(e))
    host.configure()
    host.ctx.every(0.5, lambda: 1 / 0)  # type: ignore[func-returns-value]
    host.activate()
    t.advance(1.0)
    assert len(errors) == 2
    assert m.n == 10


def test_heartbeat_every_period_and_on_each_change(t: InMemoryTransport) -> None:
    from hardpoint import Bus
    from hardpoint.core.v1 import health_pb2

    sub = Bus(t, module="watcher").subscribe(health_pb2.ModuleHealth)
    host = ModuleHost(Ticker(), t, node="n1", health_period_s=1.0)
    t.advance(0.0)
    host.configure()
    host.activate()
    t.advance(3.0)
    host.ctx.set_health("degraded", "radar input lost")
    beats = sub.take()
    states = [b.lifecycle_state for b in beats]
    assert states[:3] == [
        health_pb2.LIFECYCLE_STATE_UNCONFIGURED,
        health_pb2.LIFECYCLE_STATE_INACTIVE,
        health_pb2.LIFECYCLE_STATE_ACTIVE,
    ]
    assert len(beats) == 3 + 3 + 1  # first beat, two changes, three periods, one health change
    last = beats[-1]
    assert (last.module, last.node, last.version) == ("ticker", "n1", "1.0")
    assert last.status == health_pb2.HEALTH_STATUS_DEGRADED
    assert last.reason == "radar input lost"
    assert last.counters[f"pub:{ALERT}.published"] == 30
    with pytest.raises(ValueError, match="health status"):
        host.ctx.set_health("fine")


def test_silent_provider_degrades_health_and_recovery_restores_it(t: InMemoryTransport) -> None:
    """SDK-LC-007: a continuous required interface that goes silent is reported as a lost provider."""
    from hardpoint import Bus
    from hardpoint.core.v1 import geo_pb2
    from hardpoint.nav.v1 import nav_pb2

    class Consumer:
        manifest = Manifest(name="consumer", version="1", supplier="s", requires=("hardpoint.nav.v1.NavState",))

        @hookimpl
        def on_configure(self, ctx: ModuleContext) -> None:
            ctx.bus.subscribe(nav_pb2.NavState, lambda m: None)

    nav = Bus(t, module="nav").publisher(nav_pb2.NavState)
    host = ModuleHost(Consumer(), t)
    host.configure()
    host.activate()
    t.advance(2.0)
    assert host.health_status == "ok"  # nothing received yet: nothing to miss
    nav.publish(nav_pb2.NavState(platform_id="p", position=geo_pb2.GeoPosition()))
    t.advance(0.4)
    assert host.health_status == "ok"
    t.advance(0.3)  # 700 ms > the 500 ms deadline of NavState
    assert host.health_status == "degraded"
    assert "hardpoint.nav.v1.NavState" in host.health_reason
    assert "provider lost" in host.health_reason
    nav.publish(nav_pb2.NavState(platform_id="p", position=geo_pb2.GeoPosition()))
    t.advance(0.1)
    assert host.health_status == "ok"


def test_silence_on_a_non_continuous_interface_is_not_a_lost_provider(t: InMemoryTransport) -> None:
    """Tracks come and go: no fused track for a while is not a fault (IF-TRACK-FUSED is not continuous)."""
    from hardpoint import Bus
    from hardpoint.track.v1 import track_pb2

    class Consumer:
        manifest = Manifest(name="consumer", version="1", supplier="s", requires=("hardpoint.track.v1.FusedTrack",))

        @hookimpl
        def on_configure(self, ctx: ModuleContext) -> None:
            ctx.bus.subscribe(track_pb2.FusedTrack, lambda m: None)

    fused = Bus(t, module="fusion").publisher(track_pb2.FusedTrack)
    host = ModuleHost(Consumer(), t)
    host.configure()
    host.activate()
    fused.publish(track_pb2.FusedTrack(track_id="f1"))
    t.advance(10.0)
    assert host.health_status == "ok"
