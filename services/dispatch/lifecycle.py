"""The work-order state machine.

    dispatched ──accept──▶ accepted ──arrive──▶ on_scene ──complete──▶ completed
        │                     │                   │  ▲
        └──────return─────────┘                   └──┘ report (on-scene feedback)
               ▼
            returned (re-routed)          cancelled (command withdrawn)

A reinforcement request is allowed once the unit has accepted, and does not
change the status.
"""

from __future__ import annotations

from shared.errors import InvalidTransition

OPEN = ("dispatched", "accepted", "on_scene")
STATUSES = OPEN + ("completed", "returned", "cancelled")

TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "accept": (("dispatched",), "accepted"),
    "return": (("dispatched", "accepted"), "returned"),
    "arrive": (("accepted",), "on_scene"),
    "report": (("on_scene",), "on_scene"),
    "complete": (("on_scene",), "completed"),
    "request_reinforcement": (("accepted", "on_scene"), None),
    "cancel": (OPEN, "cancelled"),
}


def next_status(status: str, action: str) -> str:
    """The status after `action`, or `InvalidTransition` naming what is allowed."""
    allowed_from, target = TRANSITIONS[action]
    if status not in allowed_from:
        raise InvalidTransition(
            f"cannot {action.replace('_', ' ')} an order that is {status} "
            f"(allowed when {' or '.join(allowed_from)})"
        )
    return target or status
