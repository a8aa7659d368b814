"""Information reporting up the chain (信息报送, CONTRACT.md section 8).

Reporting is separate from command: a town that keeps the scene must still
tell the county and the city of a significant incident "at once" (第一时间)
and keep them informed. These are the rules, as plain functions over the
network and plain facts; the service stores duties and reports and runs the
deadline scan.

- **The duty.** An incident must be reported once any trigger holds: its
  grade is the network's `reporting.grade` or more severe (I 特别重大 is the
  most severe, IV 一般 the least), its crowd is larger than `reporting.crowd`,
  it has `reporting.casualties` casualties or more, or its category has
  `report_up`. The duty starts when the incident is received with such facts,
  or at the update that first makes a trigger hold; once started it stays,
  even if a later update lowers the figures (what was reported stays known).
- **Deadlines.** The first report (初报) is due `reporting.first` after the
  duty starts; any report filed by then answers it (a final report filed
  before a first one also tells the receivers what happened). The final
  report (终报) is due `reporting.final` after the incident closes and is
  answered only by a `final` report filed at or after the closing. Progress
  reports (续报) may be filed at any time and are never due.
- **Who owes and who files.** The town's center owes the reports, also when
  command has moved up (the town keeps the scene): a late one counts against
  the town. The town's center or the center in command may file.
- **Where they go.** To every ancestor of the town up to and including the
  first one at level `reporting.up_to`, nearest first, except the center
  that filed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.events import REPORT_KINDS
from shared.network import GRADES, LEVELS, Center, Network

KINDS = REPORT_KINDS
# Why an incident must be reported; `report_up` is the category's flag.
TRIGGERS = ("grade", "crowd_size", "casualties", "report_up")

_RANK = {level: i for i, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class ReportingFacts:
    """What the reporting rules read of an incident (intake's fields)."""

    category: str
    town: str
    grade: str | None = None
    crowd_size: int | None = None
    casualties: int | None = None


@dataclass(frozen=True)
class Duty:
    """The incident must be reported since `since`; the first report is due
    at `first_due`. `triggers` names what made it reportable."""

    since: datetime
    first_due: datetime
    triggers: tuple[str, ...]


def is_at_least_as_severe(grade: str, threshold: str) -> bool:
    """True when `grade` is `threshold` or more severe (I > II > III > IV)."""
    return GRADES.index(grade) <= GRADES.index(threshold)


def triggers(facts: ReportingFacts, network: Network) -> tuple[str, ...]:
    """The triggers that hold for these facts, in `TRIGGERS` order; () for none.

    An unknown category or grade triggers nothing here: intake refuses them
    before an incident exists.
    """
    rules = network.reporting
    found = []
    if facts.grade in GRADES and is_at_least_as_severe(facts.grade, rules.grade):
        found.append("grade")
    if facts.crowd_size is not None and facts.crowd_size > rules.crowd:
        found.append("crowd_size")
    if facts.casualties is not None and facts.casualties >= rules.casualties:
        found.append("casualties")
    category = network.categories.get(facts.category)
    if category is not None and category.report_up:
        found.append("report_up")
    return tuple(found)


def must_report(facts: ReportingFacts, network: Network) -> bool:
    return bool(triggers(facts, network))


def duty_on_receipt(facts: ReportingFacts, received_at: datetime, network: Network) -> Duty | None:
    """The duty that starts when the incident is received; None if it need not
    be reported (yet)."""
    found = triggers(facts, network)
    if not found:
        return None
    return Duty(since=received_at, first_due=first_report_due(received_at, network), triggers=found)


def duty_on_update(
    old: ReportingFacts, new: ReportingFacts, updated_at: datetime, network: Network
) -> Duty | None:
    """The duty that starts with this update (`incident_updated`), or None.

    None when the old facts already had to be reported (the duty started
    earlier and keeps its deadline: an update does not push it back) and when
    the new facts need no report either. The caller also keeps a duty that
    started earlier whatever the facts in between: for an incident that
    already has one, this answer is ignored.
    """
    if must_report(old, network):
        return None
    return duty_on_receipt(new, updated_at, network)


def first_report_due(since: datetime, network: Network) -> datetime:
    """初报: `reporting.first` after the incident came to need reporting."""
    return since + network.reporting.first


def final_report_due(closed_at: datetime, network: Network) -> datetime:
    """终报: `reporting.final` after the incident closed (only for an incident
    with a duty; a reopened and closed again incident owes it from the last
    closing)."""
    return closed_at + network.reporting.final


def is_late(due: datetime, answered_at: datetime | None, now: datetime) -> bool:
    """A report is late when it was filed after `due`, or not filed and `due`
    has passed. Filed exactly at `due` is on time."""
    if answered_at is not None:
        return answered_at > due
    return now > due


def answers_first(kind: str) -> bool:
    """Any report answers the first-report duty (see the module docstring)."""
    return kind in KINDS


def answers_final(kind: str, filed_at: datetime, closed_at: datetime) -> bool:
    """Only a final report filed at or after the closing answers the final duty."""
    return kind == "final" and filed_at >= closed_at


def recipients(town: str, network: Network, filed_by: str | None = None) -> list[Center]:
    """The centers a report on an incident in `town` reaches, nearest first:
    every ancestor of the town up to and including the first one whose level
    is `reporting.up_to` or higher, without the center that filed it."""
    ceiling = _RANK[network.reporting.up_to]
    reached = []
    for center in network.ancestors(town):
        if center.code != filed_by:
            reached.append(center)
        if _RANK[center.level] >= ceiling:
            break
    return reached


def may_file(center: str, town: str, command_center: str) -> bool:
    """The town's center or the center in command may file a report."""
    return center in (town, command_center)
