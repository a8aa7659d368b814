"""Escalation's SQL: every statement the service runs on its database.

The incident's row (`CommandState`) is locked while a move is decided, so the
state, the chain and the decision cannot change underneath; the chain's
`(incident_id, once_key)` and `(incident_id, seq)` constraints back that up.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.escalation import rules
from services.escalation.models import CommandMove, CommandState, OverdueCheck, WatchedOrder
from shared.auth import Case
from shared.db import UnitOfWork, insert_new

# -- incidents and their command chain ------------------------------------------


def add_incident(tx: UnitOfWork, row: dict) -> bool:
    """Store an incident's command state; False when it is known already."""
    return tx.session.execute(insert_new(tx.session, CommandState.__table__), row).rowcount == 1


def has_incident(session: Session, incident_id: str) -> bool:
    found = session.scalar(
        select(CommandState.incident_id).where(CommandState.incident_id == incident_id)
    )
    return found is not None


def update_facts(state: CommandState, event: dict) -> None:
    """An operator's update: the facts the rules judge by."""
    for name in ("category", "request_type", "crowd_size", "casualties", "grade"):
        setattr(state, name, event[name])


def state(session: Session, incident_id: str) -> CommandState | None:
    return session.get(CommandState, incident_id)


def locked_state(tx: UnitOfWork, incident_id: str) -> CommandState | None:
    """The incident's command state, its row locked until the commit."""
    return tx.session.get(CommandState, incident_id, with_for_update=True, populate_existing=True)


def once_keys(session: Session, incident_id: str) -> frozenset[str]:
    """The automatic moves already in the incident's chain (`Move.once_key`)."""
    keys = session.scalars(
        select(CommandMove.once_key).where(
            CommandMove.incident_id == incident_id, CommandMove.once_key.is_not(None)
        )
    )
    return frozenset(keys)


def add_move(
    tx: UnitOfWork,
    state: CommandState,
    move: rules.Move,
    at: datetime,
    event_id: str,
    operator: str | None = None,
    detail: str | None = None,
) -> None:
    """Append `move` to the chain and hand command to its target."""
    state.moves += 1
    tx.session.add(
        CommandMove(
            incident_id=state.incident_id,
            seq=state.moves,
            once_key=move.once_key,
            reason=move.reason,
            from_center=move.from_center,
            to_center=move.to_center,
            assist_centers=json.dumps(list(move.assist_centers)),
            operator=operator,
            detail=detail,
            at=at,
            event_id=event_id,
        )
    )
    state.center = move.to_center
    state.command_changed_at = at
    tx.session.flush()


def chain(session: Session, incident_id: str) -> list[CommandMove]:
    """The incident's command chain, oldest first."""
    return list(
        session.scalars(
            select(CommandMove)
            .where(CommandMove.incident_id == incident_id)
            .order_by(CommandMove.seq)
        )
    )


def last_move(session: Session, incident_id: str) -> CommandMove:
    return session.scalars(
        select(CommandMove)
        .where(CommandMove.incident_id == incident_id)
        .order_by(CommandMove.seq.desc())
        .limit(1)
    ).one()


# -- watched orders ---------------------------------------------------------------

ORDER_TIMES = {
    "accepted_at": WatchedOrder.accepted_at,
    "arrived_at": WatchedOrder.arrived_at,
    "returned_at": WatchedOrder.returned_at,
}


def watch(tx: UnitOfWork, rows: list[dict]) -> None:
    """Know these orders (from whichever of their events comes first)."""
    if rows:
        tx.session.execute(insert_new(tx.session, WatchedOrder.__table__), rows)


def holders(session: Session, incident_id: str) -> frozenset[tuple[str, str]]:
    """(center, department) of every order of the incident escalation knows."""
    rows = session.execute(
        select(WatchedOrder.center, WatchedOrder.department).where(
            WatchedOrder.incident_id == incident_id
        )
    ).all()
    return frozenset((center, department) for center, department in rows)


def case(session: Session, state: CommandState) -> Case:
    """What the rights need of an incident (shared/auth.py)."""
    return Case(state.town, state.center, state.source_system, holders(session, state.incident_id))


def watched_order(session: Session, order_id: str) -> WatchedOrder | None:
    return session.get(WatchedOrder, order_id)


def record_time(tx: UnitOfWork, order_id: str, name: str, at: datetime) -> None:
    """Set the order's `name` time (`accepted_at`, …) to `at` unless an earlier one is known."""
    column = ORDER_TIMES[name]
    tx.session.execute(
        update(WatchedOrder)
        .where(WatchedOrder.order_id == order_id)
        .where(column.is_(None) | (column > at))
        .values({column: at})
        .execution_options(synchronize_session=False)
    )


# -- missed deadlines in their grace ------------------------------------------------


def add_check(tx: UnitOfWork, row: dict) -> None:
    """Record a missed deadline once (a redelivered notice changes nothing)."""
    tx.session.execute(insert_new(tx.session, OverdueCheck.__table__), row)


def settle_checks(
    tx: UnitOfWork,
    order_id: str,
    deadlines: tuple[str, ...],
    status: str,
    at: datetime,
    now: datetime,
) -> None:
    """Pending checks of an order settled by something that happened at `at`,
    within their grace; a later catch-up still escalates."""
    tx.session.execute(
        update(OverdueCheck)
        .where(
            OverdueCheck.order_id == order_id,
            OverdueCheck.deadline.in_(deadlines),
            OverdueCheck.status == "pending",
            OverdueCheck.check_at >= at,
        )
        .values(status=status, resolved_at=now)
        .execution_options(synchronize_session=False)
    )


def due_checks(session: Session, now: datetime, limit: int = 200) -> list[int]:
    """The pending checks whose grace has run out by `now`, oldest first (one scan's batch)."""
    return list(
        session.scalars(
            select(OverdueCheck.id)
            .where(OverdueCheck.status == "pending", OverdueCheck.check_at <= now)
            .order_by(OverdueCheck.check_at, OverdueCheck.id)
            .limit(limit)
        )
    )


def claim_check(tx: UnitOfWork, check_id: int, now: datetime) -> OverdueCheck | None:
    """Take a pending check for this instance; None when another one has it."""
    claimed = tx.session.execute(
        update(OverdueCheck)
        .where(OverdueCheck.id == check_id, OverdueCheck.status == "pending")
        .values(status="claimed", resolved_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return None
    return tx.session.get(OverdueCheck, check_id)


def close_check(check: OverdueCheck, status: str) -> None:
    """A claimed check's outcome (`met`, `moot`, `escalated`, `refused`)."""
    check.status = status
