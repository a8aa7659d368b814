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

# Event queues. A quorum queue counts deliveries: after `delivery-limit`
# returns a message goes to the dead-letter exchange (and the
# LinkageDeadLetterQueueNotEmpty alert) instead of looping forever, e.g. one
# that kills its consumer. A handler that hits a transient failure (database
# away) requeues each message about every 5 s, so 1000 deliveries ride out an
# outage of over an hour before anything is dead-lettered. Messages dead-lettered
# this way carry RabbitMQ's x-death header (reason delivery_limit) rather than
# the services' x-linkage-error headers.
"$ctl" set_policy -p "$vhost" --priority 10 --apply-to queues \
  linkage-events '^evt-' \
  '{"delivery-limit": 1000, "dead-letter-exchange": "linkage.dead-letter"}'

# The dead-letter queue is meant to stay empty; it is bounded so that a flood
# of poison messages cannot fill the broker's disk. When it is full, new dead
# letters are refused (reject-publish) rather than old ones dropped: the
# services' publisher confirms fail and the message stays in its own queue.
"$ctl" set_policy -p "$vhost" --priority 20 --apply-to queues \
  linkage-dead-letter '^linkage\.dead-letter$' \
  '{"max-length": 100000, "overflow": "reject-publish"}'

"$ctl" list_policies -p "$vhost"
