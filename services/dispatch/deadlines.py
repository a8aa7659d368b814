"""Missed deadlines: orders marked overdue and urged (催办) once per deadline,
and the gauges."""

from __future__ import annotations

import logging
from datetime import datetime

from services.dispatch import orders, routing, store
from services.dispatch.metrics import OPEN_ORDERS, ORDERS_OVERDUE, OVERDUE_OPEN_ORDERS
from shared.db import UnitOfWork
from shared.network import Network

log = logging.getLogger(__name__)


AUTOMATIC_URGE = "逾期自动催办: the {deadline} deadline ({due_at}) has passed"


def mark_overdue(tx: UnitOfWork, now: datetime, limit: int) -> list[tuple[str, str, str]]:
    """Mark every deadline missed by `now`, announce `order_overdue` and urge
    the unit (`order_urged`, `automatic`) once per order and deadline, also
    with several instances scanning at once (the mark is a conditional
    update: one wins). (center, department, deadline) of each mark."""
    marked = []
    for order in store.overdue_candidates(tx.session, now, limit):
        due = {name: getattr(order, f"{name}_by") for name in routing.OWED}
        done = {name: getattr(order, f"{name}_overdue_at") for name in routing.OWED}
        for deadline, due_at in routing.missed_deadlines(order.status, due, done, now):
            if not store.claim_overdue(tx, order.order_id, deadline, now):
                continue  # another instance marked it first, or it was met
            store.record(tx, order, f"overdue_{deadline}", order.status, None, now, None)
            fields = orders.event_fields(order, None, now)
            tx.emit("order_overdue", **fields, deadline=deadline, due_at=due_at)
            note = AUTOMATIC_URGE.format(deadline=deadline, due_at=due_at.isoformat())
            orders.urged(tx, order, None, now, note, automatic=True)
            marked.append((order.center, order.department, deadline))
    return marked


def count(marked: list[tuple[str, str, str]], network: Network) -> None:
    for center, department, deadline in marked:
        ORDERS_OVERDUE.labels(center, department, deadline).inc()
        log.info("order overdue at %s: %s deadline missed", center, deadline)


def publish_gauges(open_orders: dict[str, int], overdue: dict[str, int], network: Network) -> None:
    for center in network.centers:
        OPEN_ORDERS.labels(center).set(open_orders.get(center, 0))
        OVERDUE_OPEN_ORDERS.labels(center).set(overdue.get(center, 0))
