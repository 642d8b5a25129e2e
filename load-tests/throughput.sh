#!/usr/bin/env bash
# Throughput: the mock provider directly, the bare Pingora passthrough (glibc malloc, as
# Pingora comes, and with mimalloc, Tollgate's allocator), and Tollgate (auth, routing,
# metering, usage writes and metrics on), each proxy pinned to core 0 and the mocks and
# wrk to core 1. The modes (MODES, default all of them):
#   json            a ~1 KB chat request answered with JSON (with usage)
#   stream          the same asking for a stream: 20 content chunks and usage, one write
#                   per event (the per-event mock)
#   bulk-openai     a chat-completions stream written all at once (37 events, ~10.7 KB:
#                   a fast model or a cached answer; the bulk mock)
#   bulk-anthropic  an Anthropic Messages client (/v1/messages) and stream, all at once;
#                   Tollgate serves it through an anthropic-kind upstream
# The bulk modes have their own mock, passthroughs and Tollgate (its own store), so the
# json and stream rows run exactly as before. The targets take turns, ROUNDS rounds of
# SECONDS each per mode, so a slow minute of a shared machine hits all of them alike;
# printed per mode and target: the median RPS over the rounds, p50/p99 of the median
# round, and the Tollgate/passthrough ratios (median of the per-round ratios); then what
# Tollgate metered (reported tokens, not estimates, for the bulk streams).
# BULK=events sends each bulk stream as one HTTP chunk per event instead of one chunk.
# Usage: [MODES="json bulk-openai"] [BULK=events] load-tests/throughput.sh [SECONDS] [CONNECTIONS] [ROUNDS]
#        (defaults 10, 64, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
rounds=${3:-3}
modes=${MODES:-json stream bulk-openai bulk-anthropic}
for m in $modes; do
  case $m in json | stream | bulk-openai | bulk-anthropic) ;; *) echo "unknown mode: $m" >&2; exit 2 ;; esac
done
source load-tests/common.sh
need wrk jq

# per-event mock (json, stream) and everything in front of it
taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19001 2>/dev/null & pids+=($!)
taskset -c 0 "$bin/passthrough" 127.0.0.1:19002 127.0.0.1:19001 2>/dev/null & pids+=($!)
taskset -c 0 "$bin/passthrough-mimalloc" 127.0.0.1:19005 127.0.0.1:19001 2>/dev/null & pids+=($!)
one_upstream_config "$tmp/tollgate.yaml" 127.0.0.1:19003 127.0.0.1:19004 127.0.0.1:19001 "gpt-4o-mini*"
key=$(gateway_key "$tmp/tollgate.yaml")
RUST_LOG=warn taskset -c 0 "$bin/tollgate" -c "$tmp/tollgate.yaml" serve 2>"$tmp/tollgate.log" & tg=$!; pids+=("$tg")
# bulk mock (bulk-openai, bulk-anthropic) and everything in front of it
TOLLGATE_MOCK_BULK=${BULK:-1} taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19006 2>/dev/null & pids+=($!)
taskset -c 0 "$bin/passthrough" 127.0.0.1:19007 127.0.0.1:19006 2>/dev/null & pids+=($!)
taskset -c 0 "$bin/passthrough-mimalloc" 127.0.0.1:19008 127.0.0.1:19006 2>/dev/null & pids+=($!)
two_dialect_config "$tmp/bulk.yaml" 127.0.0.1:19009 127.0.0.1:19010 127.0.0.1:19006 "gpt-4o-mini*"
bulk_key=$(gateway_key "$tmp/bulk.yaml")
RUST_LOG=warn taskset -c 0 "$bin/tollgate" -c "$tmp/bulk.yaml" serve 2>"$tmp/bulk.log" & tg_bulk=$!; pids+=("$tg_bulk")
wait_for 19001 19002 19003 19005 19006 19007 19008 19009
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "tollgate idle RSS: $(rss $tg) (bulk instance: $(rss $tg_bulk))"
echo "modes: $modes; $rounds rounds of ${secs}s at $conns connections"

