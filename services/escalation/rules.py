"""When command moves, and to which center (CONTRACT.md section 5, rule 5).

统一指挥: the center of the place leads (属地为主) and asks upward only when a
rule says so. Plain functions over the network and plain facts: no broker, no
database. Each returns a `Move`, `NoParent` when the move would go above the
city, or None when nothing should happen. `vet` then decides whether a move is
still one to make against the incident's current command and chain; the
service records and announces only what `vet` approved.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import Forbidden, ValidationError
from shared.network import LEVELS, Center, Network

RANK = {level: i for i, level in enumerate(LEVELS)}

# Reasons a rule decides on its own; each moves command at most once per
# incident and center. Operators' reasons (`manual`, `assign_down`) may repeat
# once command has come back.
AUTOMATIC = (
    "crowd_size",
    "grade",
    "no_competent_unit",
    "all_returned",
    "reinforcement",
    "overdue",
    "neighbour",
)
# When the crowd and the grade point at the same level, the crowd is recorded.
INITIAL_ORDER = ("crowd_size", "grade")


def once_key(reason: str, from_center: str) -> str:
    """An automatic reason moves command at most once per incident and center."""
    return f"{reason}@{from_center}"


@dataclass(frozen=True)
class IncidentFacts:
    """What the rules need of an incident when it is received."""

    category: str
    town: str
    center: str  # the center that took the report: the town, or one above it
    crowd_size: int | None = None
    grade: str | None = None


@dataclass(frozen=True)
class Move:
    """Command goes from `from_center` to `to_center`. For `neighbour` it stays
    (to == from) and `assist_centers` names the towns whose units join."""

    reason: str
    from_center: str
    to_center: str
    assist_centers: tuple[str, ...] = ()

    @property
    def once_key(self) -> str | None:
        """The key that makes an automatic move happen once; None for operators'."""
        return once_key(self.reason, self.from_center) if self.reason in AUTOMATIC else None


@dataclass(frozen=True)
class NoParent:
    """A rule asked to go up from a center that has no parent (the city)."""

    reason: str
    center: str

    @property
    def message(self) -> str:
        return f"{self.reason}: center {self.center} has no parent; command stays there"


Decision = Move | NoParent | None

# Why `vet` declines a move.
NOT_IN_COMMAND = "not_in_command"  # asked from a center that no longer commands
NO_OP = "no_op"  # command would stay where it is
DOWNWARD = "downward"  # an automatic reason pointing down: a rule's bug
MADE_ALREADY = "made_already"  # this reason has moved command from this center


@dataclass(frozen=True)
class Declined:
    """A move a rule asked for that is not made; `why` names the guard."""

    move: Move
    why: str
    command_center: str


Verdict = Move | NoParent | Declined | None


# -- the network, read for command ------------------------------------------


def at_or_above(network: Network, center: str, level: str) -> Center | None:
    """The nearest of `center` and its ancestors whose level is at least `level`
    ("county" for a town under a city with no county between is the city)."""
    for candidate in [network.centers[center], *network.ancestors(center)]:
        if RANK[candidate.level] >= RANK[level]:
            return candidate
    return None


def competent_center(network: Network, center: str, role: str) -> Center | None:
    """The nearest of `center` and its ancestors with a unit holding `role`."""
    for candidate in [network.centers[center], *network.ancestors(center)]:
        if network.holders(candidate.code, role):
            return candidate
    return None


def crowd_level(crowd_size: int | None, network: Network) -> str | None:
    """More than `county_crowd` people: the county; `city_crowd` or more: the city."""
    if crowd_size is None:
        return None
    if crowd_size >= network.city_crowd:
        return "city"
    if crowd_size > network.county_crowd:
        return "county"
    return None


def grade_level(grade: str | None, network: Network) -> str | None:
    """The level a grade (I 特别重大 … IV 一般) is commanded from."""
    return network.grades.get(grade) if grade else None


def neighbour_towns(network: Network, town: str, role: str) -> tuple[str, ...]:
    """Neighbour towns (相邻镇) with a unit holding `role`, in the file's order."""
    return tuple(n for n in network.centers[town].neighbours if network.holders(n, role))


# -- the decisions ------------------------------------------------------------


def initial_command(incident: IncidentFacts, network: Network) -> Move | None:
    """Where command belongs when an incident is received: one chain step at most.

    The crowd and the grade each name a level; the higher wins (on a tie the
    crowd, as listed in `INITIAL_ORDER`). If the center that would command has
    no unit holding the category's lead role, command goes instead to the
    nearest center above it that has one (`no_competent_unit`). Never down:
    a report taken at a county stays there unless a rule points higher.
    """
    start = incident.center
    lead = network.categories[incident.category].lead
    levels = {
        "crowd_size": crowd_level(incident.crowd_size, network),
        "grade": grade_level(incident.grade, network),
    }
    target, reason = network.centers[start], None
    for candidate_reason in INITIAL_ORDER:
        level = levels[candidate_reason]
        if level is None:
            continue
        candidate = at_or_above(network, start, level)
        if candidate is not None and RANK[candidate.level] > RANK[target.level]:
            target, reason = candidate, candidate_reason
    if not network.holders(target.code, lead):
        competent = competent_center(network, target.code, lead)
        if competent is not None:
            return Move("no_competent_unit", start, competent.code)
    if reason is None:
        return None
    return Move(reason, start, target.code)


