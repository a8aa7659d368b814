"""The duty room (值班): rosters of the leader and officers on duty, and the board.

A roster's day is a duty day (routing.duty_day): from the start of that
date's working hours to the next morning's. An order sent to the duty officer
carries the names of that day's officers at its center.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from services.dispatch import duty_store, routing
from shared.auth import may_watch_center, require
from shared.dependencies import api
from shared.errors import NotFound, ValidationError
from shared.events import utcnow
from shared.fields import text_arg

MAX_OFFICERS = 20
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{2,31}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def person_problems(errors: dict, name: str, value: Any) -> dict | None:
    """A person on duty: `{"name", "phone"}`, both required."""
    if not isinstance(value, dict) or set(value) - {"name", "phone"}:
        errors[name] = ['must be an object {"name", "phone"}']
        return None
    person = {"name": text_arg(errors, f"{name}.name", value.get("name"), 64)}
    phone = value.get("phone")
    if not isinstance(phone, str) or not _PHONE.match(phone):
        errors[f"{name}.phone"] = ["must be a telephone number (digits, spaces, -, a leading +)"]
    person["phone"] = phone
    return person


def checked_roster(center: Any, day: Any, leader: Any, officers: Any, network) -> dict:
    """The roster's arguments checked, or `ValidationError` naming every field."""
    errors: dict = {}
    if text_arg(errors, "center", center) and center not in network.centers:
        errors["center"] = ["is not a center of this network"]
    when = checked_date(errors, day)
    chief = person_problems(errors, "leader", leader)
    if not isinstance(officers, list) or not 1 <= len(officers) <= MAX_OFFICERS:
        errors["officers"] = [f"must be a list of 1 to {MAX_OFFICERS} officers"]
        officers = []
    staff = [person_problems(errors, f"officers[{i}]", o) for i, o in enumerate(officers)]
    if errors:
        raise ValidationError(errors)
    return {"center": center, "day": when, "leader": chief, "officers": staff}


def checked_date(errors: dict, value: Any) -> date | None:
    if isinstance(value, str) and _DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    errors["date"] = ["must be a date YYYY-MM-DD"]
    return None


class DutyRoom:
    """RPCs of the duty room; mixed into DispatchService."""

    @api(mutating=True)
    def set_duty(self, center: str, date: str, leader: dict, officers: list) -> dict:
        """Set a center's roster for a duty day; a center sets its own, an
        admin any. Setting it again replaces it."""
        row = checked_roster(center, date, leader, officers, self.network)
        caller = self.caller
        require(
            caller.is_admin or (caller.kind == "center" and caller.center == center),
            f"the duty roster of {center}",
        )
        with self.db.transaction() as tx:
            found = duty_store.set_roster(tx, {**row, "set_by": caller.sub, "set_at": utcnow()})
            return duty_store.roster_view(found)

    @api
    def duty(self, center: str, date: str) -> dict:
        """Who is on duty at `center` on a duty day; `NotFound` if nobody is set."""
        errors: dict = {}
        text_arg(errors, "center", center)
        day = checked_date(errors, date)
        if errors:
            raise ValidationError(errors)
        self._require_duty_room(center)
        with self.db.read() as session:
            found = duty_store.roster(session, center, day)
            if found is None:
                raise NotFound(f"no duty roster for {center} on {date}")
            return duty_store.roster_view(found)

    @api
    def board(self, center: str) -> dict:
        """What a duty room sees: the open orders of the center's units and the
        open incidents it commands, overdue first; and who is on duty now."""
        errors: dict = {}
        text_arg(errors, "center", center)
        if errors:
            raise ValidationError(errors)
        self._require_duty_room(center)
        now = utcnow()
        with self.db.read() as session:
            on_duty = duty_store.roster(session, center, routing.duty_day(self.network, now))
            return {
                "center": center,
                "at": now.isoformat(),
                "timezone": self.network.timezone.key,  # for showing the times
                "on_duty": duty_store.roster_view(on_duty) if on_duty else None,
                "orders": duty_store.board_orders(session, center),
                "incidents": duty_store.board_incidents(session, center),
            }

    def _require_duty_room(self, center: str) -> None:
        """Rosters and the board of a center: its area's centers and auditors, admins."""
        if center not in self.network.centers:
            raise ValidationError({"center": ["is not a center of this network"]})
        require(may_watch_center(self.caller, self.network, center), f"the duty room of {center}")
