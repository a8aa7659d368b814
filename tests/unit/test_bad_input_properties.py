"""Bad input, without a broker (issue 3 item 5): property-based tests throw
malformed, oversized, wrong-typed and hostile values at the network file's
parser, at intake's report schema and at dispatch's calls.

Each must end in the contract's structured error (`NetworkError` for the
network; `ValidationError`, `NotFound`, `InvalidTransition`, `Forbidden` for a
call) and store nothing, or be accepted as something the rest of the platform
can use. The strategies here are also the integration suite's
(tests/integration/test_bad_input_rpc.py), over real RPC.
"""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.dispatch.lifecycle import STATUSES
from services.dispatch.models import Base as DispatchBase
from services.dispatch.models import OrderHistory, WorkOrder
from services.dispatch.models import outbox as dispatch_outbox
from services.dispatch.models import processed_events as dispatch_processed
from services.dispatch.service import DispatchService
from services.intake.domain import incident_from_report
from services.intake.models import Incident
from services.intake.schemas import CHANNELS, GRADES, PHONE, REQUEST_TYPES, ReportSchema
from shared.auth import Caller
from shared.db import Database, Store
from shared.dependencies import validated
from shared.errors import Forbidden, InvalidTransition, NotFound, ValidationError
from shared.events import make_event, utcnow
from shared.network import (
    DUTIES,
    LEVELS,
    WEIGHT_KEYS,
    Network,
    NetworkError,
    load_network,
    parse_network,
)
from tests.conftest import sample_network
from tests.support.databases import migrated_sqlite
from tests.support.reports import DONGSHAN, report

NETWORK = load_network()
# No `explain` phase: on these large inputs it can take minutes after a failure.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
COUNTY = "511123"
CITY = "511100"
YUJIN = "511123102"

# -- hostile values -------------------------------------------------------------

CONTROL_CHARS = [chr(c) for c in range(32) if chr(c) not in "\t\n\r"]
SURROGATE = st.characters(categories=["Cs"])
NASTY_STRINGS = [
    "",
    " ",
    "\t\n\r",
    "\x00",
    "a\x00b",
    "\x1b[31mred",
    "\ud800",
    "a\udfffb",
    "\u202eevil",
    "\ufeff",
    "null",
    "None",
    "NaN",
    "-1",
    "1e999",
    "'; DROP TABLE incidents; --",
    "../../etc/passwd",
    "%s%s%n",
    "{}",
    "[]",
    "9" * 40,
]
HUGE_INTS = [-1, -(2**31) - 1, 2**31, 2**63, -(2**63) - 1, 10**20, 10**400]


def oversized(limit: int) -> st.SearchStrategy[str]:
    """Strings longer than `limit` characters (built cheaply, not drawn char by char)."""
    return st.builds(
        lambda n, unit: (unit * n)[:n],
        st.integers(limit + 1, limit + 3000),
        st.sampled_from(["x", "中", "é", "x\n"]),
    )


def _around(middle: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, m, b: a + m + b, st.text(max_size=4), middle, st.text(max_size=4))


with_control = _around(st.sampled_from(CONTROL_CHARS))
with_surrogate = _around(SURROGATE)
hostile_text = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=30),
    with_control,
    with_surrogate,
    oversized(200),
)
numbers = st.one_of(
    st.integers(), st.sampled_from(HUGE_INTS), st.floats(), st.sampled_from([math.nan, math.inf])
)
_scalars = st.one_of(st.none(), st.booleans(), numbers, hostile_text)


def _nest(depth: int, kind: str):
    value = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


def junk_of(scalars: st.SearchStrategy, keys: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        scalars,
        st.recursive(
            scalars,
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
            max_leaves=12,
        ),
        st.builds(_nest, st.integers(20, 200), st.sampled_from(["list", "dict"])),
    )


# What can travel as a JSON RPC argument: the integration suite's junk.
json_junk = junk_of(_scalars, st.one_of(st.text(max_size=8), with_surrogate, with_control))

# What YAML can hand the network parser (safe_load): also dates, bytes, sets,
# non-string keys; surrogates cannot come out of YAML, but parse_network takes
# Python data, so they are thrown in too.
_yaml_scalars = st.one_of(
    _scalars, st.dates(), st.datetimes(), st.binary(max_size=8), st.sets(st.integers(), max_size=3)
)
_yaml_keys = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), hostile_text, st.dates()
)
yaml_junk = junk_of(_yaml_scalars, _yaml_keys)


