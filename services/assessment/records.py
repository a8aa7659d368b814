"""What assessment remembers: one record per work order, ratings, command moves.

Events reach assessment on separate queues, so they arrive in any order and,
after a redelivery, twice. Dispatch announces each decision once
(`orders_dispatched`: the incident's facts and every order it sent); each
order's later steps come one event each. Every event therefore contributes
only its own *facts* (`order_facts`, per order of a batch through
`dispatched_orders`), and facts are combined by `merge`, which keeps the
least value reported for each field. That rule is commutative, associative
and idempotent, so any order of arrival, with any duplicates, ends in the same
record; rates are computed from these stored facts only when asked
(services/assessment/scoring.py). Nothing waits for an earlier event: an
`order_accepted` met before its `order_dispatched` simply starts the record.

An urge (催办, `order_urged`) is the one repeatable event: an order may be
urged many times, so urges are counted, not merged (`add_urge`). The count
is exact because each urge is applied once per event id: by the entrypoint
(its processed events, in the same transaction), or by `Ledger` in memory.
Whatever the order of arrival, the count is the number of distinct urges.

A rating (回访) is one per incident: the latest (`at`, then `event_id` to break
a tie) wins, whoever applies it first (`is_newer`).

`Ledger` applies whole events in memory with exactly these functions; the
service applies the same functions to database rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

# an order's dispatch facts come inside `orders_dispatched` (`dispatched_orders`)
ORDER_EVENTS = (
    "order_dispatched",
    "order_accepted",
    "order_returned",
    "order_arrived",
    "order_reported",
    "order_completed",
    "order_overdue",
    "order_cancelled",
)
# what happens to an order after its dispatch, one event each
LIFECYCLE_EVENTS = ORDER_EVENTS[1:]
# Moves of command that are not an escalation: a neighbour's units join as
# assists (command stays), or a county hands an incident down (下派).
NOT_ESCALATIONS = ("neighbour", "assign_down")
SATISFIED = ("satisfied", "basically_satisfied")

_IDENTITY = ("order_id", "incident_id", "center", "department", "role")
_DISPATCH_FACTS = ("category", "tier", "recipient", "replaces", "accept_by", "arrive_by")
_DONE_AT = {
    "order_accepted": "accepted_at",
    "order_returned": "returned_at",
    "order_arrived": "arrived_at",
    "order_reported": "reported_at",
    "order_completed": "completed_at",
    "order_cancelled": "cancelled_at",  # any cause: cancelled, reclassified, reassigned
}


@dataclass
class OrderRecord:
    """考核记录: the facts about one work order that assessment needs.

    Only the identity is known for sure; every other field stays None until
    the event that carries it arrives.
    """

    order_id: str
    incident_id: str
    center: str
    department: str
    role: str
    category: str | None = None
    tier: int | None = None
    recipient: str | None = None
    replaces: str | None = None
    dispatched_at: datetime | None = None
    accept_by: datetime | None = None
    arrive_by: datetime | None = None
    accepted_at: datetime | None = None
    arrived_at: datetime | None = None
    reported_at: datetime | None = None  # first on-scene feedback
    completed_at: datetime | None = None
    returned_at: datetime | None = None
    accept_overdue_at: datetime | None = None  # when dispatch announced it overdue
    arrive_overdue_at: datetime | None = None
    cancelled_at: datetime | None = None  # withdrawn or reassigned: never counted
    urges: int = 0  # 催办: distinct `order_urged` events

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def returned(self) -> bool:
        return self.returned_at is not None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None

    @property
    def overdue(self) -> bool:
        """Dispatch announced a missed deadline (`order_overdue`)."""
        return self.accept_overdue_at is not None or self.arrive_overdue_at is not None

    @property
    def time_to_accept_s(self) -> float | None:
        return _seconds(self.dispatched_at, self.accepted_at)

    @property
    def time_to_arrive_s(self) -> float | None:
        return _seconds(self.dispatched_at, self.arrived_at)

    @property
    def time_to_complete_s(self) -> float | None:
        return _seconds(self.dispatched_at, self.completed_at)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> OrderRecord:
        """A record of merged facts; a field no event has set keeps its default."""
        return cls(**{name: values[name] for name in RECORD_FIELDS if values.get(name) is not None})


RECORD_FIELDS = tuple(f.name for f in fields(OrderRecord))


@dataclass(frozen=True)
class Rating:
    """群众满意度回访: the citizen's rating of how an incident was handled."""

    incident_id: str
    rating: str
    operator: str
    at: datetime
    event_id: str

    @property
    def satisfied(self) -> bool:
        """`satisfied` and `basically_satisfied` both count as satisfied (满意+基本满意)."""
        return self.rating in SATISFIED


@dataclass(frozen=True)
class CommandMove:
    """One step of an incident's command chain (`incident_escalated`/`assigned_down`)."""

    event_id: str
    incident_id: str
    from_center: str
    to_center: str
    reason: str
    at: datetime

    @property
    def is_escalation(self) -> bool:
        """Command went up from `from_center` (升级/上报)."""
        return self.reason not in NOT_ESCALATIONS and self.from_center != self.to_center


