"""The outbox: committed events reach RabbitMQ, confirmed, exactly as stored.

A unit of work writes its events to the `outbox` table in the same
transaction as its change (`UnitOfWork.emit`). Right after the commit, the
worker that committed publishes them itself, with publisher confirms, on a
pooled confirm channel (`publish_committed`); their rows are marked published
in batches by a background step, so a busy service marks many events in one
transaction. Nothing waits for a relay on the hot path.

The rows are the fallback. When the broker was away at commit, or the process
died between commit and publish, the rows stay unpublished and the relay
publishes them once they are older than `grace_s` (a worker publishes within
milliseconds of its commit, so the relay does not race it). A crash between
publish and mark publishes again, which the consumers' idempotency absorbs
(every event carries its `event_id`).

With PostgreSQL several instances relay side by side (`FOR UPDATE SKIP
LOCKED`); with SQLite the file's write lock serialises them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import eventlet
import eventlet.queue
import eventlet.semaphore
from amqp.exceptions import ChannelError
from eventlet.event import Event
from kombu import Connection
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from sqlalchemy import bindparam, func, select, update

from shared import config
from shared.db import Database, UnitOfWork
from shared.metrics import OUTBOX_FAILURES, OUTBOX_PENDING, OUTBOX_PUBLISHED, OUTBOX_UNROUTED

log = logging.getLogger(__name__)


class Publishers:
    """A few confirm-mode connections, one per publishing green thread at a time."""

    def __init__(self, uri: str, size: int):
        self.uri = uri
        self._free: eventlet.queue.LightQueue = eventlet.queue.LightQueue()
        self._slots = eventlet.semaphore.Semaphore(size)

    @contextmanager
    def producer(self) -> Iterator:
        with self._slots:
            try:
                connection, producer = self._free.get_nowait()
            except eventlet.queue.Empty:
                connection = Connection(
                    self.uri,
                    ssl=config.amqp_ssl(),
                    transport_options={"confirm_publish": True},
                    heartbeat=0,
                )
                connection.ensure_connection(max_retries=1)
                producer = connection.Producer()
            try:
                yield producer
            except BaseException:
                _release(connection)  # a failed channel is not reused
                raise
            self._free.put((connection, producer))

    def close(self) -> None:
        while True:
            try:
                connection, _ = self._free.get_nowait()
            except eventlet.queue.Empty:
                return
            _release(connection)


def _release(connection: Connection) -> None:
    try:
        connection.release()
    except Exception:  # already broken: nothing more to release
        pass


class Outbox(DependencyProvider):
    """See the module docstring. Declared once per service, beside its `Database`."""

    grace_s = 5.0
    poll_s = 1.0
    batch_size = 200
    mark_every_s = 0.02
    pending_every_s = 15.0

    def setup(self) -> None:
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.database.on_commit.append(self.publish_committed)
        config = self.container.config
        self.publishers = Publishers(config["AMQP_URI"], int(config.get("max_workers", 10)) + 1)
        # events somebody subscribes to are published `mandatory`, so a missing
        # queue shows; the others (no subscriber by design) are not
        topology = config.get("LINKAGE_TOPOLOGY") or ()
        self.subscribed = {(s.source, s.event_type) for s in topology}
        self._to_mark: list[str] = []
        self._mark_signal = Event()
        self._relay_signal = Event()
        self._stopping = False
        self._threads = []
        service = self.container.service_name
        OUTBOX_FAILURES.labels(service)
        OUTBOX_PENDING.labels(service)
        for source, event_type in sorted(self.subscribed):
            if source == service:
                OUTBOX_PUBLISHED.labels(service, event_type)
                OUTBOX_UNROUTED.labels(service, event_type)

    def start(self) -> None:
        self._threads = [
            self.container.spawn_managed_thread(self._relay_loop),
            self.container.spawn_managed_thread(self._mark_loop),
        ]

    def stop(self) -> None:
        """Workers have finished: mark what they published (so the relay's
        last pass does not publish it again), publish what is left, stop."""
        self._stopping = True
        self._mark_pending()
        self._wake(self._relay_signal)
        self._wake(self._mark_signal)
        for thread in self._threads:
            thread.wait()
        self.publishers.close()

    def kill(self) -> None:
        self._stopping = True
        for thread in self._threads:
            thread.kill()
        self.publishers.close()

    def get_dependency(self, worker_ctx):
        return None

    # -- the hot path: right after a commit, in the committing worker ---------

    def publish_committed(self, tx: UnitOfWork) -> None:
        try:
            with self.publishers.producer() as producer:
                for event in tx.emitted:
                    self._publish(producer, event["source"], event["event_type"], event["payload"])
        except Exception as exc:  # the rows are committed: the relay publishes them later
            OUTBOX_FAILURES.labels(self.container.service_name).inc()
            log.warning("publish after commit failed (%s); left to the relay", type(exc).__name__)
            return
        self._to_mark.extend(event["payload"]["event_id"] for event in tx.emitted)
        self._wake(self._mark_signal)

    def _publish(self, producer, source: str, event_type: str, payload: dict) -> None:
        exchange = get_event_exchange(source, self.container.config)
        mandatory = (source, event_type) in self.subscribed
        try:
            producer.publish(
                payload,
                exchange=exchange,
                routing_key=event_type,
                serializer="json",
                delivery_mode=2,
                mandatory=mandatory,
                retry=False,
            )
        except ChannelError as exc:
            if "NO_ROUTE" not in str(exc):
                raise
            # A subscriber's queue is missing (deleted by hand?): the event
            # stays in the table, marked published, as the record.
            OUTBOX_UNROUTED.labels(self.container.service_name, event_type).inc()
            log.warning("event %s.%s: no queue bound to route it to", source, event_type)
            raise
        OUTBOX_PUBLISHED.labels(self.container.service_name, event_type).inc()

    # -- marking, in batches ----------------------------------------------------

    def _mark_loop(self) -> None:
        self.database.ready.wait()
        while True:
            with eventlet.Timeout(1.0, False):
                self._mark_signal.wait()
            self._mark_signal = Event()
            eventlet.sleep(self.mark_every_s)  # let a burst of commits join one batch
            stopping = self._stopping
            self._mark_pending()
            if stopping and not self._to_mark:
                return

    def _mark_pending(self) -> None:
        ids, self._to_mark = self._to_mark, []
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            try:
                with self.database.session() as session, session.begin():
                    session.execute(self._mark_by_event_id(), {"ids": batch, "at": _now()})
            except Exception as exc:  # unmarked rows are published again: harmless
                log.warning("outbox: marking failed (%s)", type(exc).__name__)

    def _mark_by_event_id(self):
        outbox = self.database.outbox
        return (
            update(outbox)
            .where(outbox.c.event_id.in_(bindparam("ids", expanding=True)))
            .values(published_at=bindparam("at"))
        )

    # -- the fallback relay ---------------------------------------------------------

    def _relay_loop(self) -> None:
        self.database.ready.wait()
        delay = 0.5
        counted = 0.0
        while True:
            with eventlet.Timeout(self.poll_s, False):
                self._relay_signal.wait()
            self._relay_signal = Event()
            stopping = self._stopping
            try:
                while self.relay_once(grace_s=0 if stopping else self.grace_s):
                    pass
                if time.monotonic() - counted > self.pending_every_s:
                    self._count_pending()
                    counted = time.monotonic()
                delay = 0.5
            except Exception as exc:
                OUTBOX_FAILURES.labels(self.container.service_name).inc()
                log.warning("outbox relay: %s; retrying in %.1fs", type(exc).__name__, delay)
                if stopping:
                    return
                eventlet.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            if stopping:
                return

    def relay_once(self, grace_s: float | None = None) -> int:
        """Publish one batch of events committed over `grace_s` ago and still
        unpublished; how many were published."""
        grace = timedelta(seconds=self.grace_s if grace_s is None else grace_s)
        older_than = _now() - grace
        if self.database.engine.dialect.name == "postgresql":
            return self._relay_locked(older_than)
        return self._relay_serial(older_than)

    def _pending_query(self, older_than: datetime):
        outbox = self.database.outbox
        return (
            select(outbox.c.id, outbox.c.source, outbox.c.event_type, outbox.c.payload)
            .where(outbox.c.published_at.is_(None), outbox.c.created_at <= older_than)
            .order_by(outbox.c.id)
            .limit(self.batch_size)
        )

    def _relay_locked(self, older_than: datetime) -> int:
        """PostgreSQL: rows stay locked while published, so instances share the work."""
        with self.database.session() as session, session.begin():
            rows = session.execute(
                self._pending_query(older_than).with_for_update(skip_locked=True)
            ).all()
            self._mark_ids(session, self._publish_rows(rows))
        return len(rows)

    def _relay_serial(self, older_than: datetime) -> int:
        """SQLite: never hold the file's lock across network I/O; read, publish, mark."""
        with self.database.session() as session, session.begin():
            rows = session.execute(self._pending_query(older_than)).all()
        done = self._publish_rows(rows)
        with self.database.session() as session, session.begin():
            self._mark_ids(session, done)
        return len(rows)

    def _publish_rows(self, rows) -> list[int]:
        """Publish rows in order; the ids done with (published, or unroutable and
        kept as the record). A broker failure raises: nothing is marked."""
        done: list[int] = []
        if not rows:
            return done
        try:
            with self.publishers.producer() as producer:
                for row in rows:
                    try:
                        self._publish(producer, row.source, row.event_type, json.loads(row.payload))
                    except ChannelError as exc:
                        if "NO_ROUTE" in str(exc):
                            done.append(row.id)
                        raise
                    done.append(row.id)
        except ChannelError as exc:
            if "NO_ROUTE" not in str(exc):
                raise
            # the channel closed with the unroutable event; the rest go next batch
        log.info("outbox relay: %d events published after their commit", len(done))
        return done

    def _mark_ids(self, session, ids: list[int]) -> None:
        outbox = self.database.outbox
        if ids:
            session.execute(update(outbox).where(outbox.c.id.in_(ids)).values(published_at=_now()))

    def _count_pending(self) -> None:
        outbox = self.database.outbox
        with self.database.session() as session:
            pending = session.execute(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            ).scalar_one()
        OUTBOX_PENDING.labels(self.container.service_name).set(pending)

    @staticmethod
    def _wake(signal: Event) -> None:
        if not signal.ready():
            signal.send(True)


def _now() -> datetime:
    return datetime.now(UTC)
