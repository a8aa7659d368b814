"""Dispatch's SQL: every statement the service runs on its database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from services.dispatch.lifecycle import OPEN
from services.dispatch.models import DispatchIncident, OrderHistory, WorkOrder
from services.dispatch.routing import OWED, PlannedOrder
from shared.auth import Caller, Case, area
from shared.db import UnitOfWork, insert_new
from shared.errors import NotFound
from shared.network import Network

ORDER_FIELDS = (
    "order_id",
    "incident_id",
    "center",
    "department",
    "role",
    "served_role",
    "recipient",
    "status",
    "tier",
    "overdue",
    "returns",
    "replaces",
    "cause",
    "duty_officers",
    "urges",
)
ORDER_TIMES = (
    "dispatched_at",
    "accept_by",
    "arrive_by",
    "reply_by",
    "accepted_at",
    "arrived_at",
    "completed_at",
)
FILTERS = ("incident_id", "center", "department", "status", "recipient", "overdue")
_ADD_HISTORY = insert(OrderHistory.__table__)


def order_view(order: WorkOrder) -> dict:
    view = {name: getattr(order, name) for name in ORDER_FIELDS}
    for name in ORDER_TIMES:
        value = getattr(order, name)
        view[name] = value.isoformat() if value else None
    return view


def history_view(entry: OrderHistory) -> dict:
    return {
        "action": entry.action,
        "status_from": entry.status_from,
        "status_to": entry.status_to,
        "operator": entry.operator,
        "at": entry.at.isoformat(),
        "detail": entry.detail,
    }


# -- incidents ------------------------------------------------------------------


def add_incident(tx: UnitOfWork, incident: dict) -> bool:
    """Remember an incident; False when it is known already."""
    statement = insert_new(tx.session, DispatchIncident.__table__)
    return tx.session.execute(statement, incident).rowcount == 1


def incident(session: Session, incident_id: str) -> DispatchIncident | None:
    return session.get(DispatchIncident, incident_id)


def open_orders(session: Session, incident_id: str) -> list[WorkOrder]:
    """The incident's open orders, locked, in the order they were sent."""
    return session.scalars(
        select(WorkOrder)
        .where(WorkOrder.incident_id == incident_id, WorkOrder.status.in_(OPEN))
        .order_by(WorkOrder.dispatched_at, WorkOrder.order_id)
        .with_for_update()
    ).all()


def departments_with_orders(
    session: Session, incident_id: str, center: str | None = None
) -> set[str]:
    query = select(WorkOrder.department).where(WorkOrder.incident_id == incident_id)
    if center is not None:
        query = query.where(WorkOrder.center == center)
    return set(session.scalars(query))


# -- orders ---------------------------------------------------------------------------


def add_order(
    tx: UnitOfWork,
    order_id: str,
    incident_id: str,
    planned: PlannedOrder,
    cause: str,
    replaces: str | None,
    sent: dict | None = None,
) -> bool:
    """Store a new order and its first history line; False when the incident
    already has an order for that department at that center. `sent` may name
    the `operator` who sent it, a `detail` for the history (the cause by
    default) and the `duty_officers` it reached."""
    sent = sent or {}
    row = {
        "order_id": order_id,
        "incident_id": incident_id,
        "center": planned.center,
        "department": planned.department,
        "role": planned.role,
        "served_role": planned.served_role,
        "recipient": planned.recipient,
        "tier": planned.tier,
        "status": "dispatched",
        "dispatched_at": planned.dispatched_at,
        "accept_by": planned.accept_by,
        "arrive_by": planned.arrive_by,
        "reply_by": planned.reply_by,
        "overdue": False,
        "returns": 0,
        "urges": 0,
        "replaces": replaces,
        "cause": cause,
        "duty_officers": sent.get("duty_officers"),
    }
    if tx.session.execute(insert_new(tx.session, WorkOrder.__table__), row).rowcount != 1:
        return False
    tx.session.execute(
        _ADD_HISTORY,
        {
            "order_id": order_id,
            "action": "dispatch",
            "status_from": None,
            "status_to": "dispatched",
            "operator": sent.get("operator"),
            "at": planned.dispatched_at,
            "detail": sent.get("detail") or cause,
        },
    )
    return True


def order(session: Session, order_id: str) -> WorkOrder:
    found = session.get(WorkOrder, order_id)
    if found is None:
        raise NotFound(f"no order {order_id}")
    return found


def locked_order(tx: UnitOfWork, order_id: str) -> WorkOrder:
    order = tx.session.get(WorkOrder, order_id, with_for_update=True)
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


def record(tx: UnitOfWork, order: WorkOrder, action: str, status_from, operator, at, detail):
    """Append a line to the order's history (who did what, and when)."""
    tx.session.add(
        OrderHistory(
            order_id=order.order_id,
            action=action,
            status_from=status_from,
            status_to=order.status,
            operator=operator,
            at=at,
            detail=detail,
        )
    )


