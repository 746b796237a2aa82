"""What ``hardpoint new module`` writes: the files of a new module project, as text.

Pure: :func:`plan_module` validates the request against the interface set and
:func:`render_module` turns it into ``{relative path: content}``; writing them is
:mod:`hardpoint_runtime._new_cli`'s job. The templates are package data
(``hardpoint_runtime/templates/module/*.tmpl``, :class:`string.Template` syntax);
the parts that depend on the interfaces (publishers, subscriptions, the example
content of each provided interface) are generated here from the contracts, so a
module scaffolded for any interface publishes valid content at the contract's
nominal rate.
"""

from __future__ import annotations

import keyword
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from string import Template
from typing import TYPE_CHECKING, Any, Final, cast

from hardpoint_runtime._errors import HardpointRuntimeError

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor, FieldDescriptor

    from hardpoint import InterfaceSpec

__all__ = [
    "DEFAULT_PROVIDES",
    "ModulePlan",
    "ScaffoldError",
    "plan_module",
    "render_module",
]

#: What a new module provides when ``--provides`` is not given: periodic, keyed, simple.
DEFAULT_PROVIDES: Final = ("hardpoint.nav.v1.NavState",)
#: Version of a new module (the pyproject's and the manifest's; they must stay equal).
INITIAL_VERSION: Final = "0.1.0"
#: A module name (the manifest's rule, ``hardpoint.Manifest.name``).
_MODULE_NAME: Final = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
#: A supplier name: the update repository's rule for a supplier role (``hardpoint release add-supplier``).
_SUPPLIER_NAME: Final = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
#: Interfaces no module provides itself: the SDK publishes the heartbeat for every module.
_SDK_PUBLISHED: Final = frozenset({"hardpoint.core.v1.ModuleHealth"})
_TEMPLATES: Final = "templates/module"


class ScaffoldError(HardpointRuntimeError):
    """A ``hardpoint new module`` request that cannot be carried out (bad name, unknown interface, non-empty dir)."""


@dataclass(frozen=True, slots=True)
class ModulePlan:
    """A validated request for a new module project."""

    #: Module name: the manifest's ``name`` and the entry point's.
    name: str
    #: Import package (``name`` with ``-`` as ``_``).
    package: str
    #: Distribution name on PyPI / in the wheel (``name`` with ``_`` as ``-``).
    distribution: str
    #: Class name of the module object.
    class_name: str
    supplier: str
    provides: tuple[str, ...]
    requires: tuple[str, ...]


def _class_name(package: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in package.split("_") if part) + "Module"


def _check_name(name: str) -> str:
    """The import package of module ``name``, or ScaffoldError saying what is wrong with the name."""
    if not _MODULE_NAME.match(name):
        raise ScaffoldError(
            f"module name {name!r} is not valid: lower case letters, digits, '-' and '_', starting with a letter, "
            "at most 63 characters (for example 'acme_nav')"
        )
    package = name.replace("-", "_")
    clash = (
        "a Python keyword"
        if keyword.iskeyword(package)
        else "the standard library"
        if package in sys.stdlib_module_names
        else "the hardpoint packages"
        if package.startswith("hardpoint")
        else ""
    )
    if clash:
        raise ScaffoldError(
            f"module name {name!r} would make the Python package {package!r}, which clashes with {clash}; "
            "choose another name (for example prefix it with your company: 'acme_nav')"
        )
    return package


def _check_interfaces(names: Sequence[str], role: str, interfaces: Mapping[str, InterfaceSpec]) -> tuple[str, ...]:
    seen: list[str] = []
    for name in names:
        if name not in interfaces:
            short = name.rsplit(".", 1)[-1].lower()
            close = [known for known in interfaces if known.rsplit(".", 1)[-1].lower() == short]
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known interfaces: {', '.join(interfaces)}"
            raise ScaffoldError(f"--{role} {name}: not an interface of the platform interface set{hint}")
        if name in seen:
            raise ScaffoldError(f"--{role} {name}: listed twice")
        seen.append(name)
    return tuple(seen)


def plan_module(
    name: str,
    *,
    supplier: str,
    provides: Sequence[str],
    requires: Sequence[str],
    interfaces: Mapping[str, InterfaceSpec],
) -> ModulePlan:
    """Validate a request for a new module against ``interfaces`` (:func:`hardpoint.all_interfaces`).

    :raises ScaffoldError: a bad module or supplier name, an unknown interface, one listed twice or in both
        lists, an interface only the SDK publishes, or nothing provided or required at all.
    """
    package = _check_name(name)
    if not _SUPPLIER_NAME.match(supplier):
        raise ScaffoldError(
            f"supplier {supplier!r} is not valid: lower case letters, digits, '-' and '_', starting with a letter "
            "(it names your signing role in the update repository: hardpoint release add-supplier)"
        )
    provided = _check_interfaces(provides, "provides", interfaces)
    required = _check_interfaces(requires, "requires", interfaces)
    both = sorted(set(provided) & set(required))
    if both:
        raise ScaffoldError(f"{', '.join(both)}: both provided and required; a module does one or the other")
    sdk = sorted(set(provided) & _SDK_PUBLISHED)
    if sdk:
        raise ScaffoldError(f"--provides {', '.join(sdk)}: published by the SDK's heartbeat for every module")
    if not provided and not required:
        raise ScaffoldError("the module neither provides nor requires an interface: give --provides or --requires")
    return ModulePlan(
        name=name,
        package=package,
        distribution=name.replace("_", "-"),
        class_name=_class_name(package),
        supplier=supplier,
        provides=provided,
        requires=required,
    )


