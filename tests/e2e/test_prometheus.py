"""The dashboards and alert rules against a real Prometheus and the running services.

Debian's `prometheus` runs with deploy/prometheus/prometheus.local.yml, its
service targets moved to the test's processes, scraping and evaluating every
second, with the repo's alerts.yml. A short load takes incidents through their
lifecycle, a return, missed deadlines up to the city, a rating and a poison
message. Then every expression of every Grafana panel (variables filled in as
Grafana does for "All") must parse and return data, and every alert rule must
parse, evaluate and be loaded healthy. The few panels that list only trouble
(`SHOWS_ONLY_TROUBLE`) are asked without their final "> 0": their series must
exist, at 0 on a healthy platform.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from kombu import Connection, Exchange
from nameko.exceptions import RemoteError

from tests.conftest import cluster_rpc, make_token, wait_for
from tests.support.processes import free_port
from tests.support.prometheus import (
    DASHBOARDS,
    Prometheus,
    Query,
    alert_rules,
    dashboard_queries,
    dashboard_range,
    dashboard_variables,
    finite_values,
    grafana_all,
    load_dashboard,
    prometheus_binary,
    render,
    scrape_config,
)
from tests.support.reports import report

pytestmark = pytest.mark.e2e

SERVICES = ("intake", "dispatch", "escalation", "assessment", "gateway")
# Deadlines of seconds, so orders left alone go overdue, up to the city and
# its refusal within the test.
DEADLINES_S = {"accept": 2, "arrive_tier1": 5, "arrive_tier2": 5, "overdue_grace": 2}
SETTLE_S = 4  # scrapes after the load, so that rate() has its two samples
RETRY_S = 10  # how long a panel still empty is asked again
NO_DATA = "no data"

# Panels that list only trouble or work in flight, through a final "> 0": on
# a healthy platform under a short load they are rightly empty. Without the
# filter their expression must still find its series (at 0).
SHOWS_ONLY_TROUBLE = {
    ("linkage-platform-health", 4, "A"): "entrypoint calls that ended in an unexpected error",
    ("linkage-platform-health", 8, "B"): "events the broker could route to no queue",
    ("linkage-platform-health", 15, "A"): "messages delivered and not yet acknowledged",
}
_ABOVE_ZERO = re.compile(r"\s*>\s*0\s*$")


def orders_of(rpc, incident_id: str, expected: int) -> list[dict]:
    return wait_for(
        lambda: (
            len(found := rpc.dispatch.list_orders(incident_id=incident_id)) >= expected and found
        ),
        timeout=30,
        message=f"{expected} order(s) of {incident_id}",
    )


def rated(rpc, incident_id: str, rating: str) -> dict | None:
    try:
        return rpc.assessment.record_satisfaction(incident_id, rating)
    except RemoteError as error:
        if error.exc_type == "NotFound":
            return None
        raise


def lead_order(orders: list[dict]) -> dict:
    return next(o for o in orders if o["role"] == "lead")


def generate_load(rpc, broker_uri: str) -> None:
    """A few minutes of a town's duty room, in seconds."""
    submit = rpc.intake.submit_report
    water = [submit(report(category="water.burst_main"))["incident_id"] for _ in range(3)]
    building = [submit(report(category="building.illegal"))["incident_id"]]
    building.append(submit(report(category="dispute.neighbour"))["incident_id"])
    submit(report(category="mass.gathering", crowd_size=150))  # the county commands
    submit(report(category="mass.gathering", crowd_size=600))  # the city commands
    submit(report(category="water.supply", channel="app"))
    with pytest.raises(RemoteError):  # a rejected call
        submit(report(channel="telegram"))

    # water (tier 1): signed for, on scene, completed, rated
    for n, incident in enumerate(water):
        order = lead_order(orders_of(rpc, incident, 1))["order_id"]
        rpc.dispatch.accept(order)
        if n < 2:
            rpc.dispatch.arrive(order)
        if n == 0:
            rpc.dispatch.report(order, "已关阀")
            rpc.dispatch.complete(order, "已修复")
    # construction (tier 2) on scene; a mediation returned (退单) to the next holder
    on_scene = lead_order(orders_of(rpc, building[0], 1))["order_id"]
    rpc.dispatch.accept(on_scene)
    rpc.dispatch.arrive(on_scene)
    returned = lead_order(orders_of(rpc, building[1], 1))["order_id"]
    rpc.dispatch.return_order(returned, "不属本单位职责")

    wait_for(lambda: rated(rpc, water[0], "satisfied"), timeout=30, message="a rating")
    wait_for(lambda: rated(rpc, water[1], "dissatisfied"), timeout=30, message="a rating")

    # a payload off its contract: each of its three subscribers (intake,
    # dispatch, assessment) dead-letters it
    with Connection(broker_uri) as connection:
        connection.Producer().publish(
            {"junk": True},
            exchange=Exchange("escalation.events", type="topic", durable=True),
            routing_key="incident_escalated",
            serializer="json",
            delivery_mode=2,
        )


def drive_gateway(url: str) -> None:
    """A platform without AMQP: a report, its incident, its orders, the API's
    description and a mistyped path, over HTTP."""
    headers = {"Authorization": f"Bearer {make_token()}"}
    submitted = requests.post(f"{url}/api/v1/incidents", json=report(), headers=headers, timeout=30)
    incident = submitted.json()["incident_id"]
    for path in (f"/api/v1/incidents/{incident}", "/api/v1/orders", "/openapi.json", "/nowhere"):
        requests.get(url + path, params={}, headers=headers, timeout=30)


