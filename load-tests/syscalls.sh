#!/usr/bin/env bash
# What the kernel is asked per request: system calls (perf's syscall tracepoints, a
# count, not a time), context switches and CPU time, for the bare passthrough (mimalloc)
# and for Tollgate (its usage writer included: every thread of the process), pinned as
# in throughput.sh. callgrind (profile.sh) counts only user-space instructions; this is
# the kernel side: the writer's pwrite/pread/fsync on the store, and the proxy's
# sendto/recvfrom/writev. Modes as in throughput.sh: json and bulk-openai.
# Usage: [MODES="json bulk-openai"] load-tests/syscalls.sh [SECONDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
modes=${MODES:-json bulk-openai}
source load-tests/common.sh
need wrk
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
perf stat -e syscalls:sys_enter_pwrite64 true >/dev/null 2>&1 || {
  echo "perf cannot read syscall tracepoints here (perf_event_paranoid, or no tracefs)" >&2
  exit 1
}

taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19031 2>/dev/null & pids+=($!)
TOLLGATE_MOCK_BULK=1 taskset -c 1 "$bin/mock-upstream" 127.0.0.1:19036 2>/dev/null & pids+=($!)
events=syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev
events+=,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex
events+=,syscalls:sys_enter_pwrite64,syscalls:sys_enter_pread64,syscalls:sys_enter_fsync
events+=,context-switches,task-clock
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(date -u +%Y-%m-%dT%H:%MZ)"

# measure NAME PID PORT KEY STREAM: per-request counts over SECONDS of wrk at 64
# connections, after a one-second warm-up.
measure() {
  local name=$1 pid=$2 port=$3 key=$4 stream=$5 out n
  STREAM=$stream TG_KEY=$key taskset -c 1 wrk -t1 -c64 -d1s -s load-tests/post.lua "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
  perf stat -x, -e "$events" -p "$pid" -o "$tmp/stat" -- sleep "$secs" &
  local stat=$!
  out=$(STREAM=$stream TG_KEY=$key taskset -c 1 wrk -t1 -c64 -d"${secs}s" -s load-tests/post.lua "http://127.0.0.1:$port/v1/chat/completions")
  wait "$stat" || true
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -F, -v n="$n" -v name="$name" '
    $1 ~ /^[0-9.]+$/ {
      e = $3; sub(/^syscalls:sys_enter_/, "", e)
      v[e] = (e == "task-clock") ? $1 * 1000 / n : $1 / n
    }
    END {
      printf "%-24s %8d req", name, n
      printf "  cpu %6.2f us", v["task-clock"]
      split("sendto recvfrom writev epoll_wait futex pwrite64 pread64 fsync context-switches", k, " ")
      for (i = 1; i <= 9; i++) printf "  %s %.3f", k[i], v[k[i]]
      printf "\n"
    }' "$tmp/stat"
}

for mode in $modes; do
  case $mode in
    json) up=19031 stream=0 ;;
    bulk-openai) up=19036 stream=1 ;;
    *) echo "unknown mode: $mode" >&2; exit 2 ;;
  esac
  taskset -c 0 "$bin/passthrough-mimalloc" 127.0.0.1:19032 "127.0.0.1:$up" 2>/dev/null & pt=$!
  one_upstream_config "$tmp/$mode.yaml" 127.0.0.1:19033 127.0.0.1:19034 "127.0.0.1:$up" "gpt-4o-mini*"
  sed -i "s|$tmp/tollgate.db|$tmp/$mode.db|" "$tmp/$mode.yaml"
  key=$(gateway_key "$tmp/$mode.yaml")
  RUST_LOG=warn taskset -c 0 "$bin/tollgate" -c "$tmp/$mode.yaml" serve 2>"$tmp/$mode.log" & tg=$!
  pids+=("$pt" "$tg")
  wait_for 19032 19033
  echo "== $mode (per request)"
  measure passthrough-mimalloc "$pt" 19032 "" "$stream"
  measure tollgate "$tg" 19033 "$key" "$stream"
  kill "$pt" "$tg"
  wait "$pt" "$tg" 2>/dev/null || true
done
