#!/bin/sh
# The mesh's RabbitMQ users, each allowed what its role needs and nothing more: the recipes of
# docs/security.md ("Least privilege on the broker"), applied by the Job rabbitmq-users.
# Safe to run again: an existing user gets the password of its Secret, and its permissions are
# set anew. Names and passwords are read from Secret files (<secrets>/<secret>/username and
# password) and reach rabbitmqctl on its standard input, never on a command line.
#
# Environment: RABBITMQ_NODE (the node to talk to), RABBITMQCTL_OPTS (e.g. --longnames),
# SECRETS (default /run/secrets), VHOST (default /), COOKIE_FILE (an Erlang cookie to install).
set -eu
SECRETS=${SECRETS:-/run/secrets}
VHOST=${VHOST:-/}
: "${RABBITMQ_NODE:?RABBITMQ_NODE names the RabbitMQ node to configure}"

if [ -n "${COOKIE_FILE:-}" ]; then
  umask 077
  export HOME="${HOME:-/tmp}"
  rm -f "$HOME/.erlang.cookie"
  cp "$COOKIE_FILE" "$HOME/.erlang.cookie"
  chmod 400 "$HOME/.erlang.cookie"
fi

ctl() {
  # shellcheck disable=SC2086  # RABBITMQCTL_OPTS holds several words on purpose
  rabbitmqctl ${RABBITMQCTL_OPTS:-} --node "$RABBITMQ_NODE" --quiet "$@"
}

# regex-escape a name (service and endpoint names are usually \w+, but a dot must not match any
# character)
esc() { printf '%s' "$1" | sed 's/[].[^$*+?(){}|\\]/\\&/g'; }

# alternation of escaped names: a|b\.c|d
alt() {
  out=""
  for n in "$@"; do out="${out:+$out|}$(esc "$n")"; done
  printf '%s' "$out"
}

# ensure_user SECRET: creates or updates the user of Secret SECRET; sets USER_NAME
ensure_user() {
  USER_NAME=$(cat "$SECRETS/$1/username")
  if ctl list_users --silent | cut -f1 | grep -qxF "$USER_NAME"; then
    ctl change_password "$USER_NAME" < "$SECRETS/$1/password"
  else
    ctl add_user "$USER_NAME" < "$SECRETS/$1/password"
  fi
}

permissions() {  # USER CONFIGURE WRITE READ
  ctl set_permissions --vhost "$VHOST" "$1" "$2" "$3" "$4"
  echo "permissions of $1: configure '$2' write '$3' read '$4'"
}

topic() {  # USER EXCHANGE WRITE READ
  ctl set_topic_permissions --vhost "$VHOST" "$1" "$2" "$3" "$4"
  echo "topic permissions of $1 on $2: write '$3' read '$4'"
}

# service_role SECRET SERVICE ENDPOINT...: a dl-serve service (its own queue, named after it)
service_role() {
  secret=$1 service=$(esc "$2"); shift 2
  ensure_user "$secret"
  own="requests|alerts|amq\\.gen-.*|$service"
  permissions "$USER_NAME" "^($own)\$" "^($own)\$" "^(requests|amq\\.gen-.*|$service)\$"
  # optional hardening: only its own binding keys, and only its own alerts
  topic "$USER_NAME" requests '.*' "^(($service|broadcast|$(alt "$@"))\\.#|amq\\.gen-.*)\$"
  topic "$USER_NAME" alerts "^(heartbeat\\.$service|sensor_value\\.($(alt "$@")))\$" '^$'
}

# logger_role SECRET SERVICE ALERT_KEY ENDPOINT...: an alert consumer with durable_queue: true
logger_role() {
  secret=$1 service=$(esc "$2") key=$(esc "$3"); shift 3
  ensure_user "$secret"
  own="requests|alerts|amq\\.gen-.*|$service|$service\\.alerts"
  permissions "$USER_NAME" "^($own)\$" "^($own)\$" "^($own)\$"
  topic "$USER_NAME" requests '.*' "^(($service|broadcast|$(alt "$@"))\\.#|amq\\.gen-.*)\$"
  topic "$USER_NAME" alerts "^heartbeat\\.$service\$" "^$key\$"
}

# client_role SECRET: dl-agent, scripts and notebooks (requests only, no alerts)
client_role() {
  ensure_user "$1"
  permissions "$USER_NAME" '^(requests|alerts|amq\.gen-.*)$' '^(requests|amq\.gen-.*)$' \
    '^(requests|amq\.gen-.*)$'
  # a client binds only its reply queue: no listening to other people's requests
  topic "$USER_NAME" requests '.*' '^amq\.gen-.*$'
}

# monitor_role SECRET: dl-mon, which sees every request and alert by design
monitor_role() {
  ensure_user "$1"
  permissions "$USER_NAME" '^(requests|alerts|amq\.gen-.*|monitor_.*)$' \
    '^(amq\.gen-.*|monitor_.*)$' '^(requests|alerts|amq\.gen-.*|monitor_.*)$'
}

echo "waiting for $RABBITMQ_NODE"
until ctl await_startup >/dev/null 2>&1; do sleep 5; done

if [ "$#" -gt 0 ]; then  # a role given on the command line (used to test the recipes)
  "$@"
  exit 0
fi

# The roles of this deployment. Names must match deploy/k8s/base/config/*.yaml: adding an endpoint
# there means adding it here, or the service is refused the binding of its name at start.
service_role broker-my-store my_store peaches chips waffles
logger_role broker-sensor-logger sensor_data_logger 'sensor_value.#' values_table
client_role broker-operator
monitor_role broker-monitor
