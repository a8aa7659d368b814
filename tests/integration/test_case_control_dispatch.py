"""Dispatch's side of the case under the operators' control (CONTRACT.md
section 7), against RabbitMQ and both databases, with two dispatch instances:
added, cancelled, reassigned and urged orders, reclassification, request
types, the duty roster, the new list filters and the board."""

from datetime import datetime
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.exceptions import RemoteError

from services.dispatch.service import DispatchService
from services.intake.service import IntakeService
from tests.conftest import sample_network, wait_for
from tests.integration.test_intake_dispatch import orders_of
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.integration

COUNTY = "511123"
OTHER_COUNTY = "511129"
YUJIN = "511123102"
LEADER = {"name": "李镇长", "phone": "13900000001"}
OFFICERS = [
    {"name": "值班员甲", "phone": "13900000002"},
    {"name": "值班员乙", "phone": "0833-1234567"},
]


def start(run_services, **config):
    """Intake and two dispatch instances (each event must still go out once)."""
    run_services(IntakeService, DispatchService, **config)
    run_services(DispatchService, **config)


def refused(call, exc_type: str) -> None:
    with pytest.raises(RemoteError) as error:
        call()
    assert error.value.exc_type == exc_type, error.value.value


def settled(events, *kinds, seconds: float = 1.0) -> None:
    """Wait for each kind of event, then a little more so duplicates would show."""
    wait_for(lambda: events.drain() and all(events.of_type(kind) for kind in kinds))
    eventlet.sleep(seconds)
    events.drain()


def test_the_center_in_command_adds_a_unit_of_its_area(run_services, rpc, rpc_as, tap):
    start(run_services)
    events = tap("dispatch")
    incident = rpc.intake.submit_report(report())["incident_id"]
    before = orders_of(rpc, incident, 1)
    with rpc_as("center", "值班员-张", center=DONGSHAN) as town:
        added = town.dispatch.add_order(incident, "dongshan-justice", "需要司法所协助调解")
        assert (added["cause"], added["role"], added["status"]) == ("added", "assist", "dispatched")
        refused(
            lambda: town.dispatch.add_order(incident, "dongshan-justice", "再派"),
            "InvalidTransition",
        )
        refused(
            lambda: town.dispatch.add_order(incident, "qianwei-police", "县里"), "ValidationError"
        )
        refused(lambda: town.dispatch.add_order(incident, "nope", "x"), "ValidationError")
        refused(lambda: town.dispatch.add_order(incident, "dongshan-police", ""), "ValidationError")
    with rpc_as("center", center=COUNTY) as county:  # in scope, not in command
        refused(lambda: county.dispatch.add_order(incident, "qianwei-police", "x"), "Forbidden")
    history = rpc.dispatch.get_order(added["order_id"])["history"]
    assert (history[0]["operator"], history[0]["detail"]) == ("值班员-张", "需要司法所协助调解")
    assert len(rpc.dispatch.list_orders(incident_id=incident)) == len(before) + 1

    settled(events, "orders_dispatched")
    sent = [e for e in events.of_type("order_dispatched") if e["cause"] == "added"]
    batches = [e for e in events.of_type("orders_dispatched") if e["cause"] == "added"]
    assert [e["order_id"] for e in sent] == [added["order_id"]]
    assert [[o["order_id"] for o in b["orders"]] for b in batches] == [[added["order_id"]]]


