"""Department scores (管理考核): the formula, as plain functions over counts.

Counts (`Counts`) come from the day counts the store keeps (store.py: each
incident's `incident_counts`, added per department and local day in the
transaction of every change) or, as the reference, from records in memory
(`count`); either way `figures_of` alone turns them into rates and a score,
so the two paths cannot disagree on the formula. Every count is a sum of
each order's share (`order_counts`), which depends on the order's facts and
its incident's rating and moves only, never on the clock: that is what lets
the days be kept by adding changes.

Scope
-----
For a center C and a window [since, until), a department D of C is judged on its work orders at C
dispatched in the window: O = the records with center C, department D and
since ≤ dispatched_at < until, not cancelled. An order whose
`order_dispatched` has not reached assessment yet has no `dispatched_at` and
counts once it has.

A cancelled order (`order_cancelled`, whatever its cause: cancelled by an
operator, reclassified away, reassigned to another unit) never counts against
its department: it leaves O altogether, so it is no order, no return, not
judged for any deadline, not overdue, not in completion, and its urges do not
count; nor does it make its department count the incident (a group's first
order, below, is its first order not cancelled). A reassigned order is thus
not a return; the new order counts for the unit it went to. Cancellation wins
over every other fact of the order, whenever it arrives.

Incidents are counted once per department (and once per center, for the
report's totals): on the department's first order of the incident, the least
(dispatched_at, order_id) of its orders at C. An incident counts in the
window holding that first order, so its counts (incidents, ratings,
escalations) add up over days and windows; a department's later order of an
incident already counted in an earlier window adds its order, not the
incident again.

Indicators (each in [0, 1], or None when there is no data)
---------------------------------------------------------
- satisfaction (群众满意率, the first indicator)
      s = satisfied rated incidents / rated incidents,
  over the incidents counted for D in the window (above) that D kept (not
  every one of D's orders for it returned) and that have a rating.
  `satisfied` and `basically_satisfied` count as satisfied, `dissatisfied`
  does not. An incident has one rating, the latest
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
- urges (催办)
      u = max(0, 1 - urges / orders not returned),
  urges: every `order_urged` of an order in O not returned, by an operator
  or by the deadline scan, each counted once (records.add_urge); an order
  urged twice counts twice. A returned order is judged by r alone, as for
  completion and satisfaction, so a department that returned everything has
  no u.

On time, for each deadline (acceptance: `accepted_at` against `accept_by`;
arrival: `arrived_at` against `arrive_by`), an order is
- on time if done at or before the deadline;
- late if done after it;
- not judged if not done and returned at or before the deadline (the return
  itself is scored by r);
- late if not done and dispatch announced the deadline missed
  (`order_overdue`, within seconds of the deadline): never accepted, or
  never on scene;
- not judged yet if not done and not announced overdue.
The outcome is read off the order's facts, not the clock: an order not done
whose deadline passed counts as late once its `order_overdue` has arrived
(before this release, at the deadline itself), and the figures no longer
depend on the moment they are asked.

Score
-----
    S = 100 × Σ w_k·x_k / Σ w_k, summed over the indicators k that have data,

with the weights w of the network file (`assessment.weights`: satisfaction,
accepted_on_time, arrived_on_time, completion, returns; they add up to 1)
and the weight of u, `URGES_WEIGHT` = 0.1 (the network file does not set it
yet), so Σ w = 1.1 when every indicator has data. An indicator without data
(no rating yet, nothing judged yet, everything returned) drops out and the
other weights are scaled up, so missing data neither helps nor hurts. A
department with no orders has no score (None), as has one whose indicators
with data all weigh 0. S is rounded to 2 decimals.

Rank: 1 is the best score in the center. Equal (rounded) scores share a rank
and the next rank skips (1, 2, 2, 4). Departments without a score come last,
all sharing the rank after the last scored one.

Worked example
--------------
Weights: satisfaction 0.4, accepted on time 0.2, arrived on time 0.2,
completion 0.1, returns 0.1 (the sample network's), urges 0.1.

Water utility (水务营业所): 11 orders. One, urged once, was reassigned to the
power supply before it was accepted: cancelled, it counts nothing (not an
order, not a return, not its urge), which leaves 10. 2 were returned within
the acceptance deadline without being accepted, so they are judged neither
for acceptance nor for arrival. Of the other 8: 6 accepted on time and 2
late; 7 arrived on time and 1 late; 6 completed, 2 still on scene. The 2
late ones were urged, one of them twice: 3 urges of 8 orders kept. 5 of those 8 incidents
were rated: 3 satisfied, 1 basically satisfied, 1 dissatisfied (a rating of
one of the 2 returned incidents does not count for the water utility).

    s = 4/5 = 0.8    a = 6/8 = 0.75    v = 7/8 = 0.875
    c = 6/8 = 0.75   r = 1 - 2/10 = 0.8   u = 1 - 3/8 = 0.625
    S = 100 × (0.4×0.8 + 0.2×0.75 + 0.2×0.875 + 0.1×0.75 + 0.1×0.8 + 0.1×0.625) / 1.1
      = 100 × (0.32 + 0.15 + 0.175 + 0.075 + 0.08 + 0.0625) / 1.1 = 78.41

Power supply (供电所): 4 orders (one of them the reassigned order), all
accepted on time, 3 on scene on time and 1 late, all completed, none
returned, none urged, none rated yet.

    s = None   a = 1   v = 0.75   c = 1   r = 1   u = 1
    S = 100 × (0.2×1 + 0.2×0.75 + 0.1×1 + 0.1×1 + 0.1×1) / (0.2 + 0.2 + 0.1 + 0.1 + 0.1)
      = 100 × 0.65 / 0.7 = 92.86

Fire team (专职消防队): no orders, S = None.

Ranks: power supply 1, water utility 2, fire team 3.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from services.assessment.records import CommandMove, OrderRecord

INDICATORS = (
    "satisfaction",
    "accepted_on_time",
    "arrived_on_time",
    "completion",
    "returns",
    "urges",
)
# The weight of u where the network file sets none: shared/network.py reads
# only the five others (adding up to 1), so Σ w is 1.1 with the sample's.
URGES_WEIGHT = 0.1


def scored_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """The weights the score uses: the network's, and `URGES_WEIGHT` for u
    unless they give one."""
    return {**weights, "urges": weights.get("urges", URGES_WEIGHT)}


@dataclass(frozen=True)
class Counts:
    """What is counted of a set of orders (one department's, or a center's)
    over a window: the only input of the formula.

    Two paths produce it and must agree: `count` over records in memory (the
    reference, fed by records.Ledger in tests), and the stored day counts
    (`incident_counts` kept per day by services/assessment/store.py). Counts
    add up (`+`): every field is a sum of each order's share (`order_counts`).
    Incidents, ratings by value and escalations are counted once per group
    (an incident's orders at one department, or at one center), on the
    group's first order (`shares`); times are totals in microseconds over the
    orders that reached the step, for the means.
    """

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
    urges: int = 0  # 催办: the urges of the counted orders not returned
    rated_satisfied: int = 0
    rated_basically_satisfied: int = 0
    rated_dissatisfied: int = 0
    accept_timed: int = 0  # orders with a dispatch and an acceptance time
    accept_time_us: int = 0  # whole microseconds: sums stay exact in any order
    arrive_timed: int = 0
    arrive_time_us: int = 0
    complete_timed: int = 0
    complete_time_us: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, n) + getattr(other, n) for n in COUNT_FIELDS))

    def __sub__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, n) - getattr(other, n) for n in COUNT_FIELDS))


COUNT_FIELDS = tuple(f.name for f in fields(Counts))


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
    urges: int = 0
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

    @property
    def urge_rate(self) -> float | None:
        """Urges per order not returned (may exceed 1: an order can be urged again)."""
        return _ratio(self.urges, self.orders - self.returns)

    def indicators(self) -> dict[str, float | None]:
        """The six scored indicators, each in [0, 1] or None without data."""
        returns = None if self.return_rate is None else max(0.0, 1.0 - self.return_rate)
        urges = None if self.urge_rate is None else max(0.0, 1.0 - self.urge_rate)
        return {
            "satisfaction": self.satisfaction_rate,
            "accepted_on_time": self.accepted_on_time_rate,
            "arrived_on_time": self.arrived_on_time_rate,
            "completion": self.completion_rate,
            "returns": returns,
            "urges": urges,
        }

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(
            satisfaction_rate=self.satisfaction_rate,
            accepted_on_time_rate=self.accepted_on_time_rate,
            arrived_on_time_rate=self.arrived_on_time_rate,
            completion_rate=self.completion_rate,
            return_rate=self.return_rate,
            urge_rate=self.urge_rate,
        )
        return row


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _mean(total_us: int, n: int) -> float | None:
    return round(total_us / 1_000_000 / n, 1) if n else None


def deadline_outcome(
    done_at: datetime | None,
    due: datetime | None,
    returned_at: datetime | None,
    overdue_at: datetime | None,
) -> bool | None:
    """True on time, False late, None not judged (see the module docstring):
    decided by the order's facts alone, `overdue_at` being when dispatch
    announced this deadline missed."""
    if due is None:
        return None
    if done_at is not None:
        return done_at <= due
    if returned_at is not None and returned_at <= due:
        return None
    if overdue_at is not None:
        return False
    return None


@dataclass(frozen=True)
class Share:
    """What a group of orders (an incident's orders at one department, or at
    one center) counts once, on its first order: the incident, its rating
    when the group kept an order (None: not rated, or every order returned),
    and whether its command moved up from the center."""

    rating: str | None = None
    escalated: bool = False


def _micros(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return (end - start) // timedelta(microseconds=1)


def order_counts(record: OrderRecord, share: Share | None) -> Counts:
    """One dispatched order's share of the counts; `share` when it is its
    group's first order (`shares`). A cancelled order counts nothing."""
    if record.cancelled:
        return Counts()
    accept = deadline_outcome(
        record.accepted_at, record.accept_by, record.returned_at, record.accept_overdue_at
    )
    arrive = deadline_outcome(
        record.arrived_at, record.arrive_by, record.returned_at, record.arrive_overdue_at
    )
    to_accept = _micros(record.dispatched_at, record.accepted_at)
    to_arrive = _micros(record.dispatched_at, record.arrived_at)
    to_complete = _micros(record.dispatched_at, record.completed_at)
    rating = share.rating if share else None
    return Counts(
        orders=1,
        incidents=int(share is not None),
        accept_judged=int(accept is not None),
        accepted_on_time=int(accept is True),
        arrive_judged=int(arrive is not None),
        arrived_on_time=int(arrive is True),
        completed=int(record.completed),
        returns=int(record.returned),
        overdue=int(record.overdue),
        escalated=int(share is not None and share.escalated),
        urges=0 if record.returned else record.urges,  # a return is scored by r
        rated_satisfied=int(rating == "satisfied"),
        rated_basically_satisfied=int(rating == "basically_satisfied"),
        rated_dissatisfied=int(rating == "dissatisfied"),
        accept_timed=int(to_accept is not None),
        accept_time_us=to_accept or 0,
        arrive_timed=int(to_arrive is not None),
        arrive_time_us=to_arrive or 0,
        complete_timed=int(to_complete is not None),
        complete_time_us=to_complete or 0,
    )


def shares(
    records: Iterable[OrderRecord],
    *,
    ratings: Mapping[str, str],
    escalated: Collection[tuple[str, str]],
    by_department: bool,
) -> dict[str, Share]:
    """The first order of each group, by order id, with the group's share.

    A group is an incident's dispatched orders not cancelled at one (center,
    department), or at one center when not `by_department`; its first order
    is the least (dispatched_at, order_id). `escalated` holds (incident, center) pairs
    whose command moved up from that center (`escalations`).
    """
    groups: dict[tuple, list[OrderRecord]] = {}
    for record in records:
        if record.dispatched_at is None or record.cancelled:
            continue
        key = (record.incident_id, record.center) + ((record.department,) if by_department else ())
        groups.setdefault(key, []).append(record)
    found = {}
    for (incident, center, *_), held in groups.items():
        first = min(held, key=lambda r: (r.dispatched_at, r.order_id))
        kept = any(not r.returned for r in held)
        found[first.order_id] = Share(
            rating=ratings.get(incident) if kept else None,
            escalated=(incident, center) in escalated,
        )
    return found


def count(records: Iterable[OrderRecord], first_orders: Mapping[str, Share]) -> Counts:
    """The counts of a set of dispatched records, in memory (the reference
    path); `first_orders` from `shares` over every record of their incidents."""
    total = Counts()
    for record in records:
        total += order_counts(record, first_orders.get(record.order_id))
    return total


WHOLE_CENTER = ""  # the department of a center's own counts (the report's totals)
DayKey = tuple[str, str, date]  # (center, department or WHOLE_CENTER, local day)


def local_day(at: datetime, timezone: tzinfo) -> date:
    """The day of the network's calendar an instant falls on."""
    return at.astimezone(timezone).date()


def _midnight(day: date, timezone: tzinfo) -> datetime:
    return datetime.combine(day, time(), timezone)


def split_window(
    since: datetime, until: datetime, timezone: tzinfo
) -> tuple[date, date, list[tuple[datetime, datetime]]]:
    """[since, until) as whole local days [first, end) and the partial days
    at its edges, as instants: e.g. 3 Nov 10:00 to 6 Nov 00:00 is the days
    4 and 5 Nov and the edge [3 Nov 10:00, 4 Nov 00:00)."""
    first = local_day(since, timezone)
    if _midnight(first, timezone) < since:
        first += timedelta(days=1)
    end = local_day(until, timezone)
    if first >= end:
        return first, first, [(since, until)]
    edges = []
    if since < _midnight(first, timezone):
        edges.append((since, _midnight(first, timezone)))
    if _midnight(end, timezone) < until:
        edges.append((_midnight(end, timezone), until))
    return first, end, edges


def trailing_days(now: datetime, days: int, timezone: tzinfo) -> tuple[datetime, datetime]:
    """The `days` local days that end with today's, as [since, until): a
    window of whole days, so it is read from the day counts alone."""
    today = local_day(now, timezone)
    return (
        _midnight(today - timedelta(days=days - 1), timezone),
        _midnight(today + timedelta(days=1), timezone),
    )


def incident_counts(
    records: Iterable[OrderRecord],
    *,
    ratings: Mapping[str, str],
    escalated: Collection[tuple[str, str]],
    timezone: tzinfo,
) -> dict[DayKey, Counts]:
    """What an incident's records (or any records with their incidents'
    siblings) add to each (center, department, local day of dispatch), and to
    each (center, WHOLE_CENTER, day): the unit the day counts are kept in.

    A pure function of the records, the rating and the escalations, so a
    change is kept by adding `after - before` (store.py), and a window of
    whole days is the sum of its days.
    """
    records = [r for r in records if r.dispatched_at is not None]
    by_department = shares(records, ratings=ratings, escalated=escalated, by_department=True)
    by_center = shares(records, ratings=ratings, escalated=escalated, by_department=False)
    found: dict[DayKey, Counts] = {}
    for record in records:
        day = local_day(record.dispatched_at, timezone)
        for department, share in (
            (record.department, by_department.get(record.order_id)),
            (WHOLE_CENTER, by_center.get(record.order_id)),
        ):
            key = (record.center, department, day)
            found[key] = found.get(key, Counts()) + order_counts(record, share)
    return found


def figures_of(counts: Counts, weights: Mapping[str, float]) -> Figures:
    """The rates and the 0–100 score of counted orders (None without orders)."""
    figures = Figures(
        orders=counts.orders,
        incidents=counts.incidents,
        accept_judged=counts.accept_judged,
        accepted_on_time=counts.accepted_on_time,
        arrive_judged=counts.arrive_judged,
        arrived_on_time=counts.arrived_on_time,
        completed=counts.completed,
        returns=counts.returns,
        overdue=counts.overdue,
        escalated=counts.escalated,
        urges=counts.urges,
        rated=counts.rated_satisfied + counts.rated_basically_satisfied + counts.rated_dissatisfied,
        satisfied=counts.rated_satisfied + counts.rated_basically_satisfied,
        mean_time_to_accept_s=_mean(counts.accept_time_us, counts.accept_timed),
        mean_time_to_arrive_s=_mean(counts.arrive_time_us, counts.arrive_timed),
        mean_time_to_complete_s=_mean(counts.complete_time_us, counts.complete_timed),
    )
    return replace(figures, score=weighted_score(figures.indicators(), weights))


def weighted_score(
    indicators: Mapping[str, float | None], weights: Mapping[str, float]
) -> float | None:
    """S = 100 × Σ w·x / Σ w over the indicators with data; None without any.
    `weights` as the network gives them (`scored_weights`)."""
    weights = scored_weights(weights)
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
    escalated: Collection[tuple[str, str]] = frozenset(),
) -> Figures:
    """One department's figures and its 0–100 score, from its records in memory."""
    records = list(records)
    found = shares(records, ratings=ratings or {}, escalated=escalated, by_department=True)
    return figures_of(count(records, found), weights)


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


