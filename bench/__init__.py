"""`make bench`: the platform measured against the limits of its own parts.

One run on one machine measures the parts the platform is built from (bare
nameko RPC + event, and the broker with persistent, confirmed, acked messages)
and then the platform itself on PostgreSQL, with one and with two processes of
each service. Absolute figures depend on the machine; the ratios between them
(platform / bare nameko, two processes / one) are what carries over.

Stages (`bench.run.main` runs them in order):
- limits: `bench.limits` (bare nameko via `bench.bare`, the broker via kombu);
- platform: `bench.platform_run` (services as subprocesses, `bench.client` drives
  `intake.submit_report`, `bench.observer` sees `dispatch.order_dispatched`);
- report: `bench.report` prints the table and writes `bench/results.json`.

A run borrows an isolated RabbitMQ vhost and fresh PostgreSQL databases
(`bench.infra`) and gives them back at the end, so it never disturbs other work
on the same broker and server.
"""
