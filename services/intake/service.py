"""The intake service (统一接警): takes reports in, deduplicates them, announces incidents."""

from __future__ import annotations

import json
import logging

from services.intake import store
from services.intake.domain import (
    announcement,
    changed,
    facts,
    incident_from_report,
    incident_view,
)
from services.intake.listing import Listing
from services.intake.metrics import INCIDENTS_RECEIVED
from services.intake.models import Base, Incident, outbox, processed_events
from services.intake.schemas import ChangesSchema, ReportSchema, SummarySchema
from shared.auth import Case, area, may_read, may_steer, require
from shared.db import Database, UnitOfWork
from shared.dependencies import Authentication, NetworkProvider, RpcProxy, api, validated
from shared.errors import InvalidTransition, NotFound, ValidationError
from shared.events import utcnow
from shared.fields import instant_arg, require_text
from shared.ids import new_id
from shared.messaging import handles
from shared.metrics import EntrypointMetrics
from shared.outbox import Outbox
from shared.retention import Retention

log = logging.getLogger(__name__)


class IntakeService(Listing):
    """Entrypoints: taking reports and steering the case here; finding
    incidents (listing.py) is mixed in."""

    name = "intake"

    db = Database(Base.metadata, outbox, processed_events)
    outbox = Outbox()
    retention = Retention()
    auth = Authentication()
    network = NetworkProvider()
    metrics = EntrypointMetrics()
    dispatch = RpcProxy("dispatch")  # who holds orders, when a caller's rights need it

    @api(mutating=True)
    def submit_report(self, report: dict) -> dict:
        """A platform submits for its own source systems; a center takes a
        report itself (channel `center`), and the incident starts under it."""
        caller = self.caller.require("platform", "center")
        data = validated(ReportSchema(), report, network=self.network)
        if caller.kind == "platform":
            require(data["source_system"] in caller.source_systems, "another platform's system")
            require(data["center"] is None, "a platform's report starts under its town")
        elif caller.kind == "center":
            require(data["channel"] == "center", "a center's own report has channel center")
            town = data["location"]["town"]
            require(town in area(self.network, caller.center), "a town outside the center")
            data["center"] = caller.center  # the token's, whatever the report says
        transfer_to = self.network.categories[data["category"]].transfer_to
        incident = incident_from_report(data, new_id(), utcnow(), transfer_to)
        with self.db.transaction() as tx:
            if store.add_incident(tx, incident):
                event_type, fields = announcement(incident)
                tx.emit(event_type, **fields)
                tx.after_commit(lambda: self._received(incident))
                status, first = "accepted", incident
            else:
                status = "duplicate"
                first = store.by_source(tx.session, data["source_system"], data["external_id"])
        log.info("report %s: incident %s", status, first["incident_id"])
        return {
            "incident_id": first["incident_id"],
            "status": status,
            "center": first["center"],
            "received_at": first["received_at"].isoformat(),
        }

    @api
    def get_incident(self, incident_id: str) -> dict:
        """The incident; its reporter in full only to those the contract names
        (every such disclosure recorded), masked for everyone else."""
        require_text("incident_id", incident_id, 32)
        with self.db.read() as session:
            incident = store.get(session, incident_id)
            if incident is None:
                raise NotFound(f"no incident {incident_id}")
        case = self._case(incident)
        require(may_read(self.caller, self.network, case), f"incident {incident_id}")
        full = self.caller.kind != "auditor"
        if full and (incident.reporter_name or incident.reporter_phone):
            with self.db.transaction() as tx:
                store.record_disclosure(
                    tx, self.caller.sub, self.caller.kind, incident_id, utcnow()
                )
        return incident_view(incident, full_personal_data=full)

    @api
    def personal_data_access(self, since: str, until: str, limit: int = 1000) -> list[dict]:
        """Who was shown a reporter's name and phone in full, and when (admins only)."""
        self.caller.require("admin")
        errors: dict = {}
        start = instant_arg(errors, "since", since)
        end = instant_arg(errors, "until", until)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            errors["limit"] = ["must be an integer from 1 to 10000"]
        if errors:
            raise ValidationError(errors)
        with self.db.read() as session:
            return store.disclosures(session, start, end, limit)

    # -- the case under the operators' control (CONTRACT.md section 7) ---------

    @api(mutating=True)
    def update_incident(self, incident_id: str, changes: dict, reason: str) -> dict:
        """Change the case's facts, announced with each field's old and new
        value: a new category re-routes (dispatch), a new crowd size, grade or
        casualty count is judged again (escalation)."""
        require_text("incident_id", incident_id, 32)
        reason = require_text("reason", reason, 2000)
        wanted = validated(ChangesSchema(), changes, network=self.network)
        with self.db.transaction() as tx:
            incident = self._steered(tx, incident_id, "open", "update")
            diff = changed(incident, wanted)
            for name, change in diff.items():
                setattr(incident, name, change["new"])
            if diff:
                at = utcnow()
                tx.emit(
                    "incident_updated",
                    **{"incident_id": incident_id, **facts(incident)},
                    changes=diff,
                    reason=reason,
                    operator=self.caller.sub,
                    at=at,
                )
            return {"incident_id": incident_id, "status": incident.status, "changes": diff}

    @api(mutating=True)
    def close_incident(self, incident_id: str, summary: dict) -> dict:
        """结案, with its written summary: only once every order is completed,
        cancelled or returned."""
        require_text("incident_id", incident_id, 32)
        summary = validated(SummarySchema(), summary)
        still_open = self.dispatch.list_orders(incident_id=incident_id, open=True, limit=50)
        if still_open:
            raise InvalidTransition(f"{len(still_open)} orders of the incident are still open")
        with self.db.transaction() as tx:
            incident = self._steered(tx, incident_id, "open", "close")
            incident.status, incident.closed_at = "closed", utcnow()
            incident.summary = json.dumps(summary, ensure_ascii=False)
            tx.emit(
                "incident_closed",
                incident_id=incident_id,
                town=incident.town,
                summary=summary,
                operator=self.caller.sub,
                at=incident.closed_at,
            )
            return {
                "incident_id": incident_id,
                "status": "closed",
                "closed_at": incident.closed_at.isoformat(),
            }

    @api(mutating=True)
    def reopen_incident(self, incident_id: str, reason: str) -> dict:
        require_text("incident_id", incident_id, 32)
        reason = require_text("reason", reason, 2000)
        with self.db.transaction() as tx:
            incident = self._steered(tx, incident_id, "closed", "reopen")
            incident.status, incident.closed_at = "open", None
            tx.emit(
                "incident_reopened",
                incident_id=incident_id,
                town=incident.town,
                reason=reason,
                operator=self.caller.sub,
                at=utcnow(),
            )
            return {"incident_id": incident_id, "status": "open"}

    def _steered(self, tx: UnitOfWork, incident_id: str, status: str, action: str) -> Incident:
        """The incident, locked, if the caller may steer it and it is `status`."""
        incident = store.locked(tx, incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        require(may_steer(self.caller, self.network, self._case(incident)), incident_id)
        if incident.status != status:
            raise InvalidTransition(f"cannot {action} an incident that is {incident.status}")
        return incident

    def _case(self, incident: Incident) -> Case:
        """What the rights need; the order holders only when the cheap facts
        do not already decide (they live in dispatch)."""
        case = Case(incident.town, incident.center, incident.source_system)
        if may_read(self.caller, self.network, case) or self.caller.kind == "platform":
            return case
        holders = frozenset(tuple(h) for h in self.dispatch.holders(incident.incident_id))
        return Case(incident.town, incident.center, incident.source_system, holders)

    @handles("escalation", "incident_escalated")
    def on_incident_escalated(self, event: dict, tx: UnitOfWork) -> None:
        if event["reason"] != "neighbour":  # neighbour towns assist; command stays
            store.move_command(tx, event["incident_id"], event["to_center"], event["at"])

    @handles("escalation", "incident_assigned_down")
    def on_incident_assigned_down(self, event: dict, tx: UnitOfWork) -> None:
        store.move_command(tx, event["incident_id"], event["to_center"], event["at"])

    @staticmethod
    def _received(incident: dict) -> None:
        INCIDENTS_RECEIVED.labels(incident["category"], incident["channel"], incident["town"]).inc()
        log.info(
            "incident %s received: %s via %s in %s",
            incident["incident_id"],
            incident["category"],
            incident["channel"],
            incident["town"],
        )
