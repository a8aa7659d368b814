"""The assessment service (管理考核): department scores and citizen satisfaction.

It keeps one record per work order, built from dispatch's events, learns
incidents from intake and command moves from escalation, and takes the
citizens' ratings (回访). Events may come in any order and twice: each one
sets only its own facts (records.py) and rates are computed when asked
(scoring.py, where the formula is written out).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.assessment.metrics import SATISFACTION_RATINGS, publish
from services.assessment.models import (
    AssessedIncident,
    Base,
    CommandMoveRow,
    OrderRecordRow,
    RatingRow,
    outbox,
    processed_events,
)
from services.assessment.records import (
    RECORD_FIELDS,
    CommandMove,
    OrderRecord,
    Rating,
    is_newer,
    merge,
    move_from_event,
    order_facts,
    rating_from_event,
)
from services.assessment.scoring import assess
from shared.db import Database, Transaction, insert_ignoring_conflicts
from shared.dependencies import NetworkProvider, api
from shared.errors import NotFound, ValidationError
from shared.events import RATINGS, load_event, utcnow
from shared.fields import instant_arg, text_arg
from shared.messaging import handles
from shared.metrics import EntrypointMetrics
from shared.outbox import OutboxRelay
from shared.timers import every

log = logging.getLogger(__name__)

GAUGE_REFRESH_S = 15.0
GAUGE_WINDOW = timedelta(days=30)


def _record_of(row: OrderRecordRow) -> OrderRecord:
    return OrderRecord(**{name: getattr(row, name) for name in RECORD_FIELDS})


def _move_of(row: CommandMoveRow) -> CommandMove:
    return CommandMove(
        event_id=row.event_id,
        incident_id=row.incident_id,
        from_center=row.from_center,
        to_center=row.to_center,
        reason=row.reason,
        at=row.at,
    )


def _rating_of(row: RatingRow) -> Rating:
    return Rating(
        incident_id=row.incident_id,
        rating=row.rating,
        operator=row.operator,
        at=row.at,
        event_id=row.event_id,
    )


class AssessmentService:
    name = "assessment"

    db = Database(Base.metadata, outbox, processed_events)
    relay = OutboxRelay()
    network = NetworkProvider()
    metrics = EntrypointMetrics()

    # -- what happened, from the other services -----------------------------

    @handles("intake", "incident_received")
    def on_incident_received(self, payload: dict) -> None:
        event = load_event("intake", "incident_received", payload)
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], "assessment.on_incident_received"):
                return
            tx.session.execute(
                insert_ignoring_conflicts(tx.session, AssessedIncident.__table__).values(
                    incident_id=event["incident_id"],
                    center=event["center"],
                    category=event["category"],
                    received_at=event["received_at"],
                )
            )

    @handles("dispatch", "order_dispatched")
    def on_order_dispatched(self, payload: dict) -> None:
        self._order_event("order_dispatched", payload, "on_order_dispatched")

    @handles("dispatch", "order_accepted")
    def on_order_accepted(self, payload: dict) -> None:
        self._order_event("order_accepted", payload, "on_order_accepted")

    @handles("dispatch", "order_returned")
    def on_order_returned(self, payload: dict) -> None:
        self._order_event("order_returned", payload, "on_order_returned")

    @handles("dispatch", "order_arrived")
    def on_order_arrived(self, payload: dict) -> None:
        self._order_event("order_arrived", payload, "on_order_arrived")

    @handles("dispatch", "order_reported")
    def on_order_reported(self, payload: dict) -> None:
        self._order_event("order_reported", payload, "on_order_reported")

    @handles("dispatch", "order_completed")
    def on_order_completed(self, payload: dict) -> None:
        self._order_event("order_completed", payload, "on_order_completed")

    @handles("dispatch", "order_overdue")
    def on_order_overdue(self, payload: dict) -> None:
        self._order_event("order_overdue", payload, "on_order_overdue")

    @handles("escalation", "incident_escalated")
    def on_incident_escalated(self, payload: dict) -> None:
        self._command_moved("incident_escalated", payload, "on_incident_escalated")

    @handles("escalation", "incident_assigned_down")
    def on_incident_assigned_down(self, payload: dict) -> None:
        self._command_moved("incident_assigned_down", payload, "on_incident_assigned_down")

    @handles("assessment", "satisfaction_recorded")
    def on_satisfaction_recorded(self, payload: dict) -> None:
        """Our own event: already applied by `record_satisfaction` on this
        database; applying it again (another deployment's event, a rebuilt
        database) keeps the latest rating, so it is harmless either way."""
        event = load_event("assessment", "satisfaction_recorded", payload)
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], "assessment.on_satisfaction_recorded"):
                return
            self._apply_rating(tx, rating_from_event(event))

    def _order_event(self, event_type: str, payload: dict, method: str) -> None:
        """Upsert the order's record with this event's facts only."""
        event = load_event("dispatch", event_type, payload)
        facts = order_facts(event_type, event)
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], f"assessment.{method}"):
                return
            # start the record if this is the first event of the order to arrive;
            # then lock it, so two instances merging at once do not lose a fact
            tx.session.execute(
                insert_ignoring_conflicts(tx.session, OrderRecordRow.__table__).values(
                    order_id=event["order_id"],
                    incident_id=event["incident_id"],
                    center=event["center"],
                    department=event["department"],
                    role=event["role"],
                )
            )
            row = tx.session.get(
                OrderRecordRow, event["order_id"], with_for_update=True, populate_existing=True
            )
            current = {name: getattr(row, name) for name in RECORD_FIELDS}
            for name, value in merge(current, facts).items():
                if current.get(name) != value:
                    setattr(row, name, value)

    def _command_moved(self, event_type: str, payload: dict, method: str) -> None:
        event = load_event("escalation", event_type, payload)
        move = move_from_event(event_type, event)
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], f"assessment.{method}"):
                return
            tx.session.execute(
                insert_ignoring_conflicts(tx.session, CommandMoveRow.__table__).values(
                    **asdict(move)
                )
            )

    def _apply_rating(self, tx: Transaction, rating: Rating) -> Rating | None:
        """Store `rating` unless a later one is stored; the rating it replaced."""
        inserted = tx.session.execute(
            insert_ignoring_conflicts(tx.session, RatingRow.__table__).values(**asdict(rating))
        ).rowcount
        if inserted == 1:
            return None
        row = tx.session.get(
            RatingRow, rating.incident_id, with_for_update=True, populate_existing=True
        )
        current = _rating_of(row)
        if is_newer(rating, current):
            for name, value in asdict(rating).items():
                setattr(row, name, value)
        return current

    # -- 回访: the citizen's rating ------------------------------------------

    @api
    def record_satisfaction(self, incident_id: str, rating: str, operator: str) -> dict:
        """Record the citizen's rating of an incident (满意 / 基本满意 / 不满意).

        One rating per incident: a later call replaces the earlier one (the
        latest by recording time wins), and the answer names the one replaced.
        """
        errors: dict[str, list[str]] = {}
        text_arg(errors, "incident_id", incident_id)
        text_arg(errors, "operator", operator)
        if rating not in RATINGS:
            errors["rating"] = [f"must be one of {', '.join(RATINGS)}"]
        if errors:
            raise ValidationError(errors)
        now = utcnow()
        with self.db.transaction() as tx:
            known = tx.session.get(AssessedIncident, incident_id) is not None or (
                tx.session.scalar(
                    select(OrderRecordRow.order_id)
                    .where(OrderRecordRow.incident_id == incident_id)
                    .limit(1)
                )
                is not None
            )
            if not known:
                raise NotFound(f"no incident {incident_id} known to assessment")
            payload = tx.emit(
                "satisfaction_recorded",
                incident_id=incident_id,
                rating=rating,
                operator=operator,
                at=now,
            )
            # applied here, so the next `scores` sees it; the event is then ours already
            tx.first_time(payload["event_id"], "assessment.on_satisfaction_recorded")
            stored = Rating(incident_id, rating, operator, now, payload["event_id"])
            replaced = self._apply_rating(tx, stored)
        SATISFACTION_RATINGS.labels(rating).inc()
        log.info("satisfaction recorded for an incident: %s", rating)
        return {
            "incident_id": incident_id,
            "rating": rating,
            "operator": operator,
            "recorded_at": now.isoformat(),
            "replaced": replaced.rating if replaced else None,
        }

    # -- scores and the monthly notice (通报) --------------------------------

    @api
    def scores(self, center: str, since: str, until: str) -> list[dict]:
        """One row per department of `center`, best first (see scoring.py)."""
        return self._assess(center, since, until)["rows"]

    @api
    def report(self, center: str, since: str, until: str) -> dict:
        """The scores plus the center's totals, for a monthly notice (通报)."""
        result = self._assess(center, since, until)
        return {
            "center": center,
            "center_name": self.network.centers[center].name,
            "since": since,
            "until": until,
            "as_of": result["as_of"],
            "weights": dict(self.network.weights),
            "rows": result["rows"],
            "totals": result["totals"],
        }

    def _assess(self, center: Any, since: Any, until: Any) -> dict:
        errors: dict[str, list[str]] = {}
        if text_arg(errors, "center", center) and center not in self.network.centers:
            errors["center"] = [f"unknown center {center}"]
        start = instant_arg(errors, "since", since)
        end = instant_arg(errors, "until", until)
        if start and end and start >= end:
            errors["until"] = ["must be later than since"]
        if errors:
            raise ValidationError(errors)
        as_of = utcnow()
        with self.db.read() as session:
            records, ratings, moves = self._load(session, start, end, center)
        departments = self.network.departments_of(center)
        result = assess(
            center,
            [d.code for d in departments],
            records,
            ratings=ratings,
            moves=moves,
            weights=self.network.weights,
            since=start,
            until=end,
            as_of=as_of,
        )
        names = {d.code: d.name for d in departments}
        for row in result["rows"]:
            row["name"] = names[row["department"]]
        return {**result, "as_of": as_of.isoformat()}

    @staticmethod
    def _load(session, since: datetime, until: datetime, center: str | None = None):
        """Records dispatched in the window (at `center`, or anywhere), with the
        ratings of their incidents and the command moves of those incidents."""
        window = [
            OrderRecordRow.dispatched_at >= since,
            OrderRecordRow.dispatched_at < until,
        ]
        if center is not None:
            window.append(OrderRecordRow.center == center)
        incidents = select(OrderRecordRow.incident_id).where(*window)
        records = [
            _record_of(row) for row in session.scalars(select(OrderRecordRow).where(*window))
        ]
        ratings = dict(
            session.execute(
                select(RatingRow.incident_id, RatingRow.rating).where(
                    RatingRow.incident_id.in_(incidents)
                )
            ).all()
        )
        moves = [
            _move_of(row)
            for row in session.scalars(
                select(CommandMoveRow).where(CommandMoveRow.incident_id.in_(incidents))
            )
        ]
        return records, ratings, moves

    # -- the dashboards' gauges ---------------------------------------------

    @every("ASSESSMENT_GAUGES_S", GAUGE_REFRESH_S)
    def refresh_gauges(self) -> None:
        """Scores and satisfaction over the trailing 30 days, for departments
        with data; the same on every instance, since all read one database."""
        now = utcnow()
        since = now - GAUGE_WINDOW
        with self.db.read() as session:
            records, ratings, moves = self._load(session, since, now)
        by_center: dict[str, list[OrderRecord]] = {}
        for record in records:
            by_center.setdefault(record.center, []).append(record)
        scores: dict[tuple[str, str], float] = {}
        satisfaction: dict[tuple[str, str], float] = {}
        for center, held in by_center.items():
            if center not in self.network.centers:
                continue
            result = assess(
                center,
                [d.code for d in self.network.departments_of(center)],
                held,
                ratings=ratings,
                moves=moves,
                weights=self.network.weights,
                since=since,
                until=now,
                as_of=now,
            )
            for row in result["rows"]:
                key = (center, row["department"])
                if row["score"] is not None:
                    scores[key] = row["score"]
                if row["satisfaction_rate"] is not None:
                    satisfaction[key] = row["satisfaction_rate"]
        publish(scores, satisfaction)
