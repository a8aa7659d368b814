"""The broker users of deploy/rabbitmq/definitions.json on the real RabbitMQ.

The file is imported through the management API into a vhost of the test's
own, its users renamed after the vhost (users are broker-wide) and given test
passwords, as a deployment gives them theirs; the administrator declares the
topology, as the deploy step does. Then each user does what it may and is
refused one step beyond.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from amqp.exceptions import AccessRefused
from kombu import Connection, Exchange, Queue
from nameko.standalone.rpc import ClusterRpcProxy

from services import topology
from services.dispatch.service import DispatchService
from shared.auth import bearer
from shared.deadletters import DeadLetters
from shared.messaging import declare_topology
from tests.conftest import make_token, wait_for
from tests.integration.test_dead_letters_and_retries import escalated
from tests.integration.test_reliability import incident_received
from tests.support.broker import AUTH, MANAGEMENT, fresh_vhost
from tests.support.databases import database_urls

pytestmark = pytest.mark.integration

DEFINITIONS = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "definitions.json"
DISPATCH_QUEUE = "evt-intake-incident_received--dispatch.on_incident_received"


class BrokerUsers:
    """definitions.json's users in `vhost`: `uri(name)` connects as one of them."""

    def __init__(self, vhost: str):
        self.vhost = vhost
        self.passwords: dict[str, str] = {}

    def login(self, name: str) -> str:
        return f"{self.vhost}-{name}"

    def uri(self, name: str) -> str:
        user = quote(self.login(name), safe="")
        return f"pyamqp://{user}:{self.passwords[name]}@127.0.0.1:5672/{quote(self.vhost, safe='')}"

    def create(self) -> None:
        definitions = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
        for entry in definitions["permissions"] + definitions["topic_permissions"]:
            entry["user"] = self.login(entry["user"])
        for entries in definitions.values():  # permissions, policies, ...: into this vhost
            for entry in entries if isinstance(entries, list) else ():
                if "vhost" in entry:
                    entry["vhost"] = self.vhost
        users = definitions["users"]
        for user in users:
            self.passwords[user["name"]] = uuid.uuid4().hex
            user["name"] = self.login(user["name"])
        definitions.pop("vhosts")  # fresh_vhost made it
        response = requests.post(f"{MANAGEMENT}/definitions", auth=AUTH, json=definitions)
        response.raise_for_status()
        for user, password in zip(users, self.passwords.values(), strict=True):
            # the file leaves every user without a password; the deployment sets them
            response = requests.put(
                f"{MANAGEMENT}/users/{quote(user['name'], safe='')}",
                auth=AUTH,
                json={"password": password, "tags": user["tags"]},
                timeout=10,
            )
            response.raise_for_status()

    def delete(self) -> None:
        for name in self.passwords:
            requests.delete(
                f"{MANAGEMENT}/users/{quote(self.login(name), safe='')}", auth=AUTH, timeout=10
            )


@pytest.fixture
def users(monkeypatch):
    # retries quick enough to see one spent; the administrator declares these queues
    monkeypatch.setenv("LINKAGE_RETRY_DELAYS_S", "0.2")
    monkeypatch.setenv("LINKAGE_RETRY_ATTEMPTS", "2")
    with fresh_vhost("perm") as vhost:
        broker = BrokerUsers(vhost)
        try:
            broker.create()
            refused = declare_topology(
                {"AMQP_URI": broker.uri("linkage-admin"), "LINKAGE_TOPOLOGY": topology()}
            )
            assert refused == []
            yield broker
        finally:
            broker.delete()


def publish(uri: str, exchange: str, routing_key: str, payload) -> None:
    with Connection(uri, transport_options={"confirm_publish": True}) as connection:
        connection.Producer().publish(
            payload,
            exchange=Exchange(exchange, type="topic", durable=True, no_declare=True),
            routing_key=routing_key,
            serializer="json",
            delivery_mode=2,
        )


def test_a_users_password_comes_from_the_deployment_not_the_file():
    definitions = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    assert {user["password_hash"] for user in definitions["users"]} == {""}


def test_dispatch_publishes_to_its_own_exchange_but_not_to_intakes(users):
    publish(users.uri("dispatch"), "dispatch.events", "order_accepted", {"probe": 1})
    with pytest.raises(AccessRefused, match="exchange 'intake.events'"):
        publish(users.uri("dispatch"), "intake.events", "incident_received", incident_received())
    # nor into intake's subscriber queues through the retry exchange
    with pytest.raises(AccessRefused, match="topic"):
        publish(
            users.uri("dispatch"),
            "linkage.retry",
            "200ms.evt-escalation-incident_escalated--intake.on_incident_escalated",
            {"probe": 1},
        )


