"""The platform under load: the four services as processes, on PostgreSQL.

A stage starts `copies` processes of each service against fresh databases and
the run's vhost, then measures:

- sustained throughput: `reports` submitted to `intake.submit_report` with N
  in flight; an incident has flowed when its order was seen on
  `dispatch.events` *and* every service that consumes its events
  (`incident_received`, `order_dispatched`, `orders_dispatched`: whatever the
  code declares) has applied them. Incidents per
  second = flowed incidents / (last one flowed − first submit).
- latency at a fixed offered load (open loop, `rate` per second for
  `duration_s`): from the scheduled `submit_report` to the arrival of the
  incident's first `order_dispatched`, split where `incident_received` is
  seen; then the same at a tenth of the load (the floor: the path without
  queueing).
- what an incident costs: CPU per process (and RabbitMQ, PostgreSQL), worker
  runs and relayed events (the services' /metrics), PostgreSQL transactions
  and new connections (pg_stat_database).
- footprint: resident memory of every service process after the run.

"Applied" is read from each consumer's `processed_events` table (every handler
records the event ids it applied, in the same transaction as its effect:
shared/db.py); a service whose handlers keep no such table is checked by its
queues being empty instead, and the results say which.
"""

from __future__ import annotations

import importlib
import os
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import eventlet
import psycopg2
import psycopg2.errors
from kombu import Connection
from nameko.events import EventHandler
from nameko.exceptions import RemoteError
from nameko.rpc import Rpc

from bench import infra, procs
from bench.client import LoopResult, RpcPool, closed_loop, open_loop, summary_ms
from bench.infra import CpuMeter, database_url, free_port, pg_connect, rss_mb
from bench.observer import OrderObserver
from bench.settings import Settings
from bench.spy import PySpy
from shared import migrations
from shared.config import SERVICES
from shared.db import Database
from shared.messaging import queue_name

# The workload: a burst water main in Dongshan town (sample network). Its
# category has a lead role and no assists, and the town's water unit is on
# 24 h duty, so every report makes one order, day or night.
CATEGORY = "water.burst_main"
TOWN = "511123101"
# The events one report causes; the consumers of these are waited for.
FLOW_EVENTS = {
    ("intake", "incident_received"),
    ("dispatch", "order_dispatched"),
    ("dispatch", "orders_dispatched"),
}
# What the services must not inherit from whoever runs the bench.
_STRIPPED = ("AMQP_URI", "METRICS_PORT", "LINKAGE_VAR_DIR", "LINKAGE_NETWORK", "BENCH_")


# Counters every service exports (shared/metrics.py): workers run, events relayed.
WORK_METRICS = ("linkage_entrypoint_requests_total", "linkage_outbox_published_total")


def scrape(port: int | None, names: tuple[str, ...]) -> dict[str, float]:
    """Sum of each named counter over its label sets, from one /metrics page."""
    totals = dict.fromkeys(names, 0.0)
    if port is None:
        return totals
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            text = page.read().decode()
    except OSError:
        return totals
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def make_report(tag: str, index: int) -> dict[str, Any]:
    """A valid report (services/intake/schemas.py); `tag` keeps external ids unique."""
    return {
        "source_system": "bench",
        "external_id": f"{tag}-{index}",
        "channel": "12345",
        "category": CATEGORY,
        "request_type": "help",
        "title": "自来水管破裂 burst water main",
        "description": "Water running down the street from a burst main (bench).",
        "location": {"town": TOWN, "address": f"东山镇 bench 路 {index} 号"},
        "reported_at": datetime.now(UTC).isoformat(),
    }


@dataclass
class Declared:
    """What a service's code declares: RPC methods and event handlers."""

    rpc: bool = False
    handlers: list[tuple[str, str, str]] = field(default_factory=list)  # source, type, method
    tables: list[str] = field(default_factory=list)  # of its database, if it has one

    @property
    def flow_handlers(self) -> list[tuple[str, str, str]]:
        return [h for h in self.handlers if (h[0], h[1]) in FLOW_EVENTS]


def declared_entrypoints() -> dict[str, Declared]:
    """Read from the service classes, so the bench follows the code as it grows."""
    found: dict[str, Declared] = {}
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.service")
        cls = next(
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and getattr(obj, "name", None) == service
        )
        declared = Declared()
        for attr in dir(cls):
            if isinstance(getattr(cls, attr, None), Database):
                declared.tables += sorted(getattr(cls, attr).metadata.tables)
            for entrypoint in getattr(getattr(cls, attr, None), "nameko_entrypoints", ()):
                if isinstance(entrypoint, Rpc):
                    declared.rpc = True
                elif isinstance(entrypoint, EventHandler):
                    declared.handlers.append(
                        (entrypoint.source_service, entrypoint.event_type, attr)
                    )
        found[service] = declared
    return found


