#!/usr/bin/env bash
# Instructions per message that Redis spends inside taskq's Lua scripts, counted by callgrind
# (a count, not a time: the same whatever else the machine is doing).
#
#   bench/callgrind/script_cost.sh            # the fetch script
#   bench/callgrind/script_cost.sh --store    # the fetch script and the result script
#
# Needs valgrind, redis-server and the benchmark's Python environment with redis-py (made by
# `cargo run --release -p taskq-bench -- --with-celery`, or give PYTHON=...).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-$root/target/taskq-bench/venv/bin/python}"
messages="${MESSAGES:-10000}"
[ -x "$python" ] || { echo "no Python with redis-py at $python: run the benchmark with --with-celery once, or set PYTHON" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

valgrind --tool=callgrind --toggle-collect=evalGenericCommand --callgrind-out-file="$work/callgrind.out" \
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
valgrind_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done

"$python" "$root/bench/callgrind/script_cost.py" --port "$port" --messages "$messages" \
  --scripts "$root/taskq/src/scripts.rs" "$@"
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$valgrind_pid" || true

total="$(callgrind_annotate "$work/callgrind.out" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')"
echo "$((total / messages)) instructions per message inside EVALSHA ($messages messages${1:+, $1})"
