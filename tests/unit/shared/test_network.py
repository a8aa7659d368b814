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


def test_dongshan_has_its_24_units_and_the_first_level_units_its_rules_name(network):
    dongshan = network.centers["511123101"]
    assert dongshan.name == "东山镇"
    names = [d.name for d in network.departments_of("511123101")]
    assert len(names) == 24 + 3
    # the arrival rule names these first-level units beside the 24-unit matrix
    assert {"工商所", "环卫站", "公路养护队"} <= set(names)
    assert all(
        d.tier == 1
        for d in network.departments_of("511123101")
        if d.name in {"工商所", "环卫站", "公路养护队"}
    )


def test_the_sample_follows_dongshans_plan_on_water_traffic_and_housing(network):
    vessel = network.categories["waterway.vessel_accident"]
    assert (vessel.lead, "maritime" in vessel.assist) == ("traffic", True)
    assert network.departments["dongshan-housing"].roles == ("housing",)
    transfers = {c.transfer_to for c in network.categories.values() if c.transfer_to}
    assert {"110", "119", "120", "信访", "法院"} <= transfers


def test_sample_categories_cover_every_dongshan_unit_and_the_named_emergencies(network):
    leads = {c.lead for c in network.categories.values()}
    for unit in network.departments_of("511123101"):
        assert leads & set(unit.roles), f"no category led by {unit.name}"
    names = " ".join(c.code for c in network.categories.values())
    for needed in ("fire", "traffic.accident", "mass", "epidemic", "geo", "pollution"):
        assert needed in names, needed


def test_every_county_can_lead_every_dispatched_category(network):
    dispatched = [c for c in network.categories.values() if c.transfer_to is None]
    for county in (c for c in network.centers.values() if c.level == "county"):
        for category in dispatched:
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


# -- 信息报送, reply deadline, transfers (CONTRACT.md sections 4, 7 and 8) --------


def test_sample_sets_the_reporting_block_of_the_contract(network):
    reporting = network.reporting
    assert (reporting.grade, reporting.crowd, reporting.casualties) == ("III", 30, 1)
    assert reporting.first.total_seconds() == 1800 and reporting.final.total_seconds() == 86400
    assert reporting.up_to == "city"
    assert network.reply_workdays == 5


def test_sample_mass_gathering_is_reported_up_and_crimes_are_transferred_to_110(network):
    assert network.categories["mass.gathering"].report_up is True
    assert network.categories["water.burst_main"].report_up is False
    crime = network.categories["crime.in_progress"]
    assert crime.transfer_to == "110" and crime.lead == "" and crime.assist == ()
    assert network.categories["water.burst_main"].transfer_to is None


def test_a_network_without_reporting_or_reply_workdays_gets_the_defaults():
    raw = sample_network()
    del raw["reporting"], raw["reply_workdays"]
    network = parse_network(raw)
    assert network.reporting.grade == "III" and network.reporting.up_to == "city"
    assert network.reporting.first.total_seconds() == 1800
    assert network.reply_workdays == 5


def test_a_partial_reporting_block_keeps_the_defaults_for_what_it_leaves_out():
    raw = sample_network()
    raw["reporting"] = {"grade": "II", "up_to": "county"}
    reporting = parse_network(raw).reporting
    assert (reporting.grade, reporting.up_to, reporting.crowd) == ("II", "county", 30)


def test_a_transfer_category_may_still_name_a_lead_role_which_is_checked():
    raw = sample_network()
    raw["categories"].append(
        {"code": "x.transfer", "name": "转办", "lead": "astrology", "transfer_to": "120"}
    )
    with pytest.raises(NetworkError, match="category x.transfer: role 'astrology'"):
        parse_network(raw)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda n: n["reporting"].update(grade="V"), "reporting.grade must be one of I, II"),
        (lambda n: n["reporting"].update(crowd=-1), "reporting.crowd must be a non-negative"),
        (lambda n: n["reporting"].update(casualties=0), "reporting.casualties must be a positive"),
        (lambda n: n["reporting"].update(first_s=0), "reporting.first_s must be a number"),
        (lambda n: n["reporting"].update(final_s="1d"), "reporting.final_s must be a number"),
        (lambda n: n["reporting"].update(up_to="town"), "reporting.up_to must be one of county"),
        (lambda n: n["reporting"].update(first=1800), "reporting: unknown key 'first'"),
        (lambda n: n.update(reporting=[1, 2]), "'reporting' must be a mapping"),
        (lambda n: n.update(reply_workdays=0), "reply_workdays must be a whole number"),
        (lambda n: n.update(reply_workdays=2.5), "reply_workdays must be a whole number"),
        (
            lambda n: n["categories"][0].update(report_up="yes"),
            f"category {sample_network()['categories'][0]['code']}: report_up must be",
        ),
        (
            lambda n: n["categories"].append({"code": "x.t", "name": "转办", "transfer_to": ""}),
            "category x.t: 'transfer_to' must be a non-empty string",
        ),
        (
            lambda n: n["categories"].append({"code": "x.l", "name": "无主管"}),
            "category x.l: 'lead' must be a non-empty string",
        ),
    ],
)
def test_a_bad_reporting_or_category_entry_is_refused_by_name(mutate, message):
    with pytest.raises(NetworkError) as error:
        parse_network(broken(mutate))
    assert message in str(error.value)
