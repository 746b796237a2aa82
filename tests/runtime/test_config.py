"""Platform configuration: defaults, validation, and errors that name file, line, field and reason (RT-CFG-*)."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from hardpoint_runtime._config import (
    DEFAULT_NODE,
    PlatformConfig,
    TomlLocator,
    format_loc,
    load_config,
    parse_config,
)
from hardpoint_runtime._errors import ConfigError, HardpointRuntimeError

MINIMAL = '[platform]\nname = "demo"\n'


def write(tmp_path: Path, text: str, name: str = "platform.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value


# --------------------------------------------------------------------------- defaults and paths


def test_minimal_file_gets_every_default(tmp_path: Path) -> None:
    """RT-CFG-001, RT-CFG-003: only [platform].name is required; defaults are as specified."""
    config = load_config(write(tmp_path, MINIMAL))
    assert config.platform.name == "demo"
    assert config.platform.domain_id == 0
    assert config.node == DEFAULT_NODE == "main"
    assert config.nodes is None
    assert config.metrics.enabled is False
    assert (config.metrics.address, config.metrics.port, config.metrics.allow_remote) == ("127.0.0.1", 9464, False)
    s = config.supervision
    assert (s.restart_intensity, s.restart_period_s, s.backoff_initial_s, s.backoff_max_s) == (5, 30.0, 0.2, 10.0)
    assert (s.heartbeat_deadline_s, s.stop_timeout_s) == (3.0, 5.0)
    assert config.management.tcp is None
    assert config.modules == ()
    assert config.adapters == {}


def test_relative_paths_are_relative_to_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RT-CFG-004: state_dir and the socket follow the file, not the working directory."""
    folder = tmp_path / "platform"
    folder.mkdir()
    write(folder, MINIMAL)
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("platform") / "platform.toml")
    assert config.platform.state_dir == folder / "state"
    assert config.management.socket == folder / "state" / "hardpointd.sock"


def test_socket_follows_a_configured_state_dir(tmp_path: Path) -> None:
    """RT-CFG-004: the default socket is <state_dir>/hardpointd.sock."""
    config = load_config(write(tmp_path, MINIMAL + 'state_dir = "/var/lib/hp"\n'))
    assert config.platform.state_dir == Path("/var/lib/hp")
    assert config.management.socket == Path("/var/lib/hp/hardpointd.sock")


def test_explicit_socket_is_resolved_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + '[management]\nsocket = "run/hp.sock"\n'))
    assert config.management.socket == tmp_path / "run" / "hp.sock"
    assert config.platform.state_dir == tmp_path / "state"


def test_full_example_loads(tmp_path: Path) -> None:
    """RT-CFG-001: every section at once; helper methods answer per entry."""
    text = """
node = "mast"
nodes = ["mast", "hull"]

[platform]
name = "demo-vessel"
domain_id = 7

[metrics]
enabled = true
port = 9100

[supervision]
restart_intensity = 2
heartbeat_deadline_s = 1.5

[[modules]]
name = "nav"
version = ">=1.2,<2"

[modules.config]
rate_hz = 10

[[modules]]
name = "tracker"
node = "hull"
isolation = "in-process"
enabled = false

[adapters.gnss]
driver = "sim-gnss"
config = { seed = 3 }
"""
    config = load_config(write(tmp_path, text))
    nav, tracker = config.modules
    assert nav.config == {"rate_hz": 10}
    assert nav.specifier.contains("1.5.0")
    assert not nav.specifier.contains("2.0.0")
    assert config.node_of(nav) == "mast"
    assert config.node_of(tracker) == "hull"
    assert tracker.isolation == "in-process"
    assert config.enabled_modules == (nav,)
    assert config.module("tracker") is tracker
    with pytest.raises(KeyError):
        config.module("radar")
    assert config.adapters["gnss"].driver == "sim-gnss"
    assert config.adapters["gnss"].config == {"seed": 3}
    assert config.supervision.heartbeat_deadline_s == 1.5


