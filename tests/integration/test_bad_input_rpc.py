"""Bad input over real RPC (issue 3 item 5), against RabbitMQ and both databases.

Hypothesis throws hostile arguments at every RPC of the four services: wrong
types, oversized strings, control characters and surrogates, nested junk,
missing and extra keys, negative and huge numbers, None, wrong arity. Each call
must end in a `RemoteError` of the contract (`ValidationError` with its JSON
message, `NotFound`, `InvalidTransition`, `Forbidden`) or nameko's
`IncorrectSignature`; what it must refuse changes no table; and afterwards a
valid call still succeeds. The strategies are the unit suite's
(tests/unit/test_bad_input_properties.py).

One service runner per test; each test first makes one incident (and its
order) so that calls on a real id are tried too, not only NotFound. Calls are
an administrator's unless a test says otherwise (the actor is the token's
subject, so no call takes an operator any more); a center that is not in
command is refused too (`Forbidden`).
"""

from __future__ import annotations

import importlib.util
import json
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nameko.exceptions import IncorrectSignature, RemoteError
from sqlalchemy import create_engine, func, select

from services.dispatch.service import DispatchService
from services.intake.models import Incident
from services.intake.models import outbox as intake_outbox
from services.intake.service import IntakeService
from tests.conftest import wait_for
from tests.support.reports import DONGSHAN, report
from tests.unit.test_bad_input_properties import (
    CITY,
    COUNTY,
    PHASES,
    YUJIN,
    bad_report,
    hostile_dispatch_call,
    hostile_list_filters,
    hostile_text,
    json_junk,
    oversized,
    report_mutations,
    timestamps,
    with_control,
    with_surrogate,
)
from tests.unit.test_bad_input_properties import apply as mutate

pytestmark = pytest.mark.integration

REMOTE_REFUSALS = {"ValidationError", "NotFound", "InvalidTransition", "Forbidden"}
HOSTILE = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=40,
    deadline=None,
    phases=PHASES,
)


def service_class(module: str, name: str):
    """A service being written elsewhere: skipped only while its module does not exist."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet")
    return getattr(importlib.import_module(module), name)


class Tables:
    """Row counts and rows of one service's database, read as an outsider."""

    def __init__(self, url: str):
        self.engine = create_engine(url)

    def count(self, table) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(table)).scalar_one()

    def rows(self, *columns) -> list[tuple]:
        with self.engine.connect() as connection:
            return sorted(tuple(r) for r in connection.execute(select(*columns)).all())

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def tables(db_urls):
    opened = []

    def open_(service: str) -> Tables:
        opened.append(Tables(db_urls[service]))
        return opened[-1]

    yield open_
    for t in opened:
        t.close()


def call(proxy, method: str, args=(), kwargs=None):
    """The answer, or the refusal: a contract RemoteError or IncorrectSignature."""
    try:
        return "answered", getattr(proxy, method)(*args, **(kwargs or {}))
    except IncorrectSignature as error:
        return "refused", error
    except RemoteError as error:
        assert error.exc_type in REMOTE_REFUSALS, (
            f"{method}{_short(args, kwargs)} raised {error.exc_type}: {str(error.value)[:500]}"
        )
        if error.exc_type == "ValidationError":
            errors = json.loads(error.value)
            assert isinstance(errors, dict) and errors, error.value
            for key, reasons in errors.items():
                assert isinstance(key, str) and isinstance(reasons, list) and reasons
                assert all(isinstance(r, str) and r for r in reasons)
        return "refused", error


def refused(proxy, method: str, args=(), kwargs=None):
    outcome, result = call(proxy, method, args, kwargs)
    assert outcome == "refused", f"{method}{_short(args, kwargs)} was accepted: {result!r:.300}"
    return result


def _short(args, kwargs) -> str:
    return f"(*{args!r:.300}, **{kwargs!r:.200})"


def wait_found(read):
    """Poll a read call until the seeded incident or order has arrived."""

    def ready():
        try:
            return read()
        except RemoteError as error:
            if error.exc_type != "NotFound":
                raise
            return None

    return wait_for(ready, message="the seeded incident")


# -- intake ---------------------------------------------------------------------

any_id = st.one_of(json_junk, hostile_text, oversized(64), st.just("x" * 100_000))


