"""hardpoint-mod-nav: the platform's navigation state from a GNSS/INS receiver.

It reads the receiver bound as the ``gnss`` adapter
(:class:`hardpoint.adapters.GnssReceiver`) and publishes
``hardpoint.nav.v1.NavState`` at its contract rate, 10 Hz, keyed by
``platform_id``. The envelope's time of validity is the time of the solution.
It keeps publishing when the solution is lost (contract IF-NAV-STATE-SEM):
``fix_quality`` NONE, the last good position, no accuracy; its health is then
``degraded`` with the reason.

Configuration (``[[modules]] config`` in the platform file)::

    platform_id = "own"    # key of the NavState samples
    rate_hz = 10.0         # publication rate
    stale_after_s = 1.0    # a solution older than this counts as lost

How this module is written -- the pattern every module follows:

1. **Manifest**: a class attribute naming the module and declaring what it
   ``provides`` (interfaces it publishes), ``requires`` (interfaces it
   subscribes to) and the abstract ``adapters`` it needs. The host refuses
   anything undeclared.
2. **on_configure**: validate ``ctx.config`` (a pydantic model, unknown keys
   refused), take the adapter from ``ctx.adapters`` and check it implements
   the protocol, make publishers. No publishing yet.
3. **on_activate**: start work with ``ctx.every``; timers only fire while the
   module is active. **on_deactivate** cancels the timer, so a later
   activation does not run two.
4. **The work** reads the adapter, fills the generated message, publishes it
   with ``time_of_validity_ns`` = when it was true, and reports its own
   judgement with ``ctx.set_health`` (the SDK sends it in the heartbeat).
   It never opens a device and never sleeps.
5. **Tests** run it on :class:`hardpoint.testing.InMemoryTransport` with a
   simulated adapter driven by the transport's manual clock
   (``tests/modules/test_nav.py``).
"""

from __future__ import annotations

import math
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hardpoint import Manifest, ModuleContext, Publisher, Timer, hookimpl
from hardpoint.adapters import GnssFix, GnssReceiver
from hardpoint.core.v1 import geo_pb2
from hardpoint.nav.v1 import nav_pb2

__all__ = ["FIX_QUALITY", "Nav", "NavConfig"]

NAV_STATE: Final = "hardpoint.nav.v1.NavState"

#: GnssFix.fix -> NavState.fix_quality.
FIX_QUALITY: Final[dict[str, int]] = {
    "none": nav_pb2.FIX_QUALITY_NONE,
    "2d": nav_pb2.FIX_QUALITY_2D,
    "3d": nav_pb2.FIX_QUALITY_3D,
    "dgnss": nav_pb2.FIX_QUALITY_DGNSS,
    "rtk_float": nav_pb2.FIX_QUALITY_RTK_FLOAT,
    "rtk_fixed": nav_pb2.FIX_QUALITY_RTK_FIXED,
    "dead_reckoning": nav_pb2.FIX_QUALITY_DEAD_RECKONING,
    "ins_only": nav_pb2.FIX_QUALITY_INS_ONLY,
}
_UNAIDED: Final = frozenset({"dead_reckoning", "ins_only"})


