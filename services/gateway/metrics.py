"""The gateway's series: requests by route template (never a raw path with
its ids), method and status, and their duration."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.metrics import LATENCY_BUCKETS

HTTP_REQUESTS = Counter(
    "linkage_http_requests_total",
    "HTTP requests the gateway answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "linkage_http_request_duration_seconds",
    "Time from an HTTP request's arrival to its answer, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
UNMATCHED = "unmatched"  # the route of a path no rule matches


def observed(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_DURATION.labels(route, method).observe(seconds)


def prepare(routes: list[tuple[str, str]]) -> None:
    """Every (route, method)'s duration series exists from the start, at 0,
    so that rate() sees the first request (as shared/metrics.py does for
    entrypoints)."""
    for route, method in routes:
        HTTP_DURATION.labels(route, method)