# -- mutations of a document ------------------------------------------------------


def paths(node, prefix=()):
    """Every path (tuple of keys and indices) into a nested dict/list document."""
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def mutation(path_strategy, values, keys):
    return st.tuples(
        path_strategy, st.sampled_from(["replace", "replace", "delete", "add"]), values, keys
    )


def apply(document, mutations):
    """Apply (path, op, value, key) mutations; a path an earlier one removed is skipped."""
    for path, op, value, key in mutations:
        *parents, last = path
        node = document
        for step in parents:
            node = _child(node, step)
            if node is _MISSING:
                break
        if node is _MISSING or _child(node, last) is _MISSING:
            continue
        if op == "replace":
            node[last] = value
        elif op == "delete":
            del node[last]
        else:
            target = node[last]
            if isinstance(target, dict):
                target[key] = value
            elif isinstance(target, list):
                target.append(value)
            else:
                node[last] = value
    return document


_MISSING = object()


def _child(node, step):
    if isinstance(node, dict):
        return node.get(step, _MISSING) if _hashable(step) else _MISSING
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return node[step]
    return _MISSING


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


# -- 1. the network file --------------------------------------------------------------

SAMPLE = sample_network()
_NETWORK_PATHS = {
    top: [p for p in paths(SAMPLE) if p[0] == top] for top in SAMPLE
}  # grouped by section, so the long holiday list does not drown the rest
network_path = st.sampled_from(sorted(_NETWORK_PATHS)).flatmap(
    lambda top: st.sampled_from(_NETWORK_PATHS[top])
)
network_mutations = st.lists(mutation(network_path, yaml_junk, _yaml_keys), min_size=1, max_size=3)


def assert_usable(network: Network) -> None:
    """What the services rely on from a network they were started with."""
    assert isinstance(network, Network)
    assert 0 <= network.county_crowd < network.city_crowd
    deadlines = network.deadlines
    for name in ("accept", "arrive_tier1", "arrive_tier2", "overdue_grace"):
        assert getattr(deadlines, name) > timedelta(0), name
    # dispatch adds them to now, escalation adds the grace on top
    for tier in (1, 2):
        utcnow() + deadlines.arrive(tier) + deadlines.overdue_grace
    utcnow() + deadlines.accept + deadlines.overdue_grace
    assert set(network.weights) == set(WEIGHT_KEYS)
    assert all(math.isfinite(w) and w >= 0 for w in network.weights.values()), network.weights
    assert math.isclose(sum(network.weights.values()), 1.0, abs_tol=1e-6)
    assert set(network.grades.values()) <= set(LEVELS)
    # escalation adds the reporting deadlines to an incident's times
    reporting = network.reporting
    utcnow() + reporting.first + reporting.final
    assert reporting.first > timedelta(0) and reporting.final > timedelta(0)
    assert reporting.grade in GRADES and reporting.up_to in LEVELS[1:]
    assert reporting.crowd >= 0 and reporting.casualties >= 1
    assert isinstance(network.reply_workdays, int) and network.reply_workdays > 0
    assert network.calendar.working_hours
    for center in network.centers.values():
        assert isinstance(center.code, str) and center.level in LEVELS
        assert center.parent is None or center.parent in network.centers
        assert all(n in network.centers for n in center.neighbours)
        network.ancestors(center.code)
    held = set()
    for department in network.departments.values():
        assert department.center in network.centers
        assert department.tier in (1, 2) and department.duty in DUTIES
        assert department.roles and all(isinstance(r, str) and r for r in department.roles)
        held.update(department.roles)
    for category in network.categories.values():
        # a transferred category is never dispatched: it may have no lead role
        assert {category.lead, *category.assist} - ({""} if category.transfer_to else set()) <= held


def parse_or_refuse(raw) -> Network | None:
    try:
        network = parse_network(raw)
    except NetworkError as exc:
        assert str(exc)  # it names the problem
        return None
    assert_usable(network)
    return network


