"""The escalation service (统一指挥): which center commands each incident.

It follows incidents and their orders, asks `rules` whether command should
move, records each move in the incident's command chain and announces it
(`incident_escalated`, `incident_assigned_down`); dispatch then sends orders to
the new center's units. Operators move command by hand with `escalate` and
`assign_down`.

Once only, with any number of instances and redelivered events: every handler
records its event id in the same transaction as its effect; every move is
decided while holding the incident's row lock, only from the center in
command; and an automatic reason moves command at most once per incident and
center (the chain's `once_key`).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update

from services.escalation import rules
from services.escalation.metrics import ESCALATIONS, ESCALATIONS_REFUSED
from services.escalation.models import (
    Base,
    CommandMove,
    CommandState,
    OverdueCheck,
    WatchedOrder,
    outbox,
    processed_events,
)
from shared import config
from shared.db import Database, Transaction, insert_ignoring_conflicts, is_transient
from shared.dependencies import NetworkProvider, api
from shared.errors import InvalidTransition, NotFound, RetryLater, ValidationError
from shared.events import InvalidEvent, load_event, utcnow
from shared.fields import text_arg
from shared.messaging import handles
from shared.metrics import EntrypointMetrics
from shared.outbox import OutboxRelay
from shared.timers import every

log = logging.getLogger(__name__)

SCAN_BATCH = 200
TICK = timedelta(microseconds=1)


def move_view(move: CommandMove) -> dict:
    return {
        "from_center": move.from_center,
        "to_center": move.to_center,
        "reason": move.reason,
        "at": move.at.isoformat(),
        "operator": move.operator,
        "detail": move.detail,
        "assist_centers": json.loads(move.assist_centers or "[]"),
    }


class EscalationService:
    name = "escalation"

    db = Database(Base.metadata, outbox, processed_events)
    relay = OutboxRelay()
    network = NetworkProvider()
    metrics = EntrypointMetrics()

    # -- incidents in -----------------------------------------------------

    @handles("intake", "incident_received")
    def on_incident_received(self, payload: dict) -> None:
        event = load_event("intake", "incident_received", payload)
        facts = self._facts(event)
        outcome = None
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], "escalation.on_incident_received"):
                return
            inserted = tx.session.execute(
                insert_ignoring_conflicts(tx.session, CommandState.__table__).values(
                    incident_id=event["incident_id"],
                    category=facts.category,
                    town=facts.town,
                    received_by=facts.center,
                    center=facts.center,
                    crowd_size=facts.crowd_size,
                    grade=facts.grade,
                    received_at=event["received_at"],
                    moves=0,
                )
            ).rowcount
            if inserted != 1:
                return  # the same incident announced again: decided already
            state = self._locked_state(tx, event["incident_id"])
            outcome = self._apply(tx, state, rules.initial_command(facts, self.network))
        self._count(event["incident_id"], outcome)

    # -- orders, as they concern command ------------------------------------

    @handles("dispatch", "order_dispatched")
    def on_order_dispatched(self, payload: dict) -> None:
        event = load_event("dispatch", "order_dispatched", payload)
        with self.db.transaction() as tx:
            if tx.first_time(event["event_id"], "escalation.on_order_dispatched"):
                self._watch(tx, event)

    @handles("dispatch", "order_accepted")
    def on_order_accepted(self, payload: dict) -> None:
        event = load_event("dispatch", "order_accepted", payload)
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], "escalation.on_order_accepted"):
                return
            self._watch(tx, event)
            self._record_time(tx, event["order_id"], WatchedOrder.accepted_at, event["at"])
            self._resolve_checks(tx, event["order_id"], ("accept",), "met", event["at"])

    @handles("dispatch", "order_arrived")
    def on_order_arrived(self, payload: dict) -> None:
        """Arrival meets the arrive deadline, and the accept one (arrival
        follows acceptance, though its event may come first)."""
        event = load_event("dispatch", "order_arrived", payload)
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], "escalation.on_order_arrived"):
                return
            self._watch(tx, event)
            self._record_time(tx, event["order_id"], WatchedOrder.arrived_at, event["at"])
            self._resolve_checks(tx, event["order_id"], ("accept", "arrive"), "met", event["at"])

    @handles("dispatch", "order_returned")
    def on_order_returned(self, payload: dict) -> None:
        """退单: a returned order's deadlines no longer count (its replacement
        has its own); when every holder of the role has returned it, the
        parent center takes command (`all_returned`)."""
        event = load_event("dispatch", "order_returned", payload)
        outcome = None
        with self.db.transaction() as tx:
            self._require_incident(tx, event["incident_id"])
            if not tx.first_time(event["event_id"], "escalation.on_order_returned"):
                return
            self._watch(tx, event)
            self._record_time(tx, event["order_id"], WatchedOrder.returned_at, event["at"])
            self._resolve_checks(tx, event["order_id"], ("accept", "arrive"), "moot", event["at"])
            if event["all_returned"]:
                state = self._locked_state(tx, event["incident_id"])
                decision = rules.on_all_returned(event["center"], state.center, self.network)
                detail = f"{event['department']}: {event['reason']}"
                outcome = self._apply(tx, state, decision, detail=detail)
        self._count(event["incident_id"], outcome)

    @handles("dispatch", "reinforcement_requested")
    def on_reinforcement_requested(self, payload: dict) -> None:
        event = load_event("dispatch", "reinforcement_requested", payload)
        outcome = None
        with self.db.transaction() as tx:
            self._require_incident(tx, event["incident_id"])
            if not tx.first_time(event["event_id"], "escalation.on_reinforcement_requested"):
                return
            self._watch(tx, event)
            state = self._locked_state(tx, event["incident_id"])
            crowd = event["crowd_size"] if event["crowd_size"] is not None else state.crowd_size
            decision = rules.on_reinforcement(
                order_center=event["center"],
                command_center=state.center,
                lead_role=self._category(state.category).lead,
                crowd_size=crowd,
                neighbours_called=self._made(
                    tx, state.incident_id, rules.once_key("neighbour", state.center)
                ),
                network=self.network,
            )
            detail = f"{event['department']}: {event['reason']}"
            outcome = self._apply(tx, state, decision, detail=detail)
        self._count(event["incident_id"], outcome)

    @handles("dispatch", "order_overdue")
    def on_order_overdue(self, payload: dict) -> None:
        """A missed deadline starts its grace: checked again at due + `overdue_grace`."""
        event = load_event("dispatch", "order_overdue", payload)
        with self.db.transaction() as tx:
            self._require_incident(tx, event["incident_id"])
            if not tx.first_time(event["event_id"], "escalation.on_order_overdue"):
                return
            self._watch(tx, event)
            order = tx.session.get(WatchedOrder, event["order_id"])
            check_at = event["due_at"] + self.network.deadlines.overdue_grace
            status = _settled(order, event["deadline"], check_at) or "pending"
            tx.session.execute(
                insert_ignoring_conflicts(tx.session, OverdueCheck.__table__).values(
                    order_id=event["order_id"],
                    incident_id=event["incident_id"],
                    center=event["center"],
                    deadline=event["deadline"],
                    due_at=event["due_at"],
                    check_at=check_at,
                    status=status,
                    resolved_at=None if status == "pending" else utcnow(),
                )
            )

    # -- the grace runs out ----------------------------------------------------

    @every("DEADLINE_SCAN_S", config.deadline_scan_s())
    def scan_overdue(self) -> None:
        """Missed deadlines still unmet after their grace move command up
        (`overdue`); each check is claimed by one instance only."""
        self.resolve_overdue(utcnow())

    def resolve_overdue(self, now: datetime) -> int:
        """Resolve the checks due by `now`; how many moved command."""
        with self.db.read() as session:
            due = session.scalars(
                select(OverdueCheck.id)
                .where(OverdueCheck.status == "pending", OverdueCheck.check_at <= now)
                .order_by(OverdueCheck.check_at, OverdueCheck.id)
                .limit(SCAN_BATCH)
            ).all()
        moved = 0
        for check_id in due:
            try:
                incident_id, outcome = self._resolve_check(check_id, now)
            except Exception as exc:
                # left pending, tried again next scan; the others still get their turn
                if not is_transient(exc):
                    log.exception("overdue check %s could not be resolved", check_id)
                    continue
                log.warning("overdue checks: %s; retrying next scan", type(exc).__name__)
                break
            self._count(incident_id, outcome)
            moved += isinstance(outcome, rules.Move)
        return moved

    def _resolve_check(self, check_id: int, now: datetime):
        with self.db.transaction() as tx:
            claimed = tx.session.execute(
                update(OverdueCheck)
                .where(OverdueCheck.id == check_id, OverdueCheck.status == "pending")
                .values(status="claimed", resolved_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed != 1:
                return None, None  # another instance has it
            check = tx.session.get(OverdueCheck, check_id)
            order = tx.session.get(WatchedOrder, check.order_id)
            settled = _settled(order, check.deadline, check.check_at)
            if settled:
                check.status = settled
                return check.incident_id, None
            state = self._locked_state(tx, check.incident_id)
            decision = rules.on_overdue_unmet(check.center, state.center, self.network)
            detail = f"{order.department}: {check.deadline} deadline {check.due_at.isoformat()}"
            outcome = self._apply(tx, state, decision, detail=detail)
            if isinstance(outcome, rules.Move):
                check.status = "escalated"
            elif isinstance(outcome, rules.NoParent):
                check.status = "refused"
            else:
                check.status = "moot"
            return check.incident_id, outcome

    # -- operators (RPC) ----------------------------------------------------------

    @api
    def escalate(
        self, incident_id: str, operator: str, reason: str, center: str | None = None
    ) -> dict:
        """上报: the center in command hands command up one level. `reason` is the
        operator's explanation; `center`, when given, is the caller's center and
        must be the one in command."""
        errors: dict = {}
        text_arg(errors, "incident_id", incident_id, 64)
        text_arg(errors, "operator", operator, 64)
        text_arg(errors, "reason", reason, 2000)
        self._center_arg(errors, "center", center, required=False)
        if errors:
            raise ValidationError(errors)
        with self.db.transaction() as tx:
            state = self._locked_state(tx, incident_id)
            move = rules.manual_escalate(state.center, self.network, caller=center)
            outcome = self._apply(tx, state, move, operator=operator, detail=reason)
            view = self._moved_view(tx, incident_id, outcome)
        self._count(incident_id, outcome)
        return view

    @api
    def assign_down(
        self, incident_id: str, to_center: str, operator: str, center: str | None = None
    ) -> dict:
        """下派: a county (or city) center hands an incident to one of its towns,
        whose units then get orders."""
        errors: dict = {}
        text_arg(errors, "incident_id", incident_id, 64)
        text_arg(errors, "to_center", to_center, 32)
        text_arg(errors, "operator", operator, 64)
        self._center_arg(errors, "center", center, required=False)
        if errors:
            raise ValidationError(errors)
        with self.db.transaction() as tx:
            state = self._locked_state(tx, incident_id)
            move = rules.assign_down_target(state.center, to_center, self.network, caller=center)
            outcome = self._apply(tx, state, move, operator=operator)
            view = self._moved_view(tx, incident_id, outcome)
        self._count(incident_id, outcome)
        return view

    @api
    def chain(self, incident_id: str) -> list[dict]:
        """The incident's command chain, oldest first."""
        with self.db.read() as session:
            return self._chain(session, incident_id)[1]

    @api
    def command(self, incident_id: str) -> dict:
        """Who commands the incident now, and how command got there."""
        with self.db.read() as session:
            state, chain = self._chain(session, incident_id)
            return {
                "incident_id": state.incident_id,
                "center": state.center,
                "level": self.network.centers[state.center].level,
                "town": state.town,
                "received_by": state.received_by,
                "category": state.category,
                "chain": chain,
            }

    @staticmethod
    def _chain(session, incident_id) -> tuple[CommandState, list[dict]]:
        errors: dict = {}
        text_arg(errors, "incident_id", incident_id, 64)
        if errors:
            raise ValidationError(errors)
        state = session.get(CommandState, incident_id)
        if state is None:
            raise NotFound(f"no incident {incident_id}")
        moves = session.scalars(
            select(CommandMove)
            .where(CommandMove.incident_id == incident_id)
            .order_by(CommandMove.seq)
        )
        return state, [move_view(m) for m in moves]

    # -- applying a decision ---------------------------------------------------------

    def _apply(
        self,
        tx: Transaction,
        state: CommandState,
        decision: rules.Decision,
        operator: str | None = None,
        detail: str | None = None,
    ) -> rules.Decision:
        """Record and announce a move, if it is still one to make; what was done.

        The caller holds the incident's row lock, so the state, the chain and
        this decision cannot change underneath.
        """
        if decision is None or isinstance(decision, rules.NoParent):
            return decision
        move = decision
        if move.from_center != state.center:
            log.info(
                "incident %s: %s from %s ignored, %s is in command",
                state.incident_id,
                move.reason,
                move.from_center,
                state.center,
            )
            return None
        if move.reason != "neighbour" and move.to_center == state.center:
            return None
        if move.reason not in ("neighbour", "assign_down") and not self.network.is_below(
            move.from_center, move.to_center
        ):
            log.error(
                "incident %s: refusing %s down from %s to %s",
                state.incident_id,
                move.reason,
                move.from_center,
                move.to_center,
            )
            return None
        if move.once_key is not None and self._made(tx, state.incident_id, move.once_key):
            return None  # this reason has moved command from this center already
        # strictly later than the previous move, whatever the instances' clocks
        at = utcnow()
        if state.command_changed_at is not None and at <= state.command_changed_at:
            at = state.command_changed_at + TICK
        category = state.category
        if move.reason == "assign_down":
            event = tx.emit(
                "incident_assigned_down",
                incident_id=state.incident_id,
                from_center=move.from_center,
                to_center=move.to_center,
                reason="assign_down",
                operator=operator,
                category=category,
                at=at,
            )
        else:
            event = tx.emit(
                "incident_escalated",
                incident_id=state.incident_id,
                from_center=move.from_center,
                to_center=move.to_center,
                reason=move.reason,
                operator=operator,
                assist_centers=list(move.assist_centers),
                category=category,
                at=at,
            )
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
                event_id=event["event_id"],
            )
        )
        state.center = move.to_center
        state.command_changed_at = at
        tx.session.flush()
        return move

    def _count(self, incident_id: str | None, outcome: rules.Decision) -> None:
        """Metrics and the log line, once the move is committed."""
        if isinstance(outcome, rules.Move):
            level = self.network.centers[outcome.to_center].level
            ESCALATIONS.labels(outcome.reason, level).inc()
            if outcome.reason == "neighbour":
                log.info(
                    "incident %s: neighbour towns %s join %s",
                    incident_id,
                    ", ".join(outcome.assist_centers),
                    outcome.from_center,
                )
            else:
                log.info(
                    "incident %s: command %s → %s (%s)",
                    incident_id,
                    outcome.from_center,
                    outcome.to_center,
                    outcome.reason,
                )
        elif isinstance(outcome, rules.NoParent):
            ESCALATIONS_REFUSED.labels(outcome.reason).inc()
            log.warning("incident %s: not escalated: %s", incident_id, outcome.message)

    # -- helpers ------------------------------------------------------------------------

    def _facts(self, event: dict) -> rules.IncidentFacts:
        """An incident as the rules see it; codes unknown to this network are poison."""
        self._category(event["category"])
        for field in ("town", "center"):
            if event[field] not in self.network.centers:
                raise InvalidEvent(f"{field} {event[field]!r} is not in this network")
        grade = event["grade"]
        if grade is not None and grade not in self.network.grades:
            raise InvalidEvent(f"grade {grade!r} is not a known grade")
        return rules.IncidentFacts(
            category=event["category"],
            town=event["town"],
            center=event["center"],
            crowd_size=event["crowd_size"],
            grade=grade,
        )

    def _category(self, code: str):
        category = self.network.categories.get(code)
        if category is None:
            raise InvalidEvent(f"category {code!r} is not in this escalation's network")
        return category

    def _center_arg(self, errors: dict, name: str, value, required: bool = True) -> None:
        text_arg(errors, name, value, 32, required=required)
        if name not in errors and value is not None and value not in self.network.centers:
            errors[name] = ["not a center of the network"]

    @staticmethod
    def _require_incident(tx: Transaction, incident_id: str) -> None:
        found = tx.session.scalar(
            select(CommandState.incident_id).where(CommandState.incident_id == incident_id)
        )
        if found is None:
            raise RetryLater(f"incident {incident_id} not yet received by escalation")

    @staticmethod
    def _locked_state(tx: Transaction, incident_id: str) -> CommandState:
        state = tx.session.get(
            CommandState, incident_id, with_for_update=True, populate_existing=True
        )
        if state is None:
            raise NotFound(f"no incident {incident_id}")
        return state

    @staticmethod
    def _made(tx: Transaction, incident_id: str, once_key: str) -> bool:
        """Whether the chain already holds the automatic move keyed `once_key`."""
        found = tx.session.scalar(
            select(CommandMove.id).where(
                CommandMove.incident_id == incident_id, CommandMove.once_key == once_key
            )
        )
        return found is not None

    @staticmethod
    def _moved_view(tx: Transaction, incident_id: str, outcome: rules.Decision) -> dict:
        """The step an operator's call just added to the chain."""
        if not isinstance(outcome, rules.Move):
            raise InvalidTransition(f"command of incident {incident_id} did not move")
        last = tx.session.scalars(
            select(CommandMove)
            .where(CommandMove.incident_id == incident_id)
            .order_by(CommandMove.seq.desc())
            .limit(1)
        ).one()
        return move_view(last)

    @staticmethod
    def _watch(tx: Transaction, event: dict) -> None:
        tx.session.execute(
            insert_ignoring_conflicts(tx.session, WatchedOrder.__table__).values(
                order_id=event["order_id"],
                incident_id=event["incident_id"],
                center=event["center"],
                department=event["department"],
                role=event["role"],
            )
        )

    @staticmethod
    def _record_time(tx: Transaction, order_id: str, column, at: datetime) -> None:
        tx.session.execute(
            update(WatchedOrder)
            .where(WatchedOrder.order_id == order_id)
            .where(column.is_(None) | (column > at))
            .values({column: at})
            .execution_options(synchronize_session=False)
        )

    @staticmethod
    def _resolve_checks(
        tx: Transaction, order_id: str, deadlines: tuple[str, ...], status: str, at: datetime
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
            .values(status=status, resolved_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def _settled(order: WatchedOrder | None, deadline: str, check_at: datetime) -> str | None:
    """`met` if the order met `deadline` by `check_at`, `moot` if it was returned
    by then, None if it is still owed."""
    if order is None:
        return None
    arrived = order.arrived_at is not None and order.arrived_at <= check_at
    accepted = order.accepted_at is not None and order.accepted_at <= check_at
    if arrived or (deadline == "accept" and accepted):
        return "met"
    if order.returned_at is not None and order.returned_at <= check_at:
        return "moot"
    return None
