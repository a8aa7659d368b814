"""Reporting duties (信息报送): events in any order, any number of times, give
the same duties, and the same reports due and late per center."""

from __future__ import annotations

import random
from datetime import timedelta
from functools import reduce

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.assessment import store
from services.assessment.models import ReportDutyRow
from services.assessment.reporting import (
    ReportDuty,
    duties_answered,
    duty_overdue,
    merge_duty,
    reporting_counts,
)
from shared.events import load_event
from tests.unit.assessment.factory import report_filed, report_overdue
from tests.unit.assessment.test_replay import SINCE, T0, UNTIL

DONGSHAN = "511123101"
YUJIN = "511123102"

duty_plans = st.fixed_dictionaries(
    {
        "center": st.sampled_from([DONGSHAN, YUJIN]),
        "kind": st.sampled_from(["first", "final"]),
        "due_after_s": st.integers(-3 * 86400, 35 * 86400),  # some outside the window
        # filed this long after the deadline (negative: before it), or never
        "filed_after_s": st.sampled_from([None, -600, 0, 1, 3600]),
        # escalation announces the duty overdue when the deadline passed unmet
        "announced": st.booleans(),
    }
)


def duty_events(plans: list[dict]) -> list[tuple]:
    """Each plan is one duty of its own incident, told as escalation would."""
    events = []
    for n, plan in enumerate(plans):
        incident, due = f"i{n}", T0 + timedelta(seconds=plan["due_after_s"])
        late_filing = plan["filed_after_s"] is None or plan["filed_after_s"] > 0
        if plan["announced"] and late_filing:
            events.append(report_overdue(incident, plan["center"], plan["kind"], due))
        if plan["filed_after_s"] is not None:
            at = due + timedelta(seconds=plan["filed_after_s"])
            answers = [(plan["kind"], due)]
            events.append(report_filed(incident, plan["center"], plan["kind"], at, answers))
    return events


def duties_of(events) -> list[ReportDuty]:
    found = []
    for source, event_type, payload in events:
        event = load_event(source, event_type, payload)
        found += [duty_overdue(event)] if event_type == "report_overdue" else duties_answered(event)
    return found


def folded(duties) -> dict[tuple[str, str], ReportDuty]:
    merged: dict[tuple[str, str], ReportDuty] = {}
    for duty in duties:
        merged[duty.key] = merge_duty(merged.get(duty.key), duty)
    return merged


def reference(plans: list[dict]) -> dict[str, tuple[int, int]]:
    """Reports due and late, straight from the plans: late = filed after its
    deadline, or announced overdue, or never filed and announced."""
    found: dict[str, tuple[int, int]] = {}
    for plan in plans:
        late_filing = plan["filed_after_s"] is None or plan["filed_after_s"] > 0
        if plan["filed_after_s"] is None and not plan["announced"]:
            continue  # escalation has told nothing of it yet
        due_at = T0 + timedelta(seconds=plan["due_after_s"])
        if SINCE <= due_at < UNTIL:
            due, late = found.get(plan["center"], (0, 0))
            found[plan["center"]] = (due + 1, late + int(late_filing))
    return found


# -- the merge, pure -------------------------------------------------------------


def test_once_late_a_duty_stays_late_whichever_account_comes_first():
    due = T0 + timedelta(minutes=30)
    [overdue] = duties_of([report_overdue("i1", DONGSHAN, "first", due)])
    assert overdue.late
    on_time = ReportDuty("i1", "first", DONGSHAN, due, False)
    assert merge_duty(overdue, on_time).late and merge_duty(on_time, overdue).late
    assert merge_duty(on_time, on_time) == on_time
    assert merge_duty(None, on_time) == on_time


def test_a_progress_report_answers_no_duty_and_a_final_one_its_own():
    filed = report_filed("i1", DONGSHAN, "progress", T0)
    assert duties_of([filed]) == []
    final = report_filed("i1", DONGSHAN, "final", T0, [("final", T0 - timedelta(hours=1))])
    [duty] = duties_of([final])
    assert (duty.kind, duty.center, duty.late) == ("final", DONGSHAN, True)


def test_two_different_duties_are_not_merged():
    with pytest.raises(ValueError):
        merge_duty(
            ReportDuty("i1", "first", DONGSHAN, T0, False),
            ReportDuty("i1", "final", DONGSHAN, T0, False),
        )


@settings(max_examples=200, deadline=None)
@given(plans=st.lists(duty_plans, max_size=12), data=st.data())
def test_shuffled_and_duplicated_accounts_give_the_same_duties(plans, data):
    duties = duties_of(duty_events(plans))
    expected = folded(duties)
    repeats = st.lists(st.sampled_from(duties), max_size=10) if duties else st.just([])
    delivered = duties + data.draw(repeats)
    shuffled = data.draw(st.permutations(delivered))
    assert folded(shuffled) == expected
    assert reporting_counts(expected.values(), SINCE, UNTIL) == reference(plans)


def test_merge_is_associative_on_conflicting_deadlines():
    a = ReportDuty("i1", "final", DONGSHAN, T0, False)
    b = ReportDuty("i1", "final", DONGSHAN, T0 + timedelta(hours=1), True)
    c = ReportDuty("i1", "final", YUJIN, T0, False)
    left = reduce(merge_duty, [b, c], a)
    right = merge_duty(a, merge_duty(b, c))
    assert left == right == ReportDuty("i1", "final", DONGSHAN, T0, True)


# -- through the handlers, on a real database of either backend ------------------


def stored_duties(database) -> dict[tuple[str, str], ReportDuty]:
    with database.session() as session:
        rows = session.scalars(select(ReportDutyRow)).all()
        return {
            (r.incident_id, r.kind): ReportDuty(r.incident_id, r.kind, r.center, r.due_at, r.late)
            for r in rows
        }


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plans=st.lists(duty_plans, min_size=1, max_size=8), seed=st.integers(0, 1000))
def test_the_handlers_store_the_merged_duties_whatever_the_order(assessment, plans, seed):
    assessment.clear()
    events = duty_events(plans)
    shuffle = random.Random(seed)
    delivered = events + shuffle.sample(events, len(events) // 2)
    shuffle.shuffle(delivered)
    # a redelivered event is the same event: the entrypoint applies it once;
    # the same account in a new event (another instance's retry) merges to the same
    assessment.deliver(delivered)
    assessment.deliver([(s, t, {**p, "event_id": p["event_id"] + "-again"}) for s, t, p in events])
    assert stored_duties(assessment.database) == folded(duties_of(events))
    with assessment.database.session() as session:
        counted = store.reporting_counts(session, [DONGSHAN, YUJIN], SINCE, UNTIL)
    assert counted == reference(plans)
