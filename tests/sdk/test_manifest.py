"""Manifest validation names the field and the reason."""

from __future__ import annotations

import pytest

from hardpoint import Manifest, ManifestError

GOOD = {
    "name": "nav",
    "version": "1.2.0",
    "supplier": "acme",
    "provides": ["hardpoint.nav.v1.NavState"],
    "requires": [],
}


def test_valid_manifest_loads() -> None:
    m = Manifest.load(GOOD)
    assert m.provides == ("hardpoint.nav.v1.NavState",)
    assert m.isolation == "process"


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"name": "Nav!"}, "name", "pattern"),
        ({"version": "one"}, "version", "PEP 440"),
        ({"supplier": ""}, "supplier", "at least 1"),
        ({"provides": ["nav.NavState"]}, "provides", "not an interface name"),
        ({"requires": ["hardpoint.nav.v1.NavState", "hardpoint.nav.v1.NavState"]}, "requires", "twice"),
        ({"isolation": "container"}, "isolation", "process"),
        ({"colour": "blue"}, "colour", "Extra inputs"),
        ({"rates": {"hardpoint.nav.v1.NavState": 0}}, "rates", "finite number of Hz above 0"),
        ({"rates": {"hardpoint.nav.v1.NavState": float("inf")}}, "rates", "finite number of Hz above 0"),
        ({"rates": {"nav.NavState": 2.0}}, "rates", "not an interface name"),
        ({"rates": {"hardpoint.track.v1.SensorTrack": 2.0}}, "rates names hardpoint.track.v1.SensorTrack", "provide"),
    ],
)
def test_invalid_manifest_names_field_and_reason(change: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.load({**GOOD, **change}, origin="nav/manifest.toml")
    text = str(info.value)
    assert text.startswith("nav/manifest.toml: invalid manifest")
    assert field in text
    assert reason in text


def test_uses_takes_interfaces_or_star() -> None:
    m = Manifest.load({**GOOD, "uses": ["hardpoint.tasking.v1.TaskRequest", "*"]})
    assert m.uses == ("hardpoint.tasking.v1.TaskRequest", "*")
    with pytest.raises(ManifestError, match="uses"):
        Manifest.load({**GOOD, "uses": ["tasks"]})


def test_rates_declare_a_provided_interface_slower_than_nominal() -> None:
    """``rates`` (CF-BUS-007): the rate per key of a provided interface; none by default."""
    assert Manifest.load(GOOD).rates == {}
    m = Manifest.load({**GOOD, "rates": {"hardpoint.nav.v1.NavState": 5.0}})
    assert m.rates == {"hardpoint.nav.v1.NavState": 5.0}
    assert m.model_dump(mode="json")["rates"] == {"hardpoint.nav.v1.NavState": 5.0}
