"""Centers assessed (效能督查), and the period's notice (通报).

Mixed into `AssessmentService`: its entrypoints, beside the service's own.
Reporting timeliness comes from escalation's `report_overdue` and
`report_filed` (one row per duty, merged by reporting.py, so order and
repetition do not matter); the centers' units from the day counts, by the
same formula as `scores` (scoring.py); the ranking is ranking.py's, the
document notice.py's. Every figure is read per window (the day counts, the
window's duties and overdue orders): the cost does not grow with history.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from eventlet import tpool
from eventlet.semaphore import Semaphore

from services.assessment import ranking, store
from services.assessment.notice import FORMATS, HEADLINE_KEYS, MAX_WORST_CASES, render_notice
from services.assessment.reporting import duties_answered, duty_overdue
from services.assessment.scoring import WHOLE_CENTER, Counts, figures_of, local_day, scored_weights
from shared.auth import area
from shared.db import UnitOfWork
from shared.dependencies import api
from shared.events import utcnow
from shared.messaging import handles

# One notice laid out at a time per process, in a native thread: WeasyPrint
# is CPU-bound for a second or two, which on eventlet's hub would stall every
# other worker of the process; in tpool the hub keeps switching greenlets
# (the GIL is shared, so they run slower, not stop), and one at a time keeps
# matplotlib's global style state to a single thread.
_RENDERING = Semaphore(1)


def render_in_thread(data: dict[str, Any], format: str) -> tuple[str, str, bytes]:
    with _RENDERING:
        return tpool.execute(render_notice, data, format)


class CenterAssessment:
    # -- 信息报送: the duties to report, as escalation tells of them ----------

    @handles("escalation", "report_overdue")
    def on_report_overdue(self, event: dict, tx: UnitOfWork) -> None:
        store.add_duty(tx, duty_overdue(event))

    @handles("escalation", "report_filed")
    def on_report_filed(self, event: dict, tx: UnitOfWork) -> None:
        """A progress report answers no duty; a first or final one its own."""
        for duty in duties_answered(event):
            store.add_duty(tx, duty)

    # -- the centers below one, ranked ---------------------------------------

    @api
    def rank_centers(self, parent: str, since: str, until: str) -> list[dict]:
        """One row per center directly below `parent`, best first (ranking.py)."""
        start, end = self._window(parent, since, until)
        return self._ranked(parent, start, end)

    def _ranked(self, parent: str, start: datetime, end: datetime) -> list[dict]:
        children = [c for c in self.network.centers.values() if c.parent == parent]
        codes = [c.code for c in children]
        with self.db.read() as session:
            units = {code: self._units(session, code, start, end) for code in codes}
            reports = store.reporting_counts(session, codes, start, end)
        given = []
        for child in children:
            figures = figures_of(units[child.code], self.network.weights)
            due, late = reports.get(child.code, (0, 0))
            given.append(
                {
                    "center": child.code,
                    "name": child.name,
                    "units_score": figures.score,
                    "orders": figures.orders,
                    "satisfaction_rate": figures.satisfaction_rate,
                    "returns": figures.returns,
                    "urges": figures.urges,
                    "overdue_orders": figures.overdue,
                    "reports_due": due,
                    "reports_late": late,
                }
            )
        return ranking.rank_centers(given)

    def _units(self, session, center: str, start: datetime, end: datetime) -> Counts:
        """The counts of all the center's own orders over the window (the
        `report` totals' counts)."""
        counted = store.window_counts(session, self._timezone, start, end, center)
        return counted.get((center, WHOLE_CENTER), Counts())

    # -- the notice (通报) ----------------------------------------------------

    @api
    def notice(self, center: str, since: str, until: str, format: str = "pdf") -> dict:
        """The period's notice of `center` as a file: html or pdf (notice.py)."""
        errors: dict[str, list[str]] = {}
        if not isinstance(format, str) or format not in FORMATS:
            errors["format"] = [f"must be one of {', '.join(FORMATS)}"]
        start, end = self._window(center, since, until, errors)
        zone = self._timezone
        data = self._notice_data(center, start.astimezone(zone), end.astimezone(zone))
        filename, content_type, content = render_in_thread(data, format)
        return {
            "filename": filename,
            "content_type": content_type,
            "content_base64": base64.b64encode(content).decode("ascii"),
        }

    def _notice_data(self, center: str, start: datetime, end: datetime) -> dict[str, Any]:
        """notice.py's `data`: the departments as `report` ranks them, the
        centers below as `rank_centers` does; the headline, the daily series
        and the worst cases over the center's area (it and every center below)."""
        now = utcnow()
        codes = sorted(area(self.network, center))
        assessed = self._assessed(center, start, end, totals=False)
        with self.db.read() as session:
            units = sum((self._units(session, code, start, end) for code in codes), Counts())
            reports = store.reporting_counts(session, codes, start, end)
            daily = self._daily(session, codes, start, end)
            worst = store.worst_overdue(session, codes, start, end, now, MAX_WORST_CASES)
        figures = figures_of(units, self.network.weights)
        of_units = [key for key in HEADLINE_KEYS if not key.startswith("reports_")]
        headline = {key: getattr(figures, key) for key in of_units}
        headline["reports_due"] = sum(due for due, _ in reports.values())
        headline["reports_late"] = sum(late for _, late in reports.values())
        return {
            "center": center,
            "center_name": self.network.centers[center].name,
            "center_level": self.network.centers[center].level,
            "since": start,
            "until": end,
            "as_of": now.astimezone(self._timezone),
            "headline": headline,
            "departments": assessed["rows"],
            "centers": self._ranked(center, start, end),
            "daily": daily,
            "worst_overdue": [self._worst_case(center, row) for row in worst],
            "weights": scored_weights(self.network.weights),
        }

    def _daily(self, session, codes: list[str], start: datetime, end: datetime) -> list[dict]:
        """One entry per local day the window touches, from the day counts
        (a partial first or last day shows its whole day)."""
        first = local_day(start, self._timezone)
        stop = local_day(end - timedelta(microseconds=1), self._timezone) + timedelta(days=1)
        counted = store.daily_counts(session, codes, first, stop)
        series = []
        for n in range((stop - first).days):
            day = first + timedelta(days=n)
            figures = figures_of(counted.get(day, Counts()), self.network.weights)
            series.append(
                {
                    "date": day.isoformat(),
                    "satisfaction_rate": figures.satisfaction_rate,
                    "accepted_on_time_rate": figures.accepted_on_time_rate,
                    "arrived_on_time_rate": figures.arrived_on_time_rate,
                }
            )
        return series

    def _worst_case(self, center: str, row: dict) -> dict:
        """An overdue order as the notice lists it: a unit of a center below
        is named with its center's name (东山镇水务营业所)."""
        department = self.network.departments.get(row["department"])
        name = department.name if department else row["department"]
        if row["center"] != center and row["center"] in self.network.centers:
            name = f"{self.network.centers[row['center']].name}{name}"
        category = self.network.categories.get(row["category"] or "")
        return {
            "order_id": row["order_id"],
            "incident_id": row["incident_id"],
            "department_name": name,
            "category": category.name if category else row["category"],
            "dispatched_at": row["dispatched_at"].astimezone(self._timezone),
            "overdue_minutes": round(float(row["late_s"]) / 60),
        }
