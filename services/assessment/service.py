"""The assessment service (department scores and citizen satisfaction)."""

from shared.metrics import EntrypointMetrics


class AssessmentService:
    name = "assessment"
    metrics = EntrypointMetrics()
