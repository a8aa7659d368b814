"""The escalation service's handlers and calls against a real SQLite database, no
broker (nameko's `worker_factory`): each decision is applied once, recorded in
the chain and announced through the outbox."""

import json
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.escalation.models import WatchedOrder, outbox
from shared.auth import Caller
from shared.errors import Forbidden, NotFound, RetryLater, ValidationError
from shared.events import InvalidEvent, make_event, utcnow

CITY = "511100"
QIANWEI = "511123"
DONGSHAN = "511123101"
YUJIN = "511123102"
XIAOGU = "511123103"
LICHANG = "511129102"  # a town of another county (沐川县)

ADMIN = Caller(sub="admin-1", kind="admin")
TOWN_DUTY = Caller(sub="值班员-张", kind="center", center=DONGSHAN)
COUNTY_DUTY = Caller(sub="县值班员", kind="center", center=QIANWEI)
CITY_DUTY = Caller(sub="市值班员", kind="center", center=CITY)


def acting_as(service, caller: Caller):
    """The caller the worker's next RPCs run for: `api` asks `auth` for it."""
    service.auth.return_value = caller
    return service


def announced(database) -> list[dict]:
    with database.session() as session:
        rows = session.execute(select(outbox.c.event_type, outbox.c.payload).order_by(outbox.c.id))
        return [{"event_type": kind, **json.loads(payload)} for kind, payload in rows]


def received(incident_id="inc-1", center=DONGSHAN, town=None, orders=(), **changes) -> dict:
    """Dispatch's first decision on an incident (`orders_dispatched`), carrying its facts."""
    now = utcnow()
    data = {
        "incident_id": incident_id,
        "category": "mass.gathering",
        "request_type": "emergency",
        "town": town or center,
        "center": center,
        "crowd_size": None,
        "casualties": None,
        "grade": None,
        "received_at": now,
        "cause": "initial",
        "orders": list(orders),
    }
    data.update(changes)
    return make_event("dispatch", "orders_dispatched", **data)


def dispatched(order_id="o-1", center=DONGSHAN, department="dongshan-governance", role="lead"):
    """One order of an `orders_dispatched` batch."""
    now = utcnow()
    return {
        "order_id": order_id,
        "center": center,
        "department": department,
        "role": role,
        "recipient": "department",
        "tier": 2,
        "at": now,
        "accept_by": now,
        "arrive_by": now,
        "replaces": None,
    }


def order_event(event_type, order_id="o-1", incident_id="inc-1", center=DONGSHAN, **data):
    fields = {
        "order_id": order_id,
        "incident_id": incident_id,
        "center": center,
        "department": data.pop("department", "dongshan-governance"),
        "role": data.pop("role", "lead"),
        "operator": data.pop("operator", None),
        "at": data.pop("at", utcnow()),
    }
    return make_event("dispatch", event_type, **fields, **data)


def overdue(due_at, deadline="accept", **changes):
    return order_event("order_overdue", deadline=deadline, due_at=due_at, **changes)


def reinforcement(crowd_size=None, **changes):
    return order_event(
        "reinforcement_requested", reason="人手不足", crowd_size=crowd_size, **changes
    )


def returned(all_returned=True, **changes):
    return order_event(
        "order_returned",
        reason="不属于本单位职责",
        rerouted_to=None,
        all_returned=all_returned,
        lead_role="governance",
        served_role="governance",
        **changes,
    )


def steps(service, incident_id="inc-1"):
    return [(m["reason"], m["from_center"], m["to_center"]) for m in service.chain(incident_id)]


