"""Geofence: a reference hardpoint module, and a worked example of how to write one.

What it does
============

It watches the fused picture (``hardpoint.track.v1.FusedTrack``) against
zones and raises a ``hardpoint.alert.v1.Alert`` (state RAISED, category
GEOFENCE_INTRUSION, the zone's severity) when a track enters a KEEP_OUT zone
or leaves a KEEP_IN zone, and the same alert CLEARED when the track leaves it
(comes back), is DROPPED, or goes stale (no sample for the FusedTrack
deadline, 1.5 s). Every (zone, track) *episode* is one alert: exactly one
RAISED and one CLEARED sample with one ``alert_id``
(``geofence/<zone_id>/<track_id>/<raised_time_ns>``); it is republished
RAISED in between only if its zone is replaced with another severity.

Hysteresis: an alert is raised as soon as the track is on the wrong side of the
boundary, and cleared only once it is back at least ``margin_m`` on the right
side, so a track running along the border does not chatter. Raise early, clear
late: the safe side for a fence. Zones may have a height band
(``floor_hae_m``/``ceiling_hae_m``); the distance to the band counts like the
horizontal one. Geometry and its accuracy (local tangent plane per zone,
< 5 m error for zones up to 100 km from their centre): :mod:`._geometry`.

Zones are published on the ``hardpoint.alert.v1.Zone`` state topic (late
joiners get them) when the module activates and whenever they change.

Configuration (the ``config`` table of the module's ``[[modules]]`` entry)::

    [[modules]]
    name = "geofence"
    [modules.config]
    margin_m = 50.0          # hysteresis, metres (default 50)
    tick_s = 0.1             # housekeeping period: stale tracks, pending tasks (default 0.1)
    # stale_after_s = 1.5    # default: the FusedTrack contract deadline
    zones = [
      # polygon vertices are [latitude, longitude] in degrees (NOT GeoJSON's lon, lat), not closed
      { zone_id = "harbour", name = "HARBOUR", kind = "keep_out", severity = "warning",
        polygon = [[50.80, -1.12], [50.81, -1.12], [50.81, -1.10], [50.80, -1.10]] },
      { zone_id = "patrol", kind = "keep_in", severity = "caution",
        circle = { lat = 50.75, lon = -1.05, radius_m = 8000 } },
    ]

Vertices may also be written ``{lat = .., lon = ..}``. The format is the one
of the simulator's scenario ``[[zones]]`` (``hardpoint_sim``), so a scenario's
zones can be handed to the module as they are. ``kind`` is ``keep_out``
(default) or ``keep_in``; ``severity`` is
``advisory``, ``caution`` or ``warning`` (default); optional ``name``,
``floor_hae_m``, ``ceiling_hae_m``. Errors name the field:
``zones.0.polygon: polygon edges 0-1 and 2-3 cross``.

Tasking: adding and removing zones at run time
==============================================

A ``hardpoint.tasking.v1.TaskRequest`` whose ``target`` is ``"geofence"`` and
whose ``parameters`` packs a ``hardpoint.alert.v1.Zone``:

* ``active = true``: add the zone, or replace the zone with that ``zone_id``
  (the full definition, validated like configured zones);
* ``active = false``: **remove** the zone ``zone_id`` (only the id is read).
  This is the Zone contract's own rule ("a zone is retired by publishing it
  with active false"): the module republishes the zone with ``active = false``
  and clears the zone's open alerts.

Answers, following ``tasking.proto``:

* a ``TaskAck`` at once, on receipt (well within the request contract's
  ``deadline_ms``): ACCEPTED, or REJECTED with the reason (parameters missing,
  unknown task type, invalid zone: which rule). A repeated request (same
  ``task_id``) is answered again and never run twice.
* an accepted task is *pending* until the next tick (at most ``tick_s``), where
  pending tasks are applied highest ``priority`` first, then in order of
  arrival; then one ``TaskResult``: SUCCEEDED (zone added, replaced or removed;
  the Zone is published and every known track re-evaluated, so a track already
  inside a new keep-out zone raises at once), FAILED (removing a zone that does
  not exist), EXPIRED (``deadline_time_ns`` passed before it was applied,
  including a request that arrives already late), or CANCELLED.
* a ``TaskCancel`` from the task's requester: CANCELLED for a pending task (the
  zone is not applied) or an unknown one; the result it already reached for an
  ended task; the REJECTED ack again for a rejected task (no result follows a
  rejection). Cancels from anyone else are ignored.

How it is written (the module-writing guide)
============================================

* **A plain class with a class-level** :class:`hardpoint.Manifest`. The daemon
  reads the manifest from the class, in a separate process, before anything
  runs, so it must not depend on configuration. ``provides`` lists every
  interface the module publishes; ``requires`` every one it subscribes to; the
  bus refuses anything else.
* **Entry point** ``geofence = "hardpoint_mod_geofence:GeofenceModule"`` in
  the group ``hardpoint.modules`` (``pyproject.toml``); the daemon instantiates
  the class with no arguments.
* **on_configure** validates ``ctx.config`` with pydantic (raise, and the host
  reports the error and the module does not start), makes publishers and
  subscriptions, and creates the periodic timer once (``ctx.every`` timers fire
  only while ACTIVE, so one made here serves every activation). It publishes
  nothing: publishing is allowed from ``on_activate`` on. Subscriptions are
  made on the first configure only: the host's bus outlives cleanup and
  re-configure, and subscribing again would deliver every message twice.
* **Callbacks and timers** run one at a time on the transport's dispatch
  thread, never concurrently with each other or with hooks: no locks. Messages
  keep arriving while the module is INACTIVE, so callbacks check an
  ``_active`` flag (state changes made while publishing is suppressed would
  lose the RAISED half of an episode).
* **Time** comes from the data (``last_update_time_ns``, the envelope's
  ``stamp_ns``) or ``ctx.now_ns()`` (the bus clock), never ``time.time()``, so
  unit tests on :class:`hardpoint.testing.InMemoryTransport` drive it with a
  manual clock and a replayed recording gives the same alerts.
* **Low-rate decisions** (alerts, task answers, zones) use publishers with
  ``batch=None``: each is sent alone and at once.
* **Contract values** (the FusedTrack deadline) are read from the interface
  contract with :func:`hardpoint.interface_spec`, not copied.

Manifest caveat: the platform resolver starts a module only when every
interface it ``requires`` has a started provider, so this module needs some
module providing ``TaskRequest`` and ``TaskCancel`` on the platform.
"""

from __future__ import annotations

from hardpoint_mod_geofence._module import VERSION, GeofenceModule
from hardpoint_mod_geofence._zones import ConfigError, GeofenceConfig, Zone, ZoneConfig, ZoneError, zone_from_proto

__all__ = [
    "VERSION",
    "ConfigError",
    "GeofenceConfig",
    "GeofenceModule",
    "Zone",
    "ZoneConfig",
    "ZoneError",
    "zone_from_proto",
]
