"""RabbitMQ topology and the platform's event handler.

`handles(source, event_type)` is nameko's `event_handler` made safe for an
emergency platform:
- its queue is durable, of the configured type (quorum in production), and
  declared by every service at start (`declare_topology`), so an event
  published before its consumer first ran is kept, not unroutable;
- a handler that fails on a transient error (database or broker away) waits
  with back-off and the message is requeued, never acked;
- a handler that fails on anything else (a payload breaking its contract, a
  bug) sends the message to the dead-letter queue with the reason in its
  headers, then acks: it lands somewhere an operator sees (metric, alert).
"""

from __future__ import annotations

import logging
import traceback

import eventlet
from kombu import Connection, Exchange, Queue
from kombu.pools import producers
from nameko.events import SERVICE_POOL, EventHandler
from nameko.messaging import Consumer
from nameko.standalone.events import get_event_exchange

from shared import config
from shared.db import is_transient
from shared.errors import RetryLater
from shared.events import InvalidEvent
from shared.metrics import DEAD_LETTERS, HANDLER_RETRIES

log = logging.getLogger(__name__)

DEAD_LETTER_EXCHANGE = Exchange("linkage.dead-letter", type="fanout", durable=True)
DEAD_LETTER_QUEUE = Queue(
    "linkage.dead-letter", exchange=DEAD_LETTER_EXCHANGE, durable=True, routing_key=""
)

# Who listens to what: (source service, event type, consumer service, method).
# Every service declares all of these queues at start; a unit test checks that
# the services' handlers and this table agree.
SUBSCRIPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("intake", "incident_received", "dispatch", "on_incident_received"),
    ("escalation", "incident_escalated", "dispatch", "on_incident_escalated"),
    ("escalation", "incident_assigned_down", "dispatch", "on_incident_assigned_down"),
    ("escalation", "incident_escalated", "intake", "on_incident_escalated"),
    ("escalation", "incident_assigned_down", "intake", "on_incident_assigned_down"),
    ("intake", "incident_received", "escalation", "on_incident_received"),
    ("dispatch", "order_dispatched", "escalation", "on_order_dispatched"),
    ("dispatch", "order_accepted", "escalation", "on_order_accepted"),
    ("dispatch", "order_arrived", "escalation", "on_order_arrived"),
    ("dispatch", "order_returned", "escalation", "on_order_returned"),
    ("dispatch", "order_overdue", "escalation", "on_order_overdue"),
    ("dispatch", "reinforcement_requested", "escalation", "on_reinforcement_requested"),
    ("intake", "incident_received", "assessment", "on_incident_received"),
    ("dispatch", "order_dispatched", "assessment", "on_order_dispatched"),
    ("dispatch", "order_accepted", "assessment", "on_order_accepted"),
    ("dispatch", "order_returned", "assessment", "on_order_returned"),
    ("dispatch", "order_arrived", "assessment", "on_order_arrived"),
    ("dispatch", "order_reported", "assessment", "on_order_reported"),
    ("dispatch", "order_completed", "assessment", "on_order_completed"),
    ("dispatch", "order_overdue", "assessment", "on_order_overdue"),
    ("escalation", "incident_escalated", "assessment", "on_incident_escalated"),
    ("escalation", "incident_assigned_down", "assessment", "on_incident_assigned_down"),
    ("assessment", "satisfaction_recorded", "assessment", "on_satisfaction_recorded"),
)


def queue_name(source: str, event_type: str, service: str, method: str) -> str:
    """nameko's SERVICE_POOL queue name, so its consumers and ours agree."""
    return f"evt-{source}-{event_type}--{service}.{method}"


def queue_arguments() -> dict:
    return {"x-queue-type": config.queue_type()}


def event_queue(
    source: str, event_type: str, service: str, method: str, nameko_config: dict
) -> Queue:
    return Queue(
        queue_name(source, event_type, service, method),
        exchange=get_event_exchange(source, nameko_config),
        routing_key=event_type,
        durable=True,
        queue_arguments=queue_arguments(),
    )


