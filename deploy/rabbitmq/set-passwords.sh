#!/usr/bin/env bash
# Gives the platform's broker users (definitions.json) their passwords, which
# the file never holds: it loads every user without one, and a user without a
# password cannot log in. Run inside the broker's container or pod (rabbitmqctl
# needs no login), after every start: the definitions loaded at boot clear the
# passwords again. docker-compose.yml runs it through start.sh; on Kubernetes
# run it from the broker pod's postStart hook (deploy/k8s/kustomization.yaml).
#
# Each user's password comes from a file named after the user in
# $LINKAGE_BROKER_PASSWORDS_DIR (default /etc/linkage/broker-passwords: a
# Secret mounted there, one key per user) or else from the environment,
# LINKAGE_BROKER_PASSWORD_<USER> (upper case, `-` as `_`:
# LINKAGE_BROKER_PASSWORD_PLATFORM_12345). A user with neither is left as it
# is: locked, as definitions.json loaded it.
set -euo pipefail

ctl="${RABBITMQCTL:-rabbitmqctl}"
dir="${LINKAGE_BROKER_PASSWORDS_DIR:-/etc/linkage/broker-passwords}"

"$ctl" await_startup --timeout 120 >/dev/null
for user in $("$ctl" list_users --silent --no-table-headers | cut -f1); do
  variable="LINKAGE_BROKER_PASSWORD_$(printf '%s' "$user" | tr 'a-z-' 'A-Z_')"
  if [ -f "$dir/$user" ]; then
    password=$(cat "$dir/$user")
  elif [ -n "${!variable:-}" ]; then
    password=${!variable}
  else
    echo "set-passwords: ${user}: no password given, left as it is (locked if new)"
    continue
  fi
  "$ctl" change_password "$user" "$password" >/dev/null
  echo "set-passwords: ${user}: password set"
done
