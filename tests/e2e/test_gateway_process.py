"""The gateway as its own process, as `python -m services.gateway` runs it:
no database, no token secret, nothing written, nothing to migrate."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from tests.support.processes import ROOT, ServiceProcess, free_port

pytestmark = pytest.mark.e2e


def test_the_gateway_runs_without_a_database_or_the_token_secret(broker_uri, tmp_path):
    var = tmp_path / "var"
    port = free_port()
    env = {
        "AMQP_URI": broker_uri,
        "GATEWAY_PORT": str(port),
        "LINKAGE_AUTH_SECRET": "",  # the services check tokens; the gateway passes them on
        "LINKAGE_VAR_DIR": str(var),
    }
    gateway = ServiceProcess("gateway", env, tmp_path).start()
    try:
        gateway.wait_ready()
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {
            "status": "ok"
        }
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        assert (
            "linkage_http_request_duration_seconds"
            in requests.get(gateway.metrics_url, timeout=5).text
        )
    finally:
        assert gateway.terminate() == 0
    assert not var.exists() or not list(var.iterdir())  # no SQLite file, nothing at all
    migrate = subprocess.run(
        [sys.executable, "-m", "services.gateway", "migrate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrate.returncode == 0 and "nothing to migrate" in migrate.stdout
