"""Escalation's domain series: command moves by reason and level, and refusals."""

from prometheus_client import Counter

from shared.events import ESCALATION_REASONS
from shared.network import LEVELS

ESCALATIONS = Counter(
    "linkage_escalations_total",
    "Command moves, by reason and by the level of the center command moved to.",
    ["reason", "level"],
)
ESCALATIONS_REFUSED = Counter(
    "linkage_escalations_refused_total",
    "Automatic moves not made because the center in command has no parent (the city).",
    ["reason"],
)

for _reason in ESCALATION_REASONS:  # at 0 from the start
    ESCALATIONS_REFUSED.labels(_reason)
    for _level in LEVELS:
        ESCALATIONS.labels(_reason, _level)