@st.composite
def intake_calls(draw):
    """(method, args, kwargs, must_refuse)."""
    kind = draw(
        st.sampled_from(["bad_report", "bad_report", "mutated", "not_object", "get", "signature"])
    )
    if kind == "bad_report":
        data, _ = draw(bad_report())
        return "submit_report", (data,), {}, True
    if kind == "mutated":  # may be valid: then it is stored, and counted
        data = mutate(report(), draw(report_mutations))
        return "submit_report", (data,), {}, False
    if kind == "not_object":
        return (
            "submit_report",
            (draw(json_junk.filter(lambda v: not isinstance(v, dict))),),
            {},
            True,
        )
    if kind == "get":
        return "get_incident", (draw(any_id),), {}, False
    return draw(
        st.sampled_from(
            [
                ("submit_report", (), {}, True),
                ("submit_report", (report(),), {"center": COUNTY}, True),
                ("submit_report", (report(), report()), {}, True),
                ("submit_report", (), {"report": report(), "dry_run": True}, True),
                ("get_incident", (), {}, True),
                ("get_incident", ("a", "b"), {}, True),
                ("get_incident", (), {"id": "a"}, True),
            ]
        )
    )


def test_intake_refuses_hostile_calls_and_stores_nothing(run_services, rpc, tables):
    run_services(IntakeService)
    intake = tables("intake")
    seeded = rpc.intake.submit_report(report())["incident_id"]
    stored = {"incidents": 1, "outbox": intake.count(intake_outbox)}

    @HOSTILE
    @given(case=intake_calls())
    def check(case):
        method, args, kwargs, must_refuse = case
        outcome, answer = (
            ("refused", refused(rpc.intake, method, args, kwargs))
            if must_refuse
            else call(rpc.intake, method, args, kwargs)
        )
        if method == "submit_report" and outcome == "answered" and answer["status"] == "accepted":
            stored["incidents"] += 1
            stored["outbox"] += 1
        assert intake.count(Incident.__table__) == stored["incidents"]
        assert intake.count(intake_outbox) == stored["outbox"]

    check()
    assert rpc.intake.get_incident(seeded)["incident_id"] == seeded
    answer = rpc.intake.submit_report(report(title="服务仍在运行"))
    assert answer["status"] == "accepted"


# -- dispatch -------------------------------------------------------------------

DISPATCH_SIGNATURES = [
    ("accept", (), {}),
    ("accept", ("{order}", "op"), {}),  # the operator argument is gone
    ("accept", ("{order}",), {"operator": "op"}),
    ("accept", ("{order}",), {"force": True}),
    ("report", ("{order}",), {}),
    ("return_order", ("{order}",), {"why": "x"}),
    ("request_reinforcement", ("{order}", "r"), {"crowd": 5}),
    ("get_order", (), {}),
    ("list_orders", (), {"town": DONGSHAN}),
    ("complete", (), {}),
    ("arrive", ("{order}", None, None), {}),
]


def test_dispatch_refuses_hostile_calls_and_changes_nothing(run_services, rpc, tables):
    from services.dispatch.models import OrderHistory, WorkOrder
    from services.dispatch.models import outbox as dispatch_outbox

    run_services(IntakeService, DispatchService)
    dispatch = tables("dispatch")
    incident = rpc.intake.submit_report(report())["incident_id"]
    [order] = wait_for(lambda: rpc.dispatch.list_orders(incident_id=incident))
    order_id = order["order_id"]

    def state():
        return (
            dispatch.rows(WorkOrder.order_id, WorkOrder.status, WorkOrder.returns),
            dispatch.count(OrderHistory.__table__),
            dispatch.count(dispatch_outbox),
        )

    before = state()

    def fill(value):
        return order_id if value == "{order}" else value

    @HOSTILE
    @given(
        case=st.one_of(
            hostile_dispatch_call(order_id).map(lambda c: (c[0], tuple(c[1]), {}, True)),
            hostile_list_filters().map(lambda f: ("list_orders", (), f, True)),
            st.sampled_from(DISPATCH_SIGNATURES).map(
                lambda s: (s[0], tuple(fill(a) for a in s[1]), s[2], True)
            ),
            # reads may answer, whatever they are given
            any_id.map(lambda i: ("get_order", (i,), {}, False)),
            st.dictionaries(
                st.sampled_from(["incident_id", "center", "department", "status", "limit"]),
                json_junk,
                max_size=3,
            ).map(lambda f: ("list_orders", (), f, False)),
        )
    )
    def check(case):
        method, args, kwargs, must_refuse = case
        if must_refuse:
            refused(rpc.dispatch, method, args, kwargs)
        else:
            call(rpc.dispatch, method, args, kwargs)
        assert state() == before

    check()
    assert rpc.dispatch.accept(order_id)["status"] == "accepted"


