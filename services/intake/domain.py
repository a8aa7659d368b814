"""Intake's domain: a validated report becomes an incident, and how one is shown.

Plain functions over plain data, so the tests call the same mapping the
service stores (no copy of it anywhere else).
"""

from __future__ import annotations

import json
from datetime import datetime

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
    "transferred_to",
)
TRANSFER_FIELDS = (
    "incident_id",
    "source_system",
    "category",
    "request_type",
    "channel",
    "town",
    "center",
    "received_at",
)
INCIDENT_TIMES = (
    "received_at",
    "reported_at",
    "occurred_at",
    "command_changed_at",
    "closed_at",
)
# what dispatch and escalation are told of a case after an update
FACTS = ("category", "request_type", "crowd_size", "casualties", "grade", "town")
# what dispatch, escalation and assessment are told of a new incident
ANNOUNCED_FIELDS = (
    "incident_id",
    "source_system",
    "category",
    "request_type",
    "channel",
    "town",
    "center",
    "title",
    "crowd_size",
    "casualties",
    "grade",
    "reported_at",
    "received_at",
)


def incident_from_report(
    report: dict, incident_id: str, received_at: datetime, transfer_to: str | None = None
) -> dict:
    """The incident row for a report loaded by `ReportSchema`.

    The incident starts under the center that took it: the town of the
    location, or the report's `center` when a higher center took it itself.
    A category with `transfer_to` is handed to that system: `transferred`.
    """
    location = report["location"]
    reporter = report["reporter"] or {}
    center = report["center"] or location["town"]
    return {
        "incident_id": incident_id,
        "source_system": report["source_system"],
        "external_id": report["external_id"],
        "channel": report["channel"],
        "category": report["category"],
        "request_type": report["request_type"],
        "title": report["title"],
        "description": report["description"],
        "town": location["town"],
        "address": location["address"],
        "lat": location.get("lat"),
        "lon": location.get("lon"),
        "reported_at": report["reported_at"],
        "occurred_at": report["occurred_at"],
        "reporter_name": reporter.get("name"),
        "reporter_phone": reporter.get("phone"),
        "crowd_size": report["crowd_size"],
        "casualties": report["casualties"],
        "grade": report["grade"],
        "received_by": center,
        "center": center,
        "status": "transferred" if transfer_to else "open",
        "transferred_to": transfer_to,
        "received_at": received_at,
    }


def announcement(incident: dict) -> tuple[str, dict]:
    """The event announcing a new incident, and its fields (no personal data):
    `incident_received`, or `incident_transferred` for a transferred one."""
    if incident["transferred_to"]:
        names = (*TRANSFER_FIELDS, "transferred_to")
        return "incident_transferred", {name: incident[name] for name in names}
    return "incident_received", {name: incident[name] for name in ANNOUNCED_FIELDS}


def mask_name(name: str | None) -> str | None:
    """`王小明` → `王*`: the family name only."""
    return f"{name[0]}*" if name else name


def mask_phone(phone: str | None) -> str | None:
    """`13800001234` → `138****1234`: the carrier prefix and the last four digits."""
    if not phone:
        return phone
    digits = [c for c in phone if c.isdigit()]
    if len(digits) < 8:
        return "*" * len(digits)
    return "".join(digits[:3]) + "****" + "".join(digits[-4:])


def incident_view(incident, full_personal_data: bool = False) -> dict:
    """An incident as `get_incident` answers it (`incident` has the row's
    attributes); the reporter masked unless `full_personal_data`."""
    view = {name: getattr(incident, name) for name in INCIDENT_FIELDS}
    view["location"] = {"town": incident.town, "address": incident.address}
    if incident.lat is not None:
        view["location"]["lat"] = incident.lat
    if incident.lon is not None:
        view["location"]["lon"] = incident.lon
    name, phone = incident.reporter_name, incident.reporter_phone
    if not full_personal_data:
        name, phone = mask_name(name), mask_phone(phone)
    view["reporter"] = {"name": name, "phone": phone} if name or phone else None
    for name in INCIDENT_TIMES:
        value = getattr(incident, name)
        view[name] = value.isoformat() if value else None
    view["summary"] = json.loads(incident.summary) if incident.summary else None
    return view


def changed(incident, wanted: dict) -> dict:
    """Each field whose value `wanted` changes: `{field: {"old", "new"}}`."""
    return {
        name: {"old": getattr(incident, name), "new": value}
        for name, value in wanted.items()
        if getattr(incident, name) != value
    }


def facts(incident) -> dict:
    return {name: getattr(incident, name) for name in FACTS}