def test_an_order_is_urged_then_cancelled_by_a_center_in_scope(run_services, rpc, rpc_as, tap):
    start(run_services)
    events = tap("dispatch")
    incident = rpc.intake.submit_report(report())["incident_id"]
    [order] = orders_of(rpc, incident, 1)
    oid = order["order_id"]
    with rpc_as("auditor", center=COUNTY) as auditor:
        refused(lambda: auditor.dispatch.urge(oid, "快"), "Forbidden")
    with rpc_as("center", center=OTHER_COUNTY) as stranger:
        refused(lambda: stranger.dispatch.cancel_order(oid, "x"), "Forbidden")
    with rpc_as("department", center=DONGSHAN, department=order["department"]) as unit:
        refused(lambda: unit.dispatch.cancel_order(oid, "不想做"), "Forbidden")
    with rpc_as("center", center=COUNTY) as county:  # the town is in its area
        assert county.dispatch.urge(oid, "请尽快签收")["urges"] == 1
        refused(lambda: county.dispatch.urge(oid, ""), "ValidationError")
        cancelled = county.dispatch.cancel_order(oid, "重复派单")
        assert cancelled["status"] == "cancelled" and cancelled["returns"] == 0
        refused(lambda: county.dispatch.cancel_order(oid, "再撤"), "InvalidTransition")
        refused(lambda: county.dispatch.urge(oid, "再催"), "InvalidTransition")
    view = rpc.dispatch.get_order(oid)
    assert [h["action"] for h in view["history"]] == ["dispatch", "urge", "cancel"]
    assert (view["status"], view["urges"]) == ("cancelled", 1)

    settled(events, "order_urged", "order_cancelled")
    [urged] = events.of_type("order_urged")
    [withdrawn] = events.of_type("order_cancelled")
    assert (urged["note"], urged["automatic"]) == ("请尽快签收", False)
    assert (withdrawn["cause"], withdrawn["reason"]) == ("cancelled", "重复派单")
    assert events.of_type("order_returned") == []


def test_a_reassigned_order_is_replaced_not_returned(run_services, rpc, rpc_as, tap):
    start(run_services)
    events = tap("dispatch")
    incident = rpc.intake.submit_report(report(category="dispute.neighbour"))["incident_id"]
    [order] = orders_of(rpc, incident, 1)
    oid = order["order_id"]
    with rpc_as("center", center=DONGSHAN) as town:
        refused(lambda: town.dispatch.reassign(oid, order["department"], "x"), "ValidationError")
        refused(lambda: town.dispatch.reassign(oid, "qianwei-justice", "x"), "ValidationError")
        new = town.dispatch.reassign(oid, "dongshan-justice", "司法所更合适")
        refused(lambda: town.dispatch.reassign(oid, "dongshan-police", "x"), "InvalidTransition")
    with rpc_as("center", center=OTHER_COUNTY) as stranger:
        refused(
            lambda: stranger.dispatch.reassign(new["order_id"], "dongshan-police", "x"), "Forbidden"
        )
    assert (new["replaces"], new["cause"], new["department"]) == (
        oid,
        "reassigned",
        "dongshan-justice",
    )
    assert (new["role"], new["served_role"]) == (order["role"], order["served_role"])
    old = rpc.dispatch.get_order(oid)
    assert (old["status"], old["returns"]) == ("cancelled", 0)
    assert len(rpc.dispatch.list_orders(incident_id=incident)) == 2

    settled(events, "order_cancelled", "orders_dispatched")
    [withdrawn] = events.of_type("order_cancelled")
    assert (withdrawn["cause"], withdrawn["replaced_by"]) == ("reassigned", new["order_id"])
    sent = [e for e in events.of_type("order_dispatched") if e["cause"] == "reassigned"]
    assert [(e["order_id"], e["replaces"]) for e in sent] == [(new["order_id"], oid)]
    assert events.of_type("order_returned") == []


def test_a_reclassified_incident_cancels_roles_no_longer_needed_and_adds_new_ones(
    run_services, rpc, tap
):
    start(run_services)
    events = tap("dispatch")
    incident = rpc.intake.submit_report(report())["incident_id"]  # water
    [water] = orders_of(rpc, incident, 1)
    rpc.intake.update_incident(incident, {"category": "fire.building"}, "误分类：实为火灾")
    needed = {"fire", "police", "health"}
    live = wait_for(
        lambda: (
            (found := rpc.dispatch.list_orders(incident_id=incident, open=True))
            and {o["served_role"] for o in found} == needed
            and found
        ),
        message="the fire category's orders",
    )
    assert all(o["cause"] == "reclassified" and o["center"] == DONGSHAN for o in live)
    assert rpc.dispatch.get_order(water["order_id"])["status"] == "cancelled"

    settled(events, "order_cancelled", "orders_dispatched")
    [withdrawn] = events.of_type("order_cancelled")
    assert (withdrawn["order_id"], withdrawn["cause"]) == (water["order_id"], "reclassified")
    [batch] = [e for e in events.of_type("orders_dispatched") if e["cause"] == "reclassified"]
    assert batch["category"] == "fire.building" and len(batch["orders"]) == len(live)


