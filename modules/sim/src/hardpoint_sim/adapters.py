"""Adapter factories, registered as entry points in ``hardpoint.adapters``.

The platform configuration binds an abstract adapter to one of them::

    [adapters.gnss]
    driver = "sim-gnss"
    config = { scenario = "examples/patrol/scenario.toml" }

    [adapters.radar]
    driver = "sim-detections"
    config = { scenario = "examples/patrol/scenario.toml", sensor = "radar" }

and the runtime calls the factory with the ``config`` table as keywords.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hardpoint_sim._clock import Clock
from hardpoint_sim.detections import SimDetectionSensor
from hardpoint_sim.gnss import SimGnss
from hardpoint_sim.scenario import GnssSpec, Scenario, load_scenario

__all__ = ["sim_detections", "sim_gnss"]


def _scenario(scenario: str | Path | Scenario) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def sim_gnss(
    *,
    scenario: str | Path | Scenario,
    start_ns: int | None = None,
    seed: int | None = None,
    clock: Clock | None = None,
    **overrides: Any,
) -> SimGnss:
    """The ``sim-gnss`` adapter: a :class:`~hardpoint.adapters.GnssReceiver` on the scenario's own route.

    :param scenario: a scenario file, ``builtin:<name>``, or a :class:`Scenario`.
    :param start_ns: scenario time zero (ns since the epoch); default ``$HARDPOINT_SIM_START_NS``, else first use.
    :param seed: random seed; default the scenario's.
    :param clock: zero-argument callable returning ns; default ``time.time_ns`` (tests: the transport's ``now_ns``).
    :param overrides: any field of :class:`~hardpoint_sim.scenario.GnssSpec` (``position_std_m``, ``rate_hz``,
        ``correlation_time_s``, ``outages``, ...), over the scenario's ``[gnss]`` table.
    :raises ValueError: the scenario or an override is invalid (the message names it).
    """
    sc = _scenario(scenario)
    try:
        spec = GnssSpec.model_validate({**sc.gnss.model_dump(), **overrides})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ValueError(f"sim-gnss: invalid configuration: {problems}") from e
    return SimGnss(sc, spec, seed=sc.seed if seed is None else seed, start_ns=start_ns, clock=clock)


def sim_detections(
    *,
    scenario: str | Path | Scenario,
    sensor: str,
    sensor_id: str | None = None,
    start_ns: int | None = None,
    seed: int | None = None,
    clock: Clock | None = None,
    max_backlog_s: float = 5.0,
) -> SimDetectionSensor:
    """The ``sim-detections`` adapter: a :class:`~hardpoint.adapters.DetectionSensor` for one sensor of the scenario.

    :param sensor: name of the sensor in the scenario's ``[sensors]`` table.
    :param sensor_id: the adapter's ``sensor_id``; default the sensor's name.
    :param start_ns: scenario time zero (ns since the epoch); default ``$HARDPOINT_SIM_START_NS``, else first use.
    :param seed: random seed; default the scenario's (each sensor draws from its own streams).
    :param clock: zero-argument callable returning ns; default ``time.time_ns``.
    :param max_backlog_s: scans older than this when polled are dropped.
    :raises ValueError: the scenario is invalid or has no such sensor.
    """
    sc = _scenario(scenario)
    return SimDetectionSensor(
        sc,
        sensor,
        sensor_id=sensor_id,
        seed=sc.seed if seed is None else seed,
        start_ns=start_ns,
        clock=clock,
        max_backlog_s=max_backlog_s,
    )
