"""The assessment service (管理考核): department scores and citizen satisfaction;
centers ranked and the notice in centers.py.

It keeps one record per work order, built from dispatch's events (an
incident and its orders come as one dispatch decision, `orders_dispatched`),
learns command moves from escalation, and takes the citizens' ratings (回访).
Events may come in any order and twice: each one sets only its own facts
(records.py). Each change also adds to the counts per department and day in
the same transaction (store.py); figures are read from those and scored by
the formula (scoring.py, where it is written out).
"""

from __future__ import annotations

import logging
from datetime import datetime, tzinfo
from typing import Any

from nameko.dependency_providers import Config

from services.assessment import gauges, store
from services.assessment.centers import CenterAssessment
from services.assessment.gauges import GAUGE_REFRESH_S
from services.assessment.metrics import rated
from services.assessment.models import Base, outbox, processed_events
from services.assessment.records import (
    Rating,
    dispatched_orders,
    incident_of,
    move_from_event,
    order_facts,
    rating_from_event,
)
from services.assessment.scoring import WHOLE_CENTER, Counts, assess_counts, scored_weights
from shared.auth import area, may_steer, require
from shared.db import Database, UnitOfWork
from shared.dependencies import Authentication, NetworkProvider, api
from shared.errors import NotFound, ValidationError
from shared.events import RATINGS, utcnow
from shared.fields import instant_arg, text_arg
from shared.messaging import handles
from shared.metrics import EntrypointMetrics
from shared.outbox import Outbox
from shared.retention import Retention
from shared.timers import every

log = logging.getLogger(__name__)


