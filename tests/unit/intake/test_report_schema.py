"""A report is checked field by field against the contract and the network."""

import pytest

from services.intake.schemas import ReportSchema
from shared.dependencies import validated
from shared.errors import ValidationError
from shared.network import load_network
from tests.support.reports import report


@pytest.fixture(scope="module")
def network():
    return load_network()


def check(data, network):
    return validated(ReportSchema(), data, network=network)


def errors_of(data, network) -> dict:
    with pytest.raises(ValidationError) as error:
        check(data, network)
    return error.value.errors


def test_a_valid_report_loads(network):
    loaded = check(report(crowd_size=150, grade="III"), network)
    assert loaded["crowd_size"] == 150 and loaded["reported_at"].utcoffset() is not None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel": "999"}, "channel"),
        ({"category": "no.such"}, "category"),
        ({"request_type": "gossip"}, "request_type"),
        ({"title": "x" * 201}, "title"),
        ({"title": ""}, "title"),
        ({"description": "x" * 4001}, "description"),
        ({"reported_at": "2026-11-27T09:15:00"}, "reported_at"),  # no offset
        ({"reported_at": "yesterday"}, "reported_at"),
        ({"crowd_size": -1}, "crowd_size"),
        ({"crowd_size": 1.5}, "crowd_size"),
        ({"crowd_size": "150"}, "crowd_size"),
        ({"crowd_size": True}, "crowd_size"),
        ({"grade": "V"}, "grade"),
        ({"location": {"town": "511123", "address": "县城"}}, "location.town"),  # a county
        ({"location": {"town": "511123101"}}, "location.address"),
        ({"location": {"town": "511123101", "address": "a", "lat": 91}}, "location.lat"),
        ({"reporter": {"name": "张三", "phone": "call me"}}, "reporter.phone"),
        ({"title": "bad\x00byte"}, "title"),
        ({"unexpected": 1}, "unexpected"),
        ({"center": "511129"}, "center"),  # another county is not above Dongshan
    ],
)
def test_each_bad_field_is_named(network, changes, field):
    assert field in errors_of(report(**changes), network)


def test_missing_fields_are_all_listed(network):
    errors = errors_of({"channel": "12345"}, network)
    for field in ("source_system", "external_id", "category", "title", "location", "reported_at"):
        assert field in errors


def test_a_county_may_take_a_report_for_its_town(network):
    assert check(report(center="511123"), network)["center"] == "511123"


def test_reporter_details_never_appear_in_errors(network):
    errors = errors_of(report(reporter={"name": "王小明", "phone": "bad phone 123"}), network)
    assert "王小明" not in str(errors) and "bad phone" not in str(errors)