def sample(name, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- incidents ------------------------------------------------------------------


def test_a_crowd_of_150_hands_command_to_the_county_once_however_often_it_is_announced(
    service, database
):
    event = received(crowd_size=150)
    before = sample("linkage_escalations_total", reason="crowd_size", level="county")
    service.on_orders_dispatched(event)
    service.on_orders_dispatched(event)  # redelivered
    service.on_orders_dispatched(received(crowd_size=150))  # announced again, new event id
    assert steps(service) == [("crowd_size", DONGSHAN, QIANWEI)]
    [escalated] = announced(database)
    assert escalated["event_type"] == "incident_escalated"
    assert escalated["to_center"] == QIANWEI and escalated["category"] == "mass.gathering"
    assert sample("linkage_escalations_total", reason="crowd_size", level="county") == before + 1
    assert service.command("inc-1")["center"] == QIANWEI


def test_a_small_incident_stays_with_its_town_and_has_an_empty_chain(service, database):
    service.on_orders_dispatched(received(crowd_size=100))
    assert service.chain("inc-1") == []
    assert announced(database) == []


def test_an_incident_of_an_unknown_category_is_poison(service):
    with pytest.raises(InvalidEvent):
        service.on_orders_dispatched(received(category="no.such"))
    with pytest.raises(InvalidEvent):
        service.on_orders_dispatched(received(center="999"))


def test_an_order_event_before_its_incident_is_retried_later(service, network):
    due = utcnow()
    with pytest.raises(RetryLater):
        service.on_order_overdue(overdue(due))
    with pytest.raises(RetryLater):
        service.on_reinforcement_requested(reinforcement())
    service.on_orders_dispatched(received(orders=[dispatched()]))
    service.on_order_overdue(overdue(due))  # the retry, once the incident is known
    assert service.resolve_overdue(due + network.deadlines.overdue_grace) == 1


def test_every_order_of_a_batch_is_watched_and_a_later_batch_decides_nothing_again(
    service, database
):
    service.on_orders_dispatched(received(crowd_size=150, orders=[dispatched()]))
    county = [
        dispatched("o-2", QIANWEI, "qianwei-politics"),
        dispatched("o-3", QIANWEI, "qianwei-police", "assist"),
    ]
    service.on_orders_dispatched(received(crowd_size=150, cause="crowd_size", orders=county))
    service.on_orders_dispatched(received(crowd_size=150, cause="reroute", orders=[]))
    assert steps(service) == [("crowd_size", DONGSHAN, QIANWEI)]
    assert [e["reason"] for e in announced(database)] == ["crowd_size"]
    with database.session() as session:
        watched = session.execute(
            select(
                WatchedOrder.order_id,
                WatchedOrder.incident_id,
                WatchedOrder.center,
                WatchedOrder.department,
                WatchedOrder.role,
            ).order_by(WatchedOrder.order_id)
        ).all()
    assert [tuple(row) for row in watched] == [
        ("o-1", "inc-1", DONGSHAN, "dongshan-governance", "lead"),
        ("o-2", "inc-1", QIANWEI, "qianwei-politics", "lead"),
        ("o-3", "inc-1", QIANWEI, "qianwei-police", "assist"),
    ]


# -- reinforcement --------------------------------------------------------------------


def test_reinforcement_brings_neighbours_first_then_the_county_then_nothing_more(service, database):
    service.on_orders_dispatched(received())
    service.on_reinforcement_requested(reinforcement())
    service.on_reinforcement_requested(reinforcement())
    service.on_reinforcement_requested(reinforcement())  # the town no longer commands
    assert steps(service) == [
        ("neighbour", DONGSHAN, DONGSHAN),
        ("reinforcement", DONGSHAN, QIANWEI),
    ]
    first = service.chain("inc-1")[0]
    assert first["assist_centers"] == [YUJIN, XIAOGU]
    assert first["detail"] == "dongshan-governance: 人手不足"
    events = announced(database)
    assert [e["reason"] for e in events] == ["neighbour", "reinforcement"]
    assert events[0]["assist_centers"] == [YUJIN, XIAOGU]


def test_a_request_counting_more_than_the_county_threshold_skips_the_neighbours(service):
    service.on_orders_dispatched(received())
    service.on_reinforcement_requested(reinforcement(crowd_size=101))
    assert steps(service) == [("reinforcement", DONGSHAN, QIANWEI)]


def test_a_request_without_a_count_uses_the_incidents_crowd(service):
    service.on_orders_dispatched(received(center=QIANWEI, town=DONGSHAN, crowd_size=300))
    service.on_reinforcement_requested(reinforcement(center=QIANWEI))
    assert steps(service) == [("reinforcement", QIANWEI, CITY)]


# -- all returned -------------------------------------------------------------------------


def test_when_every_holder_returned_the_order_the_county_takes_command(service):
    service.on_orders_dispatched(received())
    service.on_order_returned(returned(all_returned=False))
    assert steps(service) == []
    event = returned(order_id="o-2")
    service.on_order_returned(event)
    service.on_order_returned(event)
    assert steps(service) == [("all_returned", DONGSHAN, QIANWEI)]


def test_at_the_city_nothing_is_left_above_the_move_is_refused_and_counted(service, database):
    service.on_orders_dispatched(received(crowd_size=600))
    before = sample("linkage_escalations_refused_total", reason="all_returned")
    service.on_order_returned(returned(center=CITY, department="leshan-politics"))
    assert steps(service) == [("crowd_size", DONGSHAN, CITY)]
    assert len(announced(database)) == 1
    assert sample("linkage_escalations_refused_total", reason="all_returned") == before + 1


# -- overdue ---------------------------------------------------------------------------------


def test_a_deadline_unmet_after_its_grace_moves_command_up_once(service, network, database):
    service.on_orders_dispatched(received())
    due = utcnow() - timedelta(seconds=1)
    event = overdue(due)
    service.on_order_overdue(event)
    service.on_order_overdue(event)
    grace = network.deadlines.overdue_grace
    assert service.resolve_overdue(due + grace - timedelta(seconds=1)) == 0
    assert service.resolve_overdue(due + grace) == 1
    assert service.resolve_overdue(due + grace + timedelta(seconds=5)) == 0
    assert steps(service) == [("overdue", DONGSHAN, QIANWEI)]
    assert [e["reason"] for e in announced(database)] == ["overdue"]


@pytest.mark.parametrize(
    "request_type,role,deadline",
    [
        ("emergency", "assist", "accept"),  # an assist is urged by dispatch
        ("consultation", "lead", "accept"),  # not help or emergency
        ("complaint", "lead", "reply"),  # a reply deadline never moves command
    ],
)
def test_only_a_help_or_emergency_lead_order_moves_command_when_overdue(
    service, network, database, request_type, role, deadline
):
    service.on_orders_dispatched(received(request_type=request_type))
    due = utcnow() - timedelta(seconds=1)
    service.on_order_overdue(overdue(due, deadline=deadline, role=role))
    assert service.resolve_overdue(due + network.deadlines.overdue_grace) == 0
    assert steps(service) == [] and announced(database) == []


def test_a_deadline_met_within_its_grace_moves_nothing(service, network):
    service.on_orders_dispatched(received())
    due = utcnow()
    service.on_order_overdue(overdue(due))
    service.on_order_accepted(order_event("order_accepted", at=due + timedelta(seconds=30)))
    assert service.resolve_overdue(due + network.deadlines.overdue_grace) == 0
    assert steps(service) == []


def test_an_acceptance_that_overtakes_the_overdue_notice_still_counts(service, network):
    service.on_orders_dispatched(received())
    due = utcnow()
    service.on_order_accepted(order_event("order_accepted", at=due + timedelta(seconds=30)))
    service.on_order_overdue(overdue(due))
    assert service.resolve_overdue(due + network.deadlines.overdue_grace) == 0
    assert steps(service) == []


def test_acceptance_does_not_meet_an_arrival_deadline_but_arrival_does(service, network):
    service.on_orders_dispatched(received())
    due = utcnow()
    service.on_order_overdue(overdue(due, deadline="arrive"))
    service.on_order_accepted(order_event("order_accepted", at=due))
    service.on_order_overdue(overdue(due, deadline="arrive", order_id="o-2"))
    service.on_order_arrived(order_event("order_arrived", order_id="o-2", at=due))
    assert service.resolve_overdue(due + network.deadlines.overdue_grace) == 1
    assert steps(service) == [("overdue", DONGSHAN, QIANWEI)]


def test_a_catch_up_after_the_grace_does_not_stop_the_move(service, network):
    service.on_orders_dispatched(received())
    due = utcnow()
    grace = network.deadlines.overdue_grace
    service.on_order_overdue(overdue(due))
    service.on_order_accepted(order_event("order_accepted", at=due + grace + timedelta(seconds=1)))
    assert service.resolve_overdue(due + grace + timedelta(seconds=2)) == 1


def test_an_overdue_town_order_after_command_went_up_moves_nothing(service, network):
    service.on_orders_dispatched(received(crowd_size=150))
    due = utcnow()
    service.on_order_overdue(overdue(due))
    assert service.resolve_overdue(due + network.deadlines.overdue_grace) == 0
    assert steps(service) == [("crowd_size", DONGSHAN, QIANWEI)]


def test_two_overdue_town_orders_move_command_once(service, network):
    service.on_orders_dispatched(received())
    due = utcnow()
    service.on_order_overdue(overdue(due))
    service.on_order_overdue(overdue(due, order_id="o-2", department="dongshan-police"))
    assert service.resolve_overdue(due + network.deadlines.overdue_grace) == 1
    assert steps(service) == [("overdue", DONGSHAN, QIANWEI)]


def test_a_returned_orders_deadlines_no_longer_count(service, network):
    service.on_orders_dispatched(received())
    due = utcnow()
    service.on_order_overdue(overdue(due))
    service.on_order_returned(returned(all_returned=False, at=due + timedelta(seconds=1)))
    assert service.resolve_overdue(due + network.deadlines.overdue_grace) == 0


# -- operators ---------------------------------------------------------------------------------


def test_an_operator_escalates_and_a_county_hands_back_down(service, database):
    service.on_orders_dispatched(received())
    step = acting_as(service, TOWN_DUTY).escalate("inc-1", "现场失控")
    assert step["reason"] == "manual" and step["to_center"] == QIANWEI
    assert step["operator"] == "值班员-张" and step["detail"] == "现场失控"
    with pytest.raises(Forbidden):
        service.escalate("inc-1", "再次上报")  # double click
    down = acting_as(service, COUNTY_DUTY).assign_down("inc-1", DONGSHAN)
    assert down["reason"] == "assign_down" and down["to_center"] == DONGSHAN
    assert down["operator"] == "县值班员"
    acting_as(service, TOWN_DUTY).escalate("inc-1", "又失控了")  # may repeat
    assert steps(service) == [
        ("manual", DONGSHAN, QIANWEI),
        ("assign_down", QIANWEI, DONGSHAN),
        ("manual", DONGSHAN, QIANWEI),
    ]
    kinds = [e["event_type"] for e in announced(database)]
    assert kinds == ["incident_escalated", "incident_assigned_down", "incident_escalated"]
    assert [e["operator"] for e in announced(database)] == ["值班员-张", "县值班员", "值班员-张"]
    times = [m["at"] for m in service.chain("inc-1")]
    assert times == sorted(times) and len(set(times)) == 3


def test_escalating_at_the_city_is_refused_with_a_clear_message(service):
    service.on_orders_dispatched(received(crowd_size=500))
    with pytest.raises(ValidationError) as error:
        service.escalate("inc-1", "why")
    assert "no parent" in str(error.value)


def test_assign_down_outside_the_center_in_command_is_forbidden_or_invalid(service):
    service.on_orders_dispatched(received(center=QIANWEI, town=DONGSHAN))
    with pytest.raises(ValidationError):
        service.assign_down("inc-1", QIANWEI)
    with pytest.raises(Forbidden):
        service.assign_down("inc-1", LICHANG)  # a town of another county
    with pytest.raises(Forbidden):
        acting_as(service, CITY_DUTY).assign_down("inc-1", DONGSHAN)  # not in command
    with pytest.raises(Forbidden):
        acting_as(service, TOWN_DUTY).escalate("inc-1", "越级")  # not in command either
    assert steps(acting_as(service, ADMIN)) == []


@pytest.mark.parametrize(
    "caller",
    [
        Caller(sub="水务-李", kind="department", center=QIANWEI, department="qianwei-water"),
        Caller(sub="审计-周", kind="auditor", center=QIANWEI),
        Caller(sub="12345", kind="platform", source_systems=frozenset({"12345-hotline"})),
    ],
    ids=lambda caller: caller.kind,
)
def test_only_a_center_or_an_admin_moves_command(service, database, caller):
    service.on_orders_dispatched(received(center=QIANWEI, town=DONGSHAN))
    acting_as(service, caller)
    with pytest.raises(Forbidden):
        service.escalate("inc-1", "现场失控")
    with pytest.raises(Forbidden):
        service.assign_down("inc-1", DONGSHAN)
    assert steps(acting_as(service, ADMIN)) == [] and announced(database) == []


def test_a_center_of_another_county_may_not_read_the_chain(service):
    service.on_orders_dispatched(received(crowd_size=150))
    muchuan = Caller(sub="沐川值班员", kind="center", center="511129")
    with pytest.raises(Forbidden):
        acting_as(service, muchuan).chain("inc-1")
    assert [m["to_center"] for m in acting_as(service, COUNTY_DUTY).chain("inc-1")] == [QIANWEI]
    assert acting_as(service, TOWN_DUTY).command("inc-1")["center"] == QIANWEI


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.escalate("", "why"), "incident_id"),
        (lambda s: s.escalate("inc-1", "why\x00"), "reason"),
        (lambda s: s.escalate("inc-1", "x" * 2001), "reason"),
        (lambda s: s.escalate("inc-1", None), "reason"),
        (lambda s: s.assign_down("inc-1", 42), "to_center"),
        (lambda s: s.assign_down("inc-1", "nowhere"), "to_center"),
        (lambda s: s.chain(None), "incident_id"),
    ],
)
def test_bad_arguments_are_validation_errors_naming_the_field(service, call, field):
    service.on_orders_dispatched(received(center=QIANWEI, town=DONGSHAN))
    with pytest.raises(ValidationError) as error:
        call(service)
    assert field in error.value.errors


def test_an_unknown_incident_is_not_found(service):
    for call in (
        lambda: service.chain("nope"),
        lambda: service.escalate("nope", "why"),
        lambda: service.assign_down("nope", DONGSHAN),
    ):
        with pytest.raises(NotFound):
            call()
