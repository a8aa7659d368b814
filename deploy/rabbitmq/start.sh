#!/usr/bin/env bash
# The laptop stack's broker (docker-compose.yml): RabbitMQ, which loads
# definitions.json at boot (rabbitmq.conf `load_definitions`), then the users'
# passwords from the environment (set-passwords.sh). The healthcheck turns
# healthy only once they are set.
set -euo pipefail

ready=/tmp/linkage-users-ready
rm -f "$ready"
docker-entrypoint.sh rabbitmq-server &
server=$!
trap 'kill -TERM "$server"; wait "$server"; exit 0' TERM INT
bash "$(dirname "$0")/set-passwords.sh"
touch "$ready"
wait "$server"
