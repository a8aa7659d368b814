"""Assessment's SQL: every statement the service runs on its database.

Statements are SQLAlchemy Core, built once at import (or once per dialect),
so the statement cache compiles each of them once per process.

Counting (issue 16): every change to an incident's records, its rating or its
command moves adds, in the same transaction, the change of the incident's
share of the day counts (`day_counts`: scoring.incident_counts after the
change minus before), so a window of whole days is answered from those rows
and only a window's partial first and last days are counted from records.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from services.assessment.models import (
    AssessedIncident,
    CommandMoveRow,
    CountedIncident,
    DayCounts,
    GaugeRefresh,
    GaugeValue,
    OrderRecordRow,
    RatingRow,
    ReportDutyRow,
)
from services.assessment.records import (
    NOT_ESCALATIONS,
    RECORD_FIELDS,
    CommandMove,
    IncidentFacts,
    OrderRecord,
    Rating,
    add_urge,
    is_newer,
    merge,
)
from services.assessment.reporting import ReportDuty, merge_duty
from services.assessment.scoring import (
    COUNT_FIELDS,
    WHOLE_CENTER,
    Counts,
    DayKey,
    Share,
    incident_counts,
    order_counts,
    shares,
    split_window,
)
from shared.auth import Case
from shared.db import UnitOfWork, UtcDateTime, insert_new
from shared.events import RATINGS

incidents = AssessedIncident.__table__
records = OrderRecordRow.__table__
moves = CommandMoveRow.__table__
ratings = RatingRow.__table__
day_counts = DayCounts.__table__
counted_incidents = CountedIncident.__table__
refreshes = GaugeRefresh.__table__
gauge_values = GaugeValue.__table__
duties = ReportDutyRow.__table__

_RECORD_COLUMNS = [records.c[name] for name in RECORD_FIELDS]
_RATING_FIELDS = ("incident_id", "rating", "operator", "at", "event_id")

_rating_for_update = (
    select(*(ratings.c[name] for name in _RATING_FIELDS))
    .where(ratings.c.incident_id == bindparam("key"))
    .with_for_update()
)
_incident_known = select(incidents.c.incident_id).where(
    incidents.c.incident_id == bindparam("incident_id")
)
_incident_has_orders = (
    select(records.c.order_id).where(records.c.incident_id == bindparam("incident_id")).limit(1)
)


def add_incident(tx: UnitOfWork, incident: IncidentFacts) -> None:
    """Remember an incident (the first announcement wins; they all agree)."""
    tx.session.execute(insert_new(tx.session, incidents), asdict(incident))


def incident_known(session: Session, incident_id: str) -> bool:
    """Whether assessment has heard of the incident (a rating needs one)."""
    parameters = {"incident_id": incident_id}
    return (
        session.execute(_incident_known, parameters).first() is not None
        or session.execute(_incident_has_orders, parameters).first() is not None
    )


def rights_case(session: Session, incident_id: str) -> Case | None:
    """What callers' rights need of an incident: its town, the center now in
    command (the latest move, or the center that took it), the order holders."""
    incident = session.get(AssessedIncident, incident_id)
    if incident is None:
        return None
    moved_to = session.execute(
        select(CommandMoveRow.to_center)
        .where(CommandMoveRow.incident_id == incident_id, CommandMoveRow.reason != "neighbour")
        .order_by(CommandMoveRow.at.desc())
        .limit(1)
    ).scalar_one_or_none()
    holders = session.execute(
        select(OrderRecordRow.center, OrderRecordRow.department)
        .where(OrderRecordRow.incident_id == incident_id)
        .distinct()
    ).all()
    return Case(
        incident.town or incident.center,
        moved_to or incident.center,
        None,
        frozenset((c, d) for c, d in holders),
    )


def merge_order(
    tx: UnitOfWork,
    facts: dict[str, Any],
    timezone: tzinfo,
    combine: Callable[[Mapping[str, Any] | None, Mapping[str, Any]], dict] = merge,
) -> None:
    """Add one event's facts to its order's record (records.merge; for an
    urge, records.add_urge), and the change to the day counts.

    The first event of an order starts the record with its facts; a later one
    writes only the fields that changed. The incident is locked first
    (`_open`), so two instances merging at once do not lose a fact or a count.
    """
    before = _open(tx, facts["incident_id"])
    current = before.records.get(facts["order_id"])
    values = asdict(current) if current else None
    merged = asdict(OrderRecord.from_mapping(combine(values, facts)))
    if values is None:
        tx.session.execute(insert(records), merged)
    else:
        changed = {name: value for name, value in merged.items() if values[name] != value}
        if not changed:
            return
        tx.session.execute(
            update(records).where(records.c.order_id == facts["order_id"]).values(**changed)
        )
    record = OrderRecord(**merged)
    after = replace(before, records={**before.records, record.order_id: record})
    _add_change(tx, before, after, timezone)


def urge_order(tx: UnitOfWork, facts: dict[str, Any], timezone: tzinfo) -> None:
    """Count one more urge of the order (called once per `order_urged`)."""
    merge_order(tx, facts, timezone, add_urge)


def add_move(tx: UnitOfWork, move: CommandMove, timezone: tzinfo) -> None:
    before = _open(tx, move.incident_id)
    if tx.session.execute(insert_new(tx.session, moves), asdict(move)).rowcount != 1:
        return
    if move.is_escalation:
        after = replace(before, escalated_from=before.escalated_from | {move.from_center})
        _add_change(tx, before, after, timezone)


def apply_rating(tx: UnitOfWork, rating: Rating, timezone: tzinfo) -> tuple[bool, Rating | None]:
    """Keep `rating` as its incident's one rating unless a later one is kept
    (records.is_newer): whether it was stored, and the rating it found."""
    before = _open(tx, rating.incident_id)
    row = tx.session.execute(_rating_of, {"incident_id": rating.incident_id}).one_or_none()
    current = Rating(**row._asdict()) if row else None
    if not is_newer(rating, current):
        return False, current
    if current is None:
        tx.session.execute(insert(ratings), asdict(rating))
    else:
        tx.session.execute(
            update(ratings)
            .where(ratings.c.incident_id == rating.incident_id)
            .values(**asdict(rating))
        )
    _add_change(tx, before, replace(before, rating=rating.rating), timezone)
    return True, current


# -- the day counts: an incident's share, kept by its changes ---------------

_is_escalation = and_(
    moves.c.reason.not_in(NOT_ESCALATIONS), moves.c.from_center != moves.c.to_center
)
_lock_incident = (
    select(counted_incidents.c.incident_id)
    .where(counted_incidents.c.incident_id == bindparam("incident_id"))
    .with_for_update()
)
_records_of = select(*_RECORD_COLUMNS).where(records.c.incident_id == bindparam("incident_id"))
_rating_of = select(*(ratings.c[name] for name in _RATING_FIELDS)).where(
    ratings.c.incident_id == bindparam("incident_id")
)
_escalated_from = (
    select(moves.c.from_center)
    .where(moves.c.incident_id == bindparam("incident_id"), _is_escalation)
    .distinct()
)


@dataclass(frozen=True)
class _Incident:
    """What an incident's share of the day counts is a function of."""

    incident_id: str
    records: Mapping[str, OrderRecord]
    rating: str | None
    escalated_from: frozenset[str]

    def counts(self, timezone: tzinfo) -> dict[DayKey, Counts]:
        return incident_counts(
            self.records.values(),
            ratings={self.incident_id: self.rating} if self.rating else {},
            escalated={(self.incident_id, center) for center in self.escalated_from},
            timezone=timezone,
        )