def test_a_consultation_gets_a_reply_deadline_and_overdue_orders_are_urged_once(
    run_services, rpc, tap, network_file
):
    deadlines = {**sample_network()["deadlines_s"], "accept": 1}
    start(run_services, LINKAGE_NETWORK=network_file(deadlines_s=deadlines))
    events = tap("dispatch")
    answer = rpc.intake.submit_report(report(request_type="consultation"))
    [order] = orders_of(rpc, answer["incident_id"], 1)
    assert order["arrive_by"] is None and order["reply_by"] > order["dispatched_at"]

    settled(events, "order_overdue", "order_urged", seconds=2)
    [dispatched] = events.of_type("order_dispatched")
    assert dispatched["arrive_by"] is None and dispatched["reply_by"]
    [overdue] = events.of_type("order_overdue")
    [urged] = events.of_type("order_urged")
    assert overdue["deadline"] == "accept" and urged["automatic"] is True
    view = rpc.dispatch.get_order(order["order_id"])
    assert view["urges"] == 1 and view["overdue"]
    assert [o["order_id"] for o in rpc.dispatch.list_orders(overdue=True)] == [order["order_id"]]
    assert rpc.dispatch.list_orders(overdue=False) == []


def test_the_duty_roster_reaches_off_hours_orders_and_the_board(
    run_services, rpc, rpc_as, network_file
):
    network = network_file(
        calendar={**sample_network()["calendar"], "working_hours": ["00:00-00:01"]},
        deadlines_s={**sample_network()["deadlines_s"], "accept": 4},
    )
    start(run_services, LINKAGE_NETWORK=network)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    with rpc_as("center", center=YUJIN) as neighbour:
        refused(lambda: neighbour.dispatch.set_duty(DONGSHAN, today, LEADER, OFFICERS), "Forbidden")
    with rpc_as("center", center=DONGSHAN) as town:
        town.dispatch.set_duty(DONGSHAN, today, LEADER, OFFICERS[:1])
        roster = town.dispatch.set_duty(DONGSHAN, today, LEADER, OFFICERS)  # replaces
        refused(
            lambda: town.dispatch.set_duty(DONGSHAN, today, {"name": "x"}, []), "ValidationError"
        )
        refused(lambda: town.dispatch.duty(DONGSHAN, "2020-01-01"), "NotFound")
    assert roster["officers"] == OFFICERS
    with rpc_as("auditor", center=COUNTY) as auditor:
        assert auditor.dispatch.duty(DONGSHAN, today)["officers"] == OFFICERS
    with rpc_as("center", center=OTHER_COUNTY) as stranger:
        refused(lambda: stranger.dispatch.duty(DONGSHAN, today), "Forbidden")
        refused(lambda: stranger.dispatch.board(DONGSHAN), "Forbidden")

    first = rpc.intake.submit_report(report(category="dispute.neighbour"))["incident_id"]
    [late] = orders_of(rpc, first, 1)
    assert late["recipient"] == "duty_officer"
    assert late["duty_officers"] == [o["name"] for o in OFFICERS]
    wait_for(lambda: rpc.dispatch.get_order(late["order_id"])["overdue"], timeout=20)
    second = rpc.intake.submit_report(report())["incident_id"]
    [fresh] = orders_of(rpc, second, 1)

    mine = rpc.dispatch.list_orders(recipient="duty_officer", open=True)
    assert [o["order_id"] for o in mine] == [late["order_id"]]
    assert rpc.dispatch.list_orders(open=False) == []
    with rpc_as("center", center=DONGSHAN) as town:
        board = town.dispatch.board(DONGSHAN)
    assert [o["order_id"] for o in board["orders"]][:2] == [late["order_id"], fresh["order_id"]]
    assert [i["incident_id"] for i in board["incidents"]] == [first, second]
    assert board["incidents"][0]["overdue_orders"] == 1
    assert board["on_duty"]["leader"] == LEADER
    with rpc_as("auditor", center=COUNTY) as auditor:
        assert auditor.dispatch.board(DONGSHAN)["orders"] == board["orders"]
    refused(lambda: rpc.dispatch.list_orders(recipient="mayor", open="yes"), "ValidationError")
