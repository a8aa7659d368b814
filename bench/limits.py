"""The limits of the platform's parts, measured in the same run as the platform.

(a) Bare nameko (`bench.bare`): RPC → one persistent event → a handler that
    writes nothing; calls per second, sequentially and with N in flight,
    counted when every event has been handled, not just when the call returned.
(b) The broker alone (kombu): persistent messages (delivery_mode 2) published
    with confirms, routed through a durable topic exchange to a durable queue,
    consumed and acked one by one; messages per second from the first publish
    to the last ack. Once with one publisher waiting for each confirm (what
    the outbox relay does), once with N publishers.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import eventlet
import eventlet.event
from kombu import Connection, Consumer, Exchange, Queue

from bench import procs
from bench.client import RpcPool, closed_loop
from bench.infra import CpuMeter, rss_mb
from bench.settings import Settings
from shared import config

# A message the size of the platform's events (an `order_dispatched` payload is
# about 600 bytes of JSON), so the broker figure moves the same bytes.
SAMPLE_EVENT = json.dumps(
    {
        "event_id": "0" * 32,
        "schema_version": 1,
        "occurred_at": "2026-01-05T09:00:00.000000+00:00",
        "order_id": "0" * 26,
        "incident_id": "0" * 26,
        "center": "511123101",
        "department": "dongshan-water",
        "role": "lead",
        "operator": None,
        "at": "2026-01-05T09:00:00.000000+00:00",
        "category": "water.burst_main",
        "town": "511123101",
        "recipient": "department",
        "tier": 1,
        "accept_by": "2026-01-05T09:05:00.000000+00:00",
        "arrive_by": "2026-01-05T09:30:00.000000+00:00",
        "replaces": None,
    }
).encode()


def _child_env(amqp_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "BENCH_"))}
    env["AMQP_URI"] = amqp_uri
    return env


def _wait_rpc(pool: RpcPool, child: procs.Child, timeout_s: float = 60) -> None:
    """Until the bare service answers (its RPC queue does not exist before)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not child.alive():
            raise RuntimeError(f"bare nameko service exited:\n{child.log_tail()}")
        try:
            with pool.proxy() as proxy:
                proxy.bench_bare.handled()
            return
        except Exception:  # UndeliverableMessage until the service declared its queue
            if time.monotonic() > deadline:
                raise
            eventlet.sleep(0.2)


def _handled(pool: RpcPool) -> int:
    with pool.proxy() as proxy:
        return proxy.bench_bare.handled()


def _bare_round(pool: RpcPool, calls: int, in_flight: int, settings: Settings) -> dict[str, Any]:
    base = _handled(pool)
    loop = closed_loop(
        pool, calls, in_flight, lambda p, i: p.bench_bare.ping(i), settings.stage_time_cap_s
    )
    ok = len(loop.ok)
    # End to end: the figure counts when the last event was handled.
    deadline = loop.last_end + settings.drain_timeout_s
    handled = _handled(pool) - base
    while handled < ok and time.monotonic() < deadline:
        eventlet.sleep(0.01)
        handled = _handled(pool) - base
    done_at = time.monotonic() if handled >= ok else None
    elapsed = (done_at or loop.last_end) - loop.first_start
    return {
        "in_flight": in_flight,
        "calls": ok,
        "errors": len(loop.errors),
        "error_samples": loop.error_samples(),
        "events_handled": handled,
        "complete": done_at is not None,
        "seconds": round(elapsed, 3),
        "calls_per_s": round(handled / elapsed, 1),
        "rpc_only_calls_per_s": round(ok / max(loop.last_end - loop.first_start, 1e-9), 1),
        "call_latency": loop.call_latency_ms(),
    }


def bare_nameko(amqp_uri: str, settings: Settings, log_dir: Path) -> dict[str, Any]:
    """Limit (a): the bare nameko service in its own process, driven like intake."""
    child = procs.spawn("bare", "bench_bare", "bench.bare", _child_env(amqp_uri), log_dir)
    pool = RpcPool(amqp_uri, settings.in_flight)
    try:
        pool.start()
        _wait_rpc(pool, child)
        # Warm-up: connections, queues, nameko's worker pool.
        _bare_round(pool, min(200, settings.bare_concurrent_calls), settings.in_flight, settings)
        meter = CpuMeter({"bare nameko": child.pid}).start()
        sequential = _bare_round(pool, settings.bare_sequential_calls, 1, settings)
        sequential_cpu = meter.stop()
        meter = CpuMeter({"bare nameko": child.pid}).start()
        concurrent = _bare_round(pool, settings.bare_concurrent_calls, settings.in_flight, settings)
        concurrent_cpu = meter.stop()
        sequential["cpu"] = sequential_cpu
        concurrent["cpu"] = concurrent_cpu
        return {
            "sequential": sequential,
            "in_flight": concurrent,
            "rss_mb_after": round(rss_mb(child.pid) or 0, 1),
        }
    finally:
        pool.close()
        procs.stop([child])


