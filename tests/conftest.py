"""Fixtures shared by the suites.

Integration and end-to-end tests talk to the real RabbitMQ (a vhost of their
own, created through the management API and deleted afterwards) and to real
databases: SQLite files and PostgreSQL schemas, one database per service.
"""

import eventlet

eventlet.monkey_patch()

from psycogreen.eventlet import patch_psycopg  # noqa: E402

patch_psycopg()

import copy  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402
from kombu.mixins import ConsumerMixin  # noqa: E402
from nameko.messaging import QueueConsumer  # noqa: E402
from nameko.runners import ServiceRunner  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from shared.auth import bearer, mint  # noqa: E402
from shared.messaging import declare_topology  # noqa: E402
from shared.network import SAMPLE_NETWORK  # noqa: E402
from tests.support.broker import EventTap, amqp_uri, fresh_vhost  # noqa: E402
from tests.support.databases import database_urls, env_for  # noqa: E402
from tests.support.processes import Platform  # noqa: E402

BACKENDS = ["sqlite", "postgresql"]

# Every service checks tokens with this secret; service processes inherit it.


# Services started in this process stop in about 0.2 s instead of 2-3 s:
# nameko's queue consumer looks for a stop request between two waits for
# messages, one second each by default (kombu's `safety_interval`), and a
# stop takes two or three of them. Only the polling interval changes.
def _consume_polling_often(self, limit=None, timeout=None, safety_interval=1, **kwargs):
    return ConsumerMixin.consume(self, limit, timeout, safety_interval=0.1, **kwargs)


QueueConsumer.consume = _consume_polling_often

TEST_SECRET = "linkage-test-secret-" + "0123456789abcdef" * 2
os.environ["LINKAGE_AUTH_SECRET"] = TEST_SECRET
os.environ.pop("LINKAGE_AUTH_SECRET_FILE", None)


def make_token(kind: str = "admin", sub: str | None = None, ttl_s: int = 3600, **claims) -> str:
    """A signed token of `kind` (CONTRACT.md section 6); `sub` defaults to the kind."""
    return mint(TEST_SECRET, sub or f"test-{kind}", kind, ttl_s=ttl_s, **claims)


def wait_for(predicate, timeout: float = 15, interval: float = 0.1, message: str = ""):
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        eventlet.sleep(interval)


def sample_network() -> dict:
    return yaml.safe_load(SAMPLE_NETWORK.read_text(encoding="utf-8"))


def write_network(path: Path, network: dict) -> str:
    path.write_text(yaml.safe_dump(network, allow_unicode=True), encoding="utf-8")
    return str(path)


@pytest.fixture
def network_file(tmp_path):
    """`network_file(changes)` writes the sample network with top-level keys replaced."""

    def make(**changes) -> str:
        network = copy.deepcopy(sample_network())
        network.update(changes)
        return write_network(
            tmp_path / f"network-{len(list(tmp_path.glob('network-*')))}.yaml", network
        )

    return make


@pytest.fixture
def vhost():
    with fresh_vhost() as name:
        yield name


@pytest.fixture
def broker_uri(vhost):
    return amqp_uri(vhost)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def db_urls(backend, tmp_path):
    with database_urls(backend, tmp_path) as urls:
        yield urls


@pytest.fixture
def nameko_config(broker_uri, db_urls):
    from services import topology  # every service's handlers: imported when first needed

    config = {
        "AMQP_URI": broker_uri,
        "DATABASE_URLS": db_urls,
        "LINKAGE_NETWORK": None,
        "DEADLINE_SCAN_S": 0.5,
        "max_workers": 10,
        "LINKAGE_TOPOLOGY": topology(),
    }
    declare_topology(config)
    return config


@pytest.fixture
def run_services(nameko_config):
    """Start service classes in this process (nameko ServiceRunner); stopped at teardown."""
    runners = []

    def start(*service_classes, **config_changes) -> ServiceRunner:
        runner = ServiceRunner({**nameko_config, **config_changes})
        for cls in service_classes:
            runner.add_service(cls)
        runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in reversed(runners):
        runner.stop()


@pytest.fixture
def rpc(nameko_config):
    """The API as an administrator calls it (rights are tested with `rpc_as`)."""
    with cluster_rpc(nameko_config["AMQP_URI"]) as proxy:
        yield proxy


@pytest.fixture
def rpc_as(nameko_config):
    """`with rpc_as("center", center=...) as rpc:` the API as that caller."""

    def open_(kind: str, sub: str | None = None, **claims):
        return cluster_rpc(nameko_config["AMQP_URI"], token=make_token(kind, sub, **claims))

    return open_


@pytest.fixture
def tap(broker_uri):
    """`tap(source)` listens to a service's events exchange from now on."""
    taps = []

    def make(source: str, routing_key: str = "#") -> EventTap:
        listener = EventTap(broker_uri, source, routing_key)
        taps.append(listener)
        return listener

    yield make
    for listener in taps:
        listener.close()


@pytest.fixture
def platform(broker_uri, db_urls, tmp_path):
    """Services as real processes against this test's vhost and databases."""
    env = {"AMQP_URI": broker_uri, "DEADLINE_SCAN_S": "0.5", **env_for(db_urls)}
    started = Platform(env, tmp_path)
    yield started
    started.stop()


@contextmanager
def cluster_rpc(uri: str, timeout: float = 30, token: str | None = None):
    """An RPC proxy carrying `token` (an administrator's by default)."""
    context = bearer(token if token is not None else make_token())
    with ClusterRpcProxy({"AMQP_URI": uri}, timeout=timeout, context_data=context) as proxy:
        yield proxy
