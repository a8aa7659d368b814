"""Intake's domain series."""

from prometheus_client import Counter

INCIDENTS_RECEIVED = Counter(
    "linkage_incidents_received_total",
    "Incidents accepted (duplicates excluded) by category, channel and town.",
    ["category", "channel", "town"],
)
