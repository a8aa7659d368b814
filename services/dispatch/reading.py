"""Reading orders: one with its history, the holders of an incident, lists."""

from __future__ import annotations

from services.dispatch import orders, store
from shared.auth import may_act_on_order, may_read, require
from shared.dependencies import api
from shared.fields import require_text


class Reading:
    """Dispatch's read RPCs; mixed into DispatchService."""

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
        recipient: str | None = None,
        overdue: bool | None = None,
        open: bool | None = None,  # noqa: A002 (the contract's name)
    ) -> list[dict]:
        """Orders the caller may read, matching every filter given; `open`:
        not completed, cancelled or returned."""
        filters = orders.checked_filters(
            incident_id=incident_id,
            center=center,
            department=department,
            status=status,
            recipient=recipient,
            overdue=overdue,
            open=open,
            limit=limit,
        )
        visible = store.visible_to(self.caller, self.network)
        with self.db.read() as session:
            return store.list_orders(session, filters, limit, visible)
