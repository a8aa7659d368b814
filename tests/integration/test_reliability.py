"""The outbox, idempotent consumers and the dead-letter queue, broken on purpose."""

import json
import subprocess
from pathlib import Path

import pytest
import requests
from kombu import Connection, Exchange
from nameko.exceptions import RemoteError
from sqlalchemy import create_engine, func, select

from services.dispatch.models import WorkOrder
from services.dispatch.service import DispatchService
from services.intake.models import Incident
from services.intake.service import IntakeService
from shared.events import make_event
from shared.outbox import Outbox
from tests.conftest import wait_for
from tests.support.broker import AUTH, MANAGEMENT
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.integration


def count(url: str, table) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(table)).scalar_one()
    finally:
        engine.dispose()


def publish(uri: str, source: str, event_type: str, payload) -> None:
    with Connection(uri, transport_options={"confirm_publish": True}) as connection:
        connection.Producer().publish(
            payload,
            exchange=Exchange(f"{source}.events", type="topic", durable=True),
            routing_key=event_type,
            serializer="json",
            delivery_mode=2,
        )


def dead_letters(vhost: str) -> list[dict]:
    response = requests.post(
        f"{MANAGEMENT}/queues/{vhost}/linkage.dead-letter/get",
        auth=AUTH,
        json={"count": 50, "ackmode": "ack_requeue_true", "encoding": "auto"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def incident_received(**changes) -> dict:
    fields = dict(
        incident_id="inc-reliability",
        category="water.burst_main",
        request_type="help",
        channel="12345",
        town=DONGSHAN,
        center=DONGSHAN,
        title="水管破裂",
        reported_at="2026-11-27T09:15:00+08:00",
        received_at="2026-11-27T09:15:01+08:00",
    )
    fields.update(changes)
    from datetime import datetime

    for key in ("reported_at", "received_at"):
        fields[key] = datetime.fromisoformat(fields[key])
    return make_event("intake", "incident_received", **fields)


def test_a_committed_event_survives_a_broken_relay_and_arrives_once_it_works(
    run_services, rpc, tap, db_urls, monkeypatch
):
    """Commit succeeded, publishing (after commit, then by the relay) failed: the
    event waits in the outbox and the relay publishes it once the broker is back."""
    received = tap("intake", "incident_received")
    broken = {"on": True}
    real_publish = Outbox._publish

    def publish_or_fail(self, *args, **kwargs):
        if broken["on"]:
            raise ConnectionError("broker unreachable (injected)")
        return real_publish(self, *args, **kwargs)

    monkeypatch.setattr(Outbox, "_publish", publish_or_fail)
    run_services(IntakeService)
    answer = rpc.intake.submit_report(report())
    assert answer["status"] == "accepted"
    received.drain(timeout=1.5)
    assert received.of_type("incident_received") == []
    assert count(db_urls["intake"], Incident.__table__) == 1

    broken["on"] = False
    [event] = wait_for(
        lambda: received.drain() and received.of_type("incident_received"), timeout=20
    )
    assert event["incident_id"] == answer["incident_id"]
    received.drain(timeout=1.0)
    assert len(received.of_type("incident_received")) == 1


def test_an_event_delivered_twice_is_applied_once(run_services, broker_uri, db_urls):
    run_services(DispatchService)
    event = incident_received()
    publish(broker_uri, "intake", "incident_received", event)
    publish(broker_uri, "intake", "incident_received", event)
    wait_for(lambda: count(db_urls["dispatch"], WorkOrder.__table__) >= 1)
    again = incident_received(incident_id="inc-second")
    publish(broker_uri, "intake", "incident_received", again)
    wait_for(lambda: count(db_urls["dispatch"], WorkOrder.__table__) >= 2)
    # one water order per incident: the duplicate changed nothing
    assert count(db_urls["dispatch"], WorkOrder.__table__) == 2


def test_a_poison_event_lands_in_the_dead_letter_queue_with_its_reason(
    run_services, broker_uri, vhost, db_urls
):
    run_services(DispatchService)
    publish(broker_uri, "intake", "incident_received", {"event_id": "x", "junk": True})
    publish(broker_uri, "intake", "incident_received", incident_received(category="no.such"))
    letters = wait_for(lambda: len(found := dead_letters(vhost)) >= 2 and found, timeout=20)
    headers = [m["properties"]["headers"] for m in letters]
    assert {h["x-linkage-error-type"] for h in headers} == {"InvalidEvent"}
    assert all(h["x-linkage-consumer"] == "dispatch.on_incident_received" for h in headers)
    assert any("no.such" in h["x-linkage-error"] for h in headers)
    # kept as it came (the two may be dead-lettered in either order)
    bodies = [json.loads(m["payload"]) for m in letters]
    assert any(body.get("junk") is True for body in bodies)
    # the handler goes on working
    publish(broker_uri, "intake", "incident_received", incident_received())
    wait_for(lambda: count(db_urls["dispatch"], WorkOrder.__table__) == 1)


def test_a_handler_bug_is_dead_lettered_not_dropped(run_services, vhost, broker_uri, monkeypatch):
    def bug(*args, **kwargs):
        raise KeyError("a bug in routing")

    monkeypatch.setattr("services.dispatch.routing.route", bug)
    run_services(DispatchService)
    publish(broker_uri, "intake", "incident_received", incident_received())
    [letter] = wait_for(lambda: dead_letters(vhost), timeout=20)
    assert letter["properties"]["headers"]["x-linkage-error-type"] == "KeyError"


@pytest.mark.disruptive
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_with_the_database_down_a_report_is_refused_not_lost(run_services, rpc, db_urls):
    run_services(IntakeService)
    assert rpc.intake.submit_report(report())["status"] == "accepted"
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    cluster = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    subprocess.run([*cluster, "stop"], check=True, timeout=60)
    try:
        with pytest.raises(RemoteError) as error:
            rpc.intake.submit_report(report(external_id="while-down"))
        assert error.value.exc_type == "Unavailable"
    finally:
        subprocess.run([*cluster, "start"], check=True, timeout=60)
        wait_for(lambda: subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0)
    assert count(db_urls["intake"], Incident.__table__) == 1
    # the service reconnects by itself; the caller's retry is accepted
    again = wait_for(lambda: _try_submit(rpc, report(external_id="while-down")), timeout=30)
    assert again["status"] == "accepted"
    assert count(db_urls["intake"], Incident.__table__) == 2


def _try_submit(rpc, one):
    try:
        return rpc.intake.submit_report(one)
    except RemoteError as error:
        if error.exc_type == "Unavailable":
            return None
        raise
