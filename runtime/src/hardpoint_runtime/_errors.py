"""The exception tree of the runtime.

::

    hardpoint.HardpointError
    └── HardpointRuntimeError
        ├── ConfigError        the platform configuration file is unreadable or invalid
        ├── ResolutionError    the platform cannot be resolved (two single-writer providers, unknown interface)
        ├── StateError         the state database is unreadable, damaged or from a newer runtime
        ├── ManagementError    a management call failed, or its endpoint cannot be set up
        └── WorkerError        a module process did not start, answer or load its module

Like the SDK's errors, each names what it is about in its message and keeps it
as attributes, so callers (the CLI, the management API) never parse text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hardpoint import HardpointError

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "HardpointRuntimeError",
    "ManagementError",
    "ResolutionError",
    "StateError",
    "WorkerError",
]


class HardpointRuntimeError(HardpointError):
    """Root of every error the hardpoint runtime raises."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a configuration file.

    Rendered as ``platform.toml:14: modules[2].version: <reason>``; the line and
    the field are left out when unknown (a syntax error has no field, a problem
    with the whole file has neither).
    """

    #: The configuration file, as the user named it.
    path: str
    #: 1-based line in the file, or None when no line can be pointed at.
    line: int | None
    #: Dotted field, with list indices in brackets: ``modules[2].version``; empty for the whole file.
    field: str
    #: What is wrong, in words.
    reason: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class ConfigError(HardpointRuntimeError):
    """The platform configuration is unreadable or invalid.

    One error reports every problem found: ``problems`` lists them in file
    order, and the message has one line per problem. ``path``, ``line``,
    ``field`` and ``reason`` are those of the first problem, for callers that
    show just one.
    """

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        found = tuple(problems)
        if not found:
            raise ValueError("ConfigError needs at least one problem")
        #: Every problem, in the order of the file (unlocated ones last).
        self.problems: tuple[ConfigProblem, ...] = found
        first = found[0]
        #: The configuration file.
        self.path: str = first.path
        #: Line of the first problem, or None.
        self.line: int | None = first.line
        #: Dotted field of the first problem.
        self.field: str = first.field
        #: Reason of the first problem.
        self.reason: str = first.reason
        if len(found) == 1:
            message = str(first)
        else:
            lines = "\n".join(f"  {p}" for p in found)
            message = f"{first.path}: {len(found)} problems in the platform configuration:\n{lines}"
        super().__init__(message)

    @classmethod
    def single(cls, path: str, reason: str, *, line: int | None = None, field: str = "") -> ConfigError:
        """An error with one problem.

        :param path: the configuration file, as the user named it.
        :param reason: what is wrong.
        :param line: 1-based line, when known.
        :param field: dotted field, when the problem is about one.
        """
        return cls([ConfigProblem(path=path, line=line, field=field, reason=reason)])


class ResolutionError(HardpointRuntimeError):
    """The platform as configured cannot be resolved; nothing is started.

    ``errors`` holds one sentence per problem (see :class:`~hardpoint_runtime._resolve.Resolution`).
    """

    def __init__(self, message: str, *, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        #: Platform-level problems, each a full sentence naming modules and interfaces.
        self.errors: tuple[str, ...] = tuple(errors)

    @classmethod
    def from_errors(cls, errors: Sequence[str]) -> ResolutionError:
        """An error whose message lists ``errors``, one per line.

        :param errors: :attr:`Resolution.errors <hardpoint_runtime._resolve.Resolution.errors>`.
        """
        lines = "\n".join(f"  {e}" for e in errors)
        return cls(f"the platform cannot start, nothing was started ({len(errors)} errors):\n{lines}", errors=errors)


class StateError(HardpointRuntimeError):
    """The state database cannot be used; the daemon refuses to start over it."""

    def __init__(self, path: str, reason: str) -> None:
        #: The database file.
        self.path = path
        #: What is wrong with it.
        self.reason = reason
        super().__init__(f"state database {path}: {reason}")


class ManagementError(HardpointRuntimeError):
    """A management call failed, or a management endpoint cannot be set up.

    ``code`` is the gRPC status of a failed call (``None`` for set-up errors),
    ``details`` the server's explanation, ``target`` the endpoint.
    """

    def __init__(self, message: str, *, code: Any = None, details: str = "", target: str = "") -> None:
        super().__init__(message)
        #: ``grpc.StatusCode`` of a failed call; None for set-up errors.
        self.code = code
        self.details = details
        self.target = target


class WorkerError(HardpointRuntimeError):
    """A module's process did not start, did not answer in time, or said it could not load the module."""