def _open(tx: UnitOfWork, incident_id: str) -> _Incident:
    """Lock the incident (its `counted_incidents` row: a second instance waits
    here until the first commits) and read what its counts depend on."""
    session, key = tx.session, {"incident_id": incident_id}
    session.execute(insert_new(session, counted_incidents), key)
    session.execute(_lock_incident, key).one()
    held = {row.order_id: OrderRecord(**row._asdict()) for row in session.execute(_records_of, key)}
    rating = session.execute(_rating_of, key).one_or_none()
    return _Incident(
        incident_id,
        held,
        rating.rating if rating else None,
        frozenset(session.scalars(_escalated_from, key)),
    )


def _add_change(tx: UnitOfWork, before: _Incident, after: _Incident, timezone: tzinfo) -> None:
    old, new = before.counts(timezone), after.counts(timezone)
    changes = {key: new.get(key, Counts()) - old.get(key, Counts()) for key in old.keys() | new}
    add_to_days(tx.session, changes)


@functools.cache
def _add_statement(dialect: str):
    """Insert a day's counts, or add them to the day's row (one statement)."""
    upsert = (postgresql if dialect == "postgresql" else sqlite).insert(day_counts)
    return upsert.on_conflict_do_update(
        index_elements=[day_counts.c.center, day_counts.c.department, day_counts.c.day],
        set_={name: day_counts.c[name] + upsert.excluded[name] for name in COUNT_FIELDS},
    )


