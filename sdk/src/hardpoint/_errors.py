"""The exception tree of the SDK.

::

    HardpointError
    ├── ContractError            an interface or its contract is unknown or malformed
    │   └── QosError             a QoS override the contract does not allow
    ├── ModuleError              a module is declared or behaves wrongly
    │   ├── ManifestError        the manifest is invalid
    │   ├── UndeclaredInterfaceError   publish/subscribe of an interface not in the manifest
    │   └── LifecycleError       a transition that is not allowed from the current state
    └── TransportError           the bus underneath failed (wraps cyclonedds errors)

Every error names what it is about (module, interface, state) in its message and
keeps it as attributes, so callers never parse text.
"""

from __future__ import annotations

__all__ = [
    "ContractError",
    "HardpointError",
    "LifecycleError",
    "ManifestError",
    "ModuleError",
    "QosError",
    "TransportError",
    "UndeclaredInterfaceError",
]


class HardpointError(Exception):
    """Root of every error the hardpoint SDK raises."""


class ContractError(HardpointError):
    """An interface is unknown, or its contract in ``proto/`` is malformed."""

    def __init__(self, message: str, *, interface: str = "") -> None:
        super().__init__(message)
        #: Full protobuf name of the interface, for example ``hardpoint.nav.v1.NavState``.
        self.interface = interface


class QosError(ContractError):
    """A QoS override that the interface contract does not allow."""


class TransportError(HardpointError):
    """The transport (Cyclone DDS or in-memory) failed; the cause is chained."""


class ModuleError(HardpointError):
    """A module is declared or behaves in a way the SDK refuses."""

    def __init__(self, message: str, *, module: str = "") -> None:
        super().__init__(message)
        #: Name of the module concerned.
        self.module = module


class ManifestError(ModuleError):
    """A module manifest is invalid."""


class UndeclaredInterfaceError(ModuleError):
    """A module used an interface that its manifest does not declare."""

    def __init__(self, *, module: str, interface: str, direction: str) -> None:
        verb = "publish" if direction == "provides" else "subscribe to"
        super().__init__(
            f"module {module!r} tried to {verb} interface {interface!r}, "
            f"which its manifest does not list under {direction!r}",
            module=module,
        )
        #: Full protobuf name of the interface.
        self.interface = interface
        #: ``"provides"`` or ``"requires"``: the manifest list that lacks it.
        self.direction = direction


class LifecycleError(ModuleError):
    """A lifecycle transition was asked for in a state that does not allow it."""

    def __init__(self, message: str, *, module: str = "", state: str = "", transition: str = "") -> None:
        super().__init__(message, module=module)
        #: State the module was in.
        self.state = state
        #: Transition that was refused.
        self.transition = transition
