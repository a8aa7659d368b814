"""The event contracts (CONTRACT.md section 3): one schema per event.

The sender dumps through the schema and every receiver loads through the same
schema, so a payload that drifts from the contract is refused at both ends.
Every event carries `event_id` (idempotent handling), `schema_version` and
`occurred_at`. Events carry no personal data: a reporter's name and phone stay
in intake's database.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate
from marshmallow import ValidationError as SchemaError

SCHEMA_VERSION = 1

ROLES = ("lead", "assist")
RECIPIENTS = ("department", "duty_officer")
DEADLINES = ("accept", "arrive", "reply")
RATINGS = ("satisfied", "basically_satisfied", "dissatisfied")
ESCALATION_REASONS = (
    "crowd_size",
    "grade",
    "reinforcement",
    "overdue",
    "no_competent_unit",
    "all_returned",
    "manual",
    "assign_down",
    "neighbour",
)


class InvalidEvent(ValueError):
    """A payload that does not match its contract: a poison message."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(Schema):
    class Meta:
        unknown = EXCLUDE  # newer producers may add fields

    event_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    schema_version = fields.Integer(required=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True)


class IncidentReceived(Envelope):
    incident_id = fields.String(required=True)
    source_system = fields.String(allow_none=True, load_default=None)
    category = fields.String(required=True)
    request_type = fields.String(required=True)
    channel = fields.String(required=True)
    town = fields.String(required=True)
    center = fields.String(required=True)
    title = fields.String(required=True)
    crowd_size = fields.Integer(allow_none=True, load_default=None)
    casualties = fields.Integer(allow_none=True, load_default=None)
    grade = fields.String(allow_none=True, load_default=None)
    reported_at = fields.AwareDateTime(required=True)
    received_at = fields.AwareDateTime(required=True)


class IncidentTransferred(Envelope):
    """A category kept out of the linkage center (110/119/120 matters, repeated
    petitions, litigation: 朔州 第三条) is handed to its own system, not dispatched."""

    incident_id = fields.String(required=True)
    source_system = fields.String(allow_none=True, load_default=None)
    category = fields.String(required=True)
    request_type = fields.String(required=True)
    channel = fields.String(required=True)
    town = fields.String(required=True)
    center = fields.String(required=True)
    transferred_to = fields.String(required=True)
    received_at = fields.AwareDateTime(required=True)


class OrderEvent(Envelope):
    order_id = fields.String(required=True)
    incident_id = fields.String(required=True)
    center = fields.String(required=True)
    department = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    operator = fields.String(allow_none=True, load_default=None)
    at = fields.AwareDateTime(required=True)


class OrderDispatched(OrderEvent):
    category = fields.String(required=True)
    town = fields.String(required=True)
    recipient = fields.String(required=True, validate=validate.OneOf(RECIPIENTS))
    tier = fields.Integer(required=True)
    accept_by = fields.AwareDateTime(required=True)
    # help and emergency orders have an arrival deadline; the others a reply one
    arrive_by = fields.AwareDateTime(allow_none=True, load_default=None)
    reply_by = fields.AwareDateTime(allow_none=True, load_default=None)
    replaces = fields.String(allow_none=True, load_default=None)
    cause = fields.String(allow_none=True, load_default=None)
    duty_officers = fields.List(fields.String(), load_default=list)


class DispatchedOrder(Schema):
    """One order of an `orders_dispatched` batch."""

    class Meta:
        unknown = EXCLUDE

    order_id = fields.String(required=True)
    center = fields.String(required=True)
    department = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    recipient = fields.String(required=True, validate=validate.OneOf(RECIPIENTS))
    tier = fields.Integer(required=True)
    at = fields.AwareDateTime(required=True)
    accept_by = fields.AwareDateTime(required=True)
    arrive_by = fields.AwareDateTime(allow_none=True, load_default=None)
    reply_by = fields.AwareDateTime(allow_none=True, load_default=None)
    replaces = fields.String(allow_none=True, load_default=None)


