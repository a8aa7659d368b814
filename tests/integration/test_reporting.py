"""Information reporting up the chain (信息报送, CONTRACT.md section 8) against
the real RabbitMQ and both databases, with two instances of escalation: the
duty starts at receipt or at an update, a missed report is announced once,
reports reach the centers above the town, the receivers sign for them."""

from __future__ import annotations

import pytest
from nameko.exceptions import RemoteError

from services.dispatch.service import DispatchService
from services.escalation.service import EscalationService
from services.intake.service import IntakeService
from tests.conftest import sample_network, wait_for
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.integration

QIANWEI = "511123"
CITY = "511100"
SERVICES = (IntakeService, DispatchService, EscalationService)


def refused(call, exc_type: str) -> None:
    with pytest.raises(RemoteError) as error:
        call()
    assert error.value.exc_type == exc_type, error.value


def start(run_services, network_file, first_s: int, final_s: int) -> None:
    reporting = {**sample_network()["reporting"], "first_s": first_s, "final_s": final_s}
    network = network_file(reporting=reporting)
    run_services(*SERVICES, LINKAGE_NETWORK=network)
    run_services(EscalationService, LINKAGE_NETWORK=network)  # a second instance


def orders_of(rpc, incident_id):
    return wait_for(lambda: rpc.dispatch.list_orders(incident_id=incident_id), message="orders")


def announced(events, event_type, count=1):
    """Exactly `count` events of `event_type`, once the stream has gone quiet."""
    wait_for(lambda: events.drain() and len(events.of_type(event_type)) >= count)
    events.drain(timeout=1.5)
    found = events.of_type(event_type)
    assert len(found) == count, found
    return found


def test_a_late_first_report_is_announced_once_and_the_county_signs_for_it(
    run_services, network_file, rpc, rpc_as, tap
):
    start(run_services, network_file, first_s=1, final_s=3600)
    events = tap("escalation")
    incident = rpc.intake.submit_report(report(category="mass.gathering", crowd_size=40))
    incident = incident["incident_id"]
    orders_of(rpc, incident)

    [missed] = announced(events, "report_overdue")
    assert (missed["incident_id"], missed["center"], missed["kind"]) == (
        incident,
        DONGSHAN,
        "first",
    )

    with rpc_as("center", sub="东山值班员", center=DONGSHAN) as town:
        refused(lambda: town.escalation.file_report(incident, "initial", "x"), "ValidationError")
        refused(lambda: town.escalation.file_report(incident, "first", ""), "ValidationError")
        refused(lambda: town.escalation.file_report("nope", "first", "x"), "NotFound")
        filed = town.escalation.file_report(incident, "first", "东山镇广场聚集约40人，已劝导")
    assert filed["filed_by"] == DONGSHAN and filed["operator"] == "东山值班员"
    assert [r["center"] for r in filed["recipients"]] == [QIANWEI, CITY]
    [sent] = announced(events, "report_filed")
    assert sent["answers"] == [{"kind": "first", "due_at": missed["due_at"], "late": True}]

    with (
        rpc_as("center", center="511129101") as stranger,
        rpc_as(
            "department", center=DONGSHAN, department=orders_of(rpc, incident)[0]["department"]
        ) as unit,
    ):
        refused(lambda: stranger.escalation.file_report(incident, "progress", "x"), "Forbidden")
        refused(lambda: unit.escalation.file_report(incident, "progress", "x"), "Forbidden")
        refused(lambda: stranger.escalation.inbox(QIANWEI), "Forbidden")
        refused(lambda: stranger.escalation.acknowledge(filed["report_id"]), "Forbidden")

    with rpc_as("center", sub="犍为县值班员", center=QIANWEI) as county:
        [waiting] = county.escalation.inbox(QIANWEI, unacknowledged=True)
        assert (waiting["report_id"], waiting["acknowledged_at"]) == (filed["report_id"], None)
        signed = county.escalation.acknowledge(filed["report_id"])
        again = county.escalation.acknowledge(filed["report_id"])
        assert signed == again
        assert county.escalation.inbox(QIANWEI, unacknowledged=True) == []
        [done] = county.escalation.inbox(QIANWEI, unacknowledged=False)
        assert done["acknowledged_by"] == "犍为县值班员"
    [acknowledged] = announced(events, "report_acknowledged")
    assert (acknowledged["center"], acknowledged["operator"]) == (QIANWEI, "犍为县值班员")
    assert len(rpc.escalation.inbox(CITY, unacknowledged=True)) == 1  # the city has not signed

    [owed] = rpc.escalation.command(incident)["reporting"]  # what the duty room sees
    assert (owed["kind"], owed["center"], owed["overdue"]) == ("first", DONGSHAN, True)
    assert owed["triggers"] == ["crowd_size", "report_up"]
    assert owed["answered_by"] == filed["report_id"]

    [record] = rpc.escalation.reports(incident)
    assert [(r["center"], r["acknowledged_by"]) for r in record["recipients"]] == [
        (QIANWEI, "犍为县值班员"),
        (CITY, None),
    ]


def test_an_update_that_makes_the_incident_reportable_starts_the_clock(
    run_services, network_file, rpc, tap
):
    start(run_services, network_file, first_s=1, final_s=3600)
    events = tap("escalation")
    incident = rpc.intake.submit_report(report())["incident_id"]  # a burst main: not reportable
    orders_of(rpc, incident)
    events.drain(timeout=2.5)
    assert events.of_type("report_overdue") == []
    assert rpc.escalation.command(incident)["reporting"] == []

    rpc.intake.update_incident(incident, {"casualties": 2}, "两人受伤送医")
    [missed] = announced(events, "report_overdue")
    assert (missed["incident_id"], missed["kind"]) == (incident, "first")
    [owed] = rpc.escalation.command(incident)["reporting"]
    assert (owed["triggers"], owed["overdue"], owed["answered_at"]) == (["casualties"], True, None)


def test_an_on_time_first_report_and_the_final_report_after_closing(
    run_services, network_file, rpc, rpc_as, tap
):
    start(run_services, network_file, first_s=3600, final_s=1)
    events = tap("escalation")
    incident = rpc.intake.submit_report(report(casualties=1))["incident_id"]
    [order] = orders_of(rpc, incident)
    with rpc_as("center", center=DONGSHAN) as town:
        wait_for(lambda: _filed(town, incident, "first"), message="the incident in escalation")
        [first] = announced(events, "report_filed")
        assert [(a["kind"], a["late"]) for a in first["answers"]] == [("first", False)]
        progress = town.escalation.file_report(incident, "progress", "抢修进行中")
        for step in ("accept", "arrive"):
            getattr(rpc.dispatch, step)(order["order_id"])
        rpc.dispatch.complete(order["order_id"], "已修复")
        town.intake.close_incident(incident, {"result": "已修复"})
        [missed] = announced(events, "report_overdue")
        assert (missed["kind"], missed["center"]) == ("final", DONGSHAN)
        town.escalation.file_report(incident, "final", "已处置完毕，无人员伤亡")
    filed = announced(events, "report_filed", count=3)
    assert filed[1]["report_id"] == progress["report_id"] and filed[1]["answers"] == []
    assert [(a["kind"], a["late"]) for a in filed[2]["answers"]] == [("final", True)]
    assert [r["kind"] for r in rpc.escalation.reports(incident)] == ["first", "progress", "final"]


def _filed(town, incident_id, kind):
    try:
        return town.escalation.file_report(incident_id, kind, "东山镇主街爆管，已组织抢修")
    except RemoteError as error:
        if error.exc_type == "NotFound":  # escalation has not heard of it yet
            return None
        raise
