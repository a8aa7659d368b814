"""Department scores (管理考核): the formula, as plain functions over order records.

Scope
-----
For a center C, a window [since, until) and an evaluation time T (the moment
the service answers), a department D of C is judged on its work orders at C
dispatched in the window: O = the records with center C, department D and
since ≤ dispatched_at < until. An order whose `order_dispatched` has not
reached assessment yet has no `dispatched_at` and counts once it has.

Indicators (each in [0, 1], or None when there is no data)
---------------------------------------------------------
- satisfaction (群众满意率, the first indicator)
      s = satisfied rated incidents / rated incidents,
  over the distinct incidents of D's orders in O that D did not return and
  that have a rating. `satisfied` and `basically_satisfied` count as
  satisfied, `dissatisfied` does not. An incident has one rating, the latest
  recorded; it counts for every department that kept an order for that
  incident at C (lead and assists alike). A department that returned its
  order is judged for that by the returns indicator, not by the citizen.
- accepted on time (按时签收率)
      a = orders accepted on time / orders judged for acceptance
- arrived on time (按时到场率)
      v = orders arrived on time / orders judged for arrival
- completion (办结率)
      c = completed orders / orders not returned
- returns (退单)
      r = max(0, 1 - returned orders / orders)

On time, for each deadline (acceptance: `accepted_at` against `accept_by`;
arrival: `arrived_at` against `arrive_by`), an order is
- on time if done at or before the deadline;
- late if done after it;
- not judged if not done and returned at or before the deadline (the return
  itself is scored by r);
- late if not done and the deadline has passed (deadline ≤ T): never
  accepted, or never on scene;
- not judged yet if not done and the deadline is still ahead.

Score
-----
    S = 100 × Σ w_k·x_k / Σ w_k, summed over the indicators k that have data,

with the weights w of the network file (`assessment.weights`: satisfaction,
accepted_on_time, arrived_on_time, completion, returns; they add up to 1).
An indicator without data (no rating yet, nothing judged yet, everything
returned) drops out and the other weights are scaled up, so missing data
neither helps nor hurts. A department with no orders has no score (None), as
has one whose indicators with data all weigh 0. S is rounded to 2 decimals.

Rank: 1 is the best score in the center. Equal (rounded) scores share a rank
and the next rank skips (1, 2, 2, 4). Departments without a score come last,
all sharing the rank after the last scored one.

Worked example
--------------
Weights: satisfaction 0.4, accepted on time 0.2, arrived on time 0.2,
completion 0.1, returns 0.1 (the sample network's).

Water utility (水务营业所): 10 orders. 2 were returned within the acceptance
deadline without being accepted, so they are judged neither for acceptance
nor for arrival. Of the other 8: 6 accepted on time and 2 late; 7 arrived on
time and 1 late; 6 completed, 2 still on scene. 5 of those 8 incidents were
rated: 3 satisfied, 1 basically satisfied, 1 dissatisfied (a rating of one of
the 2 returned incidents does not count for the water utility).

    s = 4/5 = 0.8    a = 6/8 = 0.75    v = 7/8 = 0.875
    c = 6/8 = 0.75   r = 1 - 2/10 = 0.8
    S = 100 × (0.4×0.8 + 0.2×0.75 + 0.2×0.875 + 0.1×0.75 + 0.1×0.8) / 1
      = 100 × (0.32 + 0.15 + 0.175 + 0.075 + 0.08) = 80.00

Power supply (供电所): 4 orders, all accepted on time, 3 on scene on time and
1 late, all completed, none returned, none rated yet.

    s = None   a = 1   v = 0.75   c = 1   r = 1
    S = 100 × (0.2×1 + 0.2×0.75 + 0.1×1 + 0.1×1) / (0.2 + 0.2 + 0.1 + 0.1)
      = 100 × 0.55 / 0.6 = 91.67

Fire team (专职消防队): no orders, S = None.

Ranks: power supply 1, water utility 2, fire team 3.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from services.assessment.records import SATISFIED, CommandMove, OrderRecord

INDICATORS = ("satisfaction", "accepted_on_time", "arrived_on_time", "completion", "returns")


@dataclass(frozen=True)
class Figures:
    """The counts and rates of one department (or one center) over a window."""

    orders: int = 0
    incidents: int = 0
    accept_judged: int = 0
    accepted_on_time: int = 0
    arrive_judged: int = 0
    arrived_on_time: int = 0
    completed: int = 0
    returns: int = 0
    overdue: int = 0
    escalated: int = 0
    rated: int = 0
    satisfied: int = 0
    mean_time_to_accept_s: float | None = None
    mean_time_to_arrive_s: float | None = None
    mean_time_to_complete_s: float | None = None
    score: float | None = None

    @property
    def satisfaction_rate(self) -> float | None:
        return _ratio(self.satisfied, self.rated)

    @property
    def accepted_on_time_rate(self) -> float | None:
        return _ratio(self.accepted_on_time, self.accept_judged)

    @property
    def arrived_on_time_rate(self) -> float | None:
        return _ratio(self.arrived_on_time, self.arrive_judged)

    @property
    def completion_rate(self) -> float | None:
        return _ratio(self.completed, self.orders - self.returns)

    @property
    def return_rate(self) -> float | None:
        return _ratio(self.returns, self.orders)

    def indicators(self) -> dict[str, float | None]:
        """The five scored indicators, each in [0, 1] or None without data."""
        returns = None if self.return_rate is None else max(0.0, 1.0 - self.return_rate)
        return {
            "satisfaction": self.satisfaction_rate,
            "accepted_on_time": self.accepted_on_time_rate,
            "arrived_on_time": self.arrived_on_time_rate,
            "completion": self.completion_rate,
            "returns": returns,
        }

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(
            satisfaction_rate=self.satisfaction_rate,
            accepted_on_time_rate=self.accepted_on_time_rate,
            arrived_on_time_rate=self.arrived_on_time_rate,
            completion_rate=self.completion_rate,
            return_rate=self.return_rate,
        )
        return row


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 1) if known else None


def deadline_outcome(
    done_at: datetime | None,
    due: datetime | None,
    returned_at: datetime | None,
    as_of: datetime,
) -> bool | None:
    """True on time, False late, None not judged (see the module docstring)."""
    if due is None:
        return None
    if done_at is not None:
        return done_at <= due
    if returned_at is not None and returned_at <= due:
        return None
    if due <= as_of:
        return False
    return None


def measure(
    records: Iterable[OrderRecord],
    *,
    ratings: Mapping[str, str],
    escalated: Collection[str] = frozenset(),
    as_of: datetime,
) -> Figures:
    """Counts and rates of a set of records (one department's, or a center's).

    `ratings` maps incident ids to their current rating; `escalated` holds the
    incidents whose command moved up from the records' center.
    """
    records = list(records)
    accept = [deadline_outcome(r.accepted_at, r.accept_by, r.returned_at, as_of) for r in records]
    arrive = [deadline_outcome(r.arrived_at, r.arrive_by, r.returned_at, as_of) for r in records]
    incidents = {r.incident_id for r in records}
    kept = {r.incident_id for r in records if not r.returned}
    rated = [ratings[i] for i in kept if i in ratings]
    return Figures(
        orders=len(records),
        incidents=len(incidents),
        accept_judged=sum(1 for a in accept if a is not None),
        accepted_on_time=sum(1 for a in accept if a),
        arrive_judged=sum(1 for a in arrive if a is not None),
        arrived_on_time=sum(1 for a in arrive if a),
        completed=sum(1 for r in records if r.completed),
        returns=sum(1 for r in records if r.returned),
        overdue=sum(1 for r in records if r.overdue),
        escalated=len(incidents & set(escalated)),
        rated=len(rated),
        satisfied=sum(1 for rating in rated if rating in SATISFIED),
        mean_time_to_accept_s=_mean(r.time_to_accept_s for r in records),
        mean_time_to_arrive_s=_mean(r.time_to_arrive_s for r in records),
        mean_time_to_complete_s=_mean(r.time_to_complete_s for r in records),
    )


def weighted_score(
    indicators: Mapping[str, float | None], weights: Mapping[str, float]
) -> float | None:
    """S = 100 × Σ w·x / Σ w over the indicators with data; None without any."""
    present = [k for k in INDICATORS if indicators.get(k) is not None]
    total_weight = sum(weights[k] for k in present)
    if not present or total_weight <= 0:
        return None
    value = 100 * sum(weights[k] * indicators[k] for k in present) / total_weight
    return round(value, 2)


def score(
    records: Iterable[OrderRecord],
    weights: Mapping[str, float],
    *,
    ratings: Mapping[str, str] | None = None,
    escalated: Collection[str] = frozenset(),
    as_of: datetime,
) -> Figures:
    """One department's figures and its 0–100 score (None without orders)."""
    figures = measure(records, ratings=ratings or {}, escalated=escalated, as_of=as_of)
    return replace(figures, score=weighted_score(figures.indicators(), weights))