def test_a_platform_consumes_no_services_queue_and_listens_to_no_rpc(users):
    with Connection(users.uri("platform-12345")) as connection:
        for queue in (DISPATCH_QUEUE, "rpc-intake", "linkage.dead-letter"):
            channel = connection.channel()
            with pytest.raises(AccessRefused, match=f"queue '{queue}'"):
                channel.basic_consume(queue, callback=lambda message: None)
        # its reply queue may not be bound to the calls meant for a service
        snooper = Queue(
            f"rpc.reply-standalone_rpc_proxy-{uuid.uuid4()}",
            exchange=Exchange("nameko-rpc", type="topic", durable=True),
            routing_key="intake.*",
            queue_arguments={"x-expires": 60000},
        )
        with pytest.raises(AccessRefused, match="topic 'intake.\\*'"):
            snooper(connection.channel()).declare()
    with pytest.raises(AccessRefused):
        publish(users.uri("platform-12345"), "intake.events", "incident_received", {"probe": 1})


def test_a_service_runs_on_its_own_user_and_a_platform_calls_it(users, tmp_path):
    """Dispatch, started with dispatch's user, consumes an event, retries one
    it cannot apply yet and dead-letters it once its attempts are spent; a
    platform's user calls its API."""
    from nameko.runners import ServiceRunner

    with database_urls("sqlite", tmp_path) as db_urls:
        config = {
            "AMQP_URI": users.uri("dispatch"),
            "DATABASE_URLS": db_urls,
            "LINKAGE_NETWORK": None,
            "DEADLINE_SCAN_S": 0.5,
            "max_workers": 4,
            "LINKAGE_TOPOLOGY": topology(),
        }
        refused = declare_topology(config)  # what the runner does at start
        assert "dispatch.events" not in refused and DISPATCH_QUEUE not in refused
        assert "intake.events" in refused and "linkage.dead-letter" in refused
        runner = ServiceRunner(config)
        runner.add_service(DispatchService)
        runner.start()
        try:
            publish(users.uri("intake"), "intake.events", "incident_received", incident_received())
            publish(
                users.uri("escalation"),
                "escalation.events",
                "incident_escalated",
                escalated("inc-unknown"),
            )
            platform = {"AMQP_URI": users.uri("platform-12345")}
            with ClusterRpcProxy(platform, timeout=10, context_data=bearer(make_token())) as rpc:
                orders = wait_for(
                    lambda: rpc.dispatch.list_orders(incident_id="inc-reliability"), timeout=15
                )
            assert orders
            admin = DeadLetters(users.uri("linkage-admin"))
            [letter] = wait_for(admin.list, timeout=15)
            assert letter.error_type == "RetryLater"
            assert letter.headers["x-linkage-attempts"] == 2
        finally:
            runner.stop()


def test_the_gateway_calls_the_services_on_its_own_user_and_may_do_nothing_else(users, tmp_path):
    """The gateway with its broker user answers HTTP through dispatch's RPC;
    the same user may neither consume a service's calls nor publish events."""
    from nameko.runners import ServiceRunner

    from services.gateway.service import GatewayService
    from tests.support.processes import free_port

    with database_urls("sqlite", tmp_path) as db_urls:
        port = free_port()
        dispatch = ServiceRunner(
            {"AMQP_URI": users.uri("dispatch"), "DATABASE_URLS": db_urls, "max_workers": 4}
        )
        dispatch.add_service(DispatchService)
        gateway = ServiceRunner(
            {"AMQP_URI": users.uri("gateway"), "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}
        )
        gateway.add_service(GatewayService)
        dispatch.start()
        gateway.start()
        try:
            response = requests.get(
                f"http://127.0.0.1:{port}/api/v1/orders",
                headers={"Authorization": f"Bearer {make_token()}"},
                timeout=30,
            )
            assert response.status_code == 200 and response.json() == []
        finally:
            gateway.stop()
            dispatch.stop()
    with Connection(users.uri("gateway")) as connection:
        with pytest.raises(AccessRefused, match="queue 'rpc-dispatch'"):
            connection.channel().basic_consume("rpc-dispatch", callback=lambda message: None)
        snooper = Queue(
            f"rpc.reply-gateway-{uuid.uuid4()}",
            exchange=Exchange("nameko-rpc", type="topic", durable=True),
            routing_key="dispatch.*",
            queue_arguments={"x-expires": 60000},
        )
        with pytest.raises(AccessRefused, match="topic 'dispatch.\\*'"):
            snooper(connection.channel()).declare()
    with pytest.raises(AccessRefused):
        publish(users.uri("gateway"), "dispatch.events", "order_accepted", {"probe": 1})
