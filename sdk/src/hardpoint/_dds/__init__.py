"""Cyclone DDS transport of the hardpoint bus (:class:`CycloneTransport`)."""

from hardpoint._dds._transport import CycloneTransport

__all__ = ["CycloneTransport"]
