"""The score formula (services/assessment/scoring.py), its worked example and edges."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.assessment import scoring
from services.assessment.records import OrderRecord
from shared.network import DEFAULT_WEIGHTS, load_network, parse_network
from tests.conftest import sample_network
from tests.unit.assessment.factory import (
    assigned_down,
    escalated,
    order_story,
    rating,
    replay,
    worked_example,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DONGSHAN = "511123101"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
SINCE = datetime(2026, 11, 1, tzinfo=SHANGHAI)
UNTIL = datetime(2026, 12, 1, tzinfo=SHANGHAI)
DEPARTMENTS = ["dongshan-water", "dongshan-power", "dongshan-fire"]


def assess(ledger, weights=DEFAULT_WEIGHTS, departments=DEPARTMENTS, center=DONGSHAN, **window):
    return scoring.assess(
        center,
        departments,
        ledger.records(),
        ratings={i: r.rating for i, r in ledger.ratings.items()},
        moves=ledger.moves.values(),
        weights=weights,
        since=window.get("since", SINCE),
        until=window.get("until", UNTIL),
    )


def rows_by_department(result):
    return {row["department"]: row for row in result["rows"]}


def test_the_worked_example_of_the_docstring():
    rows = rows_by_department(assess(replay(worked_example(DONGSHAN, T0))))
    water, power, fire = rows["dongshan-water"], rows["dongshan-power"], rows["dongshan-fire"]

    assert water["orders"] == 10 and water["returns"] == 2 and water["completed"] == 6
    assert water["satisfaction_rate"] == pytest.approx(0.8)
    assert (water["rated"], water["satisfied"]) == (5, 4)
    assert water["accepted_on_time_rate"] == pytest.approx(0.75)
    assert (water["accepted_on_time"], water["accept_judged"]) == (6, 8)
    assert water["arrived_on_time_rate"] == pytest.approx(0.875)
    assert water["completion_rate"] == pytest.approx(0.75)
    assert water["return_rate"] == pytest.approx(0.2)
    assert water["urges"] == 3 and water["urge_rate"] == pytest.approx(3 / 8)
    assert water["score"] == 78.41

    assert power["orders"] == 4 and power["satisfaction_rate"] is None
    assert power["accepted_on_time_rate"] == 1 and power["arrived_on_time_rate"] == 0.75
    assert power["urges"] == 0 and power["score"] == 92.86

    assert fire["orders"] == 0 and fire["score"] is None
    assert [
        (r["department"], r["rank"]) for r in assess(replay(worked_example(DONGSHAN, T0)))["rows"]
    ] == [("dongshan-power", 1), ("dongshan-water", 2), ("dongshan-fire", 3)]


def test_the_sample_networks_weights_are_the_worked_examples():
    assert load_network().weights == DEFAULT_WEIGHTS
    rows = rows_by_department(assess(replay(worked_example(DONGSHAN, T0)), load_network().weights))
    assert rows["dongshan-water"]["score"] == 78.41


def test_weights_come_from_the_network_file():
    raw = sample_network()
    raw["assessment"] = {
        "weights": {
            "satisfaction": 0.6,
            "accepted_on_time": 0.1,
            "arrived_on_time": 0.1,
            "completion": 0.1,
            "returns": 0.1,
        }
    }
    weights = parse_network(raw).weights
    rows = rows_by_department(assess(replay(worked_example(DONGSHAN, T0)), weights))
    # u's weight is URGES_WEIGHT, 0.1: the network file sets the other five
    # 100 × (0.6×0.8 + 0.1×0.75 + 0.1×0.875 + 0.1×0.75 + 0.1×0.8 + 0.1×0.625) / 1.1
    assert rows["dongshan-water"]["score"] == 78.18
    # power has no rating: 100 × (0.1 + 0.075 + 0.1 + 0.1 + 0.1) / 0.5 = 95
    assert rows["dongshan-power"]["score"] == 95.0


def test_a_center_without_orders_has_a_row_per_department_without_score():
    result = assess(replay([]))
    assert [row["department"] for row in result["rows"]] == DEPARTMENTS
    for row in result["rows"]:
        assert row["orders"] == 0 and row["score"] is None and row["rank"] == 1
        assert row["satisfaction_rate"] is None and row["accepted_on_time_rate"] is None
    assert result["totals"]["orders"] == 0 and result["totals"]["score"] is None


def test_without_ratings_the_other_weights_are_renormalised():
    events = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, accept=60, arrive=600)
    [water] = [r for r in assess(replay(events))["rows"] if r["department"] == "dongshan-water"]
    # a=1, v=1, c=0 (still on scene), r=1, u=1; s missing: 100 × 0.6 / 0.7
    assert water["satisfaction_rate"] is None and water["completion_rate"] == 0
    assert water["score"] == 85.71


def test_a_score_on_satisfaction_alone_is_none_without_ratings():
    weights = {k: 0.0 for k in DEFAULT_WEIGHTS} | {"satisfaction": 1.0, "urges": 0.0}
    events = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, accept=60)
    rows = rows_by_department(assess(replay(events), weights))
    assert rows["dongshan-water"]["orders"] == 1 and rows["dongshan-water"]["score"] is None
    assert rows["dongshan-water"]["rank"] == 1  # no department has a score


def test_a_department_that_returned_everything_scores_zero():
    events = []
    for i, returned in enumerate((120, 100, 600)):  # the last one sat past its deadline
        overdue = ["accept"] if returned > 300 else []  # and dispatch announced it
        events += order_story(
            f"o{i}",
            f"i{i}",
            "dongshan-water",
            T0,
            center=DONGSHAN,
            returned=returned,
            overdue=overdue,
        )
        events.append(rating(f"i{i}", "satisfied", T0 + timedelta(days=1)))
    rows = rows_by_department(assess(replay(events)))
    water = rows["dongshan-water"]
    assert water["returns"] == 3 and water["completion_rate"] is None
    assert water["satisfaction_rate"] is None  # its ratings are not its own
    assert water["accepted_on_time_rate"] == 0 and water["accept_judged"] == 1
    assert water["score"] == 0.0 and water["rank"] == 1


def test_a_cancelled_order_does_not_count_against_its_department():
    late = {"center": DONGSHAN, "overdue": ["accept", "arrive"], "urges": [301]}
    kept = order_story("o1", "i1", "dongshan-water", T0, accept=60, complete=900, center=DONGSHAN)
    events = kept + order_story("o2", "i2", "dongshan-water", T0, cancelled=400, **late)
    events += order_story("o3", "i3", "dongshan-water", T0, returned=100, cancelled=200, **late)
    events.append(rating("i2", "dissatisfied", T0 + timedelta(days=1)))
    result = assess(replay(events))
    water = rows_by_department(result)["dongshan-water"]
    alone = rows_by_department(assess(replay(kept)))["dongshan-water"]
    assert {k: v for k, v in water.items() if k != "rank"} == {
        k: v for k, v in alone.items() if k != "rank"
    }
    assert (water["orders"], water["incidents"], water["returns"], water["overdue"]) == (1, 1, 0, 0)
    assert (water["accept_judged"], water["rated"], water["urges"]) == (1, 0, 0)
    assert result["totals"]["orders"] == 1 and result["totals"]["incidents"] == 1


def test_a_reassigned_order_is_not_a_return_and_its_replacement_counts_for_the_new_unit():
    events = order_story(
        "o1",
        "i1",
        "dongshan-water",
        T0,
        center=DONGSHAN,
        cancelled=120,
        cancel_cause="reassigned",
        replaced_by="o2",
    )
    events += order_story(
        "o2",
        "i1",
        "dongshan-power",
        T0 + timedelta(seconds=120),
        center=DONGSHAN,
        received_at=T0,
        cause="reassigned",
        replaces="o1",
        accept=60,
    )
    events.append(rating("i1", "satisfied", T0 + timedelta(days=1)))
    rows = rows_by_department(assess(replay(events)))
    water, power = rows["dongshan-water"], rows["dongshan-power"]
    assert water["orders"] == 0 and water["returns"] == 0 and water["score"] is None
    assert (power["orders"], power["incidents"], power["returns"]) == (1, 1, 0)
    assert power["satisfaction_rate"] == 1 and power["return_rate"] == 0


def test_an_urge_lowers_the_score_by_its_weight():
    def water(**story):
        events = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, accept=60, **story)
        events += order_story("o2", "i2", "dongshan-water", T0, center=DONGSHAN, accept=60)
        return rows_by_department(assess(replay(events)))["dongshan-water"]

    calm, urged, pressed = water(), water(urges=[100]), water(urges=[100, 200, 300])
    # a = 1, c = 0, r = 1; u = 1, 1 - 1/2, then max(0, 1 - 3/2): 100 × (0.3 + 0.1u) / 0.5
    assert (calm["score"], urged["score"], pressed["score"]) == (80.0, 70.0, 60.0)
    assert (urged["urges"], urged["urge_rate"], pressed["urge_rate"]) == (1, 0.5, 1.5)


def test_urges_of_a_returned_order_are_left_to_the_return():
    events = order_story(
        "o1", "i1", "dongshan-water", T0, center=DONGSHAN, urges=[100], returned=200
    )
    water = rows_by_department(assess(replay(events)))["dongshan-water"]
    assert water["urges"] == 0 and water["urge_rate"] is None and water["score"] == 0.0


def test_deadline_outcomes_follow_the_facts_not_the_clock():
    due = T0 + timedelta(minutes=5)
    late = due + timedelta(seconds=1)  # dispatch announces the deadline missed
    outcome = scoring.deadline_outcome
    assert outcome(due, due, None, None) is True  # exactly at the deadline is on time
    assert outcome(late, due, None, late) is False
    assert outcome(None, due, None, late) is False  # never done, announced overdue
    assert outcome(None, due, None, None) is None  # not done, not announced: not yet
    assert outcome(None, due, due, None) is None  # returned in time: not judged
    assert outcome(None, due, late, late) is False  # returned after missing it
    assert outcome(None, None, None, None) is None  # dispatch facts not known yet


def test_an_order_not_done_is_judged_late_once_dispatch_announces_it_overdue():
    events = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN)
    water = rows_by_department(assess(replay(events)))["dongshan-water"]
    assert water["accept_judged"] == 0 and water["accepted_on_time_rate"] is None
    # returns 1, completion 0, urges 1: 100 × (0.1×0 + 0.1×1 + 0.1×1) / 0.3
    assert water["score"] == 66.67

    events = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, overdue=["accept"])
    water = rows_by_department(assess(replay(events)))["dongshan-water"]
    assert water["accept_judged"] == 1 and water["accepted_on_time_rate"] == 0
    assert water["arrive_judged"] == 0


def test_ties_share_a_rank_and_no_score_ranks_last():
    assert scoring.rank({"a": 90.0, "b": 90.0, "c": 80.0, "d": None, "e": None}) == {
        "a": 1,
        "b": 1,
        "c": 3,
        "d": 4,
        "e": 4,
    }


def test_orders_count_by_dispatch_time_within_the_half_open_window():
    events = []
    for i, at in enumerate(
        (SINCE, UNTIL - timedelta(microseconds=1), UNTIL, SINCE - timedelta(seconds=1))
    ):
        events += order_story(f"o{i}", f"i{i}", "dongshan-water", at, center=DONGSHAN, accept=60)
    events += order_story("x", "ix", "yujin-water", T0, center="511123102", accept=60)
    rows = rows_by_department(assess(replay(events)))
    assert rows["dongshan-water"]["orders"] == 2


def test_an_order_known_only_from_later_events_is_not_counted_until_dispatched():
    story = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, accept=60, arrive=600)
    assert rows_by_department(assess(replay(story[1:])))["dongshan-water"]["orders"] == 0
    assert (
        rows_by_department(assess(replay(story[1:] + story[:1])))["dongshan-water"]["orders"] == 1
    )


def test_satisfaction_is_the_latest_rating_and_counts_for_every_department_that_kept_the_order():
    events = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, accept=60)
    events += order_story(
        "o2", "i1", "dongshan-power", T0, center=DONGSHAN, role="assist", accept=60
    )
    events += order_story(
        "o3", "i1", "dongshan-fire", T0, center=DONGSHAN, role="assist", returned=60
    )
    events.append(rating("i1", "satisfied", T0 + timedelta(days=1)))
    events.append(rating("i1", "dissatisfied", T0 + timedelta(days=2)))  # replaces it
    rows = rows_by_department(assess(replay(events)))
    assert rows["dongshan-water"]["satisfaction_rate"] == 0
    assert rows["dongshan-power"]["satisfaction_rate"] == 0
    assert rows["dongshan-fire"]["satisfaction_rate"] is None
    assert replay(reversed(events)).ratings["i1"].rating == "dissatisfied"


def test_basically_satisfied_counts_as_satisfied():
    events = []
    for i, value in enumerate(("satisfied", "basically_satisfied", "dissatisfied", "dissatisfied")):
        events += order_story(f"o{i}", f"i{i}", "dongshan-water", T0, center=DONGSHAN, accept=60)
        events.append(rating(f"i{i}", value, T0 + timedelta(days=1)))
    assert rows_by_department(assess(replay(events)))["dongshan-water"]["satisfaction_rate"] == 0.5


def test_overdue_escalated_and_totals():
    events = []
    events += order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, overdue=["accept"])
    events += order_story(
        "o2", "i2", "dongshan-water", T0, center=DONGSHAN, accept=60, arrive=600, complete=900
    )
    events += order_story(
        "o3", "i1", "dongshan-power", T0, center=DONGSHAN, role="assist", accept=60
    )
    events.append(escalated("i1", DONGSHAN, "511123", T0 + timedelta(minutes=20)))
    events.append(escalated("i2", DONGSHAN, DONGSHAN, T0, reason="neighbour"))  # command stays
    events.append(assigned_down("i2", "511123", DONGSHAN, T0))  # came down, not up
    result = assess(replay(events))
    rows = rows_by_department(result)
    assert rows["dongshan-water"]["overdue"] == 1 and rows["dongshan-water"]["escalated"] == 1
    assert rows["dongshan-power"]["escalated"] == 1
    totals = result["totals"]
    assert totals["orders"] == 3 and totals["incidents"] == 2
    assert totals["overdue"] == 1 and totals["escalated"] == 1 and totals["completed"] == 1
    assert totals["returns"] == 0


def test_mean_times_from_dispatch():
    events = order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, accept=60, arrive=600)
    events += order_story("o2", "i2", "dongshan-water", T0, center=DONGSHAN, accept=120)
    water = rows_by_department(assess(replay(events)))["dongshan-water"]
    assert water["mean_time_to_accept_s"] == 90.0 and water["mean_time_to_arrive_s"] == 600.0
    assert water["mean_time_to_complete_s"] is None


def test_score_is_a_plain_function_of_records_and_weights():
    record = OrderRecord(
        order_id="o1",
        incident_id="i1",
        center=DONGSHAN,
        department="dongshan-water",
        role="lead",
        dispatched_at=T0,
        accept_by=T0 + timedelta(minutes=5),
        arrive_by=T0 + timedelta(minutes=30),
        accepted_at=T0 + timedelta(minutes=1),
        arrived_at=T0 + timedelta(minutes=40),
        completed_at=T0 + timedelta(hours=2),
    )
    figures = scoring.score([record], DEFAULT_WEIGHTS, ratings={"i1": "satisfied"})
    # 100 × (0.4×1 + 0.2×1 + 0.2×0 + 0.1×1 + 0.1×1 + 0.1×1) / 1.1
    assert figures.score == 81.82 and figures.indicators()["arrived_on_time"] == 0