def test_empty_version_accepts_any() -> None:
    config = parse_config(MINIMAL + '[[modules]]\nname = "nav"\n')
    assert config.modules[0].version == ""
    assert config.modules[0].specifier.contains("0.0.1")


def test_models_are_frozen() -> None:
    """RT-CFG-002: a loaded configuration cannot be changed behind the daemon's back."""
    config = parse_config(MINIMAL)
    with pytest.raises(pydantic.ValidationError):
        config.platform.domain_id = 3


# --------------------------------------------------------------------------- errors


def test_error_message_shape_file_line_field_reason(tmp_path: Path) -> None:
    """RT-CFG-010: ``platform.toml:14: modules[2].version: ...``."""
    text = MINIMAL + "\n".join(
        [
            "",
            "[[modules]]",
            'name = "a"',
            "",
            "[[modules]]",
            'name = "b"',
            "",
            "[[modules]]",
            'name = "c"',
            'version = ">=2,<"',
        ]
    )
    error = config_error(tmp_path, text)
    assert isinstance(error, HardpointRuntimeError)
    path = str(tmp_path / "platform.toml")
    assert (error.path, error.line, error.field) == (path, 12, "modules[2].version")
    assert "'>=2,<' is not a PEP 440 version specifier" in error.reason
    assert str(error).startswith(f"{path}:12: modules[2].version: '>=2,<'")
    assert len(error.problems) == 1


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    """RT-CFG-011."""
    error = config_error(tmp_path, MINIMAL + "domain_id = \n")
    assert error.line == 3
    assert error.field == ""
    assert "invalid TOML" in error.reason
    assert str(error).startswith(f"{tmp_path / 'platform.toml'}:3: invalid TOML: ")


