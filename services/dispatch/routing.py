"""Who gets an order, through whom, and by when (CONTRACT.md section 5, rules 1–4,
and section 7: request types, added and reassigned orders, reclassification).

Plain functions over the network: no broker, no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.network import Category, Department, Network

# Request types that send a unit to the scene: they keep rule 3's arrival
# deadline; every other type (consultation, complaint...) gets a reply one.
ON_SCENE_TYPES = ("help", "emergency")
MAX_CALENDAR_DAYS = 366 * 2  # a calendar with no working day for that long is broken


@dataclass(frozen=True)
class PlannedOrder:
    department: str
    center: str
    role: str  # "lead" or "assist"
    served_role: str  # the competence this order asks for, e.g. "water"
    recipient: str  # "department" or "duty_officer"
    tier: int
    dispatched_at: datetime
    accept_by: datetime
    arrive_by: datetime | None  # help and emergency only
    reply_by: datetime | None = None  # the other request types
    duty_day: date | None = None  # whose roster's duty officers receive it (值班)


def duty_day(network: Network, at: datetime) -> date:
    """The duty day (值班日) `at` falls in: a roster's day runs from the start
    of that date's working hours to the next morning's, as a duty room hands
    over, so 02:00 on the 28th is still the 27th's night duty."""
    local = at.astimezone(network.timezone)
    start = min(start for start, _ in network.calendar.working_hours)
    if local.time().replace(tzinfo=None) < start:
        return local.date() - timedelta(days=1)
    return local.date()


def recipient_for(department: Department, network: Network, at: datetime) -> str:
    """Rule 2: outside working hours an office-duty unit is reached via the duty officer."""
    if department.duty == "24h" or network.is_working_time(at):
        return "department"
    return "duty_officer"


def reply_deadline(network: Network, at: datetime) -> datetime:
    """The end of the working day `reply_workdays` working days after `at`'s
    day, on the network's calendar and in its timezone.

    The day of dispatch is not counted, whatever the hour: a consultation
    received on Friday 2026-11-27 at 19:00 with `reply_workdays: 5` is due
    Friday 2026-12-04 at 17:30 (the last end of the working hours), and so is
    one received that Friday at 09:00. Holidays are skipped and worked
    weekend days (调休) count.
    """
    local = at.astimezone(network.timezone)
    day, left = local.date(), network.reply_workdays
    for _ in range(MAX_CALENDAR_DAYS):
        day += timedelta(days=1)
        if network.calendar.is_working_day(day):
            left -= 1
            if left == 0:
                return _end_of_working_day(network, day)
    raise ValueError(f"no {network.reply_workdays} working days after {local.date()}")


def _end_of_working_day(network: Network, day: date) -> datetime:
    end = max(end for _, end in network.calendar.working_hours)
    return datetime.combine(day, end, tzinfo=network.timezone)


def plan(
    department: Department,
    role: str,
    served_role: str,
    network: Network,
    at: datetime,
    request_type: str = "help",
) -> PlannedOrder:
    """Rule 3: the clocks start at dispatch, whoever receives the order; only
    help and emergency orders must reach the scene, the others must reply."""
    on_scene = request_type in ON_SCENE_TYPES
    recipient = recipient_for(department, network, at)
    return PlannedOrder(
        department=department.code,
        center=department.center,
        role=role,
        served_role=served_role,
        recipient=recipient,
        tier=department.tier,
        dispatched_at=at,
        accept_by=at + network.deadlines.accept,
        arrive_by=at + network.deadlines.arrive(department.tier) if on_scene else None,
        reply_by=None if on_scene else reply_deadline(network, at),
        duty_day=duty_day(network, at) if recipient == "duty_officer" else None,
    )


def first_holder(
    network: Network, center: str, role: str, skip: Iterable[str] = ()
) -> Department | None:
    skipped = set(skip)
    return next((d for d in network.holders(center, role) if d.code not in skipped), None)


