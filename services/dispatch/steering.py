"""The case under the operators' control (CONTRACT.md section 7): add, cancel,
reassign and urge (催办) orders, and follow the incident as intake changes it
(reclassification re-routes; closing and reopening).

A cancelled or reassigned order is never counted against its department; an
urge is. Every step is a history line on the order and an event, in the unit
of work that made it.
"""

from __future__ import annotations

from services.dispatch import orders, routing, store
from services.dispatch.lifecycle import OPEN, next_status
from services.dispatch.models import DispatchIncident, WorkOrder
from shared.auth import area, may_steer, require
from shared.db import UnitOfWork
from shared.dependencies import api
from shared.errors import InvalidTransition, NotFound, RetryLater, ValidationError
from shared.events import utcnow
from shared.fields import require_text
from shared.messaging import handles
from shared.network import Department

# The facts of an incident dispatch keeps, as `incident_updated` states them.
UPDATED_FACTS = ("category", "request_type", "crowd_size", "casualties", "grade")


def new_value(change):
    """The new value of one entry of `incident_updated.changes`."""
    if isinstance(change, dict):
        return change.get("new")
    if isinstance(change, (list, tuple)) and len(change) == 2:
        return change[1]
    return change


class Steering:
    """Operators' RPCs on orders and intake's case events; mixed into DispatchService."""

    @api(mutating=True)
    def add_order(self, incident_id: str, department: str, reason: str) -> dict:
        """The center in command orders one more unit of its own area, as an
        assist (`cause: "added"`)."""
        reason = require_text("reason", reason, 2000)
        require_text("incident_id", incident_id, 64)
        unit = self._department(department)
        now = utcnow()
        with self.db.transaction() as tx:
            incident = self._open_incident(tx, incident_id)
            caller = self.caller
            require(
                caller.is_admin or (caller.kind == "center" and caller.center == incident.center),
                f"adding orders to incident {incident_id} (commanded by {incident.center})",
            )
            if unit.center not in area(self.network, incident.center):
                raise ValidationError(
                    {"department": [f"is not a unit of {incident.center}'s area"]}
                )
            category = self.network.categories.get(incident.category)
            planned = routing.added(unit, category, self.network, now, incident.request_type)
            return self._send_one(tx, incident, planned, "added", None, reason)

    @api(mutating=True)
    def cancel_order(self, order_id: str, reason: str) -> dict:
        """Withdraw an open order (sent by mistake): never counted against the unit."""
        reason = require_text("reason", reason, 2000)
        require_text("order_id", order_id, 64)
        with self.db.transaction() as tx:
            order = self._steered_order(tx, order_id)
            orders.cancelled(tx, order, self.caller.sub, utcnow(), reason, "cancelled")
            return store.order_view(order)

    @api(mutating=True)
    def reassign(self, order_id: str, department: str, reason: str) -> dict:
        """The order is cancelled and a new one, `replaces` pointing at it, goes
        to `department` (a unit of the order's center's area) with the same
        role; not a return. The new order's view."""
        reason = require_text("reason", reason, 2000)
        require_text("order_id", order_id, 64)
        unit = self._department(department)
        now = utcnow()
        with self.db.transaction() as tx:
            order = self._steered_order(tx, order_id)
            if unit.code == order.department:
                raise ValidationError({"department": ["already holds this order"]})
            if unit.center not in area(self.network, order.center):
                raise ValidationError({"department": [f"is not a unit of {order.center}'s area"]})
            next_status(order.status, "cancel")  # refused before anything is sent
            incident = self._open_incident(tx, order.incident_id)
            planned = routing.plan(
                unit, order.role, order.served_role, self.network, now, incident.request_type
            )
            view = self._send_one(tx, incident, planned, "reassigned", order.order_id, reason)
            orders.cancelled(
                tx, order, self.caller.sub, now, reason, "reassigned", view["order_id"]
            )
            return view

    @api(mutating=True)
    def urge(self, order_id: str, note: str) -> dict:
        """催办: press the unit on an open order; counted in assessment."""
        note = require_text("note", note, 2000)
        require_text("order_id", order_id, 64)
        with self.db.transaction() as tx:
            order = self._steered_order(tx, order_id)
            if order.status not in OPEN:
                raise InvalidTransition(
                    f"cannot urge an order that is {order.status} (allowed when "
                    f"{' or '.join(OPEN)})"
                )
            orders.urged(tx, order, self.caller.sub, utcnow(), note)
            return store.order_view(order)

    # -- the incident as intake changes it --------------------------------------

    @handles("intake", "incident_updated")
    def on_incident_updated(self, event: dict, tx: UnitOfWork) -> None:
        """New facts are kept; a new category re-routes: orders of roles no
        longer needed are cancelled, roles newly needed get orders at the
        center in command (both `cause: "reclassified"`)."""
        incident = store.incident(tx.session, event["incident_id"])
        if incident is None:
            raise RetryLater(f"incident {event['incident_id']} not yet received by dispatch")
        reclassified = event["category"] != incident.category
        for name in UPDATED_FACTS:
            setattr(incident, name, event[name])
        if "title" in event["changes"]:
            incident.title = new_value(event["changes"]["title"])
        if reclassified:
            self._reroute(tx, incident, event["operator"], event["reason"])

    @handles("intake", "incident_closed")
    def on_incident_closed(self, event: dict, tx: UnitOfWork) -> None:
        self._incident_status(tx, event["incident_id"], "closed")

    @handles("intake", "incident_reopened")
    def on_incident_reopened(self, event: dict, tx: UnitOfWork) -> None:
        self._incident_status(tx, event["incident_id"], "open")

    def _incident_status(self, tx: UnitOfWork, incident_id: str, status: str) -> None:
        # An incident dispatch never received (transferred) has nothing here to change.
        incident = store.incident(tx.session, incident_id)
        if incident is not None:
            incident.status = status

    def _reroute(self, tx: UnitOfWork, incident: DispatchIncident, operator, reason) -> None:
        category = self._category(incident.category)
        now = utcnow()
        open_orders = store.open_orders(tx.session, incident.incident_id)
        decision = routing.reclassify(
            category, [(o.order_id, o.served_role, o.cause) for o in open_orders]
        )
        for order in open_orders:
            if order.order_id in decision.cancel:
                orders.cancelled(tx, order, operator, now, reason, "reclassified")
        planned = routing.route(
            category,
            incident.center,
            self.network,
            now,
            skip=store.departments_with_orders(tx.session, incident.incident_id),
            covered=decision.covered,
            request_type=incident.request_type,
        )
        orders.send(tx, incident, planned, "reclassified", operator=operator, detail=reason)

    # -- helpers ----------------------------------------------------------------

    def _department(self, code) -> Department:
        require_text("department", code, 64)
        unit = self.network.departments.get(code)
        if unit is None:
            raise ValidationError({"department": ["is not a department of this network"]})
        return unit

    def _open_incident(self, tx: UnitOfWork, incident_id: str) -> DispatchIncident:
        incident = store.incident(tx.session, incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        if incident.status != "open":
            raise InvalidTransition(f"incident {incident_id} is {incident.status}: reopen it first")
        return incident

    def _steered_order(self, tx: UnitOfWork, order_id: str) -> WorkOrder:
        """Lock the order; the caller must be allowed to steer its incident."""
        order = store.locked_order(tx, order_id)
        case = store.case(tx.session, order.incident_id)
        require(may_steer(self.caller, self.network, case), f"order {order_id}")
        return order

    def _send_one(self, tx, incident, planned, cause: str, replaces, reason: str) -> dict:
        sent = orders.send(
            tx, incident, [planned], cause, replaces, operator=self.caller.sub, detail=reason
        )
        if not sent:
            raise InvalidTransition(
                f"{planned.department} has had an order on incident {incident.incident_id} already"
            )
        return store.order_view(store.order(tx.session, sent[0]))