@settings(max_examples=200, deadline=None, phases=PHASES)
@given(mutations=network_mutations)
def test_a_mutated_network_is_refused_with_a_network_error_or_usable(mutations):
    parse_or_refuse(apply(copy.deepcopy(SAMPLE), mutations))


@settings(max_examples=100, deadline=None, phases=PHASES)
@given(raw=yaml_junk)
def test_any_top_level_value_is_refused_with_a_network_error(raw):
    with pytest.raises(NetworkError):
        parse_network(raw)


@settings(max_examples=100, deadline=None, phases=PHASES)
@given(section=st.sampled_from(sorted(SAMPLE)), value=yaml_junk)
def test_any_section_replaced_by_junk_is_a_network_error_or_usable(section, value):
    parse_or_refuse({**copy.deepcopy(SAMPLE), section: value})


def _with(section_path, value):
    network = copy.deepcopy(SAMPLE)
    *parents, last = section_path
    node = network
    for step in parents:
        node = node[step]
    node[last] = value
    return network


# Found by the properties above; each is one input, kept so it stays fixed.
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_with(("deadlines_s", "accept"), 10**20), id="deadline-beyond-C-int"),
        pytest.param(_with(("deadlines_s", "accept"), 10**15), id="deadline-beyond-timedelta"),
        pytest.param(_with(("deadlines_s", "overdue_grace"), 10**13), id="deadline-past-year-9999"),
        pytest.param(
            _with(("grades",), {**SAMPLE["grades"], 5: "town", None: "city"}),
            id="grades-unknown-keys-of-two-types",
        ),
        pytest.param(
            _with(("assessment", "weights"), {**SAMPLE["assessment"]["weights"], 1: 0, "x": 0}),
            id="weights-unknown-keys-of-two-types",
        ),
        pytest.param(
            _with(("assessment", "weights", "returns"), math.nan), id="weight-nan-accepted"
        ),
        pytest.param(
            _with(("assessment", "weights", "returns"), 10**400), id="weight-beyond-float"
        ),
    ],
)
def test_known_bad_networks_are_network_errors(raw):
    parse_or_refuse(raw)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b"timezone: \x00\n", id="nul-byte"),
        pytest.param(b"", id="empty"),
        pytest.param(b"!!python/object:os.system ['true']\n", id="python-tag"),
        pytest.param(b"centers: &a [*a]\n", id="self-alias"),
        pytest.param(b"a: " + b"[" * 2000 + b"]" * 2000 + b"\n", id="nested-2000-deep"),
    ],
)
def test_a_hostile_network_file_is_a_network_error(tmp_path, content):
    path = tmp_path / "network.yaml"
    path.write_bytes(content)
    with pytest.raises(NetworkError):
        load_network(path)


# -- 2. intake's report schema --------------------------------------------------------

VALID = report()
ZONES = [
    UTC,
    timezone(timedelta(hours=8)),
    timezone(timedelta(hours=14)),
    timezone(-timedelta(hours=12)),
]
timestamps = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59), timezones=st.none()
    ).map(lambda d: d.isoformat()),
    st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59),
        timezones=st.sampled_from(ZONES),
    ).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+08:00",
            "9999-12-31T23:59:59-12:00",
            "2026-02-30T10:00:00+08:00",
            "2026-11-27T09:15:00+24:00",
            "2026-11-27T09:15:00",
            "2026-11-27",
            "yesterday",
        ]
    ),
)
# Near-valid values: codes of the network and values of the enumerations, so
# that mutations also reach the checks behind the type checks.
near_valid = st.sampled_from(
    [
        DONGSHAN,
        YUJIN,
        COUNTY,
        CITY,
        "water.burst_main",
        "mass.gathering",
        *CHANNELS,
        *REQUEST_TYPES,
        *GRADES,
        "13800001234",
        "+86 138-0000-1234",
        "+1234567890123456789012345678901\n",
        29.2,
        -90.0,
        180.0,
        0,
        10_000_000,
        10_000_001,
        {"town": DONGSHAN, "address": "x"},
        {"name": "王", "phone": "123"},
    ]
)
report_value = st.one_of(json_junk, near_valid.map(copy.deepcopy), timestamps)
report_key = st.one_of(st.sampled_from([*VALID, "lat", "town", "phone"]), hostile_text)
_REPORT_PATHS = list(paths(VALID))
report_mutations = st.lists(
    mutation(st.sampled_from(_REPORT_PATHS), report_value, report_key), min_size=1, max_size=4
)

