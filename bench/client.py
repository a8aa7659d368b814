"""The load generator: nameko's own standalone RPC client, closed and open loop.

nameko's `ClusterRpcProxy` polls its reply queue from the calling green
thread, so one proxy carries one call at a time; N calls in flight use N
proxies (each its own connection and reply queue). The bare-nameko limit and
the platform are driven by the same client, so its own cost is in both.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import eventlet
import eventlet.queue
from kombu import pools
from nameko.standalone.rpc import ClusterRpcProxy

from shared.auth import bearer, mint

# kombu keeps at most 10 producers (and connections) per broker URL and process
# by default, and nameko's client publishes through that pool: with 32 calls in
# flight the client would queue on its own pool. Raised so the client is never
# what limits a figure.
pools.set_limit(256)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil without floats drifting
    return sorted_values[min(int(rank), len(sorted_values)) - 1]


def summary_ms(seconds: list[float]) -> dict[str, float | int | None]:
    """count, p50/p95/p99/max and mean in milliseconds; infinities stay infinite."""
    values = sorted(seconds)

    def ms(value: float | None) -> float | None:
        if value is None:
            return None
        return round(value * 1000, 2) if value != float("inf") else float("inf")

    finite = [v for v in values if v != float("inf")]
    return {
        "count": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(values[-1]) if values else None,
        "mean_ms": ms(sum(finite) / len(finite)) if finite else None,
    }


def bench_caller() -> dict:
    """An administrator's token, signed with the run's secret (bench/__main__.py)."""
    token = mint(os.environ["LINKAGE_AUTH_SECRET"], "bench", "admin", ttl_s=24 * 3600)
    return bearer(token)


class RpcPool:
    """`size` started standalone proxies; a green thread borrows one per call."""

    def __init__(self, amqp_uri: str, size: int, timeout_s: float = 30.0):
        self.amqp_uri = amqp_uri
        self.size = size
        self.timeout_s = timeout_s
        self._idle: eventlet.queue.LightQueue = eventlet.queue.LightQueue()
        self._all: list[ClusterRpcProxy] = []

    def start(self) -> RpcPool:
        for _ in range(self.size):
            runner = ClusterRpcProxy(
                {"AMQP_URI": self.amqp_uri}, timeout=self.timeout_s, context_data=bench_caller()
            )
            self._all.append(runner)
            self._idle.put(runner.start())
        return self

    @contextmanager
    def proxy(self) -> Iterator[Any]:
        proxy = self._idle.get()
        try:
            yield proxy
        finally:
            self._idle.put(proxy)

    def close(self) -> None:
        for runner in self._all:
            try:
                runner.stop()
            except Exception:  # the connection may already be gone; nothing to free
                pass
        self._all.clear()


@dataclass(slots=True)
class Call:
    index: int
    intended: float  # when the call should start (open loop); = started otherwise
    started: float
    ended: float
    result: Any = None
    error: str | None = None


@dataclass
class LoopResult:
    calls: list[Call] = field(default_factory=list)
    first_start: float = 0.0
    last_end: float = 0.0

    @property
    def ok(self) -> list[Call]:
        return [c for c in self.calls if c.error is None]

    @property
    def errors(self) -> list[Call]:
        return [c for c in self.calls if c.error is not None]

    def error_samples(self, limit: int = 5) -> list[str]:
        return sorted({c.error for c in self.errors if c.error})[:limit]

    def call_latency_ms(self) -> dict[str, float | int | None]:
        return summary_ms([c.ended - c.started for c in self.ok])

    def lateness_ms(self) -> dict[str, float | int | None]:
        """How late the client started calls against the schedule (open loop)."""
        return summary_ms([c.started - c.intended for c in self.calls])


def _invoke(proxy: Any, call: Callable[[Any, int], Any], index: int, intended: float) -> Call:
    started = time.monotonic()
    try:
        result = call(proxy, index)
        return Call(index, min(intended, started), started, time.monotonic(), result)
    except Exception as exc:  # a failed call is a figure, not a crash of the bench
        detail = getattr(exc, "exc_type", None) or type(exc).__name__
        return Call(index, min(intended, started), started, time.monotonic(), error=str(detail))


def closed_loop(
    pool: RpcPool,
    count: int,
    in_flight: int,
    call: Callable[[Any, int], Any],
    time_cap_s: float,
) -> LoopResult:
    """`count` calls, `in_flight` at a time (each worker starts the next call as
    soon as its previous one returns); no new call after `time_cap_s`."""
    if in_flight > pool.size:
        raise ValueError("the pool must hold a proxy per call in flight")
    result = LoopResult()
    counter = itertools.count()
    started = time.monotonic()
    stop_at = started + time_cap_s

    def worker() -> None:
        with pool.proxy() as proxy:
            while True:
                index = next(counter)
                now = time.monotonic()
                if index >= count or now > stop_at:
                    return
                result.calls.append(_invoke(proxy, call, index, now))

    workers = [eventlet.spawn(worker) for _ in range(in_flight)]
    for thread in workers:
        thread.wait()
    result.first_start = started
    result.last_end = max((c.ended for c in result.calls), default=started)
    return result


def open_loop(
    pool: RpcPool,
    rate: float,
    duration_s: float,
    call: Callable[[Any, int], Any],
) -> LoopResult:
    """Calls started on a fixed schedule, `rate` per second for `duration_s`,
    whether or not earlier ones have returned (an open system: reports do not
    wait for the platform). A call the client could not start on time keeps
    its scheduled time, so a stall shows in the latency instead of hiding."""
    result = LoopResult()
    count = int(round(rate * duration_s))
    green = eventlet.GreenPool(pool.size)
    start = time.monotonic() + 0.05

    def one(index: int, intended: float) -> None:
        with pool.proxy() as proxy:
            result.calls.append(_invoke(proxy, call, index, intended))

    for index in range(count):
        intended = start + index / rate
        delay = intended - time.monotonic()
        if delay > 0:
            eventlet.sleep(delay)
        green.spawn_n(one, index, intended)
    green.waitall()
    result.first_start = start
    result.last_end = max((c.ended for c in result.calls), default=start)
    return result