def add_to_days(bind: Session | Connection, changes: Mapping[DayKey, Counts]) -> None:
    """Add counts to their days' rows (one statement, many parameter sets)."""
    zero = Counts()
    # in key order: two incidents adding to the same days lock their rows in
    # the same order, so they wait for each other instead of deadlocking
    rows = [
        {"center": center, "department": department, "day": day, **asdict(counted)}
        for (center, department, day), counted in sorted(changes.items())
        if counted != zero
    ]
    if rows:
        bind.execute(_add_statement(_dialect_of(bind)), rows)


def _dialect_of(bind: Session | Connection) -> str:
    return bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name


# -- counting a window: whole days from day_counts, partial days live -------


@functools.cache
def _days_statement(one_center: bool):
    d = day_counts.c
    sums = [func.sum(d[name]).label(name) for name in COUNT_FIELDS]
    statement = select(d.center, d.department, *sums).where(
        d.day >= bindparam("first"), d.day < bindparam("end")
    )
    if one_center:
        statement = statement.where(d.center == bindparam("center"))
    return statement.group_by(d.center, d.department)


def window_counts(
    session: Session,
    timezone: tzinfo,
    since: datetime,
    until: datetime,
    center: str | None = None,
) -> dict[tuple[str, str], Counts]:
    """The counts of (center, department) over [since, until), and of each
    center's orders together under (center, WHOLE_CENTER); of one center, or
    of all. Absent: no orders. Whole days of the network's calendar are read
    from day_counts (one statement); a partial first or last day is counted
    from its records and their incidents' other records (three statements)."""
    first, end, edges = split_window(since, until, timezone)
    found: dict[tuple[str, str], Counts] = {}
    if first < end:
        parameters = {"first": first, "end": end, "center": center}
        for row in session.execute(_days_statement(center is not None), parameters):
            values = row._mapping
            counted = Counts(**{name: int(values[name] or 0) for name in COUNT_FIELDS})
            found[(row.center, row.department)] = counted
    if edges:
        for key, counted in _edge_counts(session, edges, center).items():
            found[key] = found.get(key, Counts()) + counted
    return found


def _edge_counts(
    session: Session, edges: Sequence[tuple[datetime, datetime]], center: str | None
) -> dict[tuple[str, str], Counts]:
    r = records.c
    in_edges = or_(*(and_(r.dispatched_at >= start, r.dispatched_at < end) for start, end in edges))
    edge_incidents = select(r.incident_id).where(in_edges)
    if center is not None:
        edge_incidents = edge_incidents.where(r.center == center)
    held = [
        OrderRecord(**row._asdict())
        for row in session.execute(
            select(*_RECORD_COLUMNS).where(r.incident_id.in_(edge_incidents))
        )
    ]
    rated = dict(
        session.execute(
            select(ratings.c.incident_id, ratings.c.rating).where(
                ratings.c.incident_id.in_(edge_incidents)
            )
        ).all()
    )
    escalated = {
        (incident, from_center)
        for incident, from_center in session.execute(
            select(moves.c.incident_id, moves.c.from_center).where(
                _is_escalation, moves.c.incident_id.in_(edge_incidents)
            )
        )
    }
    by_department = shares(held, ratings=rated, escalated=escalated, by_department=True)
    by_center = shares(held, ratings=rated, escalated=escalated, by_department=False)
    found: dict[tuple[str, str], Counts] = {}
    for record in held:
        at = record.dispatched_at
        if at is None or not any(start <= at < end for start, end in edges):
            continue  # another order of an edge incident: only told its group's share
        if center is not None and record.center != center:
            continue
        for department, share in (
            (record.department, by_department.get(record.order_id)),
            (WHOLE_CENTER, by_center.get(record.order_id)),
        ):
            key = (record.center, department)
            found[key] = found.get(key, Counts()) + order_counts(record, share)
    return found


