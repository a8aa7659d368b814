"""The intake service (统一接警): takes reports in, deduplicates them, announces incidents."""

from __future__ import annotations

import logging

from services.intake import store
from services.intake.domain import announcement, incident_from_report, incident_view
from services.intake.metrics import INCIDENTS_RECEIVED
from services.intake.models import Base, outbox, processed_events
from services.intake.schemas import ReportSchema
from shared.db import Database, UnitOfWork
from shared.dependencies import NetworkProvider, api, validated
from shared.errors import NotFound
from shared.events import utcnow
from shared.fields import require_text
from shared.ids import new_id
from shared.messaging import handles
from shared.metrics import EntrypointMetrics
from shared.outbox import Outbox

log = logging.getLogger(__name__)


class IntakeService:
    name = "intake"

    db = Database(Base.metadata, outbox, processed_events)
    outbox = Outbox()
    network = NetworkProvider()
    metrics = EntrypointMetrics()

    @api
    def submit_report(self, report: dict) -> dict:
        data = validated(ReportSchema(), report, network=self.network)
        incident = incident_from_report(data, new_id(), utcnow())
        with self.db.transaction() as tx:
            if store.add_incident(tx, incident):
                tx.emit("incident_received", **announcement(incident))
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
        require_text("incident_id", incident_id, 32)
        with self.db.read() as session:
            incident = store.get(session, incident_id)
            if incident is None:
                raise NotFound(f"no incident {incident_id}")
            return incident_view(incident)

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
