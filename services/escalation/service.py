"""The escalation service (统一指挥): which center commands each incident.

It follows incidents and their orders, asks `rules` whether command should move
and whether the move is still one to make (`rules.vet`), records each approved
move in the chain and announces it (`incident_escalated`,
`incident_assigned_down`); dispatch then sends orders to the new center's units.
Operators move command with `escalate` and `assign_down`. Once only, with any
number of instances: each event is applied once (its entrypoint records it),
each move is decided under the incident's row lock, only from the center in
command, and an automatic reason moves command once per center (`once_key`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection

from services.escalation import domain, reporting, rules, store
from services.escalation import report_store as reports_db
from services.escalation.metrics import count
from services.escalation.models import Base, CommandState, outbox, processed_events
from services.escalation.overdue import OverdueChecks
from services.escalation.reports import InformationReports, duty_view, reporting_facts
from shared.auth import may_read, require
from shared.db import Database, UnitOfWork
from shared.dependencies import Authentication, NetworkProvider, api
from shared.errors import InvalidTransition, NotFound, RetryLater
from shared.events import utcnow
from shared.messaging import handles
from shared.metrics import EntrypointMetrics
from shared.outbox import Outbox
from shared.retention import Retention

log = logging.getLogger(__name__)


class EscalationService(OverdueChecks, InformationReports):
    name = "escalation"

    db = Database(Base.metadata, outbox, processed_events)
    outbox = Outbox()
    retention = Retention()
    auth = Authentication()
    network = NetworkProvider()
    metrics = EntrypointMetrics()

    @handles("dispatch", "orders_dispatched")
    def on_orders_dispatched(self, event: dict, tx: UnitOfWork) -> None:
        """The batch that first brings an incident decides where command starts
        (crowd, grade, competence) and whether it must be reported upward;
        every order of every batch is watched."""
        facts = domain.facts(event, self.network)
        row = domain.incident_row(event, facts)
        if store.add_incident(tx, row):
            decision = rules.initial_command(facts, self.network)
            duty = reporting.duty_on_receipt(reporting_facts(row), row["received_at"], self.network)
            if decision is not None or duty is not None:
                state = self._locked(tx, event["incident_id"])
                self._duty_from(tx, state, duty)
                self._decide(tx, state, decision)
        store.watch(tx, domain.watched_orders(event))

    @handles("intake", "incident_updated")
    def on_incident_updated(self, event: dict, tx: UnitOfWork) -> None:
        """New facts are judged again from the center now in command: a crowd
        grown to the city's threshold puts the city in command in one step;
        facts that now must be reported start the first report's clock."""
        self._require_incident(tx, event["incident_id"])
        state = self._locked(tx, event["incident_id"])
        facts = domain.facts({**event, "center": state.center}, self.network)
        before = reporting_facts(state)
        store.update_facts(state, event)
        self._reporting_after_update(tx, state, before, event["at"])
        self._decide(tx, state, rules.initial_command(facts, self.network))

    @handles("dispatch", "order_accepted")
    def on_order_accepted(self, event: dict, tx: UnitOfWork) -> None:
        self._order_step(tx, event, "accepted_at", ("accept",))

    @handles("dispatch", "order_arrived")
    def on_order_arrived(self, event: dict, tx: UnitOfWork) -> None:
        """Arrival meets the arrive deadline, and the accept one (arrival
        follows acceptance, though its event may come first)."""
        self._order_step(tx, event, "arrived_at", ("accept", "arrive"))

    @handles("dispatch", "order_returned")
    def on_order_returned(self, event: dict, tx: UnitOfWork) -> None:
        """退单: a returned order's deadlines no longer count (its replacement
        has its own); when every holder of the role has returned it, the
        parent center takes command (`all_returned`)."""
        self._require_incident(tx, event["incident_id"])
        self._order_step(tx, event, "returned_at", ("accept", "arrive"), status="moot")
        if event["all_returned"]:
            state = self._locked(tx, event["incident_id"])
            decision = rules.on_all_returned(event["center"], state.center, self.network)
            self._decide(tx, state, decision, detail=f"{event['department']}: {event['reason']}")

    @handles("dispatch", "reinforcement_requested")
    def on_reinforcement_requested(self, event: dict, tx: UnitOfWork) -> None:
        self._require_incident(tx, event["incident_id"])
        store.watch(tx, [domain.watched_order(event)])
        state = self._locked(tx, event["incident_id"])
        made = store.once_keys(tx.session, state.incident_id)
        crowd = event["crowd_size"] if event["crowd_size"] is not None else state.crowd_size
        decision = rules.on_reinforcement(
            order_center=event["center"],
            command_center=state.center,
            lead_role=domain.category(self.network, state.category).lead,
            crowd_size=crowd,
            neighbours_called=rules.once_key("neighbour", state.center) in made,
            network=self.network,
        )
        self._decide(tx, state, decision, made, detail=f"{event['department']}: {event['reason']}")

    def _order_step(self, tx, event, time_name, deadlines, status="met") -> None:
        """Accepted, arrived or returned at `at`: the checks this settles end `status`."""
        store.watch(tx, [domain.watched_order(event)])
        store.record_time(tx, event["order_id"], time_name, event["at"])
        store.settle_checks(tx, event["order_id"], deadlines, status, event["at"], utcnow())

    # -- operators (RPC) ----------------------------------------------------------

    @api(mutating=True)
    def escalate(self, incident_id: str, reason: str) -> dict:
        """上报: the center in command hands command up one level; `reason` is
        its operator's explanation."""
        center = self._commanding_center()
        domain.check_arguments(self.network, incident_id=incident_id, reason=reason)
        with self.db.transaction() as tx:
            state = self._locked(tx, incident_id)
            move = rules.manual_escalate(state.center, self.network, caller=center)
            outcome = self._decide(tx, state, move, operator=self.caller.sub, detail=reason)
            return self._moved_view(tx, incident_id, outcome)

    @api(mutating=True)
    def assign_down(self, incident_id: str, to_center: str) -> dict:
        """下派: a county (or city) center in command hands an incident to one of
        its towns, whose units then get orders."""
        center = self._commanding_center()
        domain.check_arguments(self.network, incident_id=incident_id, to_center=to_center)
        with self.db.transaction() as tx:
            state = self._locked(tx, incident_id)
            move = rules.assign_down_target(state.center, to_center, self.network, caller=center)
            outcome = self._decide(tx, state, move, operator=self.caller.sub)
            return self._moved_view(tx, incident_id, outcome)

    @api
    def chain(self, incident_id: str) -> list[dict]:
        """The incident's command chain, oldest first."""
        with self.db.read() as session:
            return self._chain(session, incident_id)[1]

    @api
    def command(self, incident_id: str) -> dict:
        """Who commands the incident now, how command got there, and the
        reports (信息报送) it owes: each duty's deadline and whether met."""
        with self.db.read() as session:
            state, chain = self._chain(session, incident_id)
            duties = [duty_view(d) for d in reports_db.duties(session, incident_id)]
            return {**domain.command_view(state, chain, self.network), "reporting": duties}

    def _chain(self, session, incident_id) -> tuple[CommandState, list[dict]]:
        domain.check_arguments(self.network, incident_id=incident_id)
        state = self._readable(session, incident_id)
        return state, [domain.move_view(m) for m in store.chain(session, incident_id)]

    def _readable(self, session, incident_id: str) -> CommandState:
        """The incident, if it exists and the caller may read it."""
        state = store.state(session, incident_id)
        if state is None:
            raise NotFound(f"no incident {incident_id}")
        case = store.case(session, state)
        require(may_read(self.caller, self.network, case), f"incident {incident_id}")
        return state

    def _commanding_center(self) -> str | None:
        """A center moves command, if in command (rules); an admin for any (None)."""
        caller = self.caller.require("center")
        return None if caller.is_admin else caller.center

    @staticmethod
    def _moved_view(tx: UnitOfWork, incident_id: str, outcome: rules.Verdict) -> dict:
        """The step an operator's call just added to the chain."""
        if not isinstance(outcome, rules.Move):
            raise InvalidTransition(f"command of incident {incident_id} did not move")
        return domain.move_view(store.last_move(tx.session, incident_id))

    def _decide(
        self,
        tx: UnitOfWork,
        state: CommandState,
        decision: rules.Decision,
        made: Collection[str] | None = None,
        operator: str | None = None,
        detail: str | None = None,
    ) -> rules.Verdict:
        """Record and announce what `rules.vet` approves of `decision` (the caller
        holds the incident's row lock); metrics and log line follow the commit."""
        if made is None and isinstance(decision, rules.Move):
            made = store.once_keys(tx.session, state.incident_id)
        verdict = rules.vet(decision, state.center, made or (), self.network)
        if isinstance(verdict, rules.Move):
            at = rules.move_at(utcnow(), state.command_changed_at)
            event_type, fields = domain.announcement(state, verdict, operator, at)
            event = tx.emit(event_type, **fields)
            store.add_move(tx, state, verdict, at, event["event_id"], operator, detail)
        tx.after_commit(functools.partial(count, state.incident_id, verdict, self.network))
        return verdict

    @staticmethod
    def _require_incident(tx: UnitOfWork, incident_id: str) -> None:
        if not store.has_incident(tx.session, incident_id):  # its batch is on its way
            raise RetryLater(f"incident {incident_id} not yet received by escalation")

    @staticmethod
    def _locked(tx: UnitOfWork, incident_id: str) -> CommandState:
        state = store.locked_state(tx, incident_id)
        if state is None:
            raise NotFound(f"no incident {incident_id}")
        return state