def _broker_round(amqp_uri: str, total: int, publishers: int, settings: Settings) -> dict:
    suffix = secrets.token_hex(4)
    exchange = Exchange(f"bench.broker.{suffix}", type="topic", durable=True)
    queue = Queue(
        f"bench.broker.{suffix}",
        exchange=exchange,
        routing_key="order_dispatched",
        durable=True,
        # the platform's queue type (classic here, quorum in production)
        queue_arguments={"x-queue-type": config.queue_type()},
    )
    received = 0
    last_ack = 0.0
    target = [total]  # lowered to what was published if the time cap cut publishing
    done = eventlet.event.Event()
    consumer_connection = Connection(amqp_uri, heartbeat=0)
    consumer_connection.ensure_connection(max_retries=3)
    channel = consumer_connection.channel()
    queue(channel).declare()

    def on_message(body, message) -> None:
        nonlocal received, last_ack
        message.ack()  # one ack per message, as a nameko consumer does
        received += 1
        last_ack = time.monotonic()
        if received == target[0] and not done.ready():
            done.send(True)

    # prefetch above nameko's 10 so the consumer side is not what is measured
    consumer = Consumer(channel, queues=[queue], callbacks=[on_message], accept=["json"])
    consumer.qos(prefetch_count=100)
    consumer.consume()
    stopping = False

    def drain() -> None:
        while not stopping:
            try:
                consumer_connection.drain_events(timeout=0.5)
            except TimeoutError:
                continue

    drainer = eventlet.spawn(drain)
    published = [0] * publishers
    share = [total // publishers + (1 if i < total % publishers else 0) for i in range(publishers)]
    started = time.monotonic()
    stop_at = started + settings.stage_time_cap_s

    def publish(index: int) -> None:
        with Connection(
            amqp_uri, transport_options={"confirm_publish": True}, heartbeat=0
        ) as connection:
            producer = connection.Producer()
            for _ in range(share[index]):
                if time.monotonic() > stop_at:
                    return
                producer.publish(
                    SAMPLE_EVENT,
                    exchange=exchange,
                    routing_key="order_dispatched",
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    mandatory=True,
                    retry=False,
                )
                published[index] += 1

    meter = CpuMeter({}).start()
    try:
        threads = [eventlet.spawn(publish, i) for i in range(publishers)]
        for thread in threads:
            thread.wait()
        publish_end = time.monotonic()
        target[0] = sum(published)
        if received >= target[0] and not done.ready():
            done.send(True)
        with eventlet.Timeout(settings.drain_timeout_s, False):
            done.wait()
        cpu = meter.stop()
    finally:
        stopping = True
        drainer.wait()
        try:
            consumer.cancel()  # before the delete, or the broker cancels it under us
            queue(channel).delete()
            exchange(channel).delete()
        finally:
            consumer_connection.release()
    elapsed = max(last_ack - started, 1e-9)
    return {
        "publishers": publishers,
        "message_bytes": len(SAMPLE_EVENT),
        "published": target[0],
        "consumed": received,
        "complete": received >= target[0],
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(received / elapsed, 1),
        "publish_only_msgs_per_s": round(target[0] / max(publish_end - started, 1e-9), 1),
        "cpu": cpu,
    }


def broker(amqp_uri: str, settings: Settings) -> dict[str, Any]:
    """Limit (b): persistent + confirmed + durable + acked, one publisher and N."""
    # warm-up: the vhost's message store and the connections
    _broker_round(amqp_uri, min(500, settings.broker_messages_single), 1, settings)
    return {
        "queue_type": config.queue_type(),
        "single_publisher": _broker_round(amqp_uri, settings.broker_messages_single, 1, settings),
        "in_flight": _broker_round(
            amqp_uri, settings.broker_messages_concurrent, settings.in_flight, settings
        ),
    }