# -- escalation -----------------------------------------------------------------


def bad_text(limit: int):
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.sampled_from(["", " ", "\t\n"]),
        with_control,
        with_surrogate,
        oversized(limit),
    )


def unknown_id():
    return st.text(min_size=1, max_size=20).filter(lambda t: t.strip() and t.isprintable())


# Who calls: an administrator, or a caller that may not move this town's command
# (centers not in command, a department, an auditor).
ESCALATION_CALLERS = {
    "admin": {"kind": "admin"},
    "city": {"kind": "center", "center": CITY},
    "county": {"kind": "center", "center": COUNTY},
    "neighbour": {"kind": "center", "center": YUJIN},
    "department": {"kind": "department", "center": DONGSHAN, "department": "dongshan-water"},
    "auditor": {"kind": "auditor", "center": COUNTY},
}


@st.composite
def hostile_escalation_call(draw, incident_id: str):
    """(caller, method, args, kwargs): escalate / assign_down on the seeded town
    incident with at least one bad argument, or by a caller not in command (then
    all arguments may be good); assign_down from a town is refused whatever it
    is given."""
    caller = draw(st.sampled_from(sorted(ESCALATION_CALLERS)))
    method = draw(st.sampled_from(["escalate", "assign_down", "chain", "command"]))
    if method in ("chain", "command"):
        return "admin", method, (draw(st.one_of(bad_text(64), unknown_id())),), {}
    names = ["incident_id", "reason"] if method == "escalate" else ["incident_id", "to_center"]
    bad_values = {
        "incident_id": st.one_of(bad_text(64), unknown_id()),
        "reason": bad_text(2000),
        "to_center": st.one_of(bad_text(32), st.sampled_from([CITY, COUNTY, "nowhere"])),
    }
    good_values = {"incident_id": incident_id, "reason": "现场需要上级支援", "to_center": YUJIN}
    # a town cannot assign down, and only the town commands: all may be good then
    anything_goes = method == "assign_down" or caller != "admin"
    bad = draw(st.sampled_from([*names, None] if anything_goes else names))
    args = [
        draw(bad_values[n]) if n == bad else draw(st.one_of(st.just(good_values[n]), json_junk))
        for n in names
    ]
    return caller, method, tuple(args), {}


def test_escalation_refuses_hostile_calls_and_moves_nothing(run_services, rpc, rpc_as, tables):
    escalation_service = service_class("services.escalation.service", "EscalationService")
    from services.escalation.models import CommandMove, CommandState
    from services.escalation.models import outbox as escalation_outbox

    # escalation learns an incident from dispatch's `orders_dispatched`
    run_services(IntakeService, DispatchService, escalation_service)
    escalation = tables("escalation")
    incident = rpc.intake.submit_report(report())["incident_id"]
    wait_found(lambda: rpc.escalation.chain(incident) is not None)

    def state():
        return (
            escalation.rows(CommandState.incident_id, CommandState.center, CommandState.moves),
            escalation.count(CommandMove.__table__),
            escalation.count(escalation_outbox),
        )

    before = state()

    with ExitStack() as stack:
        proxies = {"admin": rpc}
        for name, claims in ESCALATION_CALLERS.items():
            if name != "admin":
                proxies[name] = stack.enter_context(rpc_as(sub=f"op-{name}", **claims))

        @HOSTILE
        @given(
            case=st.one_of(
                hostile_escalation_call(incident),
                st.sampled_from(
                    [
                        ("admin", "escalate", (incident,), {}),
                        ("admin", "escalate", (incident, "op", "r"), {}),  # no operator now
                        ("admin", "escalate", (incident, "r"), {"center": DONGSHAN}),  # nor center
                        ("admin", "escalate", (incident, "r"), {"centre": DONGSHAN}),
                        ("admin", "assign_down", (incident,), {}),
                        ("admin", "assign_down", (incident, YUJIN, "op"), {}),
                        ("admin", "chain", (), {}),
                        ("admin", "chain", (incident, incident), {}),
                    ]
                ),
            )
        )
        def check(case):
            caller, method, args, kwargs = case
            outcome, answer = call(proxies[caller].escalation, method, args, kwargs)
            if method in ("escalate", "assign_down"):
                assert outcome == "refused", (
                    f"{caller}: {method}{_short(args, kwargs)} moved command"
                )
            assert state() == before

        check()
    with rpc_as("center", "值班员-张", center=DONGSHAN) as town:
        moved = town.escalation.escalate(incident, "现场需要上级支援")
    assert moved["to_center"] == COUNTY and moved["operator"] == "值班员-张"


