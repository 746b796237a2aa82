"""The platform configuration file (``platform.toml``) and its validation.

The file is TOML, validated by the pydantic models below: every table refuses
unknown keys, every model is frozen, and quantities carry their unit in their
name (``restart_period_s``). :func:`load_config` turns every problem into one
:class:`~hardpoint_runtime._errors.ConfigError` that names the file, the line,
the dotted field and the reason, for example::

    platform.toml:14: modules[2].version: '>=2,<' is not a PEP 440 version specifier

Relative paths (``platform.state_dir``, ``management.socket``, the TLS files, ``dds.config``)
are taken relative to the folder of the configuration file, so a platform
folder can be moved as a whole. See ``spec/runtime.md`` (RT-CFG-*).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Any, Final, Literal, Self, TypeAlias

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from hardpoint_runtime._errors import ConfigError, ConfigProblem

__all__ = [
    "DEFAULT_NODE",
    "AdapterBinding",
    "BaselineEntry",
    "DdsSection",
    "ManagementSection",
    "MetricsSection",
    "ModuleEntry",
    "PlatformConfig",
    "PlatformSection",
    "SupervisionSection",
    "TomlLocator",
    "UpdateSection",
    "format_loc",
    "load_config",
    "parse_config",
]

#: Node that runs modules without a ``node`` placement, when ``node`` is not set.
DEFAULT_NODE: Final = "main"
#: File name of the management socket inside the state directory, by default.
SOCKET_NAME: Final = "hardpointd.sock"

#: A location inside the configuration, as pydantic reports it: ``("modules", 2, "version")``.
Loc: TypeAlias = tuple[str | int, ...]

# Module names follow the manifest's rule, so that a configured name can match a manifest.
_MODULE_NAME: Final = r"^[a-z][a-z0-9_-]{0,62}$"
_NODE_NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_PLATFORM_NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_ADAPTER_NAME: Final = r"^[a-z][a-z0-9_.-]{0,62}$"
_CONTEXT_BASE_DIR: Final = "base_dir"


class _LocatedProblems(ValueError):
    """Cross-field problems raised from a model validator, each with its own location.

    pydantic reports a validator's error at the model's location only; it keeps
    the exception object in ``ctx["error"]``, so :func:`_problems_from` can
    unpack the exact fields and point at their lines.
    """

    def __init__(self, problems: Sequence[tuple[Loc, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{format_loc(loc)}: {reason}" for loc, reason in self.problems))


def _raise_if(problems: Sequence[tuple[Loc, str]]) -> None:
    if problems:
        raise _LocatedProblems(problems)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a relative path relative to the configuration file's folder, when known.

    :param value: the path as written in the file.
    :param info: carries ``base_dir`` in its context when validating a file.
    """
    base = (info.context or {}).get(_CONTEXT_BASE_DIR)
    if base is None or value.is_absolute():
        return value
    return Path(base) / value


#: A path in the configuration: relative paths are relative to the configuration file's folder.
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlatformSection(_Model):
    """``[platform]``: which platform this is and where its state lives."""

    #: Platform name, shown in status and health.
    name: str = Field(pattern=_PLATFORM_NAME)
    #: DDS domain shared by every daemon and module of the platform (Cyclone DDS allows 0..232).
    domain_id: int = Field(default=0, ge=0, le=232)
    #: State directory (SQLite state, module store, socket); relative to the configuration file's folder.
    state_dir: ConfigPath = Field(default=Path("state"), validate_default=True)


class ManagementSection(_Model):
    """``[management]``: where the gRPC management API listens."""

    #: Unix socket of the management API; default ``<state_dir>/hardpointd.sock``.
    socket: ConfigPath = Field(default=Path("state") / SOCKET_NAME, validate_default=True)
    #: Optional TCP endpoint ``host:port`` (IPv6 as ``[::1]:50051``); needs the three TLS files below.
    tcp: str | None = None
    #: Server certificate (PEM) for the TCP endpoint.
    tls_cert: ConfigPath | None = None
    #: Server private key (PEM) for the TCP endpoint.
    tls_key: ConfigPath | None = None
    #: CA bundle (PEM) that client certificates must chain to: TCP clients are always authenticated.
    client_ca: ConfigPath | None = None

    @field_validator("tcp")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value)
        return value

    @model_validator(mode="after")
    def _tls_for_tcp(self) -> Self:
        # Network exposure is explicit and authenticated (DESIGN.md, decision 3):
        # a TCP endpoint without server and client certificates is refused.
        problems: list[tuple[Loc, str]] = []
        for name in ("tls_cert", "tls_key", "client_ca"):
            path: Path | None = getattr(self, name)
            if path is None and self.tcp is not None:
                problems.append(((name,), f"required when management.tcp is set ({self.tcp!r}): TCP needs mutual TLS"))
            elif path is not None and not path.is_file():
                problems.append(((name,), f"file not found: {path}"))
        _raise_if(problems)
        return self


