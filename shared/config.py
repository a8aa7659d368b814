"""Configuration from the environment (CONTRACT.md section 1), with working defaults."""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path
from urllib.parse import urlsplit

# The services that own a database (migrations, retention, schema checks).
SERVICES = ("intake", "dispatch", "escalation", "assessment")
# The HTTP gateway (services/gateway): no database, no events, only RPC calls.
GATEWAY = "gateway"
DEFAULT_METRICS_PORTS = {
    "intake": 9101,
    "dispatch": 9102,
    "escalation": 9103,
    "assessment": 9104,
    GATEWAY: 9105,
}
DEFAULT_GATEWAY_PORT = 8080
VAR_DIR = Path(os.environ.get("LINKAGE_VAR_DIR", Path(__file__).resolve().parent.parent / "var"))


def amqp_uri() -> str:
    return os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/")


def amqp_ssl() -> dict | None:
    """TLS options for every broker connection (nameko's `AMQP_SSL`, kombu's
    `ssl`), or None for plain AMQP.

    `AMQP_SSL_CA`, `AMQP_SSL_CERT`, `AMQP_SSL_KEY` name PEM files (the CA that
    signed the broker's certificate; this client's certificate and key, when
    the broker asks for one). The broker's certificate is then always checked,
    and its name against the host of `AMQP_URI` (or `AMQP_SSL_SERVER_HOSTNAME`).
    `AMQP_SSL` (JSON: py-amqp's options, e.g. `{"ca_certs": "/etc/ca.pem"}`)
    replaces all of that. Pair either with an `amqps://` URI (port 5671).
    """
    raw = os.environ.get("AMQP_SSL", "").strip()
    if raw:
        options = json.loads(raw)
        if not isinstance(options, dict):
            raise ValueError("AMQP_SSL must be a JSON object")
        return options
    files = {
        "ca_certs": os.environ.get("AMQP_SSL_CA"),
        "certfile": os.environ.get("AMQP_SSL_CERT"),
        "keyfile": os.environ.get("AMQP_SSL_KEY"),
    }
    if not any(files.values()):
        return None
    options = {name: path for name, path in files.items() if path}
    options["cert_reqs"] = ssl.CERT_REQUIRED
    hostname = os.environ.get("AMQP_SSL_SERVER_HOSTNAME") or urlsplit(amqp_uri()).hostname
    if hostname:
        options["server_hostname"] = hostname
    return options


def database_url(service: str) -> str:
    url = os.environ.get(f"{service.upper()}_DATABASE_URL")
    if url:
        return url
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{VAR_DIR / (service + '.db')}"


def metrics_port(service: str, single: bool = True) -> int:
    """`METRICS_PORT` wins for a process that runs one service."""
    if single and os.environ.get("METRICS_PORT"):
        return int(os.environ["METRICS_PORT"])
    specific = os.environ.get(f"{service.upper()}_METRICS_PORT")
    return int(specific) if specific else DEFAULT_METRICS_PORTS[service]


def deadline_scan_s() -> float:
    return float(os.environ.get("DEADLINE_SCAN_S", "5"))


def queue_type() -> str:
    """`quorum` in a production cluster (see deploy/rabbitmq/); `classic` by default."""
    return os.environ.get("LINKAGE_QUEUE_TYPE", "classic")


def nameko_config() -> dict:
    return {
        "AMQP_URI": amqp_uri(),
        "AMQP_SSL": amqp_ssl(),
        "LINKAGE_NETWORK": os.environ.get("LINKAGE_NETWORK"),
        "max_workers": int(os.environ.get("LINKAGE_MAX_WORKERS", "10")),
        "PARENT_CALLS_TRACKED": 10,
        "HEARTBEAT": int(os.environ.get("AMQP_HEARTBEAT", "60")),
        "DEADLINE_SCAN_S": deadline_scan_s(),
        "ASSESSMENT_GAUGES_S": float(os.environ.get("ASSESSMENT_GAUGES_S", "15")),
        # the gateway's HTTP server (nameko's web server reads WEB_SERVER_ADDRESS)
        "WEB_SERVER_ADDRESS": f"0.0.0.0:{os.environ.get('GATEWAY_PORT', DEFAULT_GATEWAY_PORT)}",
        "GATEWAY_MAX_BODY_BYTES": int(os.environ.get("GATEWAY_MAX_BODY_BYTES", str(64 * 1024))),
        "GATEWAY_RPC_TIMEOUT_S": float(os.environ.get("GATEWAY_RPC_TIMEOUT_S", "30")),
    }
