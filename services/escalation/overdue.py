"""Missed deadlines, as they concern command (rule 3's second half).

A missed deadline of the lead order of a `help` or `emergency` incident
starts its grace; still unmet `overdue_grace` later, command goes up one
level (`overdue`). Any other overdue order (an assist, a consultation's
reply) is urged by dispatch and never moves command (CONTRACT.md section 7).
Mixed into `EscalationService`: its entrypoints, beside the service's own.
"""

from __future__ import annotations

from datetime import datetime

from services.escalation import domain, rules, store
from shared import config
from shared.db import UnitOfWork, each_in_turn
from shared.events import utcnow
from shared.messaging import handles
from shared.timers import every

MOVES_COMMAND = ("help", "emergency")


class OverdueChecks:
    @handles("dispatch", "order_overdue")
    def on_order_overdue(self, event: dict, tx: UnitOfWork) -> None:
        """A missed deadline starts its grace: checked again at due + `overdue_grace`."""
        self._require_incident(tx, event["incident_id"])
        store.watch(tx, [domain.watched_order(event)])
        state = store.state(tx.session, event["incident_id"])
        if event["role"] != "lead" or state.request_type not in MOVES_COMMAND:
            return  # urged by dispatch; command stays
        order = store.watched_order(tx.session, event["order_id"])
        check_at = event["due_at"] + self.network.deadlines.overdue_grace
        status = domain.settled(order, event["deadline"], check_at) or "pending"
        store.add_check(tx, domain.overdue_check(event, check_at, status, utcnow()))

    # -- the grace runs out ----------------------------------------------------

    @every("DEADLINE_SCAN_S", config.deadline_scan_s())
    def scan_overdue(self) -> None:
        """Missed deadlines still unmet after their grace move command up
        (`overdue`); each check is claimed by one instance only."""
        self.resolve_overdue(utcnow())

    def resolve_overdue(self, now: datetime) -> int:
        """Resolve the checks due by `now`; how many moved command."""
        with self.db.read() as session:
            due = store.due_checks(session, now)
        outcomes = each_in_turn(
            due, lambda check_id: self._resolve_check(check_id, now), "overdue check"
        )
        return sum(isinstance(outcome, rules.Move) for outcome in outcomes)

    def _resolve_check(self, check_id: int, now: datetime) -> rules.Verdict:
        with self.db.transaction() as tx:
            check = store.claim_check(tx, check_id, now)
            if check is None:
                return None  # another instance has it
            order = store.watched_order(tx.session, check.order_id)
            settled = domain.settled(order, check.deadline, check.check_at)
            if settled:
                store.close_check(check, settled)
                return None
            state = self._locked(tx, check.incident_id)
            decision = rules.on_overdue_unmet(check.center, state.center, self.network)
            detail = f"{order.department}: {check.deadline} deadline {check.due_at.isoformat()}"
            outcome = self._decide(tx, state, decision, detail=detail)
            store.close_check(check, domain.check_status(outcome))
            return outcome