class MetricsSection(_Model):
    """``[metrics]``: the Prometheus endpoint, off by default and loopback when on."""

    enabled: StrictBool = False
    address: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    #: Must be true to listen on an address that is not loopback.
    allow_remote: StrictBool = False

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> Self:
        if not self.allow_remote and not is_loopback(self.address):
            _raise_if(
                [(("address",), f"{self.address!r} is not a loopback address; set allow_remote = true to expose it")]
            )
        return self


#: An interface name as the OS spells it (``lo``, ``eth0``, ``enp3s0``, ``veth-a``).
_INTERFACE_NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$"
#: A host name (RFC 1123 labels), for a peer that is not written as an IP address.
_HOST_LABEL: Final = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME: Final = rf"^(?=.{{1,253}}$){_HOST_LABEL}(\.{_HOST_LABEL})*$"


def _ip_version(address: str) -> int | None:
    """4 or 6 for an IP address literal, None for anything else (a host name, an interface name)."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


class DdsSection(_Model):
    """``[dds]``: where the platform's DDS traffic goes; loopback only unless told otherwise.

    The daemon turns this table into a Cyclone DDS configuration (multicast off,
    unicast discovery to ``peers``, bound to ``interface``) and gives the same
    one to every module process of its node (see ``hardpoint_runtime._dds_config``).
    """

    #: Network interface DDS binds to: a name (``eth0``) or one of the host's IP addresses.
    interface: str = "lo"
    #: Addresses (or host names) that discovery is sent to: every node of the platform, this one included.
    peers: tuple[str, ...] = ("127.0.0.1",)
    #: Participant lease: a node silent for longer is forgotten, with its unacknowledged reliable samples.
    lease_duration_s: float = Field(default=10.0, gt=0)
    #: A complete Cyclone DDS XML file to use instead; excludes the three keys above.
    config: ConfigPath | None = None

    @field_validator("interface")
    @classmethod
    def _interface_name(cls, value: str) -> str:
        if _ip_version(value) is None and re.fullmatch(_INTERFACE_NAME, value) is None:
            raise ValueError(f"{value!r} is neither an interface name (such as 'eth0') nor an IP address")
        return value

    @field_validator("peers")
    @classmethod
    def _peer_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("lists no peer; discovery needs at least this node's own address")
        for peer in value:
            if _ip_version(peer) is None and re.fullmatch(_HOST_NAME, peer) is None:
                raise ValueError(f"{peer!r} is neither an IP address nor a host name (write no port)")
        if len(set(value)) != len(value):
            raise ValueError("lists a peer twice")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        if self.config is not None:
            if not self.config.is_file():
                problems.append((("config",), f"file not found: {self.config}"))
            for name in ("interface", "peers", "lease_duration_s"):
                if name in self.model_fields_set:
                    problems.append(((name,), "cannot be combined with dds.config (the file says everything)"))
        versions = {_ip_version(a) for a in (self.interface, *self.peers)} - {None}
        if len(versions) > 1:
            problems.append((("peers",), "mixes IPv4 and IPv6 addresses; DDS runs on one of them"))
        _raise_if(problems)
        return self

    @property
    def is_default(self) -> bool:
        """True when nothing is set: the SDK's packaged loopback configuration applies."""
        return not self.model_fields_set


class SupervisionSection(_Model):
    """``[supervision]``: restart policy and deadlines for every module."""

    #: At most this many restarts within ``restart_period_s``; one more marks the module failed.
    restart_intensity: int = Field(default=5, ge=0)
    restart_period_s: float = Field(default=30.0, gt=0)
    #: First restart delay; doubled at each restart up to ``backoff_max_s``.
    backoff_initial_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)
    #: A module whose last heartbeat is older than this is restarted.
    heartbeat_deadline_s: float = Field(default=3.0, gt=0)
    #: Time a module gets to stop after being asked, before it is killed.
    stop_timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.backoff_max_s < self.backoff_initial_s:
            _raise_if([(("backoff_max_s",), f"must be at least backoff_initial_s ({self.backoff_initial_s} s)")])
        return self


