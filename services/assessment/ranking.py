"""Centers ranked (效能督查): the towns of a county, or the counties of a city.

Input, per center directly below the parent, in the network file's order
(plain mappings, as the service aggregates them):

- `center`, `name`;
- `units_score`: the composite score of the center's own units over the
  window, 0–100 or None: `scoring.assess(center, ...)["totals"]["score"]`,
  i.e. the department formula of `scoring.py` applied to all the center's
  orders taken together;
- `orders`, `satisfaction_rate`, `returns`: from the same totals;
- `urges`: orders of the center's units urged (催办) in the window;
- `overdue_orders`: orders announced overdue;
- `reports_due`: information reports (信息报送: first and final) the center
  owed with a deadline in the window; `reports_late`: of those, filed after
  their deadline or not at all.

Formula
-------
Reporting timeliness (报送及时率)

    t = 1 − reports_late / reports_due        (None when nothing was due)

Center score

    S = 100 × (w_u · U/100 + w_t · t) / (w_u + w_t)

over the terms with data, with U the units' score, w_u = 0.8 and w_t = 0.2
(`UNITS_WEIGHT`, `REPORTING_WEIGHT`: the platform's choice; the seeds rank
towns but give no weights). As in `scoring.py`, a term without data drops out
and the other is scaled up, so missing data neither helps nor hurts; a center
with neither has no score (None). S is rounded to 2 decimals. Urges and
overdue orders are shown but not scored again: both already lower U (an
overdue order through the on-time rates, an urge through u).

Rank: exactly as `scoring.rank` ranks departments: 1 is the best, equal
(rounded) scores share a rank and the next one skips (1, 2, 2, 4); centers
without a score come last, sharing the rank after the last scored one. Rows
are returned best first; ties keep the input order.

Worked example
--------------
Towns of 犍为县 in November:

- 东山镇: U = 80.00; 4 reports due, 1 late. t = 1 − 1/4 = 0.75.
  S = 100 × (0.8 × 0.80 + 0.2 × 0.75) = 100 × (0.64 + 0.15) = 79.00
- 玉津镇: U = 85.00; 2 reports due, both late. t = 0.
  S = 100 × (0.8 × 0.85 + 0.2 × 0) = 68.00
- 孝姑镇: U = 75.00; no report due, t = None.
  S = 100 × (0.8 × 0.75) / 0.8 = 75.00
- 清溪镇: no orders (U = None), no report due: S = None.

Ranks: 东山镇 1, 孝姑镇 2, 玉津镇 3 (the best units, but every report late),
清溪镇 4.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.assessment.scoring import rank

UNITS_WEIGHT = 0.8
REPORTING_WEIGHT = 0.2

# Figures passed through to the row unchanged; counts default to 0.
_COUNTS = ("orders", "returns", "urges", "overdue_orders", "reports_due", "reports_late")


def reporting_timeliness(reports_due: int, reports_late: int) -> float | None:
    """t = 1 − late / due, None when no report was due."""
    if reports_due <= 0:
        return None
    return max(0.0, 1.0 - reports_late / reports_due)


def center_score(
    units_score: float | None,
    timeliness: float | None,
    *,
    units_weight: float = UNITS_WEIGHT,
    reporting_weight: float = REPORTING_WEIGHT,
) -> float | None:
    """S = 100 × (w_u·U/100 + w_t·t) / (w_u + w_t) over the terms with data."""
    terms = [
        (units_weight, units_score / 100 if units_score is not None else None),
        (reporting_weight, timeliness),
    ]
    present = [(w, x) for w, x in terms if x is not None]
    total_weight = sum(w for w, _ in present)
    if not present or total_weight <= 0:
        return None
    return round(100 * sum(w * x for w, x in present) / total_weight, 2)


def rank_centers(
    centers: Iterable[Mapping[str, Any]],
    *,
    units_weight: float = UNITS_WEIGHT,
    reporting_weight: float = REPORTING_WEIGHT,
) -> list[dict[str, Any]]:
    """One row per center, best first (see the module docstring).

    Row: `center`, `name`, `orders`, `score`, `units_score`,
    `satisfaction_rate`, `returns`, `urges`, `overdue_orders`, `reports_due`,
    `reports_late`, `reporting_timeliness`, `rank`.
    """
    rows = []
    for given in centers:
        counts = {key: int(given.get(key) or 0) for key in _COUNTS}
        timeliness = reporting_timeliness(counts["reports_due"], counts["reports_late"])
        units_score = given.get("units_score")
        rows.append(
            {
                "center": given["center"],
                "name": given.get("name", given["center"]),
                **counts,
                "satisfaction_rate": given.get("satisfaction_rate"),
                "units_score": units_score,
                "reporting_timeliness": timeliness,
                "score": center_score(
                    units_score,
                    timeliness,
                    units_weight=units_weight,
                    reporting_weight=reporting_weight,
                ),
            }
        )
    # Rows are keyed by position so that a center listed twice cannot hide one.
    ranks = rank({str(i): row["score"] for i, row in enumerate(rows)})
    for i, row in enumerate(rows):
        row["rank"] = ranks[str(i)]
    return sorted(rows, key=lambda row: row["rank"])  # stable: ties keep input order
