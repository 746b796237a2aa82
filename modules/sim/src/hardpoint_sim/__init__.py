"""hardpoint-sim: scenario-driven simulated hardware for hardpoint platforms.

A *scenario* (TOML, :func:`load_scenario`) scripts the own platform's route,
targets, sensors and geofence zones. From it come

- ground truth, as pure functions of scenario time:
  :meth:`Scenario.platform_at`, :meth:`Scenario.targets_at`,
  :meth:`Scenario.zone_events`;
- simulated adapters, the drivers a platform configuration binds to the
  abstract adapters of :mod:`hardpoint.adapters` (entry points in
  ``hardpoint.adapters``):

  ``sim-gnss``
      a :class:`~hardpoint.adapters.GnssReceiver` on the own route
      (:mod:`hardpoint_sim.gnss`);
  ``sim-detections``
      a :class:`~hardpoint.adapters.DetectionSensor` for one sensor of the
      scenario (:mod:`hardpoint_sim.detections`).

Both take keyword configuration (``scenario``, ``sensor``, ``start_ns``,
``seed``, ``clock``; see :mod:`hardpoint_sim.adapters`) and are deterministic
for a given seed and clock. Adapters in different processes agree on
scenario time zero when it is given, as ``start_ns`` or in the environment
variable ``HARDPOINT_SIM_START_NS``; otherwise each starts at its first use.

In a unit test, drive them with the in-memory transport's manual clock::

    t = InMemoryTransport()
    gnss = sim_gnss(scenario="builtin:patrol", clock=t.now_ns)
    host = ModuleHost(Nav(), t, adapters={"gnss": gnss})
"""

from hardpoint_sim._clock import START_ENV
from hardpoint_sim.adapters import sim_detections, sim_gnss
from hardpoint_sim.detections import SimDetectionSensor
from hardpoint_sim.gnss import SimGnss
from hardpoint_sim.scenario import (
    PlatformTruth,
    Scenario,
    ScenarioError,
    SensorSpec,
    TargetTruth,
    ZoneEvent,
    ZoneSpec,
    builtin_scenarios,
    load_scenario,
    scenario_from_dict,
)

__all__ = [
    "START_ENV",
    "PlatformTruth",
    "Scenario",
    "ScenarioError",
    "SensorSpec",
    "SimDetectionSensor",
    "SimGnss",
    "TargetTruth",
    "ZoneEvent",
    "ZoneSpec",
    "builtin_scenarios",
    "load_scenario",
    "scenario_from_dict",
    "sim_detections",
    "sim_gnss",
]
