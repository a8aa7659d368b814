"""Assessment as a real process: an incident handled end to end shows on /metrics."""

from datetime import UTC, datetime, timedelta

import pytest
import requests
from nameko.exceptions import RemoteError
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import cluster_rpc, wait_for
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.e2e


def samples(url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(url, timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def known_incident(rpc, incident_id: str, rating: str) -> dict | None:
    try:
        return rpc.assessment.record_satisfaction(incident_id, rating)
    except RemoteError as error:
        if error.exc_type == "NotFound":  # intake's event not applied yet
            return None
        raise


def test_a_handled_and_rated_incident_gives_the_departments_score_on_metrics(platform, broker_uri):
    platform.start("intake", "dispatch", "assessment")
    [assessment] = platform.of("assessment")
    with cluster_rpc(broker_uri) as rpc:
        incident = rpc.intake.submit_report(report(category="water.burst_main"))["incident_id"]
        [order] = wait_for(lambda: rpc.dispatch.list_orders(incident_id=incident), timeout=30)
        for step in (rpc.dispatch.accept, rpc.dispatch.arrive):
            step(order["order_id"])
        rpc.dispatch.complete(order["order_id"], "已修复")
        stored = wait_for(lambda: known_incident(rpc, incident, "satisfied"), timeout=30)
        assert stored["rating"] == "satisfied"

        now = datetime.now(UTC)
        window = ((now - timedelta(days=1)).isoformat(), (now + timedelta(minutes=1)).isoformat())

        def water():
            rows = rpc.assessment.scores(DONGSHAN, *window)
            row = next(r for r in rows if r["department"] == "dongshan-water")
            return row if row["completed"] == 1 and row["arrived_on_time_rate"] == 1 else None

        row = wait_for(water, timeout=30, message="the completed order in the scores")
        assert row["score"] == 100.0 and row["satisfaction_rate"] == 1.0 and row["rank"] == 1

    labels = (("center", DONGSHAN), ("department", "dongshan-water"))
    found = wait_for(
        lambda: (
            (s := samples(assessment.metrics_url)).get(("linkage_department_score", labels))
            == 100.0
            and s
        ),
        timeout=45,  # the gauges are refreshed every 15 s
        message="linkage_department_score on /metrics",
    )
    assert found[("linkage_department_satisfaction_ratio", labels)] == 1.0
    assert found[("linkage_satisfaction_ratings_total", (("rating", "satisfied"),))] == 1.0
    assert found[("linkage_satisfaction_ratings_total", (("rating", "dissatisfied"),))] == 0.0
    fire = (("center", DONGSHAN), ("department", "dongshan-fire"))
    assert ("linkage_department_score", fire) not in found  # no data, no series
