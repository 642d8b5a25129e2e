#!/usr/bin/env bash
# Throughput: the mock provider directly, the bare Pingora passthrough (glibc malloc, as
# Pingora comes, and with mimalloc, Tollgate's allocator), and Tollgate (auth, routing,
# metering, usage writes and metrics on), each proxy pinned to core 0 and the mock and
# wrk to core 1. The targets take turns, ROUNDS rounds of SECONDS each per mode, so a
# slow minute of a shared machine hits all of them alike; printed per target: the median
# RPS over the rounds, p50/p99 of the median round, and the Tollgate/passthrough ratios
# (median of the per-round ratios).
# Usage: load-tests/throughput.sh [SECONDS] [CONNECTIONS] [ROUNDS]   (defaults 10, 64, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
rounds=${3:-3}
source load-tests/common.sh
need wrk

taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19001 2>/dev/null & pids+=($!)
taskset -c 0 "$bin/passthrough" 127.0.0.1:19002 127.0.0.1:19001 2>/dev/null & pids+=($!)
taskset -c 0 "$bin/passthrough-mimalloc" 127.0.0.1:19005 127.0.0.1:19001 2>/dev/null & pids+=($!)
one_upstream_config "$tmp/tollgate.yaml" 127.0.0.1:19003 127.0.0.1:19004 127.0.0.1:19001 "gpt-4o-mini*"
export TG_KEY=$(gateway_key "$tmp/tollgate.yaml")
RUST_LOG=warn taskset -c 0 "$bin/tollgate" -c "$tmp/tollgate.yaml" serve 2>"$tmp/tollgate.log" & tg=$!; pids+=($tg)
wait_for 19001 19002 19003 19005
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$1/status; }
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "tollgate idle RSS: $(rss $tg)"
targets="mock:19001 passthrough:19002 passthrough-mimalloc:19005 tollgate:19003"
for mode in json stream; do
  for round in $(seq "$rounds"); do
    for target in $targets; do
      name=${target%%:*}; port=${target##*:}
      out=$(STREAM=$([ "$mode" = stream ] && echo 1 || echo 0) taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s load-tests/post.lua "http://127.0.0.1:$port/v1/chat/completions")
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p50=$(echo "$out" | awk '$1=="50%" {print $2}')
      p99=$(echo "$out" | awk '$1=="99%" {print $2}')
      errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
      [ -z "$errs" ] || echo "  $name $mode round $round: $errs"
      echo "$mode $round $name $rps $p50 $p99" >>"$tmp/rounds"
    done
  done
done
echo "tollgate RSS after load: $(rss $tg)"
# Per mode and target: the median RPS and the latencies of the round that had it; then
# the median over rounds of tollgate/passthrough.
awk -v rounds="$rounds" '
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)]
  }
  { rps[$1, $3, $2] = $4; lat[$1, $3, $2] = $5 " " $6; modes[$1] = 1; names[$3] = 1 }
  END {
    printf "%-21s %-7s %10s %9s %9s   (RPS of each round)\n", "target", "mode", "rps", "p50", "p99"
    split("mock passthrough passthrough-mimalloc tollgate", order, " ")
    split("json stream", morder, " ")
    for (mi = 1; mi <= 2; mi++) {
      m = morder[mi]
      if (!(m in modes)) continue
      for (oi = 1; oi <= 4; oi++) {
        n = order[oi]; all = ""
        for (r = 1; r <= rounds; r++) { v[r] = rps[m, n, r]; all = all " " rps[m, n, r] }
        med = median(v, rounds)
        for (r = 1; r <= rounds; r++) if (rps[m, n, r] == med) { split(lat[m, n, r], l, " "); break }
        printf "%-21s %-7s %10.0f %9s %9s  %s\n", n, m, med, l[1], l[2], all
      }
      for (r = 1; r <= rounds; r++) { a[r] = rps[m, "tollgate", r] / rps[m, "passthrough", r]; b[r] = rps[m, "tollgate", r] / rps[m, "passthrough-mimalloc", r] }
      printf "tollgate / passthrough RPS (%s): %.2f; / passthrough-mimalloc: %.2f\n", m, median(a, rounds), median(b, rounds)
    }
  }' "$tmp/rounds"
sleep 1
events=$(curl -s "http://127.0.0.1:19004/metrics" | awk '/^tollgate_requests_total/ {s+=$2} END {print s}')
dropped=$(curl -s "http://127.0.0.1:19004/metrics" | awk '/^tollgate_usage_events_dropped_total/ {print $2}')
stored=$("$bin/tollgate" -c "$tmp/tollgate.yaml" usage --by key 2>/dev/null | awk 'NR > 1 {s += $2} END {print s + 0}')
echo "tollgate requests metered: $events, usage events dropped: ${dropped:-0}, events stored: $stored"
