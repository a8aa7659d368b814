"""Assessment's domain series: department scores, satisfaction, ratings recorded.

The two gauges are recomputed from the database by a timer over a trailing
window, by one instance per interval, and the values saved for the others
(gauges.py), so every instance reports the same values; a department appears
once it has data and disappears when it no longer has any.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import Counter, Gauge

from shared.events import RATINGS

log = logging.getLogger("services.assessment")

DEPARTMENT_SCORE = Gauge(
    "linkage_department_score",
    "Department score 0-100 over the trailing window (管理考核), by center and department.",
    ["center", "department"],
)
DEPARTMENT_SATISFACTION = Gauge(
    "linkage_department_satisfaction_ratio",
    "Share of rated incidents satisfied or basically satisfied (群众满意率), 0-1.",
    ["center", "department"],
)
SATISFACTION_RATINGS = Counter(
    "linkage_satisfaction_ratings_total",
    "Satisfaction ratings recorded (回访), by rating; a replaced rating counts again.",
    ["rating"],
)

for _rating in RATINGS:  # every rating shows from the start, at 0
    SATISFACTION_RATINGS.labels(_rating)

_published: dict[str, set[tuple[str, str]]] = {
    "score": set(),
    "satisfaction": set(),
}


def publish(
    scores: Mapping[tuple[str, str], float], satisfaction: Mapping[tuple[str, str], float]
) -> None:
    """Set the gauges to these values, keyed by (center, department), and drop
    the series of departments that no longer have data."""
    for name, gauge, values in (
        ("score", DEPARTMENT_SCORE, scores),
        ("satisfaction", DEPARTMENT_SATISFACTION, satisfaction),
    ):
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        for labels in _published[name] - set(values):
            gauge.remove(*labels)
        _published[name] = set(values)


def rated(rating: str) -> None:
    """A citizen's rating recorded (counted once committed)."""
    SATISFACTION_RATINGS.labels(rating).inc()
    log.info("satisfaction recorded for an incident: %s", rating)
