"""The platform with its HTTP gateway, started once per test module.

Every service and the gateway run in this process (nameko ServiceRunner) on
a vhost and databases of the module's own; tests talk to the gateway over
real HTTP with `requests`, as a platform without AMQP does.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import requests
from nameko.runners import ServiceRunner

from services import service_classes, topology
from shared.config import SERVICES
from shared.messaging import declare_topology
from tests.conftest import make_token
from tests.support.broker import amqp_uri, fresh_vhost
from tests.support.databases import database_urls
from tests.support.processes import free_port


class Http:
    """The gateway at `url`, called with a token of one kind or another."""

    def __init__(self, url: str, uri: str):
        self.url = url
        self.amqp_uri = uri
        self.session = requests.Session()

    def call(self, method: str, path: str, token: str | None = "admin", **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if token == "admin":
            token = make_token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def get(self, path: str, token: str | None = "admin", **kwargs):
        return self.call("GET", path, token, **kwargs)

    def post(self, path: str, token: str | None = "admin", **kwargs):
        return self.call("POST", path, token, **kwargs)


def config_for(uri: str, db_urls: dict, port: int, **changes) -> dict:
    return {
        "AMQP_URI": uri,
        "DATABASE_URLS": db_urls,
        "LINKAGE_NETWORK": None,
        "DEADLINE_SCAN_S": 0.5,
        "max_workers": 10,
        "LINKAGE_TOPOLOGY": topology(),
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "GATEWAY_MAX_BODY_BYTES": 64 * 1024,
        **changes,
    }


@contextmanager
def gateway_platform(backend: str, tmp_path: Path, services=SERVICES, **changes):
    """`Http` to a gateway in front of `services` (all four by default)."""
    with fresh_vhost("gw") as vhost, database_urls(backend, tmp_path) as db_urls:
        port = free_port()
        config = config_for(amqp_uri(vhost), db_urls, port, **changes)
        declare_topology(config)
        runner = ServiceRunner(config)
        for cls in service_classes([*services, "gateway"]):
            runner.add_service(cls)
        runner.start()
        try:
            yield Http(f"http://127.0.0.1:{port}", amqp_uri(vhost))
        finally:
            runner.stop()