class NavConfig(BaseModel):
    """The nav module's configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform_id: str = Field(default="own", min_length=1)
    rate_hz: float = Field(default=10.0, gt=0, le=100)
    stale_after_s: float = Field(default=1.0, gt=0)


def _config(module: str, raw: Any) -> NavConfig:
    try:
        return NavConfig.model_validate(dict(raw))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ValueError(f"module {module!r}: invalid configuration: {problems}") from None


def _wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))


class Nav:
    """Publishes ``hardpoint.nav.v1.NavState`` from the ``gnss`` adapter."""

    manifest = Manifest(
        name="nav",
        version="1.0.0",
        supplier="hardpoint reference modules",
        provides=(NAV_STATE,),
        adapters=("gnss",),
        description="Navigation state (position, velocity, attitude, accuracy) from a GNSS/INS receiver at 10 Hz",
    )

    def __init__(self) -> None:
        self._timer: Timer | None = None
        self._last_good: tuple[float, float, float] | None = None
        #: NavState samples published.
        self.published = 0

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        self.cfg = _config(ctx.name, ctx.config)
        gnss = ctx.adapters.get("gnss")
        if not isinstance(gnss, GnssReceiver):
            raise TypeError(f"module {ctx.name!r}: adapter 'gnss' must be a GnssReceiver, not {type(gnss).__name__}")
        self.gnss: GnssReceiver = gnss
        self.pub: Publisher[nav_pb2.NavState] = ctx.bus.publisher(nav_pb2.NavState)
        self.ctx = ctx

    @hookimpl
    def on_activate(self, ctx: ModuleContext) -> None:
        self._timer = ctx.every(1.0 / self.cfg.rate_hz, self.tick)

    @hookimpl
    def on_deactivate(self, ctx: ModuleContext) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @hookimpl
    def on_cleanup(self, ctx: ModuleContext) -> None:
        self._last_good = None

    def tick(self) -> None:
        """Read the receiver, publish one NavState, report health."""
        now = self.ctx.now_ns()
        try:
            fix = self.gnss.read()
        except Exception as e:  # a driver fault is a lost solution, not a module crash
            self._publish_lost(now, f"GNSS receiver read failed: {type(e).__name__}: {e}")
            return
        if fix is None:
            self._publish_lost(now, "no solution from the GNSS receiver yet")
            return
        age_s = (now - fix.time_ns) / 1e9
        quality = FIX_QUALITY.get(fix.fix)
        if quality is None:
            self._publish_lost(now, f"GNSS receiver reports an unknown fix kind {fix.fix!r}")
            return
        if fix.fix == "none":
            self._publish_lost(fix.time_ns, "GNSS receiver reports no fix")
            return
        if age_s > self.cfg.stale_after_s:
            self._publish_lost(now, f"last GNSS solution is {age_s:.1f} s old")
            return
        self.pub.publish(self.nav_state(fix, quality), time_of_validity_ns=fix.time_ns)
        self.published += 1
        self._last_good = (fix.latitude_deg, fix.longitude_deg, fix.height_m)
        if fix.fix in _UNAIDED:
            self.ctx.set_health("degraded", f"unaided navigation ({fix.fix}): error grows with time")
        else:
            self.ctx.set_health("ok")

    def nav_state(self, fix: GnssFix, quality: int) -> nav_pb2.NavState:
        """The NavState of one good solution."""
        msg = nav_pb2.NavState(
            platform_id=self.cfg.platform_id,
            position=geo_pb2.GeoPosition(
                latitude_deg=fix.latitude_deg, longitude_deg=fix.longitude_deg, height_hae_m=fix.height_m
            ),
            velocity=geo_pb2.VelocityNed(north_mps=fix.north_mps, east_mps=fix.east_mps, down_mps=fix.down_mps),
            attitude=geo_pb2.Attitude(
                roll_rad=_wrap(fix.roll_rad),
                pitch_rad=max(-math.pi / 2, min(math.pi / 2, fix.pitch_rad)),
                yaw_rad=_wrap(fix.yaw_rad),
            ),
            fix_quality=quality,  # type: ignore[arg-type]
            satellites_used=max(0, min(255, fix.satellites)),
        )
        stds = (fix.horizontal_std_m, fix.vertical_std_m, fix.velocity_std_mps, fix.heading_std_rad)
        if all(math.isfinite(s) and s >= 0 for s in stds):
            msg.accuracy.CopyFrom(
                nav_pb2.NavAccuracy(
                    horizontal_position_std_m=fix.horizontal_std_m,
                    vertical_position_std_m=fix.vertical_std_m,
                    velocity_std_mps=fix.velocity_std_mps,
                    heading_std_rad=fix.heading_std_rad,
                )
            )
        return msg

    def _publish_lost(self, stamp_ns: int, reason: str) -> None:
        lat, lon, h = self._last_good if self._last_good is not None else (0.0, 0.0, 0.0)
        msg = nav_pb2.NavState(
            platform_id=self.cfg.platform_id,
            position=geo_pb2.GeoPosition(latitude_deg=lat, longitude_deg=lon, height_hae_m=h),
            fix_quality=nav_pb2.FIX_QUALITY_NONE,
        )
        self.pub.publish(msg, time_of_validity_ns=stamp_ns)
        self.published += 1
        self.ctx.set_health("degraded", reason)
