#!/usr/bin/env bash
# Instructions per request (valgrind's callgrind: a count, not a time, so a busy or
# shared machine does not change it), for the bare passthrough (glibc and mimalloc) and
# Tollgate (auth, routing, metering, usage writes on; every thread of the process,
# the SQLite writer included), non-stream and stream. After a warm-up the counters are
# zeroed, wrk runs SECONDS over 8 connections, and the count is divided by the requests
# wrk completed. The model is one without a tiktoken tokenizer: the streams wrk cuts when
# it stops are estimated, and building a tokenizer's tables (once, on a thread of its
# own) would otherwise land in the count. With KEEP=DIR the callgrind files stay in DIR for callgrind_annotate.
# The tollgate-translated rows are an Anthropic Messages client (post.lua with
# DIALECT=anthropic, to /v1/messages) served by the same OpenAI-style mock: the request,
# the answer and the stream translated both ways (issue 12's cost).
# The bulk rows come from a second mock that writes each stream all at once
# (TOLLGATE_MOCK_BULK=1): bulk-openai, a chat-completions stream (role, 33 content, finish and usage chunks, [DONE]; ~10.7 KB);
# bulk-anthropic, an Anthropic Messages client and stream (/v1/messages, model
# claude-load-test, no tokenizer either), which Tollgate serves through an anthropic-kind
# upstream. Each proxy is started again for them, in front of that mock. BULK=events
# sends each bulk stream as one HTTP chunk per event instead of one chunk.
# ONLY=REGEX profiles only the rows whose name matches (ONLY='tollgate|tollgate-translated'
# between two changes: the passthrough's figures do not move).
# Usage: load-tests/profile.sh [SECONDS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
source load-tests/common.sh
need wrk valgrind
export MODEL=load-test-model
keep=${KEEP:-}
only=${ONLY:-}

taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19021 2>/dev/null & pids+=($!)
TOLLGATE_MOCK_BULK=${BULK:-1} taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19026 2>/dev/null & pids+=($!)
one_upstream_config "$tmp/tollgate.yaml" 127.0.0.1:19023 127.0.0.1:19024 127.0.0.1:19021 "$MODEL"
TG_KEY=$(gateway_key "$tmp/tollgate.yaml")
export TG_KEY
two_dialect_config "$tmp/bulk.yaml" 127.0.0.1:19027 127.0.0.1:19028 127.0.0.1:19026 "$MODEL"
bulk_key=$(gateway_key "$tmp/bulk.yaml")
wait_for 19021 19026

# count NAME PORT MODES COMMAND...: instructions per request of COMMAND, for each of MODES
# (json, stream: to $client_path; bulk-openai, bulk-anthropic: their own dialect).
count() {
  local name=$1 port=$2 modes=$3; shift 3
  [[ -z $only || $name =~ ^($only)$ ]] || return 0
  local out="$tmp/cg-$name"
  mkdir -p "$out"
  RUST_LOG=warn taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$@" 2>"$out/valgrind.log" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  local k=0
  for mode in $modes; do
    k=$((k + 1))
    local stream=1 path=$client_path dialect=${DIALECT:-} model=$MODEL
    [ "$mode" != json ] || stream=0
    case $mode in
      bulk-openai) path=/v1/chat/completions; dialect=openai ;;
      bulk-anthropic) path=/v1/messages; dialect=anthropic; model=claude-load-test ;;
    esac
    STREAM=$stream DIALECT=$dialect MODEL=$model taskset -c 1 wrk -t1 -c8 -d2s -s load-tests/post.lua "http://127.0.0.1:$port$path" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    local n res
    res=$(STREAM=$stream DIALECT=$dialect MODEL=$model taskset -c 1 wrk -t1 -c8 -d"${secs}s" -s load-tests/post.lua "http://127.0.0.1:$port$path")
    n=$(echo "$res" | awk '/requests in/ {print $1}')
    ! echo "$res" | grep -q "Non-2xx" || echo "  $name $mode: $(echo "$res" | grep "Non-2xx")"
    callgrind_control --dump="$mode" "$pid" >/dev/null
    # Each dump is a file of its own: cg.PID.1, cg.PID.2, ...
    local dump="$out/cg.$pid.$k"
    for _ in $(seq 100); do [ -s "$dump" ] && grep -q '^totals:' "$dump" && break; sleep 0.1; done
    local total
    total=$(awk '/^totals:/ {print $2}' "$dump")
    printf '%-21s %-14s %9d requests %11d instructions/request\n' "$name" "$mode" "$n" $((total / n))
    [ -z "$keep" ] || { mkdir -p "$keep"; cp "$dump" "$keep/$name-$mode.callgrind"; }
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(date -u +%Y-%m-%dT%H:%MZ)"
client_path=/v1/chat/completions
count passthrough 19022 "json stream" "$bin/passthrough" 127.0.0.1:19022 127.0.0.1:19021
count passthrough-mimalloc 19025 "json stream" "$bin/passthrough-mimalloc" 127.0.0.1:19025 127.0.0.1:19021
count tollgate 19023 "json stream" "$bin/tollgate" -c "$tmp/tollgate.yaml" serve
bulk="bulk-openai bulk-anthropic"
count passthrough 19022 "$bulk" "$bin/passthrough" 127.0.0.1:19022 127.0.0.1:19026
count passthrough-mimalloc 19025 "$bulk" "$bin/passthrough-mimalloc" 127.0.0.1:19025 127.0.0.1:19026
TG_KEY=$bulk_key count tollgate 19027 "$bulk" "$bin/tollgate" -c "$tmp/bulk.yaml" serve
client_path=/v1/messages
export DIALECT=anthropic
count tollgate-translated 19023 "json stream" "$bin/tollgate" -c "$tmp/tollgate.yaml" serve
