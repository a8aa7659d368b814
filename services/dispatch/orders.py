"""Sending work orders: each stored and announced in the unit of work that decided it.

Every dispatch decision announces `order_dispatched` per order, for whoever
follows single orders, and one `orders_dispatched` carrying the incident's
facts and all its orders: escalation and assessment learn everything from
that one event, so each runs once per incident (the initial routing is
announced even with no order: no competent unit is escalation's business).
"""

from __future__ import annotations

from datetime import datetime

from services.dispatch import duty_store, store
from services.dispatch.lifecycle import STATUSES, next_status
from services.dispatch.metrics import ORDERS_DISPATCHED, TIME_TO_ACCEPT, TIME_TO_ARRIVE
from services.dispatch.models import DispatchIncident, WorkOrder
from services.dispatch.routing import PlannedOrder
from shared.db import UnitOfWork
from shared.errors import ValidationError
from shared.events import RECIPIENTS
from shared.fields import text_arg
from shared.ids import new_id


def send(
    tx: UnitOfWork,
    incident: DispatchIncident,
    planned: list[PlannedOrder],
    cause: str,
    replaces: str | None = None,
    operator: str | None = None,
    detail: str | None = None,
) -> list[str]:
    """Store and announce planned orders, one per (incident, center,
    department); the ids of the orders sent. An order for the duty officer
    carries the names on duty (值班) at its center when it is sent."""
    sent = []
    for p in planned:
        order_id = new_id()
        officers = on_duty(tx, p) if p.recipient == "duty_officer" else None
        how = {"operator": operator, "detail": detail, "duty_officers": officers}
        if not store.add_order(tx, order_id, incident.incident_id, p, cause, replaces, how):
            continue
        order = _dispatched_fields(order_id, p, replaces)
        tx.emit(
            "order_dispatched",
            **order,
            incident_id=incident.incident_id,
            operator=operator,
            category=incident.category,
            town=incident.town,
            cause=cause,
            duty_officers=officers or [],
        )
        sent.append(order)
        tx.after_commit(lambda p=p: ORDERS_DISPATCHED.labels(p.center, p.department, p.role).inc())
    if sent or cause == "initial":
        tx.emit(
            "orders_dispatched",
            incident_id=incident.incident_id,
            source_system=incident.source_system,
            category=incident.category,
            request_type=incident.request_type,
            town=incident.town,
            center=incident.received_by,
            crowd_size=incident.crowd_size,
            casualties=incident.casualties,
            grade=incident.grade,
            received_at=incident.received_at,
            cause=cause,
            orders=sent,
        )
    return [order["order_id"] for order in sent]


def _dispatched_fields(order_id: str, p: PlannedOrder, replaces: str | None) -> dict:
    return {
        "order_id": order_id,
        "center": p.center,
        "department": p.department,
        "role": p.role,
        "recipient": p.recipient,
        "tier": p.tier,
        "at": p.dispatched_at,
        "accept_by": p.accept_by,
        "arrive_by": p.arrive_by,
        "reply_by": p.reply_by,
        "replaces": replaces,
    }


def on_duty(tx: UnitOfWork, p: PlannedOrder) -> list[str]:
    """The duty officers' names at the order's center for its duty day."""
    roster = duty_store.roster(tx.session, p.center, p.duty_day)
    return [officer["name"] for officer in roster.officers] if roster else []


def checked_filters(limit: int, **filters) -> dict:
    """`list_orders`' filters checked (`ValidationError` naming each bad one);
    those given, None for the others."""
    errors: dict = {}
    for name in ("incident_id", "center", "department"):
        text_arg(errors, name, filters[name], 64, required=False)
    choices = {"status": STATUSES, "recipient": RECIPIENTS}
    for name, allowed in choices.items():
        if filters[name] is not None and filters[name] not in allowed:
            errors[name] = [f"must be one of {', '.join(allowed)}"]
    for name in ("overdue", "open"):
        if filters[name] is not None and not isinstance(filters[name], bool):
            errors[name] = ["must be true or false"]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 5000:
        errors["limit"] = ["must be an integer from 1 to 5000"]
    if errors:
        raise ValidationError(errors)
    return filters


def event_fields(order: WorkOrder, operator: str | None, at: datetime) -> dict:
    """What every event about one order carries."""
    return {
        "order_id": order.order_id,
        "incident_id": order.incident_id,
        "center": order.center,
        "department": order.department,
        "role": order.role,
        "operator": operator,
        "at": at,
    }


def urged(
    tx: UnitOfWork,
    order: WorkOrder,
    operator: str | None,
    at: datetime,
    note: str,
    automatic: bool = False,
) -> None:
    """催办: a history line, one more urge on the order, `order_urged`."""
    store.record(tx, order, "urge", order.status, operator, at, note)
    order.urges = WorkOrder.urges + 1  # in SQL: a concurrent urge is not lost
    tx.session.flush()  # and read back
    tx.emit("order_urged", **event_fields(order, operator, at), note=note, automatic=automatic)


def cancelled(
    tx: UnitOfWork,
    order: WorkOrder,
    operator: str | None,
    at: datetime,
    reason: str,
    cause: str,
    replaced_by: str | None = None,
) -> None:
    """Withdraw an open order (`InvalidTransition` otherwise): status, history,
    `order_cancelled`. Never counted against the department."""
    status_from = order.status
    order.status = next_status(order.status, "cancel")
    store.record(tx, order, "cancel", status_from, operator, at, f"{cause}: {reason}")
    tx.emit(
        "order_cancelled",
        **event_fields(order, operator, at),
        reason=reason,
        cause=cause,
        replaced_by=replaced_by,
    )


def timed(order: WorkOrder, action: str, now: datetime) -> None:
    """Time to sign-for and to arrival, observed once the step is committed."""
    waited = (now - order.dispatched_at).total_seconds()
    if action == "accept":
        TIME_TO_ACCEPT.labels(order.center).observe(waited)
    elif action == "arrive":
        TIME_TO_ARRIVE.labels(order.center, str(order.tier)).observe(waited)