def test_toml_error_at_end_of_document(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[platform]\nname = "demo')
    assert error.line is not None
    assert "invalid TOML" in str(error)


def test_unknown_field_is_named_with_a_suggestion(tmp_path: Path) -> None:
    """RT-CFG-012: an unknown key is refused by name, with the closest allowed one."""
    error = config_error(tmp_path, MINIMAL + '\n[[modules]]\nname = "nav"\nverison = ">=1"\n')
    assert (error.line, error.field) == (6, "modules[0].verison")
    assert error.reason == "unknown field 'verison' (did you mean 'version'?)"


def test_unknown_field_lists_allowed_fields(tmp_path: Path) -> None:
    error = config_error(tmp_path, MINIMAL + 'colour = "red"\n')
    assert error.field == "platform.colour"
    assert error.reason == "unknown field 'colour' (allowed: name, domain_id, state_dir)"


def test_unknown_section(tmp_path: Path) -> None:
    error = config_error(tmp_path, MINIMAL + "[superviser]\nrestart_intensity = 3\n")
    assert (error.line, error.field) == (3, "superviser")
    assert "did you mean 'supervision'?" in error.reason


def test_top_level_key_after_a_table_gets_a_hint(tmp_path: Path) -> None:
    """The classic TOML slip: ``node = ...`` written below [platform] belongs to [platform]."""
    error = config_error(tmp_path, MINIMAL + 'node = "mast"\n')
    assert error.field == "platform.node"
    assert "top-level key" in error.reason


def test_wrong_type_names_value_and_line(tmp_path: Path) -> None:
    """RT-CFG-013."""
    error = config_error(tmp_path, MINIMAL + 'domain_id = "seven"\n')
    assert (error.line, error.field) == (3, "platform.domain_id")
    assert "valid integer" in error.reason
    assert "'seven'" in error.reason


def test_missing_required_field_points_at_its_table(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[platform]\ndomain_id = 1\n")
    assert (error.line, error.field, error.reason) == (1, "platform.name", "required field is missing")


def test_missing_platform_section_has_no_line(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[metrics]\nport = 1\n")
    assert (error.line, error.field) == (None, "platform")
    assert str(error) == f"{tmp_path / 'platform.toml'}: platform: required field is missing"


@pytest.mark.parametrize("value", [-1, 233])
def test_domain_id_range(tmp_path: Path, value: int) -> None:
    error = config_error(tmp_path, MINIMAL + f"domain_id = {value}\n")
    assert error.field == "platform.domain_id"


def test_several_problems_are_one_error_one_line_each_in_file_order(tmp_path: Path) -> None:
    """RT-CFG-014."""
    text = MINIMAL + "domain_id = 999\n\n[metrics]\nport = 70000\n\n[[modules]]\nname = 'Bad Name'\n"
    error = config_error(tmp_path, text)
    assert [(p.line, p.field) for p in error.problems] == [
        (3, "platform.domain_id"),
        (6, "metrics.port"),
        (9, "modules[0].name"),
    ]
    lines = str(error).splitlines()
    assert lines[0].endswith("3 problems in the platform configuration:")
    assert lines[1].strip().startswith(f"{tmp_path / 'platform.toml'}:3: platform.domain_id: ")
    assert len(lines) == 4
    assert (error.line, error.field) == (3, "platform.domain_id")


def test_duplicate_module_names_the_duplicate(tmp_path: Path) -> None:
    """RT-CFG-020."""
    text = MINIMAL + '[[modules]]\nname = "nav"\n[[modules]]\nname = "track"\n[[modules]]\nname = "nav"\n'
    error = config_error(tmp_path, text)
    assert (error.line, error.field) == (8, "modules[2].name")
    assert error.reason == "module 'nav' is listed twice (first: modules[0])"


def test_module_on_unknown_node(tmp_path: Path) -> None:
    """RT-CFG-021."""
    text = 'nodes = ["mast", "hull"]\nnode = "mast"\n' + MINIMAL + '[[modules]]\nname = "nav"\nnode = "keel"\n'
    error = config_error(tmp_path, text)
    assert (error.line, error.field) == (7, "modules[0].node")
    assert error.reason == "node 'keel' is not in nodes ('mast', 'hull')"


def test_default_node_must_be_listed(tmp_path: Path) -> None:
    error = config_error(tmp_path, 'nodes = ["mast"]\n' + MINIMAL)
    assert (error.line, error.field) == (None, "node")
    assert "node 'main' is not in nodes" in error.reason


def test_any_node_allowed_without_nodes() -> None:
    config = parse_config(MINIMAL + '[[modules]]\nname = "nav"\nnode = "anywhere"\n')
    assert config.node_of(config.modules[0]) == "anywhere"


def test_tcp_requires_mutual_tls(tmp_path: Path) -> None:
    """RT-CFG-030: TCP management without server and client certificates is refused."""
    error = config_error(tmp_path, MINIMAL + '[management]\ntcp = "127.0.0.1:50051"\ntls_cert = "c.pem"\n')
    problems = {p.field: p for p in error.problems}
    assert set(problems) == {"management.tls_cert", "management.tls_key", "management.client_ca"}
    assert problems["management.tls_cert"].reason == f"file not found: {tmp_path / 'c.pem'}"
    assert problems["management.tls_cert"].line == 5
    assert "required when management.tcp is set" in problems["management.tls_key"].reason
    assert problems["management.tls_key"].line == 3  # absent key: the [management] header


def test_tcp_with_tls_files_loads(tmp_path: Path) -> None:
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    text = MINIMAL + '[management]\ntcp = "[::1]:50051"\ntls_cert = "c.pem"\ntls_key = "k.pem"\nclient_ca = "ca.pem"\n'
    config = load_config(write(tmp_path, text))
    assert config.management.tls_key == tmp_path / "k.pem"


@pytest.mark.parametrize("endpoint", ["50051", "host:", ":50051", "host:0", "host:99999", "host:http"])
def test_tcp_endpoint_format(tmp_path: Path, endpoint: str) -> None:
    error = config_error(tmp_path, MINIMAL + f'[management]\ntcp = "{endpoint}"\n')
    assert error.problems[0].field == "management.tcp"
    assert "host:port" in error.problems[0].reason


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_metrics_refuse_non_loopback(tmp_path: Path, address: str) -> None:
    """RT-CFG-031."""
    error = config_error(tmp_path, MINIMAL + f'[metrics]\nenabled = true\naddress = "{address}"\n')
    assert error.field == "metrics.address"
    assert "allow_remote" in error.reason


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_metrics_accept_loopback(address: str) -> None:
    assert parse_config(MINIMAL + f'[metrics]\naddress = "{address}"\n').metrics.address == address


def test_metrics_remote_when_allowed() -> None:
    config = parse_config(MINIMAL + '[metrics]\naddress = "0.0.0.0"\nallow_remote = true\n')
    assert config.metrics.allow_remote


def test_backoff_max_below_initial(tmp_path: Path) -> None:
    error = config_error(tmp_path, MINIMAL + "[supervision]\nbackoff_initial_s = 2.0\nbackoff_max_s = 1.0\n")
    assert (error.line, error.field) == (5, "supervision.backoff_max_s")


@pytest.mark.parametrize("key", ["restart_period_s", "heartbeat_deadline_s", "stop_timeout_s", "backoff_initial_s"])
def test_durations_must_be_positive(tmp_path: Path, key: str) -> None:
    error = config_error(tmp_path, MINIMAL + f"[supervision]\n{key} = 0\n")
    assert error.field == f"supervision.{key}"


def test_isolation_values(tmp_path: Path) -> None:
    error = config_error(tmp_path, MINIMAL + '[[modules]]\nname = "nav"\nisolation = "thread"\n')
    assert error.field == "modules[0].isolation"
    assert "'process' or 'in-process'" in error.reason


def test_adapter_needs_a_driver(tmp_path: Path) -> None:
    error = config_error(tmp_path, MINIMAL + "[adapters.gnss]\nconfig = { port = 1 }\n")
    assert (error.line, error.field, error.reason) == (3, "adapters.gnss.driver", "required field is missing")


def test_adapter_unknown_key(tmp_path: Path) -> None:
    error = config_error(tmp_path, MINIMAL + '[adapters.gnss]\ndriver = "sim"\nsimulated = true\n')
    assert (error.line, error.field) == (5, "adapters.gnss.simulated")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert "cannot read the configuration" in str(info.value)
    assert info.value.path == str(tmp_path / "absent.toml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "platform.toml"
    path.write_bytes(b'[platform]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_validating_a_mapping_without_a_file_keeps_paths_as_written() -> None:
    config = PlatformConfig.model_validate({"platform": {"name": "x", "state_dir": "s"}})
    assert config.platform.state_dir == Path("s")
    assert config.management.socket == Path("s/hardpointd.sock")


# --------------------------------------------------------------------------- the locator


LOCATOR_SOURCE = '''\
# comment [not.a.table]
node = "main"
nodes = [
  "main",
  "[fake]",
]

[platform]
name = "p"   # [[modules]] in a comment
"quoted key" = 1
sub.dotted = 2

[[modules]]
name = "a"
notes = """
[[modules]]
name = "inside a string"
"""

[[modules]]
name = "b"

[modules.config]
rate_hz = 5

[[modules]]
name = 'c'
version = ">=1"

[adapters.gnss]
driver = "sim"
config = { port = 1, nested = { x = 2 } }
'''


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("node",), 2),
        (("nodes",), 3),
        (("nodes", 1), 3),
        (("platform",), 8),
        (("platform", "name"), 9),
        (("platform", "quoted key"), 10),
        (("platform", "sub", "dotted"), 11),
        (("platform", "sub"), 11),
        (("platform", "absent"), 8),
        (("modules",), 13),
        (("modules", 0), 13),
        (("modules", 0, "notes"), 15),
        (("modules", 1), 20),
        (("modules", 1, "name"), 21),
        (("modules", 1, "config"), 23),
        (("modules", 1, "config", "rate_hz"), 24),
        (("modules", 2), 26),
        (("modules", 2, "version"), 28),
        (("modules", 3, "name"), 13),
        (("adapters", "gnss", "config", "port"), 32),
        (("adapters", "gnss", "driver"), 31),
        (("metrics",), None),
    ],
)
def test_locator(loc: tuple[str | int, ...], line: int | None) -> None:
    """RT-CFG-010: the locator maps pydantic locations to lines, past strings, comments and arrays."""
    import tomllib

    tomllib.loads(LOCATOR_SOURCE)  # the locator's input is valid TOML by contract
    assert TomlLocator(LOCATOR_SOURCE).line(loc) == line


def test_locator_inline_array_of_tables_points_at_the_key() -> None:
    """Values written inline are located at their key: the locator does not index inside values."""
    source = 'modules = [\n  { name = "a" },\n  { name = "b", version = "x" },\n]\n' + MINIMAL
    assert TomlLocator(source).line(("modules", 1, "version")) == 1
    assert TomlLocator(source).line(("platform", "name")) == 6
    with pytest.raises(ConfigError) as info:
        parse_config(source, origin="p.toml")
    assert str(info.value).startswith("p.toml:1: modules[1].version: ")


def test_locator_nested_array_of_tables() -> None:
    source = "[[a]]\nx = 1\n[[a.b]]\ny = 1\n[[a.b]]\ny = 2\n[[a]]\n[[a.b]]\ny = 3\n"
    locator = TomlLocator(source)
    assert locator.line(("a", 0, "b", 1, "y")) == 6
    assert locator.line(("a", 1, "b", 0, "y")) == 9


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        (("modules", 2, "version"), "modules[2].version"),
        (("adapters", "gnss", "driver"), "adapters.gnss.driver"),
        (("adapters", "a b", "driver"), 'adapters."a b".driver'),
        ((), ""),
    ],
)
def test_format_loc(loc: tuple[str | int, ...], text: str) -> None:
    assert format_loc(loc) == text


