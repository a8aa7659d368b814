"""Retention: the plumbing tables pruned past a window; the record kept.

Published outbox rows, processed-event records and the stored answers of
mutating calls (`rpc_requests`) matter only while the same message or call
can come again: a redelivery, a retry (about twelve hours at most with the
defaults of shared/retry.py), a client repeating its request id. Older than
`LINKAGE_RETENTION_DAYS` (default 7) they are deleted by a background thread
of every service instance, `batch_size` rows per transaction, oldest first by
their indexed time column, so a worker never waits long behind a prune.
Instances prune side by side (PostgreSQL: `SKIP LOCKED`; SQLite: the file's
lock). An unpublished outbox row is never pruned: the relay still owes it.
Order history, command chains, ratings and records are the record: no table
of a service's own model is touched. What was pruned is counted in
`linkage_retention_pruned_total{service,table}`.

Declared once per service, beside its `Database`: `retention = Retention()`.
"""

from __future__ import annotations

import logging
import os
import random
from datetime import UTC, datetime, timedelta

import eventlet
from eventlet.event import Event
from nameko.extensions import DependencyProvider
from sqlalchemy import Column, Table, delete, select, tuple_

from shared import retry
from shared.db import Database
from shared.metrics import RETENTION_PRUNED

log = logging.getLogger(__name__)

# table → the indexed time after which a row may go (NULL: never)
PRUNABLE = {
    "outbox": "published_at",
    "processed_events": "processed_at",
    "rpc_requests": "created_at",
}


def retention_days(config: dict) -> float:
    return float(
        config.get("LINKAGE_RETENTION_DAYS") or os.environ.get("LINKAGE_RETENTION_DAYS", 7)
    )


def retry_plan_s() -> float:
    """How long shared/retry.py may keep bringing a message back, at most."""
    steps = retry.delays_s()
    return sum(steps[min(a, len(steps)) - 1] for a in range(1, retry.max_attempts() + 1))


class Retention(DependencyProvider):
    """See the module docstring."""

    batch_size = 1000
    pause_s = 0.05  # between batches: the workers' transactions go first
    first_within_s = 60.0  # a first prune soon after start, instances spread out

    def setup(self) -> None:
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        config = self.container.config
        self.window = timedelta(days=retention_days(config))
        self.every_s = float(
            config.get("LINKAGE_RETENTION_EVERY_S")
            or os.environ.get("LINKAGE_RETENTION_EVERY_S", 3600)
        )
        self.tables: list[tuple[Table, Column]] = [
            (table, table.c[column])
            for name, column in PRUNABLE.items()
            if (table := self.database.metadata.tables.get(name)) is not None
        ]
        self._stop = Event()
        self._thread = None
        service = self.container.service_name
        for table, _ in self.tables:
            RETENTION_PRUNED.labels(service, table.name)
        if self.window.total_seconds() < 2 * retry_plan_s():
            log.warning(
                "LINKAGE_RETENTION_DAYS=%s is shorter than twice the retry plan (%.1f h): "
                "a message retried late may be applied twice",
                retention_days(config),
                retry_plan_s() / 3600,
            )

    def start(self) -> None:
        self._thread = self.container.spawn_managed_thread(self._loop)

    def stop(self) -> None:
        if not self._stop.ready():
            self._stop.send(True)
        if self._thread is not None:
            self._thread.wait()

    def kill(self) -> None:
        if self._thread is not None:
            self._thread.kill()

    def get_dependency(self, worker_ctx) -> None:
        return None

    def _loop(self) -> None:
        self.database.ready.wait()
        wait_s = random.uniform(0, min(self.first_within_s, self.every_s))
        while True:
            with eventlet.Timeout(wait_s, False):
                self._stop.wait()
            if self._stop.ready():
                return
            try:
                self.prune()
            except Exception as exc:  # the next round tries again; nothing is lost by waiting
                log.warning("retention: pruning failed (%s)", type(exc).__name__)
            wait_s = self.every_s

    def prune(self, now: datetime | None = None) -> dict[str, int]:
        """Delete every prunable row older than the window; how many, by table."""
        cutoff = (now or datetime.now(UTC)) - self.window
        pruned = {}
        for table, column in self.tables:
            total = 0
            while not self._stop.ready():
                deleted = self._prune_batch(table, column, cutoff)
                total += deleted
                RETENTION_PRUNED.labels(self.container.service_name, table.name).inc(deleted)
                if deleted < self.batch_size:
                    break
                eventlet.sleep(self.pause_s)
            pruned[table.name] = total
        if any(pruned.values()):
            log.info("retention: pruned %s", ", ".join(f"{n} {t}" for t, n in pruned.items()))
        return pruned

    def _prune_batch(self, table: Table, column: Column, cutoff: datetime) -> int:
        key = list(table.primary_key.columns)
        oldest = select(*key).where(column < cutoff).order_by(column).limit(self.batch_size)
        if self.database.engine.dialect.name == "postgresql":
            oldest = oldest.with_for_update(skip_locked=True)
        chosen = key[0].in_(oldest) if len(key) == 1 else tuple_(*key).in_(oldest)
        with self.database.session() as session, session.begin():
            return session.execute(delete(table).where(chosen)).rowcount
