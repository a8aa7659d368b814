"""RabbitMQ topology and the platform's event handler.

`handles(source, event_type)` is nameko's `event_handler` made safe for an
emergency platform, and the one shape every handler has (see `handles`):
- its queue is durable, of the configured type (quorum in production), and
  declared by every service at start (`declare_topology`), so an event
  published before its consumer first ran is kept, not unroutable;
- a handler that fails on a transient error (database or broker away, an
  event met before one it depends on) sends the message to wait in a retry
  queue, growing delays, holding no worker (shared/retry.py); after the last
  attempt it is dead-lettered like any other failure;
- a handler that fails on anything else (a payload breaking its contract, a
  bug) sends the message to the dead-letter queue with the reason in its
  headers, then acks: it lands somewhere an operator sees (metric, alert).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import eventlet
from amqp.exceptions import AccessRefused
from kombu import Connection, Exchange, Queue, binding
from nameko.events import SERVICE_POOL, EventHandler
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.messaging import Consumer, QueueConsumer
from nameko.standalone.events import get_event_exchange

from shared import config, retry
from shared.db import is_transient
from shared.errors import RetryLater
from shared.events import InvalidEvent, load_event
from shared.metrics import DEAD_LETTERS, HANDLER_RETRIES

log = logging.getLogger(__name__)

DEAD_LETTER_EXCHANGE = Exchange("linkage.dead-letter", type="fanout", durable=True)


def dead_letter_queue() -> Queue:
    return Queue(
        "linkage.dead-letter",
        exchange=DEAD_LETTER_EXCHANGE,
        durable=True,
        routing_key="",
        queue_arguments=queue_arguments(),
    )


@dataclass(frozen=True, order=True)
class Subscription:
    """Who listens to what: `service.method` handles `source.event_type`."""

    source: str
    event_type: str
    service: str
    method: str

    @property
    def queue(self) -> str:
        """nameko's SERVICE_POOL queue name, so its consumers and ours agree."""
        return queue_name(self.source, self.event_type, self.service, self.method)


def queue_name(source: str, event_type: str, service: str, method: str) -> str:
    return f"evt-{source}-{event_type}--{service}.{method}"


def subscriptions_of(service_classes) -> tuple[Subscription, ...]:
    """The subscription table, read off the services' handlers: it cannot drift."""
    found = []
    for cls in service_classes:
        for method_name, method in inspect.getmembers(cls, inspect.isfunction):
            for entrypoint in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()):
                if isinstance(entrypoint, ReliableEventHandler):
                    found.append(
                        Subscription(
                            entrypoint.source_service, entrypoint.event_type, cls.name, method_name
                        )
                    )
    return tuple(sorted(found))


def queue_arguments() -> dict:
    return {"x-queue-type": config.queue_type()}


def event_queue(subscription: Subscription, nameko_config: dict) -> Queue:
    """A subscriber's queue: bound to its event, and to the retry return."""
    exchange = get_event_exchange(subscription.source, nameko_config)
    exchange.no_declare = True  # its owner's: bound to, not declared (declare_topology)
    return Queue(
        subscription.queue,
        bindings=[
            binding(exchange, routing_key=subscription.event_type),
            retry.return_binding(subscription.queue),
        ],
        durable=True,
        queue_arguments=queue_arguments(),
    )


def declare_topology(nameko_config: dict) -> list[str]:
    """Declare every event exchange, every subscriber queue of the topology
    (`LINKAGE_TOPOLOGY` in the config: all services', not only this process's,
    so an event published before its consumer first ran is kept), the retry
    queues and the dead-letter queue: as much of it as the broker user may.

    A service's own user (deploy/rabbitmq/definitions.json) may configure only
    its own exchange and queues: the rest is refused (ACCESS_REFUSED) and
    skipped. So the deploy step declares the whole topology as an
    administrator before a rollout (`python -m services declare-topology`);
    with an all-powerful user (a laptop, the tests) every process declares it.
    The names of the exchanges and queues refused.
    """
    topology = nameko_config.get("LINKAGE_TOPOLOGY") or ()
    sources = sorted({s.source for s in topology} | set(config.SERVICES))
    entities = [get_event_exchange(source, nameko_config) for source in sources]
    entities += [retry.RETURN_EXCHANGE, *retry.retry_queues()]
    entities += [event_queue(subscription, nameko_config) for subscription in topology]
    entities.append(dead_letter_queue())
    refused = []
    with Connection(nameko_config["AMQP_URI"], ssl=config.amqp_ssl()) as connection:
        for entity in entities:
            channel = connection.channel()  # a refusal closes the channel it came on
            try:
                entity(channel).declare()
            except AccessRefused:
                log.debug("topology: not this broker user's to declare: %s", entity.name)
                refused.append(entity.name)
                continue
            channel.close()
    if refused:
        log.info(
            "topology: %d of %d exchanges and queues left to the deploy step "
            "(not this broker user's to declare)",
            len(refused),
            len(entities),
        )
    return refused


class DecodingQueueConsumer(QueueConsumer):
    """nameko's queue consumer, except for a body that cannot be decoded:
    kombu would log it whole (personal data and all) and drop it; here it goes
    to the dead-letter queue, counted, and only its error's type is logged."""

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = functools.partial(self._undecodable, provider)
        return consumers

    def _undecodable(self, provider, message, exc: Exception) -> None:
        reason = UndecodableMessage(f"the body could not be decoded ({type(exc).__name__})")
        consumer = f"{provider.container.service_name}.{provider.method_name}"
        dead_letter(
            provider.container.config,
            message,
            provider.queue.name,
            consumer,
            (UndecodableMessage, reason, None),
        )
        message.ack()


