"""What the services say on /metrics, with every service as a real process.

Incidents go through their lifecycle; then each process's /metrics must pass
`promtool check metrics` and carry the domain series with the values the
platform's own records give.
"""

from __future__ import annotations

import pytest
import requests
from nameko.exceptions import RemoteError
from prometheus_client.parser import text_string_to_metric_families

from services.dispatch.lifecycle import OPEN
from tests.conftest import cluster_rpc, wait_for
from tests.support.prometheus import check_metrics
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.e2e

SERVICES = ("intake", "dispatch", "escalation", "assessment")
QIANWEI = "511123"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> str:
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    return response.text


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def rated(rpc, incident_id: str, rating: str) -> dict | None:
    try:
        return rpc.assessment.record_satisfaction(incident_id, rating)
    except RemoteError as error:
        if error.exc_type == "NotFound":  # intake's event not applied by assessment yet
            return None
        raise


@pytest.mark.parametrize("backend", ["postgresql"])
def test_each_process_serves_valid_metrics_with_the_domain_series(platform, broker_uri):
    platform.env["ASSESSMENT_GAUGES_S"] = "1"
    platform.start(*SERVICES)
    water = []
    with cluster_rpc(broker_uri) as rpc:
        for _ in range(3):
            water.append(rpc.intake.submit_report(report(category="water.burst_main")))
        assert {a["status"] for a in water} == {"accepted"}
        crowd = rpc.intake.submit_report(report(category="mass.gathering", crowd_size=150))[
            "incident_id"
        ]
        with pytest.raises(RemoteError) as rejected:
            rpc.intake.submit_report(report(channel="telegram"))
        assert rejected.value.exc_type == "ValidationError"

        orders = []
        for answer in water:
            found = wait_for(
                lambda a=answer: rpc.dispatch.list_orders(incident_id=a["incident_id"]),
                timeout=30,
                message="the water order",
            )
            [order] = found
            assert (order["center"], order["department"], order["role"]) == (
                DONGSHAN,
                "dongshan-water",
                "lead",
            )
            orders.append(order["order_id"])
        for order_id in orders:  # all three signed for
            rpc.dispatch.accept(order_id)
        for order_id in orders[:2]:  # two on scene
            rpc.dispatch.arrive(order_id)
        rpc.dispatch.report(orders[0], "已关阀")
        rpc.dispatch.complete(orders[0], "已修复")
        wait_for(
            lambda: rated(rpc, water[0]["incident_id"], "satisfied"),
            timeout=30,
            message="assessment to know the incident",
        )
        crowd_centers = {DONGSHAN, QIANWEI}
        wait_for(
            lambda: (
                {o["center"] for o in rpc.dispatch.list_orders(incident_id=crowd)} == crowd_centers
            ),
            timeout=30,
            message=f"the crowd incident's orders at {crowd_centers}",
        )

        [dispatch] = platform.of("dispatch")
        [assessment] = platform.of("assessment")

        def open_orders_shown() -> float | None:
            """The open-orders gauge, once it agrees with the orders stored."""
            stored = rpc.dispatch.list_orders(center=DONGSHAN)
            expected = sum(1 for o in stored if o["status"] in OPEN)
            page = parse(scrape(dispatch.metrics_url))
            shown = value(page, "linkage_orders_open", center=DONGSHAN)
            return shown if shown == expected else None

        # the gauges come from timers: wait for them, then take every page at once
        open_here = wait_for(open_orders_shown, timeout=15, message="the open-orders gauge")
    score = {"center": DONGSHAN, "department": "dongshan-water"}
    wait_for(
        lambda: (
            value(
                parse(scrape(assessment.metrics_url)),
                "linkage_department_satisfaction_ratio",
                **score,
            )
            == 1.0
        ),
        timeout=15,
        message="assessment's department gauges (ASSESSMENT_GAUGES_S=1)",
    )
    wait_for(
        lambda: all(
            value(parse(scrape(p.metrics_url)), "linkage_outbox_pending", service=p.name) == 0
            for p in platform.processes
        ),
        timeout=15,
        message="every outbox drained",
    )
    pages = {p.name: scrape(p.metrics_url) for p in platform.processes}

    for name, text in pages.items():
        checked = check_metrics(text)
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"

    found = parse(pages["intake"])
    assert (
        value(
            found,
            "linkage_incidents_received_total",
            category="water.burst_main",
            channel="12345",
            town=DONGSHAN,
        )
        == 3
    )
    assert (
        value(
            found,
            "linkage_incidents_received_total",
            category="mass.gathering",
            channel="12345",
            town=DONGSHAN,
        )
        == 1
    )
    calls = {"service": "intake", "entrypoint": "submit_report"}
    assert value(found, "linkage_entrypoint_requests_total", **calls, outcome="ok") == 4
    assert value(found, "linkage_entrypoint_requests_total", **calls, outcome="rejected") == 1
    assert value(found, "linkage_entrypoint_requests_total", **calls, outcome="error") in (None, 0)
    assert value(found, "linkage_entrypoint_latency_seconds_count", **calls) == 5
    assert (
        value(
            found,
            "linkage_outbox_published_total",
            service="intake",
            event="incident_received",
        )
        == 4
    )

    found = parse(pages["dispatch"])
    water_lead = {"center": DONGSHAN, "department": "dongshan-water", "role": "lead"}
    assert value(found, "linkage_orders_dispatched_total", **water_lead) == 3
    assert value(found, "linkage_order_time_to_accept_seconds_count", center=DONGSHAN) == 3
    # the buckets the dashboards divide by: within 5 minutes, on scene within 30
    accepted = {"center": DONGSHAN, "le": "300.0"}
    assert value(found, "linkage_order_time_to_accept_seconds_bucket", **accepted) == 3
    tier1 = {"center": DONGSHAN, "tier": "1"}
    assert value(found, "linkage_order_time_to_arrive_seconds_count", **tier1) == 2
    assert value(found, "linkage_order_time_to_arrive_seconds_bucket", **tier1, le="1800.0") == 2
    assert value(found, "linkage_orders_open", center=DONGSHAN) == open_here
    assert value(found, "linkage_orders_overdue_open", center=DONGSHAN) == 0
    for action in ("accept", "arrive", "report", "complete"):
        expected = {"accept": 3, "arrive": 2, "report": 1, "complete": 1}[action]
        assert (
            value(
                found,
                "linkage_entrypoint_requests_total",
                service="dispatch",
                entrypoint=action,
                outcome="ok",
            )
            == expected
        ), action
    assert (
        value(
            found,
            "linkage_outbox_published_total",
            service="dispatch",
            event="order_accepted",
        )
        == 3
    )

    found = parse(pages["escalation"])
    assert value(found, "linkage_escalations_total", reason="crowd_size", level="county") == 1
    # one dispatch decision per incident, and the county's when command moved
    assert (
        value(
            found,
            "linkage_entrypoint_requests_total",
            service="escalation",
            entrypoint="on_orders_dispatched",
            outcome="ok",
        )
        == 5
    )

    found = parse(pages["assessment"])
    assert value(found, "linkage_department_score", **score) is not None
    assert 0 <= value(found, "linkage_department_score", **score) <= 100
    assert value(found, "linkage_department_satisfaction_ratio", **score) == 1.0
    assert value(found, "linkage_satisfaction_ratings_total", rating="satisfied") == 1
    for rating in ("basically_satisfied", "dissatisfied"):
        assert value(found, "linkage_satisfaction_ratings_total", rating=rating) == 0, rating

    # nothing was dead-lettered along the way (a retry is fine: an escalation
    # may reach dispatch before the incident it moves)
    for name, text in pages.items():
        for (metric, labels), count in parse(text).items():
            if metric == "linkage_dead_letters_total":
                assert count == 0, f"{name}: {metric}{dict(labels)} = {count}"
