#!/usr/bin/env bash
# One gateway on SQLite against one gateway on PostgreSQL + Redis (issue "several
# instances"), in the same run: each pinned to core 0 in turn, the mock and wrk on core 1,
# ROUNDS alternating rounds of SECONDS each per mode (json, stream), a key with a budget,
# an RPM and a TPM limit so that the limits are counted (in memory for SQLite, by one
# Redis script call per request for the other). Printed per target: the median RPS, p50
# and p99 of the round that had it, the latency each adds over the mock, and afterwards
# the events each stored (PostgreSQL's come through the local spool).
# Needs PostgreSQL on 127.0.0.1:5432 with role tollgate (bash .ci/setup starts it) and
# redis-server (installed by .ci/setup; a private one is started here, on core 1 with
# the mock and wrk, as it would be on another machine).
# Usage: load-tests/stores.sh [SECONDS] [CONNECTIONS] [ROUNDS]   (defaults 10, 64, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
rounds=${3:-3}
source load-tests/common.sh
need wrk

pg_admin=${TOLLGATE_TEST_POSTGRES_URL:-postgres://tollgate:tollgate@127.0.0.1:5432/postgres}
db="tollgate_load_$$"
cleanup_db() { for d in "${db}_a" "${db}_b"; do psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done; }
trap 'cleanup; cleanup_db' EXIT

taskset -c 1 redis-server --port 19016 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & pids+=($!)
taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19011 2>/dev/null & pids+=($!)

# Four gateways, all pinned to core 0 and loaded one at a time: SQLite (the shared load-test
# config), SQLite + Redis limits, PostgreSQL, PostgreSQL + Redis. The PostgreSQL ones keep
# their local files (spool, sockets) under data/ of their own working directory.
one_upstream_config "$tmp/sqlite.yaml" 127.0.0.1:19012 127.0.0.1:19013 127.0.0.1:19011 "gpt-4o-mini*"
master=$(head -c32 /dev/urandom | base64)
variant() { # NAME PORT ADMIN STORAGE_LINE LIMITS_LINE
  mkdir -p "$tmp/$1"
  sed -e "s#storage: { path: \"$tmp/tollgate.db\" }#$4\n$5\nsecrets: { master_key: \"$master\" }#" \
    -e "s#19012#$2#; s#19013#$3#" "$tmp/sqlite.yaml" >"$tmp/$1.yaml"
}
redis_line='limits: { redis_url: "redis://127.0.0.1:19016/0" }'
variant sqlite-redis 19017 19018 "storage: { path: \"$tmp/sqlite-redis/tollgate.db\" }" "$redis_line"
variant postgres 19019 19020 "storage: { url: \"${pg_admin%/*}/${db}_a\" }" ""
variant postgres-redis 19014 19015 "storage: { url: \"${pg_admin%/*}/${db}_b\" }" "$redis_line"
psql -q "$pg_admin" -c "CREATE DATABASE ${db}_a" -c "CREATE DATABASE ${db}_b" >/dev/null
bin=$PWD/$bin
limited_key() {
  "$bin/tollgate" -c "$1" user add load >/dev/null
  "$bin/tollgate" -c "$1" key create --user load --budget-usd 1000000 --budget-period month --rpm 100000000 --tpm 1000000000
}
keys=()
for v in sqlite sqlite-redis postgres postgres-redis; do
  mkdir -p "$tmp/$v"
  keys+=("$(cd "$tmp/$v" && limited_key "$tmp/$v.yaml")")
  (cd "$tmp/$v" && RUST_LOG=warn exec taskset -c 0 "$bin/tollgate" -c "$tmp/$v.yaml" serve 2>"$tmp/$v.log") & pids+=($!)
done
wait_for 19011 19012 19014 19016 19017 19019

echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(date -u +%Y-%m-%dT%H:%MZ)"
targets="mock:19011: sqlite:19012:${keys[0]} sqlite+redis:19017:${keys[1]} postgres:19019:${keys[2]} postgres+redis:19014:${keys[3]}"
for mode in json stream; do
  for round in $(seq "$rounds"); do
    for target in $targets; do
      IFS=: read -r name port key <<<"$target"
      out=$(TG_KEY="$key" STREAM=$([ "$mode" = stream ] && echo 1 || echo 0) taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s load-tests/post.lua "http://127.0.0.1:$port/v1/chat/completions")
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p50=$(echo "$out" | awk '$1=="50%" {print $2}')
      p99=$(echo "$out" | awk '$1=="99%" {print $2}')
      errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
      [ -z "$errs" ] || echo "  $name $mode round $round: $errs"
      echo "$mode $round $name $rps $p50 $p99" >>"$tmp/rounds"
    done
  done
done
# wrk prints latencies with units (us, ms, s); the added latency is in microseconds.
awk -v rounds="$rounds" '
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)]
  }
  function us(s) { if (s ~ /us$/) return s + 0; if (s ~ /ms$/) return s * 1000; if (s ~ /s$/) return s * 1000000; return s }
  { rps[$1, $3, $2] = $4; lat[$1, $3, $2] = $5 " " $6 }
  END {
    printf "%-16s %-7s %10s %9s %9s %14s   (RPS of each round)\n", "target", "mode", "rps", "p50", "p99", "added p50 us"
    split("mock sqlite sqlite+redis postgres postgres+redis", order, " ")
    split("json stream", morder, " ")
    for (mi = 1; mi <= 2; mi++) {
      m = morder[mi]
      for (oi = 1; oi <= 5; oi++) {
        n = order[oi]; all = ""
        for (r = 1; r <= rounds; r++) { v[r] = rps[m, n, r]; all = all " " rps[m, n, r] }
        med = median(v, rounds)
        for (r = 1; r <= rounds; r++) if (rps[m, n, r] == med) { split(lat[m, n, r], l, " "); break }
        if (n == "mock") { base = us(l[1]); added = "-" } else added = sprintf("%.0f", us(l[1]) - base)
        printf "%-16s %-7s %10.0f %9s %9s %14s  %s\n", n, m, med, l[1], l[2], added, all
      }
    }
  }' "$tmp/rounds"
stored() { "$bin/tollgate" -c "$1" usage --by key 2>/dev/null | awk 'NR > 1 {s += $2} END {print s + 0}'; }
# Let the writers (and the spool's shipper) deliver what they hold before counting.
for cfg in sqlite sqlite-redis postgres postgres-redis; do
  for _ in $(seq 50); do
    a=$(stored "$tmp/$cfg.yaml"); sleep 0.2; b=$(stored "$tmp/$cfg.yaml")
    [ "$a" = "$b" ] && break
  done
done
admin_port() { awk -F'"' '/^admin:/ {split($2, a, ":"); print a[2]}' "$1"; }
for cfg in sqlite sqlite-redis postgres postgres-redis; do
  metered=$(curl -s "http://127.0.0.1:$(admin_port "$tmp/$cfg.yaml")/metrics" | awk '/^tollgate_requests_total/ {s+=$2} END {print s + 0}')
  echo "$cfg: requests metered $metered, events stored $(stored "$tmp/$cfg.yaml")"
done
