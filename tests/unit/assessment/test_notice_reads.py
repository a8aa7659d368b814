"""What the notice reads beside the scores, on a real database of either
backend: the worst overdue orders (lateness computed in SQL, by dialect) and
the daily series (day counts of several centers together)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.assessment import store
from services.assessment.scoring import WHOLE_CENTER, Counts
from tests.unit.assessment.factory import order_story, rating

SHANGHAI = ZoneInfo("Asia/Shanghai")
DONGSHAN, YUJIN, MUXI = "511123101", "511123102", "511129101"
BASE = datetime(2026, 11, 10, 9, 0, tzinfo=SHANGHAI)
SINCE = datetime(2026, 11, 1, tzinfo=SHANGHAI)
UNTIL = datetime(2026, 12, 1, tzinfo=SHANGHAI)
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=SHANGHAI)


def stories() -> list[tuple]:
    def story(order: str, department: str, center: str, at=BASE, **lifecycle):
        return order_story(order, f"i-{order}", department, at, center=center, **lifecycle)

    return [
        *story("accepted-late", "dongshan-water", DONGSHAN, accept=900, overdue=["accept"]),
        *story("never-arrived", "yujin-water", YUJIN, accept=60, overdue=["arrive"]),
        *story("returned-late", "dongshan-power", DONGSHAN, returned=1000, overdue=["accept"]),
        *story("cancelled", "dongshan-fire", DONGSHAN, overdue=["accept"], cancelled=2000),
        *story("on-time", "dongshan-police", DONGSHAN, accept=60, arrive=600),
        *story(
            "last-month",
            "dongshan-water",
            DONGSHAN,
            at=BASE - timedelta(days=30),
            overdue=["accept"],
        ),
        *story("other-county", "muxi-water", MUXI, overdue=["accept"]),
    ]


def test_the_worst_overdue_orders_are_ranked_by_lateness_in_the_window(assessment):
    assessment.deliver(stories())
    with assessment.database.session() as session:
        worst = store.worst_overdue(session, [DONGSHAN, YUJIN], SINCE, UNTIL, NOW, 10)
        top = store.worst_overdue(session, [DONGSHAN, YUJIN], SINCE, UNTIL, NOW, 1)
    assert [row["order_id"] for row in worst] == ["never-arrived", "returned-late", "accepted-late"]
    never = (NOW - (BASE + timedelta(seconds=1800))).total_seconds()
    assert [row["late_s"] for row in worst] == pytest.approx([never, 700, 600], abs=0.01)
    assert worst[0]["center"] == YUJIN and worst[0]["department"] == "yujin-water"
    assert worst[0]["dispatched_at"] == BASE
    assert [row["order_id"] for row in top] == ["never-arrived"]


def test_the_daily_series_adds_the_centers_day_counts(assessment):
    assessment.deliver(stories())
    assessment.deliver(
        order_story(
            "next-day", "i-next", "yujin-power", BASE + timedelta(days=1), center=YUJIN, accept=30
        )
    )
    assessment.deliver([rating("i-on-time", "satisfied", BASE + timedelta(days=1))])
    day = BASE.date()
    with assessment.database.session() as session:
        daily = store.daily_counts(session, [DONGSHAN, YUJIN], day, day + timedelta(days=3))

        def whole_day(center: str, when) -> Counts:
            start = datetime.combine(when, time(), SHANGHAI)
            counted = store.window_counts(
                session, SHANGHAI, start, start + timedelta(days=1), center
            )
            return counted.get((center, WHOLE_CENTER), Counts())

        assert set(daily) == {day, day + timedelta(days=1)}
        for when in daily:
            assert daily[when] == whole_day(DONGSHAN, when) + whole_day(YUJIN, when)
    assert daily[day].orders == 4  # the cancelled one and the other county's left out
    assert daily[day].rated_satisfied == 1
    assert daily[day + timedelta(days=1)].orders == 1