def escalations(moves: Iterable[CommandMove]) -> set[tuple[str, str]]:
    """(incident, center) pairs whose command moved up from that center."""
    return {(m.incident_id, m.from_center) for m in moves if m.is_escalation}


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
) -> dict[str, Any]:
    """Rows and totals from records in memory (the reference for the day counts).

    `records`, `ratings` and `moves` may hold more than the window and center
    (and should: a group's first order and its returns are read off all of an
    incident's records); what does not belong is left out here, so the
    service and a replay in memory answer alike.
    """
    records = [r for r in records if r.dispatched_at is not None]
    escalated = escalations(moves)
    by_department = shares(records, ratings=ratings, escalated=escalated, by_department=True)
    by_center = shares(records, ratings=ratings, escalated=escalated, by_department=False)
    in_scope = [r for r in records if r.center == center and since <= r.dispatched_at < until]
    held: dict[str, list[OrderRecord]] = {code: [] for code in departments}
    for record in in_scope:
        if record.department in held:
            held[record.department].append(record)
    counted = {code: count(orders, by_department) for code, orders in held.items()}
    return assess_counts(departments, counted, count(in_scope, by_center), weights)


def assess_counts(
    departments: Sequence[str],
    counts: Mapping[str, Counts],
    totals: Counts | None,
    weights: Mapping[str, float],
) -> dict[str, Any]:
    """Rows (one per department, in `departments` order, then by rank) and the
    totals' figures; a department missing from `counts` has no orders."""
    figures = {code: figures_of(counts.get(code, Counts()), weights) for code in departments}
    ranks = rank({code: f.score for code, f in figures.items()})
    rows = [
        {"department": code, **figures[code].as_row(), "rank": ranks[code]} for code in departments
    ]
    rows.sort(key=lambda row: row["rank"])  # stable: ties keep the network's order
    return {
        "rows": rows,
        "totals": figures_of(totals or Counts(), weights).as_row(),
    }


def gauge_values(
    counts: Mapping[tuple[str, str], Counts],
    departments_of: Callable[[str], Iterable[Any]],
    weights: Mapping[str, float],
) -> list[dict[str, Any]]:
    """The dashboards' values: score and satisfaction of each (center,
    department) of the network with counted orders and a value to show."""
    values = []
    for (center, department), counted in sorted(counts.items()):
        if department not in {d.code for d in departments_of(center)}:
            continue  # no longer in the network
        figures = figures_of(counted, weights)
        if figures.score is None and figures.satisfaction_rate is None:
            continue
        values.append(
            {
                "center": center,
                "department": department,
                "score": figures.score,
                "satisfaction": figures.satisfaction_rate,
            }
        )
    return values