class BrokerProbe:
    """Passive queue declarations: depth and consumers of a queue."""

    def __init__(self, amqp_uri: str):
        self._connection = Connection(amqp_uri, heartbeat=0)
        self._channel = None

    def queue(self, name: str) -> tuple[int, int] | None:
        """(messages ready, consumers), or None if the queue does not exist."""
        try:
            if self._channel is None:
                self._channel = self._connection.channel()
            _, ready, consumers = self._channel.queue_declare(queue=name, passive=True)
            return ready, consumers
        except Exception:  # 404 closes the channel; open a new one next time
            self._channel = None
            return None

    def close(self) -> None:
        try:
            self._connection.release()
        except Exception:  # already closed: nothing to free
            pass


class DrainGauge:
    """How far each consuming service has got with this run's events."""

    def __init__(
        self, databases: dict[str, str], declared: dict[str, Declared], probe: BrokerProbe
    ):
        self.tracked = {s: d.flow_handlers for s, d in declared.items() if d.flow_handlers}
        self._databases = databases
        self._probe = probe
        self._connections: dict[str, Any] = {}
        self.method: dict[str, str] = {}
        # each count is a transaction in that database: subtracted from the
        # platform's own transaction counts
        self.queries: dict[str, int] = dict.fromkeys(self.tracked, 0)

    def processed(self) -> dict[str, int | None]:
        counts: dict[str, int | None] = {}
        for service in self.tracked:
            try:
                if service not in self._connections:
                    self._connections[service] = pg_connect(self._databases[service])
                with self._connections[service].cursor() as cursor:
                    self.queries[service] += 1
                    cursor.execute("SELECT count(*) FROM processed_events")
                    counts[service] = cursor.fetchone()[0]
            except psycopg2.errors.UndefinedTable:
                counts[service] = None
        return counts

    def expected(self, incidents: int, orders: int) -> dict[str, int]:
        per_event = {("intake", "incident_received"): incidents}
        per_event[("dispatch", "order_dispatched")] = orders
        per_event[("dispatch", "orders_dispatched")] = incidents  # one decision per incident
        return {
            service: sum(per_event[(source, kind)] for source, kind, _ in handlers)
            for service, handlers in self.tracked.items()
        }

    def _queues_empty(self, service: str) -> bool:
        for source, kind, method in self.tracked[service]:
            state = self._probe.queue(queue_name(source, kind, service, method))
            if state is None or state[0] > 0:
                return False
        return True

    def wait(
        self, base: dict[str, int | None], incidents: int, orders: int, deadline: float
    ) -> tuple[float | None, dict[str, Any]]:
        """Poll until every consumer has applied its share; (when, progress)."""
        expected = self.expected(incidents, orders)
        while True:
            counts = self.processed()
            progress = {}
            done = True
            for service, want in expected.items():
                if counts[service] is not None and base.get(service) is not None:
                    self.method[service] = "processed_events"
                    got = counts[service] - base[service]
                    progress[service] = {"applied": got, "expected": want}
                    done &= got >= want
                else:
                    self.method[service] = "queue depth"
                    empty = self._queues_empty(service)
                    progress[service] = {"queues_empty": empty}
                    done &= empty
            if done:
                return time.monotonic(), progress
            if time.monotonic() > deadline:
                return None, progress
            eventlet.sleep(0.05)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


