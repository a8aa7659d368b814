"""The dispatch service (网络派单, 跟踪反馈): incidents become timed work orders,
tracked to completion."""

from __future__ import annotations

import logging
from datetime import datetime

from services.dispatch import deadlines, orders, routing, store
from services.dispatch.duty import DutyRoom
from services.dispatch.lifecycle import next_status
from services.dispatch.metrics import (
    ORDERS_RETURNED,
    DispatchSeries,
)
from services.dispatch.models import Base, DispatchIncident, WorkOrder, outbox, processed_events
from services.dispatch.reading import Reading
from services.dispatch.steering import Steering
from shared import config
from shared.auth import may_act_on_order, require
from shared.db import Database, UnitOfWork
from shared.dependencies import Authentication, NetworkProvider, api
from shared.errors import RetryLater
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


class DispatchService(Reading, Steering, DutyRoom):
    """Entrypoints: routing and tracking here; reading orders (reading.py),
    the operators' steering (steering.py) and the duty room (duty.py) are
    mixed in."""

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
            title=event["title"][:200],
            status="open",
        )
        if not store.add_incident(tx, incident):
            return  # the same incident announced again: routed already
        planned = routing.route(
            category, event["center"], self.network, utcnow(), request_type=event["request_type"]
        )
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
        now, kind = utcnow(), incident.request_type
        if event["reason"] == "neighbour":
            planned = routing.neighbour_assists(
                category, event["assist_centers"], self.network, now, holding, kind
            )
        else:
            planned = routing.route(
                category, event["to_center"], self.network, now, holding, request_type=kind
            )
            incident.center = event["to_center"]
        orders.send(tx, incident, planned, event["reason"])

    # -- the order lifecycle (跟踪反馈) -----------------------------------

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
                order.served_role,
                order.role,
                order.center,
                self.network,
                now,
                tried,
                incident.request_type,
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