class UpdateSection(_Model):
    """``[update]``: where signed module releases come from and how a new version is judged.

    Exactly one source: an HTTP mirror (``url``) or a directory (``directory``, removable media).
    See ``spec/update.md`` (UPD-CFG-*).
    """

    #: Base URL of the repository (``<url>metadata/`` and ``<url>targets/``); loopback or an operator's mirror.
    url: str | None = None
    #: A copy of the repository in a directory (``metadata/`` and ``targets/``), for air-gapped platforms.
    directory: ConfigPath | None = None
    #: The initial trusted root (``root.json``) the platform authority handed over; needed once.
    trusted_root: ConfigPath | None = None
    #: Trusted TUF metadata kept between runs; default ``<state_dir>/update/metadata``.
    metadata_dir: ConfigPath | None = None
    #: Verified downloads; default ``<state_dir>/update/downloads``.
    download_dir: ConfigPath | None = None
    #: Time a staged version gets to be healthy and publish every provided interface.
    gate_timeout_s: float = Field(default=20.0, gt=0)
    #: Time the new version is watched after the switch before the old one is stopped.
    probation_s: float = Field(default=10.0, ge=0)
    #: Restarts of the new version tolerated during probation (one more rolls back).
    probation_restarts: int = Field(default=0, ge=0)
    #: Refuse a release whose signed conformance evidence is missing or not acceptable (issue 6).
    require_evidence: StrictBool = False
    #: Public keys (files) whose signatures on conformance evidence are trusted.
    conformance_keys: tuple[ConfigPath, ...] = ()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and re.match(r"^https?://[^/\s]+(/\S*)?$", value) is None:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value if value is None or value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        if (self.url is None) == (self.directory is None):
            which = "both are set" if self.url is not None else "neither is set"
            problems.append((("url",), f"give exactly one of update.url and update.directory ({which})"))
        if self.directory is not None and not self.directory.is_dir():
            problems.append((("directory",), f"folder not found: {self.directory}"))
        if self.trusted_root is not None and not self.trusted_root.is_file():
            problems.append((("trusted_root",), f"file not found: {self.trusted_root}"))
        if self.require_evidence and not self.conformance_keys:
            problems.append((("conformance_keys",), "required when require_evidence is true: no key to trust"))
        for i, key in enumerate(self.conformance_keys):
            if not key.is_file():
                problems.append((("conformance_keys", i), f"file not found: {key}"))
        _raise_if(problems)
        return self


class ModuleEntry(_Model):
    """One ``[[modules]]`` entry: a module the platform runs."""

    #: Module name, as in the module's manifest.
    name: str = Field(pattern=_MODULE_NAME)
    #: PEP 440 version specifier (``">=1.2,<2"``); empty accepts any installed version.
    version: str = ""
    #: Node that runs the module; default: the platform's ``node``.
    node: str | None = Field(default=None, pattern=_NODE_NAME)
    #: Overrides the manifest's isolation.
    isolation: Literal["process", "in-process"] | None = None
    #: Free table handed to the module's ``on_configure``.
    config: dict[str, Any] = Field(default_factory=dict)
    #: A disabled entry stays in the file but is neither resolved nor started.
    enabled: StrictBool = True

    @field_validator("version")
    @classmethod
    def _pep440_specifier(cls, value: str) -> str:
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise ValueError(f"{value!r} is not a PEP 440 version specifier (for example '>=1.2,<2')") from None
        return value

    @property
    def specifier(self) -> SpecifierSet:
        """The version constraint as a :class:`packaging.specifiers.SpecifierSet`."""
        return SpecifierSet(self.version)


class BaselineEntry(_Model):
    """One ``[[baseline]]`` entry: a module distribution the platform authority vouches for (RT-PROV-001).

    The factory image: modules installed with the runtime rather than through signed updates. With
    ``update.require_evidence``, such a module runs only when it is named here with its digest.
    """

    #: Module name (its entry point in ``hardpoint.modules``).
    name: str = Field(pattern=_MODULE_NAME)
    #: Its distribution's version, exactly.
    version: str = Field(min_length=1)
    #: ``sha256:<64 hex digits>`` of its RECORD file (``hardpoint baseline`` prints it).
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class AdapterBinding(_Model):
    """``[adapters.<name>]``: binds an abstract device to a driver or a simulator."""

    #: Entry-point name in the group ``hardpoint.adapters``.
    driver: str = Field(min_length=1, pattern=r"^\S+$")
    #: Free table handed to the driver.
    config: dict[str, Any] = Field(default_factory=dict)


