"""The dispatch service (网络派单, 跟踪反馈): incidents become timed work orders,
tracked to completion."""

from __future__ import annotations

import logging
from datetime import datetime

from services.dispatch import deadlines, orders, routing, store
from services.dispatch.lifecycle import STATUSES, next_status
from services.dispatch.metrics import (
    ORDERS_RETURNED,
    DispatchSeries,
)
from services.dispatch.models import Base, DispatchIncident, WorkOrder, outbox, processed_events
from shared import config
from shared.auth import may_act_on_order, may_read, require
from shared.db import Database, UnitOfWork
from shared.dependencies import Authentication, NetworkProvider, api
from shared.errors import RetryLater, ValidationError
from shared.events import InvalidEvent, utcnow
from shared.fields import require_count, require_text
from shared.messaging import handles
from shared.metrics import EntrypointMetrics
from shared.outbox import Outbox
from shared.retention import Retention
from shared.timers import every

log = logging.getLogger(__name__)

INCIDENT_FACTS = (
    "incident_id",
    "source_system",
    "category",
    "request_type",
    "town",
    "crowd_size",
    "casualties",
)
OVERDUE_BATCH = 500
DONE_AT = {"accept": "accepted_at", "arrive": "arrived_at", "complete": "completed_at"}


class DispatchService:
    name = "dispatch"

    db = Database(Base.metadata, outbox, processed_events)
    outbox = Outbox()
    retention = Retention()
    auth = Authentication()
    network = NetworkProvider()
    metrics = EntrypointMetrics()
    series = DispatchSeries()

    # -- incidents in -----------------------------------------------------

    @handles("intake", "incident_received")
    def on_incident_received(self, event: dict, tx: UnitOfWork) -> None:
        category = self._category(event["category"])
        incident = {name: event[name] for name in INCIDENT_FACTS}
        incident.update(
            received_by=event["center"],
            center=event["center"],
            grade=event["grade"],
            received_at=event["received_at"],
        )
        if not store.add_incident(tx, incident):
            return  # the same incident announced again: routed already
        planned = routing.route(category, event["center"], self.network, utcnow())
        orders.send(tx, DispatchIncident(**incident), planned, "initial")

    @handles("escalation", "incident_escalated")
    def on_incident_escalated(self, event: dict, tx: UnitOfWork) -> None:
        self._command_moved(event, tx)

    @handles("escalation", "incident_assigned_down")
    def on_incident_assigned_down(self, event: dict, tx: UnitOfWork) -> None:
        self._command_moved(event, tx)

    def _command_moved(self, event: dict, tx: UnitOfWork) -> None:
        """The new center's competent units get orders; earlier orders stay open."""
        category = self._category(event["category"])
        incident = store.incident(tx.session, event["incident_id"])
        if incident is None:
            raise RetryLater(f"incident {event['incident_id']} not yet received by dispatch")
        holding = store.departments_with_orders(tx.session, incident.incident_id)
        now = utcnow()
        if event["reason"] == "neighbour":
            planned = routing.neighbour_assists(
                category, event["assist_centers"], self.network, now, skip=holding
            )
        else:
            planned = routing.route(category, event["to_center"], self.network, now, skip=holding)
            incident.center = event["to_center"]
        orders.send(tx, incident, planned, event["reason"])

    # -- the order lifecycle (跟踪反馈) -----------------------------------

    @api
    def get_order(self, order_id: str) -> dict:
        require_text("order_id", order_id, 64)
        with self.db.read() as session:
            order = store.order(session, order_id)
            if not may_act_on_order(self.caller, order.center, order.department):
                case = store.case(session, order.incident_id)
                require(may_read(self.caller, self.network, case), f"order {order_id}")
            return store.order_with_history(session, order)

    @api
    def holders(self, incident_id: str) -> list[list[str]]:
        """[center, department] of every order on an incident (for other services' rights)."""
        require_text("incident_id", incident_id, 64)
        with self.db.read() as session:
            return sorted(list(h) for h in store.holders(session, incident_id))

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
        visible = store.visible_to(self.caller, self.network)
        with self.db.read() as session:
            return store.list_orders(session, {**filters, "status": status}, limit, visible)

    @api(mutating=True)
    def accept(self, order_id: str) -> dict:
        return self._act(order_id, "accept", "order_accepted")

    @api(mutating=True)
    def arrive(self, order_id: str) -> dict:
        return self._act(order_id, "arrive", "order_arrived")

    @api(mutating=True)
    def report(self, order_id: str, note: str) -> dict:
        note = require_text("note", note, 4000)
        return self._act(order_id, "report", "order_reported", detail=note, note=note)

    @api(mutating=True)
    def complete(self, order_id: str, result: str) -> dict:
        result = require_text("result", result, 4000)
        return self._act(order_id, "complete", "order_completed", detail=result, result=result)

    @api(mutating=True)
    def request_reinforcement(
        self, order_id: str, reason: str, crowd_size: int | None = None
    ) -> dict:
        reason = require_text("reason", reason, 2000)
        require_count("crowd_size", crowd_size)
        return self._act(
            order_id,
            "request_reinforcement",
            "reinforcement_requested",
            detail=reason,
            reason=reason,
            crowd_size=crowd_size,
        )

    @api(mutating=True)
    def return_order(self, order_id: str, reason: str) -> dict:
        """退单: refused as not competent. Re-routed to the next holder of the role in
        the same center; when none is left the event says `all_returned`."""
        reason = require_text("reason", reason, 2000)
        require_text("order_id", order_id, 64)
        operator, now = self.caller.sub, utcnow()
        with self.db.transaction() as tx:
            order = self._transition(tx, order_id, "return", now, reason)
            order.returns += 1
            incident = store.incident(tx.session, order.incident_id)
            tried = store.departments_with_orders(tx.session, order.incident_id, order.center)
            planned = routing.reroute(
                order.served_role, order.role, order.center, self.network, now, tried
            )
            sent = orders.send(
                tx, incident, [planned] if planned else [], "reroute", replaces=order.order_id
            )
            category = self.network.categories.get(incident.category)
            tx.emit(
                "order_returned",
                **orders.event_fields(order, operator, now),
                reason=reason,
                rerouted_to=sent[0] if sent else None,
                all_returned=not sent,
                lead_role=category.lead if category else order.served_role,
                served_role=order.served_role,
            )
            tx.after_commit(lambda: ORDERS_RETURNED.labels(order.center, order.department).inc())
            return store.order_view(order)

    def _act(self, order_id, action: str, event_type: str, detail=None, **data) -> dict:
        require_text("order_id", order_id, 64)
        operator, now = self.caller.sub, utcnow()
        with self.db.transaction() as tx:
            order = self._transition(tx, order_id, action, now, detail)
            if action in DONE_AT:
                setattr(order, DONE_AT[action], now)
            tx.emit(event_type, **orders.event_fields(order, operator, now), **data)
            tx.after_commit(lambda: orders.timed(order, action, now))
            return store.order_view(order)

    def _transition(self, tx, order_id, action, now, detail) -> WorkOrder:
        """Lock the order, check the caller may act on it, move its status."""
        order = store.locked_order(tx, order_id)
        require(
            may_act_on_order(self.caller, order.center, order.department),
            f"order {order_id} of {order.department}",
        )
        status_from = order.status
        order.status = next_status(order.status, action)
        store.record(tx, order, action, status_from, self.caller.sub, now, detail)
        log.info("order %s: %s (%s → %s)", order_id, action, status_from, order.status)
        return order

    # -- deadlines ----------------------------------------------------------

    @every("DEADLINE_SCAN_S", config.deadline_scan_s())
    def scan_deadlines(self) -> None:
        """Marks late orders overdue and announces `order_overdue` once per order
        and deadline, also with several dispatch instances scanning at once."""
        self.mark_overdue(utcnow())

    def mark_overdue(self, now: datetime) -> int:
        with self.db.transaction() as tx:
            marked = deadlines.mark_overdue(tx, now, OVERDUE_BATCH)
            tx.after_commit(lambda: deadlines.count(marked, self.network))
            open_orders, overdue = store.open_by_center(tx.session)
        deadlines.publish_gauges(open_orders, overdue, self.network)
        return len(marked)

    # -- helpers ------------------------------------------------------------------------

    def _category(self, code: str):
        category = self.network.categories.get(code)
        if category is None:
            raise InvalidEvent(f"category {code!r} is not in this dispatch's network")
        return category