def route(
    category: Category,
    center: str,
    network: Network,
    at: datetime,
    skip: Iterable[str] = (),
    covered: Iterable[str] = (),
    request_type: str = "help",
) -> list[PlannedOrder]:
    """Rule 1 (谁主管谁负责): one lead order and one per assisting role, all at once.

    In `center`, the first department (in the network file's order) holding
    each role gets the order; a department already holding an order for this
    incident (`skip`) or serving two of its roles gets only one. Roles already
    `covered` by a live order at this center (command came back to it) get
    none. A role no unit of the center holds gets no order here: for the lead
    role that is the escalation service's `no_competent_unit`.
    """
    taken = set(skip)
    covered = set(covered)
    orders = []
    for role, served in [("lead", category.lead)] + [("assist", r) for r in category.assist]:
        if served in covered:
            continue
        department = first_holder(network, center, served, taken)
        if department is None:
            continue
        taken.add(department.code)
        orders.append(plan(department, role, served, network, at, request_type))
    return orders


def neighbour_assists(
    category: Category,
    towns: Iterable[str],
    network: Network,
    at: datetime,
    skip: Iterable[str] = (),
    request_type: str = "help",
) -> list[PlannedOrder]:
    """Neighbour towns' units of the lead role join as assists (相邻镇联动)."""
    taken = set(skip)
    orders = []
    for town in towns:
        department = first_holder(network, town, category.lead, taken)
        if department is not None:
            taken.add(department.code)
            orders.append(plan(department, "assist", category.lead, network, at, request_type))
    return orders


def reroute(
    served_role: str,
    role: str,
    center: str,
    network: Network,
    at: datetime,
    tried: Iterable[str],
    request_type: str = "help",
) -> PlannedOrder | None:
    """Rule 4: a returned order goes to the next holder of the role in the same
    center; None when every holder has had it (all returned → parent center)."""
    department = first_holder(network, center, served_role, tried)
    if department is None:
        return None
    return plan(department, role, served_role, network, at, request_type)


def added(
    department: Department,
    category: Category | None,
    network: Network,
    at: datetime,
    request_type: str = "help",
) -> PlannedOrder:
    """One more unit at the operator's judgement (同时指令相关部门), always an
    assist: it serves the first of its roles the category asks for, else its
    first role."""
    needed = (category.lead, *category.assist) if category else ()
    served = next((r for r in department.roles if r in needed), department.roles[0])
    return plan(department, "assist", served, network, at, request_type)


@dataclass(frozen=True)
class Reclassification:
    cancel: tuple[str, ...]  # open orders whose role the new category does not need
    covered: frozenset[str]  # roles still served by an open order: no new order for them


def reclassify(category: Category, open_orders: Iterable[tuple[str, str, str]]) -> Reclassification:
    """A new category re-routes (CONTRACT.md section 7). `open_orders` are
    (order_id, served_role, cause) of the incident's open orders. Those serving
    a role the new category does not need are cancelled, except orders the
    operators added themselves (`added`): their judgement stands. Roles the
    category needs and no open order serves get orders (`route(...,
    covered=...)` at the center in command).
    """
    needed = {category.lead, *category.assist} - {""}
    cancel, covered = [], set()
    for order_id, served_role, cause in open_orders:
        if served_role in needed or cause == "added":
            covered.add(served_role)
        else:
            cancel.append(order_id)
    return Reclassification(tuple(cancel), frozenset(covered & needed))


# The statuses in which each deadline is still owed.
OWED = {
    "accept": ("dispatched",),
    "arrive": ("dispatched", "accepted"),
    "reply": ("dispatched", "accepted", "on_scene"),
}


def missed_deadlines(
    status: str,
    due: dict[str, datetime | None],
    marked: dict[str, datetime | None],
    now: datetime,
) -> list[tuple[str, datetime]]:
    """Deadlines (`accept`, `arrive`, `reply`: their due times in `due`, None
    when the order has none) an order has missed and not yet been marked
    overdue for (`marked`)."""
    missed = []
    for deadline, statuses in OWED.items():
        due_at = due.get(deadline)
        if status in statuses and due_at is not None and marked.get(deadline) is None:
            if now >= due_at:
                missed.append((deadline, due_at))
    return missed


def grace_deadline(due_at: datetime, network: Network) -> datetime:
    return due_at + network.deadlines.overdue_grace