def rebuild_day_counts(connection: Connection, timezone: tzinfo) -> int:
    """Count day_counts afresh from every stored record, rating and move (a
    one-off for records kept before day_counts existed: revision 0002 runs
    it; also after a change of the network's timezone). The incidents counted."""
    connection.execute(delete(day_counts))
    rated = dict(connection.execute(select(ratings.c.incident_id, ratings.c.rating)).all())
    escalated = {
        (incident, center)
        for incident, center in connection.execute(
            select(moves.c.incident_id, moves.c.from_center).where(_is_escalation)
        )
    }
    totals: dict[DayKey, Counts] = {}
    stream = connection.execute(
        select(*_RECORD_COLUMNS).order_by(records.c.incident_id).execution_options(yield_per=10_000)
    )
    n = 0
    for _, rows in itertools.groupby(stream, key=lambda row: row.incident_id):
        held = [OrderRecord(**row._asdict()) for row in rows]
        for key, counted in incident_counts(
            held, ratings=rated, escalated=escalated, timezone=timezone
        ).items():
            totals[key] = totals.get(key, Counts()) + counted
        n += 1
    add_to_days(connection, totals)
    return n


# -- reporting duties (信息报送), and what the notice reads beside the counts --

_DUTY_FIELDS = ("incident_id", "kind", "center", "due_at", "late")
_duty_for_update = (
    select(*(duties.c[name] for name in _DUTY_FIELDS))
    .where(duties.c.incident_id == bindparam("incident_id"), duties.c.kind == bindparam("kind"))
    .with_for_update()
)


def add_duty(tx: UnitOfWork, duty: ReportDuty) -> bool:
    """Add what one event tells of a reporting duty (reporting.merge_duty):
    the first account inserts the row, a later one changes it only where the
    merge does (locked, so two instances do not lose a `late`). Whether it changed."""
    session = tx.session
    if session.execute(insert_new(session, duties), asdict(duty)).rowcount == 1:
        return True
    row = session.execute(_duty_for_update, {"incident_id": duty.incident_id, "kind": duty.kind})
    current = ReportDuty(**row.one()._asdict())
    merged = merge_duty(current, duty)
    if merged == current:
        return False
    tx.session.execute(
        update(duties)
        .where(duties.c.incident_id == duty.incident_id, duties.c.kind == duty.kind)
        .values(center=merged.center, due_at=merged.due_at, late=merged.late)
    )
    return True


_reporting_statement = (
    select(
        duties.c.center,
        func.count().label("due"),
        func.sum(case((duties.c.late, 1), else_=0)).label("late"),
    )
    .where(
        duties.c.center.in_(bindparam("centers", expanding=True)),
        duties.c.due_at >= bindparam("since", type_=UtcDateTime()),
        duties.c.due_at < bindparam("until", type_=UtcDateTime()),
    )
    .group_by(duties.c.center)
)


def reporting_counts(
    session: Session, centers: Collection[str], since: datetime, until: datetime
) -> dict[str, tuple[int, int]]:
    """(reports_due, reports_late) of each center with a duty due in
    [since, until) (reporting.reporting_counts; index ix_report_duties_center_due)."""
    if not centers:
        return {}
    parameters = {"centers": sorted(centers), "since": since, "until": until}
    return {
        row.center: (int(row.due), int(row.late or 0))
        for row in session.execute(_reporting_statement, parameters)
    }


