"""A seeded month of 犍为县's work, as the notice's `data`.

Orders for the county's own units and its four towns' units through November
2026, from a fixed random seed, replayed through the real event contracts
(`factory`) and scored by `scoring.py` and `ranking.py`: the figures a notice
shows are the platform's own, not typed by hand. Also used by
`scripts/notice-picture` to draw docs/notice-page1.png.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.assessment import ranking, scoring
from services.assessment.records import OrderRecord
from shared.network import Network, load_network
from tests.unit.assessment.factory import Event, one_decision, order_story, rating, replay

SHANGHAI = ZoneInfo("Asia/Shanghai")
QIANWEI = "511123"
SINCE = datetime(2026, 11, 1, tzinfo=SHANGHAI)
UNTIL = datetime(2026, 12, 1, tzinfo=SHANGHAI)
AS_OF = datetime(2026, 12, 1, 8, 0, tzinfo=SHANGHAI)
CATEGORY_NAMES = ["自来水管破裂", "供电故障", "交通事故", "矛盾纠纷调解", "环境卫生、犬类管理"]


def _story(rng: random.Random) -> dict[str, Any]:
    """Mostly on time; now and then late, returned or left open."""
    if rng.random() < 0.05:
        return {"returned": rng.randint(60, 250)}
    accept = rng.randint(30, 280) if rng.random() < 0.9 else rng.randint(320, 900)
    late_arrival = rng.random() < 0.12
    arrive = accept + (rng.randint(1300, 9000) if late_arrival else rng.randint(300, 1200))
    story: dict[str, Any] = {"accept": accept, "arrive": arrive}
    if rng.random() < 0.93:
        story["complete"] = arrive + rng.randint(1200, 7200)
    overdue = []
    if accept > 300:
        overdue.append("accept")
    if late_arrival:
        overdue.append("arrive")
    story["overdue"] = overdue
    return story


def _events(network: Network, rng: random.Random) -> tuple[list[Event], dict[str, str]]:
    centers = [QIANWEI, *(c.code for c in network.towns() if c.parent == QIANWEI)]
    events: list[Event] = []
    categories: dict[str, str] = {}
    for day in range(30):
        for center in centers:
            departments = network.departments_of(center)
            for n in range(rng.randint(1, 4)):
                at = SINCE + timedelta(
                    days=day, hours=rng.randint(7, 21), minutes=rng.randint(0, 59)
                )
                incident = f"INC-{center[-3:]}-{day + 1:02d}{n}"
                department = rng.choice(departments)
                categories[incident] = rng.choice(CATEGORY_NAMES)
                events += one_decision(
                    order_story(
                        f"ORD-{center[-3:]}-{day + 1:02d}{n}",
                        incident,
                        department.code,
                        at,
                        center=center,
                        tier=department.tier,
                        **_story(rng),
                    )
                )
                if rng.random() < 0.7:
                    value = rng.choices(
                        ["satisfied", "basically_satisfied", "dissatisfied"], [75, 15, 10]
                    )[0]
                    events.append(rating(incident, value, at + timedelta(days=1)))
    return events, categories


def _overdue_minutes(record: OrderRecord) -> int:
    """How long past its deadline the order was done, or is still not done."""
    late = []
    for done, due in (
        (record.accepted_at, record.accept_by),
        (record.arrived_at, record.arrive_by),
    ):
        if due is not None and (done is None or done > due):
            late.append(((done or AS_OF) - due).total_seconds() / 60)
    return round(max(late, default=0))


def seeded_month(seed: int = 12) -> dict[str, Any]:
    """The notice `data` for 犍为县, November 2026."""
    network = load_network()
    rng = random.Random(seed)
    events, categories = _events(network, rng)
    ledger = replay(events)
    records = [r for r in ledger.records() if r.dispatched_at is not None]
    ratings = {i: r.rating for i, r in ledger.ratings.items()}

    def assess(center: str) -> dict[str, Any]:
        return scoring.assess(
            center,
            [d.code for d in network.departments_of(center)],
            records,
            ratings=ratings,
            moves=[],
            weights=network.weights,
            since=SINCE,
            until=UNTIL,
        )

    names = {d.code: d.name for d in network.departments.values()}
    departments = [{**row, "name": names[row["department"]]} for row in assess(QIANWEI)["rows"]]
    towns = []
    for town in (c for c in network.towns() if c.parent == QIANWEI):
        totals = assess(town.code)["totals"]
        due = rng.randint(1, 5)
        towns.append(
            {
                "center": town.code,
                "name": town.name,
                "units_score": totals["score"],
                "orders": totals["orders"],
                "satisfaction_rate": totals["satisfaction_rate"],
                "returns": totals["returns"],
                "urges": totals["overdue"] + rng.randint(0, 3),
                "overdue_orders": totals["overdue"],
                "reports_due": due,
                "reports_late": rng.randint(0, min(2, due)),
            }
        )
    centers = ranking.rank_centers(towns)
    first_orders = scoring.shares(records, ratings=ratings, escalated=set(), by_department=False)

    def measure(held: list[OrderRecord]) -> scoring.Figures:
        return scoring.figures_of(scoring.count(held, first_orders), network.weights)

    area = measure(records)
    daily = []
    for day in range(30):
        start = SINCE + timedelta(days=day)
        figures = measure(
            [r for r in records if start <= r.dispatched_at < start + timedelta(days=1)]
        )
        daily.append(
            {
                "date": start.date().isoformat(),
                "satisfaction_rate": figures.satisfaction_rate,
                "accepted_on_time_rate": figures.accepted_on_time_rate,
                "arrived_on_time_rate": figures.arrived_on_time_rate,
            }
        )
    worst = [
        {
            "order_id": r.order_id,
            "incident_id": r.incident_id,
            "department_name": f"{network.centers[r.center].name}{names[r.department]}"
            if r.center != QIANWEI
            else names[r.department],
            "category": categories[r.incident_id],
            "dispatched_at": r.dispatched_at.isoformat(),
            "overdue_minutes": _overdue_minutes(r),
        }
        for r in records
        if r.overdue
    ]
    return {
        "center": QIANWEI,
        "center_name": network.centers[QIANWEI].name,
        "center_level": "county",
        "since": SINCE.isoformat(),
        "until": UNTIL.isoformat(),
        "as_of": AS_OF.isoformat(),
        "headline": {
            "orders": area.orders,
            "completed": area.completed,
            "satisfaction_rate": area.satisfaction_rate,
            "accepted_on_time_rate": area.accepted_on_time_rate,
            "arrived_on_time_rate": area.arrived_on_time_rate,
            "returns": area.returns,
            "urges": sum(t["urges"] for t in towns),
            "overdue": area.overdue,
            "reports_due": sum(t["reports_due"] for t in towns),
            "reports_late": sum(t["reports_late"] for t in towns),
        },
        "departments": departments,
        "centers": centers,
        "daily": daily,
        "worst_overdue": worst,
        "weights": network.weights,
    }
