#!/usr/bin/env bash
# Load test: the mock provider directly, a bare Pingora passthrough, and Tollgate (auth,
# routing, metering, usage writes all on), each proxy pinned to core 0 and the mock and
# wrk to core 1, same run. Prints RPS, p50/p99 latency and RSS per target and mode.
# Usage: load-tests/run.sh [SECONDS_PER_RUN] [CONNECTIONS]     (defaults 10, 64)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
bash .ci/setup
cargo build --release -q -p tollgate -p tollgate-load
bin=target/release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19001 2>/dev/null & pids+=($!)
taskset -c 0 "$bin/passthrough" 127.0.0.1:19002 127.0.0.1:19001 2>/dev/null & pids+=($!)
cat > "$tmp/tollgate.yaml" <<YAML
server: { listen: ["127.0.0.1:19003"], threads: 1, shutdown_grace_s: 1 }
admin: { listen: "127.0.0.1:19004" }
storage: { path: "$tmp/tollgate.db" }
upstreams:
  - { name: mock, kind: openai, base_url: "http://127.0.0.1:19001", keys: ["sk-load"] }
routes:
  - { models: ["*"], upstreams: [mock] }
pricing:
  "gpt-4o-mini*": { input: 0.15, output: 0.60, cache_read: 0.075 }
YAML
"$bin/tollgate" -c "$tmp/tollgate.yaml" user add load >/dev/null
export TG_KEY=$("$bin/tollgate" -c "$tmp/tollgate.yaml" key create --user load)
RUST_LOG=warn taskset -c 0 "$bin/tollgate" -c "$tmp/tollgate.yaml" serve 2>"$tmp/tollgate.log" & tg=$!; pids+=($tg)
for port in 19001 19002 19003; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
done
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$1/status; }
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "tollgate idle RSS: $(rss $tg)"
printf '%-12s %-7s %10s %9s %9s\n' target mode rps p50 p99
declare -A RPS
for mode in json stream; do
  for target in mock:19001 passthrough:19002 tollgate:19003; do
    name=${target%%:*}; port=${target##*:}
    out=$(STREAM=$([ "$mode" = stream ] && echo 1 || echo 0) taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s load-tests/post.lua "http://127.0.0.1:$port/v1/chat/completions")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    RPS[$name-$mode]=$rps
    printf '%-12s %-7s %10s %9s %9s %s\n' "$name" "$mode" "$rps" "$p50" "$p99" "$errs"
  done
done
echo "tollgate RSS after load: $(rss $tg)"
for mode in json stream; do
  awk -v t="${RPS[tollgate-$mode]}" -v p="${RPS[passthrough-$mode]}" -v m="$mode" 'BEGIN {printf "tollgate / passthrough RPS (%s): %.2f\n", m, t/p}'
done
sleep 1
events=$(curl -s "http://127.0.0.1:19004/metrics" | awk '/^tollgate_requests_total/ {s+=$2} END {print s}')
dropped=$(curl -s "http://127.0.0.1:19004/metrics" | awk '/^tollgate_usage_events_dropped_total/ {print $2}')
echo "tollgate requests metered: $events, usage events dropped: ${dropped:-0}"
