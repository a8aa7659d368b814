"""Dispatch's SQL for the duty room (值班): rosters and the board."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from services.dispatch.lifecycle import OPEN
from services.dispatch.models import DispatchIncident, DutyRoster, WorkOrder
from services.dispatch.store import order_view
from shared.db import UnitOfWork, insert_new

BOARD_LIMIT = 1000  # a duty room reads a screen, not an export


def roster(session: Session, center: str, day: date | None) -> DutyRoster | None:
    if day is None:
        return None
    return session.get(DutyRoster, (center, day))


def roster_view(found: DutyRoster) -> dict:
    return {
        "center": found.center,
        "date": found.day.isoformat(),
        "leader": found.leader,
        "officers": found.officers,
        "set_by": found.set_by,
        "set_at": found.set_at.isoformat(),
    }


def set_roster(tx: UnitOfWork, row: dict) -> DutyRoster:
    """Store the day's roster, replacing one set before (two callers setting
    it at once: the last one wins, neither fails)."""
    tx.session.execute(insert_new(tx.session, DutyRoster.__table__), row)
    found = tx.session.get(DutyRoster, (row["center"], row["day"]), with_for_update=True)
    for name in ("leader", "officers", "set_by", "set_at"):
        setattr(found, name, row[name])
    return found


def board_orders(session: Session, center: str) -> list[dict]:
    """Open orders of the center's units, overdue first, then the oldest."""
    rows = session.execute(
        select(WorkOrder, DispatchIncident.title, DispatchIncident.category)
        .join(DispatchIncident)
        .where(WorkOrder.center == center, WorkOrder.status.in_(OPEN))
        .order_by(WorkOrder.overdue.desc(), WorkOrder.dispatched_at, WorkOrder.order_id)
        .limit(BOARD_LIMIT)
    ).all()
    return [{**order_view(order), "title": title, "category": cat} for order, title, cat in rows]


def board_incidents(session: Session, center: str) -> list[dict]:
    """Open incidents the center commands, with their open and overdue
    orders (at any center), those with an overdue order first."""
    counts = (
        select(
            WorkOrder.incident_id,
            func.count().label("open_orders"),
            func.sum(case((WorkOrder.overdue, 1), else_=0)).label("overdue_orders"),
        )
        .where(WorkOrder.status.in_(OPEN))
        .group_by(WorkOrder.incident_id)
        .subquery()
    )
    overdue = func.coalesce(counts.c.overdue_orders, 0)
    rows = session.execute(
        select(DispatchIncident, func.coalesce(counts.c.open_orders, 0), overdue)
        .outerjoin(counts, counts.c.incident_id == DispatchIncident.incident_id)
        .where(DispatchIncident.center == center, DispatchIncident.status == "open")
        .order_by((overdue > 0).desc(), DispatchIncident.received_at)
        .limit(BOARD_LIMIT)
    ).all()
    return [_incident_line(incident, n, late) for incident, n, late in rows]


def _incident_line(incident: DispatchIncident, open_orders: int, overdue: int) -> dict:
    return {
        "incident_id": incident.incident_id,
        "title": incident.title,
        "category": incident.category,
        "request_type": incident.request_type,
        "town": incident.town,
        "received_at": _iso(incident.received_at),
        "open_orders": int(open_orders),
        "overdue_orders": int(overdue),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