def evaluate(prometheus: Prometheus, query: Query, expr: str) -> str | None:
    """None when the panel target returns data; else what is wrong. Instant
    targets are asked at now, range targets over the life of this Prometheus."""
    if query.instant:
        answer = prometheus.query(expr)
    else:
        answer = prometheus.query_range(expr, prometheus.started_at, time.time(), step="1s")
    if answer.get("status") != "success":
        return f"does not parse or evaluate: {answer.get('error')}"
    if not finite_values(answer):
        return NO_DATA
    return None


def panel_expressions(prometheus: Prometheus, vhost: str):
    """Every panel target as Grafana sends it with "All" chosen for each
    variable (this test's vhost for `vhost`); and what is wrong with the
    variables' own queries."""
    rendered: list[tuple[Query, str]] = []
    problems: dict[str, str] = {}
    for path in DASHBOARDS:
        board = load_dashboard(path)
        variables = {}
        for variable in dashboard_variables(board):
            where = f"{board['uid']} variable ${variable.name}"
            answer = prometheus.label_values(variable.label, variable.selector)
            values = answer.get("data") or []
            if answer.get("status") != "success":
                problems[where] = f"does not parse: {answer.get('error')}"
            elif variable.name == "vhost" and vhost not in values:
                problems[where] = f"{vhost} is not among its values {values}"
            elif not values:
                problems[where] = NO_DATA
            variables[variable.name] = (
                vhost if variable.name == "vhost" else grafana_all(variable, values)
            )
        for query in dashboard_queries(board):
            expr = render(query.expr, variables, dashboard_range(board))
            if (query.dashboard, query.panel, query.ref) in SHOWS_ONLY_TROUBLE:
                if not _ABOVE_ZERO.search(expr):
                    problems[str(query)] = "in SHOWS_ONLY_TROUBLE but does not end in '> 0'"
                    continue
                expr = _ABOVE_ZERO.sub("", expr)
            rendered.append((query, expr))
    return rendered, problems


@pytest.mark.parametrize("backend", ["postgresql"])
def test_every_panel_and_alert_rule_evaluates_on_a_real_prometheus(
    platform, broker_uri, vhost, network_file, tmp_path
):
    if prometheus_binary() is None:
        pytest.fail("prometheus is not installed: `apt-get install prometheus`")
    platform.env["LINKAGE_NETWORK"] = network_file(deadlines_s=DEADLINES_S)
    platform.env["ASSESSMENT_GAUGES_S"] = "1"
    platform.env["GATEWAY_PORT"] = str(gateway_port := free_port())
    platform.start(*SERVICES)
    config = scrape_config({name: [p.port for p in platform.of(name)] for name in SERVICES})
    jobs = {job["job_name"] for job in config["scrape_configs"]}

    with Prometheus(config, tmp_path / "prometheus") as prometheus:

        def all_up() -> bool:
            health: dict[str, list[str]] = {}
            for target in prometheus.targets():
                health.setdefault(target["labels"]["job"], []).append(target["health"])
            return set(health) == jobs and all(set(h) == {"up"} for h in health.values())

        # every target up and scraped idle before the load, as on a running platform
        wait_for(all_up, timeout=20, message="every scrape target up")
        time.sleep(2)

        with cluster_rpc(broker_uri) as rpc:
            generate_load(rpc, broker_uri)
        drive_gateway(f"http://127.0.0.1:{gateway_port}")

        # missed deadlines climb to the city, which can go no higher
        wait_for(
            lambda: finite_values(prometheus.query("sum(linkage_escalations_refused_total)")),
            timeout=45,
            interval=0.5,
            message="an escalation refused at the city",
        )
        wait_for(
            lambda: finite_values(prometheus.query("sum(linkage_dead_letters_total) >= 3")),
            timeout=20,
            interval=0.5,
            message="the poison message dead-lettered by its three subscribers",
        )
        time.sleep(SETTLE_S)

        rendered, problems = panel_expressions(prometheus, vhost)
        failing = {query: (expr, evaluate(prometheus, query, expr)) for query, expr in rendered}
        failing = {query: found for query, found in failing.items() if found[1] is not None}
        # a panel fed by a timer or a rate() may want a few more scrapes
        deadline = time.monotonic() + RETRY_S
        while any(why == NO_DATA for _, why in failing.values()) and time.monotonic() < deadline:
            time.sleep(1)
            for query, (expr, why) in list(failing.items()):
                if why == NO_DATA and evaluate(prometheus, query, expr) is None:
                    del failing[query]
        for query, (expr, why) in failing.items():
            problems[str(query)] = f"{why}\n      {expr}"

        # the trouble-only panels are rightly empty only if there was no trouble
        errors = prometheus.query('linkage_entrypoint_requests_total{outcome="error"} > 0')
        for series in errors["data"]["result"]:
            labels = series["metric"]
            where = f"{labels['service']}.{labels['entrypoint']}"
            problems[f"entrypoint {where}"] = f"{series['value'][1]} call(s) ended in an error"

        # alert rules: each parses and evaluates; Prometheus loaded every one
        rules = alert_rules()
        loaded = {rule["name"]: rule for rule in prometheus.rules()}
        for name, expr in rules:
            answer = prometheus.query(expr)
            rule = loaded.get(name)
            if answer.get("status") != "success":
                problems[f"alert {name}"] = f"does not parse or evaluate: {answer.get('error')}"
            elif rule is None:
                problems[f"alert {name}"] = "not loaded by Prometheus"
            elif rule["health"] != "ok":
                problems[f"alert {name}"] = f"health {rule['health']}: {rule.get('lastError')}"

    assert len(rendered) > 0 and len(rules) > 0
    assert not problems, (
        f"{len(problems)} of {len(rendered)} panel targets, the dashboards' variables and "
        f"{len(rules)} alert rules fail:\n"
        + "\n".join(f"- {where}: {why}" for where, why in sorted(problems.items()))
    )
