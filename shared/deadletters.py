"""Dead letters as an operator's tool: list, show, replay, discard.

Every message a consumer could not apply sits in `linkage.dead-letter` with
its reason and origin in its headers (shared/messaging.py `dead_letter`):
`x-linkage-dead-letter-id` names it, `x-linkage-queue` is the queue it came
from. Replaying publishes the original body to that queue (through the
default exchange, confirmed) with `x-linkage-replays` counted up, and only
then removes it from the dead-letter queue: a crash in between replays it
twice, which the consumers' idempotency absorbs.

Listing takes every message without acknowledging it and gives them all
back when done, so nothing is consumed by looking.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kombu import Connection

from shared import config
from shared.messaging import dead_letter_queue

QUEUE = "linkage.dead-letter"
ID = "x-linkage-dead-letter-id"


@dataclass(frozen=True)
class DeadLetter:
    id: str
    queue: str
    consumer: str
    error_type: str
    error: str
    dead_lettered_at: str
    replays: int
    headers: dict
    body: bytes

    def summary(self) -> dict:
        return {
            "id": self.id,
            "queue": self.queue,
            "consumer": self.consumer,
            "error_type": self.error_type,
            "error": self.error,
            "dead_lettered_at": self.dead_lettered_at,
            "replays": self.replays,
        }

    def payload(self):
        """The body as JSON when it is JSON, else as text (a poison message)."""
        text = self.body.decode("utf-8", errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return text


def _letter(message) -> DeadLetter:
    headers = dict(message.headers or {})
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return DeadLetter(
        id=str(headers.get(ID) or message.delivery_tag),
        queue=str(headers.get("x-linkage-queue", "")),
        consumer=str(headers.get("x-linkage-consumer", "")),
        error_type=str(headers.get("x-linkage-error-type", "")),
        error=str(headers.get("x-linkage-error", "")),
        dead_lettered_at=str(headers.get("x-linkage-dead-lettered-at", "")),
        replays=int(headers.get("x-linkage-replays", 0) or 0),
        headers=headers,
        body=body,
    )


class DeadLetters:
    def __init__(self, amqp_uri: str):
        self.amqp_uri = amqp_uri

    @contextmanager
    def _held(self) -> Iterator[tuple[Connection, list]]:
        """Every dead letter, taken unacknowledged; those not acked are given
        back when the channel closes."""
        with Connection(
            self.amqp_uri, ssl=config.amqp_ssl(), transport_options={"confirm_publish": True}
        ) as connection:
            channel = connection.channel()
            queue = dead_letter_queue()(channel)
            queue.declare()
            held = []
            while (message := queue.get(no_ack=False)) is not None:
                held.append(message)
            try:
                yield connection, held
            finally:
                channel.close()  # unacked messages go back to the queue, in order

    def list(self) -> list[DeadLetter]:
        with self._held() as (_, held):
            return [_letter(m) for m in held]

    def show(self, letter_id: str) -> DeadLetter | None:
        return next((d for d in self.list() if d.id == letter_id), None)

    def discard(self, letter_id: str) -> bool:
        with self._held() as (_, held):
            for message in held:
                if _letter(message).id == letter_id:
                    message.ack()
                    return True
        return False

    def replay(
        self, letter_id: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Replay one dead letter (`letter_id`) or all; how many were replayed."""
        replayed = 0
        with self._held() as (connection, held):
            chosen = [m for m in held if letter_id is None or _letter(m).id == letter_id]
            producer = connection.Producer()
            for index, message in enumerate(chosen, 1):
                letter = _letter(message)
                if not letter.queue:
                    continue  # no origin recorded: only discard can remove it
                headers = {k: v for k, v in letter.headers.items() if k != ID}
                headers["x-linkage-replays"] = letter.replays + 1
                producer.publish(
                    letter.body,
                    exchange="",
                    routing_key=letter.queue,
                    headers=headers,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    delivery_mode=2,
                    mandatory=True,
                    retry=False,
                )
                message.ack()
                replayed += 1
                if progress:
                    progress(index, len(chosen))
        return replayed