def up_one(reason: str, center: str, network: Network) -> Move | NoParent:
    parent = network.parent(center)
    if parent is None:
        return NoParent(reason, center)
    return Move(reason, center, parent.code)


def on_all_returned(order_center: str, command_center: str, network: Network) -> Decision:
    """Every unit of the center holding the role has returned the order (退单):
    the parent center takes command. Only the center in command moves it; a
    return at a town that has already handed command up changes nothing."""
    if order_center != command_center:
        return None
    return up_one("all_returned", command_center, network)


def on_reinforcement(
    order_center: str,
    command_center: str,
    lead_role: str,
    crowd_size: int | None,
    neighbours_called: bool,
    network: Network,
) -> Decision:
    """A unit on scene asks for more forces.

    Up to `county_crowd` people (an unknown crowd counts as small) the
    neighbour towns' units of the lead role join first (相邻镇联动); a second
    request, a bigger crowd, or a center without such neighbours goes up one
    level. Only a unit of the center in command can ask: under a county's
    command the county sends more.
    """
    if order_center != command_center:
        return None
    small = crowd_size is None or crowd_size <= network.county_crowd
    if small and not neighbours_called and network.centers[command_center].level == "town":
        towns = neighbour_towns(network, command_center, lead_role)
        if towns:
            return Move("neighbour", command_center, command_center, towns)
    return up_one("reinforcement", command_center, network)


def on_overdue_unmet(order_center: str, command_center: str, network: Network) -> Decision:
    """A deadline still unmet `overdue_grace` after it passed: the order's center
    hands command up, if it still holds it."""
    if order_center != command_center:
        return None
    return up_one("overdue", command_center, network)


# -- operators' moves -----------------------------------------------------------

NO_PARENT_MESSAGE = "the city center has no parent to escalate to"


def manual_escalate(command_center: str, network: Network, caller: str | None = None) -> Move:
    """An operator of the center in command hands command up one level (上报)."""
    _caller_commands(command_center, caller)
    decision = up_one("manual", command_center, network)
    if isinstance(decision, NoParent):
        raise ValidationError({"incident_id": [NO_PARENT_MESSAGE]})
    return decision


def assign_down_target(
    command_center: str, to_center: str, network: Network, caller: str | None = None
) -> Move:
    """A county (or city) center hands an incident to one of its towns (下派)."""
    target = network.centers.get(to_center)
    if target is None or target.level != "town":
        raise ValidationError({"to_center": ["must be a town center of the network"]})
    _caller_commands(command_center, caller)
    if not network.is_below(to_center, command_center):
        raise Forbidden(
            f"town {to_center} is not below {command_center}, the center in command: "
            "only a center can assign down to its own towns"
        )
    return Move("assign_down", command_center, to_center)


def _caller_commands(command_center: str, caller: str | None) -> None:
    if caller is not None and caller != command_center:
        raise Forbidden(f"center {caller} is not in command of this incident ({command_center} is)")


# -- vetting a decision against the incident as it now stands ---------------------

# Strictly later than the previous move, whatever the instances' clocks say.
TICK = timedelta(microseconds=1)


def vet(
    decision: Decision, command_center: str, made: Collection[str], network: Network
) -> Verdict:
    """Whether a rule's decision is still one to make, given the center now in
    command and the `once_key`s already in the incident's chain (`made`).

    A move is made only from the center in command; never to where command
    already is (except `neighbour`, where command stays by design); never down
    for an automatic reason (only `assign_down` goes down); and an automatic
    reason moves command from a center once. `NoParent` and None pass through.
    """
    if not isinstance(decision, Move):
        return decision
    move = decision
    if move.from_center != command_center:
        return Declined(move, NOT_IN_COMMAND, command_center)
    if move.reason != "neighbour" and move.to_center == command_center:
        return Declined(move, NO_OP, command_center)
    if move.reason not in ("neighbour", "assign_down") and not network.is_below(
        move.from_center, move.to_center
    ):
        return Declined(move, DOWNWARD, command_center)
    if move.once_key is not None and move.once_key in made:
        return Declined(move, MADE_ALREADY, command_center)
    return move


def move_at(now: datetime, last_moved_at: datetime | None) -> datetime:
    """When a move is recorded: now, or a `TICK` after the previous move if a
    clock behind another instance's would put it earlier (the chain's order)."""
    if last_moved_at is not None and now <= last_moved_at:
        return last_moved_at + TICK
    return now


def settled(
    deadline: str,
    check_at: datetime,
    accepted_at: datetime | None,
    arrived_at: datetime | None,
    returned_at: datetime | None,
) -> str | None:
    """A missed deadline at the end of its grace (`check_at`): `met` if the order
    caught up by then (arrival meets both deadlines, acceptance the accept one),
    `moot` if it was returned by then, None if it is still owed."""
    arrived = arrived_at is not None and arrived_at <= check_at
    accepted = accepted_at is not None and accepted_at <= check_at
    if arrived or (deadline == "accept" and accepted):
        return "met"
    if returned_at is not None and returned_at <= check_at:
        return "moot"
    return None
