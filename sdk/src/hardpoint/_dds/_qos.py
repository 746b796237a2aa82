"""DDS QoS of each hardpoint QoS class.

===========  ===========  ===============  ==========================  ==================================
class        reliability  durability       history                     resource limits
===========  ===========  ===============  ==========================  ==================================
STATE        reliable     transient-local  keep-last(depth) per key    unlimited instances
EVENT        reliable     volatile         keep-all                    max(depth, 1024) samples
COMMAND      reliable     volatile         keep-all                    max(depth, 1024) samples
STREAM       best-effort  volatile         keep-last(depth)            -
hp/schemas   reliable     transient-local  keep-last(1) per schema id  -
===========  ===========  ===============  ==========================  ==================================

Writers and readers of a class use the same reliability, durability and
liveliness (automatic, infinite lease), so they always match (request/offered).
Reliable writers block for flow control for at most
:data:`MAX_BLOCKING_S`, then the write fails with :class:`~hardpoint.TransportError`.

Keep-all with a bound never drops a sample: a reliable reader that is full
refuses new samples, the writer keeps and resends them and eventually blocks.
The bound turns a stalled reader into back pressure instead of unbounded
memory. It is at least :data:`MIN_RELIABLE_SAMPLES` frames because a module
that publishes from inside a callback runs on the dispatch thread, the only
thread that could drain a full reader of the same process.

Writers send XCDR1 (what :mod:`hardpoint._dds._bytes` encodes); readers accept
XCDR1 and XCDR2.
"""

from __future__ import annotations

from typing import Final

from cyclonedds.core import Policy, Qos
from cyclonedds.util import duration

from hardpoint._contracts import QosClass
from hardpoint._transport import Channel

__all__ = ["MAX_BLOCKING_S", "MIN_RELIABLE_SAMPLES", "reader_qos", "schema_qos", "writer_qos"]

#: Longest time a reliable write may block for flow control, in seconds.
MAX_BLOCKING_S: Final = 1.0
#: Smallest sample bound of keep-all (event and command) writers and readers, in frames.
MIN_RELIABLE_SAMPLES: Final = 1024

_RELIABLE: Final = Policy.Reliability.Reliable(max_blocking_time=duration(seconds=MAX_BLOCKING_S))
_LIVELINESS: Final = Policy.Liveliness.Automatic(lease_duration=duration(infinite=True))
_WRITE_XCDR1: Final = Policy.DataRepresentation(use_cdrv0_representation=True)
_READ_ANY: Final = Policy.DataRepresentation(use_cdrv0_representation=True, use_xcdrv2_representation=True)


def _common(channel: Channel) -> Qos:
    depth = max(1, channel.history_depth)
    qos = channel.qos
    if qos is QosClass.STATE:
        return Qos(_RELIABLE, Policy.Durability.TransientLocal, Policy.History.KeepLast(depth), _LIVELINESS)
    if qos is QosClass.STREAM:
        return Qos(
            Policy.Reliability.BestEffort, Policy.Durability.Volatile, Policy.History.KeepLast(depth), _LIVELINESS
        )
    bound = max(depth, MIN_RELIABLE_SAMPLES)
    return Qos(
        _RELIABLE,
        Policy.Durability.Volatile,
        Policy.History.KeepAll,
        Policy.ResourceLimits(max_samples=bound, max_instances=-1, max_samples_per_instance=bound),
        _LIVELINESS,
    )


def writer_qos(channel: Channel) -> Qos:
    """QoS of a data writer on ``channel``."""
    return Qos(_WRITE_XCDR1, base=_common(channel))


def reader_qos(channel: Channel) -> Qos:
    """QoS of a data reader on ``channel``; it matches :func:`writer_qos` of every channel of the same class."""
    return Qos(_READ_ANY, base=_common(channel))


def schema_qos(*, writer: bool) -> Qos:
    """QoS of the ``hp/schemas`` writer or reader: late joiners get the last announcement of every schema id."""
    return Qos(
        _RELIABLE,
        Policy.Durability.TransientLocal,
        Policy.History.KeepLast(1),
        _LIVELINESS,
        _WRITE_XCDR1 if writer else _READ_ANY,
    )
