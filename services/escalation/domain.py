"""Escalation's data at its edges: events read as facts and rows, moves shown
and announced. Plain functions over plain data; the policy is in `rules`."""

from __future__ import annotations

import json
from datetime import datetime

from services.escalation import rules
from services.escalation.models import CommandMove, CommandState, WatchedOrder
from shared.errors import ValidationError
from shared.events import InvalidEvent
from shared.fields import text_arg
from shared.network import Category, Network

# the longest text each RPC argument may be
ARGUMENT_LIMITS = {
    "incident_id": 64,
    "reason": 2000,
    "to_center": 32,
    "center": 32,
    "report_id": 64,
    "text": 4000,
}


def check_arguments(network: Network, **texts: object) -> None:
    """An operator's call: each text argument within its limit; else
    `ValidationError` naming each field."""
    errors: dict = {}
    for name, value in texts.items():
        text_arg(errors, name, value, ARGUMENT_LIMITS[name])
    if errors:
        raise ValidationError(errors)


def category(network: Network, code: str) -> Category:
    found = network.categories.get(code)
    if found is None:
        raise InvalidEvent(f"category {code!r} is not in this escalation's network")
    return found


def facts(event: dict, network: Network) -> rules.IncidentFacts:
    """An incident as the rules see it; codes unknown to this network are poison."""
    category(network, event["category"])
    for field in ("town", "center"):
        if event[field] not in network.centers:
            raise InvalidEvent(f"{field} {event[field]!r} is not in this network")
    grade = event["grade"]
    if grade is not None and grade not in network.grades:
        raise InvalidEvent(f"grade {grade!r} is not a known grade")
    return rules.IncidentFacts(
        category=event["category"],
        town=event["town"],
        center=event["center"],
        crowd_size=event["crowd_size"],
        grade=grade,
    )


def incident_row(batch: dict, facts: rules.IncidentFacts) -> dict:
    """A new incident's command state, from a dispatch decision: under the
    center that took it."""
    return {
        "incident_id": batch["incident_id"],
        "source_system": batch["source_system"],
        "request_type": batch["request_type"],
        "category": facts.category,
        "town": facts.town,
        "received_by": facts.center,
        "center": facts.center,
        "crowd_size": facts.crowd_size,
        "casualties": batch["casualties"],
        "grade": facts.grade,
        "received_at": batch["received_at"],
        "moves": 0,
        "command_changed_at": None,
    }


def watched_orders(batch: dict) -> list[dict]:
    """The orders of an `orders_dispatched` batch, as escalation watches them."""
    return [
        {
            "order_id": order["order_id"],
            "incident_id": batch["incident_id"],
            "center": order["center"],
            "department": order["department"],
            "role": order["role"],
        }
        for order in batch["orders"]
    ]


def watched_order(event: dict) -> dict:
    """The order a single order event is about."""
    return {
        name: event[name] for name in ("order_id", "incident_id", "center", "department", "role")
    }


def overdue_check(event: dict, check_at: datetime, status: str, now: datetime) -> dict:
    """An `order_overdue` notice as a check due at the end of its grace."""
    return {
        "order_id": event["order_id"],
        "incident_id": event["incident_id"],
        "center": event["center"],
        "deadline": event["deadline"],
        "due_at": event["due_at"],
        "check_at": check_at,
        "status": status,
        "resolved_at": None if status == "pending" else now,
    }


def settled(order: WatchedOrder | None, deadline: str, check_at: datetime) -> str | None:
    """`rules.settled` for a watched order (None: nothing known of it yet)."""
    if order is None:
        return None
    return rules.settled(deadline, check_at, order.accepted_at, order.arrived_at, order.returned_at)


def check_status(verdict: rules.Verdict) -> str:
    """How a check ends once its grace ran out and the rules had their say."""
    if isinstance(verdict, rules.Move):
        return "escalated"
    if isinstance(verdict, rules.NoParent):
        return "refused"
    return "moot"  # command is elsewhere, or has moved for this reason already


def announcement(
    state: CommandState, move: rules.Move, operator: str | None, at: datetime
) -> tuple[str, dict]:
    """The event that announces an approved move, and its fields."""
    fields = {
        "incident_id": state.incident_id,
        "from_center": move.from_center,
        "to_center": move.to_center,
        "reason": move.reason,
        "operator": operator,
        "category": state.category,
        "at": at,
    }
    if move.reason == "assign_down":
        return "incident_assigned_down", fields
    return "incident_escalated", {**fields, "assist_centers": list(move.assist_centers)}


def move_view(move: CommandMove) -> dict:
    return {
        "from_center": move.from_center,
        "to_center": move.to_center,
        "reason": move.reason,
        "at": move.at.isoformat(),
        "operator": move.operator,
        "detail": move.detail,
        "assist_centers": json.loads(move.assist_centers or "[]"),
    }


def command_view(state: CommandState, chain: list[dict], network: Network) -> dict:
    return {
        "incident_id": state.incident_id,
        "center": state.center,
        "level": network.centers[state.center].level,
        "town": state.town,
        "received_by": state.received_by,
        "category": state.category,
        "chain": chain,
    }
