"""Faults a county data room actually sees, injected for real."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from kombu import Connection, Exchange, Queue

DUPLICATE_HEADER = "x-chaos-duplicate"


def restart_rabbitmq() -> None:
    """Stop and start the broker application: every connection drops."""
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120)
    time.sleep(1)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
    subprocess.run(["rabbitmqctl", "-q", "await_startup"], check=True, timeout=120)


def restart_postgres() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
    )
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL did not come back")


class Duplicator:
    """Delivers every event twice: each one seen on a service's events exchange
    is published again, with the same body and routing key, once."""

    def __init__(self, uri: str, sources: tuple[str, ...]):
        self.uri = uri
        self.sources = sources
        self.duplicated = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Duplicator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception:  # the broker restarted under us: connect again
                time.sleep(0.5)

    def _consume(self) -> None:
        with Connection(self.uri, transport_options={"confirm_publish": True}) as connection:
            queues = []
            for source in self.sources:
                exchange = Exchange(f"{source}.events", type="topic", durable=True)
                queues.append(
                    Queue(
                        f"chaos-duplicate-{source}",
                        exchange=exchange,
                        routing_key="#",
                        durable=True,
                    )
                )
            producer = connection.Producer()

            def republish(body, message):
                if not (message.headers or {}).get(DUPLICATE_HEADER):
                    producer.publish(
                        body,
                        exchange=message.delivery_info["exchange"],
                        routing_key=message.delivery_info["routing_key"],
                        headers={**(message.headers or {}), DUPLICATE_HEADER: 1},
                        serializer="json",
                        delivery_mode=2,
                    )
                    self.duplicated += 1
                message.ack()

            with connection.Consumer(queues, callbacks=[republish], accept=["json"]):
                while not self._stop.is_set():
                    try:
                        connection.drain_events(timeout=0.5)
                    except TimeoutError:
                        pass