# --------------------------------------------------------------------------- the update section (issue 14)


def _update(tmp_path: Path, lines: str) -> str:
    (tmp_path / "repo").mkdir(exist_ok=True)
    (tmp_path / "key.pub").write_text("key")
    return MINIMAL + "\n[update]\n" + lines


@pytest.mark.parametrize("value", ['"yes"', "1", '"true"', "0"])
def test_security_switches_are_strict_booleans(tmp_path: Path, value: str) -> None:
    """Defect 7: ``require_evidence = "yes"`` or ``= 1`` was taken as true; a security switch is true or false."""
    text = _update(tmp_path, f'directory = "repo"\nconformance_keys = ["key.pub"]\nrequire_evidence = {value}\n')
    error = config_error(tmp_path, text)
    assert error.field == "update.require_evidence"
    assert error.line == 7
    assert "bool" in error.reason


def test_require_evidence_true_loads(tmp_path: Path) -> None:
    text = _update(tmp_path, 'directory = "repo"\nconformance_keys = ["key.pub"]\nrequire_evidence = true\n')
    config = load_config(write(tmp_path, text))
    assert config.update is not None
    assert config.update.require_evidence is True


def test_missing_update_directory_is_refused_at_start(tmp_path: Path) -> None:
    """Defect 6: a missing folder failed only later, as a fetch error naming a role, not the setting."""
    error = config_error(tmp_path, _update(tmp_path, 'directory = "no-such-folder"\n'))
    assert error.field == "update.directory"
    assert error.line == 5
    assert "folder not found" in error.reason
    assert "no-such-folder" in error.reason