def declare_topology(nameko_config: dict, subscriptions=None) -> None:
    """Declare every event exchange, subscriber queue and the dead-letter queue."""
    subscriptions = SUBSCRIPTIONS if subscriptions is None else subscriptions
    with Connection(nameko_config["AMQP_URI"]) as connection:
        channel = connection.default_channel
        for source in {s for s, *_ in subscriptions} | set(config.SERVICES):
            get_event_exchange(source, nameko_config)(channel).declare()
        for subscription in subscriptions:
            event_queue(*subscription, nameko_config)(channel).declare()
        DEAD_LETTER_QUEUE(channel).declare()


class ReliableEventHandler(EventHandler):
    """See the module docstring. Only the SERVICE_POOL handler type is offered."""

    max_backoff_s = 5.0

    def setup(self) -> None:
        self.queue = event_queue(
            self.source_service,
            self.event_type,
            self.container.service_name,
            self.method_name,
            self.container.config,
        )
        # at 0 from the start: the first retry or poison message shows in rate()/increase()
        HANDLER_RETRIES.labels(self.container.service_name, self.method_name)
        DEAD_LETTERS.labels(self.container.service_name, self.method_name, "InvalidEvent")
        Consumer.setup(self)

    def handle_message_processed(self, message, result=None, exc_info=None) -> None:
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        exc = exc_info[1]
        if is_transient(exc):
            HANDLER_RETRIES.labels(self.container.service_name, self.method_name).inc()
            # a first failure waits briefly; a message that already came back
            # waits longer, so a database outage is not a busy loop
            redelivered = bool(message.delivery_info.get("redelivered"))
            delay = self.max_backoff_s if redelivered else 0.5
            log.warning(
                "%s.%s: transient failure (%s); requeued after %.1fs",
                self.container.service_name,
                self.method_name,
                type(exc).__name__,
                delay,
            )
            eventlet.sleep(delay)
            self.queue_consumer.requeue_message(message)
            return
        try:
            dead_letter(
                self.container.config,
                message,
                self.container.service_name,
                self.method_name,
                exc_info,
            )
        except Exception:  # the broker went away: keep the message, try again later
            log.exception("could not dead-letter a message; requeueing it")
            eventlet.sleep(1)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)


def dead_letter(nameko_config: dict, message, service: str, method: str, exc_info) -> None:
    exc = exc_info[1]
    reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
    headers = dict(message.headers or {})
    headers.update(
        {
            "x-linkage-consumer": f"{service}.{method}",
            "x-linkage-queue": message.delivery_info.get("routing_key", ""),
            "x-linkage-exchange": message.delivery_info.get("exchange", ""),
            "x-linkage-error-type": type(exc).__name__,
            "x-linkage-error": reason,
        }
    )
    with Connection(
        nameko_config["AMQP_URI"], transport_options={"confirm_publish": True}
    ) as connection:
        with producers[connection].acquire(block=True) as producer:
            producer.publish(
                message.body,
                exchange=DEAD_LETTER_EXCHANGE,
                routing_key="",
                headers=headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
                declare=[DEAD_LETTER_QUEUE],
                retry=True,
                retry_policy={"max_retries": 3},
            )
    DEAD_LETTERS.labels(service, method, type(exc).__name__).inc()
    log.error(
        "%s.%s: message dead-lettered: %s",
        service,
        method,
        reason,
        exc_info=None if isinstance(exc, InvalidEvent) else exc_info,
    )


def handles(source: str, event_type: str):
    """Decorate a service method as the handler of `source.event_type`."""
    # expected: logged on one line, not as a crash (both still land somewhere)
    return ReliableEventHandler.decorator(
        source,
        event_type,
        handler_type=SERVICE_POOL,
        expected_exceptions=(InvalidEvent, RetryLater),
    )
