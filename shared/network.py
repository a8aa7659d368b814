"""The linkage network as data: centers, departments, categories and rules.

A deployment describes itself in one YAML file (CONTRACT.md section 4). This
module loads it into frozen dataclasses and refuses a file that would make the
rules ambiguous: every problem is reported as a `NetworkError` that names the
offending entry, so a center never starts on a half-valid network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

LEVELS = ("town", "county", "city")
GRADES = ("I", "II", "III", "IV")
DUTIES = ("24h", "office")
DEADLINE_KEYS = ("accept", "arrive_tier1", "arrive_tier2", "overdue_grace")
WEIGHT_KEYS = (
    "satisfaction",
    "accepted_on_time",
    "arrived_on_time",
    "completion",
    "returns",
)
DEFAULT_WEIGHTS = {
    "satisfaction": 0.4,
    "accepted_on_time": 0.2,
    "arrived_on_time": 0.2,
    "completion": 0.1,
    "returns": 0.1,
}
MAX_DEADLINE_S = 7 * 24 * 3600  # a week: anything longer is not a deadline
REPORTING_KEYS = ("grade", "crowd", "casualties", "first_s", "final_s", "up_to")
# Non-emergency requests are answered within this many working days when the
# network file does not say (CONTRACT.md section 7's example).
DEFAULT_REPLY_WORKDAYS = 5
MAX_REPLY_WORKDAYS = 60  # about three months of working days: beyond that it is not a deadline
SAMPLE_NETWORK = Path(__file__).parent / "networks" / "sample.yaml"

_TIME_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class NetworkError(ValueError):
    """The network file cannot be used; the message names the entry."""


@dataclass(frozen=True)
class Center:
    code: str
    name: str
    level: str
    parent: str | None = None
    neighbours: tuple[str, ...] = ()


@dataclass(frozen=True)
class Department:
    code: str
    center: str
    name: str
    roles: tuple[str, ...]
    tier: int
    duty: str  # "24h" or "office"


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    lead: str  # "" for a category that is transferred and never dispatched
    assist: tuple[str, ...] = ()
    report_up: bool = False  # every incident of it must be reported up (信息报送)
    transfer_to: str | None = None  # handed to another system ("110", "信访"), not dispatched


@dataclass(frozen=True)
class Calendar:
    """Working hours (Monday–Friday), holidays and worked weekend days (调休)."""

    working_hours: tuple[tuple[time, time], ...]
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def is_working_day(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        return day.weekday() < 5

    def is_working_time(self, local: datetime) -> bool:
        """`local` is a wall-clock time in the network's timezone."""
        if not self.is_working_day(local.date()):
            return False
        now = local.time().replace(tzinfo=None)
        return any(start <= now < end for start, end in self.working_hours)


@dataclass(frozen=True)
class Deadlines:
    accept: timedelta
    arrive_tier1: timedelta
    arrive_tier2: timedelta
    overdue_grace: timedelta

    def arrive(self, tier: int) -> timedelta:
        return self.arrive_tier1 if tier == 1 else self.arrive_tier2


@dataclass(frozen=True)
class Reporting:
    """信息报送: when an incident must be reported up, by when, and how far.

    An incident must be reported once its grade is `grade` or more severe
    (I is the most severe), its crowd is larger than `crowd`, it has at least
    `casualties` casualties, or its category has `report_up`. The first report
    (初报) is due `first` after that; the final report (终报) `final` after the
    incident closes. Reports reach the town's ancestors up to the first one of
    level `up_to`.
    """

    grade: str = "III"
    crowd: int = 30
    casualties: int = 1
    first: timedelta = timedelta(seconds=1800)
    final: timedelta = timedelta(seconds=86400)
    up_to: str = "city"


@dataclass(frozen=True)
class Network:
    timezone: ZoneInfo
    calendar: Calendar
    deadlines: Deadlines
    county_crowd: int
    city_crowd: int
    grades: dict[str, str]
    centers: dict[str, Center]
    departments: dict[str, Department]
    categories: dict[str, Category]
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    reporting: Reporting = field(default_factory=Reporting)
    reply_workdays: int = DEFAULT_REPLY_WORKDAYS

    def is_working_time(self, at: datetime) -> bool:
        return self.calendar.is_working_time(at.astimezone(self.timezone))

    def departments_of(self, center: str) -> list[Department]:
        """Departments of one center, in the file's order (its priority)."""
        return [d for d in self.departments.values() if d.center == center]

    def holders(self, center: str, role: str) -> list[Department]:
        return [d for d in self.departments_of(center) if role in d.roles]

    def parent(self, center: str) -> Center | None:
        parent = self.centers[center].parent
        return self.centers[parent] if parent else None

    def ancestors(self, center: str) -> list[Center]:
        """Parent, grandparent, ... nearest first."""
        found = []
        current = self.parent(center)
        while current is not None:
            found.append(current)
            current = self.parent(current.code)
        return found

    def is_below(self, center: str, ancestor: str) -> bool:
        return any(c.code == ancestor for c in self.ancestors(center))

    def towns(self) -> list[Center]:
        return [c for c in self.centers.values() if c.level == "town"]