# -- assessment -----------------------------------------------------------------

RATINGS = ("satisfied", "basically_satisfied", "dissatisfied")
NOW = datetime.now(UTC)
SINCE = (NOW - timedelta(days=30)).isoformat()
UNTIL = (NOW + timedelta(days=1)).isoformat()


@st.composite
def hostile_rating(draw, incident_id: str):
    """A rating with one bad argument (the actor is the caller's token subject)."""
    names = ["incident_id", "rating"]
    bad = draw(st.sampled_from(names))
    bad_values = {
        "incident_id": st.one_of(bad_text(64), unknown_id()),
        "rating": st.one_of(
            bad_text(32), hostile_text.filter(lambda r: r not in RATINGS), st.just("SATISFIED")
        ),
    }
    good = {"incident_id": incident_id, "rating": "satisfied"}
    args = [
        draw(bad_values[n]) if n == bad else draw(st.one_of(st.just(good[n]), json_junk))
        for n in names
    ]
    return "record_satisfaction", tuple(args), {}


reads = st.tuples(
    st.sampled_from(["scores", "report"]),
    st.tuples(
        st.one_of(st.just(DONGSHAN), st.just(COUNTY), bad_text(64), hostile_text),
        st.one_of(st.just(SINCE), timestamps, json_junk),
        st.one_of(st.just(UNTIL), timestamps, json_junk),
    ),
    st.just({}),
)


def test_assessment_refuses_hostile_calls_and_stores_nothing(run_services, rpc, tables):
    assessment_service = service_class("services.assessment.service", "AssessmentService")
    from services.assessment.models import AssessedIncident, RatingRow
    from services.assessment.models import outbox as assessment_outbox

    # assessment learns an incident from dispatch's `orders_dispatched`
    run_services(IntakeService, DispatchService, assessment_service)
    assessment = tables("assessment")
    incident = rpc.intake.submit_report(report())["incident_id"]
    wait_for(lambda: assessment.count(AssessedIncident.__table__) == 1)

    def state():
        return assessment.count(RatingRow.__table__), assessment.count(assessment_outbox)

    before = state()

    @HOSTILE
    @given(
        case=st.one_of(
            hostile_rating(incident),
            reads,
            st.sampled_from(
                [
                    ("record_satisfaction", (incident,), {}),
                    ("record_satisfaction", (incident, "satisfied", "op"), {}),
                    ("record_satisfaction", (incident, "satisfied"), {"note": "x"}),
                    ("scores", (DONGSHAN,), {}),
                    ("report", (DONGSHAN, SINCE, UNTIL, "extra"), {}),
                ]
            ),
        )
    )
    def check(case):
        method, args, kwargs = case
        outcome, answer = call(rpc.assessment, method, args, kwargs)
        if method == "record_satisfaction":
            assert outcome == "refused", f"record_satisfaction{_short(args, kwargs)} was stored"
        assert state() == before

    check()
    assert rpc.assessment.record_satisfaction(incident, "satisfied")["rating"] == "satisfied"
    assert isinstance(rpc.assessment.scores(DONGSHAN, SINCE, UNTIL), list)


# -- inputs the properties found, kept as cases ---------------------------------

