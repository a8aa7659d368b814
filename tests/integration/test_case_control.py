"""The case under the operators' control, intake's and escalation's side
(CONTRACT.md section 7): updates judged again, closing only when every order
is done, reopening, each announced once."""

from __future__ import annotations

import pytest
from nameko.exceptions import RemoteError

from services.dispatch.service import DispatchService
from services.escalation.service import EscalationService
from services.intake.service import IntakeService
from tests.conftest import wait_for
from tests.support.calls import in_command
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.integration

CITY = "511100"


def refused(call, exc_type: str) -> None:
    with pytest.raises(RemoteError) as error:
        call()
    assert error.value.exc_type == exc_type, error.value


def test_a_gathering_of_80_updated_to_600_puts_the_city_in_command_in_one_step(
    run_services, rpc, rpc_as, tap
):
    run_services(IntakeService, DispatchService, EscalationService)
    run_services(IntakeService, DispatchService, EscalationService)
    updates = tap("intake", "incident_updated")
    incident = rpc.intake.submit_report(report(category="mass.gathering", crowd_size=80))[
        "incident_id"
    ]
    wait_for(lambda: in_command(rpc, incident) == DONGSHAN)
    with rpc_as("center", sub="值班员-张", center=DONGSHAN) as town:
        answer = town.intake.update_incident(incident, {"crowd_size": 600}, "人数激增")
    assert answer["changes"] == {"crowd_size": {"old": 80, "new": 600}}
    wait_for(lambda: in_command(rpc, incident) == CITY, timeout=20)
    assert [(m["reason"], m["to_center"]) for m in rpc.escalation.chain(incident)] == [
        ("crowd_size", CITY)
    ]
    wait_for(lambda: updates.drain() and updates.of_type("incident_updated"))
    updates.drain(timeout=1.0)
    [event] = updates.of_type("incident_updated")
    assert event["operator"] == "值班员-张" and event["crowd_size"] == 600
    assert rpc.intake.get_incident(incident)["crowd_size"] == 600


def test_bad_or_empty_changes_are_refused_and_change_nothing(run_services, rpc):
    run_services(IntakeService)
    incident = rpc.intake.submit_report(report(crowd_size=5))["incident_id"]
    for changes, field in (
        ({}, "_schema"),
        ({"crowd_size": -1}, "crowd_size"),
        ({"category": "no.such"}, "category"),
        ({"town": DONGSHAN}, "town"),
        ("crowd", "_schema"),
    ):
        with pytest.raises(RemoteError) as error:
            rpc.intake.update_incident(incident, changes, "why")
        assert error.value.exc_type == "ValidationError" and field in error.value.value
    assert rpc.intake.get_incident(incident)["crowd_size"] == 5


def test_an_incident_closes_only_when_its_orders_are_done_and_can_be_reopened(
    run_services, rpc, rpc_as, tap
):
    """With two instances of each service: each step announced once."""
    run_services(IntakeService, DispatchService)
    run_services(IntakeService, DispatchService)
    events = tap("intake")
    incident = rpc.intake.submit_report(report())["incident_id"]
    [order] = wait_for(lambda: rpc.dispatch.list_orders(incident_id=incident))
    summary = {"result": "管道已修复", "casualties": 0, "measures": "关阀抢修"}
    refused(lambda: rpc.intake.close_incident(incident, summary), "InvalidTransition")
    assert rpc.intake.get_incident(incident)["status"] == "open"

    for step in ("accept", "arrive"):
        getattr(rpc.dispatch, step)(order["order_id"])
    rpc.dispatch.complete(order["order_id"], "已修复")
    refused(lambda: rpc.intake.close_incident(incident, {"result": ""}), "ValidationError")
    with rpc_as("center", center="511129101") as stranger:  # a town of another county
        refused(lambda: stranger.intake.close_incident(incident, summary), "Forbidden")
    with rpc_as("center", sub="值班员-张", center=DONGSHAN) as town:
        closed = town.intake.close_incident(incident, summary)
        assert closed["status"] == "closed"
        refused(lambda: town.intake.close_incident(incident, summary), "InvalidTransition")
        refused(
            lambda: town.intake.update_incident(incident, {"title": "x"}, "y"), "InvalidTransition"
        )
        shown = town.intake.get_incident(incident)
        assert shown["status"] == "closed" and shown["summary"] == summary
        assert town.intake.reopen_incident(incident, "群众再次反映")["status"] == "open"
        refused(lambda: town.intake.reopen_incident(incident, "again"), "InvalidTransition")
    wait_for(lambda: events.drain() and events.of_type("incident_reopened"))
    events.drain(timeout=1.0)
    assert len(events.of_type("incident_reopened")) == 1
    [closing] = events.of_type("incident_closed")
    assert closing["summary"] == summary and closing["operator"] == "值班员-张"
    assert rpc.intake.get_incident(incident)["closed_at"] is None
