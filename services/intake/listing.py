"""Finding incidents by category and time of receipt: what an Open311 client
asks for (`GET requests.json?service_code=...&start_date=...`) and a duty
room's search. Mixed into IntakeService."""

from __future__ import annotations

from services.intake import store
from services.intake.domain import incident_view
from shared.auth import area
from shared.dependencies import api
from shared.errors import ValidationError
from shared.fields import instant_arg, text_arg

MAX_LISTED = 1000


def listing_filters(category, since, until, limit) -> dict:
    """The arguments checked, or `ValidationError` naming every bad one."""
    errors: dict = {}
    text_arg(errors, "category", category, 64, required=False)
    start = instant_arg(errors, "since", since) if since is not None else None
    end = instant_arg(errors, "until", until) if until is not None else None
    if start and end and start >= end:
        errors["until"] = ["must be later than since"]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LISTED:
        errors["limit"] = [f"must be an integer from 1 to {MAX_LISTED}"]
    if errors:
        raise ValidationError(errors)
    return {"category": category, "since": start, "until": end}


class Listing:
    @api
    def list_incidents(
        self,
        category: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 200,
    ) -> list[dict]:
        """Incidents received in [since, until) that the caller may read,
        newest first: a platform's own submissions, a center's or auditor's
        area (by town or command), everything for an admin. The reporter is
        always masked here (a list is no disclosure); `get_incident` shows more."""
        filters = listing_filters(category, since, until, limit)
        caller = self.caller.require("platform", "center", "auditor")
        if caller.is_admin:
            scope = {}
        elif caller.kind == "platform":
            scope = {"source_systems": sorted(caller.source_systems)}
        else:
            scope = {"centers": sorted(area(self.network, caller.center))}
        with self.db.read() as session:
            found = store.find(session, filters, scope, limit)
            return [incident_view(incident) for incident in found]
