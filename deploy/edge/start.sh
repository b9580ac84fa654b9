#!/bin/sh
# The edge's start (and `start.sh reload`): one upstream `server` line per web
# replica, then nginx. nginx's consistent hash places a server by its name, and
# Compose gives every replica the one name `web`; listed by address, the
# replicas are told apart, so each stream keeps to one of them.
set -eu
servers=/tmp/upstream.conf
getent ahostsv4 web | cut -d' ' -f1 | sort -u | while read -r address; do
  echo "server $address:8000 max_fails=1 fail_timeout=10s;"
done > "$servers.new"
if [ ! -s "$servers.new" ]; then
  echo "edge: no web replica answers to the name 'web'" >&2
  exit 1
fi
mv "$servers.new" "$servers"
echo "edge: $(wc -l < "$servers") web replicas: $(cut -d' ' -f2 "$servers" | tr '\n' ' ')" >&2
if [ "${1:-}" = reload ]; then
  exec nginx -s reload
fi
exec nginx -g 'daemon off;'