# For each field: values it must refuse, and the error key that must name it.
_NOT_STRINGS = st.one_of(st.booleans(), numbers, st.lists(st.text(max_size=3), max_size=2))
_NON_TEXT = st.one_of(
    _NOT_STRINGS, with_control, with_surrogate, st.dictionaries(st.text(), st.text(), max_size=2)
)


def bad_text(limit: int, nullable: bool = False, empty_ok: bool = False):
    bad = [_NON_TEXT, oversized(limit)]
    if not nullable:
        bad.append(st.none())
    if not empty_ok:
        bad.append(st.just(""))
    return st.one_of(*bad)


def bad_choice(choices, nullable: bool = False):
    bad = [_NON_TEXT, hostile_text.filter(lambda v: v not in choices), oversized(50)]
    return st.one_of(*bad) if nullable else st.one_of(st.none(), *bad)


def bad_count(maximum: int):
    return st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=maximum + 1),
        st.floats(),
        st.booleans(),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=2),
    )


def bad_coordinate(limit: float):
    return st.one_of(
        st.floats(min_value=limit, exclude_min=True),
        st.floats(max_value=-limit, exclude_max=True),
        st.sampled_from([math.nan, math.inf, -math.inf, 10**400, True, None, "north"]),
        st.lists(st.floats(), max_size=2),
    )


bad_timestamp = st.one_of(
    _NOT_STRINGS,
    st.datetimes(timezones=st.none()).map(lambda d: d.isoformat()),
    hostile_text.filter(lambda t: not re.match(r"^\d{4}-\d\d-\d\dT", t)),
)

BAD_FIELDS: dict[tuple, st.SearchStrategy] = {
    ("source_system",): bad_text(64),
    ("external_id",): bad_text(128),
    ("channel",): bad_choice(CHANNELS),
    ("category",): bad_text(64),
    ("request_type",): bad_choice(REQUEST_TYPES),
    ("title",): bad_text(200),
    ("description",): bad_text(4000, empty_ok=True),
    ("location",): st.one_of(_NOT_STRINGS, hostile_text, st.none(), st.just({})),
    ("location", "town"): bad_text(32),
    ("location", "address"): bad_text(500),
    ("location", "lat"): bad_coordinate(90),
    ("location", "lon"): bad_coordinate(180),
    ("reported_at",): st.one_of(bad_timestamp, st.none()),
    ("occurred_at",): bad_timestamp,
    ("reporter",): st.one_of(_NOT_STRINGS, hostile_text),
    ("reporter", "name"): bad_text(100),
    ("reporter", "phone"): st.one_of(
        bad_text(32), st.sampled_from(["abc", "12", "1" * 40, "123;rm -rf /", "+"])
    ),
    ("crowd_size",): bad_count(10_000_000),
    ("casualties",): bad_count(1_000_000),
    ("grade",): bad_choice(GRADES, nullable=True),
    ("center",): bad_text(32, nullable=True),
}
# Codes checked against the network: a schema-level check, which marshmallow
# runs only when every field is well-formed, so these come without other junk.
BAD_CODES: dict[tuple, st.SearchStrategy] = {
    ("category",): st.sampled_from(["water", "x.y", "mass.gathering ", "MASS.GATHERING"]),
    ("location", "town"): st.sampled_from([COUNTY, CITY, "000000000", DONGSHAN + " "]),
    ("center",): st.sampled_from([YUJIN, "nowhere", "511129"]),
}
KNOWN_KEYS = {
    (): set(ReportSchema().fields),
    ("location",): {"town", "address", "lat", "lon"},
    ("reporter",): {"name", "phone"},
}
REQUIRED = [
    ("source_system",),
    ("external_id",),
    ("channel",),
    ("category",),
    ("request_type",),
    ("title",),
    ("location",),
    ("location", "town"),
    ("location", "address"),
    ("reported_at",),
]


