"""Running for months: dead letters an operator can replay or discard, and
transient failures that wait in the broker instead of in a worker."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange
from sqlalchemy import create_engine, select

from services.dispatch.models import WorkOrder
from services.dispatch.service import DispatchService
from services.escalation.service import EscalationService
from shared.deadletters import DeadLetters
from shared.events import make_event, utcnow
from tests.conftest import wait_for
from tests.integration.test_reliability import incident_received, publish
from tests.support.broker import queue_depth
from tests.support.reports import DONGSHAN

pytestmark = pytest.mark.integration

COUNTY = "511123"


def orders(url: str, **where) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = select(WorkOrder.order_id, WorkOrder.center, WorkOrder.cause)
            for name, value in where.items():
                query = query.where(getattr(WorkOrder, name) == value)
            return connection.execute(query).all()
    finally:
        engine.dispose()


def test_a_dead_letter_is_listed_with_its_reason_replayed_once_fixed_and_applied_once(
    run_services, broker_uri, vhost, db_urls, monkeypatch
):
    def bug(*args, **kwargs):
        raise KeyError("a bug in routing")

    monkeypatch.setattr("services.dispatch.routing.route", bug)
    runner = run_services(DispatchService)
    event = incident_received(incident_id="inc-dead")
    publish(broker_uri, "intake", "incident_received", event)
    tool = DeadLetters(broker_uri)
    [letter] = wait_for(lambda: tool.list(), timeout=20)
    assert letter.consumer == "dispatch.on_incident_received"
    assert letter.queue == "evt-intake-incident_received--dispatch.on_incident_received"
    assert letter.error_type == "KeyError" and "a bug in routing" in letter.error
    assert letter.payload()["event_id"] == event["event_id"]
    assert tool.list() == [letter]  # looking consumes nothing
    assert tool.show(letter.id) == letter

    runner.stop()  # the fix is deployed
    monkeypatch.undo()
    run_services(DispatchService)
    assert tool.replay(letter.id) == 1
    wait_for(lambda: orders(db_urls["dispatch"]), timeout=20)
    assert tool.list() == []
    # the same event replayed again (an operator's second try) changes nothing
    publish(broker_uri, "intake", "incident_received", event)
    wait_for(lambda: queue_depth(vhost, letter.queue) == 0, timeout=10)
    assert len(orders(db_urls["dispatch"])) == 1


def test_a_discarded_dead_letter_is_gone_and_the_others_stay(run_services, broker_uri):
    run_services(DispatchService)
    for junk in ({"event_id": "a", "junk": 1}, {"event_id": "b", "junk": 2}):
        publish(broker_uri, "intake", "incident_received", junk)
    tool = DeadLetters(broker_uri)
    letters = wait_for(lambda: len(found := tool.list()) == 2 and found, timeout=20)
    assert tool.discard(letters[0].id)
    assert [d.id for d in tool.list()] == [letters[1].id]
    assert not tool.discard("no-such-letter")


def escalated(incident_id: str) -> dict:
    return make_event(
        "escalation",
        "incident_escalated",
        incident_id=incident_id,
        from_center=DONGSHAN,
        to_center=COUNTY,
        reason="manual",
        operator="tester",
        category="water.burst_main",
        at=utcnow(),
    )


def test_an_event_met_too_early_waits_in_the_broker_not_in_a_worker(
    run_services, rpc, broker_uri, vhost, db_urls, monkeypatch
):
    """Command moved for incidents dispatch has not heard of yet: each waits
    in a retry queue. With two worker slots, twelve such events hold none:
    an RPC answers meanwhile, and each is applied once its incident is known."""
    monkeypatch.setenv("LINKAGE_RETRY_DELAYS_S", "0.5,1")
    run_services(DispatchService, EscalationService, max_workers=2)
    ids = [f"inc-early-{n}" for n in range(12)]
    for incident_id in ids:
        publish(broker_uri, "escalation", "incident_escalated", escalated(incident_id))
    queue = "evt-escalation-incident_escalated--dispatch.on_incident_escalated"
    wait_for(lambda: queue_depth(vhost, queue) == 0, timeout=20)
    assert rpc.dispatch.list_orders(incident_id=ids[0]) == []  # answered, slots free
    for incident_id in ids:
        publish(
            broker_uri, "intake", "incident_received", incident_received(incident_id=incident_id)
        )

    def every_county_order():
        county = orders(db_urls["dispatch"], center=COUNTY)
        return len(county) == len(ids) and county

    county = wait_for(every_county_order, timeout=30)
    assert {o.cause for o in county} == {"manual"}
    assert len(orders(db_urls["dispatch"], center=DONGSHAN)) == len(ids)


def test_an_event_that_never_becomes_applicable_is_dead_lettered_after_its_attempts(
    run_services, broker_uri, monkeypatch
):
    monkeypatch.setenv("LINKAGE_RETRY_DELAYS_S", "0.2")
    monkeypatch.setenv("LINKAGE_RETRY_ATTEMPTS", "3")
    run_services(DispatchService)
    publish(broker_uri, "escalation", "incident_escalated", escalated("inc-never"))
    [letter] = wait_for(lambda: DeadLetters(broker_uri).list(), timeout=20)
    assert letter.error_type == "RetryLater"
    assert letter.headers["x-linkage-attempts"] == 3


def test_an_undecodable_message_is_dead_lettered_and_its_body_never_logged(
    run_services, broker_uri, caplog
):
    """A truncated JSON event carrying a reporter's phone: kombu would log the
    body and drop the message; it lands in the dead-letter queue instead."""
    run_services(DispatchService)
    body = b'{"event_id": "e-1", "reporter": {"phone": "13800001234", "name": "\\u738b'
    with Connection(broker_uri, transport_options={"confirm_publish": True}) as connection:
        connection.Producer().publish(
            body,
            exchange=Exchange("intake.events", type="topic", durable=True),
            routing_key="incident_received",
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
    [letter] = wait_for(lambda: DeadLetters(broker_uri).list(), timeout=20)
    assert letter.error_type == "UndecodableMessage"
    assert letter.consumer == "dispatch.on_incident_received"
    assert letter.body == body  # kept whole for whoever fixes it
    assert "13800001234" not in caplog.text
    assert "138" not in letter.error


def test_an_event_dated_beyond_the_clock_skew_is_dead_lettered_not_applied(
    run_services, broker_uri, db_urls
):
    """A forged event dated 2199 would change a department's score for good."""
    run_services(DispatchService)
    forged = incident_received(incident_id="inc-future")
    forged["occurred_at"] = "2199-01-01T00:00:00+00:00"
    publish(broker_uri, "intake", "incident_received", forged)
    [letter] = wait_for(lambda: DeadLetters(broker_uri).list(), timeout=20)
    assert letter.error_type == "InvalidEvent" and "in the future" in letter.error
    assert orders(db_urls["dispatch"]) == []