class PlatformConfig(_Model):
    """The whole platform configuration file."""

    platform: PlatformSection
    #: Node that runs modules without a ``node`` placement (and the daemon's node unless told otherwise).
    node: str = Field(default=DEFAULT_NODE, pattern=_NODE_NAME)
    #: The platform's nodes; when given, every placement must name one of them.
    nodes: tuple[Annotated[str, Field(pattern=_NODE_NAME)], ...] | None = None
    management: ManagementSection = Field(default_factory=ManagementSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    supervision: SupervisionSection = Field(default_factory=SupervisionSection)
    dds: DdsSection = Field(default_factory=DdsSection)
    #: Signed updates; None when the platform takes none.
    update: UpdateSection | None = None
    modules: tuple[ModuleEntry, ...] = ()
    #: Module distributions vouched for without signed updates (the factory image), RT-PROV-001.
    baseline: tuple[BaselineEntry, ...] = ()
    adapters: dict[Annotated[str, Field(pattern=_ADAPTER_NAME)], AdapterBinding] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _socket_in_state_dir(cls, data: Any) -> Any:
        # The socket's default depends on another field (state_dir); filling it
        # in on the raw data keeps the field a plain, always-set Path.
        if not isinstance(data, Mapping):
            return data
        platform = data.get("platform", {})
        management = data.get("management", {})
        if not isinstance(platform, Mapping) or not isinstance(management, Mapping) or "socket" in management:
            return data
        state_dir = platform.get("state_dir", "state")
        if not isinstance(state_dir, str | PurePath):
            return data
        return {**data, "management": {**management, "socket": str(PurePath(state_dir) / SOCKET_NAME)}}

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        _raise_if([*self._duplicate_modules(), *self._placement_problems()])
        return self

    def _duplicate_modules(self) -> Iterator[tuple[Loc, str]]:
        first: dict[str, int] = {}
        for i, entry in enumerate(self.modules):
            if entry.name in first:
                yield (
                    ("modules", i, "name"),
                    f"module {entry.name!r} is listed twice (first: modules[{first[entry.name]}])",
                )
            else:
                first[entry.name] = i

    def _placement_problems(self) -> Iterator[tuple[Loc, str]]:
        if self.nodes is None:
            return
        if len(set(self.nodes)) != len(self.nodes):
            yield ("nodes",), "lists a node twice"
        known = ", ".join(repr(n) for n in self.nodes)
        if self.node not in self.nodes:
            yield ("node",), f"node {self.node!r} is not in nodes ({known})"
        for i, entry in enumerate(self.modules):
            if entry.node is not None and entry.node not in self.nodes:
                yield ("modules", i, "node"), f"node {entry.node!r} is not in nodes ({known})"

    def node_of(self, entry: ModuleEntry) -> str:
        """The node that runs ``entry``.

        :param entry: one of :attr:`modules`.
        """
        return entry.node if entry.node is not None else self.node

    def module(self, name: str) -> ModuleEntry:
        """The entry named ``name``.

        :param name: module name.
        :raises KeyError: no such entry.
        """
        for entry in self.modules:
            if entry.name == name:
                return entry
        raise KeyError(name)

    @property
    def enabled_modules(self) -> tuple[ModuleEntry, ...]:
        """Entries to resolve and run (``enabled = true``), on every node."""
        return tuple(e for e in self.modules if e.enabled)


def split_host_port(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6addr]:port`` for IPv6).

    :param value: the endpoint as written.
    :raises ValueError: not ``host:port`` with a port in 1..65535.
    """
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{value!r} is not 'host:port' with a port in 1..65535 (IPv6: '[::1]:50051')")
    return host, int(port)


def is_loopback(address: str) -> bool:
    """True for ``localhost`` and loopback IP addresses; host names other than ``localhost`` are not trusted.

    :param address: host name or IP address.
    """
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> PlatformConfig:
    """Read and validate a platform configuration file.

    :param path: the TOML file; relative paths inside it are relative to its folder.
    :raises ConfigError: the file cannot be read, is not TOML, or is not a valid configuration;
        the error lists every problem with its line and field.
    """
    shown = str(path)
    try:
        source = Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError.single(shown, f"cannot read the configuration: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError.single(shown, f"not UTF-8 text (byte {e.start})") from e
    return parse_config(source, origin=shown, base_dir=Path(path).parent.absolute())


def parse_config(source: str, *, origin: str = "<config>", base_dir: Path | None = None) -> PlatformConfig:
    """Validate configuration text.

    :param source: TOML text.
    :param origin: name of the file, used in error messages.
    :param base_dir: folder that relative paths are relative to; None leaves them as written.
    :raises ConfigError: the text is not TOML or not a valid configuration.
    """
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        line, reason = _toml_error_position(e, source)
        raise ConfigError.single(origin, f"invalid TOML: {reason}", line=line) from e
    context = {_CONTEXT_BASE_DIR: base_dir} if base_dir is not None else None
    try:
        return PlatformConfig.model_validate(data, context=context)
    except ValidationError as e:
        locator = TomlLocator(source)
        problems = [
            ConfigProblem(path=origin, line=locator.line(loc), field=format_loc(loc), reason=reason)
            for loc, reason in _problems_from(e.errors())
        ]
        # File order reads best; problems without a line go last.
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems) from None


_TOML_POSITION_RE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_END_RE: Final = re.compile(r"\s*\(at end of document\)$")


def _toml_error_position(error: tomllib.TOMLDecodeError, source: str) -> tuple[int | None, str]:
    """Line and reason of a TOML syntax error.

    Python 3.11 to 3.13 put the position only in the message text
    (``"Invalid value (at line 3, column 8)"``); 3.14 adds attributes.
    """
    message = str(error)
    match = _TOML_POSITION_RE.search(message)
    if match is not None:
        reason = message[: match.start()]
        return int(match.group(1)), f"{reason[:1].lower()}{reason[1:]} (column {match.group(2)})"
    match = _TOML_END_RE.search(message)
    if match is not None:
        reason = message[: match.start()]
        return max(1, source.count("\n") + (0 if source.endswith("\n") else 1)), f"{reason[:1].lower()}{reason[1:]}"
    return None, message


def _problems_from(errors: Sequence[ErrorDetails]) -> Iterator[tuple[Loc, str]]:
    """(location, reason) for each pydantic error, unpacking our cross-field problems."""
    for err in errors:
        loc: Loc = tuple(err["loc"])
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, _LocatedProblems):
            for inner, reason in cause.problems:
                yield loc + inner, reason
        else:
            yield loc, _reason(err, loc)


def _reason(err: ErrorDetails, loc: Loc) -> str:
    """pydantic's message, made to read as a sentence about a configuration file."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return _unknown_field(loc)
    if kind == "missing":
        return "required field is missing"
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, str | int | float | bool) and repr(value) not in message:
        message = f"{message} (got {value!r})"
    return message


