"""The escalation service (command moves between centers)."""

from shared.metrics import EntrypointMetrics


class EscalationService:
    name = "escalation"
    metrics = EntrypointMetrics()
