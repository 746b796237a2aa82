"""The Cyclone DDS configuration of a node, built from the platform's ``[dds]`` table.

The daemon opens its own transport with it and hands the same text to every
module process of its node (``spec["dds_config"]``), so that all participants
of one node use the same interface, peers and lease (RT-NET-001).

- Default ``[dds]`` (nothing set): ``None``, meaning the SDK's packaged
  ``loopback.xml`` (interface ``lo``, multicast off, unicast peer 127.0.0.1).
- ``[dds] config = "file.xml"``: that file, as an absolute path (the transport
  turns it into a ``file://`` URI for ``dds_create_domain``).
- Otherwise: XML text, the same settings as ``loopback.xml`` (multicast off,
  participant index ``auto``, unicast discovery to every peer) bound to the
  given interface, plus the participant lease. The loopback message and
  fragment sizes (64 KiB) are kept only on ``lo``: on a real network they would
  mean IP fragmentation, so Cyclone's defaults apply there.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from xml.etree import ElementTree as ET

from hardpoint_runtime._config import DdsSection

__all__ = ["LOOPBACK_INTERFACE", "cyclone_xml", "node_dds_config"]

#: The loopback interface's name on Linux.
LOOPBACK_INTERFACE: Final = "lo"
#: Largest participant index tried by discovery on each peer: participants (daemon + module processes) per node.
MAX_PARTICIPANT_INDEX: Final = 60


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _ipv6(section: DdsSection) -> bool:
    return any(_is_address(a) and ipaddress.ip_address(a).version == 6 for a in (section.interface, *section.peers))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def cyclone_xml(section: DdsSection) -> str:
    """Cyclone DDS XML for ``section`` (its ``config`` key aside).

    :param section: the ``[dds]`` table of the platform configuration.
    """
    root = ET.Element("CycloneDDS")
    domain = _sub(root, "Domain", id="any")
    general = _sub(domain, "General")
    interfaces = _sub(general, "Interfaces")
    if _is_address(section.interface):
        _sub(interfaces, "NetworkInterface", address=section.interface)
    else:
        _sub(interfaces, "NetworkInterface", name=section.interface)
    if _ipv6(section):
        _sub(general, "Transport", "udp6")
    _sub(general, "AllowMulticast", "false")
    if section.interface == LOOPBACK_INTERFACE:
        _sub(general, "MaxMessageSize", "65000B")
        _sub(general, "FragmentSize", "62000B")
    discovery = _sub(domain, "Discovery")
    _sub(discovery, "ParticipantIndex", "auto")
    _sub(discovery, "MaxAutoParticipantIndex", str(MAX_PARTICIPANT_INDEX))
    _sub(discovery, "LeaseDuration", f"{round(section.lease_duration_s * 1000)}ms")
    peers = _sub(discovery, "Peers")
    for peer in section.peers:
        _sub(peers, "Peer", address=peer)
    internal = _sub(domain, "Internal")
    _sub(internal, "SocketReceiveBufferSize", max="4MiB")
    _sub(internal, "SocketSendBufferSize", max="4MiB")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def node_dds_config(section: DdsSection) -> str | None:
    """What to pass as ``CycloneTransport(config=...)`` on every participant of a node.

    :param section: the ``[dds]`` table of the platform configuration.
    :returns: ``None`` for the packaged loopback configuration, an absolute file path, or XML text.
    """
    if section.config is not None:
        return str(section.config.absolute())
    if section.is_default:
        return None
    return cyclone_xml(section)
