#!/usr/bin/env bash
# Stops exactly what localstack/start.sh started, by the process ids it recorded.
set -uo pipefail
run=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.run
for name in localstack dynamodb; do
  pidfile=$run/$name.pid
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    # start.sh ran each under setsid: its process group holds the children too.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "localstack: stopped $name (pid $pid)" >&2
  fi
  rm -f "$pidfile"
done
