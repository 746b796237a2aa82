"""Fakes for module authors' unit tests; they implement the same seams as the real parts."""

from hardpoint._memory import InMemoryTransport, MemoryFrame

__all__ = ["InMemoryTransport", "MemoryFrame"]
