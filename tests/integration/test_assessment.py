"""Assessment against the real RabbitMQ and both databases, in process.

Events are published as the other services would (nameko's standalone event
dispatcher, claiming to be dispatch and escalation), shuffled and
duplicated, to two assessment instances at once (an incident and its orders
come as dispatch's decisions, `orders_dispatched`); the scores they answer must
equal the ones computed in memory from the same events (scoring.py).
"""

import random
from datetime import UTC, datetime, timedelta

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.events import event_dispatcher
from prometheus_client import REGISTRY

from services.assessment.metrics import DEPARTMENT_SATISFACTION, DEPARTMENT_SCORE
from services.assessment.scoring import assess, scored_weights
from services.assessment.service import AssessmentService
from shared.messaging import subscriptions_of
from shared.network import load_network
from tests.conftest import wait_for
from tests.support.broker import queue_depth
from tests.unit.assessment.factory import (
    assigned_down,
    escalated,
    order_story,
    rating,
    replay,
    worked_example,
)

pytestmark = pytest.mark.integration

DONGSHAN = "511123101"
YUJIN = "511123102"
COUNTY = "511123"
NETWORK = load_network()
ASSESSMENT_QUEUES = [s.queue for s in subscriptions_of([AssessmentService])]


def story(now: datetime) -> list[tuple]:
    """The docstring's example three days ago, plus overdue, escalated, re-rated
    and neighbouring orders; every deadline is long past."""
    base = (now - timedelta(days=3)).replace(microsecond=0)
    events = worked_example(DONGSHAN, base)
    events += order_story(
        "late-police",
        "w2",
        "dongshan-police",
        base,
        center=DONGSHAN,
        cause="added",
        role="assist",
        overdue=["accept", "arrive"],
    )
    events.append(escalated("w2", DONGSHAN, COUNTY, base + timedelta(minutes=16)))
    events += order_story(
        "county-water",
        "w2",
        "qianwei-water",
        base + timedelta(minutes=16),
        center=COUNTY,
        home=DONGSHAN,
        received_at=base,
        cause="overdue",
        accept=30,
    )
    events.append(rating("w3", "dissatisfied", base + timedelta(days=2)))  # replaces "satisfied"
    events.append(assigned_down("y1", COUNTY, YUJIN, base))
    events += order_story(
        "yujin-water",
        "y1",
        "yujin-water",
        base,
        center=YUJIN,
        accept=60,
        arrive=900,
        complete=1800,
        reports=[1000, 1200],
    )
    events.append(rating("y1", "basically_satisfied", base + timedelta(days=1)))
    return events


def expected(events, center: str, since: datetime, until: datetime) -> dict:
    ledger = replay(events)
    return assess(
        center,
        [d.code for d in NETWORK.departments_of(center)],
        ledger.records(),
        ratings={i: r.rating for i, r in ledger.ratings.items()},
        moves=ledger.moves.values(),
        weights=NETWORK.weights,
        since=since,
        until=until,
    )