def load_network(path: str | Path | None = None) -> Network:
    """Read and validate a network file; the sample network by default."""
    path = Path(path) if path else SAMPLE_NETWORK
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NetworkError(f"network file {path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise NetworkError(f"network file {path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise NetworkError(f"network file {path}: not valid YAML ({exc})") from None
    except RecursionError:
        raise NetworkError(f"network file {path}: nested too deeply") from None
    try:
        return parse_network(raw)
    except NetworkError as exc:
        raise NetworkError(f"network file {path}: {exc}") from None


def parse_network(raw: Any) -> Network:
    """Build a `Network` from already-parsed YAML, validating every entry."""
    if not isinstance(raw, dict):
        raise NetworkError("the top level must be a mapping")
    timezone = _timezone(raw.get("timezone", "Asia/Shanghai"))
    calendar = _calendar(_mapping(raw, "calendar"))
    deadlines = _deadlines(_mapping(raw, "deadlines_s"))
    thresholds = _mapping(raw, "thresholds")
    county_crowd = _non_negative_int(thresholds.get("county_crowd"), "thresholds.county_crowd")
    city_crowd = _non_negative_int(thresholds.get("city_crowd"), "thresholds.city_crowd")
    if city_crowd <= county_crowd:
        raise NetworkError("thresholds.city_crowd must be greater than thresholds.county_crowd")
    grades = _grades(_mapping(raw, "grades"))
    centers = _centers(_list(raw, "centers"))
    departments = _departments(_list(raw, "departments"), centers)
    categories = _categories(_list(raw, "categories"), departments.values())
    weights = _weights(raw.get("assessment", {}))
    reporting = _reporting(raw.get("reporting", {}))
    reply_workdays = _reply_workdays(raw.get("reply_workdays", DEFAULT_REPLY_WORKDAYS))
    return Network(
        timezone=timezone,
        calendar=calendar,
        deadlines=deadlines,
        county_crowd=county_crowd,
        city_crowd=city_crowd,
        grades=grades,
        centers=centers,
        departments=departments,
        categories=categories,
        weights=weights,
        reporting=reporting,
        reply_workdays=reply_workdays,
    )


def _mapping(raw: dict, key: str) -> dict:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise NetworkError(f"'{key}' must be a mapping")
    return value


def _list(raw: dict, key: str) -> list:
    value = raw.get(key)
    if not isinstance(value, list) or not value:
        raise NetworkError(f"'{key}' must be a non-empty list")
    return value


def _non_negative_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NetworkError(f"{where} must be a non-negative integer")
    return value


def _text(entry: dict, key: str, where: str) -> str:
    value = entry.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise NetworkError(f"{where}: '{key}' must be a non-empty string")
    return value


def _timezone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    # A name too long for a file name is an OSError from the tzdata lookup.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise NetworkError(f"timezone {name!r} is not a known IANA zone") from None


def _time_range(text: Any, where: str) -> tuple[time, time]:
    match = _TIME_RANGE.match(text) if isinstance(text, str) else None
    if not match:
        raise NetworkError(f"{where}: {text!r} is not a time range HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = time(h1, m1), time(h2, m2)
    if start >= end:
        raise NetworkError(f"{where}: {text!r} ends before it starts")
    return start, end


def _dates(values: Any, where: str) -> frozenset[date]:
    if values is None:
        return frozenset()
    if not isinstance(values, list):
        raise NetworkError(f"{where} must be a list of dates")
    days = set()
    for value in values:
        if isinstance(value, date):
            days.add(value)
            continue
        try:
            days.add(date.fromisoformat(str(value)))
        except ValueError:
            raise NetworkError(f"{where}: {value!r} is not a date YYYY-MM-DD") from None
    return frozenset(days)


def _calendar(raw: dict) -> Calendar:
    hours = raw.get("working_hours")
    if not isinstance(hours, list) or not hours:
        raise NetworkError("calendar.working_hours must be a non-empty list")
    ranges = tuple(
        _time_range(text, f"calendar.working_hours[{i}]") for i, text in enumerate(hours)
    )
    ordered = sorted(ranges)
    for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False):
        if start < end:
            raise NetworkError("calendar.working_hours: ranges overlap")
    holidays = _dates(raw.get("holidays"), "calendar.holidays")
    workdays = _dates(raw.get("workdays"), "calendar.workdays")
    both = holidays & workdays
    if both:
        day = min(both).isoformat()
        raise NetworkError(f"calendar: {day} is both a holiday and a workday")
    return Calendar(tuple(ranges), holidays, workdays)


def _deadlines(raw: dict) -> Deadlines:
    values = {}
    for key in DEADLINE_KEYS:
        seconds = raw.get(key)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int)
            or not 0 < seconds <= MAX_DEADLINE_S
        ):
            raise NetworkError(
                f"deadlines_s.{key} must be a number of seconds from 1 to {MAX_DEADLINE_S}"
            )
        values[key] = timedelta(seconds=seconds)
    return Deadlines(**values)


