"""Events in any order, any number of times, give the same records and scores."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.assessment import records as rec
from services.assessment.scoring import assess
from shared.events import RATINGS, load_event
from shared.network import DEFAULT_WEIGHTS
from tests.unit.assessment.factory import (
    assigned_down,
    dispatched,
    escalated,
    one_decision,
    order_story,
    rating,
    replay,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DONGSHAN = "511123101"
YUJIN = "511123102"
COUNTY = "511123"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
SINCE = datetime(2026, 11, 1, tzinfo=SHANGHAI)
UNTIL = datetime(2026, 12, 1, tzinfo=SHANGHAI)
DEPARTMENTS = {
    DONGSHAN: ["dongshan-water", "dongshan-power", "dongshan-fire", "dongshan-police"],
    YUJIN: ["yujin-water", "yujin-power"],
}

order_plans = st.fixed_dictionaries(
    {
        "center": st.sampled_from(sorted(DEPARTMENTS)),
        "slot": st.integers(0, 3),
        "tier": st.sampled_from([1, 2]),
        "dispatched_after_s": st.integers(0, 40 * 24 * 3600),  # some fall outside the window
        "accept": st.sampled_from([None, 30, 299, 300, 301, 1200]),
        "arrive": st.sampled_from([None, 900, 1800, 2400, 3000]),
        "complete": st.sampled_from([None, 3600, 86400]),
        "returned": st.sampled_from([None, None, 100, 900]),
        "reports": st.lists(st.sampled_from([1000, 1500, 2000]), max_size=2),
        "overdue": st.sampled_from([(), ("accept",), ("arrive",), ("accept", "arrive")]),
        "urges": st.lists(st.sampled_from([60, 400, 2000]), max_size=3),
        "cancelled": st.sampled_from([None, None, None, 200, 5000]),
        "cancel_cause": st.sampled_from(["cancelled", "reclassified", "reassigned"]),
    }
)
incident_plans = st.fixed_dictionaries(
    {
        "orders": st.lists(order_plans, min_size=1, max_size=3),
        "ratings": st.lists(
            st.tuples(st.sampled_from(RATINGS), st.integers(0, 5 * 24 * 3600)), max_size=3
        ),
        "escalate": st.sampled_from([None, "overdue", "neighbour", "assign_down"]),
        "split": st.integers(0, 2),
    }
)


def scenario(plans: list[dict]) -> list[tuple]:
    events = []
    for n, plan in enumerate(plans):
        incident = f"i{n}"
        home = plan["orders"][0]["center"]
        stories = []
        seen = set()
        for k, order in enumerate(plan["orders"]):
            departments = DEPARTMENTS[order["center"]]
            department = departments[order["slot"] % len(departments)]
            if (order["center"], department) in seen:
                continue  # dispatch sends one order per department and center
            seen.add((order["center"], department))
            lifecycle = {name: order[name] for name in ("accept", "arrive", "complete", "returned")}
            if lifecycle["returned"] is not None:  # a returned order goes no further
                lifecycle.update(arrive=None, complete=None)
            stories.append(
                order_story(
                    f"o{n}-{k}",
                    incident,
                    department,
                    T0 + timedelta(seconds=order["dispatched_after_s"]),
                    center=order["center"],
                    home=home,
                    received_at=T0,
                    role="lead" if k == 0 else "assist",
                    tier=order["tier"],
                    reports=order["reports"],
                    overdue=order["overdue"],
                    urges=order["urges"],
                    cancelled=order["cancelled"],
                    cancel_cause=order["cancel_cause"],
                    **lifecycle,
                )
            )
        # the first orders in one decision, the others in a later one
        split = plan["split"] % len(stories) + 1
        events += one_decision(*stories[:split])
        if stories[split:]:
            events += one_decision(*stories[split:], cause="reroute")
        for value, after_s in plan["ratings"]:
            events.append(rating(incident, value, T0 + timedelta(days=2, seconds=after_s)))
        if plan["escalate"] == "assign_down":
            events.append(assigned_down(incident, COUNTY, home, T0))
        elif plan["escalate"]:
            target = COUNTY if plan["escalate"] == "overdue" else home
            events.append(escalated(incident, home, target, T0, reason=plan["escalate"]))
    if plans and plans[0]["ratings"]:  # an incident no unit could take, rated all the same
        events.append(dispatched("i-none", DONGSHAN, T0))
        events.append(rating("i-none", "satisfied", T0 + timedelta(days=1)))
    return events


def figures(ledger: rec.Ledger) -> dict:
    ratings = {i: r.rating for i, r in ledger.ratings.items()}
    return {
        center: assess(
            center,
            departments,
            ledger.records(),
            ratings=ratings,
            moves=ledger.moves.values(),
            weights=DEFAULT_WEIGHTS,
            since=SINCE,
            until=UNTIL,
        )
        for center, departments in DEPARTMENTS.items()
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=st.lists(incident_plans, min_size=1, max_size=6), data=st.data())
def test_shuffled_and_duplicated_events_give_the_same_scores(plans, data):
    events = scenario(plans)
    expected_ledger = replay(events)
    expected = figures(expected_ledger)

    repeats = data.draw(st.lists(st.sampled_from(range(len(events))), max_size=len(events)))
    delivered = data.draw(st.permutations(events + [events[i] for i in repeats]))
    ledger = replay(delivered)

    assert figures(ledger) == expected
    assert {k: rec.OrderRecord.from_mapping(v) for k, v in ledger.orders.items()} == {
        k: rec.OrderRecord.from_mapping(v) for k, v in expected_ledger.orders.items()
    }
    assert ledger.ratings == expected_ledger.ratings
    assert ledger.incidents == expected_ledger.incidents


def test_each_urge_counts_once_whatever_the_order_and_repeats():
    story = order_story(
        "o1", "i1", "dongshan-water", T0, center=DONGSHAN, urges=[60, 60, 400], cancelled=900
    )
    batch, first, second, third, cancelled = story
    for delivered in (story, [third, cancelled, first, second, first, batch, third, batch]):
        [record] = replay(delivered).records()
        assert record.urges == 3 and record.cancelled_at == T0 + timedelta(seconds=900)
    [record] = replay([second, second]).records()  # before its dispatch: starts the record
    assert record.urges == 1 and record.dispatched_at is None


def test_an_urge_adds_one_and_keeps_every_merged_fact():
    batch, urge = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, urges=[60])
    [dispatch] = rec.dispatched_orders(load_event(*batch))
    facts = rec.order_facts("order_dispatched", dispatch)
    urge_facts = rec.order_facts("order_urged", load_event(*urge))
    urged = rec.add_urge(rec.add_urge(facts, urge_facts), urge_facts)
    assert urged == {**facts, "urges": 2}


def test_merge_keeps_the_first_time_whatever_the_order():
    story = order_story(
        "o1",
        "i1",
        "dongshan-water",
        T0,
        center=DONGSHAN,
        accept=60,
        arrive=600,
        reports=[1200, 900],
    )
    batch, *steps = [(t, load_event(s, t, p)) for s, t, p in story]
    [dispatch] = rec.dispatched_orders(batch[1])
    facts = [rec.order_facts("order_dispatched", dispatch)]
    facts += [rec.order_facts(t, event) for t, event in steps]
    forward, backward = {}, {}
    for f in facts:
        forward = rec.merge(forward, f)
    for f in reversed(facts + facts):
        backward = rec.merge(backward, f)
    assert forward == backward
    assert forward["reported_at"] == T0 + timedelta(seconds=900)
    assert forward["accepted_at"] == T0 + timedelta(seconds=60)


def test_an_accepted_event_before_the_dispatch_starts_the_record():
    batch, accepted = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, accept=60)
    ledger = replay([accepted])
    [record] = ledger.records()
    assert record.accepted_at is not None and record.dispatched_at is None
    ledger.apply(batch[0], batch[1], load_event(*batch))
    [record] = ledger.records()
    assert record.dispatched_at == T0 and record.time_to_accept_s == 60


def test_the_latest_rating_wins_and_an_equal_time_is_decided_by_event_id():
    first = rec.Rating("i1", "satisfied", "op", T0, "a")
    later = rec.Rating("i1", "dissatisfied", "op", T0 + timedelta(seconds=1), "0")
    same_time = rec.Rating("i1", "dissatisfied", "op", T0, "b")
    assert rec.is_newer(first, None)
    assert rec.is_newer(later, first) and not rec.is_newer(first, later)
    assert rec.is_newer(same_time, first) and not rec.is_newer(first, same_time)
    assert not rec.is_newer(first, first)  # a duplicate changes nothing


def test_a_batch_gives_each_order_the_facts_order_dispatched_gave():
    lead = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, home=DONGSHAN)
    assist = order_story(
        "o2", "i1", "yujin-water", T0 + timedelta(minutes=1), center=YUJIN, role="assist", tier=2
    )
    [batch] = one_decision(lead, assist)
    event = load_event(*batch)
    orders = {o["order_id"]: o for o in rec.dispatched_orders(event)}
    facts = rec.order_facts("order_dispatched", orders["o2"])
    assert facts == {
        "order_id": "o2",
        "incident_id": "i1",
        "center": YUJIN,
        "department": "yujin-water",
        "role": "assist",
        "dispatched_at": T0 + timedelta(minutes=1),
        "category": "water.burst_main",
        "tier": 2,
        "recipient": "department",
        "replaces": None,
        "accept_by": T0 + timedelta(minutes=1, seconds=300),
        "arrive_by": T0 + timedelta(minutes=1, seconds=2400),
    }
    ledger = replay([batch, batch])
    assert ledger.incidents["i1"] == rec.IncidentFacts(
        "i1", DONGSHAN, "water.burst_main", T0, DONGSHAN
    )
    assert sorted(ledger.orders) == ["o1", "o2"]


def test_a_batch_without_orders_makes_the_incident_known():
    ledger = replay([dispatched("i1", DONGSHAN, T0)])
    assert ledger.incidents["i1"].center == DONGSHAN and ledger.orders == {}
