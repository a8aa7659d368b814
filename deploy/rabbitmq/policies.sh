#!/usr/bin/env bash
# Policies for a RabbitMQ (3.10 or later) cluster running the linkage platform.
# Idempotent; run on any node, once per vhost the platform uses:
#   deploy/rabbitmq/policies.sh [vhost]            (default vhost: /)
#   docker-compose exec rabbitmq bash /etc/rabbitmq/policies.sh
#
# Queue types are chosen when a queue is declared, never by a policy. The
# services declare every event queue (evt-<source>-<event>--<service>.<handler>)
# and their RPC queues (rpc-<service>) durable, with x-queue-type taken from
# LINKAGE_QUEUE_TYPE: set it to `quorum` on every instance in production
# (docker-compose.yml and deploy/k8s/ do).
# A queue keeps its type for life: to move a running deployment from classic
# to quorum queues, stop every service, let the evt-* and rpc-* queues drain,
# delete them, then start the services with LINKAGE_QUEUE_TYPE=quorum (they
# declare them again at start). Quorum queues are replicated by Raft (on up to 3 nodes
# by default), so no ha-mode (classic mirroring) policy is wanted.
#
# Only one policy applies to a queue (the highest priority among those whose
# pattern matches), so the patterns below do not overlap.
set -euo pipefail

vhost="${1:-/}"
ctl="${RABBITMQCTL:-rabbitmqctl}"

# Event queues. A transient failure does not redeliver: the handler sends the
# message to a retry queue (shared/retry.py: growing delays, its own attempt
# count in x-linkage-attempts, then the dead-letter queue with the reason) and
# acks it, so each retry arrives as a new message. What still redelivers is
# a consumer that dies or loses its connection with messages in hand (up to
# max_workers per instance), e.g. in a rolling restart. `delivery-limit` only
# guards against a message that kills its consumer every time: after 20
# deliveries it is dead-lettered (x-death reason delivery_limit, no
# x-linkage-* headers) instead of crash-looping every instance.
# Dead-lettering is at-least-once: the queue keeps a message until the
# dead-letter queue has confirmed it (the default, at-most-once, drops it
# when the dead-letter queue refuses, e.g. while full). RabbitMQ requires
# `overflow: reject-publish` for that; the queues set no length limit, so it
# changes nothing else.
"$ctl" set_policy -p "$vhost" --priority 10 --apply-to queues \
  linkage-events '^evt-' \
  '{"delivery-limit": 20, "dead-letter-exchange": "linkage.dead-letter", "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}'

# Retry queues (linkage.retry.<delay>, shared/retry.py): no consumer; a message
# waits out the queue's TTL and is dead-lettered back to its own queue through
# linkage.retry-return (set when the queue is declared). At-least-once here
# too, so a retry is never dropped on its way back.
"$ctl" set_policy -p "$vhost" --priority 10 --apply-to queues \
  linkage-retries '^linkage\.retry\.' \
  '{"dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}'

# The dead-letter queue is meant to stay empty; it is bounded so that a flood
# of poison messages cannot fill the broker's disk. When it is full, new dead
# letters are refused (reject-publish) rather than old ones dropped: the
# services' publisher confirms fail and the message stays in its own queue.
"$ctl" set_policy -p "$vhost" --priority 20 --apply-to queues \
  linkage-dead-letter '^linkage\.dead-letter$' \
  '{"max-length": 100000, "overflow": "reject-publish"}'

"$ctl" list_policies -p "$vhost"