def _grades(raw: dict) -> dict[str, str]:
    grades = {}
    for grade in GRADES:
        level = raw.get(grade)
        if level not in LEVELS:
            raise NetworkError(f"grades.{grade} must be one of {', '.join(LEVELS)}")
        grades[grade] = level
    unknown = set(raw) - set(GRADES)
    if unknown:
        raise NetworkError(f"grades: unknown grade {sorted(unknown, key=repr)[0]!r}")
    return grades


def _centers(entries: list) -> dict[str, Center]:
    centers: dict[str, Center] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise NetworkError(f"centers[{i}] must be a mapping")
        code = _text(entry, "code", f"centers[{i}]")
        where = f"center {code}"
        if code in centers:
            raise NetworkError(f"{where}: duplicate code")
        level = entry.get("level")
        if level not in LEVELS:
            raise NetworkError(f"{where}: level must be one of {', '.join(LEVELS)}")
        parent = entry.get("parent")
        neighbours = entry.get("neighbours") or []
        if not isinstance(neighbours, list):
            raise NetworkError(f"{where}: neighbours must be a list of center codes")
        centers[code] = Center(
            code=code,
            name=_text(entry, "name", where),
            level=level,
            parent=str(parent) if parent is not None else None,
            neighbours=tuple(str(n) for n in neighbours),
        )
    rank = {level: i for i, level in enumerate(LEVELS)}
    for center in centers.values():
        where = f"center {center.code}"
        if center.parent is None:
            if center.level != "city":
                raise NetworkError(f"{where}: a {center.level} center needs a parent")
            continue
        parent = centers.get(center.parent)
        if parent is None:
            raise NetworkError(f"{where}: unknown parent {center.parent}")
        if rank[parent.level] <= rank[center.level]:
            raise NetworkError(
                f"{where}: parent {parent.code} is a {parent.level}, not above a {center.level}"
            )
        for neighbour in center.neighbours:
            if neighbour not in centers:
                raise NetworkError(f"{where}: unknown neighbour {neighbour}")
            if neighbour == center.code:
                raise NetworkError(f"{where}: a center cannot be its own neighbour")
            if centers[neighbour].level != center.level:
                raise NetworkError(f"{where}: neighbour {neighbour} is not a {center.level}")
    return centers


def _departments(entries: list, centers: dict[str, Center]) -> dict[str, Department]:
    departments: dict[str, Department] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise NetworkError(f"departments[{i}] must be a mapping")
        code = _text(entry, "code", f"departments[{i}]")
        where = f"department {code}"
        if code in departments:
            raise NetworkError(f"{where}: duplicate code")
        center = _text(entry, "center", where)
        if center not in centers:
            raise NetworkError(f"{where}: unknown center {center}")
        roles = entry.get("roles")
        if (
            not isinstance(roles, list)
            or not roles
            or not all(isinstance(r, str) and r for r in roles)
        ):
            raise NetworkError(f"{where}: roles must be a non-empty list of names")
        if len(set(roles)) != len(roles):
            raise NetworkError(f"{where}: a role is listed twice")
        tier = entry.get("tier")
        if type(tier) is not int or tier not in (1, 2):
            raise NetworkError(f"{where}: tier must be 1 or 2")
        duty = entry.get("duty")
        if duty not in DUTIES:
            raise NetworkError(f"{where}: duty must be one of {', '.join(DUTIES)}")
        departments[code] = Department(
            code=code,
            center=center,
            name=_text(entry, "name", where),
            roles=tuple(roles),
            tier=tier,
            duty=duty,
        )
    return departments


