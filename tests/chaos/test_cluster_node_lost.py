"""A RabbitMQ node lost under load: nothing lost, nothing twice, and the
callers wait seconds, not the node's restart time (issue 15).

Two instances of every service run as processes on tests/support/cluster.py's
three-node cluster with `LINKAGE_QUEUE_TYPE=quorum` and PostgreSQL, while
reports keep coming. Round 1 SIGKILLs the node the services are connected to;
round 2 the node leading `rpc-intake`; each node stays down a while, then
restarts. The reconciliation is the chaos suite's (test_nothing_lost.py).

The machine's own broker and PostgreSQL server are not restarted (no
`disruptive` marker). About 2 minutes: `make chaos` runs it; `make test` skips
it (LINKAGE_CHAOS unset), as it does not fit the suite's time.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from urllib.parse import quote

import pytest

from shared.network import load_network
from tests.chaos.test_nothing_lost import (
    CATEGORIES,
    SERVICES,
    Submitter,
    wait_until_settled,
)
from tests.conftest import wait_for
from tests.support.cluster import RabbitCluster
from tests.support.databases import database_urls, env_for
from tests.support.processes import Platform
from tests.support.reports import report

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.cluster,
    pytest.mark.skipif(
        not os.environ.get("LINKAGE_CHAOS"),
        reason="about 2 minutes: `make chaos` runs it (LINKAGE_CHAOS=full)",
    ),
]

FULL = os.environ.get("LINKAGE_CHAOS") == "full"
REPORTS = 480 if FULL else 240
ROUNDS = 2 if FULL else 1  # of the two faults, each
DOWN_S = 12.0  # how long a killed node stays down before it is started again
PACE_S = 1.0  # between two reports of one of the submitter's four threads


@pytest.fixture(scope="module")
def cluster():
    with RabbitCluster() as running:
        yield running


@pytest.fixture
def platform(cluster, tmp_path):
    """Two processes of every service on the cluster, quorum queues, PostgreSQL."""
    with database_urls("postgresql", tmp_path) as urls:
        env = {
            "AMQP_URI": cluster.amqp_uri,
            "LINKAGE_QUEUE_TYPE": "quorum",
            "DEADLINE_SCAN_S": "0.5",
            **env_for(urls),
        }
        started = Platform(env, tmp_path)
        try:
            started.start(*SERVICES)  # the first declares every queue, led by node 1
            started.start(*SERVICES)
            yield started, urls
        finally:
            started.stop()


def serving_node(cluster) -> str:
    """The node holding most of the clients' connections (the services')."""
    per_node = Counter(c["node"] for c in cluster.management("connections").json())
    return per_node.most_common(1)[0][0]


def rpc_intake_leader(cluster) -> str:
    return cluster.management(f"queues/{quote('/', safe='')}/rpc-intake").json()["leader"]


def lose_node(cluster, name: str, outages: list[tuple[float, float]]) -> None:
    """SIGKILL `name`, keep it down DOWN_S, start it, wait until it serves again."""
    node = cluster.node(name)
    killed = time.monotonic()
    cluster.kill(node)
    time.sleep(DOWN_S)
    cluster.start(node)
    outages.append((killed, time.monotonic()))
    everywhere = {n.name for n in cluster.nodes}
    wait_for(
        lambda: (
            cluster.running_nodes() == everywhere
            and set(cluster.management("queues/%2F/rpc-intake").json().get("online", []))
            == everywhere
        ),
        timeout=60,
        message=f"{name} back in the cluster and among rpc-intake's members",
    )


def faults(cluster, outages, applied, done: threading.Event) -> None:
    try:
        for _ in range(ROUNDS):
            time.sleep(3)
            victim = serving_node(cluster)
            lose_node(cluster, victim, outages)
            applied.append(f"SIGKILL {victim} (the services' node)")
            time.sleep(3)
            victim = rpc_intake_leader(cluster)
            lose_node(cluster, victim, outages)
            applied.append(f"SIGKILL {victim} (rpc-intake's leader)")
    finally:
        done.set()


def longest_wait_during(waits, outages) -> float:
    """The longest a submission waited for its answer among those waiting while
    a node was down."""
    return max(
        (
            answered - started
            for started, answered in waits.values()
            if any(started < up and answered > down for down, up in outages)
        ),
        default=0.0,
    )


def test_a_node_lost_under_load_loses_nothing_and_callers_fail_over(cluster, platform, capsys):
    running, db_urls = platform
    network = load_network()
    reports = [
        report(category=CATEGORIES[i % len(CATEGORIES)], source_system="chaos-cluster")
        for i in range(REPORTS)
    ]
    done = threading.Event()
    # a short timeout: a call whose reply went down with a node is sent again
    submitter = Submitter(cluster.amqp_uri, reports, done, pace_s=PACE_S, timeout_s=5)
    outages: list[tuple[float, float]] = []
    applied: list[str] = []
    injector = threading.Thread(target=faults, args=(cluster, outages, applied, done))
    injector.start()
    submitter.run()
    injector.join()
    accepted, lost, duplicated, unexpected = wait_until_settled(reports, db_urls, network)
    longest = longest_wait_during(submitter.waits, outages)
    with capsys.disabled():  # the reconciliation is the point: always shown
        print(
            f"\ncluster chaos (quorum, 2 processes/service, PostgreSQL): {', '.join(applied)}, "
            f"each down {DOWN_S:.0f} s; {submitter.retries} client retries"
        )
        print(f"accepted {accepted}, lost {lost}, duplicated {duplicated}")
        print(f"longest wait for an answer while a node was down: {longest:.1f} s")
    assert len(submitter.answers) == REPORTS, "some reports never got an answer"
    assert len(outages) == 2 * ROUNDS, applied
    assert (lost, duplicated, unexpected) == (0, 0, 0), running.logs()
    assert longest < DOWN_S, "a caller waited for the killed node to come back"