def order_with_history(session: Session, order: WorkOrder) -> dict:
    view = order_view(order)
    order_id = order.order_id
    entries = session.scalars(
        select(OrderHistory).where(OrderHistory.order_id == order_id).order_by(OrderHistory.id)
    )
    view["history"] = [history_view(entry) for entry in entries]
    return view


def list_orders(session: Session, filters: dict, limit: int, visible=None) -> list[dict]:
    """Orders matching every filter given (None: any) and `visible` (a clause
    from `visible_to`), oldest first."""
    query = select(WorkOrder).order_by(WorkOrder.dispatched_at, WorkOrder.order_id).limit(limit)
    for name, value in filters.items():
        if value is None:
            continue
        if name == "open":
            query = query.where(
                WorkOrder.status.in_(OPEN) if value else ~WorkOrder.status.in_(OPEN)
            )
        else:
            query = query.where(getattr(WorkOrder, name) == value)
    if visible is not None:
        query = query.join(DispatchIncident).where(visible)
    return [order_view(order) for order in session.scalars(query)]


def visible_to(caller: Caller, network: Network):
    """The orders a caller may read, as a clause over orders joined to their
    incidents (shared/auth.py `may_read`, for many orders at once); None: all."""
    if caller.is_admin:
        return None
    if caller.kind == "department":
        return and_(WorkOrder.center == caller.center, WorkOrder.department == caller.department)
    if caller.kind == "platform":
        return DispatchIncident.source_system.in_(sorted(caller.source_systems))
    centers = sorted(area(network, caller.center))
    if caller.kind == "auditor":
        return or_(DispatchIncident.town.in_(centers), DispatchIncident.center.in_(centers))
    held = aliased(WorkOrder)  # not the outer query's orders: those would be correlated away
    held_here = (
        select(held.order_id)
        .where(held.incident_id == DispatchIncident.incident_id)
        .where(held.center == caller.center)
        .exists()
    )
    return or_(
        DispatchIncident.town.in_(centers), DispatchIncident.center == caller.center, held_here
    )


def holders(session: Session, incident_id: str) -> frozenset[tuple[str, str]]:
    """(center, department) of every order on the incident."""
    rows = session.execute(
        select(WorkOrder.center, WorkOrder.department).where(WorkOrder.incident_id == incident_id)
    ).all()
    return frozenset((center, department) for center, department in rows)


def case(session: Session, incident_id: str) -> Case:
    incident = session.get(DispatchIncident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    return Case(
        incident.town, incident.center, incident.source_system, holders(session, incident_id)
    )


# -- deadlines ------------------------------------------------------------------------


def overdue_candidates(session: Session, now: datetime, limit: int) -> list[WorkOrder]:
    """Open orders past a deadline not yet marked, oldest deadline first."""
    return session.scalars(
        select(WorkOrder)
        .where(WorkOrder.status.in_(OPEN))
        .where(
            or_(
                (WorkOrder.status == "dispatched")
                & WorkOrder.accept_overdue_at.is_(None)
                & (WorkOrder.accept_by <= now),
                WorkOrder.arrive_overdue_at.is_(None) & (WorkOrder.arrive_by <= now),
                WorkOrder.reply_overdue_at.is_(None) & (WorkOrder.reply_by <= now),
            )
        )
        .order_by(WorkOrder.accept_by, WorkOrder.order_id)
        .limit(limit)
    ).all()


def claim_overdue(tx: UnitOfWork, order_id: str, deadline: str, now: datetime) -> bool:
    """Mark `deadline` missed, only if it still is: not marked by another
    instance, and the order not accepted (or arrived) meanwhile."""
    column = getattr(WorkOrder, f"{deadline}_overdue_at")
    due = getattr(WorkOrder, f"{deadline}_by")
    still_owed = OWED[deadline]
    claimed = tx.session.execute(
        update(WorkOrder)
        .where(
            WorkOrder.order_id == order_id,
            column.is_(None),
            WorkOrder.status.in_(still_owed),
            due <= now,
        )
        .values({column: now, WorkOrder.overdue: True})
        .execution_options(synchronize_session=False)
    ).rowcount
    return claimed == 1


def open_by_center(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Open orders per center, and those of them overdue."""
    rows = session.execute(
        select(WorkOrder.center, WorkOrder.overdue, func.count())
        .where(WorkOrder.status.in_(OPEN))
        .group_by(WorkOrder.center, WorkOrder.overdue)
    ).all()
    open_orders: dict[str, int] = {}
    overdue: dict[str, int] = {}
    for center, is_overdue, count in rows:
        open_orders[center] = open_orders.get(center, 0) + count
        if is_overdue:
            overdue[center] = overdue.get(center, 0) + count
    return open_orders, overdue
