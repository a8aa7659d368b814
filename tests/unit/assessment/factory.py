"""Events for assessment tests, built and dumped through the real contracts.

An incident and its orders reach assessment as dispatch's decision
(`orders_dispatched`); each order's later steps follow one event each.

Each helper returns `(source, event_type, payload)` triples with the payload
exactly as it travels on the wire (`shared.events.make_event`), so a test can
publish them to RabbitMQ or replay them in memory through `replay`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from services.assessment.records import Ledger
from shared.events import load_event, make_event

Event = tuple[str, str, dict]

ACCEPT_S = 300
ARRIVE_S = {1: 1800, 2: 2400}


def dispatched(
    incident_id: str,
    center: str,
    at: datetime,
    orders: Sequence[dict] = (),
    *,
    cause: str = "initial",
    category: str = "water.burst_main",
) -> Event:
    """One dispatch decision (`orders_dispatched`): the incident, taken by
    `center` at `at`, and the orders sent (none: no competent unit)."""
    payload = make_event(
        "dispatch",
        "orders_dispatched",
        incident_id=incident_id,
        category=category,
        request_type="help",
        town=center,
        center=center,
        crowd_size=None,
        casualties=None,
        grade=None,
        received_at=at,
        cause=cause,
        orders=list(orders),
    )
    return ("dispatch", "orders_dispatched", payload)


def one_decision(*stories: list[Event], cause: str = "initial") -> list[Event]:
    """Stories of one incident's orders (`order_story`) sent by one decision:
    their one-order batches become one batch."""
    batches = [load_event(*story[0]) for story in stories]
    first = batches[0]
    orders = [order for batch in batches for order in batch["orders"]]
    batch = dispatched(
        first["incident_id"], first["center"], first["received_at"], orders, cause=cause
    )
    return [batch] + [event for story in stories for event in story[1:]]


def order_story(
    order_id: str,
    incident_id: str,
    department: str,
    dispatched_at: datetime,
    *,
    center: str,
    home: str | None = None,
    received_at: datetime | None = None,
    cause: str = "initial",
    role: str = "lead",
    tier: int = 1,
    accept: float | None = None,
    arrive: float | None = None,
    complete: float | None = None,
    returned: float | None = None,
    reports: Sequence[float] = (),
    overdue: Sequence[str] = (),
    urges: Sequence[float] = (),
    cancelled: float | None = None,
    cancel_cause: str = "cancelled",
    replaced_by: str | None = None,
    replaces: str | None = None,
) -> list[Event]:
    """The events of one order: the batch that sent it (an incident taken by
    `home`, default `center`, at `received_at`, default the dispatch time),
    then what followed; times are seconds after dispatch. Each of `urges` is
    one 催办; `cancelled` withdraws the order (`cancel_cause`: cancelled,
    reclassified, or reassigned to `replaced_by`)."""

    def at(seconds: float) -> datetime:
        return dispatched_at + timedelta(seconds=seconds)

    common = {
        "order_id": order_id,
        "incident_id": incident_id,
        "center": center,
        "department": department,
        "role": role,
    }

    def event(event_type: str, seconds: float, operator: str | None = "op", **data) -> Event:
        payload = make_event(
            "dispatch", event_type, **common, operator=operator, at=at(seconds), **data
        )
        return ("dispatch", event_type, payload)

    due = {"accept": at(ACCEPT_S), "arrive": at(ARRIVE_S[tier])}
    order = {
        **{k: v for k, v in common.items() if k != "incident_id"},
        "recipient": "department",
        "tier": tier,
        "at": dispatched_at,
        "accept_by": due["accept"],
        "arrive_by": due["arrive"],
        "replaces": replaces,
    }
    events = [
        dispatched(incident_id, home or center, received_at or dispatched_at, [order], cause=cause)
    ]
    if accept is not None:
        events.append(event("order_accepted", accept))
    if returned is not None:
        events.append(
            event(
                "order_returned",
                returned,
                reason="不属于本单位职责",
                rerouted_to=None,
                all_returned=False,
                lead_role="water",
                served_role="water",
            )
        )
    if arrive is not None:
        events.append(event("order_arrived", arrive))
    for seconds in reports:
        events.append(event("order_reported", seconds, note="现场已控制"))
    if complete is not None:
        events.append(event("order_completed", complete, result="已处置"))
    for deadline in overdue:
        seconds = (due[deadline] - dispatched_at).total_seconds() + 1
        events.append(
            event("order_overdue", seconds, operator=None, deadline=deadline, due_at=due[deadline])
        )
    for n, seconds in enumerate(urges):
        automatic = n % 2 == 1  # by an operator, then by the deadline scan, in turn
        events.append(
            event(
                "order_urged",
                seconds,
                operator=None if automatic else "op",
                note="请尽快处置",
                automatic=automatic,
            )
        )
    if cancelled is not None:
        events.append(
            event(
                "order_cancelled",
                cancelled,
                reason="改派" if cancel_cause == "reassigned" else "误派",
                cause=cancel_cause,
                replaced_by=replaced_by,
            )
        )
    return events


def rating(incident_id: str, value: str, at: datetime, operator: str = "op-callback") -> Event:
    payload = make_event(
        "assessment",
        "satisfaction_recorded",
        incident_id=incident_id,
        rating=value,
        operator=operator,
        at=at,
    )
    return ("assessment", "satisfaction_recorded", payload)


def escalated(
    incident_id: str, from_center: str, to_center: str, at: datetime, reason: str = "overdue"
) -> Event:
    payload = make_event(
        "escalation",
        "incident_escalated",
        incident_id=incident_id,
        from_center=from_center,
        to_center=to_center,
        reason=reason,
        operator=None,
        assist_centers=[],
        category="water.burst_main",
        at=at,
    )
    return ("escalation", "incident_escalated", payload)


def assigned_down(incident_id: str, from_center: str, to_center: str, at: datetime) -> Event:
    payload = make_event(
        "escalation",
        "incident_assigned_down",
        incident_id=incident_id,
        from_center=from_center,
        to_center=to_center,
        operator="op-county",
        category="water.burst_main",
        at=at,
    )
    return ("escalation", "incident_assigned_down", payload)


def replay(events: Iterable[Event]) -> Ledger:
    """Load every payload through its contract, as the service does, and apply it."""
    return Ledger().apply_all(
        (source, event_type, load_event(source, event_type, payload))
        for source, event_type, payload in events
    )


def worked_example(center: str, t0: datetime) -> list[Event]:
    """The scoring.py docstring's example: water utility and power supply."""
    events: list[Event] = []
    for i in range(10):
        incident = f"w{i}"
        if i < 2:  # returned within the acceptance deadline, never accepted
            story = {"returned": 120}
        else:
            story = {
                "accept": 60 if i < 8 else 400,  # 6 on time, 2 late
                "arrive": 1200 if i < 9 else 2000,  # 7 on time, 1 late
                "complete": 3600 if i < 8 else None,  # 6 completed
                "urges": {8: [301], 9: [301, 360]}.get(i, []),  # the 2 late: 3 urges
            }
        events += order_story(f"ow{i}", incident, "dongshan-water", t0, center=center, **story)
    # urged, then reassigned to the power supply (its order op3): counts nothing
    events += order_story(
        "ow10",
        "p3",
        "dongshan-water",
        t0,
        center=center,
        urges=[120],
        cancelled=180,
        cancel_cause="reassigned",
        replaced_by="op3",
    )
    rated = {
        "w0": "dissatisfied",  # returned: does not count for the water utility
        "w2": "satisfied",
        "w3": "satisfied",
        "w4": "satisfied",
        "w5": "basically_satisfied",
        "w6": "dissatisfied",
    }
    for incident, value in rated.items():
        events.append(rating(incident, value, t0 + timedelta(days=1)))
    for i in range(4):
        incident = f"p{i}"
        events += order_story(
            f"op{i}",
            incident,
            "dongshan-power",
            t0 + timedelta(seconds=180 if i == 3 else 0),
            center=center,
            received_at=t0,
            cause="reassigned" if i == 3 else "initial",
            accept=60,
            arrive=1200 if i < 3 else 2000,
            complete=3600,
            replaces="ow10" if i == 3 else None,
        )
    return events


def report_overdue(incident_id: str, center: str, kind: str, due_at: datetime) -> Event:
    """Escalation's `report_overdue`: `center` (a town's) missed the duty."""
    payload = make_event(
        "escalation",
        "report_overdue",
        incident_id=incident_id,
        town=center,
        center=center,
        kind=kind,
        due_at=due_at,
        at=due_at + timedelta(seconds=5),
    )
    return ("escalation", "report_overdue", payload)


def report_filed(
    incident_id: str,
    center: str,
    kind: str,
    at: datetime,
    answers: Sequence[tuple[str, datetime]] = (),
    *,
    report_id: str | None = None,
) -> Event:
    """Escalation's `report_filed` by the town's center, answering the duties
    `answers` ((kind, due_at) pairs; late when filed after due_at)."""
    payload = make_event(
        "escalation",
        "report_filed",
        report_id=report_id or f"r-{incident_id}-{kind}-{at.timestamp():.0f}",
        incident_id=incident_id,
        kind=kind,
        town=center,
        owed_by=center,
        filed_by=center,
        recipients=["511123", "511100"],
        operator="duty-officer",
        at=at,
        answers=[{"kind": k, "due_at": due, "late": at > due} for k, due in answers],
    )
    return ("escalation", "report_filed", payload)