@st.composite
def bad_report(draw, junk=True):
    """A report with at least one field it must refuse; returns (report, error key).

    With `junk`, other fields may be mutated too (extra keys, other junk), so the
    refusal must hold whatever else is wrong."""
    document = copy.deepcopy(VALID)
    kind = draw(st.sampled_from(["field", "field", "field", "missing", "unknown", "code"]))
    if kind != "code" and junk and draw(st.booleans()):
        apply(document, draw(report_mutations))
    if kind == "unknown":
        where = draw(st.sampled_from(sorted(KNOWN_KEYS)))
        key = draw(hostile_text.filter(lambda k: k not in KNOWN_KEYS[where]))
        container = _container(document, where)
        container[key] = draw(json_junk)
        return document, ".".join((*where, str(key))) if where else str(key)
    table = {"field": BAD_FIELDS, "code": BAD_CODES}.get(kind, {p: None for p in REQUIRED})
    path = draw(st.sampled_from(sorted(table)))
    container = _container(document, path[:-1])
    if kind == "missing":
        container.pop(path[-1], None)
    else:
        container[path[-1]] = draw(table[path])
    return document, ".".join(path)


def _container(document: dict, path: tuple) -> dict:
    """The dict at `path`, made valid again if a mutation broke it (only its key is tested)."""
    node = document
    for step in path:
        if not isinstance(node.get(step), dict):
            node[step] = copy.deepcopy(VALID[step])
        node = node[step]
    return node


def assert_structured(error: ValidationError) -> dict[str, list[str]]:
    """The contract's error: `{"field": ["reason", ...]}`, also as its JSON message."""
    errors = error.errors
    assert isinstance(errors, dict) and errors
    for key, reasons in errors.items():
        assert isinstance(key, str)
        assert isinstance(reasons, list) and reasons
        assert all(isinstance(reason, str) and reason for reason in reasons)
    assert json.loads(str(error)) == errors
    return errors


def _string_columns() -> dict[str, int | None]:
    return {c.name: getattr(c.type, "length", None) for c in Incident.__table__.columns}


INCIDENT_COLUMNS = _string_columns()


def assert_storable(data: dict) -> None:
    """An accepted report fits intake's table and the events that follow it."""
    location = data["location"]
    reporter = data["reporter"] or {}
    row = incident_from_report(data, "i" * 32, datetime.now(UTC))
    texts = {name: value for name, value in row.items() if name in INCIDENT_COLUMNS}
    texts = {k: v for k, v in texts.items() if isinstance(v, str) or v is None}
    texts.pop("incident_id")
    for column, value in texts.items():
        if value is None:
            continue
        assert isinstance(value, str), column
        limit = INCIDENT_COLUMNS[column]
        assert limit is None or len(value) <= limit, (column, len(value))
        assert not any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value), column
        assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in value), column
    if reporter.get("phone") is not None:
        assert re.fullmatch(PHONE.strip("^$"), reporter["phone"]), reporter["phone"]
    for name in ("reported_at", "occurred_at"):
        if data[name] is not None:
            assert data[name].tzinfo is not None
            data[name].astimezone(UTC)  # stored as UTC: must exist in UTC
    for name in ("lat", "lon"):
        if location.get(name) is not None:
            assert math.isfinite(location[name])
    for name in ("crowd_size", "casualties"):
        value = data[name]
        assert value is None or (type(value) is int and 0 <= value < 2**31)


def load_report(data):
    """`validated` as intake calls it: the loaded report, or the structured error."""
    try:
        loaded = validated(ReportSchema(), data, network=NETWORK)
    except ValidationError as error:
        return None, assert_structured(error)
    assert_storable(loaded)
    return loaded, None


def test_the_valid_report_is_valid():
    loaded, errors = load_report(copy.deepcopy(VALID))
    assert errors is None and loaded["location"]["town"] == DONGSHAN


@settings(max_examples=300, deadline=None, phases=PHASES)
@given(mutations=report_mutations)
def test_a_mutated_report_is_refused_with_a_structured_error_or_storable(mutations):
    load_report(apply(copy.deepcopy(VALID), mutations))


@settings(max_examples=300, deadline=None, phases=PHASES)
@given(case=bad_report())
def test_a_bad_field_is_refused_and_named(case):
    data, field = case
    loaded, errors = load_report(data)
    assert loaded is None, f"{field}={_at(data, field)!r} was accepted"
    if not field.split(".")[-1]:
        return  # an unknown key "" cannot be named better than `_schema`/`location.`
    top = field.split(".")[0]
    assert any(key == top or key.startswith(top + ".") for key in errors), (field, errors)