class Platform:
    """`copies` processes of each service, fresh databases, one vhost."""

    def __init__(
        self,
        run_id: str,
        amqp_uri: str,
        copies: int,
        settings: Settings,
        log_dir: Path,
        declared: dict[str, Declared],
    ):
        self.run_id = run_id
        self.amqp_uri = amqp_uri
        self.copies = copies
        self.settings = settings
        self.log_dir = log_dir
        self.declared = declared
        safe = run_id.replace("-", "_")
        self.databases = {s: f"bench_{safe}_{s}" for s in SERVICES}
        self.children: list[procs.Child] = []
        self.observer = OrderObserver(amqp_uri)
        self.pool = RpcPool(amqp_uri, max(settings.in_flight, 64))
        self.probe = BrokerProbe(amqp_uri)
        self.gauge = DrainGauge(self.databases, declared, self.probe)
        self.tag = f"{run_id}-x{copies}"

    # -- lifecycle -------------------------------------------------------------

    def _env(self, metrics_port: int) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_STRIPPED) and not k.endswith(("_DATABASE_URL", "_METRICS_PORT"))
        }
        env.update(
            AMQP_URI=self.amqp_uri,
            METRICS_PORT=str(metrics_port),
            LINKAGE_VAR_DIR=str(self.log_dir / "var"),
            LOG_LEVEL=self.settings.log_level,
        )
        for service, name in self.databases.items():
            env[f"{service.upper()}_DATABASE_URL"] = database_url(name)
        return env

    def start(self) -> None:
        infra.create_databases(list(self.databases.values()))
        # migrated before any service starts, as `python -m services migrate` does
        for service, name in self.databases.items():
            migrations.upgrade(service, database_url(name))
        # One copy of every service at a time, each round up before the next,
        # as in a rolling deployment.
        for copy in range(1, self.copies + 1):
            round_ = []
            for service in SERVICES:
                port = free_port()
                round_.append(
                    procs.spawn(
                        f"{service}-{copy}of{self.copies}",
                        service,
                        f"services.{service}",
                        self._env(port),
                        self.log_dir,
                        metrics_port=port,
                    )
                )
            self.children += round_
            for child in round_:
                procs.wait_http(child, timeout_s=90)
            self._wait_schemas(round_, timeout_s=90)
        self.observer.start()
        self.pool.start()
        self._wait_consumers(timeout_s=90)
        self._probe_rpc(timeout_s=60)

    def _wait_schemas(self, round_: list[procs.Child], timeout_s: float) -> None:
        """Until each service with a database has created all of its tables."""
        deadline = time.monotonic() + timeout_s
        for service, name in self.databases.items():
            tables = self.declared[service].tables
            if not tables or not any(c.service == service for c in round_):
                continue
            while not self._has_tables(name, tables):
                for child in round_:
                    if not child.alive():
                        raise RuntimeError(f"{child.label} exited:\n{child.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service}: no schema after {timeout_s:.0f}s")
                eventlet.sleep(0.2)

    @staticmethod
    def _has_tables(database: str, tables: list[str]) -> bool:
        connection = pg_connect(database)
        try:
            with connection.cursor() as cursor:
                for table in tables:
                    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                    if not cursor.fetchone()[0]:
                        return False
                return True
        finally:
            connection.close()

    def _wait_consumers(self, timeout_s: float) -> None:
        """Every RPC and event queue has a consumer per process: all are serving."""
        queues = []
        for service, declared in self.declared.items():
            if declared.rpc:
                queues.append(f"rpc-{service}")
            queues += [queue_name(s, t, service, m) for s, t, m in declared.handlers]
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [q for q in queues if (self.probe.queue(q) or (0, 0))[1] < self.copies]
            if not missing:
                return
            for child in self.children:
                if not child.alive():
                    raise RuntimeError(f"{child.label} exited:\n{child.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no consumer on {', '.join(missing)} after {timeout_s:.0f}s")
            eventlet.sleep(0.2)

    def _probe_rpc(self, timeout_s: float) -> None:
        """`intake.get_incident` answers (NotFound is an answer)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self.pool.proxy() as proxy:
                    proxy.intake.get_incident("bench-probe")
            except RemoteError as exc:
                if exc.exc_type == "NotFound":
                    return
                raise
            except Exception:
                if time.monotonic() > deadline:
                    raise
                eventlet.sleep(0.2)

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for step in (self.pool.close, self.observer.stop, self.gauge.close, self.probe.close):
            try:
                step()
            except Exception:  # keep stopping the rest
                pass
        try:
            codes = procs.stop(self.children)
        finally:
            infra.drop_databases(list(self.databases.values()))
        return codes

    # -- measurements ----------------------------------------------------------

    def _submit(self, stage: str):
        tag = f"{self.tag}-{stage}"

        def call(proxy, index: int) -> str:
            return proxy.intake.submit_report(make_report(tag, index))["incident_id"]

        return call

    def _flow(self, loop: LoopResult) -> dict[str, Any]:
        """Wait for the loop's incidents to flow; when each stage of it finished."""
        ids = [c.result for c in loop.ok]
        deadline = loop.last_end + self.settings.drain_timeout_s
        base = self._base
        orders_complete = self.observer.wait_for(ids, deadline)
        seen = [i for i in ids if i in self.observer.first_order_at]
        orders = sum(self.observer.orders[i] for i in seen)
        last_order = max((self.observer.first_order_at[i] for i in seen), default=None)
        drained_at, progress = self.gauge.wait(base, len(ids), orders, deadline)
        return {
            "ids": ids,
            "orders_complete": orders_complete,
            "seen": len(seen),
            "orders": orders,
            "last_order": last_order,
            "drained_at": drained_at,
            "progress": progress,
        }

    def _mark(self) -> None:
        """Consumers' counts before a stage, so a stage counts only its own events."""
        self._base = self.gauge.processed()

    def warm_up(self) -> dict[str, Any]:
        self._mark()
        count = self.settings.warmup_reports
        loop = closed_loop(self.pool, count, self.settings.in_flight, self._submit("warmup"), 60)
        flow = self._flow(loop)
        if loop.errors:
            raise RuntimeError(f"warm-up: submit_report failed: {loop.error_samples()}")
        if not flow["orders_complete"]:
            raise RuntimeError(
                f"warm-up: {flow['seen']}/{len(flow['ids'])} incidents got an order "
                f"within {self.settings.drain_timeout_s:.0f}s; see the logs in {self.log_dir}"
            )
        return {"reports": count, "consumers_drained": flow["drained_at"] is not None}

    def _work_done(self) -> dict[str, float]:
        """Entrypoint executions and relayed events so far, summed per service
        from every process's /metrics: the work one incident costs."""
        totals: dict[str, float] = {}
        for child in self.children:
            for metric, value in scrape(child.metrics_port, WORK_METRICS).items():
                key = f"{child.service}: {metric}"
                totals[key] = totals.get(key, 0.0) + value
        return totals

    def _pg_counters(self) -> dict[str, dict[str, int]]:
        """Transactions and sessions (connections opened) so far in each service's
        database, the bench's own polling left out. A pool pre-ping (`SELECT 1`
        in autocommit) counts as a transaction: it is a round trip of its own."""
        connection = pg_connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT datname, xact_commit + xact_rollback, sessions"
                    " FROM pg_stat_database WHERE datname = ANY(%s)",
                    (list(self.databases.values()),),
                )
                rows = {name: (xacts, sessions) for name, xacts, sessions in cursor.fetchall()}
        finally:
            connection.close()
        counters = {}
        for service, name in self.databases.items():
            xacts, sessions = rows.get(name, (0, 0))
            counters[service] = {
                "transactions": int(xacts) - self.gauge.queries.get(service, 0),
                "sessions": int(sessions),
            }
        return counters

    def _cpu_meter(self) -> CpuMeter:
        return CpuMeter({child.label: child.pid for child in self.children})

    def throughput(self, profiler: PySpy | None = None) -> dict[str, Any]:
        self._mark()
        work_before = self._work_done()
        # PostgreSQL publishes a backend's counters about once a second
        eventlet.sleep(1.5)
        pg_before = self._pg_counters()
        meter = self._cpu_meter().start()
        if profiler is not None:
            profiler.start(self.children)
        loop = closed_loop(
            self.pool,
            self.settings.throughput_reports,
            self.settings.in_flight,
            self._submit("throughput"),
            self.settings.stage_time_cap_s,
        )
        flow = self._flow(loop)
        cpu = meter.stop()
        if profiler is not None:
            profiler.stop()
        work_after = self._work_done()
        eventlet.sleep(1.5)
        pg_after = self._pg_counters()
        # Work is divided by the accepted reports: all of it was done for them.
        accepted = max(len(loop.ok), 1)
        complete = flow["orders_complete"] and flow["drained_at"] is not None
        ends = [flow["last_order"] or loop.last_end]
        if flow["drained_at"] is not None:
            ends.append(flow["drained_at"])
        elapsed = max(max(ends) - loop.first_start, 1e-9)
        flowed = flow["seen"] if complete else min(flow["seen"], self._applied(flow))
        orders_elapsed = max((flow["last_order"] or loop.last_end) - loop.first_start, 1e-9)
        return {
            "reports": len(loop.calls),
            "in_flight": self.settings.in_flight,
            "accepted": len(loop.ok),
            "errors": len(loop.errors),
            "error_samples": loop.error_samples(),
            "complete": complete,
            "incidents_flowed": flowed,
            "orders": flow["orders"],
            "seconds": round(elapsed, 3),
            "incidents_per_s": round(flowed / elapsed, 1),
            "submit_only_per_s": round(
                len(loop.ok) / max(loop.last_end - loop.first_start, 1e-9), 1
            ),
            "dispatched_per_s": round(flow["seen"] / orders_elapsed, 1),
            "submit_latency": loop.call_latency_ms(),
            "consumers": flow["progress"],
            "consumer_check": dict(self.gauge.method),
            "work_per_incident": {
                key: round((value - work_before.get(key, 0.0)) / accepted, 2)
                for key, value in sorted(work_after.items())
            },
            # approximate: PostgreSQL's counters lag by up to a second or so
            "pg_per_incident": {
                service: {
                    key: round((value - pg_before[service][key]) / accepted, 2)
                    for key, value in counters.items()
                }
                for service, counters in pg_after.items()
            },
            "cpu": cpu,
            "cpu_ms_per_incident": {
                label: round(usage["cpu_s"] * 1000 / max(flowed, 1), 2)
                for label, usage in cpu["processes"].items()
            },
        }

    def _applied(self, flow: dict[str, Any]) -> int:
        """Incidents every consumer has certainly applied, for an incomplete stage."""
        applied = flow["seen"]
        for service, state in flow["progress"].items():
            if "applied" in state:
                per_incident = max(1, len(self.gauge.tracked[service]))
                applied = min(applied, state["applied"] // per_incident)
        return applied

    def latency(self, rate: float, duration_s: float, stage: str = "latency") -> dict[str, Any]:
        self._mark()
        meter = self._cpu_meter().start()
        loop = open_loop(self.pool, rate, duration_s, self._submit(stage))
        flow = self._flow(loop)
        cpu = meter.stop()
        arrivals = self.observer.first_order_at
        received = self.observer.received_at
        # A report refused, or whose order never came, counts as infinitely late.
        latencies = [
            arrivals[c.result] - c.intended
            if c.error is None and c.result in arrivals
            else float("inf")
            for c in loop.calls
        ]
        # Where the time goes, for incidents seen at both points.
        both = [c for c in loop.ok if c.result in arrivals and c.result in received]
        legs = {
            "submit_to_incident_received": summary_ms(
                [received[c.result] - c.intended for c in both]
            ),
            "incident_received_to_order_dispatched": summary_ms(
                [arrivals[c.result] - received[c.result] for c in both]
            ),
        }
        last_intended = max((c.intended for c in loop.calls), default=loop.first_start)
        drain_lag = round(flow["drained_at"] - last_intended, 3) if flow["drained_at"] else None
        return {
            "offered_per_s": rate,
            "duration_s": duration_s,
            "reports": len(loop.calls),
            "errors": len(loop.errors),
            "error_samples": loop.error_samples(),
            "without_order": sum(1 for v in latencies if v == float("inf")),
            "submit_to_dispatched": summary_ms(latencies),
            "legs": legs,
            "submit_latency": loop.call_latency_ms(),
            "client_lateness": loop.lateness_ms(),
            "consumers_drained_s_after_last_submit": drain_lag,
            "consumers": flow["progress"],
            "cpu": cpu,
        }

    def footprint(self) -> list[dict[str, Any]]:
        return [
            {
                "process": child.label,
                "service": child.service,
                "pid": child.pid,
                "rss_mb": round(rss_mb(child.pid) or 0, 1),
            }
            for child in self.children
        ]


def run_platform(
    run_id: str,
    amqp_uri: str,
    copies: int,
    settings: Settings,
    log_dir: Path,
    declared: dict[str, Declared],
    profiler: PySpy | None = None,
) -> dict[str, Any]:
    """One platform stage, services always stopped and databases always dropped."""
    platform = Platform(run_id, amqp_uri, copies, settings, log_dir, declared)
    result: dict[str, Any] = {"processes_per_service": copies}
    try:
        platform.start()
        result["warm_up"] = platform.warm_up()
        result["throughput"] = platform.throughput(profiler)
        if profiler is not None:
            result["profile"] = profiler.summaries or {"error": profiler.error}
        result["latency"] = platform.latency(settings.offered_rate, settings.duration_s)
        # The same path with the machine nearly idle: the floor of the latency,
        # so the figure above can be split into path and queueing.
        result["latency_light"] = platform.latency(
            settings.light_rate, settings.light_duration_s, "light"
        )
        result["footprint"] = platform.footprint()
    except Exception as exc:  # keep what was measured; the run reports the stage failed
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        result["exit_codes"] = platform.stop()
    return result