class UndecodableMessage(InvalidEvent):
    """A message whose body is not what its content type says."""


class ReliableEventHandler(EventHandler):
    """See the module docstring. Only the SERVICE_POOL handler type is offered."""

    queue_consumer = DecodingQueueConsumer()

    def setup(self) -> None:
        subscription = Subscription(
            self.source_service, self.event_type, self.container.service_name, self.method_name
        )
        self.queue = event_queue(subscription, self.container.config)
        # at 0 from the start: the first retry or poison message shows in rate()/increase()
        HANDLER_RETRIES.labels(self.container.service_name, self.method_name)
        for error in ("InvalidEvent", "UndecodableMessage"):
            DEAD_LETTERS.labels(self.container.service_name, self.method_name, error)
        Consumer.setup(self)

    def handle_message_processed(self, message, result=None, exc_info=None) -> None:
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        exc = exc_info[1]
        if is_transient(exc) and self._retry_later(message, exc):
            return
        try:
            dead_letter(
                self.container.config,
                message,
                self.queue.name,
                f"{self.container.service_name}.{self.method_name}",
                exc_info,
            )
        except Exception:  # the broker went away: keep the message, try again later
            log.exception("could not dead-letter a message; requeueing it")
            eventlet.sleep(1)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    def _retry_later(self, message, exc: BaseException) -> bool:
        """Off to a retry queue, acked; False once its attempts are spent."""
        attempt = retry.attempts_of(message) + 1
        if attempt > retry.max_attempts():
            return False
        HANDLER_RETRIES.labels(self.container.service_name, self.method_name).inc()
        try:
            delay = retry.schedule(
                self.container.config["AMQP_URI"], message, self.queue.name, attempt
            )
        except Exception:  # the broker went away: the message is redelivered anyway
            log.warning("could not schedule a retry; requeueing the message")
            eventlet.sleep(1)
            self.queue_consumer.requeue_message(message)
            return True
        self.queue_consumer.ack_message(message)
        log.warning(
            "%s.%s: transient failure (%s); retry %d in %.0fs",
            self.container.service_name,
            self.method_name,
            type(exc).__name__,
            attempt,
            delay,
        )
        return True


def dead_letter(nameko_config: dict, message, queue: str, consumer: str, exc_info) -> None:
    """Send `message` as it came to the dead-letter queue, with why and from
    where in its headers (see shared/deadletters.py for replaying it)."""
    exc = exc_info[1]
    reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
    headers = dict(message.headers or {})
    headers.update(
        {
            "x-linkage-dead-letter-id": uuid.uuid4().hex[:12],
            "x-linkage-dead-lettered-at": datetime.now(UTC).isoformat(),
            "x-linkage-consumer": consumer,
            "x-linkage-queue": queue,
            "x-linkage-routing-key": message.delivery_info.get("routing_key", ""),
            "x-linkage-exchange": message.delivery_info.get("exchange", ""),
            "x-linkage-error-type": type(exc).__name__,
            "x-linkage-error": reason,
        }
    )
    retry.publish_declaring(
        nameko_config["AMQP_URI"],
        message.body,
        [dead_letter_queue()],
        exchange=DEAD_LETTER_EXCHANGE,
        routing_key="",
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=2,
        retry=True,
        retry_policy={"max_retries": 3},
    )
    service, _, method = consumer.partition(".")
    DEAD_LETTERS.labels(service, method, type(exc).__name__).inc()
    # never the payload: it may carry what must not be logged; a bug's trace helps
    log.error(
        "%s: message dead-lettered: %s",
        consumer,
        reason,
        exc_info=None if isinstance(exc, InvalidEvent) else exc_info,
    )


def refuse_from_the_future(event: dict) -> None:
    """An event dated beyond the clocks' tolerated skew is forged or broken:
    applied, it would change a score for good (it is dead-lettered)."""
    skew = timedelta(seconds=float(os.environ.get("LINKAGE_CLOCK_SKEW_S", "300")))
    if event["occurred_at"] > datetime.now(UTC) + skew:
        raise InvalidEvent(f"occurred_at {event['occurred_at'].isoformat()} is in the future")


def handles(source: str, event_type: str):
    """The one shape of an event handler.

    Decorates `def on_<event>(self, event, tx)`: the entrypoint validates the
    payload against its contract (shared/events.py), opens the service's unit
    of work (`self.db`), records the event as applied under a key derived from
    the service and the method (`<service>.<method>`), and calls the handler
    only the first time, all in one transaction committed before the ack.
    What must wait for the commit goes to `tx.after_commit`.
    """

    def decorate(handler):
        @functools.wraps(handler)
        def apply(self, payload) -> None:
            event = load_event(source, event_type, payload)
            refuse_from_the_future(event)
            with self.db.transaction() as tx:
                if tx.first_time(event["event_id"], f"{self.name}.{handler.__name__}"):
                    handler(self, event, tx)

        apply.handles = (source, event_type)
        # expected: logged on one line, not as a crash (both still land somewhere)
        return ReliableEventHandler.decorator(
            source,
            event_type,
            handler_type=SERVICE_POOL,
            expected_exceptions=(InvalidEvent, RetryLater),
        )(apply)

    return decorate