@dataclass(frozen=True)
class IncidentFacts:
    incident_id: str
    center: str
    category: str
    received_at: datetime
    town: str | None = None  # for callers' rights (CONTRACT.md section 6)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def order_facts(event_type: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an order's record that one (loaded) order event sets."""
    facts = {name: event[name] for name in _IDENTITY}
    if event_type == "order_dispatched":
        facts["dispatched_at"] = event["at"]
        facts.update({name: event[name] for name in _DISPATCH_FACTS})
    elif event_type == "order_overdue":
        facts[f"{event['deadline']}_overdue_at"] = event["at"]
    elif event_type in _DONE_AT:
        facts[_DONE_AT[event_type]] = event["at"]
    elif event_type != "order_urged":  # an urge is counted by `add_urge`
        raise ValueError(f"{event_type} is not an order event")
    return facts


def dispatched_orders(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The orders of one (loaded) `orders_dispatched` batch, each shaped as the
    `order_dispatched` event `order_facts` reads (an order's `at` is its
    dispatch time; the category and incident are the batch's)."""
    return [
        {
            **order,
            "incident_id": batch["incident_id"],
            "category": batch["category"],
        }
        for order in batch["orders"]
    ]


def incident_of(batch: Mapping[str, Any]) -> IncidentFacts:
    """The incident an `orders_dispatched` batch tells of, under the center that took it."""
    return IncidentFacts(
        batch["incident_id"],
        batch["center"],
        batch["category"],
        batch["received_at"],
        batch["town"],
    )


def merge(current: Mapping[str, Any] | None, facts: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with `facts` added: each field keeps the least value reported.

    Every event of one order carries the same identity and the same dispatch
    facts, so the rule only decides between timestamps, where it keeps the
    first (a second on-scene report does not move `reported_at`). Being a
    minimum, the result does not depend on the order of merges or on repeats.
    """
    merged = dict(current or {})
    for name, value in facts.items():
        if value is None:
            continue
        old = merged.get(name)
        merged[name] = value if old is None else min(old, value)
    return merged


def add_urge(current: Mapping[str, Any] | None, facts: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with one more urge (`facts`: the `order_urged` event's
    `order_facts`). Not idempotent on purpose: the caller applies each urge
    once, by its event id."""
    merged = merge(current, facts)
    merged["urges"] = merged.get("urges", 0) + 1
    return merged


def is_newer(candidate: Rating, current: Rating | None) -> bool:
    """Whether `candidate` replaces `current` as the incident's one rating."""
    if current is None:
        return True
    return (candidate.at, candidate.event_id) > (current.at, current.event_id)


def rating_from_event(event: Mapping[str, Any]) -> Rating:
    return Rating(
        incident_id=event["incident_id"],
        rating=event["rating"],
        operator=event["operator"],
        at=event["at"],
        event_id=event["event_id"],
    )


def move_from_event(event_type: str, event: Mapping[str, Any]) -> CommandMove:
    reason = event.get("reason") or (
        "assign_down" if event_type == "incident_assigned_down" else ""
    )
    return CommandMove(
        event_id=event["event_id"],
        incident_id=event["incident_id"],
        from_center=event["from_center"],
        to_center=event["to_center"],
        reason=reason,
        at=event["at"],
    )


@dataclass
class Ledger:
    """Assessment's facts held in memory, built with the service's own rules.

    Used by tests and tools to compute what the service must answer for a
    given set of events, in whatever order and however often they come.
    """

    incidents: dict[str, IncidentFacts] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    moves: dict[str, CommandMove] = field(default_factory=dict)
    ratings: dict[str, Rating] = field(default_factory=dict)
    urges_applied: set[str] = field(default_factory=set)  # event ids, as the entrypoint keeps

    def apply(self, source: str, event_type: str, event: Mapping[str, Any]) -> None:
        """Apply one event that has been loaded through its contract."""
        if (source, event_type) == ("dispatch", "orders_dispatched"):
            self.incidents.setdefault(event["incident_id"], incident_of(event))
            for order in dispatched_orders(event):
                self._merge(order_facts("order_dispatched", order))
        elif source == "dispatch" and event_type in LIFECYCLE_EVENTS:
            self._merge(order_facts(event_type, event))
        elif (source, event_type) == ("dispatch", "order_urged"):
            if event["event_id"] not in self.urges_applied:  # once per event, as the entrypoint
                self.urges_applied.add(event["event_id"])
                facts = order_facts(event_type, event)
                self.orders[facts["order_id"]] = add_urge(self.orders.get(facts["order_id"]), facts)
        elif source == "escalation" and event_type in (
            "incident_escalated",
            "incident_assigned_down",
        ):
            move = move_from_event(event_type, event)
            self.moves[move.event_id] = move
        elif (source, event_type) == ("assessment", "satisfaction_recorded"):
            rating = rating_from_event(event)
            if is_newer(rating, self.ratings.get(rating.incident_id)):
                self.ratings[rating.incident_id] = rating
        # other events carry nothing assessment scores (the service does not
        # subscribe to them: `intake.incident_received` and single
        # `order_dispatched` events repeat what the batch says)

    def _merge(self, facts: dict[str, Any]) -> None:
        self.orders[facts["order_id"]] = merge(self.orders.get(facts["order_id"]), facts)

    def apply_all(self, events: Iterable[tuple[str, str, Mapping[str, Any]]]) -> Ledger:
        for source, event_type, event in events:
            self.apply(source, event_type, event)
        return self

    def records(self) -> list[OrderRecord]:
        return [OrderRecord.from_mapping(values) for values in self.orders.values()]
