"""Escalation with intake and dispatch against the real RabbitMQ and both databases,
in process: command moves once, the new center's units get orders once, also
with two instances of every service and with events delivered twice."""

import eventlet
import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.events import event_dispatcher
from sqlalchemy import create_engine, select

from services.dispatch.service import DispatchService
from services.escalation.models import outbox
from services.escalation.service import EscalationService
from services.intake.service import IntakeService
from tests.conftest import cluster_rpc, wait_for
from tests.support.calls import in_command
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.integration

QIANWEI = "511123"
CITY = "511100"
SERVICES = (IntakeService, DispatchService, EscalationService)


def chain_of(rpc, incident_id, steps: int):
    return wait_for(
        lambda: len(found := _chain(rpc, incident_id)) >= steps and found,
        message=f"{steps} chain steps for {incident_id}",
    )


def _chain(rpc, incident_id):
    try:
        return rpc.escalation.chain(incident_id)
    except RemoteError as error:
        if error.exc_type == "NotFound":
            return []
        raise


def orders_at(rpc, incident_id, center, expected: int):
    return wait_for(
        lambda: (
            len(found := rpc.dispatch.list_orders(incident_id=incident_id, center=center))
            >= expected
            and found
        ),
        message=f"{expected} orders at {center} for {incident_id}",
    )


def announced_by_escalation(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(select(outbox.c.event_type).order_by(outbox.c.id)).scalars()
            )
    finally:
        engine.dispose()


def summary(rpc, incident_id):
    chain = [(m["reason"], m["from_center"], m["to_center"]) for m in _chain(rpc, incident_id)]
    orders = sorted(
        (o["center"], o["department"], o["role"])
        for o in rpc.dispatch.list_orders(incident_id=incident_id)
    )
    return chain, orders


def test_a_crowd_of_150_puts_the_county_in_command_while_the_towns_orders_stay_open(
    run_services, rpc
):
    run_services(*SERVICES)
    incident = rpc.intake.submit_report(report(category="mass.gathering", crowd_size=150))[
        "incident_id"
    ]
    [step] = chain_of(rpc, incident, 1)
    assert (step["reason"], step["from_center"], step["to_center"]) == (
        "crowd_size",
        DONGSHAN,
        QIANWEI,
    )
    county = orders_at(rpc, incident, QIANWEI, 2)
    assert sorted((o["department"], o["role"]) for o in county) == [
        ("qianwei-police", "assist"),
        ("qianwei-politics", "lead"),
    ]
    town = rpc.dispatch.list_orders(incident_id=incident, center=DONGSHAN)
    assert town and all(o["status"] == "dispatched" for o in town)
    wait_for(lambda: rpc.intake.get_incident(incident)["center"] == QIANWEI)


def test_redelivered_events_move_command_once_and_send_no_second_order(
    run_services, rpc, tap, nameko_config, db_urls
):
    run_services(*SERVICES)
    received = tap("intake", "incident_received")
    dispatched = tap("dispatch", "orders_dispatched")
    escalated = tap("escalation", "incident_escalated")
    incident = rpc.intake.submit_report(report(category="mass.gathering", crowd_size=150))[
        "incident_id"
    ]
    orders_at(rpc, incident, QIANWEI, 2)
    [announced] = wait_for(lambda: received.drain() and received.of_type("incident_received"))
    # the town's batch, which escalation decides on, and the county's after the move
    batches = wait_for(
        lambda: len(dispatched.drain()) >= 2 and dispatched.of_type("orders_dispatched")
    )
    [moved] = wait_for(lambda: escalated.drain() and escalated.of_type("incident_escalated"))
    before = summary(rpc, incident)

    redeliver = event_dispatcher({"AMQP_URI": nameko_config["AMQP_URI"]})
    for _ in range(3):
        redeliver("intake", "incident_received", announced)
        for batch in batches:
            redeliver("dispatch", "orders_dispatched", batch)
        redeliver("escalation", "incident_escalated", moved)
    eventlet.sleep(2)
    assert summary(rpc, incident) == before
    assert announced_by_escalation(db_urls["escalation"]) == ["incident_escalated"]


def test_two_instances_of_every_service_move_each_incident_once(run_services, nameko_config):
    run_services(*SERVICES)
    run_services(*SERVICES)
    crowds = [30, 150, 600] * 6
    answers = []

    def submit(crowd):
        with cluster_rpc(nameko_config["AMQP_URI"]) as proxy:
            answer = proxy.intake.submit_report(report(category="mass.gathering", crowd_size=crowd))
            answers.append((crowd, answer["incident_id"]))

    pool = eventlet.GreenPool(len(crowds))
    for crowd in crowds:
        pool.spawn(submit, crowd)
    pool.waitall()

    expected = {30: (DONGSHAN, 0), 150: (QIANWEI, 1), 600: (CITY, 1)}
    with cluster_rpc(nameko_config["AMQP_URI"]) as rpc:
        for crowd, incident in answers:
            center, steps = expected[crowd]
            orders_at(rpc, incident, center, 2)
            chain, orders = summary(rpc, incident)
            assert len(chain) == steps, chain
            departments = [(c, d) for c, d, _ in orders]
            assert len(departments) == len(set(departments)), orders
            assert len(orders) == 2 + 2 * steps


def test_a_county_hands_an_incident_down_and_the_towns_units_get_orders(run_services, rpc, rpc_as):
    run_services(*SERVICES)
    with rpc_as("center", "县值班员", center=QIANWEI) as county:
        incident = county.intake.submit_report(report(category="mass.gathering", channel="center"))[
            "incident_id"
        ]
    orders_at(rpc, incident, QIANWEI, 2)
    wait_for(lambda: in_command(rpc, incident) == QIANWEI)

    with rpc_as("center", "值班员-张", center=DONGSHAN) as town:
        with pytest.raises(RemoteError) as error:
            town.escalation.assign_down(incident, DONGSHAN)
        assert error.value.exc_type == "Forbidden"
    with pytest.raises(RemoteError) as error:
        rpc.escalation.assign_down(incident, CITY)
    assert error.value.exc_type == "ValidationError"

    with rpc_as("center", "县值班员", center=QIANWEI) as county:
        step = county.escalation.assign_down(incident, DONGSHAN)
    assert (step["reason"], step["to_center"]) == ("assign_down", DONGSHAN)
    assert step["operator"] == "县值班员"
    town = orders_at(rpc, incident, DONGSHAN, 2)
    assert sorted(o["department"] for o in town) == ["dongshan-governance", "dongshan-police"]
    wait_for(lambda: rpc.intake.get_incident(incident)["center"] == DONGSHAN)
    assert [m["reason"] for m in rpc.escalation.chain(incident)] == ["assign_down"]
