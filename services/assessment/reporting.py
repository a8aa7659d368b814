"""Reporting timeliness (信息报送及时率): the duties to report, as facts.

A duty is one report an incident's town center owed: its first report (初报)
or its final report (终报), keyed by `(incident_id, kind)`, with `center`
(who owed it), `due_at` and `late`. Two events tell of it, in either order
and maybe twice: `escalation.report_overdue` (the deadline passed unmet: late)
and each entry of a `report_filed`'s `answers` (the duty met, late or not).

`merge_duty` combines what is known of a duty so that the order and
repetition of events do not matter (it is commutative, associative and
idempotent): `late` is ORed (once late, it stays late: a first report filed
after its deadline was announced overdue is still a late one), and of two
accounts of the deadline the earliest `(due_at, center)` is kept (escalation
sends the same one; should they ever differ, every instance keeps the same).

A center's figures over [since, until): `reports_due` = its duties with
`due_at` in the window, `reports_late` = those late (`reporting_counts`, the
reference the store's query must agree with).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ReportDuty:
    """A first or final report owed by a town's center (see the module docstring)."""

    incident_id: str
    kind: str
    center: str
    due_at: datetime
    late: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.incident_id, self.kind)


def merge_duty(current: ReportDuty | None, news: ReportDuty) -> ReportDuty:
    """What is known of a duty once `news` is added to `current`."""
    if current is None:
        return news
    if current.key != news.key:
        raise ValueError(f"not the same duty: {current.key} and {news.key}")
    first = min(current, news, key=lambda d: (d.due_at, d.center))
    return replace(first, late=current.late or news.late)


def duty_overdue(event: Mapping[str, Any]) -> ReportDuty:
    """`report_overdue`: the duty's deadline passed with nothing filed."""
    return ReportDuty(event["incident_id"], event["kind"], event["center"], event["due_at"], True)


def duties_answered(event: Mapping[str, Any]) -> list[ReportDuty]:
    """`report_filed`: the duties the report met (none for a progress
    report), owed by `owed_by`, each late or not as escalation judged it."""
    return [
        ReportDuty(
            event["incident_id"], answer["kind"], event["owed_by"], answer["due_at"], answer["late"]
        )
        for answer in event.get("answers") or ()
    ]


def reporting_counts(
    duties: Iterable[ReportDuty], since: datetime, until: datetime
) -> dict[str, tuple[int, int]]:
    """(reports_due, reports_late) per center over [since, until), by `due_at`."""
    found: dict[str, tuple[int, int]] = {}
    for duty in duties:
        if since <= duty.due_at < until:
            due, late = found.get(duty.center, (0, 0))
            found[duty.center] = (due + 1, late + int(duty.late))
    return found
