"""A database of the previous release, migrated, then served: on both databases.

The previous release made its tables with `create_all` and kept no revision;
its schema is revision 0001 (shared/migrations.py). Each test here starts
from such databases with rows in them, runs `python -m services migrate`, and
shows the services reading the old rows and writing new ones; a service
started against a database behind its code exits 2 with one line.
"""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import MetaData, create_engine, insert, select, text

from services import service_classes
from shared import migrations
from shared.config import SERVICES
from tests.conftest import wait_for
from tests.support.databases import database_urls, env_for
from tests.support.processes import ROOT, free_port
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.integration

QIANWEI = "511123"
RECEIVED = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


@pytest.fixture
def db_urls(backend, tmp_path):
    """Empty databases (the suite's own fixture migrates them; these tests do)."""
    with database_urls(backend, tmp_path, migrated=False) as urls:
        yield urls


def at(minutes: int, sqlite: bool) -> datetime:
    """A time of the old rows, stored as UtcDateTime stores it."""
    moment = RECEIVED + timedelta(minutes=minutes)
    return moment.replace(tzinfo=None) if sqlite else moment


def previous_release(url: str, service: str) -> None:
    """The previous release's schema, as its `create_all` left it: no revision."""
    migrations.upgrade(service, url, migrations.BASELINE)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()


def old_rows(sqlite: bool) -> dict[str, dict[str, list[dict]]]:
    """An incident escalated once by hand, two water orders with their history,
    their records and a citizen's rating; and each service's plumbing rows."""
    t = lambda minutes: at(minutes, sqlite)  # noqa: E731
    incident = {"incident_id": "inc-old", "category": "water.burst_main", "town": DONGSHAN}
    order = {
        "incident_id": "inc-old", "center": DONGSHAN, "department": "dongshan-water",
        "role": "lead", "served_role": "water", "recipient": "department", "tier": 1,
        "dispatched_at": t(1), "accept_by": t(31), "arrive_by": t(61), "overdue": False,
        "returns": 0, "cause": "initial",
    }  # fmt: skip
    plumbing = {
        "outbox": [
            {"event_id": "ev-old", "source": "x", "event_type": "y", "payload": "{}",
             "created_at": t(1), "published_at": t(1), "attempts": 0}
        ],
        "processed_events": [{"event_id": "ev-in", "handler": "h", "processed_at": t(1)}],
    }  # fmt: skip
    return {
        "intake": {
            "incidents": [
                {
                    **incident,
                    "source_system": "12345-hotline",
                    "external_id": "OLD-1",
                    "channel": "12345",
                    "request_type": "help",
                    "title": "主街自来水管破裂",
                    "description": "",
                    "address": "东山镇主街 12 号",
                    "reported_at": t(0),
                    "received_by": DONGSHAN,
                    "center": QIANWEI,
                    "status": "open",
                    "received_at": t(0),
                    "command_changed_at": t(5),
                }
            ],
            **plumbing,
        },  # fmt: skip
        "dispatch": {
            "incidents": [{**incident, "center": QIANWEI, "received_at": t(0)}],
            "work_orders": [
                {**order, "order_id": "ord-old-1", "status": "accepted", "accepted_at": t(10)},
                {
                    **order,
                    "order_id": "ord-old-2",
                    "status": "dispatched",
                    "center": QIANWEI,
                    "department": "qianwei-water",
                    "cause": "escalation",
                },
            ],
            "order_history": [
                {
                    "order_id": "ord-old-1",
                    "action": "dispatch",
                    "status_to": "dispatched",
                    "at": t(1),
                },
                {
                    "order_id": "ord-old-1",
                    "action": "accept",
                    "status_from": "dispatched",
                    "status_to": "accepted",
                    "operator": "水务-李",
                    "at": t(10),
                },
                {
                    "order_id": "ord-old-2",
                    "action": "dispatch",
                    "status_to": "dispatched",
                    "at": t(1),
                },
            ],
            **plumbing,
        },  # fmt: skip
        "escalation": {
            "incidents": [
                {
                    **incident,
                    "received_by": DONGSHAN,
                    "center": QIANWEI,
                    "received_at": t(0),
                    "moves": 1,
                    "command_changed_at": t(5),
                }
            ],
            "command_chain": [
                {
                    "incident_id": "inc-old",
                    "seq": 1,
                    "reason": "manual",
                    "from_center": DONGSHAN,
                    "to_center": QIANWEI,
                    "assist_centers": "[]",
                    "operator": "值班员-王",
                    "detail": "a burst main under the county road",
                    "at": t(5),
                    "event_id": "ev-mv",
                }
            ],
            **plumbing,
        },  # fmt: skip
        "assessment": {
            "incidents": [
                {
                    "incident_id": "inc-old",
                    "center": DONGSHAN,
                    "category": "water.burst_main",
                    "received_at": t(0),
                }
            ],
            "order_records": [
                {
                    "order_id": "ord-old-1",
                    "incident_id": "inc-old",
                    "center": DONGSHAN,
                    "department": "dongshan-water",
                    "role": "lead",
                    "category": "water.burst_main",
                    "tier": 1,
                    "recipient": "department",
                    "dispatched_at": t(1),
                    "accept_by": t(31),
                    "arrive_by": t(61),
                    "accepted_at": t(10),
                }
            ],
            "ratings": [
                {
                    "incident_id": "inc-old",
                    "rating": "satisfied",
                    "operator": "回访-赵",
                    "at": t(90),
                    "event_id": "ev-rt",
                }
            ],
            "command_moves": [
                {
                    "event_id": "ev-mv",
                    "incident_id": "inc-old",
                    "from_center": DONGSHAN,
                    "to_center": QIANWEI,
                    "reason": "manual",
                    "at": t(5),
                }
            ],
            **plumbing,
        },  # fmt: skip
    }


