"""The intake service: takes reports in, deduplicates them, announces incidents."""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from services.intake.metrics import INCIDENTS_RECEIVED
from services.intake.models import Base, Incident, outbox, processed_events
from services.intake.schemas import ReportSchema
from shared.db import Database, insert_ignoring_conflicts
from shared.dependencies import NetworkProvider, api, validated
from shared.errors import NotFound
from shared.events import load_event, utcnow
from shared.fields import require_text
from shared.ids import new_id
from shared.messaging import handles
from shared.metrics import EntrypointMetrics
from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)

INCIDENT_FIELDS = (
    "incident_id",
    "status",
    "category",
    "town",
    "center",
    "received_by",
    "source_system",
    "external_id",
    "channel",
    "request_type",
    "title",
    "description",
    "crowd_size",
    "casualties",
    "grade",
)


def incident_view(incident: Incident) -> dict:
    view = {name: getattr(incident, name) for name in INCIDENT_FIELDS}
    view["location"] = {"town": incident.town, "address": incident.address}
    if incident.lat is not None:
        view["location"]["lat"] = incident.lat
    if incident.lon is not None:
        view["location"]["lon"] = incident.lon
    view["reporter"] = (
        {"name": incident.reporter_name, "phone": incident.reporter_phone}
        if incident.reporter_name or incident.reporter_phone
        else None
    )
    for name in ("received_at", "reported_at", "occurred_at", "command_changed_at"):
        value = getattr(incident, name)
        view[name] = value.isoformat() if value else None
    return view


class IntakeService:
    name = "intake"

    db = Database(Base.metadata, outbox, processed_events)
    relay = OutboxRelay()
    network = NetworkProvider()
    metrics = EntrypointMetrics()

    @api
    def submit_report(self, report: dict) -> dict:
        data = validated(ReportSchema(), report, network=self.network)
        location = data["location"]
        reporter = data["reporter"] or {}
        now = utcnow()
        row = {
            "incident_id": new_id(),
            "source_system": data["source_system"],
            "external_id": data["external_id"],
            "channel": data["channel"],
            "category": data["category"],
            "request_type": data["request_type"],
            "title": data["title"],
            "description": data["description"],
            "town": location["town"],
            "address": location["address"],
            "lat": location.get("lat"),
            "lon": location.get("lon"),
            "reported_at": data["reported_at"],
            "occurred_at": data["occurred_at"],
            "reporter_name": reporter.get("name"),
            "reporter_phone": reporter.get("phone"),
            "crowd_size": data["crowd_size"],
            "casualties": data["casualties"],
            "grade": data["grade"],
            "received_by": data["center"] or location["town"],
            "center": data["center"] or location["town"],
            "status": "open",
            "received_at": now,
        }
        with self.db.transaction() as tx:
            statement = insert_ignoring_conflicts(tx.session, Incident.__table__).values(**row)
            if tx.session.execute(statement).rowcount == 1:
                tx.emit(
                    "incident_received",
                    incident_id=row["incident_id"],
                    category=row["category"],
                    request_type=row["request_type"],
                    channel=row["channel"],
                    town=row["town"],
                    center=row["center"],
                    title=row["title"],
                    crowd_size=row["crowd_size"],
                    casualties=row["casualties"],
                    grade=row["grade"],
                    reported_at=row["reported_at"],
                    received_at=now,
                )
                status, incident_id, center, received_at = (
                    "accepted",
                    row["incident_id"],
                    row["center"],
                    now,
                )
            else:
                first = tx.session.execute(
                    select(Incident).where(
                        Incident.source_system == row["source_system"],
                        Incident.external_id == row["external_id"],
                    )
                ).scalar_one()
                status, incident_id, center, received_at = (
                    "duplicate",
                    first.incident_id,
                    first.center,
                    first.received_at,
                )
        if status == "accepted":
            INCIDENTS_RECEIVED.labels(row["category"], row["channel"], row["town"]).inc()
        log.info(
            "report %s: incident %s, %s via %s in %s",
            status,
            incident_id,
            row["category"],
            row["channel"],
            row["town"],
        )
        return {
            "incident_id": incident_id,
            "status": status,
            "center": center,
            "received_at": received_at.isoformat(),
        }

    @api
    def get_incident(self, incident_id: str) -> dict:
        require_text("incident_id", incident_id, 32)
        with self.db.read() as session:
            incident = session.get(Incident, incident_id)
            if incident is None:
                raise NotFound(f"no incident {incident_id}")
            return incident_view(incident)

    @handles("escalation", "incident_escalated")
    def on_incident_escalated(self, payload: dict) -> None:
        self._command_moved(
            load_event("escalation", "incident_escalated", payload), "on_incident_escalated"
        )

    @handles("escalation", "incident_assigned_down")
    def on_incident_assigned_down(self, payload: dict) -> None:
        event = load_event("escalation", "incident_assigned_down", payload)
        self._command_moved(event, "on_incident_assigned_down")

    def _command_moved(self, event: dict, handler: str) -> None:
        if event.get("reason") == "neighbour":
            return  # neighbour towns assist; command stays where it is
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], f"intake.{handler}"):
                return
            # Events may arrive out of order: only a later move wins.
            tx.session.execute(
                update(Incident)
                .where(Incident.incident_id == event["incident_id"])
                .where(
                    (Incident.command_changed_at.is_(None))
                    | (Incident.command_changed_at < event["at"])
                )
                .values(center=event["to_center"], command_changed_at=event["at"])
            )
