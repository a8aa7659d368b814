"""Reading the platform while events are still on their way."""

from __future__ import annotations

from nameko.exceptions import RemoteError


def in_command(rpc, incident_id: str) -> str | None:
    """The center in command, once escalation has heard of the incident
    (None until then: it learns of it from dispatch's decision)."""
    try:
        return rpc.escalation.command(incident_id)["center"]
    except RemoteError as error:
        if error.exc_type == "NotFound":
            return None
        raise
