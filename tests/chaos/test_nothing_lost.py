"""Nothing lost, nothing twice: reports submitted while services are killed,
the broker and the database restart, and every event is delivered twice.

The reconciliation counts like RabbitMQ's Jepsen suite: every accepted report
must have exactly one incident and exactly the orders its rules call for.
`make test` runs a light pass on PostgreSQL; `make chaos` (LINKAGE_CHAOS=full)
runs more reports and every fault on both databases.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select

from services.dispatch import routing
from services.dispatch.models import WorkOrder
from services.intake.models import Incident
from shared.network import load_network
from tests.conftest import cluster_rpc
from tests.support.faults import Duplicator, restart_postgres, restart_rabbitmq
from tests.support.reports import DONGSHAN, report

pytestmark = [pytest.mark.chaos, pytest.mark.disruptive]

FULL = os.environ.get("LINKAGE_CHAOS") == "full"
REPORTS = 240 if FULL else 60
CATEGORIES = (
    "water.burst_main",
    "mass.gathering",
    "fire.building",
    "traffic.accident",
    "welfare.vagrant",
)
SERVICES = ("intake", "dispatch", "escalation", "assessment")


@pytest.fixture(params=["postgresql", "sqlite"] if FULL else ["postgresql"])
def backend(request):
    return request.param


class Submitter:
    """Submits a known set of reports, retrying each until it has an answer,
    as an external platform would (the same pair is one incident)."""

    def __init__(
        self,
        uri: str,
        reports: list[dict],
        faults_done: threading.Event,
        pace_s: float,
        timeout_s: float = 15,
    ):
        self.uri = uri
        self.faults_done = faults_done
        self.pace_s = pace_s  # spread the reports over the faults, then hurry
        self.timeout_s = timeout_s
        self.pending = list(reports)
        self.answers: dict[str, dict] = {}
        # external_id -> (first attempt, answer), monotonic: how long each waited
        self.waits: dict[str, tuple[float, float]] = {}
        self.retries = 0
        self._lock = threading.Lock()

    def run(self, workers: int = 4) -> None:
        threads = [threading.Thread(target=self._work) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _next(self):
        with self._lock:
            return self.pending.pop() if self.pending else None

    def _work(self) -> None:
        item = self._next()
        started = time.monotonic()
        while item is not None:
            try:
                with cluster_rpc(self.uri, timeout=self.timeout_s) as rpc:
                    while item is not None:
                        self.answers[item["external_id"]] = rpc.intake.submit_report(item)
                        self.waits[item["external_id"]] = (started, time.monotonic())
                        if not self.faults_done.is_set():
                            time.sleep(self.pace_s)
                        item = self._next()
                        started = time.monotonic()
            except Exception:  # broker restarting, RPC timed out, service away
                self.retries += 1
                time.sleep(0.5)


def faults(platform, backend: str, done: threading.Event) -> list[str]:
    """Each service SIGKILLed and restarted; RabbitMQ restarted; PostgreSQL restarted."""
    applied = []
    rounds = 2 if FULL else 1
    for _ in range(rounds):
        for name in SERVICES:
            time.sleep(1.0)
            victim = platform.of(name)[-1]
            victim.kill()
            platform.processes.remove(victim)
            platform.start(name, tag=f"-{name}-{len(applied)}")
            applied.append(f"SIGKILL {name}")
        time.sleep(0.5)
        restart_rabbitmq()
        applied.append("restart RabbitMQ")
        if backend == "postgresql":
            time.sleep(1.0)
            restart_postgres()
            applied.append("restart PostgreSQL")
    done.set()
    return applied


def expected_departments(network, category: str) -> list[str]:
    planned = routing.route(network.categories[category], DONGSHAN, network, datetime.now(UTC))
    return sorted(p.department for p in planned)


def reconcile(reports, db_urls, network):
    by_external = {r["external_id"]: r for r in reports}
    intake = create_engine(db_urls["intake"])
    dispatch = create_engine(db_urls["dispatch"])
    try:
        with intake.connect() as connection:
            incidents = connection.execute(
                select(Incident.incident_id, Incident.external_id, Incident.category)
            ).all()
        with dispatch.connect() as connection:
            orders = connection.execute(select(WorkOrder.incident_id, WorkOrder.department)).all()
    finally:
        intake.dispose()
        dispatch.dispose()
    per_external = Counter(row.external_id for row in incidents)
    departments: dict[str, list[str]] = {}
    for row in orders:
        departments.setdefault(row.incident_id, []).append(row.department)
    lost = duplicated = unexpected = 0
    for external_id in by_external:
        count = per_external.get(external_id, 0)
        lost += count == 0
        duplicated += max(count - 1, 0)
    for row in incidents:
        if row.external_id not in by_external:
            unexpected += 1
            continue
        want = Counter(expected_departments(network, row.category))
        have = Counter(departments.get(row.incident_id, []))
        lost += sum((want - have).values())
        duplicated += sum((have - want).values())
    return len(by_external), lost, duplicated, unexpected


def wait_until_settled(reports, db_urls, network, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        figures = reconcile(reports, db_urls, network)
        if figures[1] == 0 or time.monotonic() > deadline:
            return figures
        time.sleep(1)


def test_nothing_accepted_is_lost_or_duplicated_under_faults(
    platform, broker_uri, db_urls, backend, capsys
):
    network = load_network()
    for name in SERVICES:
        platform.start(name)
    duplicator = Duplicator(broker_uri, ("intake", "dispatch", "escalation")).start()
    reports = [
        report(category=CATEGORIES[i % len(CATEGORIES)], source_system="chaos")
        for i in range(REPORTS)
    ]
    done = threading.Event()
    submitter = Submitter(broker_uri, reports, done, pace_s=0.6 if FULL else 1.2)
    applied: list[str] = []
    injector = threading.Thread(target=lambda: applied.extend(faults(platform, backend, done)))
    injector.start()
    submitter.run()
    injector.join()
    # faults are over: the services must recover by themselves
    accepted, lost, duplicated, unexpected = wait_until_settled(reports, db_urls, network)
    duplicator.stop()
    with capsys.disabled():  # the reconciliation is the point: always shown
        print(
            f"\nchaos on {backend}: {', '.join(applied)}; "
            f"{duplicator.duplicated} events delivered twice; {submitter.retries} client retries"
        )
        print(f"accepted {accepted}, lost {lost}, duplicated {duplicated}")
    assert len(submitter.answers) == REPORTS, "some reports never got an answer"
    assert duplicator.duplicated > 0, "the duplicator saw no events"
    assert (lost, duplicated, unexpected) == (0, 0, 0), platform.logs()
