"""Missed deadlines: orders marked overdue once per deadline, and the gauges."""

from __future__ import annotations

import logging
from datetime import datetime

from services.dispatch import orders, routing, store
from services.dispatch.metrics import OPEN_ORDERS, ORDERS_OVERDUE, OVERDUE_OPEN_ORDERS
from shared.db import UnitOfWork
from shared.network import Network

log = logging.getLogger(__name__)


def mark_overdue(tx: UnitOfWork, now: datetime, limit: int) -> list[tuple[str, str, str]]:
    """Mark every deadline missed by `now` and announce `order_overdue` once per
    order and deadline, also with several instances scanning at once (the
    mark is a conditional update: one wins). (center, department, deadline)
    of each mark."""
    marked = []
    for order in store.overdue_candidates(tx.session, now, limit):
        missed = routing.missed_deadlines(
            order.status,
            order.accept_by,
            order.arrive_by,
            order.accept_overdue_at,
            order.arrive_overdue_at,
            now,
        )
        for deadline, due_at in missed:
            if not store.claim_overdue(tx, order.order_id, deadline, now):
                continue  # another instance marked it first, or it was met
            store.record(tx, order, f"overdue_{deadline}", order.status, None, now, None)
            tx.emit(
                "order_overdue",
                **orders.event_fields(order, None, now),
                deadline=deadline,
                due_at=due_at,
            )
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
