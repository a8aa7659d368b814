"""Start services in the foreground: `python -m services.<name>` or `python -m services`.

Before any service starts, the network file is validated (a bad file stops
start-up with one message naming the entry), the broker topology is declared
(waiting for a broker that is still coming up) and `/metrics` is served. A
database behind the code stops start-up with one line naming the command to
run (`python -m services.<name> migrate`: shared/migrations.py), exit code 2.
SIGTERM and SIGINT stop the services gracefully: entrypoints stop taking work,
workers in hand finish and commit, the outbox relay drains, then the process
exits.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import time

import eventlet
from nameko.runners import ServiceRunner

from shared import config
from shared.auth import MissingSecret, auth_secret
from shared.dependencies import network_for
from shared.messaging import declare_topology
from shared.metrics import serve_metrics
from shared.migrations import SchemaNotReady, require_schema
from shared.network import NetworkError

log = logging.getLogger("linkage")


class _ExpectedErrorsWithoutTrace(logging.Filter):
    """A caller's bad argument is logged as one line, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("(expected) error"):
            record.exc_info = None
        return True


def _patch_postgres() -> None:
    """psycopg2 must yield to eventlet instead of blocking the whole process."""
    from psycogreen.eventlet import patch_psycopg

    patch_psycopg()


def _wait_for_broker(nameko_config: dict, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            declare_topology(nameko_config)
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("broker not reachable yet (%s); retrying", type(exc).__name__)
            eventlet.sleep(delay)
            delay = min(delay * 2, 5)


def _stop_within(runner: ServiceRunner, timeout_s: float) -> None:
    """A graceful stop, bounded: a service that cannot reach its broker or
    database to finish cleanly is killed rather than left hanging."""
    with eventlet.Timeout(timeout_s, False):
        runner.stop()
        return
    log.error("services did not stop within %.0fs; killing them", timeout_s)
    runner.kill()


def run(service_classes: list[type], topology: tuple) -> int:
    """Run `service_classes` in this process until SIGTERM; `topology` is every
    service's subscriptions (declared by each process at start)."""
    names = [cls.name for cls in service_classes]
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    logging.getLogger("nameko.containers").addFilter(_ExpectedErrorsWithoutTrace())
    _patch_postgres()
    nameko_config = {**config.nameko_config(), "LINKAGE_TOPOLOGY": topology}
    try:
        network = network_for(nameko_config["LINKAGE_NETWORK"])
        if set(names) & set(config.SERVICES):  # the gateway passes tokens on unchecked
            auth_secret()  # no secret, no start: callers could not be checked
    except (NetworkError, MissingSecret) as exc:
        print(f"linkage: {exc}", file=sys.stderr)
        return 2
    try:
        for name in names:
            if name in config.SERVICES:  # the gateway has no database
                require_schema(name, config.database_url(name))
    except SchemaNotReady as exc:
        print(f"linkage: {exc}", file=sys.stderr)
        return 2
    log.info(
        "network: %d centers, %d departments, %d categories",
        len(network.centers),
        len(network.departments),
        len(network.categories),
    )
    _wait_for_broker(nameko_config)
    serve_metrics(config.metrics_port(names[0], single=len(names) == 1))

    runner = ServiceRunner(nameko_config)
    for cls in service_classes:
        runner.add_service(cls)

    def shutdown(signum, frame):
        # signal handlers run in the main loop and cannot block on eventlet
        eventlet.spawn_n(
            _stop_within, runner, float(os.environ.get("LINKAGE_STOP_TIMEOUT_S", "30"))
        )

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    log.info("running: %s", ", ".join(names))
    waiter = eventlet.spawn(runner.wait)
    while True:
        try:
            waiter.wait()
            break
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
    log.info("stopped: %s", ", ".join(names))
    return 0