class AssessmentService(CenterAssessment):
    name = "assessment"

    db = Database(Base.metadata, outbox, processed_events)
    outbox = Outbox()
    retention = Retention()
    auth = Authentication()
    network = NetworkProvider()
    metrics = EntrypointMetrics()
    config = Config()

    # -- what happened, from the other services (each sets only its facts) --

    @handles("dispatch", "orders_dispatched")
    def on_orders_dispatched(self, event: dict, tx: UnitOfWork) -> None:
        store.add_incident(tx, incident_of(event))
        for order in dispatched_orders(event):
            store.merge_order(tx, order_facts("order_dispatched", order), self._timezone)

    @handles("dispatch", "order_accepted")
    def on_order_accepted(self, event: dict, tx: UnitOfWork) -> None:
        store.merge_order(tx, order_facts("order_accepted", event), self._timezone)

    @handles("dispatch", "order_returned")
    def on_order_returned(self, event: dict, tx: UnitOfWork) -> None:
        store.merge_order(tx, order_facts("order_returned", event), self._timezone)

    @handles("dispatch", "order_arrived")
    def on_order_arrived(self, event: dict, tx: UnitOfWork) -> None:
        store.merge_order(tx, order_facts("order_arrived", event), self._timezone)

    @handles("dispatch", "order_reported")
    def on_order_reported(self, event: dict, tx: UnitOfWork) -> None:
        store.merge_order(tx, order_facts("order_reported", event), self._timezone)

    @handles("dispatch", "order_completed")
    def on_order_completed(self, event: dict, tx: UnitOfWork) -> None:
        store.merge_order(tx, order_facts("order_completed", event), self._timezone)

    @handles("dispatch", "order_overdue")
    def on_order_overdue(self, event: dict, tx: UnitOfWork) -> None:
        store.merge_order(tx, order_facts("order_overdue", event), self._timezone)

    @handles("dispatch", "order_cancelled")
    def on_order_cancelled(self, event: dict, tx: UnitOfWork) -> None:
        store.merge_order(tx, order_facts("order_cancelled", event), self._timezone)

    @handles("dispatch", "order_urged")
    def on_order_urged(self, event: dict, tx: UnitOfWork) -> None:
        """Counted, not merged: the entrypoint applies each urge once."""
        store.urge_order(tx, order_facts("order_urged", event), self._timezone)

    @handles("escalation", "incident_escalated")
    def on_incident_escalated(self, event: dict, tx: UnitOfWork) -> None:
        store.add_move(tx, move_from_event("incident_escalated", event), self._timezone)

    @handles("escalation", "incident_assigned_down")
    def on_incident_assigned_down(self, event: dict, tx: UnitOfWork) -> None:
        store.add_move(tx, move_from_event("incident_assigned_down", event), self._timezone)

    @handles("assessment", "satisfaction_recorded")
    def on_satisfaction_recorded(self, event: dict, tx: UnitOfWork) -> None:
        """Our own event is already applied by `record_satisfaction`: its
        rating is the stored one (or a later one replaced it), so applying it
        again changes nothing (`store.apply_rating`). Another deployment's
        event, or a rebuilt database, gets the latest rating either way."""
        store.apply_rating(tx, rating_from_event(event), self._timezone)

    # -- 回访: the citizen's rating ------------------------------------------

    @api(mutating=True)
    def record_satisfaction(self, incident_id: str, rating: str) -> dict:
        """Record the citizen's rating of an incident (满意 / 基本满意 / 不满意),
        by a center the incident is in scope for (回访).

        One rating per incident: a later call replaces the earlier one (the
        latest by recording time wins), and the answer names the one replaced.
        """
        errors: dict[str, list[str]] = {}
        text_arg(errors, "incident_id", incident_id)
        if rating not in RATINGS:
            errors["rating"] = [f"must be one of {', '.join(RATINGS)}"]
        if errors:
            raise ValidationError(errors)
        self.caller.require("center")
        operator = self.caller.sub
        with self.db.read() as session:
            case = store.rights_case(session, incident_id)
        if case is not None:
            require(may_steer(self.caller, self.network, case), f"incident {incident_id}")
        now = utcnow()
        with self.db.transaction() as tx:
            if not store.incident_known(tx.session, incident_id):
                raise NotFound(f"no incident {incident_id} known to assessment")
            payload = tx.emit(
                "satisfaction_recorded",
                incident_id=incident_id,
                rating=rating,
                operator=operator,
                at=now,
            )
            # applied here, so the next `scores` sees it; when the event comes
            # back, `on_satisfaction_recorded` finds it applied
            stored = Rating(incident_id, rating, operator, now, payload["event_id"])
            _, replaced = store.apply_rating(tx, stored, self._timezone)
            tx.after_commit(lambda: rated(rating))
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
        return self._assess(center, since, until, totals=False)["rows"]

    @api
    def report(self, center: str, since: str, until: str) -> dict:
        """The scores plus the center's totals, for a monthly notice (通报)."""
        result = self._assess(center, since, until, totals=True)
        return {
            "center": center,
            "center_name": self.network.centers[center].name,
            "since": since,
            "until": until,
            "as_of": result["as_of"],
            "weights": scored_weights(self.network.weights),
            "rows": result["rows"],
            "totals": result["totals"],
        }

    @property
    def _timezone(self) -> tzinfo:
        """The calendar whose days the day counts are kept by."""
        return self.network.timezone

    def _assess(self, center: Any, since: Any, until: Any, *, totals: bool) -> dict:
        start, end = self._window(center, since, until)
        return self._assessed(center, start, end, totals=totals)

    def _assessed(self, center: str, start: datetime, end: datetime, *, totals: bool) -> dict:
        """Counted from the day counts (and a partial first or last day's
        records), scored here."""
        as_of = utcnow()
        departments = self.network.departments_of(center)
        codes = [d.code for d in departments]
        with self.db.read() as session:
            counted = store.window_counts(session, self._timezone, start, end, center)
        counts = {department: c for (_, department), c in counted.items()}
        total = counts.get(WHOLE_CENTER, Counts()) if totals else None
        result = assess_counts(codes, counts, total, self.network.weights)
        names = {d.code: d.name for d in departments}
        for row in result["rows"]:
            row["name"] = names[row["department"]]
        return {**result, "as_of": as_of.isoformat()}

    def _window(
        self, center: Any, since: Any, until: Any, errors: dict | None = None
    ) -> tuple[datetime, datetime]:
        """The window's bounds, once the caller may see `center`'s scores: an
        admin, or a center or auditor whose area holds it. `errors`: the
        caller's other arguments' problems, reported with these."""
        self.caller.require("center", "auditor")
        errors = {} if errors is None else errors
        if text_arg(errors, "center", center) and center not in self.network.centers:
            errors["center"] = [f"unknown center {center}"]
        elif not self.caller.is_admin:
            require(center in area(self.network, self.caller.center), f"scores of {center}")
        start = instant_arg(errors, "since", since)
        end = instant_arg(errors, "until", until)
        if start and end and start >= end:
            errors["until"] = ["must be later than since"]
        if errors:
            raise ValidationError(errors)
        return start, end

    # -- the dashboards' gauges ---------------------------------------------

    @every("ASSESSMENT_GAUGES_S", GAUGE_REFRESH_S)
    def refresh_gauges(self) -> None:
        """Scores and satisfaction over the 30 local days ending today, for
        departments with data (gauges.py)."""
        interval = float(self.config.get("ASSESSMENT_GAUGES_S") or GAUGE_REFRESH_S)
        gauges.refresh(self.db, self.network, interval, utcnow())
