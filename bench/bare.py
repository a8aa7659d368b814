"""The bare-nameko limit: an RPC that dispatches one event to a handler that writes nothing.

This is the platform's skeleton with the platform taken out: the same nameko,
the same broker, the same `max_workers`, an RPC entrypoint, a persistent
event published with confirms (nameko's `EventDispatcher` defaults) to a
durable service-pool queue, and a handler. No database, no validation, no
outbox. What the platform achieves is measured against what this achieves.

`python -m bench.bare` runs it in the foreground (the bench starts it as a
subprocess with `AMQP_URI` pointing at the run's vhost); SIGTERM stops it.
"""

from __future__ import annotations

import errno
import os
import signal
import sys

SERVICE_NAME = "bench_bare"


def _service_class() -> type:
    # Imported late: nameko must come after eventlet's monkey patching.
    from nameko.events import EventDispatcher, event_handler
    from nameko.rpc import rpc

    class BareService:
        name = SERVICE_NAME
        dispatch = EventDispatcher()
        # nameko makes a new instance per worker: the count lives on the class.
        handled_events = 0

        @rpc
        def ping(self, n: int) -> int:
            self.dispatch("pinged", {"n": n})
            return n

        @event_handler(SERVICE_NAME, "pinged")
        def on_pinged(self, payload: dict) -> None:
            # Writes nothing. The in-memory count only lets the bench tell when
            # every event has been handled, so the figure is end to end.
            BareService.handled_events += 1

        @rpc
        def handled(self) -> int:
            return BareService.handled_events

    return BareService


def main() -> int:
    import eventlet
    from nameko.runners import ServiceRunner

    config = {
        "AMQP_URI": os.environ["AMQP_URI"],
        # the platform's default (shared/config.py), so both run the same pool
        "max_workers": int(os.environ.get("LINKAGE_MAX_WORKERS", "10")),
    }
    runner = ServiceRunner(config)
    runner.add_service(_service_class())

    def shutdown(signum, frame):
        # a signal handler cannot block on eventlet: stop in a green thread
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    waiter = eventlet.spawn(runner.wait)
    while True:
        try:
            waiter.wait()
            return 0
        except OSError as exc:  # a signal interrupted the wait: keep waiting
            if exc.errno != errno.EINTR:
                raise


if __name__ == "__main__":
    import eventlet

    eventlet.monkey_patch()
    sys.exit(main())
