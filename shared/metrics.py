"""Prometheus metrics: the platform's shared series and the entrypoint recorder.

Names follow Prometheus conventions: `linkage_` prefix, base units (seconds),
`_total` on counters, and label values drawn from bounded sets (service and
entrypoint names, network codes, enumerated reasons) — never ids or free text.
"""

from __future__ import annotations

import logging
import time

from nameko.extensions import DependencyProvider
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

from shared.errors import RetryLater

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

ENTRYPOINT_REQUESTS = Counter(
    "linkage_entrypoint_requests_total",
    "Entrypoint calls (RPC, event handlers, timers) by outcome.",
    ["service", "entrypoint", "outcome"],
)
ENTRYPOINT_LATENCY = Histogram(
    "linkage_entrypoint_latency_seconds",
    "Time spent in an entrypoint's worker.",
    ["service", "entrypoint"],
    buckets=LATENCY_BUCKETS,
)
DEAD_LETTERS = Counter(
    "linkage_dead_letters_total",
    "Messages a handler could not apply, sent to the dead-letter queue.",
    ["service", "handler", "error"],
)
HANDLER_RETRIES = Counter(
    "linkage_handler_retries_total",
    "Messages requeued after a transient failure (database or broker away).",
    ["service", "handler"],
)
OUTBOX_PUBLISHED = Counter(
    "linkage_outbox_published_total",
    "Events relayed from a service's outbox to RabbitMQ with a publisher confirm.",
    ["service", "event"],
)
OUTBOX_UNROUTED = Counter(
    "linkage_outbox_unrouted_total",
    "Events the broker could route to no queue (no subscriber declared).",
    ["service", "event"],
)
OUTBOX_PENDING = Gauge(
    "linkage_outbox_pending",
    "Events committed but not yet confirmed by the broker.",
    ["service"],
)
OUTBOX_FAILURES = Counter(
    "linkage_outbox_publish_failures_total",
    "Relay attempts that failed; the events stay in the outbox and are retried.",
    ["service"],
)
RETENTION_PRUNED = Counter(
    "linkage_retention_pruned_total",
    "Rows pruned past the retention window: published outbox rows, processed-event "
    "records and stored call answers (shared/retention.py).",
    ["service", "table"],
)

# ok; rejected: an expected error (a bad argument, a payload off its contract);
# requeued: an event met before one it depends on, tried again (RetryLater);
# error: anything else.
OUTCOMES = ("ok", "rejected", "requeued", "error")

_started_ports: set[int] = set()


def serve_metrics(port: int) -> None:
    """Serve the process's registry on `port` (once per port per process)."""
    if port in _started_ports:
        return
    start_http_server(port, registry=REGISTRY)
    _started_ports.add(port)
    log.info("metrics on :%d/metrics", port)


class EntrypointMetrics(DependencyProvider):
    """Counts and times every entrypoint of the service it is declared on."""

    def __init__(self):
        self._started: dict[int, float] = {}

    def setup(self) -> None:
        """Every entrypoint's series exist from the start, at 0, so that rate()
        and increase() see a first call, rejection or error."""
        service = self.container.service_name
        for entrypoint in self.container.entrypoints:
            for outcome in OUTCOMES:
                ENTRYPOINT_REQUESTS.labels(service, entrypoint.method_name, outcome)
            ENTRYPOINT_LATENCY.labels(service, entrypoint.method_name)

    def worker_setup(self, worker_ctx) -> None:
        self._started[id(worker_ctx)] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None) -> None:
        started = self._started.pop(id(worker_ctx), None)
        service = self.container.service_name
        entrypoint = worker_ctx.entrypoint.method_name
        if exc_info is None:
            outcome = "ok"
        elif isinstance(exc_info[1], RetryLater):
            outcome = "requeued"
        else:
            expected = getattr(worker_ctx.entrypoint, "expected_exceptions", ())
            outcome = "rejected" if expected and isinstance(exc_info[1], expected) else "error"
        ENTRYPOINT_REQUESTS.labels(service, entrypoint, outcome).inc()
        if started is not None:
            ENTRYPOINT_LATENCY.labels(service, entrypoint).observe(time.perf_counter() - started)

    def get_dependency(self, worker_ctx) -> None:
        return None