_daily_statement = (
    select(day_counts.c.day, *(func.sum(day_counts.c[name]).label(name) for name in COUNT_FIELDS))
    .where(
        day_counts.c.department == WHOLE_CENTER,
        day_counts.c.center.in_(bindparam("centers", expanding=True)),
        day_counts.c.day >= bindparam("first"),
        day_counts.c.day < bindparam("end"),
    )
    .group_by(day_counts.c.day)
)


def daily_counts(
    session: Session, centers: Collection[str], first: date, end: date
) -> dict[date, Counts]:
    """The counts of the centers' orders together, per local day in [first,
    end): whole days of the day counts only (one statement)."""
    parameters = {"centers": sorted(centers), "first": first, "end": end}
    return {
        row.day: Counts(**{name: int(row._mapping[name] or 0) for name in COUNT_FIELDS})
        for row in session.execute(_daily_statement, parameters)
    }


@functools.cache
def _worst_statement(dialect: str):
    """The most overdue orders of some centers dispatched in a window, by how
    long past the deadline each was done (or returned, or is still not done
    at `now`), worst first: the window's overdue orders only, by the
    (center, dispatched_at) index, never the history."""
    r = records.c
    now = bindparam("now", type_=UtcDateTime())

    def seconds(later, earlier):
        if dialect == "postgresql":
            return func.extract("epoch", later - earlier)
        return (func.julianday(later) - func.julianday(earlier)) * 86400

    def late(overdue_at, done_at, due):
        lateness = seconds(func.coalesce(done_at, r.returned_at, now), due)
        return func.coalesce(case((overdue_at.is_not(None), lateness), else_=0), 0)

    accept = late(r.accept_overdue_at, r.accepted_at, r.accept_by)
    arrive = late(r.arrive_overdue_at, r.arrived_at, r.arrive_by)
    worst = (func.greatest if dialect == "postgresql" else func.max)(accept, arrive)
    return (
        select(
            r.order_id,
            r.incident_id,
            r.center,
            r.department,
            r.category,
            r.dispatched_at,
            worst.label("late_s"),
        )  # fmt: skip
        .where(
            r.center.in_(bindparam("centers", expanding=True)),
            r.dispatched_at >= bindparam("since", type_=UtcDateTime()),
            r.dispatched_at < bindparam("until", type_=UtcDateTime()),
            r.cancelled_at.is_(None),
            or_(r.accept_overdue_at.is_not(None), r.arrive_overdue_at.is_not(None)),
            worst > 0,
        )
        .order_by(worst.desc(), r.order_id)
        .limit(bindparam("limit"))
    )


