"""Sees `intake.incident_received` and `dispatch.order_dispatched` as a subscriber would.

Exclusive, auto-deleted queues of the bench's own are bound to the services'
event exchanges (nameko's `<service>.events`, topic, durable): they get a copy
of every such event without taking one from the platform's consumers. The
arrival of an incident's first `order_dispatched` ends its submit→dispatched
latency; the arrival of its `incident_received` splits that latency into the
intake leg (worker + outbox relay) and the dispatch leg. Every time is read
from the same monotonic clock in this process.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict

import eventlet
from kombu import Connection, Consumer, Queue
from nameko.standalone.events import get_event_exchange


class OrderObserver:
    def __init__(self, amqp_uri: str):
        self.amqp_uri = amqp_uri
        self.first_order_at: dict[str, float] = {}
        self.received_at: dict[str, float] = {}
        self.orders: dict[str, int] = defaultdict(int)
        self.total = 0
        self.invalid = 0
        self.error: str | None = None
        self._connection: Connection | None = None
        self._thread = None
        self._stopping = False

    def start(self) -> OrderObserver:
        self._connection = Connection(self.amqp_uri, heartbeat=0)
        self._connection.ensure_connection(max_retries=3)
        channel = self._connection.channel()
        suffix = secrets.token_hex(4)
        queues = [
            Queue(
                f"bench.observer.{suffix}.{event_type}",
                exchange=get_event_exchange(source, {}),
                routing_key=event_type,
                exclusive=True,
                auto_delete=True,
                durable=False,
            )
            for source, event_type in (
                ("intake", "incident_received"),
                ("dispatch", "order_dispatched"),
            )
        ]
        # no_ack: a copy for timing only; the broker need not track it.
        self._consumer = Consumer(
            channel, queues=queues, callbacks=[self._on_message], no_ack=True, accept=["json"]
        )
        self._consumer.consume()
        self._thread = eventlet.spawn(self._drain)
        return self

    def _drain(self) -> None:
        while not self._stopping:
            try:
                self._connection.drain_events(timeout=0.5)
            except TimeoutError:
                continue
            except Exception as exc:  # the broker went away: the stage reports the gap
                self.error = f"{type(exc).__name__}: {exc}"
                return

    def _on_message(self, body, message) -> None:
        arrived = time.monotonic()
        incident_id = body.get("incident_id") if isinstance(body, dict) else None
        if not incident_id:
            self.invalid += 1
            return
        if message.delivery_info.get("routing_key") == "incident_received":
            self.received_at.setdefault(incident_id, arrived)
            return
        self.first_order_at.setdefault(incident_id, arrived)
        self.orders[incident_id] += 1
        self.total += 1

    def seen(self, incident_ids: list[str]) -> int:
        return sum(1 for i in incident_ids if i in self.first_order_at)

    def wait_for(self, incident_ids: list[str], deadline: float) -> bool:
        """True once every incident has an order; False at `deadline`."""
        pending = [i for i in incident_ids if i not in self.first_order_at]
        while pending:
            if time.monotonic() > deadline:
                return False
            eventlet.sleep(0.02)
            pending = [i for i in pending if i not in self.first_order_at]
        return True

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.wait()
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # closing a broken connection: nothing left to free
                pass
