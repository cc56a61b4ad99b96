#!/bin/sh
# Init container of the RabbitMQ pods: lays out /etc/rabbitmq (an emptyDir) and the Erlang cookie.
# The administrator's name and password come from the Secret rabbitmq-admin as files and go into
# a conf file readable only by the rabbitmq user; they never pass through a ConfigMap, an
# environment variable or a command line.
set -eu
umask 077
mkdir -p /etc/rabbitmq/conf.d
cp /config/rabbitmq/*.conf /etc/rabbitmq/conf.d/
cp /config/rabbitmq/enabled_plugins /etc/rabbitmq/enabled_plugins
{
  printf 'default_user = %s\n' "$(cat /run/secrets/rabbitmq-admin/username)"
  printf 'default_pass = %s\n' "$(cat /run/secrets/rabbitmq-admin/password)"
  printf 'default_user_tags.administrator = true\n'
} > /etc/rabbitmq/conf.d/90-admin.conf
# Erlang refuses a cookie file that others can read; the Secret volume's files are not ours to chmod.
rm -f /var/lib/rabbitmq/.erlang.cookie
cp /run/secrets/erlang-cookie/cookie /var/lib/rabbitmq/.erlang.cookie
chmod 400 /var/lib/rabbitmq/.erlang.cookie
