"""Open311 GeoReport v2 over the network and intake's reports: plain mappings."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest

from services.gateway import open311
from services.intake.schemas import ReportSchema
from shared.network import load_network

NETWORK = load_network()
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
DONGSHAN = "511123101"
FORM = {
    "service_code": "water.burst_main",
    "lat": "29.2",
    "long": "103.9",
    "attribute[town]": DONGSHAN,
    "description": "水管破裂",
    "first_name": "小明",
    "last_name": "王",
    "phone": "13800001234",
}


def test_services_are_the_networks_categories_and_town_is_required():
    codes = {s["service_code"] for s in open311.service_list(NETWORK)}
    assert codes == set(NETWORK.categories)
    [town] = open311.service_definition(NETWORK, "water.burst_main")["attributes"]
    assert town["required"] and town["code"] == "town"
    keys = {v["key"] for v in town["values"]}
    assert DONGSHAN in keys and "511123" not in keys  # towns only, not the county
    with pytest.raises(open311.Open311Error) as raised:
        open311.service_definition(NETWORK, "no.such")
    assert raised.value.body() == [{"code": 404, "description": "no service no.such"}]


def test_a_posted_request_is_a_report_intake_accepts():
    report = open311.report_from_request({**FORM, "device_id": "d1"}, "app", "e1", NETWORK, NOW)
    loaded = ReportSchema(context={"network": NETWORK}).load(report)
    assert loaded["channel"] == "app" and loaded["request_type"] == "help"
    assert loaded["location"] == {
        "town": DONGSHAN,
        "address": "29.2,103.9",
        "lat": 29.2,
        "lon": 103.9,
    }
    assert loaded["reporter"] == {"name": "王 小明", "phone": "13800001234"}
    without_device = open311.report_from_request(FORM, "app", "e1", NETWORK, NOW)
    assert without_device["channel"] == "platform"


@pytest.mark.parametrize(
    "change,status,words",
    [
        ({"service_code": None}, 400, "service_code"),
        ({"service_code": "no.such"}, 404, "no service"),
        ({"lat": None, "address_string": None}, 400, "location"),
        ({"lat": "north"}, 400, "lat"),
        ({"attribute[town]": None}, 400, "attribute[town]"),
    ],
)
def test_a_request_open311_refuses_names_why(change, status, words):
    form = {k: v for k, v in {**FORM, **change}.items() if v is not None}
    with pytest.raises(open311.Open311Error) as raised:
        open311.report_from_request(form, "app", "e1", NETWORK, NOW)
    assert raised.value.status == status and words in raised.value.description


def test_the_source_system_is_the_tokens():
    assert open311.source_system(["b", "a"], None) == "a"
    assert open311.source_system(["b", "a"], "b") == "b"
    assert open311.source_system(["a"], "other") == "a"
    with pytest.raises(open311.Open311Error):
        open311.source_system([], None)


def incident(**changes) -> dict:
    base = {
        "incident_id": "i1",
        "status": "open",
        "category": "water.burst_main",
        "center": DONGSHAN,
        "title": "t",
        "description": "d",
        "location": {"town": DONGSHAN, "address": "主街", "lat": 29.2, "lon": 103.9},
        "reported_at": "2026-12-01T10:00:00+08:00",
        "received_at": "2026-12-01T10:00:01+08:00",
        "closed_at": None,
        "command_changed_at": None,
        "summary": None,
        "transferred_to": None,
    }
    return {**base, **changes}


def test_an_incident_is_open_until_closed_or_transferred():
    view = open311.request_view(incident(), NETWORK)
    assert (view["status"], view["service_notice"], view["long"]) == ("open", None, 103.9)
    assert view["agency_responsible"] == "东山镇"
    closed = incident(status="closed", summary={"result": "已修复"}, closed_at="x")
    assert open311.request_view(closed, NETWORK)["service_notice"] == "已修复"
    moved = open311.request_view(incident(status="transferred", transferred_to="110"), NETWORK)
    assert (moved["status"], moved["service_notice"]) == ("closed", "transferred to 110")


def test_the_window_defaults_to_the_specs_90_days():
    since, until = open311.window(None, None, NOW)
    assert (since, until) == ("2026-09-02T02:00:00+00:00", "2026-12-01T02:00:00+00:00")
    with pytest.raises(open311.Open311Error):
        open311.window("2026-12-01T00:00:00", None, NOW)  # no offset
    with pytest.raises(open311.Open311Error):
        open311.request_ids(",".join(str(i) for i in range(101)))


def test_xml_is_the_specs_shape():
    xml = open311.to_xml("requests", [open311.request_view(incident(), NETWORK)])
    root = ElementTree.fromstring(xml)
    assert root.tag == "service_requests"
    assert root.find("request").findtext("service_request_id") == "i1"
    definition = open311.to_xml("definition", open311.service_definition(NETWORK, "water.supply"))
    values = ElementTree.fromstring(definition).find("attributes/attribute/values")
    assert values.find("value").findtext("key")