# (what, service, method, args, kwargs); "{incident}" and "{order}" stand for real ids.
KNOWN_HOSTILE_CALLS = [
    (
        "reported_at before year 1 in UTC",
        "intake",
        "submit_report",
        (report(reported_at="0001-01-01T00:00:00+08:00"),),
        {},
    ),
    (
        "occurred_at after 9999 in UTC",
        "intake",
        "submit_report",
        (report(occurred_at="9999-12-31T23:00:00-08:00"),),
        {},
    ),
    (
        "phone of 33 characters ending in a newline",
        "intake",
        "submit_report",
        (report(reporter={"name": "王", "phone": "+1234567890123456789012345678901\n"}),),
        {},
    ),
    ("no argument", "intake", "submit_report", (), {}),
    ("an extra keyword", "intake", "submit_report", (report(),), {"dry_run": True}),
    ("surrogate id", "intake", "get_incident", ("\ud800",), {}),
    ("NUL id", "intake", "get_incident", ("\x00",), {}),
    ("100k-character id", "intake", "get_incident", ("x" * 100_000,), {}),
    ("surrogate id", "dispatch", "get_order", ("\ud800",), {}),
    ("surrogate id", "dispatch", "accept", ("\ud800",), {}),
    ("surrogate reason", "dispatch", "return_order", ("{order}", "原因\udc00"), {}),
    ("surrogate center filter", "dispatch", "list_orders", (None, "\ud800"), {}),
    ("an operator, now the token's", "dispatch", "accept", ("{order}", "op"), {}),
    ("an extra keyword", "dispatch", "accept", ("{order}",), {"force": True}),
    ("missing reason", "escalation", "escalate", ("{incident}",), {}),
    ("a center, now the token's", "escalation", "escalate", ("{incident}", "r"), {"center": CITY}),
    ("an extra keyword", "escalation", "assign_down", ("{incident}", YUJIN), {"urgent": 1}),
    ("surrogate id", "assessment", "record_satisfaction", ("\ud800", "satisfied"), {}),
    (
        "an operator argument",
        "assessment",
        "record_satisfaction",
        ("{incident}", "satisfied", "op"),
        {},
    ),
    (
        "since before year 1 in UTC",
        "assessment",
        "scores",
        (DONGSHAN, "0001-01-01T00:00:00+08:00", UNTIL),
        {},
    ),
    (
        "until after 9999 in UTC",
        "assessment",
        "report",
        (DONGSHAN, SINCE, "9999-12-31T23:00:00-08:00"),
        {},
    ),
]


def test_known_hostile_calls_are_refused_over_rpc(run_services, rpc, tables):
    """Every input the properties above have found, in one run (a property stops
    at its first failure): all those still failing are listed."""
    escalation_service = service_class("services.escalation.service", "EscalationService")
    assessment_service = service_class("services.assessment.service", "AssessmentService")
    from services.assessment.models import AssessedIncident

    run_services(IntakeService, DispatchService, escalation_service, assessment_service)
    incident = rpc.intake.submit_report(report())["incident_id"]
    [order] = wait_for(lambda: rpc.dispatch.list_orders(incident_id=incident))
    wait_found(lambda: rpc.escalation.chain(incident) is not None)
    assessment, intake = tables("assessment"), tables("intake")
    wait_for(lambda: assessment.count(AssessedIncident.__table__) == 1)
    ids = {"{incident}": incident, "{order}": order["order_id"]}

    failures = []
    for what, service, method, args, kwargs in KNOWN_HOSTILE_CALLS:
        args = tuple(ids.get(a, a) if isinstance(a, str) else a for a in args)
        outcome, answer = "refused", None
        try:
            outcome, answer = call(getattr(rpc, service), method, args, kwargs)
        except AssertionError as failure:
            answer = str(failure).split(" raised ", 1)[-1].splitlines()[0][:300]
            outcome = "raised"
        if outcome != "refused":
            failures.append(f"{service}.{method} with {what}: {outcome} {answer!s:.300}")
    if intake.count(Incident.__table__) != 1:
        failures.append(f"intake stored {intake.count(Incident.__table__) - 1} refused report(s)")
    assert rpc.dispatch.get_order(order["order_id"])["status"] == "dispatched"
    assert rpc.escalation.chain(incident) == []
    assert not failures, "\n".join(failures)