def rank(scores: Mapping[str, float | None]) -> dict[str, int]:
    """Competition ranking, best first: ties share a rank; no score ranks last."""
    scored = [s for s in scores.values() if s is not None]
    return {
        key: (
            1 + sum(1 for other in scored if other > value)
            if value is not None
            else 1 + len(scored)
        )
        for key, value in scores.items()
    }


def escalated_from(center: str, moves: Iterable[CommandMove]) -> set[str]:
    """Incidents whose command moved up from `center`."""
    return {m.incident_id for m in moves if m.is_escalation and m.from_center == center}


def assess(
    center: str,
    departments: Sequence[str],
    records: Iterable[OrderRecord],
    *,
    ratings: Mapping[str, str],
    moves: Iterable[CommandMove],
    weights: Mapping[str, float],
    since: datetime,
    until: datetime,
    as_of: datetime,
) -> dict[str, Any]:
    """Rows (one per department of `center`, in `departments` order) and totals.

    `records`, `ratings` and `moves` may hold more than the window and center:
    what does not belong is left out here, so the service and a replay in
    memory answer alike.
    """
    codes = set(departments)
    in_scope = [
        r
        for r in records
        if r.center == center
        and r.department in codes
        and r.dispatched_at is not None
        and since <= r.dispatched_at < until
    ]
    escalated = escalated_from(center, moves)
    by_department: dict[str, list[OrderRecord]] = {code: [] for code in departments}
    for record in in_scope:
        by_department[record.department].append(record)
    figures = {
        code: score(by_department[code], weights, ratings=ratings, escalated=escalated, as_of=as_of)
        for code in departments
    }
    ranks = rank({code: f.score for code, f in figures.items()})
    rows = [
        {"department": code, **figures[code].as_row(), "rank": ranks[code]} for code in departments
    ]
    rows.sort(key=lambda row: row["rank"])  # stable: ties keep the network's order
    totals = score(in_scope, weights, ratings=ratings, escalated=escalated, as_of=as_of)
    return {"rows": rows, "totals": totals.as_row()}
