"""Delayed retries that hold no worker: a transient failure waits in the broker.

A message whose handler failed on a transient error (database or broker
away, an event met before the one it depends on) is published, confirmed,
to `linkage.retry` with its attempt count, then acked. It waits in the retry
queue of its step (a per-queue TTL), is dead-lettered by the broker to
`linkage.retry-return`, and comes back to the queue it came from, to which
every subscriber queue is bound (routing key `<step>.<queue>`). The delays
grow with the attempts (`LINKAGE_RETRY_DELAYS_S`); after
`LINKAGE_RETRY_ATTEMPTS` the message goes to the dead-letter queue with its
reason, where an operator can replay it (shared/deadletters.py). With the
defaults a message is retried for about twelve hours.
"""

from __future__ import annotations

import os

from amqp.exceptions import AccessRefused
from kombu import Connection, Exchange, Queue, binding
from kombu.pools import producers

from shared import config

RETRY_EXCHANGE = Exchange("linkage.retry", type="topic", durable=True)
RETURN_EXCHANGE = Exchange("linkage.retry-return", type="topic", durable=True)
ATTEMPTS = "x-linkage-attempts"


def delays_s() -> tuple[float, ...]:
    raw = os.environ.get("LINKAGE_RETRY_DELAYS_S", "1,5,30,120,600,1800")
    return tuple(float(d) for d in raw.split(",") if d.strip())


def max_attempts() -> int:
    return int(os.environ.get("LINKAGE_RETRY_ATTEMPTS", "30"))


def step_name(delay_s: float) -> str:
    return f"{int(delay_s * 1000)}ms"


def retry_queue(delay_s: float) -> Queue:
    """The waiting room of one delay step."""
    return Queue(
        f"linkage.retry.{step_name(delay_s)}",
        exchange=RETRY_EXCHANGE,
        routing_key=f"{step_name(delay_s)}.#",
        durable=True,
        queue_arguments={
            "x-queue-type": config.queue_type(),
            "x-message-ttl": int(delay_s * 1000),
            "x-dead-letter-exchange": RETURN_EXCHANGE.name,
        },
    )


def retry_queues() -> list[Queue]:
    return [retry_queue(delay) for delay in delays_s()]


def return_binding(queue_name: str) -> binding:
    """The binding that brings a subscriber queue's retried messages back. The
    exchange is bound to, not declared: a service's broker user may not
    configure it (deploy/rabbitmq/definitions.json; `declare_topology` does)."""
    exchange = Exchange(RETURN_EXCHANGE.name, type="topic", durable=True, no_declare=True)
    return binding(exchange, routing_key=f"*.{queue_name}")


def attempts_of(message) -> int:
    try:
        return int((message.headers or {}).get(ATTEMPTS, 0))
    except (TypeError, ValueError):
        return 0


def schedule(amqp_uri: str, message, queue_name: str, attempt: int) -> float:
    """Publish `message` to wait before its `attempt`-th retry; the delay."""
    steps = delays_s()
    delay = steps[min(attempt, len(steps)) - 1]
    headers = dict(message.headers or {})
    headers[ATTEMPTS] = attempt
    publish_declaring(
        amqp_uri,
        message.body,
        [retry_queue(delay), RETURN_EXCHANGE],
        exchange=RETRY_EXCHANGE,
        routing_key=f"{step_name(delay)}.{queue_name}",
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=2,
        mandatory=True,
        retry=False,
    )
    return delay


def publish_declaring(amqp_uri: str, body, declare: list, **options) -> None:
    """Publish `body`, confirmed, declaring `declare` first where this broker
    user may (here and in `shared.messaging.dead_letter`). A service's own user
    (deploy/rabbitmq/definitions.json) may not configure the shared retry and
    dead-letter queues, declared at deploy time (`python -m services
    declare-topology`): refused, it publishes to them as they are."""
    for entities in (declare, []):
        try:
            with Connection(
                amqp_uri, ssl=config.amqp_ssl(), transport_options={"confirm_publish": True}
            ) as connection:
                with producers[connection].acquire(block=True) as producer:
                    producer.publish(body, declare=entities, **options)
            return
        except AccessRefused:
            if not entities:
                raise