class OrdersDispatched(Envelope):
    """One dispatch decision: the incident's facts and every order it sent
    (none when no unit of the center is competent).

    Escalation and assessment learn an incident and its orders from this one
    event, so each runs once per incident; `order_dispatched` is still
    announced per order for anyone who follows single orders. `cause` is
    `initial` for the incident's first routing, else why orders were added
    (`reroute`, or the reason command moved).
    """

    incident_id = fields.String(required=True)
    source_system = fields.String(allow_none=True, load_default=None)
    category = fields.String(required=True)
    request_type = fields.String(required=True)
    town = fields.String(required=True)
    center = fields.String(required=True)  # the center that took the incident
    crowd_size = fields.Integer(allow_none=True, load_default=None)
    casualties = fields.Integer(allow_none=True, load_default=None)
    grade = fields.String(allow_none=True, load_default=None)
    received_at = fields.AwareDateTime(required=True)
    cause = fields.String(required=True)
    orders = fields.List(fields.Nested(DispatchedOrder), required=True)


class OrderAccepted(OrderEvent):
    pass


class OrderReturned(OrderEvent):
    reason = fields.String(required=True)
    rerouted_to = fields.String(allow_none=True, load_default=None)
    all_returned = fields.Boolean(required=True)
    lead_role = fields.String(required=True)
    served_role = fields.String(required=True)


class OrderArrived(OrderEvent):
    pass


class OrderReported(OrderEvent):
    note = fields.String(required=True)


class OrderCompleted(OrderEvent):
    result = fields.String(required=True)


class OrderOverdue(OrderEvent):
    deadline = fields.String(required=True, validate=validate.OneOf(DEADLINES))
    due_at = fields.AwareDateTime(required=True)


class ReinforcementRequested(OrderEvent):
    reason = fields.String(required=True)
    crowd_size = fields.Integer(allow_none=True, load_default=None)


class IncidentEscalated(Envelope):
    incident_id = fields.String(required=True)
    from_center = fields.String(required=True)
    to_center = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(ESCALATION_REASONS))
    operator = fields.String(allow_none=True, load_default=None)
    # for `neighbour`: the towns whose units join as assists; command stays
    assist_centers = fields.List(fields.String(), load_default=list)
    category = fields.String(required=True)
    at = fields.AwareDateTime(required=True)


class IncidentAssignedDown(Envelope):
    incident_id = fields.String(required=True)
    from_center = fields.String(required=True)
    to_center = fields.String(required=True)
    reason = fields.String(load_default="assign_down")
    operator = fields.String(required=True)
    category = fields.String(required=True)
    at = fields.AwareDateTime(required=True)


CHANGEABLE = (
    "category",
    "request_type",
    "crowd_size",
    "casualties",
    "grade",
    "title",
    "description",
)
INCIDENT_STATUSES = ("open", "closed", "transferred")


class CaseEvent(Envelope):
    """An operator's step on a case (CONTRACT.md section 7): who, when, where."""

    incident_id = fields.String(required=True)
    town = fields.String(required=True)
    operator = fields.String(required=True)
    at = fields.AwareDateTime(required=True)


class IncidentUpdated(CaseEvent):
    """An operator changed the case: each changed field's old and new value,
    and the facts as they now stand."""

    changes = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANGEABLE)), required=True)
    reason = fields.String(required=True)
    category = fields.String(required=True)
    request_type = fields.String(required=True)
    crowd_size = fields.Integer(allow_none=True, load_default=None)
    casualties = fields.Integer(allow_none=True, load_default=None)
    grade = fields.String(allow_none=True, load_default=None)


class IncidentClosed(CaseEvent):
    """结案: every order done, cancelled or returned; the written summary."""

    summary = fields.Dict(required=True)


class IncidentReopened(CaseEvent):
    reason = fields.String(required=True)


class OrderCancelled(OrderEvent):
    """Withdrawn (sent by mistake, reclassified, reassigned): never counted
    against the department."""

    reason = fields.String(required=True)
    cause = fields.String(required=True)  # cancelled, reclassified, reassigned
    replaced_by = fields.String(allow_none=True, load_default=None)


class OrderUrged(OrderEvent):
    """催办: counted in assessment."""

    note = fields.String(required=True)
    automatic = fields.Boolean(load_default=False)  # urged by the deadline scan


class SatisfactionRecorded(Envelope):
    incident_id = fields.String(required=True)
    rating = fields.String(required=True, validate=validate.OneOf(RATINGS))
    operator = fields.String(required=True)
    at = fields.AwareDateTime(required=True)


REPORT_KINDS = ("first", "progress", "final")  # 初报, 续报, 终报
DUE_REPORTS = ("first", "final")  # the ones with a deadline