def publish_shuffled_and_duplicated(amqp_uri: str, events, seed: int) -> None:
    shuffle = random.Random(seed)
    delivered = events + events + shuffle.sample(events, len(events) // 3)
    shuffle.shuffle(delivered)
    dispatch = event_dispatcher({"AMQP_URI": amqp_uri})
    for source, event_type, payload in delivered:
        dispatch(source, event_type, payload)


def without_names(rows):
    return [{k: v for k, v in row.items() if k != "name"} for row in rows]


def assessment_idle(vhost: str) -> bool:
    return all(queue_depth(vhost, queue) == 0 for queue in ASSESSMENT_QUEUES)


def gauge(name: str, center: str, department: str):
    return REGISTRY.get_sample_value(name, {"center": center, "department": department})


def test_shuffled_duplicated_events_on_two_instances_give_the_replayed_scores(
    run_services, rpc, nameko_config, vhost
):
    DEPARTMENT_SCORE.clear()
    DEPARTMENT_SATISFACTION.clear()
    run_services(AssessmentService, ASSESSMENT_GAUGES_S=0.3)
    run_services(AssessmentService, ASSESSMENT_GAUGES_S=0.3)
    now = datetime.now(UTC)
    events = story(now)
    since, until = now - timedelta(days=10), now + timedelta(hours=1)
    publish_shuffled_and_duplicated(nameko_config["AMQP_URI"], events, seed=5)

    want = expected(events, DONGSHAN, since, until)
    args = (DONGSHAN, since.isoformat(), until.isoformat())
    wait_for(
        lambda: without_names(rpc.assessment.scores(*args)) == want["rows"],
        timeout=30,
        message="scores equal to the replayed ones",
    )
    wait_for(lambda: assessment_idle(vhost), timeout=30, message="assessment queues drained")
    rows = rpc.assessment.scores(*args)
    assert without_names(rows) == want["rows"]  # the duplicates changed nothing

    by_department = {row["department"]: row for row in rows}
    assert len(rows) == len(NETWORK.departments_of(DONGSHAN))
    assert by_department["dongshan-water"]["name"] == "水务营业所"
    assert by_department["dongshan-water"]["satisfaction_rate"] == 0.6  # w3 re-rated
    assert by_department["dongshan-police"]["overdue"] == 1
    assert by_department["dongshan-police"]["escalated"] == 1
    assert by_department["dongshan-fire"]["score"] is None
    assert rows[0]["department"] == "dongshan-power" and rows[0]["rank"] == 1

    report = rpc.assessment.report(*args)
    assert report["center"] == DONGSHAN and report["center_name"] == "东山镇"
    assert without_names(report["rows"]) == want["rows"]
    assert report["totals"] == want["totals"]
    assert report["totals"]["orders"] == 15 and report["totals"]["escalated"] == 1
    assert report["weights"] == scored_weights(NETWORK.weights)  # and u's

    yujin = {r["department"]: r for r in rpc.assessment.scores(YUJIN, *args[1:])}
    assert yujin["yujin-water"]["score"] == 100.0

    # the dashboards' gauges, from the timer, for departments with data only
    water_score = by_department["dongshan-water"]["score"]
    # a refresh sets the gauges one by one: wait for one that has set them all
    gauges = {
        ("linkage_department_score", DONGSHAN, "dongshan-water"): water_score,
        ("linkage_department_satisfaction_ratio", DONGSHAN, "dongshan-water"): 0.6,
        ("linkage_department_score", YUJIN, "yujin-water"): 100.0,
        ("linkage_department_satisfaction_ratio", YUJIN, "yujin-water"): 1.0,
        ("linkage_department_score", DONGSHAN, "dongshan-fire"): None,
        ("linkage_department_satisfaction_ratio", DONGSHAN, "dongshan-power"): None,
    }
    wait_for(
        lambda: {key: gauge(*key) for key in gauges} == gauges,
        message=f"gauges {gauges}",
    )


def test_record_satisfaction_keeps_the_latest_rating_and_counts_it(
    run_services, rpc, nameko_config, vhost, tap
):
    run_services(AssessmentService)
    recorded = tap("assessment", "satisfaction_recorded")
    now = datetime.now(UTC)
    base = (now - timedelta(days=1)).replace(microsecond=0)
    events = order_story("o1", "i1", "dongshan-water", base, center=DONGSHAN, accept=60)
    publish_shuffled_and_duplicated(nameko_config["AMQP_URI"], events, seed=1)
    wait_for(lambda: assessment_idle(vhost), message="events applied")

    def count(value):
        return (
            REGISTRY.get_sample_value("linkage_satisfaction_ratings_total", {"rating": value}) or 0
        )

    before = {value: count(value) for value in ("satisfied", "dissatisfied")}
    first = rpc.assessment.record_satisfaction("i1", "dissatisfied")
    assert first["rating"] == "dissatisfied" and first["replaced"] is None
    second = rpc.assessment.record_satisfaction("i1", "satisfied")
    assert second["rating"] == "satisfied" and second["replaced"] == "dissatisfied"
    assert count("satisfied") == before["satisfied"] + 1
    assert count("dissatisfied") == before["dissatisfied"] + 1

    args = (DONGSHAN, (base - timedelta(days=1)).isoformat(), now.isoformat())
    [water] = [r for r in rpc.assessment.scores(*args) if r["department"] == "dongshan-water"]
    assert water["satisfaction_rate"] == 1.0 and water["rated"] == 1

    wait_for(lambda: len(recorded.drain() and recorded.of_type("satisfaction_recorded")) == 2)
    assert [e["rating"] for e in recorded.of_type("satisfaction_recorded")] == [
        "dissatisfied",
        "satisfied",
    ]
    wait_for(lambda: assessment_idle(vhost), message="own events handled")
    [water] = [r for r in rpc.assessment.scores(*args) if r["department"] == "dongshan-water"]
    assert water["satisfaction_rate"] == 1.0  # our own event did not bring the old one back


def test_bad_arguments_and_unknown_incidents(run_services, rpc):
    run_services(AssessmentService)
    with pytest.raises(RemoteError) as error:
        rpc.assessment.record_satisfaction("nobody-knows", "satisfied")
    assert error.value.exc_type == "NotFound"
    with pytest.raises(RemoteError) as error:
        rpc.assessment.record_satisfaction("", "happy")
    assert error.value.exc_type == "ValidationError"
    assert '"incident_id"' in error.value.value and '"rating"' in error.value.value

    good = ("2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00")
    for args, field in (
        (("nowhere", *good), "center"),
        ((DONGSHAN, "2026-11-01", good[1]), "since"),  # no offset
        ((DONGSHAN, good[0], "next month"), "until"),
        ((DONGSHAN, good[1], good[0]), "until"),  # since after until
        ((DONGSHAN, good[0], good[0]), "until"),
        ((DONGSHAN, 20261101, good[1]), "since"),
    ):
        for call in (rpc.assessment.scores, rpc.assessment.report):
            with pytest.raises(RemoteError) as error:
                call(*args)
            assert error.value.exc_type == "ValidationError"
            assert f'"{field}"' in error.value.value
    rows = rpc.assessment.scores(DONGSHAN, *good)
    assert len(rows) == len(NETWORK.departments_of(DONGSHAN))
    assert all(r["orders"] == 0 and r["score"] is None and r["rank"] == 1 for r in rows)