def _unknown_field(loc: Loc) -> str:
    """``unknown field 'colour'``, with the closest allowed name or the list of allowed names."""
    name = str(loc[-1])
    reason = f"unknown field {name!r}"
    model = _model_at(loc[:-1])
    if model is None:
        return reason
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"{reason} (did you mean {close[0]!r}?)"
    if len(loc) > 1 and name in PlatformConfig.model_fields:
        # The classic TOML slip: a top-level key written after a [table] header belongs to that table.
        return f"{reason} ({name!r} is a top-level key: write it above the first [table] header)"
    return f"{reason} (allowed: {', '.join(allowed)})"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class at ``loc`` inside :class:`PlatformConfig`, following lists, tuples and dicts."""
    current: Any = PlatformConfig
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (list, tuple) and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the one type inside."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def format_loc(loc: Sequence[str | int]) -> str:
    """``("modules", 2, "version")`` -> ``modules[2].version``; odd keys are quoted.

    :param loc: a pydantic error location.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out += f".{key}" if out else key
    return out


# --------------------------------------------------------------------------- locating fields in TOML text


class TomlLocator:
    """Finds the line of a field in TOML text, for error messages.

    It indexes every table header (``[a.b]``, ``[[modules]]``, numbered per
    array: the third ``[[modules]]`` is ``("modules", 2)``) and every key, and
    answers with the line of the deepest indexed prefix of a location: the key
    itself, else the header of its table, else the line of the enclosing key
    (for values written inline: ``modules = [{...}, {...}]``). The text must
    already be valid TOML; this is a locator, not a parser.
    """

    def __init__(self, source: str) -> None:
        """:param source: TOML text that ``tomllib`` accepts."""
        self._lines = _index_lines(source)

    def line(self, loc: Sequence[str | int]) -> int | None:
        """1-based line for ``loc``, or None when not even its first part is in the text.

        :param loc: a pydantic error location, such as ``("modules", 2, "version")``.
        """
        for n in range(len(loc), 0, -1):
            found = self._lines.get(tuple(loc[:n]))
            if found is not None:
                return found
        return None


