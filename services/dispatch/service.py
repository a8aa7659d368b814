"""The dispatch service: incidents become timed work orders, tracked to completion."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, or_, select, update

from services.dispatch import routing
from services.dispatch.lifecycle import OPEN, STATUSES, next_status
from services.dispatch.metrics import (
    OPEN_ORDERS,
    ORDERS_DISPATCHED,
    ORDERS_OVERDUE,
    ORDERS_RETURNED,
    OVERDUE_OPEN_ORDERS,
    TIME_TO_ACCEPT,
    TIME_TO_ARRIVE,
    DispatchSeries,
)
from services.dispatch.models import (
    Base,
    DispatchIncident,
    OrderHistory,
    WorkOrder,
    outbox,
    processed_events,
)
from shared import config
from shared.db import Database, Transaction, insert_ignoring_conflicts
from shared.dependencies import NetworkProvider, api
from shared.errors import NotFound, RetryLater, ValidationError
from shared.events import InvalidEvent, load_event, utcnow
from shared.fields import require_text
from shared.ids import new_id
from shared.messaging import handles
from shared.metrics import EntrypointMetrics
from shared.outbox import OutboxRelay
from shared.timers import every

log = logging.getLogger(__name__)

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
)
ORDER_TIMES = (
    "dispatched_at",
    "accept_by",
    "arrive_by",
    "accepted_at",
    "arrived_at",
    "completed_at",
)


def order_view(order: WorkOrder) -> dict:
    view = {name: getattr(order, name) for name in ORDER_FIELDS}
    for name in ORDER_TIMES:
        value = getattr(order, name)
        view[name] = value.isoformat() if value else None
    return view


class DispatchService:
    name = "dispatch"

    db = Database(Base.metadata, outbox, processed_events)
    relay = OutboxRelay()
    network = NetworkProvider()
    metrics = EntrypointMetrics()
    series = DispatchSeries()

    # -- incidents in -----------------------------------------------------

    @handles("intake", "incident_received")
    def on_incident_received(self, payload: dict) -> None:
        event = load_event("intake", "incident_received", payload)
        category = self._category(event["category"])
        sent = []
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], "dispatch.on_incident_received"):
                return
            tx.session.execute(
                insert_ignoring_conflicts(tx.session, DispatchIncident.__table__).values(
                    incident_id=event["incident_id"],
                    category=event["category"],
                    town=event["town"],
                    center=event["center"],
                    received_at=event["received_at"],
                )
            )
            planned = routing.route(category, event["center"], self.network, utcnow())
            sent = self._send(
                tx, event["incident_id"], event["category"], event["town"], planned, "initial"
            )
        self._count(sent)

    @handles("escalation", "incident_escalated")
    def on_incident_escalated(self, payload: dict) -> None:
        event = load_event("escalation", "incident_escalated", payload)
        self._command_moved(event, "dispatch.on_incident_escalated")

    @handles("escalation", "incident_assigned_down")
    def on_incident_assigned_down(self, payload: dict) -> None:
        event = load_event("escalation", "incident_assigned_down", payload)
        self._command_moved(event, "dispatch.on_incident_assigned_down")

    def _command_moved(self, event: dict, handler: str) -> None:
        """The new center's competent units get orders; earlier orders stay open."""
        category = self._category(event["category"])
        now = utcnow()
        sent = []
        with self.db.transaction() as tx:
            incident = tx.session.get(DispatchIncident, event["incident_id"])
            if incident is None:
                raise RetryLater(f"incident {event['incident_id']} not yet received by dispatch")
            if not tx.first_time(event["event_id"], handler):
                return
            holding = self._departments_with_orders(tx, incident.incident_id)
            if event["reason"] == "neighbour":
                planned = routing.neighbour_assists(
                    category, event["assist_centers"], self.network, now, skip=holding
                )
                cause = "neighbour"
            else:
                planned = routing.route(
                    category, event["to_center"], self.network, now, skip=holding
                )
                incident.center = event["to_center"]
                cause = event["reason"]
            sent = self._send(
                tx, incident.incident_id, incident.category, incident.town, planned, cause
            )
        self._count(sent)

    # -- the order lifecycle (跟踪反馈) -----------------------------------

    @api
    def get_order(self, order_id: str) -> dict:
        require_text("order_id", order_id, 64)
        with self.db.read() as session:
            order = session.get(WorkOrder, order_id)
            if order is None:
                raise NotFound(f"no order {order_id}")
            view = order_view(order)
            history = session.scalars(
                select(OrderHistory)
                .where(OrderHistory.order_id == order_id)
                .order_by(OrderHistory.id)
            )
            view["history"] = [
                {
                    "action": h.action,
                    "status_from": h.status_from,
                    "status_to": h.status_to,
                    "operator": h.operator,
                    "at": h.at.isoformat(),
                    "detail": h.detail,
                }
                for h in history
            ]
            return view

    @api
    def list_orders(
        self,
        incident_id: str | None = None,
        center: str | None = None,
        department: str | None = None,
        status: str | None = None,
        limit: int = 500,
    ) -> list[dict]:
        filters = {"incident_id": incident_id, "center": center, "department": department}
        for name, value in filters.items():
            require_text(name, value, 64, required=False)
        if status is not None and status not in STATUSES:
            raise ValidationError({"status": [f"must be one of {', '.join(STATUSES)}"]})
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 5000:
            raise ValidationError({"limit": ["must be an integer from 1 to 5000"]})
        query = select(WorkOrder).order_by(WorkOrder.dispatched_at, WorkOrder.order_id).limit(limit)
        for name, value in filters.items():
            if value is not None:
                query = query.where(getattr(WorkOrder, name) == value)
        if status is not None:
            query = query.where(WorkOrder.status == status)
        with self.db.read() as session:
            return [order_view(o) for o in session.scalars(query)]

    @api
    def accept(self, order_id: str, operator: str) -> dict:
        return self._act(order_id, operator, "accept", "order_accepted")

    @api
    def arrive(self, order_id: str, operator: str) -> dict:
        return self._act(order_id, operator, "arrive", "order_arrived")

    @api
    def report(self, order_id: str, operator: str, note: str) -> dict:
        note = require_text("note", note, 4000)
        return self._act(order_id, operator, "report", "order_reported", detail=note, note=note)

    @api
    def complete(self, order_id: str, operator: str, result: str) -> dict:
        result = require_text("result", result, 4000)
        return self._act(
            order_id, operator, "complete", "order_completed", detail=result, result=result
        )

    @api
    def request_reinforcement(
        self, order_id: str, operator: str, reason: str, crowd_size: int | None = None
    ) -> dict:
        reason = require_text("reason", reason, 2000)
        if crowd_size is not None and (
            isinstance(crowd_size, bool) or not isinstance(crowd_size, int) or crowd_size < 0
        ):
            raise ValidationError({"crowd_size": ["must be a non-negative integer"]})
        return self._act(
            order_id,
            operator,
            "request_reinforcement",
            "reinforcement_requested",
            detail=reason,
            reason=reason,
            crowd_size=crowd_size,
        )

    @api
    def return_order(self, order_id: str, operator: str, reason: str) -> dict:
        """退单: refused as not competent. Re-routed to the next holder of the role in
        the same center; when none is left the event says `all_returned`."""
        reason = require_text("reason", reason, 2000)
        operator = require_text("operator", operator, 64)
        require_text("order_id", order_id, 64)
        now = utcnow()
        sent = []
        with self.db.transaction() as tx:
            order = self._locked_order(tx, order_id)
            status_from = order.status
            order.status = next_status(order.status, "return")
            order.returns += 1
            self._history(tx, order, "return", status_from, operator, now, reason)
            incident = tx.session.get(DispatchIncident, order.incident_id)
            tried = self._departments_with_orders(tx, order.incident_id, order.center)
            planned = routing.reroute(
                order.served_role, order.role, order.center, self.network, now, tried
            )
            if planned is not None:
                sent = self._send(
                    tx,
                    order.incident_id,
                    incident.category,
                    incident.town,
                    [planned],
                    "reroute",
                    replaces=order.order_id,
                )
            category = self.network.categories.get(incident.category)
            tx.emit(
                "order_returned",
                **self._event_fields(order, operator, now),
                reason=reason,
                rerouted_to=sent[0]["order_id"] if sent else None,
                all_returned=not sent,
                lead_role=category.lead if category else order.served_role,
                served_role=order.served_role,
            )
            view = order_view(order)
        ORDERS_RETURNED.labels(order.center, order.department).inc()
        self._count(sent)
        return view

    def _act(
        self, order_id, operator, action: str, event_type: str, detail=None, **event_data
    ) -> dict:
        require_text("order_id", order_id, 64)
        operator = require_text("operator", operator, 64)
        now = utcnow()
        with self.db.transaction() as tx:
            order = self._locked_order(tx, order_id)
            status_from = order.status
            order.status = next_status(order.status, action)
            if action == "accept":
                order.accepted_at = now
            elif action == "arrive":
                order.arrived_at = now
            elif action == "complete":
                order.completed_at = now
            self._history(tx, order, action, status_from, operator, now, detail)
            tx.emit(event_type, **self._event_fields(order, operator, now), **event_data)
            view = order_view(order)
        if action == "accept":
            TIME_TO_ACCEPT.labels(order.center).observe((now - order.dispatched_at).total_seconds())
        elif action == "arrive":
            TIME_TO_ARRIVE.labels(order.center, str(order.tier)).observe(
                (now - order.dispatched_at).total_seconds()
            )
        log.info(
            "order %s: %s by operator (%s → %s)", order.order_id, action, status_from, order.status
        )
        return view

    # -- deadlines ----------------------------------------------------------

    @every("DEADLINE_SCAN_S", config.deadline_scan_s())
    def scan_deadlines(self) -> None:
        """Marks late orders overdue and announces `order_overdue` once per order
        and deadline, also with several dispatch instances scanning at once."""
        self.mark_overdue(utcnow())

    def mark_overdue(self, now: datetime) -> int:
        marked = []
        with self.db.transaction() as tx:
            candidates = tx.session.scalars(
                select(WorkOrder)
                .where(WorkOrder.status.in_(("dispatched", "accepted")))
                .where(
                    or_(
                        (WorkOrder.status == "dispatched")
                        & WorkOrder.accept_overdue_at.is_(None)
                        & (WorkOrder.accept_by <= now),
                        WorkOrder.arrive_overdue_at.is_(None) & (WorkOrder.arrive_by <= now),
                    )
                )
                .limit(500)
            ).all()
            for order in candidates:
                missed = routing.missed_deadlines(
                    order.status,
                    order.accept_by,
                    order.arrive_by,
                    order.accept_overdue_at,
                    order.arrive_overdue_at,
                    now,
                )
                for deadline, due_at in missed:
                    column = getattr(WorkOrder, f"{deadline}_overdue_at")
                    claimed = tx.session.execute(
                        update(WorkOrder)
                        .where(WorkOrder.order_id == order.order_id, column.is_(None))
                        .values({column: now, WorkOrder.overdue: True})
                        .execution_options(synchronize_session=False)
                    ).rowcount
                    if claimed != 1:
                        continue  # another instance marked it first
                    self._history(tx, order, f"overdue_{deadline}", order.status, None, now, None)
                    tx.emit(
                        "order_overdue",
                        **self._event_fields(order, None, now),
                        deadline=deadline,
                        due_at=due_at,
                    )
                    marked.append((order.center, order.department, deadline))
            self._refresh_gauges(tx)
        for center, department, deadline in marked:
            ORDERS_OVERDUE.labels(center, department, deadline).inc()
            log.info("order overdue at %s: %s deadline missed", center, deadline)
        return len(marked)

    def _refresh_gauges(self, tx: Transaction) -> None:
        rows = tx.session.execute(
            select(WorkOrder.center, WorkOrder.overdue, func.count())
            .where(WorkOrder.status.in_(OPEN))
            .group_by(WorkOrder.center, WorkOrder.overdue)
        ).all()
        open_by_center: dict[str, int] = {}
        overdue_by_center: dict[str, int] = {}
        for center, overdue, count in rows:
            open_by_center[center] = open_by_center.get(center, 0) + count
            if overdue:
                overdue_by_center[center] = overdue_by_center.get(center, 0) + count
        for center in self.network.centers:
            OPEN_ORDERS.labels(center).set(open_by_center.get(center, 0))
            OVERDUE_OPEN_ORDERS.labels(center).set(overdue_by_center.get(center, 0))

    # -- helpers --------------------------------------------------------------

    def _category(self, code: str):
        category = self.network.categories.get(code)
        if category is None:
            raise InvalidEvent(f"category {code!r} is not in this dispatch's network")
        return category

    def _locked_order(self, tx: Transaction, order_id: str) -> WorkOrder:
        order = tx.session.get(WorkOrder, order_id, with_for_update=True)
        if order is None:
            raise NotFound(f"no order {order_id}")
        return order

    def _departments_with_orders(
        self, tx: Transaction, incident_id: str, center: str | None = None
    ) -> set[str]:
        query = select(WorkOrder.department).where(WorkOrder.incident_id == incident_id)
        if center is not None:
            query = query.where(WorkOrder.center == center)
        return set(tx.session.scalars(query))

    def _history(self, tx, order, action, status_from, operator, at, detail) -> None:
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

    @staticmethod
    def _event_fields(order: WorkOrder, operator: str | None, at: datetime) -> dict:
        return {
            "order_id": order.order_id,
            "incident_id": order.incident_id,
            "center": order.center,
            "department": order.department,
            "role": order.role,
            "operator": operator,
            "at": at,
        }

    def _send(
        self,
        tx: Transaction,
        incident_id: str,
        category: str,
        town: str,
        planned: list[routing.PlannedOrder],
        cause: str,
        replaces: str | None = None,
    ) -> list[dict]:
        """Persist and announce planned orders; one per (incident, center, department)."""
        sent = []
        for p in planned:
            order_id = new_id()
            inserted = tx.session.execute(
                insert_ignoring_conflicts(tx.session, WorkOrder.__table__).values(
                    order_id=order_id,
                    incident_id=incident_id,
                    center=p.center,
                    department=p.department,
                    role=p.role,
                    served_role=p.served_role,
                    recipient=p.recipient,
                    tier=p.tier,
                    status="dispatched",
                    dispatched_at=p.dispatched_at,
                    accept_by=p.accept_by,
                    arrive_by=p.arrive_by,
                    overdue=False,
                    returns=0,
                    replaces=replaces,
                    cause=cause,
                )
            ).rowcount
            if inserted != 1:
                continue
            tx.session.add(
                OrderHistory(
                    order_id=order_id,
                    action="dispatch",
                    status_from=None,
                    status_to="dispatched",
                    operator=None,
                    at=p.dispatched_at,
                    detail=cause,
                )
            )
            tx.emit(
                "order_dispatched",
                order_id=order_id,
                incident_id=incident_id,
                center=p.center,
                department=p.department,
                role=p.role,
                operator=None,
                at=p.dispatched_at,
                category=category,
                town=town,
                recipient=p.recipient,
                tier=p.tier,
                accept_by=p.accept_by,
                arrive_by=p.arrive_by,
                replaces=replaces,
            )
            sent.append(
                {
                    "order_id": order_id,
                    "center": p.center,
                    "department": p.department,
                    "role": p.role,
                }
            )
        return sent

    @staticmethod
    def _count(sent: list[dict]) -> None:
        for order in sent:
            ORDERS_DISPATCHED.labels(order["center"], order["department"], order["role"]).inc()
