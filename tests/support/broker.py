"""A RabbitMQ vhost of a test's own, through the management API (port 15672)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import requests
from kombu import Connection, Exchange, Queue

MANAGEMENT = "http://127.0.0.1:15672/api"
AUTH = ("guest", "guest")


def amqp_uri(vhost: str) -> str:
    return f"pyamqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"


@contextmanager
def fresh_vhost(prefix: str = "test") -> Iterator[str]:
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    path = quote(vhost, safe="")
    requests.put(f"{MANAGEMENT}/vhosts/{path}", auth=AUTH, timeout=10).raise_for_status()
    requests.put(
        f"{MANAGEMENT}/permissions/{path}/guest",
        auth=AUTH,
        json={"configure": ".*", "write": ".*", "read": ".*"},
        timeout=10,
    ).raise_for_status()
    try:
        yield vhost
    finally:
        requests.delete(f"{MANAGEMENT}/vhosts/{path}", auth=AUTH, timeout=30)


def queue_depth(vhost: str, queue: str) -> int:
    response = requests.get(
        f"{MANAGEMENT}/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}",
        auth=AUTH,
        timeout=10,
    )
    response.raise_for_status()
    return response.json().get("messages", 0)


class EventTap:
    """Listens to one service's events exchange, like any consumer would."""

    def __init__(self, uri: str, source: str, routing_key: str = "#"):
        self.connection = Connection(uri)
        self.exchange = Exchange(f"{source}.events", type="topic", durable=True)
        self.queue = Queue(
            f"tap-{uuid.uuid4().hex[:8]}",
            exchange=self.exchange,
            routing_key=routing_key,
            exclusive=True,
            auto_delete=True,
        )
        self.events: list[tuple[str, dict]] = []
        # one consumer for the tap's whole life: nothing published between
        # two drains is missed
        self.consumer = self.connection.Consumer(
            self.queue, callbacks=[self._on_message], accept=["json"]
        )
        self.consumer.consume()

    def drain(self, timeout: float = 0.2) -> list[tuple[str, dict]]:
        try:
            while True:
                self.connection.drain_events(timeout=timeout)
        except (TimeoutError, OSError):  # nothing more for now
            pass
        return self.events

    def _on_message(self, body, message) -> None:
        payload = body if isinstance(body, dict) else json.loads(body)
        self.events.append((message.delivery_info["routing_key"], payload))
        message.ack()

    def of_type(self, event_type: str) -> list[dict]:
        return [payload for kind, payload in self.events if kind == event_type]

    def close(self) -> None:
        self.connection.release()
