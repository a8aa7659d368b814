"""Retention on both databases: plumbing rows past the window pruned in
batches, younger ones and the record kept, duplicates still refused
(shared/retention.py)."""

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from nameko.rpc import rpc
from prometheus_client import REGISTRY
from sqlalchemy import func, insert, select

from services.dispatch.models import Base, OrderHistory, WorkOrder, outbox, processed_events
from services.dispatch.models import DispatchIncident as Incident
from services.escalation.models import Base as EscalationBase
from services.escalation.models import outbox as escalation_outbox
from services.escalation.models import processed_events as escalation_processed
from shared.db import Database
from shared.retention import PRUNABLE, Retention
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=8)  # past the default window of 7 days
YOUNG = NOW - timedelta(days=6)


def pruned_total(service: str, table: str) -> float:
    labels = {"service": service, "table": table}
    return REGISTRY.get_sample_value("linkage_retention_pruned_total", labels) or 0.0


@pytest.fixture
def dispatch_db(db_urls):
    """Dispatch's database provider and its retention, set up outside a container."""
    database = Database(Base.metadata, outbox, processed_events)
    container = SimpleNamespace(
        service_name="dispatch",
        config={"DATABASE_URLS": {"dispatch": db_urls["dispatch"]}},
        dependencies=[database],
    )
    database.container = container
    database.setup()
    retention = Retention()
    retention.container = container
    retention.setup()
    yield database, retention
    database.stop()


def count(database, table, *where) -> int:
    with database.session() as session:
        return session.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def fill(database, old_outbox: int = 3) -> None:
    """Old and young plumbing rows, and an old order with its history (the record)."""
    outbox_rows = [
        {"event_id": f"old-{n}", "published_at": OLD, "created_at": OLD} for n in range(old_outbox)
    ]
    outbox_rows += [
        {"event_id": "young", "published_at": YOUNG, "created_at": YOUNG},
        {"event_id": "owed", "published_at": None, "created_at": OLD},  # never published
    ]
    for row in outbox_rows:
        row.update(source="dispatch", event_type="order_accepted", payload="{}", attempts=0)
    processed = [
        {"event_id": "e-old", "handler": "dispatch.on_incident_received", "processed_at": OLD},
        {"event_id": "e-young", "handler": "dispatch.on_incident_received", "processed_at": YOUNG},
    ]
    answers = [
        {
            "caller": "c",
            "request_id": r,
            "method": "accept",
            "answer": json.dumps({}),
            "created_at": at,
        }
        for r, at in (("r-old", OLD), ("r-young", YOUNG))
    ]
    order = {
        "order_id": "o-1",
        "incident_id": "i-1",
        "center": "511123101",
        "department": "d",
        "role": "lead",
        "served_role": "water",
        "recipient": "department",
        "tier": 1,
        "status": "completed",
        "dispatched_at": OLD,
        "accept_by": OLD,
        "arrive_by": OLD,
        "overdue": False,
        "returns": 0,
        "cause": "initial",
    }
    incident = {
        "incident_id": "i-1",
        "category": "water.burst_main",
        "request_type": "help",
        "town": "511123101",
        "received_by": "511123101",
        "center": "511123101",
        "received_at": OLD,
    }
    history = [
        {"order_id": "o-1", "action": a, "status_to": s, "at": OLD}
        for a, s in (("dispatch", "dispatched"), ("accept", "accepted"), ("complete", "completed"))
    ]
    with database.session() as session, session.begin():
        session.execute(insert(outbox), outbox_rows)
        session.execute(insert(processed_events), processed)
        session.execute(insert(Base.metadata.tables["rpc_requests"]), answers)
        session.execute(insert(Incident.__table__), incident)
        session.execute(insert(WorkOrder.__table__), order)
        session.execute(insert(OrderHistory.__table__), history)


def test_rows_past_the_window_are_pruned_and_the_record_kept(dispatch_db):
    database, retention = dispatch_db
    fill(database)
    before = pruned_total("dispatch", "outbox")

    pruned = retention.prune(now=NOW)

    assert pruned == {"outbox": 3, "processed_events": 1, "rpc_requests": 1}
    assert pruned_total("dispatch", "outbox") == before + 3
    assert count(database, outbox) == 2  # the young one, and the one the relay still owes
    assert count(database, outbox, outbox.c.published_at.is_(None)) == 1
    assert count(database, processed_events) == 1
    assert count(database, OrderHistory.__table__) == 3
    assert count(database, WorkOrder.__table__) == 1 and count(database, Incident.__table__) == 1
    assert retention.prune(now=NOW) == {"outbox": 0, "processed_events": 0, "rpc_requests": 0}


def test_a_duplicate_inside_the_window_is_still_refused(dispatch_db):
    database, retention = dispatch_db
    fill(database)
    retention.prune(now=NOW)
    with database.transaction() as tx:
        assert not tx.first_time("e-young", "dispatch.on_incident_received")


def test_pruning_goes_in_batches(dispatch_db):
    database, retention = dispatch_db
    fill(database, old_outbox=25)
    retention.batch_size = 10
    assert retention.prune(now=NOW)["outbox"] == 25
    assert count(database, outbox) == 2


def test_only_plumbing_tables_are_ever_pruned(dispatch_db):
    _, retention = dispatch_db
    assert {table.name for table, _ in retention.tables} == set(PRUNABLE)


class PrunedEscalation:
    """Escalation's database with retention only: the provider in a real container."""

    name = "escalation"
    db = Database(EscalationBase.metadata, escalation_outbox, escalation_processed)
    retention = Retention()

    @rpc
    def ping(self) -> str:
        return "pong"


def test_a_running_service_prunes_in_the_background(run_services, db_urls):
    run_services(PrunedEscalation, LINKAGE_RETENTION_EVERY_S=0.2)
    database = Database(EscalationBase.metadata, escalation_outbox, escalation_processed)
    database.container = SimpleNamespace(
        service_name="escalation", config={"DATABASE_URLS": db_urls}
    )
    database.setup()
    old = datetime.now(UTC) - timedelta(days=30)
    with database.session() as session, session.begin():
        session.execute(
            insert(escalation_processed),
            [{"event_id": "e-old", "handler": "escalation.on_x", "processed_at": old}],
        )
    wait_for(lambda: count(database, escalation_processed) == 0, message="the old record pruned")
    database.stop()