def _index_lines(source: str) -> dict[Loc, int]:
    index: dict[Loc, int] = {}
    arrays: dict[Loc, int] = {}  # array-of-tables path -> tables seen so far
    table: Loc = ()
    value = _ValueScanner()
    for lineno, raw in enumerate(source.splitlines(), start=1):
        if value.open:  # continuation of a multi-line array or string
            value.feed(raw)
            continue
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("[["):
            keys, _ = _parse_key(text, 2, "]]")
            table = _array_table_path(keys, arrays)
        elif text.startswith("["):
            keys, _ = _parse_key(text, 1, "]")
            table = _table_path(keys, arrays)
        else:
            keys, end = _parse_key(text, 0, "=")
            _add_prefixes(index, table + keys, lineno, start=len(table) + 1)
            value.feed(text[end:])
            continue
        _add_prefixes(index, table, lineno, start=1)
    return index


def _add_prefixes(index: dict[Loc, int], path: Loc, lineno: int, *, start: int) -> None:
    # setdefault: the first mention of a path is where it is defined.
    for n in range(start, len(path) + 1):
        index.setdefault(path[:n], lineno)


def _table_path(keys: Loc, arrays: Mapping[Loc, int]) -> Loc:
    """Path of ``[a.b]``: a key that names an array of tables means its last table."""
    path: Loc = ()
    for key in keys:
        path += (key,)
        if path in arrays:
            path += (arrays[path] - 1,)
    return path


def _array_table_path(keys: Loc, arrays: dict[Loc, int]) -> Loc:
    """Path of ``[[a.b]]``, counting it as one more table of that array."""
    if not keys:
        return ()
    array = (*_table_path(keys[:-1], arrays), keys[-1])
    arrays[array] = arrays.get(array, 0) + 1
    return (*array, arrays[array] - 1)


_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


def _parse_key(text: str, pos: int, terminator: str) -> tuple[Loc, int]:
    """Parse a dotted key starting at ``pos`` up to ``terminator``.

    :returns: the key parts, and the index just after the terminator.
    """
    parts: list[str | int] = []
    while pos < len(text):
        pos = _skip_spaces(text, pos)
        if text.startswith(terminator, pos):
            return tuple(parts), pos + len(terminator)
        if text[pos] == ".":
            pos += 1
            continue
        if text[pos] in "\"'":
            end = _string_end(text, pos)
            # tomllib decodes the quoted key exactly as it did when parsing the file.
            parts.append(tomllib.loads(f"k = {text[pos:end]}")["k"])
            pos = end
            continue
        match = _BARE_KEY_RE.match(text, pos)
        if match is None:
            break
        parts.append(match.group())
        pos = match.end()
    return tuple(parts), len(text)


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _string_end(text: str, pos: int) -> int:
    """Index just after the one-line string that opens at ``pos`` (basic or literal)."""
    quote = text[pos]
    i = pos + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return len(text)


@dataclass
class _ValueScanner:
    """Tracks whether a value goes on past the end of its line (multi-line array or string)."""

    depth: int = 0
    multiline: str | None = None

    @property
    def open(self) -> bool:
        return self.depth > 0 or self.multiline is not None

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            if self.multiline is not None:
                i = self._in_multiline(text, i)
                continue
            ch = text[i]
            if ch == "#":
                return
            if text.startswith(('"""', "'''"), i):
                self.multiline = text[i : i + 3]
                i += 3
            elif ch in "\"'":
                i = _string_end(text, i)
            else:
                self.depth += (ch in "[{") - (ch in "]}")
                i += 1

    def _in_multiline(self, text: str, i: int) -> int:
        assert self.multiline is not None
        if self.multiline == '"""' and text[i] == "\\":
            return i + 2
        if text.startswith(self.multiline, i):
            # A closing delimiter may carry up to two more quotes that belong to the string.
            end = i + 3
            while end < len(text) and end < i + 5 and text[end] == self.multiline[0]:
                end += 1
            self.multiline = None
            return end
        return i + 1
