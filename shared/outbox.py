"""The outbox relay: committed events reach RabbitMQ, confirmed, exactly as stored.

A worker never publishes. It writes its events to the `outbox` table in the
same transaction as its change (`Transaction.emit`); this relay then publishes
them in commit order with publisher confirms and `mandatory`, and marks them
published only once the broker has confirmed. A crash between commit and
publish loses nothing: the rows are still there when the service comes back.
A crash between publish and mark publishes again, which the consumers'
idempotency absorbs (every event carries its `event_id`).

With PostgreSQL several instances relay side by side (`FOR UPDATE SKIP
LOCKED`); with SQLite the file's write lock serialises them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import eventlet
from amqp.exceptions import ChannelError
from eventlet.event import Event
from kombu import Connection
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from sqlalchemy import func, select, update

from shared.db import Database
from shared.messaging import SUBSCRIPTIONS
from shared.metrics import OUTBOX_FAILURES, OUTBOX_PENDING, OUTBOX_PUBLISHED, OUTBOX_UNROUTED

log = logging.getLogger(__name__)


class OutboxRelay(DependencyProvider):
    poll_s = 1.0
    batch_size = 200

    def setup(self) -> None:
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.database.on_commit.append(self.wake)
        self._signal = Event()
        self._stopping = False
        self._connection: Connection | None = None
        self._producer = None
        self._thread = None
        service = self.container.service_name
        OUTBOX_FAILURES.labels(service)
        OUTBOX_PENDING.labels(service)
        for event in sorted({e for source, e, *_ in SUBSCRIPTIONS if source == service}):
            OUTBOX_PUBLISHED.labels(service, event)
            OUTBOX_UNROUTED.labels(service, event)

    def start(self) -> None:
        self._thread = self.container.spawn_managed_thread(self._run)

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        if self._thread is not None:
            self._thread.wait()
        self._close()

    def kill(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.kill()
        self._close()

    def wake(self) -> None:
        if not self._signal.ready():
            self._signal.send(True)

    def get_dependency(self, worker_ctx):
        return None

    def _run(self) -> None:
        self.database.ready.wait()
        delay = 0.5
        while True:
            with eventlet.Timeout(self.poll_s, False):
                self._signal.wait()
            self._signal = Event()
            stopping = self._stopping
            try:
                while self.relay_once():
                    pass
                delay = 0.5
            except Exception as exc:
                OUTBOX_FAILURES.labels(self.container.service_name).inc()
                log.warning("outbox relay: %s; retrying in %.1fs", type(exc).__name__, delay)
                self._close()
                if stopping:
                    return
                eventlet.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            if stopping:
                return

    def relay_once(self) -> int:
        """Publish one batch of pending events; how many were published."""
        if self.database.engine.dialect.name == "postgresql":
            return self._relay_locked()
        return self._relay_serial()

    def _pending_query(self):
        outbox = self.database.outbox
        return (
            select(outbox.c.id, outbox.c.source, outbox.c.event_type, outbox.c.payload)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(self.batch_size)
        )

    def _relay_locked(self) -> int:
        """PostgreSQL: rows stay locked while published, so instances share the work."""
        with self.database.session() as session, session.begin():
            rows = session.execute(self._pending_query().with_for_update(skip_locked=True)).all()
            for row in rows:
                self._publish(row.source, row.event_type, json.loads(row.payload))
            self._mark(session, [row.id for row in rows])
        return len(rows)

    def _relay_serial(self) -> int:
        """SQLite: never hold the file's lock across network I/O; read, publish, mark."""
        with self.database.session() as session, session.begin():
            rows = session.execute(self._pending_query()).all()
        for row in rows:
            self._publish(row.source, row.event_type, json.loads(row.payload))
        with self.database.session() as session, session.begin():
            self._mark(session, [row.id for row in rows])
        return len(rows)

    def _mark(self, session, ids: list[int]) -> None:
        outbox = self.database.outbox
        if ids:
            session.execute(
                update(outbox).where(outbox.c.id.in_(ids)).values(published_at=datetime.now(UTC))
            )
        pending = session.execute(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        ).scalar_one()
        OUTBOX_PENDING.labels(self.container.service_name).set(pending)

    def _publish(self, source: str, event_type: str, payload: dict) -> None:
        producer = self._get_producer()
        exchange = get_event_exchange(source, self.container.config)
        try:
            producer.publish(
                payload,
                exchange=exchange,
                routing_key=event_type,
                serializer="json",
                delivery_mode=2,
                mandatory=True,
                declare=[exchange],
                retry=False,
            )
        except ChannelError as exc:
            if "NO_ROUTE" not in str(exc):
                raise
            # No queue is bound for this event: no service subscribes to it.
            # It stays in the outbox table, marked published, as the record.
            OUTBOX_UNROUTED.labels(self.container.service_name, event_type).inc()
            log.info("event %s.%s has no subscriber queue", source, event_type)
            self._close()  # the channel is closed after a NO_ROUTE in confirm mode
            return
        OUTBOX_PUBLISHED.labels(self.container.service_name, event_type).inc()

    def _get_producer(self):
        if self._producer is None:
            self._connection = Connection(
                self.container.config["AMQP_URI"],
                transport_options={"confirm_publish": True},
                heartbeat=0,
            )
            self._connection.ensure_connection(max_retries=1)
            self._producer = self._connection.Producer()
        return self._producer

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # already broken: nothing more to release
                pass
        self._connection = None
        self._producer = None