@settings(max_examples=100, deadline=None, phases=PHASES)
@given(data=json_junk.filter(lambda v: not isinstance(v, dict)))
def test_a_report_that_is_not_an_object_is_refused(data):
    loaded, errors = load_report(data)
    assert loaded is None and "_schema" in errors


def _at(data, dotted):
    node = data
    for step in dotted.split("."):
        node = node.get(step) if isinstance(node, dict) else None
    return node


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"reported_at": "0001-01-01T00:00:00+08:00"}, id="reported-before-year-1-utc"),
        pytest.param({"reported_at": "9999-12-31T23:00:00-08:00"}, id="reported-after-9999-utc"),
        pytest.param({"occurred_at": "0001-01-01T07:59:59+08:00"}, id="occurred-before-year-1-utc"),
        pytest.param(
            {"reporter": {"name": "王", "phone": "+1234567890123456789012345678901\n"}},
            id="phone-trailing-newline-33-chars",
        ),
        pytest.param({"reporter": {"name": "王", "phone": "13800001234\n"}}, id="phone-newline"),
    ],
)
def test_known_bad_reports_are_refused(changes):
    loaded, errors = load_report(report(**changes))
    assert loaded is None, f"accepted: {changes}"
    assert set(errors) & {"reported_at", "occurred_at", "reporter.phone"}


# -- 3. dispatch's calls, against a real SQLite database (no broker) ------------------


@pytest.fixture
def dispatch(tmp_path):
    """A dispatch worker with one incident and its dispatched lead order."""
    from nameko.testing.services import worker_factory

    database = Database(DispatchBase.metadata, dispatch_outbox, dispatch_processed)
    database.container = SimpleNamespace(
        service_name="dispatch",
        config={
            "DATABASE_URLS": {"dispatch": migrated_sqlite(tmp_path / "dispatch.db", "dispatch")}
        },
    )
    database.setup()
    database.start()
    service = worker_factory(DispatchService, db=Store(database), network=NETWORK)
    service.auth.return_value = Caller(sub="admin-1", kind="admin")  # `api` asks `auth`
    now = utcnow()
    service.on_incident_received(
        make_event(
            "intake",
            "incident_received",
            incident_id="inc-1",
            category="water.burst_main",
            request_type="help",
            channel="12345",
            town=DONGSHAN,
            center=DONGSHAN,
            title="t",
            crowd_size=None,
            casualties=None,
            grade=None,
            reported_at=now,
            received_at=now,
        )
    )
    [order] = service.list_orders(incident_id="inc-1")
    yield SimpleNamespace(service=service, database=database, order=order)
    database.stop()


def dispatch_state(database) -> tuple:
    """Everything a refused call must leave alone."""
    with database.session() as session:
        return (
            tuple(session.execute(select(WorkOrder.order_id, WorkOrder.status)).all()),
            session.scalar(select(func.count()).select_from(OrderHistory)),
            session.scalar(select(func.count()).select_from(dispatch_outbox)),
        )


# Each call's arguments, in order, and the longest string each text argument takes
# (the actor is the caller's token subject, not an argument).
DISPATCH_CALLS = {
    "get_order": ["order_id"],
    "accept": ["order_id"],
    "arrive": ["order_id"],
    "report": ["order_id", "note"],
    "complete": ["order_id", "result"],
    "request_reinforcement": ["order_id", "reason", "crowd_size"],
    "return_order": ["order_id", "reason"],
}
TEXT_LIMITS = {"order_id": 64, "note": 4000, "result": 4000, "reason": 2000}
LIST_FILTERS = ("incident_id", "center", "department", "status", "limit")


def bad_argument(name: str) -> st.SearchStrategy:
    """Values `name` must refuse whatever the other arguments are."""
    if name == "crowd_size":
        return st.one_of(
            st.integers(max_value=-1), st.floats(), st.booleans(), hostile_text, st.lists(st.none())
        )
    strategies = [
        _NOT_STRINGS,
        st.none(),
        st.sampled_from(["", " ", "\t\n"]),
        with_control,
        with_surrogate,
        oversized(TEXT_LIMITS[name]),
        st.dictionaries(st.text(max_size=3), json_junk, max_size=2),
    ]
    if name == "order_id":  # well-formed, but no such order
        strategies.append(st.text(min_size=1, max_size=20).filter(lambda t: t.strip()))
    return st.one_of(*strategies)