class ReportAnswer(Schema):
    """A reporting duty a filed report answered: due when, and whether late."""

    class Meta:
        unknown = EXCLUDE

    kind = fields.String(required=True, validate=validate.OneOf(DUE_REPORTS))
    due_at = fields.AwareDateTime(required=True)
    late = fields.Boolean(required=True)


class ReportFiled(Envelope):
    """信息报送: a report on an incident sent up to `recipients`, nearest first.
    `owed_by` is the town's center, which owes the first and final reports;
    `answers` the duties this report met (none for a progress report)."""

    report_id = fields.String(required=True)
    incident_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(REPORT_KINDS))
    town = fields.String(required=True)
    owed_by = fields.String(required=True)
    filed_by = fields.String(required=True)
    recipients = fields.List(fields.String(), required=True)
    operator = fields.String(required=True)
    at = fields.AwareDateTime(required=True)
    answers = fields.List(fields.Nested(ReportAnswer), load_default=list)


class ReportAcknowledged(Envelope):
    """A receiving center has read the report (签收)."""

    report_id = fields.String(required=True)
    incident_id = fields.String(required=True)
    center = fields.String(required=True)
    operator = fields.String(required=True)
    at = fields.AwareDateTime(required=True)


class ReportOverdue(Envelope):
    """A first or final report not filed by its deadline: counted against
    `center`, the town's center that owed it. Announced once."""

    incident_id = fields.String(required=True)
    town = fields.String(required=True)
    center = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(DUE_REPORTS))
    due_at = fields.AwareDateTime(required=True)
    at = fields.AwareDateTime(required=True)


CONTRACTS: dict[tuple[str, str], type[Envelope]] = {
    ("intake", "incident_received"): IncidentReceived,
    ("intake", "incident_transferred"): IncidentTransferred,
    ("intake", "incident_updated"): IncidentUpdated,
    ("intake", "incident_closed"): IncidentClosed,
    ("intake", "incident_reopened"): IncidentReopened,
    ("dispatch", "order_dispatched"): OrderDispatched,
    ("dispatch", "orders_dispatched"): OrdersDispatched,
    ("dispatch", "order_accepted"): OrderAccepted,
    ("dispatch", "order_returned"): OrderReturned,
    ("dispatch", "order_arrived"): OrderArrived,
    ("dispatch", "order_reported"): OrderReported,
    ("dispatch", "order_completed"): OrderCompleted,
    ("dispatch", "order_overdue"): OrderOverdue,
    ("dispatch", "reinforcement_requested"): ReinforcementRequested,
    ("dispatch", "order_cancelled"): OrderCancelled,
    ("dispatch", "order_urged"): OrderUrged,
    ("escalation", "incident_escalated"): IncidentEscalated,
    ("escalation", "incident_assigned_down"): IncidentAssignedDown,
    ("escalation", "report_filed"): ReportFiled,
    ("escalation", "report_acknowledged"): ReportAcknowledged,
    ("escalation", "report_overdue"): ReportOverdue,
    ("assessment", "satisfaction_recorded"): SatisfactionRecorded,
}

_SCHEMAS = {key: cls() for key, cls in CONTRACTS.items()}


def _schema(source: str, event_type: str) -> Schema:
    try:
        return _SCHEMAS[(source, event_type)]
    except KeyError:
        raise InvalidEvent(f"no contract for {source}.{event_type}") from None


def make_event(source: str, event_type: str, **data: Any) -> dict:
    """A wire-ready payload: envelope added, checked and dumped by the contract."""
    payload = {
        "event_id": uuid.uuid4().hex,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": utcnow(),
        **data,
    }
    schema = _schema(source, event_type)
    errors = schema.validate(schema.dump(payload))
    if errors:
        raise InvalidEvent(f"{source}.{event_type}: {errors}")
    return schema.dump(payload)


def load_event(source: str, event_type: str, payload: Any) -> dict:
    """Validate a received payload; `InvalidEvent` marks it as poison."""
    if not isinstance(payload, dict):
        raise InvalidEvent(f"{source}.{event_type}: payload is not an object")
    # A newer schema_version is read as this one: producers only add fields
    # (unknown ones are excluded), so a rolling upgrade never dead-letters.
    try:
        return _schema(source, event_type).load(payload)
    except SchemaError as exc:
        raise InvalidEvent(f"{source}.{event_type}: {exc.messages}") from None