# -- code generation from the contracts -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Iface:
    """How the generated code refers to one interface."""

    spec: InterfaceSpec
    #: ``nav_pb2`` (imported as ``from hardpoint.nav.v1 import nav_pb2``).
    pb2: str
    pb2_import: str
    #: ``nav_pb2.NavState``.
    type_ref: str
    #: ``nav_state``: stem of attribute and method names.
    snake: str


def _snake(message: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", message).lower()


def _iface(spec: InterfaceSpec, taken: set[str]) -> _Iface:
    module = spec.message_type.__module__  # hardpoint.nav.v1.nav_pb2
    parent, pb2 = module.rsplit(".", 1)
    message = spec.name.rsplit(".", 1)[-1]
    # NavState -> nav_state; the major is added when two majors of one message meet in one module.
    snake = _snake(message)
    if snake in taken:
        snake = f"{snake}_v{spec.major}"
    taken.add(snake)
    return _Iface(spec, pb2, f"from {parent} import {pb2}", f"{pb2}.{message}", snake)


def _ifaces(names: Iterable[str], interfaces: Mapping[str, InterfaceSpec], taken: set[str]) -> list[_Iface]:
    return [_iface(interfaces[name], taken) for name in names]


def _constraint(fd: FieldDescriptor) -> Any | None:
    from hardpoint.core.v1 import contract_pb2

    opts = fd.GetOptions()
    return opts.Extensions[contract_pb2.constraint] if opts.HasExtension(contract_pb2.constraint) else None


def _config_field(key: str) -> str:
    return f'{key}: str = Field(default="{key}", min_length=1)'


def _example_lines(descriptor: Descriptor, target: str, keys: tuple[str, ...], depth: int = 0) -> list[str]:
    """Assignments that make ``target`` (a message of ``descriptor``) satisfy every field constraint.

    Required strings get the configured key (key fields) or the module name; required enums their
    first non-zero value; required times the bus clock; numbers outside their range its bound;
    required sub-messages are set and filled the same way.
    """
    from google.protobuf.descriptor import FieldDescriptor as FD

    lines: list[str] = []
    for fd in descriptor.fields:
        c = _constraint(fd)
        required = bool(c is not None and c.required)
        low = c.min if c is not None and c.HasField("min") else None
        high = c.max if c is not None and c.HasField("max") else None
        where = f"{target}.{fd.name}"
        if fd.message_type is not None:
            if required and not fd.is_repeated and depth < 4:
                lines.append(f"{where}.SetInParent()  # required")
                lines += _example_lines(fd.message_type, where, (), depth + 1)
            elif required:
                lines.append(f"{where}.add()  # required: at least one")
            continue
        if fd.is_repeated:
            continue
        if fd.type == FD.TYPE_STRING and (required or fd.name in keys):
            value = f"self.cfg.{fd.name}" if depth == 0 and fd.name in keys else "self.ctx.name"
            lines.append(f"{where} = {value}{'  # key' if fd.name in keys else '  # required'}")
        elif fd.type == FD.TYPE_ENUM and required:
            lines.append(f"{where} = {_enum_value(fd)}  # required")
        elif fd.type in (FD.TYPE_INT64, FD.TYPE_UINT64, FD.TYPE_SINT64, FD.TYPE_FIXED64, FD.TYPE_SFIXED64) and (
            required and fd.name.endswith("_ns")
        ):
            lines.append(f"{where} = self.ctx.now_ns()  # required")
        elif fd.type == FD.TYPE_BOOL and required:
            lines.append(f"{where} = True  # required")
        elif required or (low is not None and low > 0) or (high is not None and high < 0):
            bound = float(low if low is not None and low > 0 else high if high is not None and high < 0 else 1)
            number = repr(bound) if fd.cpp_type in (fd.CPPTYPE_DOUBLE, fd.CPPTYPE_FLOAT) else str(int(bound))
            lines.append(f"{where} = {number}  # {'required' if required else 'within its range'}")
    return lines


def _enum_value(fd: FieldDescriptor) -> str:
    """The first non-zero value of an enum field, as generated code spells it (``alert_pb2.ALERT_STATE_RAISED``)."""
    enum = fd.enum_type
    assert enum is not None  # only called for enum fields
    first = next(v for v in enum.values if v.number != 0)
    scope = _pb2_module_of(enum.file.name)
    if enum.containing_type is not None:  # a nested enum's values live on its message class
        scope += "." + enum.containing_type.full_name.removeprefix(enum.file.package + ".")
    return f"{scope}.{first.name}"


def _pb2_module_of(proto_file: str) -> str:
    """``hardpoint/nav/v1/nav.proto`` -> ``nav_pb2`` (the generated module's short name)."""
    return proto_file.rsplit("/", 1)[-1].removesuffix(".proto") + "_pb2"


def _pb2_import_of(proto_file: str) -> str:
    parent = proto_file.rsplit("/", 1)[0].replace("/", ".")
    return f"from {parent} import {_pb2_module_of(proto_file)}"


def _enum_files(descriptor: Descriptor, depth: int = 0) -> set[str]:
    out: set[str] = set()
    for fd in descriptor.fields:
        c = _constraint(fd)
        required = bool(c is not None and c.required)
        if fd.message_type is not None and required and not fd.is_repeated and depth < 4:
            out |= _enum_files(fd.message_type, depth + 1)
        elif fd.enum_type is not None and required and not fd.is_repeated:
            out.add(fd.enum_type.file.name)
    return out


# -- the example content: NavState (the default) gets a moving platform, the rest the generic fill ----

_NAV_STATE: Final = "hardpoint.nav.v1.NavState"

_NAV_CONFIG: Final = (
    'platform_id: str = Field(default="own", min_length=1)',
    "#: A receiver solution older than this is a lost one (s).",
    "stale_after_s: float = Field(default=1.0, gt=0)",
)

#: Adapters a module providing NavState asks for: its navigation comes from the platform's GNSS/INS receiver.
_NAV_ADAPTERS: Final = ("gnss",)

_NAV_CONSTANTS: Final = {
    "FIX_QUALITY": """#: GnssFix.fix (hardpoint.adapters) -> NavState.fix_quality.
FIX_QUALITY: Final[dict[str, nav_pb2.FixQuality.ValueType]] = {
    "none": nav_pb2.FIX_QUALITY_NONE,
    "2d": nav_pb2.FIX_QUALITY_2D,
    "3d": nav_pb2.FIX_QUALITY_3D,
    "dgnss": nav_pb2.FIX_QUALITY_DGNSS,
    "rtk_float": nav_pb2.FIX_QUALITY_RTK_FLOAT,
    "rtk_fixed": nav_pb2.FIX_QUALITY_RTK_FIXED,
    "dead_reckoning": nav_pb2.FIX_QUALITY_DEAD_RECKONING,
    "ins_only": nav_pb2.FIX_QUALITY_INS_ONLY,
}""",
}

_NAV_INIT: Final = (
    "#: The last good position (latitude, longitude, height), repeated while the solution is lost.",
    "self._last_position: tuple[float, float, float] = (0.0, 0.0, 0.0)",
    "#: Time of validity of the last NavState built (the receiver solution's time).",
    "self._nav_valid_ns = 0",
)

_NAV_CONFIGURE: Final = (
    'gnss = ctx.adapters.get("gnss")',
    "if not isinstance(gnss, GnssReceiver):",
    "    raise TypeError(f\"module {ctx.name!r}: adapter 'gnss' must be a GnssReceiver, not {type(gnss).__name__}\")",
    "self.gnss: GnssReceiver = gnss",
)

_NAV_PUBLISH: Final = '''\
    def publish_nav_state(self) -> None:
        """Publish one hardpoint.nav.v1.NavState (at its contract rate), valid when the receiver's solution was."""
        msg = self.build_nav_state()
        self.nav_state_pub.publish(msg, time_of_validity_ns=self._nav_valid_ns)
        self.published_nav_state += 1
'''

_NAV_BUILD: Final = '''\
    def build_nav_state(self) -> nav_pb2.NavState:
        """One NavState: the solution of the platform's GNSS/INS receiver (the ``gnss`` adapter).

        Replace or extend this with your navigation solution (your filter, your sensors). It must be
        the platform's own position, velocity and attitude: the reference sensors geo-reference their
        tracks with it, and the conformance suite checks that they land on the targets. Keep every
        field within the contract (``spec/interfaces.md``, IF-NAV-STATE-FIELD-*). Without a solution
        it keeps publishing, saying so (IF-NAV-STATE-SEM): fix_quality NONE at the last position.
        """
        now = self.ctx.now_ns()
        fix = self.gnss.read()
        quality = nav_pb2.FIX_QUALITY_NONE if fix is None else FIX_QUALITY.get(fix.fix, nav_pb2.FIX_QUALITY_NONE)
        if fix is None or quality == nav_pb2.FIX_QUALITY_NONE or (now - fix.time_ns) / 1e9 > self.cfg.stale_after_s:
            self._nav_valid_ns = now
            lat, lon, height = self._last_position
            self.ctx.set_health("degraded", "no navigation solution from the GNSS receiver")
            return nav_pb2.NavState(
                platform_id=self.cfg.platform_id,
                position=geo_pb2.GeoPosition(latitude_deg=lat, longitude_deg=lon, height_hae_m=height),
                fix_quality=nav_pb2.FIX_QUALITY_NONE,
            )
        self._nav_valid_ns = fix.time_ns
        self._last_position = (fix.latitude_deg, fix.longitude_deg, fix.height_m)
        self.ctx.set_health("ok")
        msg = nav_pb2.NavState(
            platform_id=self.cfg.platform_id,
            position=geo_pb2.GeoPosition(
                latitude_deg=fix.latitude_deg, longitude_deg=fix.longitude_deg, height_hae_m=fix.height_m
            ),
            velocity=geo_pb2.VelocityNed(north_mps=fix.north_mps, east_mps=fix.east_mps, down_mps=fix.down_mps),
            attitude=geo_pb2.Attitude(
                roll_rad=math.atan2(math.sin(fix.roll_rad), math.cos(fix.roll_rad)),
                pitch_rad=max(-math.pi / 2, min(math.pi / 2, fix.pitch_rad)),
                yaw_rad=math.atan2(math.sin(fix.yaw_rad), math.cos(fix.yaw_rad)),
            ),
            fix_quality=quality,
            satellites_used=max(0, min(255, fix.satellites)),
        )
        stds = (fix.horizontal_std_m, fix.vertical_std_m, fix.velocity_std_mps, fix.heading_std_rad)
        if all(math.isfinite(std) and std >= 0 for std in stds):
            msg.accuracy.CopyFrom(
                nav_pb2.NavAccuracy(
                    horizontal_position_std_m=fix.horizontal_std_m,
                    vertical_position_std_m=fix.vertical_std_m,
                    velocity_std_mps=fix.velocity_std_mps,
                    heading_std_rad=fix.heading_std_rad,
                )
            )
        return msg
'''


_ALERT: Final = "hardpoint.alert.v1.Alert"
#: Aperiodic interfaces the generated module publishes when it activates: its state, announced (a Zone it watches).
_ON_ACTIVATION: Final = frozenset({"hardpoint.alert.v1.Zone"})
#: How often the generated alert module looks for conditions that ended (s).
_ALERT_SWEEP_S: Final = 1.0


def _watched(required: Sequence[_Iface]) -> _Iface | None:
    """The required interface whose samples the example alert condition watches: the first one with a string key."""
    for i in required:
        fields = _descriptor(i.spec).fields_by_name
        if i.spec.key and all(fields[k].type == fields[k].TYPE_STRING for k in i.spec.key):
            return i
    return None


def _alert_category(watched: _Iface | None) -> str:
    if watched is None:
        return "alert_pb2.ALERT_CATEGORY_SYSTEM"
    package = watched.spec.name.rsplit(".", 1)[0]
    if package == "hardpoint.track.v1":
        return "alert_pb2.ALERT_CATEGORY_THREAT"
    if package == "hardpoint.nav.v1":
        return "alert_pb2.ALERT_CATEGORY_NAVIGATION"
    return "alert_pb2.ALERT_CATEGORY_SYSTEM"


def _alert_config(watched: _Iface | None) -> list[str]:
    if watched is None:
        return []
    name = watched.spec.name.rsplit(".", 1)[-1]
    return [
        f"#: A {name} key not heard of for this long has ended: its alert is cleared (s).",
        "clear_after_s: float = Field(default=5.0, gt=0)",
    ]


def _alert_init(watched: _Iface | None) -> list[str]:
    lines = ["#: Alerts raised so far (numbers the alert ids).", "self._alerts_raised = 0"]
    if watched is None:
        return [
            *lines,
            "#: The alert raised at activation, until it is cleared.",
            "self._alert: alert_pb2.Alert | None = None",
        ]
    name = watched.spec.name.rsplit(".", 1)[-1]
    return [
        *lines,
        f"#: Alerts raised and not cleared yet, by the key of the {name} they are about.",
        "self._alerts: dict[str, alert_pb2.Alert] = {}",
        "#: When each of those keys was last heard of (bus clock, ns).",
        "self._heard_ns: dict[str, int] = {}",
        "#: Conditions are assessed only while active (nothing is published before on_activate).",
        "self._active = False",
    ]


def _alert_activate(watched: _Iface | None) -> list[str]:
    if watched is None:
        return ["self.raise_alert()"]
    return ["self._active = True", f"self._timers.append(ctx.every({_ALERT_SWEEP_S!r}, self.clear_ended_alerts))"]


def _alert_deactivate(watched: _Iface | None) -> list[str]:
    return ["self.clear_alert()"] if watched is None else ["self._active = False"]


def _alert_methods(watched: _Iface | None) -> list[str]:
    """The Alert of the scaffold, published on an example condition it can observe (never only "on demand").

    With a required interface it watches that interface's keys: a key not seen before raises an Alert, one not
    heard of for ``clear_after_s`` clears it. Without one, the condition is the module's own activation.
    """
    publish = '''\
    def publish_alert(self, msg: alert_pb2.Alert) -> None:
        """Publish one hardpoint.alert.v1.Alert (aperiodic: when its condition begins, changes or ends)."""
        self.alert_pub.publish(msg)
        self.published_alert += 1
'''
    if watched is None:
        return [
            publish,
            '''\
    def raise_alert(self) -> None:
        """The example condition, as generated: the module is active. Replace it with yours (a fault, a threat)."""
        self._alerts_raised += 1
        self._alert = alert_pb2.Alert(
            alert_id=f"{self.ctx.name}/{self._alerts_raised}",
            state=alert_pb2.ALERT_STATE_RAISED,
            severity=alert_pb2.ALERT_SEVERITY_ADVISORY,
            category=alert_pb2.ALERT_CATEGORY_SYSTEM,
            text=f"{self.ctx.name} is active",
            raised_time_ns=self.ctx.now_ns(),
        )
        self.publish_alert(self._alert)

    def clear_alert(self) -> None:
        """The condition ended: the alert is published a last time, CLEARED (IF-ALERT-ALERT-SEM)."""
        if self._alert is None:
            return
        self._alert.state = alert_pb2.ALERT_STATE_CLEARED
        self._alert.cleared_time_ns = self.ctx.now_ns()
        self.publish_alert(self._alert)
        self._alert = None
''',
        ]
    name = watched.spec.name.rsplit(".", 1)[-1]
    if len(watched.spec.key) == 1:
        key_expr = f"msg.{watched.spec.key[0]}"
    else:
        key_expr = 'f"' + "/".join(f"{{msg.{k}}}" for k in watched.spec.key) + '"'
    about: list[str] = []
    if watched.spec.name == "hardpoint.track.v1.FusedTrack":
        about.append("msg.track_id = about.track_id")
    about_text = "".join(f"\n        {line}" for line in [*about, "return msg"]) if about else ""
    made = "msg = " if about else "return "
    return [
        publish,
        f'''\
    def assess_{watched.snake}(self, msg: {watched.type_ref}) -> None:
        """The example alert condition, on every {name} received: a key not seen before raises an Alert.

        Replace it with your own condition (a threat assessment, a zone, a fault). The contract says how
        (IF-ALERT-ALERT-SEM): RAISED when the condition begins, the same alert_id again when it changes,
        CLEARED once when it ends, every sample the complete current view of the alert.
        """
        if not self._active:
            return  # nothing is published while inactive: the condition is assessed from activation on
        key = {key_expr}
        self._heard_ns[key] = self.ctx.now_ns()
        if key not in self._alerts:
            self._alerts[key] = self.build_alert(msg, key)
            self.publish_alert(self._alerts[key])

    def clear_ended_alerts(self) -> None:
        """Clear the alert of every {name} not heard of for ``clear_after_s``: its condition ended."""
        now = self.ctx.now_ns()
        for key, heard_ns in list(self._heard_ns.items()):
            if now - heard_ns > self.cfg.clear_after_s * 1e9:
                del self._heard_ns[key]
                alert = self._alerts.pop(key)
                alert.state = alert_pb2.ALERT_STATE_CLEARED
                alert.cleared_time_ns = now
                self.publish_alert(alert)

    def build_alert(self, about: {watched.type_ref}, key: str) -> alert_pb2.Alert:
        """The RAISED Alert about a new {name} (``key``: its key).

        Keep every field within the contract (``spec/interfaces.md``, IF-ALERT-ALERT-FIELD-*).
        """
        self._alerts_raised += 1
        {made}alert_pb2.Alert(
            alert_id=f"{{self.ctx.name}}/{{self._alerts_raised}}",
            state=alert_pb2.ALERT_STATE_RAISED,
            severity=alert_pb2.ALERT_SEVERITY_ADVISORY,
            category={_alert_category(watched)},
            text=f"new {name} {{key}}",
            raised_time_ns=self.ctx.now_ns(),
        ){about_text}
''',
    ]


def _descriptor(spec: InterfaceSpec) -> Descriptor:
    # types-protobuf types DESCRIPTOR as a union with the upb class; they behave alike.
    return cast("Descriptor", spec.message_type.DESCRIPTOR)


def _generic_build(i: _Iface) -> str:
    body = _example_lines(_descriptor(i.spec), "msg", i.spec.key)
    lines = [
        f"    def build_{i.snake}(self) -> {i.type_ref}:",
        f'        """One {i.spec.name}: every field the contract requires, filled with a placeholder.',
        "",
        "        Fill it from your sensor or algorithm. Keep every field within the contract",
        f"        (``spec/interfaces.md``, {i.spec.id}-FIELD-*); the conformance suite checks them.",
        '        """',
        f"        msg = {i.type_ref}()",
        *(f"        {line}" for line in body),
        "        return msg",
    ]
    return "\n".join(lines) + "\n"


def _indent(lines: Iterable[str], spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(f"{pad}{line}" if line else "" for line in lines)


def _template(name: str) -> Template:
    return Template(files("hardpoint_runtime").joinpath(f"{_TEMPLATES}/{name}.tmpl").read_text(encoding="utf-8"))


def _rate_text(spec: InterfaceSpec) -> str:
    if spec.nominal_rate_hz > 0:
        return f"at its contract rate, {spec.nominal_rate_hz:g} Hz"
    if spec.name == _ALERT:
        return "aperiodic: when an example condition begins and ends"
    if spec.name in _ON_ACTIVATION:
        return "aperiodic: once on activation"
    return "on demand: aperiodic, call publish_*() from your handler"


def _key_config(generic: list[_Iface], config: list[str]) -> list[str]:
    """A configuration option for each string key field of the generically filled interfaces, once each."""
    out: list[str] = []
    for i in generic:
        for key in i.spec.key:
            fd = _descriptor(i.spec).fields_by_name[key]
            if fd.type == fd.TYPE_STRING and not any(c.startswith(f"{key}:") for c in (*config, *out)):
                out.append(_config_field(key))
    return out


def _aperiodic_hooks(
    provided: list[_Iface], alert: _Iface | None, watched: _Iface | None
) -> tuple[list[str], list[str]]:
    """Lines for ``on_activate`` and ``on_deactivate``: aperiodic interfaces are published on an event the module
    observes (its activation, a condition of its input), never only "on demand" (issue 14, defect 9)."""
    activate = [
        f"self.publish_{i.snake}()  # {i.spec.name}: announced on activation"
        for i in provided
        if i.spec.name in _ON_ACTIVATION
    ]
    deactivate: list[str] = []
    if alert is not None:
        activate += _alert_activate(watched)
        deactivate += _alert_deactivate(watched)
    return activate, deactivate


def _provided_methods(provided: list[_Iface], watched: _Iface | None) -> list[str]:
    methods: list[str] = []
    for i in provided:
        if i.spec.name == _NAV_STATE:
            methods += [_NAV_PUBLISH, _NAV_BUILD]
            continue
        if i.spec.name == _ALERT:
            methods += _alert_methods(watched)
            continue
        methods.append(
            f"    def publish_{i.snake}(self) -> None:\n"
            f'        """Publish one {i.spec.name} ({_rate_text(i.spec)})."""\n'
            f"        self.{i.snake}_pub.publish(self.build_{i.snake}())\n"
            f"        self.published_{i.snake} += 1\n"
        )
        methods.append(_generic_build(i))
    return methods


def _module_source(plan: ModulePlan, provided: list[_Iface], required: list[_Iface]) -> str:
    nav = [i for i in provided if i.spec.name == _NAV_STATE]
    imports: set[str] = {i.pb2_import for i in (*provided, *required)}
    std_imports = ["import json"]
    constants: dict[str, str] = {}
    config: list[str] = []
    if nav:
        std_imports.insert(0, "import math")
        imports.add("from hardpoint.core.v1 import geo_pb2")
        imports.add("from hardpoint.adapters import GnssReceiver")
        constants.update(_NAV_CONSTANTS)
        config += _NAV_CONFIG
    alert = next((i for i in provided if i.spec.name == _ALERT), None)
    watched = _watched(required) if alert is not None else None
    generic = [i for i in provided if i.spec.name not in (_NAV_STATE, _ALERT)]
    imports |= {_pb2_import_of(f) for i in generic for f in _enum_files(_descriptor(i.spec))}
    if alert is not None:
        config += _alert_config(watched)
    config += _key_config(generic, config)
    if not config:
        config.append("#: Add your options here; unknown keys in the platform file are refused.")
    periodic = [i for i in provided if i.spec.nominal_rate_hz > 0]
    init = [f"#: {i.spec.name} samples published.\nself.published_{i.snake} = 0" for i in provided]
    if nav:
        init += ["\n".join(_NAV_INIT)]
    if alert is not None:
        init += ["\n".join(_alert_init(watched))]
    init += [
        f"#: The last {i.spec.name} received, and how many.\n"
        f"self.last_{i.snake}: {i.type_ref} | None = None\nself.received_{i.snake} = 0"
        for i in required
    ]
    publishers = [*(_NAV_CONFIGURE if nav else ())]
    publishers += [f"self.{i.snake}_pub: Publisher[{i.type_ref}] = ctx.bus.publisher({i.type_ref})" for i in provided]
    subscribe = ""
    if required:
        subscribe = "\n".join(
            [
                "        if not self._subscribed:",
                "            # The host's bus outlives cleanup and re-configure: subscribe once, or every sample arrives twice.",  # noqa: E501
                *(f"            ctx.bus.subscribe({i.type_ref}, self.on_{i.snake})" for i in required),
                "            self._subscribed = True",
            ]
        )
    timers = [
        f"period_s = 1.0 / interface_spec({i.type_ref}).nominal_rate_hz\n"
        f"self._timers.append(ctx.every(period_s, self.publish_{i.snake}))"
        for i in periodic
    ]
    activate, deactivate = _aperiodic_hooks(provided, alert, watched)
    timers += activate
    methods = _provided_methods(provided, watched)
    for i in required:
        methods.append(
            f"    def on_{i.snake}(self, msg: {i.type_ref}) -> None:\n"
            f'        """A {i.spec.name} arrived (on the dispatch thread, one callback at a time: no locks)."""\n'
            f"        self.last_{i.snake} = msg\n"
            f"        self.received_{i.snake} += 1\n"
            + (f"        self.assess_{i.snake}(msg)\n" if i is watched else "")
        )
    doc_provides = [
        f"* publishes ``{i.spec.name}`` {_rate_text(i.spec)}"
        + (",\n  from the platform's GNSS/INS receiver (the ``gnss`` adapter);" if i in nav else ";")
        for i in provided
    ]
    doc_requires = [f"* subscribes to ``{i.spec.name}`` and keeps the last sample;" for i in required]
    sdk_names = ["Manifest", "ModuleContext", "Timer", "hookimpl"]
    if provided:
        sdk_names.append("Publisher")
    if periodic:
        sdk_names.append("interface_spec")
    pydantic_names = ["BaseModel", "ConfigDict", "ValidationError"]
    if any("Field(" in line for line in config):
        pydantic_names.insert(2, "Field")
    # One third-party block, sorted as isort does: a supplier's project sees hardpoint as third-party.
    third_party = sorted(
        [
            *imports,
            f"from hardpoint import {', '.join(sorted(sdk_names, key=lambda n: (n[0].islower(), n)))}",
            f"from pydantic import {', '.join(pydantic_names)}",
        ],
        key=lambda line: line.split()[1],
    )
    return _template("module.py").substitute(
        name=plan.name,
        supplier=plan.supplier,
        package=plan.package,
        cls=plan.class_name,
        what="\n".join(doc_provides + doc_requires) or "* nothing yet;",
        std_imports="\n".join(sorted(std_imports)),
        third_party="\n".join(third_party),
        constants="".join(f"{constants[k]}\n" for k in sorted(constants)),
        config_fields=_indent(config, 4),
        init=_indent("\n".join(init).splitlines(), 8),
        subscribed="        self._subscribed = False\n" if required else "",
        publishers="\n".join(part for part in (_indent(publishers, 8), subscribe) if part),
        timers="".join(f"\n{line}" for line in _indent("\n".join(timers).splitlines(), 8).splitlines()),
        deactivate="".join(f"\n{line}" for line in _indent(deactivate, 8).splitlines()),
        methods="\n".join(methods).rstrip("\n"),
    )


def _probe_sample(i: _Iface) -> str:
    """A sample of a required interface for the unit test to feed: its key fields set."""
    fields = _descriptor(i.spec).fields_by_name
    keys = [k for k in i.spec.key if fields[k].type == fields[k].TYPE_STRING]
    return f"{i.type_ref}({', '.join(f'{k}={chr(34)}probe{chr(34)}' for k in keys)})"


def _test_source(plan: ModulePlan, provided: list[_Iface], required: list[_Iface]) -> str:
    # The pb2 modules the tests name: rate, on-activation, alert and receive tests (build tests take the type
    # from the module).
    alert = next((i for i in provided if i.spec.name == _ALERT), None)
    watched = _watched(required) if alert is not None else None
    on_activation = [i for i in provided if i.spec.name in _ON_ACTIVATION or (i is alert and watched is None)]
    used = [i for i in provided if i.spec.nominal_rate_hz > 0 or i is alert or i in on_activation] + required
    third_party = sorted(
        [
            *{i.pb2_import for i in used},
            "from google.protobuf.message import Message",
            "from hardpoint import Bus, ModuleHost, State, interface_spec",
            "from hardpoint.testing import InMemoryTransport",
        ],
        key=lambda line: line.split()[1],
    )
    nav = _NAV_STATE in plan.provides
    if nav:
        third_party.append("from hardpoint.adapters import GnssFix")
        third_party.sort(key=lambda line: line.split()[1])
    tests: list[str] = []
    for i in provided:
        if i.spec.name == _NAV_STATE:
            tests.append(_template("test_nav.py").substitute())
        if i.spec.nominal_rate_hz > 0:
            tests.append(
                _template("test_rate.py").substitute(
                    snake=i.snake, type_ref=i.type_ref, iface=i.spec.name, name=plan.name
                )
            )
        elif i in on_activation:
            tests.append(
                _template("test_on_activation.py").substitute(
                    snake=i.snake, type_ref=i.type_ref, iface=i.spec.name, cls=plan.class_name
                )
            )
        elif i is alert and watched is not None:
            tests.append(
                _template("test_alert_watch.py").substitute(
                    watched_snake=watched.snake, watched_iface=watched.spec.name, sample=_probe_sample(watched)
                )
            )
        else:
            tests.append(_template("test_build.py").substitute(snake=i.snake, iface=i.spec.name))
    for i in required:
        tests.append(
            _template("test_receive.py").substitute(
                snake=i.snake, type_ref=i.type_ref, iface=i.spec.name, sample=_probe_sample(i)
            )
        )
    return _template("test_module.py").substitute(
        name=plan.name,
        package=plan.package,
        cls=plan.class_name,
        std_imports="import json\nimport math\nimport tomllib" if nav else "import json\nimport tomllib",
        third_party="\n".join(third_party),
        adapters=_template("test_adapters_gnss.py" if nav else "test_adapters_none.py").substitute().rstrip("\n"),
        per_interface="\n\n\n".join(t.rstrip("\n") for t in tests),
    )


def _manifest_json(plan: ModulePlan) -> str:
    import json

    data: dict[str, Any] = {
        "name": plan.name,
        "version": INITIAL_VERSION,
        "supplier": plan.supplier,
        "provides": list(plan.provides),
        "requires": list(plan.requires),
        "adapters": list(_adapters(plan)),
        "description": _description(plan),
    }
    return json.dumps(data, indent=2) + "\n"


def _adapters(plan: ModulePlan) -> tuple[str, ...]:
    """The hardware adapters the module asks for: a navigation module reads the GNSS/INS receiver."""
    return _NAV_ADAPTERS if _NAV_STATE in plan.provides else ()


def _description(plan: ModulePlan) -> str:
    parts = []
    if plan.provides:
        parts.append("provides " + ", ".join(n.rsplit(".", 1)[-1] for n in plan.provides))
    if plan.requires:
        parts.append("requires " + ", ".join(n.rsplit(".", 1)[-1] for n in plan.requires))
    return f"{plan.name}: " + "; ".join(parts)


#: Reference modules (and their simulated adapters) that provide an interface a new module may require.
_FEEDERS: Final[Mapping[str, tuple[str, ...]]] = {
    "hardpoint.nav.v1.NavState": ("nav",),
    "hardpoint.track.v1.SensorTrack": ("nav", "radar"),
    "hardpoint.track.v1.FusedTrack": ("nav", "radar", "fusion"),
}
#: The adapters each reference feeder asks for.
_FEEDER_ADAPTERS: Final[Mapping[str, tuple[str, ...]]] = {"nav": ("gnss",), "radar": ("radar",), "fusion": ()}
_FEEDER_ENTRIES: Final[Mapping[str, str]] = {
    "nav": '[[modules]]\nname = "nav"\nconfig = { platform_id = "own" }\n',
    "radar": '[[modules]]\nname = "radar"\nconfig = { platform_id = "own", sensor_id = "radar" }\n',
    "fusion": '[[modules]]\nname = "fusion"\n',
}
#: Simulated bindings of the platform's abstract adapters, by adapter name.
_ADAPTERS: Final[Mapping[str, str]] = {
    "gnss": '[adapters.gnss]\ndriver = "sim-gnss"\nconfig = { scenario = "builtin:patrol", seed = 1 }\n',
    "radar": (
        '[adapters.radar]\ndriver = "sim-detections"\n'
        'config = { scenario = "builtin:patrol", sensor = "radar", seed = 2 }\n'
    ),
}


def _platform(plan: ModulePlan) -> str:
    feeders: list[str] = []
    unfed: list[str] = []
    for name in plan.requires:
        if name in _FEEDERS:
            feeders += [f for f in _FEEDERS[name] if f not in feeders]
        else:
            unfed.append(name)
    if _NAV_STATE in plan.provides:
        # Single writer: the new module is the platform's navigation, and the reference
        # radar and fusion run on it, so the laptop run shows it feeding real consumers.
        feeders = [f for f in feeders if f != "nav"] + [f for f in ("radar", "fusion") if f not in feeders]
    needed = [*_adapters(plan), *(a for f in feeders for a in _FEEDER_ADAPTERS[f])]
    adapters = "\n".join(_ADAPTERS[a] for a in dict.fromkeys(needed))
    modules = "".join(f"{_FEEDER_ENTRIES[f]}\n" for f in feeders)
    todo = "".join(f"# TODO: add a module that provides {name} (required by {plan.name})\n" for name in unfed)
    return _template("platform.toml").substitute(
        name=plan.name,
        adapters=adapters or "# (no hardware adapters needed)\n",
        feeders=modules + todo,
    )


def render_module(plan: ModulePlan, interfaces: Mapping[str, InterfaceSpec]) -> dict[str, str]:
    """The files of the new module project, ``{path relative to the project dir: text}``."""
    taken: set[str] = set()
    provided = _ifaces(plan.provides, interfaces, taken)
    required = _ifaces(plan.requires, interfaces, taken)
    common = {
        "name": plan.name,
        "package": plan.package,
        "distribution": plan.distribution,
        "cls": plan.class_name,
        "supplier": plan.supplier,
        "version": INITIAL_VERSION,
        "description": _description(plan),
        "provides": "\n".join(f"- `{n}`: {_rate_text(interfaces[n])}" for n in plan.provides) or "- nothing",
        "requires": "\n".join(f"- `{n}`" for n in plan.requires) or "- nothing",
    }
    return {
        "pyproject.toml": _template("pyproject.toml").substitute(common),
        "README.md": _template("README.md").substitute(common),
        ".gitignore": _template("gitignore").substitute(common),
        "platform.toml": _platform(plan),
        f"src/{plan.package}/__init__.py": _module_source(plan, provided, required),
        f"src/{plan.package}/hardpoint-manifest.json": _manifest_json(plan),
        f"src/{plan.package}/py.typed": "",
        f"tests/test_{plan.package}.py": _test_source(plan, provided, required),
    }
