"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) over the platform.

Plain functions: a service list and definitions from the network, a POSTed
request as `intake.submit_report`'s report, an incident as a service request,
and the spec's XML. The web layer (web.py) calls the services with them.
A service is a category (`service_code` = category code); the attribute
`town` names the network's town the request is about (`attribute[town]`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from xml.etree import ElementTree

from shared.network import Network

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-12-02T00:00:00+00:00"  # when this endpoint's services last changed shape
DEFAULT_DAYS = 90  # the spec's window when a GET names no dates
MAX_IDS = 100
REQUEST_TYPE = "help"  # a citizen asking for something to be done (CONTRACT.md section 2)


class Open311Error(Exception):
    """An Open311 error answer: HTTP status and the spec's [{code, description}]."""

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description

    def body(self) -> list[dict]:
        return [{"code": self.status, "description": self.description}]


def discovery(base_url: str, changeset: str = CHANGESET) -> dict:
    return {
        "changeset": changeset,
        "contact": "the linkage center's duty room",
        "key_service": "api_key: a platform token (kind platform) from the linkage center",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": f"{base_url}/open311/v2",
                "changeset": changeset,
                "type": "production",
                "formats": ["application/json", "text/xml"],
            }
        ],
    }


def towns(network: Network) -> list[tuple[str, str]]:
    return sorted((c.code, c.name) for c in network.centers.values() if c.level == "town")


def service_list(network: Network) -> list[dict]:
    return [
        {
            "service_code": category.code,
            "service_name": category.name,
            "description": category.name,
            "metadata": True,
            "type": "realtime",
            "keywords": category.lead or "",
            "group": category.code.split(".")[0],
        }
        for category in sorted(network.categories.values(), key=lambda c: c.code)
    ]


def service_definition(network: Network, code: str) -> dict:
    if code not in network.categories:
        raise Open311Error(404, f"no service {code}")
    return {
        "service_code": code,
        "attributes": [
            {
                "variable": True,
                "code": "town",
                "datatype": "singlevaluelist",
                "required": True,
                "datatype_description": "the town (镇) the request is about",
                "order": 1,
                "description": "town",
                "values": [{"key": key, "name": name} for key, name in towns(network)],
            }
        ],
    }


def source_system(systems: frozenset[str] | list[str], jurisdiction_id: str | None) -> str:
    """The platform's system the request comes from: the jurisdiction when
    it is one of the token's, else the first of them."""
    systems = sorted(systems)
    if not systems:
        raise Open311Error(403, "api_key is not a platform key with source_systems")
    return jurisdiction_id if jurisdiction_id in systems else systems[0]


def _number(form, name: str) -> float | None:
    value = form.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None


def report_from_request(
    form, system: str, external_id: str, network: Network, now: datetime
) -> dict:
    """A POSTed request (form fields) as the report intake validates; the
    checks Open311 names (service, location) here, the rest by intake."""
    code = form.get("service_code")
    if not code:
        raise Open311Error(400, "service_code is required")
    if code not in network.categories:
        raise Open311Error(404, f"no service {code}")
    lat, lon = _number(form, "lat"), _number(form, "long")
    address = (form.get("address_string") or "").strip()
    if not address and (lat is None or lon is None):
        raise Open311Error(400, "a location is required: lat and long, or address_string")
    town = form.get("attribute[town]")
    if not town:
        raise Open311Error(400, "attribute[town] is required")
    location = {"town": town, "address": address or f"{lat},{lon}"}
    if lat is not None and lon is not None:
        location.update(lat=lat, lon=lon)
    description = (form.get("description") or "").strip()
    report = {
        "source_system": system,
        "external_id": external_id,
        "channel": "app" if form.get("device_id") else "platform",
        "category": code,
        "request_type": REQUEST_TYPE,
        "title": (description or network.categories[code].name)[:200],
        "description": description,
        "location": location,
        "reported_at": now.isoformat(),
    }
    name = " ".join(p for p in (form.get("last_name"), form.get("first_name")) if p).strip()
    reporter = {k: v for k, v in (("name", name), ("phone", form.get("phone"))) if v}
    if reporter:
        report["reporter"] = reporter
    return report


def service_notice(incident: dict) -> str | None:
    if incident.get("transferred_to"):
        return f"transferred to {incident['transferred_to']}"
    summary = incident.get("summary") or {}
    return summary.get("result") if incident.get("status") == "closed" else None


def request_view(incident: dict, network: Network) -> dict:
    """An incident as an Open311 service request: `closed` once closed or
    transferred elsewhere, `open` otherwise."""
    category = network.categories.get(incident["category"])
    center = network.centers.get(incident["center"])
    location = incident.get("location") or {}
    updated = incident.get("closed_at") or incident.get("command_changed_at")
    return {
        "service_request_id": incident["incident_id"],
        "status": "open" if incident["status"] == "open" else "closed",
        "status_notes": service_notice(incident),
        "service_name": category.name if category else incident["category"],
        "service_code": incident["category"],
        "description": incident.get("description") or incident.get("title"),
        "agency_responsible": center.name if center else incident["center"],
        "service_notice": service_notice(incident),
        "requested_datetime": incident.get("reported_at"),
        "updated_datetime": updated or incident.get("received_at"),
        "expected_datetime": None,
        "address": location.get("address"),
        "address_id": None,
        "zipcode": None,
        "lat": location.get("lat"),
        "long": location.get("lon"),
        "media_url": None,
    }


def request_ids(value: str | None) -> list[str]:
    ids = [i.strip() for i in (value or "").split(",") if i.strip()]
    if len(ids) > MAX_IDS:
        raise Open311Error(400, f"at most {MAX_IDS} service_request_id values")
    return ids


def window(start: str | None, end: str | None, now: datetime) -> tuple[str, str]:
    """start_date and end_date as the listing's since and until; the spec's
    last 90 days when neither is given, 90 days either side of the one given."""
    try:
        until = datetime.fromisoformat(end) if end else None
        since = datetime.fromisoformat(start) if start else None
    except ValueError:
        raise Open311Error(400, "start_date and end_date must be W3C datetimes") from None
    for value in (since, until):
        if value is not None and value.tzinfo is None:
            raise Open311Error(400, "start_date and end_date need a UTC offset")
    if until is None:
        until = since + timedelta(days=DEFAULT_DAYS) if since else now
    if since is None:
        since = until - timedelta(days=DEFAULT_DAYS)
    return since.isoformat(), until.isoformat()


# -- XML, as the spec shows it ------------------------------------------------------

XML_ROOTS = {
    "discovery": ("discovery", None),
    "services": ("services", "service"),
    "definition": ("service_definition", None),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
}
_ITEM_TAGS = {"attributes": "attribute", "values": "value", "endpoints": "endpoint"}


def _append(parent: ElementTree.Element, tag: str, value) -> None:
    element = ElementTree.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, inner in value.items():
            _append(element, key, inner)
    elif isinstance(value, list):
        for inner in value:
            _append(element, _ITEM_TAGS.get(tag, "format"), inner)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def to_xml(kind: str, data) -> bytes:
    root_tag, item_tag = XML_ROOTS[kind]
    root = ElementTree.Element(root_tag)
    if item_tag is None:
        for key, value in data.items():
            _append(root, key, value)
    else:
        for item in data:
            _append(root, item_tag, item)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