# run MODE ROUND: one round of MODE against each target in turn, appended to $tmp/rounds.
run() {
  local mode=$1 round=$2 targets stream=1 dialect=openai path=/v1/chat/completions model=gpt-4o-mini tg_key=$key
  case $mode in
    json) stream=0; targets="mock:19001 passthrough:19002 passthrough-mimalloc:19005 tollgate:19003" ;;
    stream) targets="mock:19001 passthrough:19002 passthrough-mimalloc:19005 tollgate:19003" ;;
    bulk-*) targets="mock:19006 passthrough:19007 passthrough-mimalloc:19008 tollgate:19009"; tg_key=$bulk_key ;;
  esac
  if [ "$mode" = bulk-anthropic ]; then dialect=anthropic; path=/v1/messages; model=claude-sonnet-4-5; fi
  for target in $targets; do
    local name=${target%%:*} port=${target##*:} out rps p50 p99 errs
    out=$(STREAM=$stream DIALECT=$dialect MODEL=$model TG_KEY=$tg_key taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s load-tests/post.lua "http://127.0.0.1:$port$path")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    [ -z "$errs" ] || echo "  $name $mode round $round: $errs"
    echo "$mode $round $name $rps $p50 $p99" >>"$tmp/rounds"
  done
}
for mode in $modes; do
  for round in $(seq "$rounds"); do run "$mode" "$round"; done
done
echo "tollgate RSS after load: $(rss $tg) (bulk instance: $(rss $tg_bulk))"
# Per mode and target: the median RPS and the latencies of the round that had it; then
# the median over rounds of tollgate/passthrough.
awk -v rounds="$rounds" -v modes="$modes" '
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)]
  }
  { rps[$1, $3, $2] = $4; lat[$1, $3, $2] = $5 " " $6 }
  END {
    printf "%-21s %-14s %10s %9s %9s   (RPS of each round)\n", "target", "mode", "rps", "p50", "p99"
    split("mock passthrough passthrough-mimalloc tollgate", order, " ")
    nm = split(modes, morder, " ")
    for (mi = 1; mi <= nm; mi++) {
      m = morder[mi]
      for (oi = 1; oi <= 4; oi++) {
        n = order[oi]; all = ""
        for (r = 1; r <= rounds; r++) { v[r] = rps[m, n, r]; all = all " " rps[m, n, r] }
        med = median(v, rounds)
        for (r = 1; r <= rounds; r++) if (rps[m, n, r] == med) { split(lat[m, n, r], l, " "); break }
        printf "%-21s %-14s %10.0f %9s %9s  %s\n", n, m, med, l[1], l[2], all
      }
      for (r = 1; r <= rounds; r++) { a[r] = rps[m, "tollgate", r] / rps[m, "passthrough", r]; b[r] = rps[m, "tollgate", r] / rps[m, "passthrough-mimalloc", r] }
      printf "tollgate / passthrough RPS (%s): %.2f; / passthrough-mimalloc: %.2f\n", m, median(a, rounds), median(b, rounds)
    }
  }' "$tmp/rounds"
sleep 1
# metered COUNT_LABEL ADMIN_PORT CONFIG: requests metered, usage events dropped and stored.
metered() {
  local events dropped stored
  events=$(curl -s "http://127.0.0.1:$2/metrics" | awk '/^tollgate_requests_total/ {s+=$2} END {print s + 0}')
  dropped=$(curl -s "http://127.0.0.1:$2/metrics" | awk '/^tollgate_usage_events_dropped_total/ {print $2}')
  stored=$("$bin/tollgate" -c "$3" usage --by key 2>/dev/null | awk 'NR > 1 {s += $2} END {print s + 0}')
  echo "$1 requests metered: $events, usage events dropped: ${dropped:-0}, events stored: $stored"
}
metered tollgate 19004 "$tmp/tollgate.yaml"
metered "tollgate (bulk instance)" 19010 "$tmp/bulk.yaml"
# The bulk streams report their usage: all but the few wrk cut off when a round ended
# (at most CONNECTIONS per round) must be reported, with the mock's 33 output tokens each.
"$bin/tollgate" -c "$tmp/bulk.yaml" usage --by model --json 2>/dev/null | jq -r '.rows[] |
  "  \(.group): \(.requests) requests, \(.estimated_requests) estimated, \(.output_tokens) output tokens (\(if .requests > .estimated_requests then ((.output_tokens / .requests) * 10 | round / 10) else 0 end) per request)"'
