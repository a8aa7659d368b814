"""Centers ranked (services/assessment/ranking.py): the worked example, ties, edges."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.assessment import ranking, scoring
from tests.unit.assessment.factory import replay, worked_example

SHANGHAI = ZoneInfo("Asia/Shanghai")
DONGSHAN = "511123101"

# The module docstring's worked example.
WORKED = [
    {"center": "511123101", "name": "东山镇", "units_score": 80.0, "orders": 14,
     "reports_due": 4, "reports_late": 1},
    {"center": "511123102", "name": "玉津镇", "units_score": 85.0, "orders": 9,
     "reports_due": 2, "reports_late": 2},
    {"center": "511123103", "name": "孝姑镇", "units_score": 75.0, "orders": 5},
    {"center": "511123104", "name": "清溪镇", "units_score": None, "orders": 0},
]  # fmt: skip


def by_center(rows):
    return {row["center"]: row for row in rows}


def test_the_worked_example_of_the_docstring():
    rows = ranking.rank_centers(WORKED)
    assert [(r["name"], r["score"], r["rank"]) for r in rows] == [
        ("东山镇", 79.0, 1),
        ("孝姑镇", 75.0, 2),
        ("玉津镇", 68.0, 3),
        ("清溪镇", None, 4),
    ]
    rows = by_center(rows)
    assert rows["511123101"]["reporting_timeliness"] == pytest.approx(0.75)
    assert rows["511123102"]["reporting_timeliness"] == 0
    assert rows["511123103"]["reporting_timeliness"] is None


def test_late_reports_can_sink_the_center_with_the_best_units():
    rows = by_center(ranking.rank_centers(WORKED))
    assert rows["511123102"]["units_score"] > rows["511123101"]["units_score"]
    assert rows["511123102"]["rank"] > rows["511123101"]["rank"]


def test_every_contract_field_is_in_each_row_with_counts_defaulting_to_zero():
    (row,) = ranking.rank_centers([{"center": "511123103", "name": "孝姑镇", "units_score": 75.0}])
    for key in (
        "center", "name", "orders", "score", "satisfaction_rate", "returns", "urges",
        "overdue_orders", "reports_due", "reports_late", "rank",
    ):  # fmt: skip
        assert key in row, key
    assert (row["urges"], row["overdue_orders"], row["reports_late"]) == (0, 0, 0)
    assert row["satisfaction_rate"] is None


def test_equal_scores_share_a_rank_and_the_next_rank_skips():
    rows = ranking.rank_centers(
        [
            {"center": "a", "units_score": 70.0},
            {"center": "b", "units_score": 90.0},
            {"center": "c", "units_score": 90.0},
            {"center": "d", "units_score": 60.0},
        ]
    )
    assert [(r["center"], r["rank"]) for r in rows] == [("b", 1), ("c", 1), ("a", 3), ("d", 4)]


def test_centers_with_equal_scores_keep_the_input_order():
    rows = ranking.rank_centers(
        [{"center": c, "units_score": 50.0, "reports_due": 2, "reports_late": 1} for c in "zyx"]
    )
    assert [r["center"] for r in rows] == ["z", "y", "x"]
    assert {r["rank"] for r in rows} == {1}


def test_no_centers_give_no_rows():
    assert ranking.rank_centers([]) == []


def test_centers_without_any_data_all_rank_last_together():
    rows = ranking.rank_centers(
        [{"center": "a"}, {"center": "b", "units_score": 10.0}, {"center": "c"}]
    )
    assert [(r["center"], r["score"], r["rank"]) for r in rows] == [
        ("b", 10.0, 1),
        ("a", None, 2),
        ("c", None, 2),
    ]


def test_a_center_with_reports_but_no_orders_is_scored_on_timeliness_alone():
    (row,) = ranking.rank_centers([{"center": "a", "reports_due": 4, "reports_late": 1}])
    assert row["units_score"] is None and row["score"] == 75.0


def test_more_late_than_due_cannot_make_timeliness_negative():
    assert ranking.reporting_timeliness(2, 3) == 0.0


def test_the_weights_can_be_given():
    assert ranking.center_score(80.0, 0.5, units_weight=0.5, reporting_weight=0.5) == 65.0


def test_the_units_score_is_scoring_pys_center_total():
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
    ledger = replay(worked_example(DONGSHAN, t0))
    totals = scoring.assess(
        DONGSHAN,
        ["dongshan-water", "dongshan-power"],
        ledger.records(),
        ratings={i: r.rating for i, r in ledger.ratings.items()},
        moves=ledger.moves.values(),
        weights={
            "satisfaction": 0.4,
            "accepted_on_time": 0.2,
            "arrived_on_time": 0.2,
            "completion": 0.1,
            "returns": 0.1,
        },  # fmt: skip
        since=datetime(2026, 11, 1, tzinfo=SHANGHAI),
        until=datetime(2026, 12, 1, tzinfo=SHANGHAI),
    )["totals"]
    (row,) = ranking.rank_centers(
        [{"center": DONGSHAN, "units_score": totals["score"], "orders": totals["orders"]}]
    )
    # no report due: the center's score is its units' composite
    assert row["score"] == totals["score"] is not None and row["orders"] == 14
