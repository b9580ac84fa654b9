#!/bin/sh
# The edge's start: one upstream `server` line per web replica, then nginx,
# with a watch beside it that reads the replicas again every
# EDGE_RESOLVE_SECONDS and reloads nginx when one has come at a new address. nginx's consistent
# hash places a server by its name, and Compose gives every replica the one
# name `web`; listed by address, the replicas are told apart, so each stream
# keeps to one of them. nginx 1.26 resolves an upstream's names only when it
# loads its config, so a replica re-created at a new address (`docker compose
# up web`, a scale change) would be left out without the watch.
# `start.sh reload` reads them once and reloads at once (`make web`).
set -eu
servers=/tmp/upstream.conf
interval=${EDGE_RESOLVE_SECONDS:-5}

# Writes the list when a replica answers at an address the list lacks; fails
# if none answers to `web`. A replica that went is not a reason to reload:
# nginx already skips it (max_fails, proxy_next_upstream), and a reload
# closes every idle keep-alive connection of every client.
refresh() {
  getent ahostsv4 web | cut -d' ' -f1 | sort -u | while read -r address; do
    echo "server $address:8000 max_fails=1 fail_timeout=10s;"
  done > "$servers.new"
  if [ ! -s "$servers.new" ]; then
    rm -f "$servers.new"
    return 1
  fi
  if [ -f "$servers" ] && [ "${1:-}" != now ]; then
    while read -r line; do
      grep -qxF "$line" "$servers" || { mv "$servers.new" "$servers"; break; }
    done < "$servers.new"
    if [ -f "$servers.new" ]; then
      rm -f "$servers.new"
      return 0
    fi
  else
    mv "$servers.new" "$servers"
  fi
  echo "edge: $(wc -l < "$servers") web replicas: $(cut -d' ' -f2 "$servers" | tr '\n' ' ')" >&2
  changed=yes
}

changed=no
if ! refresh now; then
  echo "edge: no web replica answers to the name 'web'" >&2
  exit 1
fi
if [ "${1:-}" = reload ]; then
  exec nginx -s reload
fi

# While every replica is away (all restarting), the last list stands: nginx
# needs at least one server. When a new one comes, the list is written anew,
# and the ones gone leave it then.
(
  while sleep "$interval"; do
    changed=no
    refresh || continue
    if [ "$changed" = yes ]; then
      nginx -s reload || echo "edge: reload failed; the previous list stands" >&2
    fi
  done
) &
exec nginx -g 'daemon off;'