def fill(url: str, rows: dict[str, list[dict]]) -> None:
    engine = create_engine(url)
    tables = MetaData()
    tables.reflect(engine)
    with engine.begin() as connection:
        for name, table_rows in rows.items():
            for row in table_rows:
                connection.execute(insert(tables.tables[name]), row)
    engine.dispose()


def migrate(db_urls: dict[str, str], *module: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *(module or ("services",)), "migrate"],
        cwd=ROOT,
        env={**os.environ, **env_for(db_urls)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_previous_release_is_migrated_and_its_rows_are_read_and_written(
    backend, db_urls, run_services, rpc
):
    for service, rows in old_rows(sqlite=backend == "sqlite").items():
        previous_release(db_urls[service], service)
        fill(db_urls[service], rows)

    migrated = migrate(db_urls)

    assert migrated.returncode == 0, migrated.stderr
    for service in SERVICES:
        head = migrations.head(service)
        assert f"linkage: {service} database migrated from 0001 to {head}" in migrated.stdout
    run_services(*service_classes())

    # the old rows, read
    incident = rpc.intake.get_incident("inc-old")
    assert incident["center"] == QIANWEI and incident["title"] == "主街自来水管破裂"
    accepted = rpc.dispatch.get_order("ord-old-1")
    assert accepted["status"] == "accepted"
    assert [h["action"] for h in accepted["history"]] == ["dispatch", "accept"]
    assert accepted["history"][1]["operator"] == "水务-李"
    [move] = rpc.escalation.chain("inc-old")
    assert (move["from_center"], move["to_center"], move["reason"]) == (
        DONGSHAN,
        QIANWEI,
        "manual",
    )
    window = ((RECEIVED - timedelta(days=1)).isoformat(), datetime.now(UTC).isoformat())
    water = next(
        row
        for row in rpc.assessment.scores(DONGSHAN, *window)
        if row["department"] == "dongshan-water"
    )
    assert water["rated"] == 1 and water["satisfaction_rate"] == 1.0

    # what the new columns were given for the old incident
    engine = create_engine(db_urls["dispatch"])
    with engine.connect() as connection:
        backfilled = connection.execute(
            text("SELECT request_type, received_by, center FROM incidents")
        ).one()
    engine.dispose()
    assert tuple(backfilled) == ("help", QIANWEI, QIANWEI)

    # new rows, written: on an old order, and a new incident through every service
    rpc.dispatch.accept("ord-old-2")
    assert [h["action"] for h in rpc.dispatch.get_order("ord-old-2")["history"]] == [
        "dispatch",
        "accept",
    ]
    answer = rpc.intake.submit_report(report())
    assert answer["status"] == "accepted"
    [order] = wait_for(
        lambda: rpc.dispatch.list_orders(incident_id=answer["incident_id"]),
        message="the new incident's order",
    )
    assert order["department"] == "dongshan-water"
    wait_for(
        lambda: any(
            row["department"] == "dongshan-water" and row["orders"] >= 2
            for row in rpc.assessment.scores(DONGSHAN, window[0], datetime.now(UTC).isoformat())
        ),
        message="assessment recording the new order beside the old one",
    )

    again = migrate(db_urls)
    assert again.returncode == 0 and "migrated" not in again.stdout


def test_a_service_against_a_database_behind_its_code_exits_2_with_one_line(db_urls, broker_uri):
    migrations.upgrade("intake", db_urls["intake"], migrations.BASELINE)
    started = subprocess.run(
        [sys.executable, "-m", "services.intake"],
        cwd=ROOT,
        env={
            **os.environ,
            **env_for(db_urls),
            "AMQP_URI": broker_uri,
            "METRICS_PORT": str(free_port()),
            "PYTHONWARNINGS": "ignore",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert started.returncode == 2
    assert "Traceback" not in started.stderr
    head = migrations.head("intake")
    assert started.stderr.splitlines()[-1] == (
        f"linkage: intake database is at revision 0001, the code needs {head}: "
        "run python -m services.intake migrate"
    )


def test_an_empty_database_is_refused_too_and_migrate_for_one_service_fixes_it(db_urls, broker_uri):
    engine = create_engine(db_urls["escalation"])
    with pytest.raises(migrations.SchemaNotReady, match="escalation database is empty"):
        migrations.check_schema("escalation", engine)

    migrated = migrate(db_urls, "services.escalation")

    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.splitlines() == [
        f"linkage: escalation database migrated from empty to {migrations.head('escalation')}"
    ]
    migrations.check_schema("escalation", engine)
    with engine.connect() as connection:
        assert (
            connection.execute(select(text("count(*)")).select_from(text("command_chain"))).scalar()
            == 0
        )
    engine.dispose()
