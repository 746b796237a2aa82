"""Recorder: a reference hardpoint module that records the bus to MCAP and replays it.

What it does
============

While ACTIVE it records every message of the configured interfaces (default:
all of :func:`hardpoint.all_interfaces`) into an `MCAP <https://mcap.dev>`_
file with protobuf schemas: the file embeds each message type's
``FileDescriptorSet``, so any MCAP reader decodes it with no hardpoint code
(``mcap`` + ``mcap_protobuf.decoder.DecoderFactory``, Foxglove). Channel =
the bus topic (one channel per topic and publishing module, the module in the
channel's ``source`` metadata); ``log_time`` = receive time on the bus clock;
``publish_time`` = the envelope's time of validity; ``sequence`` = the
envelope sequence number (mod 2**32). Layout details: :mod:`._mcap`.

Configuration (the ``config`` table of the module's ``[[modules]]`` entry)::

    [[modules]]
    name = "recorder"
    [modules.config]
    path = "/var/lib/hardpoint/rec/patrol-{time}.mcap"   # {time}: UTC start, 20250101T120000Z
    # interfaces = ["hardpoint.track.v1.FusedTrack", "hardpoint.alert.v1.Alert"]  # default: all
    # overwrite = false        # default: never replace a file; use <stem>-1.mcap, -2, ... instead
    # flush_period_s = 1.0     # a crash loses at most about this much
    # chunk_size = 1048576     # bytes, uncompressed
    # compression = "zstd"     # or "lz4", "none"

A relative ``path`` is relative to the working directory of the module's
process (the daemon's). Each activation writes one file.

File life cycle, normal stop and crash
======================================

The recording is written to ``<path>.part``. On deactivate, on shutdown
(which may come straight from ACTIVE) and on error, the recorder stops
receiving, writes the MCAP summary and footer, fsyncs, and renames the file
to ``<path>``: **a file at** ``<path>`` **is always complete and valid**.
Every ``flush_period_s`` it closes the current chunk and hands it to the OS.
A crash (or SIGKILL) therefore leaves only ``<path>.part``: the MCAP header
and every chunk closed before the crash, no summary or footer, perhaps a torn
last record. Readers that need the summary refuse it;
``python -m hardpoint_mod_recorder recover FILE.part OUT.mcap`` (or
``mcap recover``) rewrites the complete chunks, i.e. all but at most about the
last ``flush_period_s`` of data, as a valid file.

Replay
======

``python -m hardpoint_mod_recorder replay FILE [--speed 1.0] [--topics ...]``
publishes a recording onto the Cyclone DDS bus with its relative timing
(``info FILE`` lists what is in it). The library function
:func:`replay(path, bus, *, speed, topics, exclude, clock, sleep) <replay>`
does the same onto any :class:`hardpoint.Bus`; with the in-memory transport's
manual clock (``clock=transport.now_ns, sleep=transport.advance``) it is fully
deterministic. Messages keep their recorded time of validity and contents;
they are published under the replaying bus's module name with fresh sequence
numbers. Module heartbeats are not replayed unless asked for. To reproduce a
module's output, replay its *inputs* only (``topics=[...]``) into a fresh
instance of it: replaying its recorded outputs as well would put a second
writer on its topics. :func:`read` yields the raw recorded messages for
analysis.

How it is written (the module-writing guide, for tools)
=======================================================

* Configuration is validated in ``on_configure`` with pydantic; an invalid
  one raises, and the host reports the error. The flush timer is made there
  once (``ctx.every`` timers fire only while ACTIVE).
* Everything that holds a resource is opened in ``on_activate`` and released
  in ``on_deactivate`` *and* ``on_shutdown`` (and ``on_error``): the daemon
  stops a platform with a shutdown straight from ACTIVE, so a module that
  finishes its work only in ``on_deactivate`` would leave it unfinished.
* Receive time is ``ctx.now_ns()`` (the bus clock), so tests on the in-memory
  transport are deterministic.
* An I/O error does not crash the module: it reports ``failed`` health with
  the reason (``ctx.set_health``) and stops recording; a ``.part`` file stays.

Why the manifest requires nothing and uses everything
-----------------------------------------------------

A module may subscribe only to what its manifest ``requires``, and the daemon
starts a module only when every interface it ``requires`` has a started
provider (RT-RES-001). Listing every interface would block the recorder on
every real platform: no manifest provides ``hardpoint.core.v1.ModuleHealth``
(the SDK's heartbeat needs no manifest entry), and rarely does anything
provide ``AlertAck`` or ``TaskCancel``. A recorder must also never hold up, or
be held up by, the modules it watches. So its manifest says ``requires = ()``
and ``uses = ("*",)`` (optional inputs: every interface; ``uses`` never holds up
a start, and it declares what the module reads, which the conformance suite
holds every module to, CF-BUS-008), and it records through a bus of its own,
``hardpoint.Bus(ctx.bus.transport, module=ctx.name, provides=(), requires=<the
configured interfaces>)``: narrowed to exactly what the configuration asks,
and publishing nothing. The cost: the heartbeat's counters (those of the
module's own bus) do not show what it records.
"""

from __future__ import annotations

from hardpoint_mod_recorder._mcap import METADATA_NAME, Recorded, RecordingWriter, read, recover
from hardpoint_mod_recorder._module import ConfigError, RecorderConfig, RecorderModule
from hardpoint_mod_recorder._replay import DEFAULT_EXCLUDE, ReplayStats, replay
from hardpoint_mod_recorder._version import VERSION

__all__ = [
    "DEFAULT_EXCLUDE",
    "METADATA_NAME",
    "VERSION",
    "ConfigError",
    "Recorded",
    "RecorderConfig",
    "RecorderModule",
    "RecordingWriter",
    "ReplayStats",
    "read",
    "recover",
    "replay",
]
