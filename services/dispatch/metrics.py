"""Dispatch's domain series: orders sent, time to accept and arrive, open and overdue."""

from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge, Histogram

from shared.dependencies import network_for

# Buckets around the deadlines: accept 5 min, arrive 30 min (tier 1) / 40 min.
ACCEPT_BUCKETS = (30, 60, 120, 180, 240, 300, 450, 600, 900, 1800, 3600)
ARRIVE_BUCKETS = (300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3600, 5400, 7200)

ORDERS_DISPATCHED = Counter(
    "linkage_orders_dispatched_total",
    "Work orders sent, by center, department and role.",
    ["center", "department", "role"],
)
ORDERS_RETURNED = Counter(
    "linkage_orders_returned_total",
    "Work orders returned as not competent, by center and department.",
    ["center", "department"],
)
ORDERS_OVERDUE = Counter(
    "linkage_orders_overdue_total",
    "Deadlines missed, by center, department and deadline.",
    ["center", "department", "deadline"],
)
TIME_TO_ACCEPT = Histogram(
    "linkage_order_time_to_accept_seconds",
    "From dispatch to sign-for (签收).",
    ["center"],
    buckets=ACCEPT_BUCKETS,
)
TIME_TO_ARRIVE = Histogram(
    "linkage_order_time_to_arrive_seconds",
    "From dispatch to arrival on scene, by tier.",
    ["center", "tier"],
    buckets=ARRIVE_BUCKETS,
)
OPEN_ORDERS = Gauge(
    "linkage_orders_open",
    "Orders dispatched, accepted or on scene, by center (from the database).",
    ["center"],
)
OVERDUE_OPEN_ORDERS = Gauge(
    "linkage_orders_overdue_open",
    "Open orders that have missed a deadline, by center (from the database).",
    ["center"],
)


def initialise(network) -> None:
    """Every series the network can produce, at 0, so that increase() and
    rate() count the first order, return, deadline or timing of each."""
    for center in network.centers:
        departments = network.departments_of(center)
        TIME_TO_ACCEPT.labels(center)
        for tier in sorted({d.tier for d in departments}):
            TIME_TO_ARRIVE.labels(center, str(tier))
        for department in departments:
            ORDERS_RETURNED.labels(center, department.code)
            for role in ("lead", "assist"):
                ORDERS_DISPATCHED.labels(center, department.code, role)
            for deadline in ("accept", "arrive"):
                ORDERS_OVERDUE.labels(center, department.code, deadline)


class DispatchSeries(DependencyProvider):
    def setup(self) -> None:
        initialise(network_for(self.container.config.get("LINKAGE_NETWORK")))
