"""A mutating call repeated with its request_id: the first answer, one effect.

A caller whose reply was lost (a broker restart, a timeout) calls again with
the same request_id; the platform must not accept twice or move command up
two levels, also when the two calls reach two instances at once.
"""

from __future__ import annotations

import eventlet
import pytest
from nameko.exceptions import RemoteError

from services.dispatch.service import DispatchService
from services.escalation.service import EscalationService
from services.intake.service import IntakeService
from tests.conftest import cluster_rpc, wait_for
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.integration


def test_an_accept_repeated_on_two_instances_is_one_acceptance_with_one_answer(
    run_services, rpc, nameko_config
):
    run_services(IntakeService, DispatchService)
    run_services(DispatchService)
    incident = rpc.intake.submit_report(report())["incident_id"]
    [order] = wait_for(lambda: rpc.dispatch.list_orders(incident_id=incident))
    order_id = order["order_id"]

    def accept_once():
        with cluster_rpc(nameko_config["AMQP_URI"]) as proxy:
            return proxy.dispatch.accept(order_id, request_id="accept-1")

    pool = eventlet.GreenPool()
    answers = list(pool.imap(lambda _: accept_once(), range(6)))
    assert all(a == answers[0] for a in answers)
    assert answers[0]["status"] == "accepted"
    history = rpc.dispatch.get_order(order_id)["history"]
    assert [h["action"] for h in history].count("accept") == 1
    # a new request is a new call: the state machine refuses a second acceptance
    with pytest.raises(RemoteError) as error:
        rpc.dispatch.accept(order_id, request_id="accept-2")
    assert error.value.exc_type == "InvalidTransition"
    # and a failed call stored nothing: trying it again fails the same way
    with pytest.raises(RemoteError):
        rpc.dispatch.accept(order_id, request_id="accept-2")


def test_a_manual_escalation_repeated_moves_command_one_level(run_services, rpc_as, rpc):
    run_services(IntakeService, DispatchService, EscalationService)
    incident = rpc.intake.submit_report(report())["incident_id"]

    def known():
        try:
            return rpc.escalation.command(incident)
        except RemoteError:
            return None

    wait_for(known)
    with rpc_as("center", sub="值班员-张", center=DONGSHAN) as town:
        first = town.escalation.escalate(incident, "现场失控", request_id="up-1")
        again = town.escalation.escalate(incident, "现场失控", request_id="up-1")
    assert first == again
    assert [m["reason"] for m in rpc.escalation.chain(incident)] == ["manual"]
    assert rpc.escalation.command(incident)["center"] == "511123"


def test_a_request_id_is_the_callers_own(run_services, rpc_as, rpc):
    """Two callers using the same request id are two requests."""
    run_services(IntakeService, DispatchService)
    a = rpc.intake.submit_report(report(), request_id="same")
    with rpc_as("platform", source_systems=["12345-hotline"]) as platform:
        b = platform.intake.submit_report(report(), request_id="same")
    assert a["incident_id"] != b["incident_id"]


def test_a_bad_request_id_is_refused(run_services, rpc):
    run_services(IntakeService)
    with pytest.raises(RemoteError) as error:
        rpc.intake.submit_report(report(), request_id="x" * 65)
    assert error.value.exc_type == "ValidationError"
