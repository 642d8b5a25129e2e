#!/usr/bin/env bash
# Streaming and latency measurements: time to first byte and added latency at 64
# connections (direct vs through Tollgate), RSS with 1,000 concurrent slow streams, and
# RSS across one ~9 MB stream. Tollgate runs with auth,
# routing, metering and usage writes on, pinned to core 0; mocks and the probe on core 1.
# Usage: load-tests/streams.sh [TTFB_REQUESTS] [CONCURRENT_STREAMS]   (defaults 2000, 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
n_ttfb=${1:-2000}
n_hold=${2:-1000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
source load-tests/common.sh

taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19011 2>/dev/null & pids+=($!)
TOLLGATE_MOCK_EVENT_DELAY_MS=100 taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19012 2>/dev/null & pids+=($!)
TOLLGATE_MOCK_EVENTS=50000 taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19013 2>/dev/null & pids+=($!)
# The bare Pingora passthrough to the fast mock, on Tollgate's core: what any proxy hop
# adds on this machine, for comparison.
taskset -c 0 "$bin/passthrough" 127.0.0.1:19016 127.0.0.1:19011 2>/dev/null & pids+=($!)
cat > "$tmp/tollgate.yaml" <<YAML
server: { listen: ["127.0.0.1:19014"], threads: 1, shutdown_grace_s: 1, max_connections_per_ip: 0 }
admin: { listen: "127.0.0.1:19015" }
storage: { path: "$tmp/tollgate.db" }
upstreams:
  - { name: fast, kind: openai, base_url: "http://127.0.0.1:19011", keys: ["sk-load"] }
  - { name: slow, kind: openai, base_url: "http://127.0.0.1:19012", keys: ["sk-load"] }
  - { name: big, kind: openai, base_url: "http://127.0.0.1:19013", keys: ["sk-load"] }
routes:
  - { models: ["slow-*"], upstreams: [slow] }
  - { models: ["big-*"], upstreams: [big] }
  - { models: ["*"], upstreams: [fast] }
pricing:
  "*": { input: 0.15, output: 0.60 }
YAML
key=$(gateway_key "$tmp/tollgate.yaml")
RUST_LOG=warn taskset -c 0 "$bin/tollgate" -c "$tmp/tollgate.yaml" serve 2>"$tmp/tollgate.log" & tg=$!; pids+=($tg)
wait_for 19011 19012 19013 19014 19016
probe() { taskset -c 1 "$bin/stream-probe" "$@"; }
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "tollgate idle RSS: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$tg/status)"
# field LINE NAME: the value of NAME=...ms in a probe's line, in ms.
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {sub(/ms$/, "", $2); print $2}'; }
# added WHAT DIRECT THROUGH LIMIT_P50 LIMIT_P99: the proxy's p50/p99 minus the mock's,
# against the targets (a limit "-": no target for it, just the number).
added() {
  awk -v w="$1" -v d50="$(field "$2" p50)" -v d99="$(field "$2" p99)" -v t50="$(field "$3" p50)" \
    -v t99="$(field "$3" p99)" -v l50="$4" -v l99="$5" 'BEGIN {
      a = t50 - d50; b = t99 - d99
      if (l50 == "-") { printf "added %s: p50 %+.3f ms, p99 %+.3f ms\n", w, a, b; exit }
      if (l99 == "-") {
        printf "added %s: p50 %+.3f ms (target <= %s: %s), p99 %+.3f ms\n", w, a, l50,
          (a <= l50 ? "met" : "NOT met"), b; exit }
      printf "added %s: p50 %+.3f ms (target <= %s: %s), p99 %+.3f ms (target <= %s: %s)\n", w,
        a, l50, (a <= l50 ? "met" : "NOT met"), b, l99, (b <= l99 ? "met" : "NOT met") }'
}
direct=$(probe ttfb 127.0.0.1:19011 "$n_ttfb")
through=$(TG_KEY=$key probe ttfb 127.0.0.1:19014 "$n_ttfb")
echo "direct:   $direct"
echo "tollgate: $through"
added "time to first byte" "$direct" "$through" 1 1
# The same through a translated route (issue 12): an Anthropic Messages client of the
# same OpenAI-style mock, so each event is translated as it flows. What translation
# adds is the difference from Tollgate's own native figure, measured alternately in
# two halves so that a drift of the machine falls on both alike.
native_a=$(TG_KEY=$key probe ttfb 127.0.0.1:19014 "$((n_ttfb / 2))")
translated_a=$(TG_KEY=$key PROBE_DIALECT=anthropic probe ttfb 127.0.0.1:19014 "$((n_ttfb / 2))")
translated_b=$(TG_KEY=$key PROBE_DIALECT=anthropic probe ttfb 127.0.0.1:19014 "$((n_ttfb / 2))")
native_b=$(TG_KEY=$key probe ttfb 127.0.0.1:19014 "$((n_ttfb / 2))")
echo "tollgate, native:     $native_a | $native_b"
echo "tollgate, translated: $translated_a | $translated_b"
added "time to first byte by translation (first half)" "$native_a" "$translated_a" 0.2 -
added "time to first byte by translation (second half)" "$native_b" "$translated_b" 0.2 -
# Added latency at 64 connections, paced well below saturation (2,000 requests/s); the
# bare passthrough too, to tell what a proxy hop costs here from what Tollgate adds.
direct=$(probe latency 127.0.0.1:19011 64 2000 10)
bare=$(probe latency 127.0.0.1:19016 64 2000 10)
through=$(TG_KEY=$key probe latency 127.0.0.1:19014 64 2000 10)
echo "direct:      $direct"
echo "passthrough: $bare"
echo "tollgate:    $through"
added "latency at 64 connections" "$direct" "$through" 0.3 1
added "latency at 64 connections by the bare passthrough (for comparison)" "$direct" "$bare" - -
TG_KEY=$key PROBE_MODEL=slow-gpt probe hold 127.0.0.1:19014 "$n_hold" "$tg"
TG_KEY=$key PROBE_MODEL=big-gpt probe big 127.0.0.1:19014 "$tg"
sleep 1
curl -s "http://127.0.0.1:19015/metrics" | awk '/^tollgate_usage_events_dropped_total/ {print "usage events dropped:", $2}'
