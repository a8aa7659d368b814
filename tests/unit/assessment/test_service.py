"""The service's handlers and store on a real database (both backends, no
broker) give what the in-memory `Ledger` gives for the same events: the same
records, and through the day counts (and live edge days) the same scores."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.assessment import store
from services.assessment.models import AssessedIncident, OrderRecordRow, RatingRow, outbox
from services.assessment.records import OrderRecord
from services.assessment.scoring import WHOLE_CENTER, Counts, assess, assess_counts
from shared.network import DEFAULT_WEIGHTS, load_network
from tests.unit.assessment.factory import (
    dispatched,
    order_story,
    rating,
    replay,
    worked_example,
)
from tests.unit.assessment.test_replay import (
    DEPARTMENTS,
    DONGSHAN,
    SINCE,
    T0,
    UNTIL,
    incident_plans,
    scenario,
)

NETWORK = load_network()
# whole days, partial edge days on either side, and part of one day
WINDOWS = (
    (SINCE, UNTIL),
    (SINCE + timedelta(hours=7, minutes=13), UNTIL - timedelta(hours=5, seconds=1)),
    (T0 + timedelta(days=3, hours=1), T0 + timedelta(days=3, hours=20)),
)
DB_EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def stored_records(database) -> dict[str, OrderRecord]:
    with database.session() as session:
        rows = session.scalars(select(OrderRecordRow)).all()
        return {
            r.order_id: OrderRecord(**{n: getattr(r, n) for n in store.RECORD_FIELDS}) for r in rows
        }


def aggregate_figures(database, center: str, departments: list[str], window=(SINCE, UNTIL)) -> dict:
    """Counted by the store (day counts and live edges), scored by scoring.assess_counts."""
    timezone = NETWORK.timezone
    with database.session() as session:
        counted = store.window_counts(session, timezone, *window, center)
        everywhere = store.window_counts(session, timezone, *window)
    assert {k: c for k, c in everywhere.items() if k[0] == center} == counted
    counts = {department: c for (_, department), c in counted.items()}
    totals = counts.get(WHOLE_CENTER, Counts())
    return assess_counts(departments, counts, totals, DEFAULT_WEIGHTS)


def ledger_figures(ledger, center: str, departments: list[str], window=(SINCE, UNTIL)) -> dict:
    return assess(
        center,
        departments,
        ledger.records(),
        ratings={i: r.rating for i, r in ledger.ratings.items()},
        moves=ledger.moves.values(),
        weights=DEFAULT_WEIGHTS,
        since=window[0],
        until=window[1],
    )


@DB_EXAMPLES
@given(plans=st.lists(incident_plans, min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_events_through_the_handlers_in_any_order_twice_give_the_ledgers_records_and_scores(
    assessment, plans, seed
):
    assessment.clear()
    events = scenario(plans)
    delivered = events + events
    random.Random(seed).shuffle(delivered)
    assessment.deliver(delivered)

    ledger = replay(events)
    assert stored_records(assessment.database) == {
        k: OrderRecord.from_mapping(v) for k, v in ledger.orders.items()
    }
    for center, departments in DEPARTMENTS.items():
        for window in WINDOWS:
            assert aggregate_figures(
                assessment.database, center, departments, window
            ) == ledger_figures(ledger, center, departments, window)


def test_an_incident_is_known_from_its_batch_even_without_orders(assessment):
    assessment.deliver([dispatched("i1", DONGSHAN, T0)])
    with assessment.database.session() as session:
        assert store.incident_known(session, "i1")
        assert not store.incident_known(session, "i2")
        assert session.get(AssessedIncident, "i1").center == DONGSHAN


def test_record_satisfaction_applies_its_rating_and_its_own_event_changes_nothing(assessment):
    assessment.deliver(order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN, accept=60))
    service = assessment.service
    first = service.record_satisfaction("i1", "dissatisfied")
    second = service.record_satisfaction("i1", "satisfied")
    assert (first["replaced"], second["replaced"]) == (None, "dissatisfied")

    with assessment.database.session() as session:
        events = [json.loads(p) for p in session.scalars(select(outbox.c.payload))]
    # our own events come back, the older one last: the latest rating stays
    assessment.deliver(("assessment", "satisfaction_recorded", e) for e in reversed(events))
    with assessment.database.session() as session:
        kept = session.get(RatingRow, "i1")
        assert kept.rating == "satisfied"
        assert session.scalar(select(func.count()).select_from(RatingRow)) == 1


def test_a_later_rating_from_elsewhere_replaces_ours(assessment):
    assessment.deliver(order_story("o1", "i1", "dongshan-water", T0, center=DONGSHAN))
    assessment.service.record_satisfaction("i1", "satisfied")
    _, _, later = rating("i1", "dissatisfied", T0 + timedelta(days=3650))
    assessment.deliver([("assessment", "satisfaction_recorded", later)])
    with assessment.database.session() as session:
        assert session.get(RatingRow, "i1").rating == "dissatisfied"


def test_the_worked_example_counted_in_the_database(assessment):
    events = worked_example(DONGSHAN, T0)
    assessment.deliver(events)
    departments = ["dongshan-water", "dongshan-power", "dongshan-fire"]
    result = aggregate_figures(assessment.database, DONGSHAN, departments)
    assert result == ledger_figures(replay(events), DONGSHAN, departments)
    rows = {row["department"]: row for row in result["rows"]}
    assert (rows["dongshan-water"]["score"], rows["dongshan-power"]["score"]) == (78.41, 92.86)
    assert rows["dongshan-fire"]["score"] is None


def test_a_cancellation_takes_a_counted_order_out_of_the_days_and_an_urge_counts_once(
    assessment,
):
    story = order_story(
        "o1", "i1", "dongshan-water", T0, center=DONGSHAN, accept=400, urges=[301], cancelled=900
    )
    *counted, urge, cancelled = story
    other = order_story("o2", "i2", "dongshan-water", T0, center=DONGSHAN, urges=[301, 400])
    assessment.deliver(counted + other + [urge, urge] + other[1:])
    departments = ["dongshan-water"]
    [water] = aggregate_figures(assessment.database, DONGSHAN, departments)["rows"]
    assert (water["orders"], water["urges"]) == (2, 3)

    assessment.deliver([cancelled, cancelled])
    result = aggregate_figures(assessment.database, DONGSHAN, departments)
    assert result == ledger_figures(replay(story + other), DONGSHAN, departments)
    [water] = result["rows"]
    assert (water["orders"], water["urges"], water["accept_judged"]) == (1, 2, 0)
    assert stored_records(assessment.database)["o1"].urges == 1
