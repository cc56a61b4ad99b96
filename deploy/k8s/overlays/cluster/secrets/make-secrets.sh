#!/bin/sh
# Writes the cluster overlay's credential files (see README.md beside this script) with fresh
# random passwords. Existing files are kept: run it again after deleting the ones to renew.
set -eu
cd "$(dirname "$0")"
umask 077
rand() { LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 40; }
write() {  # FILE LINE...
  file=$1; shift
  if [ -e "$file" ]; then echo "kept $file"; return; fi
  printf '%s\n' "$@" > "$file"
  echo "wrote $file"
}
write rabbitmq-admin.env username=admin "password=$(rand)"
write rabbitmq-erlang-cookie.env "cookie=$(rand)"
write broker-my-store.env username=my_store "password=$(rand)"
write broker-sensor-logger.env username=sensor_data_logger "password=$(rand)"
write broker-operator.env username=operator "password=$(rand)"
write broker-monitor.env username=monitor "password=$(rand)"
write postgres-admin.env username=postgres "password=$(rand)"
write postgres-sensor-logger.env username=sensor_logger "password=$(rand)"