def any_argument(name: str, order_id: str) -> st.SearchStrategy:
    valid = {
        "order_id": order_id,
        "note": "阀门已关闭",
        "result": "管道已修复",
        "reason": "人手不足",
        "crowd_size": 30,
    }[name]
    return st.one_of(st.just(valid), bad_argument(name), json_junk)


@st.composite
def hostile_dispatch_call(draw, order_id: str):
    """(method, args): at least one argument the call must refuse."""
    method = draw(st.sampled_from(sorted(DISPATCH_CALLS)))
    names = DISPATCH_CALLS[method]
    bad = draw(st.sampled_from(names))
    args = [draw(bad_argument(n) if n == bad else any_argument(n, order_id)) for n in names]
    return method, args


@st.composite
def hostile_list_filters(draw):
    """list_orders(**filters) with at least one filter it must refuse."""
    bad = draw(st.sampled_from(LIST_FILTERS))
    filters = {}
    for name in LIST_FILTERS:
        if name == bad:
            if name == "limit":
                value = draw(
                    st.one_of(
                        st.integers(max_value=0),
                        st.integers(min_value=5001),
                        st.floats(),
                        st.booleans(),
                        hostile_text,
                    )
                )
            elif name == "status":
                value = draw(bad_choice(STATUSES))
                value = value if value is not None else "lost"
            else:
                value = draw(
                    st.one_of(
                        _NOT_STRINGS, with_control, with_surrogate, oversized(64), st.just("")
                    )
                )
            filters[name] = value
        elif draw(st.booleans()):
            filters[name] = draw(json_junk)
    return filters


REFUSALS = (ValidationError, NotFound, InvalidTransition, Forbidden)
# Each act on an order with valid arguments after the order's id.
VALID_ACTS = {
    "accept": [],
    "arrive": [],
    "report": ["阀门已关闭"],
    "complete": ["管道已修复"],
    "request_reinforcement": ["人手不足", 30],
    "return_order": ["不属于本单位职责"],
}


@settings(
    max_examples=200,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_dispatch_refuses_bad_arguments_and_changes_nothing(dispatch, data):
    before = dispatch_state(dispatch.database)
    method, args = data.draw(hostile_dispatch_call(dispatch.order["order_id"]), label="call")
    with pytest.raises(REFUSALS) as refused:
        getattr(dispatch.service, method)(*args)
    if isinstance(refused.value, ValidationError):
        assert_structured(refused.value)
    assert dispatch_state(dispatch.database) == before


@settings(
    max_examples=100,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(filters=hostile_list_filters())
def test_list_orders_refuses_bad_filters(dispatch, filters):
    with pytest.raises(ValidationError) as refused:
        dispatch.service.list_orders(**filters)
    assert_structured(refused.value)


@pytest.mark.parametrize(
    "method, args",
    [
        pytest.param("get_order", ["\ud800"], id="get_order-surrogate-id"),
        pytest.param("accept", ["{order}\ud800"], id="accept-surrogate-id"),
        pytest.param("return_order", ["{order}", "原因\udc00"], id="return-surrogate-reason"),
    ],
)
def test_known_bad_dispatch_arguments_are_refused(dispatch, method, args):
    before = dispatch_state(dispatch.database)
    args = [a.replace("{order}", dispatch.order["order_id"]) for a in args]
    with pytest.raises(REFUSALS):
        getattr(dispatch.service, method)(*args)
    assert dispatch_state(dispatch.database) == before


@pytest.mark.parametrize("method, args", [(m, ["{order}", *a]) for m, a in VALID_ACTS.items()])
def test_another_departments_order_is_forbidden_and_unchanged(dispatch, method, args):
    before = dispatch_state(dispatch.database)
    dispatch.service.auth.return_value = Caller(
        sub="治安-赵", kind="department", center=DONGSHAN, department="dongshan-police"
    )
    args = [dispatch.order["order_id"] if a == "{order}" else a for a in args]
    with pytest.raises(Forbidden):
        getattr(dispatch.service, method)(*args)
    assert dispatch_state(dispatch.database) == before
