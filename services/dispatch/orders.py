"""Sending work orders: each stored and announced in the unit of work that decided it.

Every dispatch decision announces `order_dispatched` per order, for whoever
follows single orders, and one `orders_dispatched` carrying the incident's
facts and all its orders: escalation and assessment learn everything from
that one event, so each runs once per incident (the initial routing is
announced even with no order: no competent unit is escalation's business).
"""

from __future__ import annotations

from datetime import datetime

from services.dispatch import store
from services.dispatch.metrics import ORDERS_DISPATCHED, TIME_TO_ACCEPT, TIME_TO_ARRIVE
from services.dispatch.models import DispatchIncident, WorkOrder
from services.dispatch.routing import PlannedOrder
from shared.db import UnitOfWork
from shared.ids import new_id


def send(
    tx: UnitOfWork,
    incident: DispatchIncident,
    planned: list[PlannedOrder],
    cause: str,
    replaces: str | None = None,
) -> list[str]:
    """Store and announce planned orders, one per (incident, center,
    department); the ids of the orders sent."""
    sent = []
    for p in planned:
        order_id = new_id()
        if not store.add_order(tx, order_id, incident.incident_id, p, cause, replaces):
            continue
        order = _dispatched_fields(order_id, p, replaces)
        tx.emit(
            "order_dispatched",
            **order,
            incident_id=incident.incident_id,
            operator=None,
            category=incident.category,
            town=incident.town,
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
        "replaces": replaces,
    }


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


def timed(order: WorkOrder, action: str, now: datetime) -> None:
    """Time to sign-for and to arrival, observed once the step is committed."""
    waited = (now - order.dispatched_at).total_seconds()
    if action == "accept":
        TIME_TO_ACCEPT.labels(order.center).observe(waited)
    elif action == "arrive":
        TIME_TO_ARRIVE.labels(order.center, str(order.tier)).observe(waited)
