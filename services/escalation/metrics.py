"""Escalation's domain series (command moves by reason and level, and
refusals) and the log line of each outcome, both counted after the commit."""

from __future__ import annotations

import logging

from prometheus_client import Counter

from services.escalation import rules
from shared.events import DUE_REPORTS, ESCALATION_REASONS, REPORT_KINDS
from shared.network import LEVELS, Network

log = logging.getLogger("services.escalation")

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

REPORTS_FILED = Counter(
    "linkage_reports_filed_total",
    "Information reports (信息报送) filed, by kind: first, progress, final.",
    ["kind"],
)
REPORTS_OVERDUE = Counter(
    "linkage_reports_overdue_total",
    "First or final reports not filed by their deadline, by kind and by the "
    "level of the center that owed them.",
    ["kind", "level"],
)

for _kind in REPORT_KINDS:
    REPORTS_FILED.labels(_kind)
for _kind in DUE_REPORTS:
    for _level in LEVELS:
        REPORTS_OVERDUE.labels(_kind, _level)
for _reason in ESCALATION_REASONS:  # at 0 from the start
    ESCALATIONS_REFUSED.labels(_reason)
    for _level in LEVELS:
        ESCALATIONS.labels(_reason, _level)


def count(incident_id: str, outcome: rules.Verdict, network: Network) -> None:
    """Metrics and the log line of a decision, once it is committed."""
    if isinstance(outcome, rules.Move):
        ESCALATIONS.labels(outcome.reason, network.centers[outcome.to_center].level).inc()
        if outcome.reason == "neighbour":
            towns = ", ".join(outcome.assist_centers)
            log.info(
                "incident %s: neighbour towns %s join %s", incident_id, towns, outcome.from_center
            )
        else:
            log.info(
                "incident %s: command %s → %s (%s)",
                incident_id,
                outcome.from_center,
                outcome.to_center,
                outcome.reason,
            )
    elif isinstance(outcome, rules.NoParent):
        ESCALATIONS_REFUSED.labels(outcome.reason).inc()
        log.warning("incident %s: not escalated: %s", incident_id, outcome.message)
    elif isinstance(outcome, rules.Declined):
        _log_declined(incident_id, outcome)


def _log_declined(incident_id: str, declined: rules.Declined) -> None:
    """A move from a center no longer in command is routine; a downward one is a bug."""
    move = declined.move
    if declined.why == rules.NOT_IN_COMMAND:
        log.info(
            "incident %s: %s from %s ignored, %s is in command",
            incident_id,
            move.reason,
            move.from_center,
            declined.command_center,
        )
    elif declined.why == rules.DOWNWARD:
        log.error(
            "incident %s: refusing %s down from %s to %s",
            incident_id,
            move.reason,
            move.from_center,
            move.to_center,
        )
