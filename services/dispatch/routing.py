"""Who gets an order, through whom, and by when (CONTRACT.md section 5, rules 1–4).

Plain functions over the network: no broker, no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.network import Category, Department, Network


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
    arrive_by: datetime


def recipient_for(department: Department, network: Network, at: datetime) -> str:
    """Rule 2: outside working hours an office-duty unit is reached via the duty officer."""
    if department.duty == "24h" or network.is_working_time(at):
        return "department"
    return "duty_officer"


def plan(
    department: Department, role: str, served_role: str, network: Network, at: datetime
) -> PlannedOrder:
    """Rule 3: the clocks start at dispatch, whoever receives the order."""
    return PlannedOrder(
        department=department.code,
        center=department.center,
        role=role,
        served_role=served_role,
        recipient=recipient_for(department, network, at),
        tier=department.tier,
        dispatched_at=at,
        accept_by=at + network.deadlines.accept,
        arrive_by=at + network.deadlines.arrive(department.tier),
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
        orders.append(plan(department, role, served, network, at))
    return orders


def neighbour_assists(
    category: Category,
    towns: Iterable[str],
    network: Network,
    at: datetime,
    skip: Iterable[str] = (),
) -> list[PlannedOrder]:
    """Neighbour towns' units of the lead role join as assists (相邻镇联动)."""
    taken = set(skip)
    orders = []
    for town in towns:
        department = first_holder(network, town, category.lead, taken)
        if department is not None:
            taken.add(department.code)
            orders.append(plan(department, "assist", category.lead, network, at))
    return orders


def reroute(
    served_role: str,
    role: str,
    center: str,
    network: Network,
    at: datetime,
    tried: Iterable[str],
) -> PlannedOrder | None:
    """Rule 4: a returned order goes to the next holder of the role in the same
    center; None when every holder has had it (all returned → parent center)."""
    department = first_holder(network, center, served_role, tried)
    if department is None:
        return None
    return plan(department, role, served_role, network, at)


def missed_deadlines(
    status: str,
    accept_by: datetime,
    arrive_by: datetime,
    accept_overdue_at: datetime | None,
    arrive_overdue_at: datetime | None,
    now: datetime,
) -> list[tuple[str, datetime]]:
    """Deadlines an order has missed and not yet been marked overdue for."""
    missed = []
    if status == "dispatched" and accept_overdue_at is None and now >= accept_by:
        missed.append(("accept", accept_by))
    if status in ("dispatched", "accepted") and arrive_overdue_at is None and now >= arrive_by:
        missed.append(("arrive", arrive_by))
    return missed


def grace_deadline(due_at: datetime, network: Network) -> datetime:
    return due_at + network.deadlines.overdue_grace
