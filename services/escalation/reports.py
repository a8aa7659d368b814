"""Information reporting up the chain (信息报送, CONTRACT.md section 8), as
the escalation service runs it; the rules are in `reporting`.

Escalation already follows every incident's facts and its command, so it also
keeps the duty to report: started at receipt (`orders_dispatched`) or by the
update that first makes the incident reportable, the first report due
`first_s` later; the final report due `final_s` after the incident closes.
`file_report` sends a report to every ancestor of the town up to `up_to`
(`report_filed`); the receivers sign for it (`acknowledge`,
`report_acknowledged`); a duty still unanswered at its deadline is announced
once (`report_overdue`), whatever the number of instances.
Mixed into `EscalationService`: its entrypoints, beside the service's own.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime

from services.escalation import domain, reporting
from services.escalation import report_store as reports_db
from services.escalation.metrics import REPORTS_FILED, REPORTS_OVERDUE
from services.escalation.models import CommandState, InfoReport, ReportDuty
from shared import config
from shared.auth import may_watch_center, require
from shared.db import UnitOfWork, each_in_turn
from shared.dependencies import api
from shared.errors import NotFound, ValidationError
from shared.events import REPORT_KINDS, utcnow
from shared.ids import new_id
from shared.messaging import handles
from shared.timers import every

log = logging.getLogger(__name__)

INBOX_LIMIT = 500


def reporting_facts(incident: CommandState | dict) -> reporting.ReportingFacts:
    """What the reporting rules read of an incident (its row, or the row to be)."""
    names = ("category", "town", "grade", "crowd_size", "casualties")
    if isinstance(incident, dict):
        return reporting.ReportingFacts(**{name: incident[name] for name in names})
    return reporting.ReportingFacts(**{name: getattr(incident, name) for name in names})


class InformationReports:
    # -- the duty ------------------------------------------------------------------

    def _duty_from(self, tx: UnitOfWork, state: CommandState, duty: reporting.Duty | None) -> None:
        """Record the first-report duty `duty` starts (if any, and if none yet)."""
        if duty is None:
            return
        row = {
            "incident_id": state.incident_id,
            "kind": "first",
            "center": state.town,
            "triggers": ",".join(duty.triggers),
            "since": duty.since,
            "due_at": duty.first_due,
        }
        if reports_db.add_duty(tx, row):
            self._answer_from_the_record(tx, state.incident_id, "first", REPORT_KINDS)

    def _reporting_after_update(
        self, tx: UnitOfWork, state: CommandState, before: reporting.ReportingFacts, at: datetime
    ) -> None:
        duty = reporting.duty_on_update(before, reporting_facts(state), at, self.network)
        self._duty_from(tx, state, duty)

    def _answer_from_the_record(
        self, tx: UnitOfWork, incident_id: str, kind: str, kinds: tuple[str, ...]
    ) -> None:
        """A duty whose event came after the report that meets it is met by it."""
        found = reports_db.duty(tx.session, incident_id, kind)
        filed = reports_db.earliest_report(tx.session, incident_id, kinds, found.since)
        if filed is not None:
            reports_db.answer(found, filed.report_id, filed.filed_at)

    @handles("intake", "incident_closed")
    def on_incident_closed(self, event: dict, tx: UnitOfWork) -> None:
        """A reportable incident closed: its final report (终报) is due
        `final_s` later; a reopened and closed again one owes it from the last
        closing, unless it was answered or missed already."""
        self._require_incident(tx, event["incident_id"])
        state = self._locked(tx, event["incident_id"])
        if reports_db.duty(tx.session, state.incident_id, "first") is None:
            return  # never had to be reported
        reports_db.withdraw_open_final(tx, state.incident_id, before=event["at"])
        row = {
            "incident_id": state.incident_id,
            "kind": "final",
            "center": state.town,
            "triggers": "closed",
            "since": event["at"],
            "due_at": reporting.final_report_due(event["at"], self.network),
        }
        if reports_db.add_duty(tx, row):
            self._answer_from_the_record(tx, state.incident_id, "final", ("final",))

    @handles("intake", "incident_reopened")
    def on_incident_reopened(self, event: dict, tx: UnitOfWork) -> None:
        """Open again: no final report is due until it closes again."""
        self._require_incident(tx, event["incident_id"])
        self._locked(tx, event["incident_id"])
        reports_db.withdraw_open_final(tx, event["incident_id"], before=event["at"])

    # -- filing, reading, signing (RPC) ----------------------------------------------

    @api(mutating=True)
    def file_report(self, incident_id: str, kind: str, text: str) -> dict:
        """Report on an incident to the centers above its town (初报, 续报,
        终报): the town's center or the center in command files."""
        caller = self.caller.require("center")
        domain.check_arguments(self.network, incident_id=incident_id, text=text)
        if kind not in REPORT_KINDS:
            raise ValidationError({"kind": [f"must be one of {', '.join(REPORT_KINDS)}"]})
        with self.db.transaction() as tx:
            state = self._locked(tx, incident_id)
            filed_by = state.center if caller.is_admin else caller.center
            require(
                reporting.may_file(filed_by, state.town, state.center),
                f"reporting on incident {incident_id}: only {state.town} or {state.center}",
            )
            at, report_id = utcnow(), new_id()
            recipients = [c.code for c in reporting.recipients(state.town, self.network, filed_by)]
            filed = {
                "report_id": report_id,
                "incident_id": incident_id,
                "kind": kind,
                "town": state.town,
                "filed_by": filed_by,
                "operator": caller.sub,
            }
            answers = self._answered_by(tx, incident_id, kind, report_id, at)
            event = tx.emit(
                "report_filed",
                **filed,
                owed_by=state.town,
                recipients=recipients,
                at=at,
                answers=answers,
            )
            row = {**filed, "text": text, "filed_at": at, "event_id": event["event_id"]}
            reports_db.add_report(tx, row, recipients)
            tx.after_commit(lambda: REPORTS_FILED.labels(kind).inc())
            return self._report_views(tx.session, [reports_db.report(tx.session, report_id)])[0]

    @staticmethod
    def _answered_by(
        tx: UnitOfWork, incident_id: str, kind: str, report_id: str, at: datetime
    ) -> list[dict]:
        """The open duties a report of `kind` filed at `at` meets, marked met."""
        answered = []
        for duty in reports_db.duties(tx.session, incident_id):
            if duty.answered_at is not None:
                continue
            if duty.kind == "first":
                meets = reporting.answers_first(kind)
            else:
                meets = reporting.answers_final(kind, at, duty.since)
            if meets:
                answered.append(reports_db.answer(duty, report_id, at))
        return answered

    @api
    def reports(self, incident_id: str) -> list[dict]:
        """The reports filed on an incident, oldest first, each with its
        receivers and whether they have signed for it."""
        domain.check_arguments(self.network, incident_id=incident_id)
        with self.db.read() as session:
            state = self._readable(session, incident_id)
            return self._report_views(session, reports_db.reports(session, state.incident_id))

    @api
    def inbox(self, center: str, unacknowledged: bool | None = None) -> list[dict]:
        """The reports `center` received, newest first (at most 500); only the
        ones it has not signed for with `unacknowledged=True`."""
        domain.check_arguments(self.network, center=center)
        if unacknowledged not in (None, True, False):
            raise ValidationError({"unacknowledged": ["must be true, false or null"]})
        self._require_center_room(center)
        with self.db.read() as session:
            found = reports_db.inbox(session, center, unacknowledged, INBOX_LIMIT)
            return [{**report_view(filed), **receipt_view(receipt)} for receipt, filed in found]

    @api(mutating=True)
    def acknowledge(self, report_id: str) -> dict:
        """签收: the caller's center signs for a report it received (an admin
        for every receiver); signing twice changes nothing."""
        caller = self.caller.require("center")
        domain.check_arguments(self.network, report_id=report_id)
        with self.db.transaction() as tx:
            filed = reports_db.report(tx.session, report_id)
            if filed is None:
                raise NotFound(f"no report {report_id}")
            receivers = [r.center for r in reports_db.receipts(tx.session, [report_id])[report_id]]
            centers = receivers if caller.is_admin else [caller.center]
            require(caller.is_admin or caller.center in receivers, f"report {report_id}")
            at = utcnow()
            for center in reports_db.acknowledge(tx, report_id, centers, caller.sub, at):
                fields = {"report_id": report_id, "incident_id": filed.incident_id}
                tx.emit("report_acknowledged", **fields, center=center, operator=caller.sub, at=at)
            return self._report_views(tx.session, [filed])[0]

    def _require_center_room(self, center: str) -> None:
        """A center's inbox: its area's centers and auditors, admins."""
        if center not in self.network.centers:
            raise ValidationError({"center": ["is not a center of this network"]})
        require(may_watch_center(self.caller, self.network, center), f"the inbox of {center}")

    @staticmethod
    def _report_views(session, found: list[InfoReport]) -> list[dict]:
        receipts = reports_db.receipts(session, [r.report_id for r in found])
        return [
            {**report_view(r), "recipients": [receipt_view(c) for c in receipts[r.report_id]]}
            for r in found
        ]

    # -- missed deadlines -----------------------------------------------------------------

    @every("DEADLINE_SCAN_S", config.deadline_scan_s())
    def scan_reports(self) -> None:
        """Announce each report duty past its deadline and unanswered, once."""
        self.announce_missed_reports(utcnow())

    def announce_missed_reports(self, now: datetime) -> int:
        """Announce the duties missed by `now`; how many this instance announced."""
        with self.db.read() as session:
            due = reports_db.due_duties(session, now)
        return sum(
            each_in_turn(due, lambda duty_id: self._announce_missed(duty_id, now), "report duty")
        )

    def _announce_missed(self, duty_id: int, now: datetime) -> bool:
        with self.db.transaction() as tx:
            missed = reports_db.mark_overdue(tx, duty_id, now)
            if missed is None:
                return False  # answered, or announced by another instance
            state = tx.session.get(CommandState, missed.incident_id)
            tx.emit(
                "report_overdue",
                incident_id=missed.incident_id,
                town=state.town,
                center=missed.center,
                kind=missed.kind,
                due_at=missed.due_at,
                at=now,
            )
            tx.after_commit(
                functools.partial(
                    self._count_missed, missed.incident_id, missed.kind, missed.center
                )
            )
            return True

    def _count_missed(self, incident_id: str, kind: str, center: str) -> None:
        REPORTS_OVERDUE.labels(kind, self.network.centers[center].level).inc()
        log.info("incident %s: the %s report of %s is overdue", incident_id, kind, center)


def duty_view(duty: ReportDuty) -> dict:
    """A report owed: `first` or `final`, who owes it, by when, met by which
    report and when, or announced missed."""
    return {
        "kind": duty.kind,
        "center": duty.center,
        "triggers": duty.triggers.split(","),
        "due_at": duty.due_at.isoformat(),
        "answered_at": duty.answered_at.isoformat() if duty.answered_at else None,
        "answered_by": duty.answered_by,
        "overdue": duty.overdue_at is not None,
    }


def report_view(filed: InfoReport) -> dict:
    return {
        "report_id": filed.report_id,
        "incident_id": filed.incident_id,
        "kind": filed.kind,
        "town": filed.town,
        "filed_by": filed.filed_by,
        "operator": filed.operator,
        "text": filed.text,
        "filed_at": filed.filed_at.isoformat(),
    }


def receipt_view(receipt) -> dict:
    return {
        "center": receipt.center,
        "acknowledged_at": receipt.acknowledged_at.isoformat() if receipt.acknowledged_at else None,
        "acknowledged_by": receipt.acknowledged_by,
    }