def _categories(entries: list, departments: Iterable[Department]) -> dict[str, Category]:
    held = {role for d in departments for role in d.roles}
    categories: dict[str, Category] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise NetworkError(f"categories[{i}] must be a mapping")
        code = _text(entry, "code", f"categories[{i}]")
        where = f"category {code}"
        if code in categories:
            raise NetworkError(f"{where}: duplicate code")
        transfer_to = _transfer_to(entry, where)
        # A transferred category goes to another system whole: it needs no
        # lead role, but one given is still checked so that a typo is caught.
        lead = "" if transfer_to and entry.get("lead") is None else _text(entry, "lead", where)
        assist = entry.get("assist") or []
        if not isinstance(assist, list) or not all(isinstance(r, str) for r in assist):
            raise NetworkError(f"{where}: assist must be a list of roles")
        if lead in assist or len(set(assist)) != len(assist):
            raise NetworkError(f"{where}: assist repeats a role or the lead role")
        for role in (lead, *assist) if lead else assist:
            if role not in held:
                raise NetworkError(f"{where}: role {role!r} is held by no department")
        report_up = entry.get("report_up", False)
        if not isinstance(report_up, bool):
            raise NetworkError(f"{where}: report_up must be true or false")
        categories[code] = Category(
            code=code,
            name=_text(entry, "name", where),
            lead=lead,
            assist=tuple(assist),
            report_up=report_up,
            transfer_to=transfer_to,
        )
    return categories


def _transfer_to(entry: dict, where: str) -> str | None:
    if entry.get("transfer_to") is None:
        return None
    return _text(entry, "transfer_to", where).strip()


def _reporting(raw: Any) -> Reporting:
    """The `reporting` block; each figure left out takes the default."""
    if not isinstance(raw, dict):
        raise NetworkError("'reporting' must be a mapping")
    unknown = set(raw) - set(REPORTING_KEYS)
    if unknown:
        raise NetworkError(f"reporting: unknown key {sorted(unknown, key=repr)[0]!r}")
    default = Reporting()
    grade = raw.get("grade", default.grade)
    if grade not in GRADES:
        raise NetworkError(f"reporting.grade must be one of {', '.join(GRADES)}")
    crowd = _non_negative_int(raw.get("crowd", default.crowd), "reporting.crowd")
    casualties = raw.get("casualties", default.casualties)
    # 0 would make every incident reportable: a deployment that wants that
    # says so with report_up on its categories.
    if isinstance(casualties, bool) or not isinstance(casualties, int) or casualties < 1:
        raise NetworkError("reporting.casualties must be a positive integer")
    deadlines = {}
    for key, fallback in (("first_s", default.first), ("final_s", default.final)):
        seconds = raw.get(key, int(fallback.total_seconds()))
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int)
            or not 0 < seconds <= MAX_DEADLINE_S
        ):
            raise NetworkError(
                f"reporting.{key} must be a number of seconds from 1 to {MAX_DEADLINE_S}"
            )
        deadlines[key] = timedelta(seconds=seconds)
    up_to = raw.get("up_to", default.up_to)
    # A town's report must reach someone above it, so "town" is no answer.
    if up_to not in LEVELS[1:]:
        raise NetworkError(f"reporting.up_to must be one of {', '.join(LEVELS[1:])}")
    return Reporting(
        grade=grade,
        crowd=crowd,
        casualties=casualties,
        first=deadlines["first_s"],
        final=deadlines["final_s"],
        up_to=up_to,
    )


def _reply_workdays(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_REPLY_WORKDAYS:
        raise NetworkError(f"reply_workdays must be a whole number from 1 to {MAX_REPLY_WORKDAYS}")
    return value


def _weights(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise NetworkError("'assessment' must be a mapping")
    given = raw.get("weights", {})
    if not isinstance(given, dict):
        raise NetworkError("assessment.weights must be a mapping")
    unknown = set(given) - set(WEIGHT_KEYS)
    if unknown:
        raise NetworkError(f"assessment.weights: unknown weight {sorted(unknown, key=repr)[0]!r}")
    weights = dict(DEFAULT_WEIGHTS)
    for key, value in given.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 <= value <= 1  # also refuses nan
        ):
            raise NetworkError(f"assessment.weights.{key} must be a number from 0 to 1")
        weights[key] = float(value)
    if abs(sum(weights.values()) - 1.0) > 1e-6:
        raise NetworkError("assessment.weights must add up to 1")
    return weights
