"""The network file: the sample is complete, a bad file is refused by name."""

import copy
import subprocess
import sys

import pytest
import yaml

from shared.network import NetworkError, load_network, parse_network
from tests.conftest import sample_network, write_network
from tests.support.processes import ROOT


@pytest.fixture(scope="module")
def network():
    return load_network()


def test_sample_models_a_city_two_counties_and_their_towns(network):
    levels = [c.level for c in network.centers.values()]
    assert levels.count("city") == 1
    counties = [c for c in network.centers.values() if c.level == "county"]
    assert len(counties) == 2
    for county in counties:
        towns = [c for c in network.towns() if c.parent == county.code]
        assert len(towns) >= 3, county.name


def test_dongshan_has_its_24_units_from_the_seed(network):
    dongshan = network.centers["511123101"]
    assert dongshan.name == "东山镇"
    assert len(network.departments_of("511123101")) == 24


def test_sample_categories_cover_every_dongshan_unit_and_the_named_emergencies(network):
    leads = {c.lead for c in network.categories.values()}
    for unit in network.departments_of("511123101"):
        assert leads & set(unit.roles), f"no category led by {unit.name}"
    names = " ".join(c.code for c in network.categories.values())
    for needed in ("fire", "traffic.accident", "mass", "epidemic", "geo", "pollution"):
        assert needed in names, needed


def test_every_county_can_lead_every_category(network):
    for county in (c for c in network.centers.values() if c.level == "county"):
        for category in network.categories.values():
            assert network.holders(county.code, category.lead), (county.name, category.code)


def broken(mutate) -> dict:
    raw = copy.deepcopy(sample_network())
    mutate(raw)
    return raw


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda n: n["centers"].append(
                {"code": "999", "name": "X镇", "level": "town", "parent": "404"}
            ),
            "center 999: unknown parent 404",
        ),
        (
            lambda n: n["categories"].append(
                {"code": "odd.thing", "name": "怪事", "lead": "astrology", "assist": []}
            ),
            "category odd.thing: role 'astrology' is held by no department",
        ),
        (
            lambda n: n["departments"].append(dict(n["departments"][0])),
            f"department {sample_network()['departments'][0]['code']}: duplicate code",
        ),
        (
            lambda n: n["centers"].append(dict(n["centers"][0])),
            f"center {sample_network()['centers'][0]['code']}: duplicate code",
        ),
        (
            lambda n: n["categories"].append(dict(n["categories"][0])),
            f"category {sample_network()['categories'][0]['code']}: duplicate code",
        ),
        (
            lambda n: n["calendar"].update(working_hours=["08:30-12:00", "14:00-25:30"]),
            "calendar.working_hours[1]: '14:00-25:30' is not a time range",
        ),
        (
            lambda n: n["calendar"].update(working_hours=["12:00-08:30"]),
            "ends before it starts",
        ),
        (
            lambda n: n["departments"].append(
                {
                    "code": "ghost",
                    "center": "000",
                    "name": "无",
                    "roles": ["water"],
                    "tier": 1,
                    "duty": "24h",
                }
            ),
            "department ghost: unknown center 000",
        ),
    ],
)
def test_a_bad_network_is_refused_with_a_message_naming_the_entry(mutate, message):
    with pytest.raises(NetworkError) as error:
        parse_network(broken(mutate))
    assert message in str(error.value)


def test_a_service_does_not_start_on_a_bad_network(tmp_path):
    raw = broken(
        lambda n: n["centers"].append(
            {"code": "999", "name": "X镇", "level": "town", "parent": "404"}
        )
    )
    path = write_network(tmp_path / "bad.yaml", raw)
    done = subprocess.run(
        [sys.executable, "-m", "services.dispatch"],
        cwd=ROOT,
        env={"LINKAGE_NETWORK": path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "center 999: unknown parent 404" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreadable_or_invalid_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(NetworkError, match="cannot be read"):
        load_network(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("centers: [unclosed", encoding="utf-8")
    with pytest.raises(NetworkError, match="not valid YAML"):
        load_network(tmp_path / "bad.yaml")
    assert yaml  # the loader's parser, also used by the fixtures
