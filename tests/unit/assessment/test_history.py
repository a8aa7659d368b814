"""Assessment's cost does not grow with history (issue 16): counts come from
the day counts kept with every change (whole days) and from the records of a
window's partial edge days only; a gauge refresh and `scores` issue the same
few statements whatever the database holds, and one instance per interval
does the counting."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import delete, event, func, select

from services.assessment import store
from services.assessment.models import DayCounts, GaugeValue, OrderRecordRow, RatingRow
from services.assessment.records import CommandMove, OrderRecord
from services.assessment.scoring import WHOLE_CENTER, Counts, assess, assess_counts
from tests.unit.assessment.conftest import NETWORK

DONGSHAN = "511123101"

NOW = datetime.now(UTC)
TZ = NETWORK.timezone
DEPARTMENTS = [(d.center, d.code) for d in NETWORK.departments.values()]
SEEDED = {
    "departments": DEPARTMENTS,
    "since": NOW - timedelta(days=29),
    "until": NOW,
    "timezone": TZ,
}


@contextmanager
def statements(engine):
    """The SQL statements sent to `engine` meanwhile."""
    sent: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", count)


def seed(database, n: int, seed: int = 0) -> int:
    return store.seed_records(database.engine, n, seed=seed, **SEEDED)


def test_seed_records_inserts_records_with_ratings_in_bulk(assessment):
    database = assessment.database
    with statements(database.engine) as sent:
        rated = seed(database, 3000, seed=1)
    assert len(sent) < 20  # batches, not a statement per row
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(OrderRecordRow)) == 3000
        assert session.scalar(select(func.count()).select_from(RatingRow)) == rated
    assert 1500 < rated < 2100  # about 60 % rated


def scored_by_the_store(session, center: str, codes, since, until) -> dict:
    counted = store.window_counts(session, TZ, since, until, center)
    counts = {department: c for (_, department), c in counted.items()}
    return assess_counts(codes, counts, counts.get(WHOLE_CENTER, Counts()), NETWORK.weights)


def day_rows(session) -> dict:
    zero = Counts()
    rows = {}
    for row in session.scalars(select(DayCounts)):
        counted = Counts(**{n: getattr(row, n) for n in store.COUNT_FIELDS})
        if counted != zero:
            rows[(row.center, row.department, row.day)] = counted
    return rows


def test_seeded_history_counted_by_the_store_equals_the_reference_in_memory(assessment):
    """Whole days from the day counts, edge days from the records, on both databases."""
    database = assessment.database
    seed(database, 2000, seed=2)
    local_midnight = datetime.combine((NOW - timedelta(days=20)).astimezone(TZ).date(), time(), TZ)
    windows = [
        (NOW - timedelta(days=20), NOW - timedelta(days=3)),  # partial edge days
        (local_midnight, local_midnight + timedelta(days=10)),  # whole days only
        (NOW - timedelta(days=5, hours=3), NOW - timedelta(days=5)),  # part of a day
    ]
    with database.session() as session:
        loaded = session.scalars(select(OrderRecordRow)).all()
        records = [OrderRecord(**{n: getattr(r, n) for n in store.RECORD_FIELDS}) for r in loaded]
        ratings = dict(session.execute(select(RatingRow.incident_id, RatingRow.rating)).all())
        for center in NETWORK.centers:
            codes = [d.code for d in NETWORK.departments_of(center)]
            for since, until in windows:
                expected = assess(
                    center,
                    codes,
                    records,
                    ratings=ratings,
                    moves=[],
                    weights=NETWORK.weights,
                    since=since,
                    until=until,
                )
                assert scored_by_the_store(session, center, codes, since, until) == expected


def test_the_backfill_counts_the_days_as_the_bulk_seed_kept_them(assessment):
    database = assessment.database
    seed(database, 500, seed=7)
    with database.session() as session:
        kept = day_rows(session)
    with database.engine.begin() as connection:
        assert store.rebuild_day_counts(connection, TZ) == 500
    with database.session() as session:
        assert day_rows(session) == kept and kept


def test_escalations_count_once_per_incident_and_only_upwards(assessment):
    database = assessment.database
    seed(database, 10, seed=3)
    with database.session() as session:
        first = session.scalars(select(OrderRecordRow).order_by(OrderRecordRow.order_id)).first()
    center, incident = first.center, first.incident_id
    moves = [
        CommandMove("m1", incident, center, "above", "overdue", NOW),
        CommandMove("m2", incident, center, "above", "manual", NOW),  # twice up: once
        CommandMove("m3", incident, center, center, "neighbour", NOW),  # command stays
    ]
    with database.transaction() as tx:
        for move in moves:
            store.add_move(tx, move, TZ)
    window = (NOW - timedelta(days=30), NOW + timedelta(days=1))
    with database.session() as session:
        counted = store.window_counts(session, TZ, *window, center)
    assert counted[(center, first.department)].escalated == 1
    assert counted[(center, WHOLE_CENTER)].escalated == 1


def refresh(service, engine) -> list[str]:
    with statements(engine) as sent:
        service.refresh_gauges()
    return sent


def test_a_gauge_refresh_issues_the_same_few_statements_at_10_and_1000_records(assessment):
    database, service = assessment.database, assessment.service
    service.config = {"ASSESSMENT_GAUGES_S": 15}

    def forget_last_refresh():
        with database.transaction() as tx:
            tx.session.execute(delete(store.refreshes))

    seed(database, 10, seed=4)
    counted_small, shown_small = (
        refresh(service, database.engine),
        refresh(service, database.engine),
    )
    forget_last_refresh()
    seed(database, 990, seed=5)
    counted_large, shown_large = (
        refresh(service, database.engine),
        refresh(service, database.engine),
    )

    assert len(counted_small) == len(counted_large) <= 8
    assert len(shown_small) == len(shown_large) <= 5
    # whole days: the day counts alone, not one order record read
    assert not any("order_records" in s for s in counted_large + shown_large)
    assert sum("day_counts" in s for s in counted_large) == 1


def scores(service, engine, since: datetime, until: datetime) -> list[str]:
    with statements(engine) as sent:
        service.scores(DONGSHAN, since.isoformat(), until.isoformat())
    return [s for s in sent if not s.startswith("BEGIN")]  # SQLite's own


def test_scores_issue_the_same_few_statements_at_10_and_1000_records(assessment):
    database, service = assessment.database, assessment.service
    midnight = datetime.combine((NOW - timedelta(days=40)).astimezone(TZ).date(), time(), TZ)
    whole_days = (midnight, midnight + timedelta(days=41))
    with_edges = (NOW - timedelta(days=30), NOW)

    seed(database, 10, seed=8)
    small = [scores(service, database.engine, *window) for window in (whole_days, with_edges)]
    seed(database, 990, seed=9)
    large = [scores(service, database.engine, *window) for window in (whole_days, with_edges)]

    assert [len(sent) for sent in small] == [len(sent) for sent in large]
    assert len(large[0]) == 1 and "day_counts" in large[0][0]  # no record read
    # the edge days: their records (and their incidents' others), ratings, moves
    assert len(large[1]) <= 4
    edge_reads = [s for s in large[1] if "order_records" in s]
    assert edge_reads and all("dispatched_at >=" in s for s in edge_reads)


def test_one_instance_counts_and_every_instance_shows_the_same_gauges(assessment, db_urls):
    database, first = assessment.database, assessment.service
    second = assessment.another_worker()
    first.config = second.config = {"ASSESSMENT_GAUGES_S": 15}
    seed(database, 200, seed=6)
    refresh(first, database.engine)
    with database.session() as session:
        saved = {(v.center, v.department): v.score for v in session.scalars(select(GaugeValue))}
    assert saved and all(score is not None for score in saved.values())

    sent = refresh(second, database.engine)
    assert not any("order_records" in s for s in sent)
    for (center, department), score in saved.items():
        sample = REGISTRY.get_sample_value(
            "linkage_department_score", {"center": center, "department": department}
        )
        assert sample == score
