"""Command between levels with every service as a real process (统一指挥).

The same scenarios run with one instance of every service, then again with two
of each: the chains and the orders come out the same, and as the rules say.
"""

import time

import pytest
import requests
from nameko.exceptions import RemoteError
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import cluster_rpc, make_token, wait_for
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.e2e

SERVICES = ("intake", "dispatch", "escalation", "assessment")
CITY = "511100"
QIANWEI = "511123"
YUJIN = "511123102"
XIAOGU = "511123103"
SETTLE_S = 1.5  # quiet time after the last expected change: nothing more may happen


def chain(rpc, incident_id) -> list[tuple[str, str, str]]:
    try:
        steps = rpc.escalation.chain(incident_id)
    except RemoteError as error:
        if error.exc_type == "NotFound":
            return []
        raise
    return [(s["reason"], s["from_center"], s["to_center"]) for s in steps]


def orders(rpc, incident_id) -> list[tuple[str, str, str, str]]:
    return sorted(
        (o["center"], o["department"], o["role"], o["status"])
        for o in rpc.dispatch.list_orders(incident_id=incident_id)
    )


def until(predicate, message: str, timeout: float = 45):
    return wait_for(predicate, timeout=timeout, interval=0.2, message=message)


def settled(rpc, incident_id) -> dict:
    """The incident's chain, orders and center, once nothing has changed for a while."""
    time.sleep(SETTLE_S)
    return {
        "chain": chain(rpc, incident_id),
        "orders": orders(rpc, incident_id),
        "center": rpc.intake.get_incident(incident_id)["center"],
    }


def submit(rpc, **changes) -> str:
    return rpc.intake.submit_report(report(**changes))["incident_id"]


def lead_order(rpc, incident_id, center):
    return until(
        lambda: next(
            (
                o
                for o in rpc.dispatch.list_orders(incident_id=incident_id, center=center)
                if o["role"] == "lead"
            ),
            None,
        ),
        f"a lead order at {center}",
    )


def crowd_of_150(rpc) -> dict:
    incident = submit(rpc, category="mass.gathering", crowd_size=150)
    until(lambda: len(orders(rpc, incident)) >= 4, "town and county orders")
    return settled(rpc, incident)


def crowd_of_600(rpc) -> dict:
    incident = submit(rpc, category="mass.gathering", crowd_size=600)
    until(lambda: len(orders(rpc, incident)) >= 4, "town and city orders")
    return settled(rpc, incident)


def reinforcement(rpc) -> dict:
    incident = submit(rpc, category="water.burst_main")
    lead = lead_order(rpc, incident, DONGSHAN)
    rpc.dispatch.accept(lead["order_id"])
    rpc.dispatch.request_reinforcement(lead["order_id"], "管径大，人手不足")
    until(lambda: len(orders(rpc, incident)) >= 3, "the neighbour towns' orders")
    rpc.dispatch.request_reinforcement(lead["order_id"], "仍无法控制")
    until(lambda: len(orders(rpc, incident)) >= 4, "the county's order")
    return settled(rpc, incident)


def assigned_down(rpc, county) -> dict:
    """The county's duty room (`county`, a center caller) takes a report and hands it down."""
    incident = submit(county, category="mass.gathering", channel="center")
    until(lambda: len(orders(rpc, incident)) >= 2, "the county's orders")
    until(lambda: chain(rpc, incident) == [] and _commands(rpc, incident), "escalation to see it")
    county.escalation.assign_down(incident, DONGSHAN)
    until(lambda: len(orders(rpc, incident)) >= 4, "the town's orders")
    return settled(rpc, incident)


def _commands(rpc, incident_id) -> bool:
    try:
        return rpc.escalation.command(incident_id)["center"] == QIANWEI
    except RemoteError:
        return False


def scenario(broker_uri) -> dict:
    county_duty = make_token("center", "县值班员-赵", center=QIANWEI)
    with cluster_rpc(broker_uri) as rpc, cluster_rpc(broker_uri, token=county_duty) as county:
        return {
            "crowd_of_150": crowd_of_150(rpc),
            "crowd_of_600": crowd_of_600(rpc),
            "reinforcement": reinforcement(rpc),
            "assigned_down": assigned_down(rpc, county),
        }


