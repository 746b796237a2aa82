"""The ``[dds]`` table and the node's Cyclone DDS configuration built from it (RT-CFG-032, RT-NET-002)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree as ET

import pytest

from hardpoint import CycloneTransport
from hardpoint_runtime._config import PlatformConfig, load_config
from hardpoint_runtime._daemon import Daemon, _Module
from hardpoint_runtime._dds_config import cyclone_xml, node_dds_config
from hardpoint_runtime._errors import ConfigError
from hardpoint_runtime.conformance._harness import free_domain_id

MINIMAL = '[platform]\nname = "demo"\n'
#: A domain id no other test uses while this process lives (the shared lock folder): one process may hold a
#: domain id with one configuration only, and no other test on the machine may meet this one.
DOMAIN = free_domain_id()


def load(tmp_path: Path, text: str) -> PlatformConfig:
    path = tmp_path / "platform.toml"
    path.write_text(text)
    return load_config(path)


def problems(tmp_path: Path, text: str) -> dict[str, tuple[int | None, str]]:
    path = tmp_path / "platform.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return {p.field: (p.line, p.reason) for p in info.value.problems}


def parsed(xml: str) -> ET.Element:
    domain = ET.fromstring(xml).find("Domain")
    assert domain is not None
    return domain


def test_default_is_the_packaged_loopback_configuration(tmp_path: Path) -> None:
    """RT-NET-002: no [dds] table, no change: the SDK's loopback.xml (None) for the daemon and its modules."""
    config = load(tmp_path, MINIMAL)
    assert config.dds.interface == "lo"
    assert config.dds.peers == ("127.0.0.1",)
    assert config.dds.lease_duration_s == 10.0
    assert config.dds.config is None
    assert config.dds.is_default
    assert node_dds_config(config.dds) is None


def test_network_interface_gets_multicast_off_unicast_peers_and_cyclone_sizes(tmp_path: Path) -> None:
    """RT-NET-002: bound to the interface, no multicast, every peer listed, no loopback-only sizes."""
    text = (
        MINIMAL
        + '[dds]\ninterface = "eth1"\npeers = ["10.1.2.3", "10.1.2.4", "node-b.local"]\nlease_duration_s = 4.5\n'
    )
    xml = node_dds_config(load(tmp_path, text).dds)
    assert xml is not None
    domain = parsed(xml)
    assert [e.attrib for e in domain.iterfind("General/Interfaces/NetworkInterface")] == [{"name": "eth1"}]
    assert domain.findtext("General/AllowMulticast") == "false"
    assert [e.get("address") for e in domain.iterfind("Discovery/Peers/Peer")] == [
        "10.1.2.3",
        "10.1.2.4",
        "node-b.local",
    ]
    assert domain.findtext("Discovery/ParticipantIndex") == "auto"
    assert domain.findtext("Discovery/LeaseDuration") == "4500ms"
    assert domain.find("General/MaxMessageSize") is None  # 64 KiB datagrams only on loopback
    assert domain.find("General/Transport") is None


def test_loopback_keeps_the_large_messages_and_an_address_interface_is_an_address(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + '[dds]\ninterface = "lo"\npeers = ["127.0.0.1", "127.0.0.2"]\n')
    assert not config.dds.is_default
    domain = parsed(cyclone_xml(config.dds))
    assert domain.findtext("General/MaxMessageSize") == "65000B"
    by_address = parsed(
        cyclone_xml(load(tmp_path, MINIMAL + '[dds]\ninterface = "fd00::1"\npeers = ["fd00::2"]\n').dds)
    )
    assert [e.attrib for e in by_address.iterfind("General/Interfaces/NetworkInterface")] == [{"address": "fd00::1"}]
    assert by_address.findtext("General/Transport") == "udp6"


def test_generated_configuration_is_accepted_by_cyclone(tmp_path: Path) -> None:
    """The XML is a valid Cyclone DDS configuration (real domain on loopback, custom lease)."""
    config = load(tmp_path, MINIMAL + '[dds]\ninterface = "lo"\nlease_duration_s = 3\n')
    transport = CycloneTransport(domain_id=DOMAIN, config=node_dds_config(config.dds))
    transport.close()


def test_config_file_is_used_as_it_is_relative_to_the_platform_file(tmp_path: Path) -> None:
    """RT-CFG-004, RT-CFG-032: dds.config follows the platform file's folder; it is passed as an absolute path."""
    (tmp_path / "cyclone.xml").write_text("<CycloneDDS/>")
    config = load(tmp_path, MINIMAL + '[dds]\nconfig = "cyclone.xml"\n')
    assert node_dds_config(config.dds) == str(tmp_path / "cyclone.xml")


def test_config_file_excludes_the_other_keys_and_must_exist(tmp_path: Path) -> None:
    """RT-CFG-032."""
    found = problems(tmp_path, MINIMAL + '[dds]\nconfig = "missing.xml"\ninterface = "eth0"\n')
    assert found["dds.config"][1].startswith("file not found:")
    assert found["dds.interface"] == (5, "cannot be combined with dds.config (the file says everything)")


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("peers = []", "dds.peers", "lists no peer"),
        ('peers = ["10.0.0.1", "10.0.0.1"]', "dds.peers", "lists a peer twice"),
        ('peers = ["10.0.0.1:7400"]', "dds.peers", "is neither an IP address nor a host name (write no port)"),
        ('peers = ["10.0.0.1", "fd00::1"]', "dds.peers", "mixes IPv4 and IPv6"),
        ('interface = "eth 0"', "dds.interface", "is neither an interface name"),
        ("lease_duration_s = 0", "dds.lease_duration_s", "greater than 0"),
        ('interfaces = "eth0"', "dds.interfaces", "did you mean 'interface'?"),
    ],
)
def test_bad_dds_values_name_the_field_and_line(tmp_path: Path, line: str, field: str, reason: str) -> None:
    """RT-CFG-010, RT-CFG-012, RT-CFG-032."""
    found = problems(tmp_path, MINIMAL + "[dds]\n" + line + "\n")
    assert field in found, found
    assert found[field][0] == 4
    assert reason in found[field][1]


def test_daemon_gives_its_configuration_to_every_module_process(tmp_path: Path) -> None:
    """RT-NET-002: the worker spec carries the node's DDS configuration (read by the worker's CycloneTransport)."""
    path = tmp_path / "platform.toml"
    path.write_text(
        MINIMAL + '[dds]\ninterface = "veth7"\npeers = ["10.9.0.1", "10.9.0.2"]\n\n[[modules]]\nname = "sink"\n'
    )
    daemon = Daemon(path)
    assert daemon.dds_config == cyclone_xml(daemon.config.dds)
    entry = daemon.config.modules[0]
    m = _Module("sink", "main", True, entry=entry, dist=SimpleNamespace(entry_point="pkg:Sink", path=""))
    assert daemon._spec(m)["dds_config"] == daemon.dds_config
    path.write_text(MINIMAL + '[[modules]]\nname = "sink"\n')
    assert Daemon(path)._spec(m)["dds_config"] is None
