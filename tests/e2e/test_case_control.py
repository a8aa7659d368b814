"""The case under the operators' control, with every service as a real
process (CONTRACT.md section 7): updates judged again, a misfiled ticket
reclassified, closing and reopening, request types, transfers."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from nameko.exceptions import RemoteError

from services.dispatch.routing import reply_deadline
from shared.network import load_network
from tests.conftest import cluster_rpc, make_token, wait_for
from tests.support.calls import in_command
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.e2e

SERVICES = ("intake", "dispatch", "escalation", "assessment")
CITY = "511100"
TOWN = make_token("center", sub="值班员-张", center=DONGSHAN)


def until(predicate, message: str, timeout: float = 45):
    return wait_for(predicate, timeout=timeout, interval=0.2, message=message)


def test_operators_steer_cases_end_to_end(platform, broker_uri):
    platform.start(*SERVICES)
    with cluster_rpc(broker_uri) as rpc, cluster_rpc(broker_uri, token=TOWN) as town:
        # a gathering of 80 grows to 600: the city commands, in one step
        crowd = rpc.intake.submit_report(report(category="mass.gathering", crowd_size=80))
        crowd = crowd["incident_id"]
        until(lambda: in_command(rpc, crowd) == DONGSHAN, "the town in command")
        town.intake.update_incident(crowd, {"crowd_size": 600}, "人数激增")
        until(lambda: in_command(rpc, crowd) == CITY, "the city in command")
        assert [m["reason"] for m in rpc.escalation.chain(crowd)] == ["crowd_size"]

        # a misfiled ticket: the right unit ordered, the wrong one cancelled
        misfiled = rpc.intake.submit_report(report(category="water.burst_main"))["incident_id"]
        until(lambda: rpc.dispatch.list_orders(incident_id=misfiled), "the water order")
        town.intake.update_incident(misfiled, {"category": "city.sanitation"}, "误派")

        def reclassified():
            found = {
                (o["department"], o["status"])
                for o in rpc.dispatch.list_orders(incident_id=misfiled)
            }
            return {("dongshan-water", "cancelled"), ("dongshan-urban", "dispatched")} <= found

        until(reclassified, "the water order cancelled and the urban one sent")

        # closed only once its orders are done, then reopened
        [urban] = rpc.dispatch.list_orders(incident_id=misfiled, open=True)
        summary = {"result": "已清理", "measures": "城管执法中队到场"}
        with pytest.raises(RemoteError) as error:
            town.intake.close_incident(misfiled, summary)
        assert error.value.exc_type == "InvalidTransition"
        town.dispatch.accept(urban["order_id"])
        town.dispatch.arrive(urban["order_id"])
        town.dispatch.complete(urban["order_id"], "已清理")
        assert town.intake.close_incident(misfiled, summary)["status"] == "closed"
        assert town.intake.reopen_incident(misfiled, "群众再次反映")["status"] == "open"

        # a police matter is handed to 110: no orders
        crime = rpc.intake.submit_report(report(category="crime.in_progress"))["incident_id"]
        assert rpc.intake.get_incident(crime)["status"] == "transferred"


def test_a_consultation_gets_a_reply_deadline_and_never_moves_command(
    platform, broker_uri, network_file
):
    """Its order turns overdue (sign-for in 1 s here) and is urged; command stays."""
    platform.env["LINKAGE_NETWORK"] = network_file(
        deadlines_s={"accept": 1, "arrive_tier1": 2, "arrive_tier2": 2, "overdue_grace": 1}
    )
    platform.start(*SERVICES)
    network = load_network(platform.env["LINKAGE_NETWORK"])
    with cluster_rpc(broker_uri) as rpc:
        asked = rpc.intake.submit_report(
            report(category="water.burst_main", request_type="consultation")
        )["incident_id"]
        [order] = until(lambda: rpc.dispatch.list_orders(incident_id=asked), "its order")
        assert order["arrive_by"] is None
        dispatched = datetime.fromisoformat(order["dispatched_at"])
        assert datetime.fromisoformat(order["reply_by"]) == reply_deadline(network, dispatched)

        def urged():
            history = rpc.dispatch.get_order(order["order_id"])["history"]
            return any(h["action"] == "urge" for h in history)

        until(urged, "the overdue order urged")
        assert rpc.dispatch.get_order(order["order_id"])["overdue"]
        time.sleep(3)  # past the grace: a help order would have moved command by now
        assert rpc.escalation.chain(asked) == []
        assert in_command(rpc, asked) == DONGSHAN