def worst_overdue(
    session: Session,
    centers: Collection[str],
    since: datetime,
    until: datetime,
    now: datetime,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to `limit` overdue orders of `centers` dispatched in [since, until),
    most overdue first, each with `late_s` (seconds past its deadline)."""
    statement = _worst_statement(_dialect_of(session))
    parameters = {
        "centers": sorted(centers),
        "since": since,
        "until": until,
        "now": now,
        "limit": limit,
    }
    return [row._asdict() for row in session.execute(statement, parameters)]


# -- the dashboards' gauges: one instance computes, every instance shows ------

GAUGES = "gauges"
_claim_refresh = (
    update(refreshes)
    .where(refreshes.c.name == bindparam("key"))
    .where(refreshes.c.refreshed_at <= bindparam("stale_before"))
    .values(refreshed_at=bindparam("now"))
)


def claim_refresh(tx: UnitOfWork, now: datetime, every: timedelta) -> bool:
    """Whether this instance computes the gauges now: no refresh within `every`.

    The conditional update is the turn: of instances asking at once, one
    updates the row (PostgreSQL re-checks the condition after the first
    commits; SQLite serialises the writers), the others find it recent.
    """
    start = {"name": GAUGES, "refreshed_at": datetime.fromtimestamp(0, UTC)}
    tx.session.execute(insert_new(tx.session, refreshes), start)
    parameters = {"key": GAUGES, "stale_before": now - every, "now": now}
    return tx.session.execute(_claim_refresh, parameters).rowcount == 1


def save_gauges(tx: UnitOfWork, values: Sequence[dict]) -> None:
    """Replace the last refresh's values: dicts of center, department, score, satisfaction."""
    tx.session.execute(delete(gauge_values))
    if values:
        tx.session.execute(insert(gauge_values), list(values))


def saved_gauges(session: Session) -> list[dict]:
    return [row._asdict() for row in session.execute(select(gauge_values))]


# -- history in bulk, for benchmarks and load tests --------------------------


def seed_records(
    engine: Engine,
    n: int,
    *,
    departments: Sequence[tuple[str, str]],
    since: datetime,
    until: datetime,
    timezone: tzinfo,
    rated: float = 0.6,
    seed: int = 0,
    batch: int = 20_000,
) -> int:
    """Insert `n` plausible order records dispatched in [since, until) over
    `departments` ((center, department) pairs), one incident each, a share
    `rated` of them rated, and their day counts; bulk inserts of `batch` rows
    per statement round. How many ratings were inserted."""
    generate = random.Random(seed)
    span_s = (until - since).total_seconds()
    prefix = f"seed{seed}-"
    inserted = 0
    totals: dict[DayKey, Counts] = {}
    with engine.begin() as connection:
        for start in range(0, n, batch):
            rows, rates = [], []
            for k in range(start, min(n, start + batch)):
                at = since + timedelta(seconds=generate.random() * span_s)
                center, department = departments[k % len(departments)]
                row = _seeded_record(generate, f"{prefix}{k}", center, department, at)
                rows.append(row)
                rate = None
                if generate.random() < rated:
                    rate = _seeded_rating(generate, row["incident_id"], at)
                    rates.append(rate)
                # one order per incident: the first of both its groups, which
                # count the rating when it kept the order
                kept = rate is not None and row["returned_at"] is None
                share = Share(rate["rating"] if kept else None)
                counted = order_counts(OrderRecord.from_mapping(row), share)
                day = at.astimezone(timezone).date()
                for key in ((center, department, day), (center, WHOLE_CENTER, day)):
                    totals[key] = totals.get(key, Counts()) + counted
            connection.execute(insert(records), rows)
            if rates:
                connection.execute(insert(ratings), rates)
            inserted += len(rates)
        add_to_days(connection, totals)
        if connection.dialect.name == "postgresql":  # the planner must see the new rows
            connection.execute(text("ANALYZE order_records, ratings, day_counts"))
    return inserted


def _seeded_record(generate: random.Random, key: str, center: str, department: str, at):
    def after(low: int, high: int, share: float) -> datetime | None:
        return (
            at + timedelta(seconds=generate.randint(low, high))
            if generate.random() < share
            else None
        )

    returned = after(30, 600, 0.05)
    kept = returned is None
    return {
        "order_id": key,
        "incident_id": key,
        "center": center,
        "department": department,
        "role": "lead",
        "category": "water.burst_main",
        "tier": 1,
        "recipient": "department",
        "replaces": None,
        "dispatched_at": at,
        "accept_by": at + timedelta(seconds=300),
        "arrive_by": at + timedelta(seconds=1800),
        "accepted_at": after(10, 400, 0.97) if kept else None,
        "arrived_at": after(300, 2400, 0.9) if kept else None,
        "reported_at": None,
        "completed_at": after(1800, 20000, 0.85) if kept else None,
        "returned_at": returned,
        "accept_overdue_at": None,
        "arrive_overdue_at": None,
        "cancelled_at": None,
        "urges": 0,
    }


def _seeded_rating(generate: random.Random, incident_id: str, at: datetime) -> dict:
    value = generate.choices(RATINGS, weights=(6, 3, 1))[0]
    return {
        "incident_id": incident_id,
        "rating": value,
        "operator": "seed",
        "at": at + timedelta(days=1),
        "event_id": f"seed-{incident_id}",
    }