EXPECTED = {
    "crowd_of_150": {
        "chain": [("crowd_size", DONGSHAN, QIANWEI)],
        "orders": [
            (QIANWEI, "qianwei-police", "assist", "dispatched"),
            (QIANWEI, "qianwei-politics", "lead", "dispatched"),
            (DONGSHAN, "dongshan-governance", "lead", "dispatched"),
            (DONGSHAN, "dongshan-police", "assist", "dispatched"),
        ],
        "center": QIANWEI,
    },
    "crowd_of_600": {
        "chain": [("crowd_size", DONGSHAN, CITY)],
        "orders": [
            (CITY, "leshan-police", "assist", "dispatched"),
            (CITY, "leshan-politics", "lead", "dispatched"),
            (DONGSHAN, "dongshan-governance", "lead", "dispatched"),
            (DONGSHAN, "dongshan-police", "assist", "dispatched"),
        ],
        "center": CITY,
    },
    "reinforcement": {
        "chain": [("neighbour", DONGSHAN, DONGSHAN), ("reinforcement", DONGSHAN, QIANWEI)],
        "orders": [
            (QIANWEI, "qianwei-water", "lead", "dispatched"),
            (DONGSHAN, "dongshan-water", "lead", "accepted"),
            (YUJIN, "yujin-water", "assist", "dispatched"),
            (XIAOGU, "xiaogu-water", "assist", "dispatched"),
        ],
        "center": QIANWEI,
    },
    "assigned_down": {
        "chain": [("assign_down", QIANWEI, DONGSHAN)],
        "orders": [
            (QIANWEI, "qianwei-police", "assist", "dispatched"),
            (QIANWEI, "qianwei-politics", "lead", "dispatched"),
            (DONGSHAN, "dongshan-governance", "lead", "dispatched"),
            (DONGSHAN, "dongshan-police", "assist", "dispatched"),
        ],
        "center": DONGSHAN,
    },
}


def test_command_moves_by_the_rules_the_same_with_one_or_two_instances_of_every_service(
    platform, broker_uri
):
    platform.start(*SERVICES)
    once = scenario(broker_uri)
    for name, expected in EXPECTED.items():
        assert once[name] == expected, (name, platform.logs())

    platform.start(*SERVICES, tag="-second")
    twice = scenario(broker_uri)
    assert twice == once, platform.logs()
    for process in platform.processes:
        assert "dead-lettered" not in process.log(), process.log()


def metric(processes, name: str, **labels) -> float:
    """A counter summed over the processes that serve it."""
    total = 0.0
    for process in processes:
        text = requests.get(process.metrics_url, timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
    return total


def test_a_deadline_missed_past_its_grace_moves_command_up_until_the_city_once_each(
    platform, broker_uri, network_file
):
    platform.env["LINKAGE_NETWORK"] = network_file(
        deadlines_s={"accept": 1, "arrive_tier1": 3600, "arrive_tier2": 3600, "overdue_grace": 2}
    )
    platform.start(*SERVICES)
    platform.start(*SERVICES, tag="-second")
    escalations = platform.of("escalation")
    with cluster_rpc(broker_uri) as rpc:
        ignored = submit(rpc, category="mass.gathering")
        caught_up = submit(rpc, category="water.burst_main")

        lead = lead_order(rpc, caught_up, DONGSHAN)
        until(lambda: rpc.dispatch.get_order(lead["order_id"])["overdue"], "a missed deadline")
        rpc.dispatch.accept(lead["order_id"])  # late, but within the grace

        until(lambda: len(chain(rpc, ignored)) >= 2, "command up to the city")
        # the city's own lead order goes unmet too: there is nothing above, and
        # it says so; the assist orders' missed deadlines are urged, never
        # moving command (CONTRACT.md section 7)
        until(
            lambda: metric(escalations, "linkage_escalations_refused_total", reason="overdue") >= 1,
            "the refusal at the city",
        )
        outcome = settled(rpc, ignored)
        assert outcome["chain"] == [
            ("overdue", DONGSHAN, QIANWEI),
            ("overdue", QIANWEI, CITY),
        ], platform.logs()
        assert outcome["center"] == CITY
        assert [(c, d) for c, d, _, _ in outcome["orders"]] == [
            (CITY, "leshan-police"),
            (CITY, "leshan-politics"),
            (QIANWEI, "qianwei-police"),
            (QIANWEI, "qianwei-politics"),
            (DONGSHAN, "dongshan-governance"),
            (DONGSHAN, "dongshan-police"),
        ]
        assert metric(escalations, "linkage_escalations_refused_total", reason="overdue") == 1
        assists = [
            o for o in rpc.dispatch.list_orders(incident_id=ignored) if o["role"] == "assist"
        ]
        for assist in assists:
            actions = [h["action"] for h in rpc.dispatch.get_order(assist["order_id"])["history"]]
            assert "overdue_accept" in actions and "urge" in actions, actions
        assert metric(escalations, "linkage_escalations_total", reason="overdue", level="city") == 1
        assert chain(rpc, caught_up) == []
        assert rpc.intake.get_incident(caught_up)["center"] == DONGSHAN
    refused = [p.log() for p in escalations if "no parent" in p.log()]
    assert refused, "the refusal is logged"
