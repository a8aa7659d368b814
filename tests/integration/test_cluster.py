"""Quorum queues on a real three-node RabbitMQ cluster (issue 15).

The cluster is tests/support/cluster.py's: three nodes of its own on loopback,
started once for this module (~15 s) and killed at its end. The machine's
broker is not used here.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

import eventlet
import pytest
from kombu import Connection, Queue
from nameko.runners import ServiceRunner

from services import topology
from services.intake.service import IntakeService
from shared.messaging import declare_topology
from shared.retry import retry_queues
from tests.conftest import cluster_rpc, wait_for
from tests.support.cluster import RabbitCluster
from tests.support.databases import database_urls
from tests.support.reports import report

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

KILL_AFTER = 300  # confirmed messages before the node goes; the publisher keeps going


@pytest.fixture(scope="module")
def cluster():
    with RabbitCluster() as running:
        yield running


@pytest.fixture(autouse=True)
def every_node_running(cluster):
    """A test that failed between kill and start leaves no node down for the next."""
    for node in cluster.nodes:
        cluster.start(node)
    yield


def queue_info(cluster, name: str, via=None) -> dict:
    return cluster.management(f"queues/%2F/{quote(name, safe='')}", node=via).json()


def members_of(cluster, name: str) -> dict:
    """The queue's record once the management API shows its members."""
    return wait_for(
        lambda: (info := queue_info(cluster, name)).get("members") and info,
        message=f"members of {name}",
    )


class ConfirmedPublisher:
    """Publishes persistent messages through one node, each awaiting its
    publisher confirm, until the connection breaks; keeps the confirmed ids."""

    def __init__(self, uri: str, queue: str):
        self.uri = uri
        self.queue = queue
        self.confirmed: list[str] = []
        self.sent: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        connection = Connection(self.uri, transport_options={"confirm_publish": True})
        try:
            producer = connection.Producer()
            for i in range(100_000):
                message_id = f"m-{i:06d}"
                self.sent.append(message_id)
                producer.publish(
                    {"n": i},
                    exchange="",
                    routing_key=self.queue,
                    message_id=message_id,
                    delivery_mode=2,
                    mandatory=True,
                )
                self.confirmed.append(message_id)  # publish returns once confirmed
        except Exception as exc:  # the node went away under us: that is the test
            self.error = exc
        finally:
            connection.release()


def drain(uri: str, queue: Queue) -> tuple[Counter, str]:
    """Every message left in `queue`, got and acked one by one until it is
    empty; with the URI of the node that served them."""
    delivered: Counter = Counter()
    with Connection(uri) as connection:
        connection.ensure_connection(max_retries=len(uri.split(";")))
        served_by = connection.as_uri()
        bound = queue(connection.default_channel)
        while (message := bound.get(no_ack=False)) is not None:
            delivered[message.properties["message_id"]] += 1
            message.ack()
    return delivered, served_by


def test_confirmed_messages_survive_the_loss_of_the_node_they_went_through(cluster):
    through, *survivors = cluster.nodes[1], cluster.nodes[0], cluster.nodes[2]
    queue = Queue("cluster-test-kill", durable=True, queue_arguments={"x-queue-type": "quorum"})
    with Connection(through.amqp_uri()) as connection:
        queue(connection.default_channel).declare()
    info = members_of(cluster, queue.name)
    assert info["type"] == "quorum"
    assert sorted(info["members"]) == sorted(node.name for node in cluster.nodes)
    # declared through `through`, so led there: the kill takes the leader too
    assert info["leader"] == through.name

    publisher = ConfirmedPublisher(through.amqp_uri(), queue.name)
    publishing = eventlet.spawn(publisher.run)
    wait_for(lambda: len(publisher.confirmed) >= KILL_AFTER, timeout=30, message="confirms")
    cluster.kill(through)
    publishing.wait()
    assert publisher.error is not None, "the publisher did not notice its node die"

    names = {node.name for node in survivors}
    wait_for(
        lambda: queue_info(cluster, queue.name, via=survivors[0]).get("leader") in names,
        timeout=30,
        message="a new leader on a surviving node",
    )
    # the dead node first in the list: kombu fails over to the next
    delivered, served_by = drain(cluster.amqp_uri_for("/", first=through), queue)

    assert f":{through.amqp_port}/" not in served_by
    assert set(publisher.confirmed) <= set(delivered), "a confirmed message was lost"
    assert set(delivered) <= set(publisher.sent)
    assert [id for id, times in delivered.items() if times > 1] == []
    # at most the one message in flight at the kill may also have arrived
    assert len(delivered) - len(publisher.confirmed) in (0, 1)

    cluster.start(through)
    assert cluster.running_nodes(via=survivors[0]) == {node.name for node in cluster.nodes}
    wait_for(
        lambda: through.name in queue_info(cluster, queue.name).get("online", []),
        timeout=30,
        message=f"{through.name} back among the queue's online members",
    )


@pytest.fixture
def quorum_intake(cluster, tmp_path, monkeypatch):
    """intake in this process on the cluster, with LINKAGE_QUEUE_TYPE=quorum."""
    monkeypatch.setenv("LINKAGE_QUEUE_TYPE", "quorum")
    with database_urls("sqlite", tmp_path) as urls:
        config = {
            "AMQP_URI": cluster.amqp_uri,
            "DATABASE_URLS": urls,
            "LINKAGE_NETWORK": None,
            "DEADLINE_SCAN_S": 0.5,
            "max_workers": 10,
            "LINKAGE_TOPOLOGY": topology(),
        }
        declare_topology(config)
        runner = ServiceRunner(config)
        runner.add_service(IntakeService)
        runner.start()
        try:
            yield config
        finally:
            runner.stop()


def test_with_quorum_configured_the_rpc_and_event_queues_are_replicated_on_every_node(
    cluster, quorum_intake
):
    everywhere = sorted(node.name for node in cluster.nodes)
    rpc_queue = members_of(cluster, "rpc-intake")
    assert (rpc_queue["type"], sorted(rpc_queue["members"])) == ("quorum", everywhere)
    for subscription in topology():
        info = members_of(cluster, subscription.queue)
        assert (info["type"], sorted(info["members"])) == ("quorum", everywhere), info["name"]

    with cluster_rpc(cluster.amqp_uri) as rpc:
        assert rpc.intake.submit_report(report())["status"] == "accepted"


def test_with_quorum_configured_the_dead_letter_queue_is_replicated_on_every_node(
    cluster, monkeypatch
):
    monkeypatch.setenv("LINKAGE_QUEUE_TYPE", "quorum")
    declare_topology({"AMQP_URI": cluster.amqp_uri, "LINKAGE_TOPOLOGY": topology()})
    info = queue_info(cluster, "linkage.dead-letter")
    assert (info["type"], sorted(info.get("members", []))) == (
        "quorum",
        sorted(node.name for node in cluster.nodes),
    )
    # retried messages wait in replicated queues too
    info = queue_info(cluster, retry_queues()[0].name)
    assert (info["type"], sorted(info.get("members", []))) == (
        "quorum",
        sorted(node.name for node in cluster.nodes),
    )
