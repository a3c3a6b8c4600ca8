#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the tests (and for trying team mode):
#   scripts/pg.sh start DIR   initdb into DIR, start on a free port, print the URL
#   scripts/pg.sh stop DIR    stop it (immediate mode)
#   scripts/pg.sh restart DIR start it again, same data, same port
# The server asks for a password (scram-sha-256); it is written to DIR/password, and
# the URL printed carries none: clients give it with PGPASSWORD, as libpq's do.
# With PG_TLS_FROM=DIR (server.crt, server.key), the server takes TLS connections only.
# As root, the server runs as the `postgres` user. Debian's postgresql is installed if
# the machine has no server binaries.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?directory}

find_bin() {
  local b
  for b in "$(command -v initdb 2>/dev/null || true)" /usr/lib/postgresql/*/bin/initdb; do
    if [ -n "$b" ] && [ -x "$b" ]; then dirname "$(readlink -f "$b")"; return 0; fi
  done
  return 1
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if ! bin=$(find_bin); then
  (apt-get update -qq && apt-get install -y -qq postgresql) >/dev/null 2>&1 \
    || { echo "PostgreSQL server binaries are needed and could not be installed" >&2; exit 1; }
  bin=$(find_bin)
fi

case $cmd in
start)
  mkdir -p "$dir"
  password="pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  printf '%s\n' "$password" > "$dir/password"
  tls_opts=""
  if [ -n "${PG_TLS_FROM:-}" ]; then
    # TLS only: the server's certificate and key from PG_TLS_FROM (server.crt,
    # server.key), and no connection without TLS.
    mkdir -p "$dir/tls"
    cp "$PG_TLS_FROM/server.crt" "$PG_TLS_FROM/server.key" "$dir/tls/"
    chmod 600 "$dir/tls/server.key"
    tls_opts="-c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key"
  fi
  echo "$tls_opts" > "$dir/tls_opts"
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; chmod 700 "$dir"; fi
  as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 \
    --pwfile="$dir/password" >"$dir/initdb.log" 2>&1
  if [ -n "$tls_opts" ]; then
    sed -i 's/^host /hostssl /' "$dir/data/pg_hba.conf"
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=on $tls_opts" start >/dev/null
  echo "$port" > "$dir/port"
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
restart)
  # The same data and port, after a stop (an immediate stop is a crash to recover from).
  port=$(cat "$dir/port")
  tls_opts=$(cat "$dir/tls_opts" 2>/dev/null || true)
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=on $tls_opts" start >/dev/null
  ;;
stop)
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  ;;
*)
  echo "usage: scripts/pg.sh start|stop|restart DIR" >&2; exit 2
  ;;
esac
