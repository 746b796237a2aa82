"""The module manifest: who a module is and what it provides and requires."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hardpoint._errors import ManifestError

__all__ = ["Manifest"]

_INTERFACE_RE: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.v[1-9][0-9]*\.[A-Z][A-Za-z0-9]*$")


class Manifest(BaseModel):
    """A module's declaration, validated when the module is loaded.

    Interfaces are named by their full protobuf name, which carries the major
    version: ``hardpoint.nav.v1.NavState``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Module name, unique on a platform: lower case, digits, ``-`` and ``_``.
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    #: PEP 440 version of the module.
    version: str
    #: Who built the module and answers for it.
    supplier: str = Field(min_length=1)
    #: Interfaces the module publishes.
    provides: tuple[str, ...] = ()
    #: Interfaces the module subscribes to and needs on the platform: it starts only when all are provided.
    requires: tuple[str, ...] = ()
    #: Interfaces the module subscribes to when someone provides them, but can start without
    #: (optional inputs: operator tasking, acknowledgements). ``"*"`` means every interface (recorders, tools).
    uses: tuple[str, ...] = ()
    #: Abstract hardware adapters the module asks for (for example ``gnss``).
    adapters: tuple[str, ...] = ()
    #: ``process``: own supervised OS process; ``in-process``: hosted inside the daemon.
    isolation: Literal["process", "in-process"] = "process"
    #: One line on what the module does.
    description: str = ""
    #: The rate (Hz) at which the module publishes each key of a periodic provided interface, for an
    #: interface it publishes slower than the contract's nominal rate by design (a radar that scans at
    #: 1 Hz): ``{"hardpoint.track.v1.SensorTrack": 2.0}``. The conformance suite judges the rate against
    #: it instead of the nominal rate (CF-BUS-007); the contract's deadline holds whatever it says.
    rates: dict[str, float] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _pep440(cls, value: str) -> str:
        try:
            Version(value)
        except InvalidVersion:
            raise ValueError(f"{value!r} is not a PEP 440 version") from None
        return value

    @field_validator("provides", "requires")
    @classmethod
    def _interface_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _INTERFACE_RE.match(name):
                raise ValueError(f"{name!r} is not an interface name like 'hardpoint.nav.v1.NavState'")
        if len(set(value)) != len(value):
            raise ValueError("lists an interface twice")
        return value

    @field_validator("uses")
    @classmethod
    def _used_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name != "*" and not _INTERFACE_RE.match(name):
                raise ValueError(f"{name!r} is neither '*' nor an interface name like 'hardpoint.nav.v1.NavState'")
        return value

    @field_validator("rates")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        for name, rate in value.items():
            if not _INTERFACE_RE.match(name):
                raise ValueError(f"{name!r} is not an interface name like 'hardpoint.nav.v1.NavState'")
            if not math.isfinite(rate) or rate <= 0:
                raise ValueError(f"{name}: the rate must be a finite number of Hz above 0, not {rate!r}")
        return value

    @model_validator(mode="after")
    def _rates_of_provided(self) -> Manifest:
        undeclared = sorted(set(self.rates) - set(self.provides))
        if undeclared:
            raise ValueError(f"rates names {', '.join(undeclared)}, which the module does not provide")
        return self

    @classmethod
    def load(cls, data: Mapping[str, Any], *, origin: str = "manifest") -> Manifest:
        """Validate ``data``; errors name ``origin``, each field and the reason.

        :raises ManifestError: the data is not a valid manifest.
        """
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()
            )
            raise ManifestError(f"{origin}: invalid manifest: {problems}", module=str(data.get("name", ""))) from e
